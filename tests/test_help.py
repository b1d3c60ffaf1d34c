"""Every subcommand's and every sweep algorithm's ``--help`` (and ``-h``) prints its usage and
exits 0: help texts are formatted by argparse, so a stray ``%`` in any of them is a crash."""

import pytest

from semigrad import sweep
from semigrad.cli import command_modules, main

COMMANDS = [m.NAME for m in command_modules()]


@pytest.mark.parametrize("flag", ["--help", "-h"])
@pytest.mark.parametrize("command", COMMANDS)
def test_every_subcommand_help(command, flag, capsys):
    assert main([command, flag]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith(f"usage: semigrad {command}")
    assert "Traceback" not in captured.err


@pytest.mark.parametrize("algo", sorted(sweep.ALGOS))
def test_every_sweep_algorithm_help(algo, capsys):
    assert main(["sweep", algo, "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: semigrad sweep {algo}")


def test_the_commands_are_all_there():
    assert {"train", "eval", "plot", "report", "sweep", "sarsa", "td0", "baird",
            "grad"} <= set(COMMANDS)
    assert {"dqn", "sarsa", "td0"} <= set(sweep.ALGOS)
