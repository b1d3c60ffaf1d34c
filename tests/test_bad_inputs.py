"""Bad input, across every subcommand: a non-zero exit, one clear line on stderr, no traceback,
and no file that existed before is changed (nor any new file left beside them).

The cases are the ordinary mistakes of a new user (typos, out-of-range values, the wrong
folder, damaged files, unwritable places) and the problems listed in the run-directory issue.
"""

import hashlib
import os
from pathlib import Path

import pytest

from chain_env import ChainEnv
from semigrad import envs
from semigrad.algos import dqn
from semigrad.cli import command_modules, main

envs.register("TestChain-v0", lambda **kw: ChainEnv(**kw))

TINY = ["--env", "TestChain-v0", "--steps", "600", "--eval-every", "300", "--learning-starts",
        "100", "--hidden", "8", "--no-progress", "--no-tensorboard", "--device", "cpu"]
UNWRITABLE = "/proc/semigrad-test"  # not writable, not even by root


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Folders a user may point the commands at: runs of each kind, damaged files, a file."""
    root = tmp_path_factory.mktemp("bad")
    cwd = os.getcwd()
    os.chdir(root)  # commands without --run-dir write under ./runs
    try:
        assert main(["train", *TINY, "--run-dir", "done"]) == 0
        cfg = dqn.config_from_dict({"command": "train", "env": "TestChain-v0", "steps": 1200,
                                    "eval_every": 300, "learning_starts": 100, "hidden": [8],
                                    "tensorboard": False, "device": "cpu"})
        dqn.train(cfg, root / "interrupted", progress=False, stop_after=600)
        assert main(["td0", "--steps", "400", "--num-envs", "4", "--mc-rollouts", "2",
                     "--no-plots", "--run-dir", "td0run", "--device", "cpu"]) == 0
        for name, data in (("garbage", b"not a checkpoint at all"),
                           ("truncated", (root / "done" / "checkpoint_best.pt").read_bytes()[:99])):
            d = root / name
            d.mkdir()
            (d / "config.json").write_bytes((root / "done" / "config.json").read_bytes())
            (d / "checkpoint_best.pt").write_bytes(data)
        (root / "a-file").write_text("not a folder\n")
        (root / "empty").mkdir()
        (root / "reported").mkdir()
        assert main(["report", "done", "--reps", "200", "--run-dir", "reported/r"]) == 0
    finally:
        os.chdir(cwd)
    return root


CASES = [
    # train: config values
    (["train", "--env", "Pendulum-v1"], "discrete action space"),
    (["train", "--env", "CartPol-v1"], "did you mean 'CartPole-v1'"),
    (["train", "--env", "no_such_pkg.envs:Foo-v0"], "cannot import module 'no_such_pkg.envs'"),
    (["train", "--gamma", "2"], "gamma: 2.0 is outside the allowed range [0, 1]"),
    (["train", "--alpha", "inf"], "expected a finite number"),
    (["train", "--alpha", "-1"], "alpha: -1.0 is outside the allowed range"),
    (["train", "--alpha", "abc"], "expected a number, got 'abc'"),
    (["train", "--steps", "1.5"], "expected an integer, got '1.5'"),
    (["train", "--steps", "100"], "only play randomly"),
    (["train", "--buffer-size", "10"], "buffer_size: 10 is too small"),
    (["train", "--batch-size", "0"], "batch_size: 0 is outside the allowed range"),
    (["train", "--eval-episodes", "0"], "eval_episodes: 0 is outside the allowed range"),
    (["train", "--loss", "l1"], "invalid choice: 'l1'"),
    (["train", "--hidden", "0"], "hidden: expected one or more widths"),
    (["train", "--start-box", "1", "1", "1", "1"], "12 degrees"),
    (["train", "--algo", "dqn", "--env", "gymnasium:CartPole-v1", "--start-box", "1", "1",
      "0.1", "1"], "CartPole-v1 (semigrad"),
    (["train", "--env", "CartPole-v1", "--start-box", "1", "1", "0.1", "1"],
     "trains pqn, that env's default: add --algo dqn"),
    (["train", "--network", "no_such_module:f"], "network: cannot import 'no_such_module:f'"),
    (["train", "--activation", "gelu", "--q-backend", "stacked"],
     "q_backend: 'stacked' runs network mlp"),
    (["train", "--threads", "0"], "--threads: expected an integer in 1..4,096"),
    # train: seeds
    (["train", "--seed", "99999999999999999999"], "--seed: expected an integer of at most 2^63-1"),
    (["train", "--seed", "-1"], "seed: -1 is outside the allowed range"),
    (["train", "--seeds", "0-100000"], "at most 100000"),
    (["train", "--seeds", "3-1"], "empty range"),
    (["train", "--seeds", "0-1", "--seed", "3"], "--seed and --seeds"),
    (["train", "--seeds", "0-1000", "--buffer-size", "100000000"], "GiB of dqn's storage"),
    # train: folders
    (["train", "--run-dir", "{w}/done"], "already holds a finished run"),
    (["train", "--run-dir", "{w}/interrupted"], "--resume"),
    (["train", "--run-dir", "{w}/a-file"], "is a file, not a folder"),
    (["train", "--run-dir", UNWRITABLE], "semigrad-test"),
    (["train", "--resume", "{w}/missing"], "no such file; is this a semigrad run directory?"),
    (["train", "--resume", "{w}/td0run"], "this run already ended"),
    (["train", "--resume", "{w}/done"], "this run already ended"),
    (["train", "--resume", "{w}/interrupted", "--alpha", "0.5"], "config differs"),
    (["train", "--resume", "{w}/interrupted", "--seeds", "0-1"], "leave --seeds out"),
    # eval
    (["eval", "{w}/missing"], "no such file; is this a semigrad run directory?"),
    (["eval", "{w}/td0run"], "has no policy to load"),
    (["eval", "{w}/garbage"], "not a readable semigrad checkpoint"),
    (["eval", "{w}/truncated"], "not a readable semigrad checkpoint"),
    (["eval", "{w}/done", "--gif", "{w}/empty"], "--gif"),
    (["eval", "{w}/done", "--gif", UNWRITABLE + "/agent.gif"], "semigrad-test"),
    (["eval", "{w}/done", "--gif", "{w}/agent.png"], "ending in .gif"),
    (["eval", "{w}/done", "--gif", "{w}/agent.gif", "--gif-steps", "0"], "--gif-steps"),
    (["eval", "{w}/done", "--episodes", "0"], "--episodes: expected an integer in 1..10,000"),
    (["eval", "{w}/done", "--checkpoint", "middle"], "invalid choice: 'middle'"),
    # plot, report
    (["plot", "{w}/missing"], "no metrics.csv"),
    (["plot", "{w}/td0run"], "a td0 run predicts the values of a fixed policy"),
    (["report", "{w}/missing"], "no such folder"),
    (["report", "{w}/empty"], "no training runs found"),
    (["report", "{w}/done", "--reps", "10"], "--reps: expected an integer in 100..100,000"),
    (["report", "{w}/done", "--confidence", "2"], "--confidence"),
    (["report", "{w}/done", "--run-dir", "{w}/reported/r"], "--force replaces it"),
    # td0, sarsa, baird, grad
    (["td0", "--gamma", "2"], "gamma: 2.0 is outside the allowed range"),
    (["td0", "--alpha", "inf"], "expected a finite number"),
    (["td0", "--probe", "a,b"], "--probe: expected comma-separated numbers"),
    (["td0", "--probe", "nan,0,0,0"], "--probe: expected comma-separated numbers"),
    (["td0", "--mc-rollouts", "1"], "mc_rollouts: 1 is outside the allowed range [2, 1e+06]"),
    (["td0", "--steps", "0"], "steps: 0 is outside the allowed range"),
    (["td0", "--run-dir", "{w}/done"], "already holds a finished run"),
    (["sarsa", "--epsilon-start", "2"], "epsilon_start: 2.0 is outside the allowed range"),
    (["sarsa", "--env", "Pendulum-v1"], "discrete action space"),
    (["baird", "--method", "nope"], "invalid choice: 'nope'"),
    (["baird", "--steps", "-5"], "steps"),
    (["grad", "--run-dir", "{w}/a-file"], "is a file, not a folder"),
    # sweep
    (["sweep", "dqn", "--grid", "alpha=1e-3,-1"], "setting 'alpha=-1.0' is invalid"),
    (["sweep", "dqn", "--grid", "alpah=1"], "did you mean 'alpha'"),
    (["sweep", "--resume", "{w}/missing"], "no such file"),
    (["nope"], "invalid choice: 'nope'"),
]


def _snapshot(root: Path) -> dict[str, str]:
    out = {}
    for path in sorted(root.rglob("*")):
        if path.is_file() and path.name != ".lock":
            out[str(path.relative_to(root))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def test_every_command_has_bad_input_cases():
    """Every command the CLI has (found in ``semigrad.commands``, as ``semigrad`` finds them)
    is among the cases below: a new command fails this until its mistakes are tried."""
    assert {argv[0] for argv, _ in CASES} >= {mod.NAME for mod in command_modules()}


@pytest.mark.parametrize("name", sorted(mod.NAME for mod in command_modules()))
def test_an_unknown_option_is_one_line_for_every_command(tmp_path, capsys, monkeypatch, name):
    """A mistyped option, for every command: exit code 2, one line naming a --help, no
    traceback, nothing written."""
    monkeypatch.chdir(tmp_path)
    code = main([name, "--no-such-option"])
    out, err = capsys.readouterr()
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1, err
    assert "error:" in lines[0] and "--help" in lines[0], lines[0]
    assert "Traceback" not in err + out
    assert not any(tmp_path.iterdir()), list(tmp_path.iterdir())


@pytest.mark.parametrize(("argv", "message"), CASES, ids=[" ".join(a) for a, _ in CASES])
def test_bad_input_is_one_clear_line_and_changes_nothing(world, tmp_path, capsys, monkeypatch,
                                                         argv, message):
    monkeypatch.chdir(tmp_path)  # anything written without --run-dir would appear here
    argv = [a.replace("{w}", str(world)) for a in argv]
    before = _snapshot(world)
    code = main(argv)
    out, err = capsys.readouterr()
    lines = [line for line in err.splitlines() if line.strip()]
    assert code != 0, (argv, out, err)
    assert len(lines) == 1, err
    assert message in lines[0], lines[0]
    assert "Traceback" not in err + out
    assert _snapshot(world) == before
    assert not any(tmp_path.iterdir()), list(tmp_path.iterdir())  # no stray folders
