"""``python -m semigrad`` is the ``semigrad`` command."""

from semigrad.cli import main

raise SystemExit(main())
