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


def test_train_help_shows_the_defaults_that_run_and_the_presets_as_a_table(capsys):
    """The defaults shown are the default preset's (what `semigrad train` runs), not
    DQNConfig's; the presets are a table, not a dict dump."""
    from semigrad.algos import dqn

    assert main(["train", "--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())  # argparse wraps help lines
    preset = dqn.PRESETS[dqn.DEFAULT_PRESET]
    assert preset.batch_size != dqn.DQNConfig().batch_size  # else this test shows nothing
    assert f"--batch-size BATCH_SIZE minibatch size (default: {preset.batch_size})" in out
    assert f"(default: {preset.loss})" in out and "(default: 128 128)" in out
    assert "{'" not in out  # no dict dumps
    for name, cfg in dqn.PRESETS.items():
        assert f" {name}{' *' if name == dqn.DEFAULT_PRESET else ''} {cfg.env} {cfg.steps:,} " \
            in out


def test_sweep_help_and_grid_errors_use_todays_field_names(capsys):
    assert main(["sweep", "--help"]) == 0
    out = capsys.readouterr().out
    assert "alpha = [1e-3, 3e-4]" in out and "lr =" not in out
    assert main(["sweep", "dqn", "--grid", "lr"]) == 2
    assert "e.g. alpha=1e-3,3e-4" in capsys.readouterr().err


@pytest.mark.parametrize("argv,says", [
    (["train", "--lr", "1e-3"], "--lr is now --alpha"),
    (["train", "--total-steps", "5000"], "--total-steps is now --steps"),
    (["train", "--eps-end=0.1"], "--eps-end is now --epsilon-end"),
])
def test_old_option_names_point_to_the_new_ones(argv, says, capsys):
    assert main(argv) == 2
    assert says in capsys.readouterr().err


def test_old_field_names_in_a_sweep_grid_point_to_the_new_ones(tmp_path, capsys):
    assert main(["sweep", "--run-dir", str(tmp_path / "s"), "dqn", "--grid",
                 "lr=1e-3,3e-4"]) == 2
    assert "'lr' is now 'alpha'" in capsys.readouterr().err
    assert not (tmp_path / "s").exists()


def test_plot_help_names_the_folder_it_writes(capsys):
    assert main(["plot", "--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "a new folder under plots/" in out and "under runs/" not in out


def test_an_unknown_option_points_to_the_subcommands_help(capsys):
    assert main(["train", "--no-such-option", "3"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("semigrad train: error: unrecognized arguments: --no-such-option 3")
    assert "(see semigrad train --help)" in err
