"""The ``semigrad`` command (also ``python -m semigrad``).

Subcommands live one per module in ``semigrad.commands``; each module defines ``NAME``,
``HELP``, ``add_arguments(parser)`` and ``run(args) -> int``, and is found automatically, so
adding a command never touches this file.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import pkgutil
import sys
from collections.abc import Sequence
from types import ModuleType

import torch

import semigrad
from semigrad import commands
from semigrad.config import renamed_hint
from semigrad.run import SigtermAsCtrlC


def command_modules() -> list[ModuleType]:
    """The subcommand modules in ``semigrad.commands``, sorted by name (private ones skipped)."""
    mods = []
    for info in pkgutil.iter_modules(commands.__path__):
        if not info.name.startswith("_"):
            mods.append(importlib.import_module(f"{commands.__name__}.{info.name}"))
    return sorted(mods, key=lambda m: m.NAME)


class OneLineParser(argparse.ArgumentParser):
    """argparse, with a usage error as one line (the usage is one ``--help`` away)."""

    def error(self, message: str):
        if message.startswith("unrecognized arguments:"):  # an old option name: its new one
            message += "".join(renamed_hint(a.partition("=")[0]) for a in message.split()[2:]
                               if a.startswith("--"))
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser(argv: Sequence[str] = ()) -> argparse.ArgumentParser:
    """The parser of ``argv``: a command whose ``add_arguments`` takes ``argv`` adds the
    options its command line selects (``train --algo NAME``: NAME's fields)."""
    parser = OneLineParser(
        prog="semigrad",
        description="Value-function approximation for reinforcement learning on PyTorch.",
    )
    parser.add_argument("--version", action="version", version=f"semigrad {semigrad.__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=OneLineParser)
    for mod in command_modules():
        p = sub.add_parser(
            mod.NAME,
            help=mod.HELP,
            description=getattr(mod, "DESCRIPTION", mod.HELP),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        if "argv" in inspect.signature(mod.add_arguments).parameters:
            mod.add_arguments(p, argv=argv)
        else:
            mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(argv)
    try:
        args, extra = parser.parse_known_args(argv)
        if extra:  # said by the subcommand's parser, which names its own --help
            sub = parser._subparsers._group_actions[0].choices.get(getattr(args, "command", None),
                                                                   parser)
            hint = getattr(args, "usage_hint", None)  # a command's word on what it picked
            sub.error(f"unrecognized arguments: {' '.join(extra)}"
                      + (f" ({hint})" if hint else ""))
    except SystemExit as exit_:  # --help, --version, a usage error: its exit code
        return exit_.code if isinstance(exit_.code, int) else 2
    if getattr(args, "_run", None) is None:
        parser.print_help()
        return 2
    try:
        threads = getattr(args, "threads", None)
        if threads is not None:  # 1.. by its argparse type
            torch.set_num_threads(threads)
        with SigtermAsCtrlC():
            return int(args._run(args) or 0)
    except (ValueError, FileExistsError, FileNotFoundError, NotADirectoryError,
            IsADirectoryError) as err:
        print(f"semigrad {args.command}: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # read-only folder, disk full, a folder where a file goes, ...
        print(f"semigrad {args.command}: error: {describe_os_error(err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM
        print(f"semigrad {args.command}: interrupted", file=sys.stderr)
        return 130


def describe_os_error(err: OSError) -> str:
    """One line for a file-system error: the path and the problem (``strerror``), whatever
    exception type carried it."""
    path = err.filename or ""
    reason = err.strerror or str(err)
    if err.errno == 28:  # ENOSPC
        reason += "; files written before are kept as they were"
    return f"{path}: {reason}" if path else reason
