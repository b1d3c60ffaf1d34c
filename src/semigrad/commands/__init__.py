"""One module per ``semigrad`` subcommand (discovered by ``semigrad.cli``)."""
