"""What a new user types first: empty paths, absurd counts, signals, one observation. Each
case was a traceback, a hang or files in the wrong folder (issue 23); each now gets one line."""

import pytest

from semigrad.cli import main


@pytest.mark.parametrize("argv", [
    ["train", "--run-dir", "", "--steps", "2000"],
    ["sarsa", "--run-dir", "", "--steps", "100"],
    ["td0", "--run-dir", "", "--steps", "100"],
    ["eval", ""],
    ["plot", ""],
    ["sweep", "--run-dir", "", "dqn"],
])
def test_an_empty_path_is_refused_and_nothing_is_written(argv, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "expected a file or folder name, got ''" in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []  # no .lock, config.json, tb/ in the current folder


@pytest.mark.parametrize("argv,says", [
    (["train", "--steps", "1e30"], "expected an integer of at most 2^63-1"),
    (["train", "--steps", "2e12"], "expected an integer in 0..1,000,000,000,000"),
    (["train", "--eval-episodes", "100000000"], "eval_episodes: 100000000 is outside"),
    (["sarsa", "--steps", "1e13"], "expected an integer in 0..1,000,000,000,000"),
    (["eval", "runs/x", "--episodes", "100000000"], "expected an integer in 1..10,000"),
    (["eval", "runs/x", "--episodes", "0"], "expected an integer in 1..10,000"),
    (["sweep", "--num-cpus", "0", "dqn"], "expected an integer in 1..1,000,000"),
    (["td0", "--mc-rollouts", "1e9"], "expected an integer in 2..1,000,000"),
    (["train", "--threads", "0"], "expected an integer in 1..4,096"),
    (["train", "--seed", "1e30"], "expected an integer of at most 2^63-1"),
])
def test_counts_are_bounded_before_any_work(argv, says, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert says in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


def test_a_seed_of_2_63_minus_1_is_still_taken():
    from semigrad.config import parse_count, parse_int

    assert parse_int(str(2**63 - 1)) == 2**63 - 1
    assert parse_count("5e4") == 50_000



def test_sigterm_ends_a_sarsa_run_as_ctrl_c_does(tmp_path):
    """SIGTERM (what Slurm sends before it kills a job) was exit 143 with no word; now it is
    handled as Ctrl-C: a message and code 130."""
    import signal
    import subprocess
    import sys
    import time

    run_dir = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-m", "semigrad", "sarsa", "--run-dir", str(run_dir),
         "--steps", "100000000", "--device", "cpu"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not (run_dir / "config.json").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(1.0)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "semigrad sarsa: interrupted" in err and "Traceback" not in err
