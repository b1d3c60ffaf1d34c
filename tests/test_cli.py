"""The semigrad command: help, the run-directory contract, `semigrad grad`."""

import json
import subprocess
import sys

import torch

from semigrad.cli import main

COMMANDS = {"baird", "eval", "grad", "plot", "report", "sarsa", "sweep", "td0", "train"}


def test_python_m_semigrad_help_lists_every_command():
    """``python -m semigrad --help`` is the ``semigrad`` command's help (not ``__main__.py``'s),
    and lists every command, each with its one-line description (commands are found by
    scanning ``semigrad.commands``: one that fails to load or lacks ``NAME`` would be
    missing)."""
    out = subprocess.run([sys.executable, "-m", "semigrad", "--help"],
                         capture_output=True, text=True, check=True)
    assert out.stdout.startswith("usage: semigrad ")
    listed = {}
    for line in out.stdout.split("positional arguments:")[1].split("options:")[0].splitlines():
        words = line.split(maxsplit=1)
        if line.startswith("    ") and not line.startswith("     ") and words:
            listed[words[0]] = words[1] if len(words) > 1 else ""
    assert set(listed) == COMMANDS, listed
    assert all(listed.values()), listed  # a description beside every command
    # without a command: the help again, and a non-zero exit
    bare = subprocess.run([sys.executable, "-m", "semigrad"], capture_output=True, text=True)
    assert bare.returncode == 2 and bare.stdout == out.stdout


def test_grad_default_is_the_seed_example(tmp_path, capsys):
    assert main(["grad", "--run-dir", str(tmp_path / "r"), "--seed", "3"]) == 0
    out = capsys.readouterr().out
    assert "2.9000" in out and "taken action" in out
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    config = json.loads((tmp_path / "r" / "config.json").read_text())
    assert config["seed"] == 3 and config["actions"] == [2, 1, 1, 0, 1]
    grad = torch.tensor(summary["grad"], dtype=torch.float64)
    taken = torch.tensor(summary["taken_values"], dtype=torch.float64)
    targets = torch.tensor(summary["targets"], dtype=torch.float64)
    rows, actions = torch.arange(5), torch.tensor([2, 1, 1, 0, 1])
    assert torch.allclose(grad[rows, actions], 2 * (taken - targets) / 5)
    # the loss of the per-sample reference: the mean squared error of the taken values
    assert abs(summary["loss"] - ((taken - targets) ** 2).mean().item()) < 1e-12
    assert summary["max_abs_grad_off_taken"] == 0.0
    assert (tmp_path / "r" / "grad.png").stat().st_size > 1000


def test_grad_seed_scalar_case(tmp_path):
    assert main(["grad", "--q", "0.235,1.200,1.321", "--actions", "1", "--targets", "0.890",
                 "--run-dir", str(tmp_path / "r")]) == 0
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert torch.allclose(torch.tensor(summary["grad"]), torch.tensor([[0.0, 0.62, 0.0]]))


def test_grad_bad_input_is_one_line_error(tmp_path, capsys):
    assert main(["grad", "--actions", "2,1,5,0,1", "--run-dir", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "error:" in err and "[0, A-1]=[0, 2]" in err and "Traceback" not in err
    assert not (tmp_path / "r").exists()  # nothing written before the input was checked


def test_finished_run_dir_is_not_overwritten(tmp_path, capsys):
    assert main(["grad", "--run-dir", str(tmp_path / "r")]) == 0
    before = (tmp_path / "r" / "summary.json").read_text()
    assert main(["grad", "--run-dir", str(tmp_path / "r"), "--seed", "9"]) == 2
    assert "finished run" in capsys.readouterr().err
    assert (tmp_path / "r" / "summary.json").read_text() == before


def test_env_picks_its_default_algorithm(tmp_path, capsys):
    """``semigrad train --env ID`` without --algo or --preset trains the env's default
    algorithm (``presets.DEFAULT_ALGORITHM``: PQN on CartPole-v1, LunarLander-v3 and MinAtar, DQN
    elsewhere)
    and says so; --algo, --preset and a bare ``semigrad train`` keep DQN; DQN's options after
    a PQN default get one error that names the fix."""
    from semigrad.algos import presets
    from semigrad.commands.train import algo_in

    assert presets.default_algorithm("CartPole-v1") == "pqn"
    assert presets.default_algorithm("gymnasium:CartPole-v1") == "pqn"
    assert presets.default_algorithm("MinAtar/Asterix-v1") == "pqn"
    assert presets.default_algorithm("Acrobot-v1") == "dqn"
    assert algo_in(["--env", "CartPole-v1"]) == "pqn"
    assert algo_in(["--env=MinAtar/Breakout-v1", "--steps", "10"]) == "pqn"
    assert algo_in(["--env", "CartPole-v1", "--algo", "dqn"]) == "dqn"
    assert algo_in(["--env", "CartPole-v1", "--preset", "cartpole-explore"]) == "dqn"
    assert algo_in(["--env", "LunarLander-v3"]) == "pqn"
    assert algo_in(["--env", "MountainCar-v0"]) == "dqn"
    assert algo_in([]) == "dqn"
    run = tmp_path / "run"
    assert main(["train", "--env", "CartPole-v1", "--steps", "4096", "--eval-every", "4096",
                 "--eval-episodes", "1", "--run-dir", str(run), "--no-progress",
                 "--no-tensorboard", "--device", "cpu"]) == 0
    assert json.loads((run / "config.json").read_text())["algo"] == "pqn"
    assert "trains pqn, that env's default" in capsys.readouterr().err
    assert main(["train", "--env", "CartPole-v1", "--buffer-size", "10"]) == 2
    err = capsys.readouterr().err
    assert "unrecognized arguments: --buffer-size 10" in err and "add --algo dqn" in err


def test_train_help_lists_the_chosen_algorithms_presets(capsys):
    assert main(["train", "--algo", "pqn", "--help"]) == 0
    out = capsys.readouterr().out
    assert "pqn's presets" in out and "minatar-asterix" in out
    assert "cartpole-explore" not in out  # DQN's alone
    assert main(["train", "--help"]) == 0
    out = capsys.readouterr().out
    assert "dqn's presets" in out and "cartpole-explore" in out
