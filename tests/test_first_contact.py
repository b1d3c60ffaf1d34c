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
    ["report", ""],
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
    (["td0", "--mc-rollouts", "1e9"], "mc_rollouts: 1000000000 is outside the allowed range"),
    (["report", ".", "--reps", "1e8"], "expected an integer in 100..100,000"),
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



TINY = ["--env", "TestChain-v0", "--steps", "600", "--eval-every", "300", "--learning-starts",
        "100", "--hidden", "8", "--no-progress", "--no-tensorboard", "--device", "cpu"]


def _register_chain():
    from chain_env import ChainEnv
    from semigrad import envs

    envs.register("TestChain-v0", lambda **kw: ChainEnv(**kw))


NETS = '''
import torch


def good(obs_dim, num_actions):
    return torch.nn.Linear(obs_dim, num_actions)


def one_too_many(obs_dim, num_actions):
    return torch.nn.Linear(obs_dim, num_actions + 1)
'''


def test_network_factory_is_found_in_the_current_folder_as_env_modules_are(
        tmp_path, monkeypatch, capsys):
    """``--network module:function`` looks in the current folder (as ``--env module:ID``
    does), and a factory with one output too many is one clear error before any folder is
    made, naming the shape it must return (it was 'actions must be 0 or 1, got 2' from the
    env, after the run folder was made)."""
    _register_chain()
    (tmp_path / "semigrad_test_nets_here.py").write_text(NETS)
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--network", "semigrad_test_nets_here:one_too_many",
                 "--run-dir", "bad", *TINY]) == 2
    err = capsys.readouterr().err
    assert "network: semigrad_test_nets_here:one_too_many maps TestChain-v0 observations " \
           "(2, 5) to (2, 3); it must return Q-values of shape (batch, 2)" in err
    assert not (tmp_path / "bad").exists()
    assert main(["train", "--network", "semigrad_test_nets_here:good", "--run-dir", "good",
                 *TINY]) == 0
    assert (tmp_path / "good" / "summary.json").exists()


def test_a_run_that_fails_at_its_start_leaves_a_reusable_folder(tmp_path, monkeypatch):
    """A failure before the first checkpoint leaves no half-made run: the next run into the
    same folder starts (it was neither reusable nor resumable)."""
    from chain_env import ChainEnv
    from semigrad import envs
    from semigrad.algos import dqn

    class Broken(ChainEnv):
        def step(self, actions):
            if self.steps_done >= 30:
                raise RuntimeError("the simulator crashed")
            return super().step(actions)

    envs.register("TestChainBroken-v0",
                  lambda **kw: Broken(env_id="TestChainBroken-v0", **kw))
    cfg = dqn.DQNConfig(env="TestChainBroken-v0", steps=600, eval_every=300,
                        learning_starts=100, hidden=(8,), tensorboard=True, device="cpu")
    for seeds in (None, [0, 1]):
        run_dir = tmp_path / f"run{seeds}"
        with pytest.raises(RuntimeError, match="simulator crashed"):
            dqn.train(cfg, run_dir, seeds=seeds, progress=False)
        assert {p.name for p in run_dir.iterdir()} <= {".lock"}
        from dataclasses import replace
        done = dqn.train(replace(cfg, env="TestChain-v0"), run_dir, seeds=seeds,
                         progress=False)
        assert done["status"] == "finished"


def test_a_folder_holding_another_run_is_refused_and_kept(tmp_path):
    """The clean-up above never touches a run that was there before."""
    from semigrad.algos import dqn

    _register_chain()
    cfg = dqn.DQNConfig(env="TestChain-v0", steps=600, eval_every=300, learning_starts=100,
                        hidden=(8,), tensorboard=False, device="cpu")
    dqn.train(cfg, tmp_path, progress=False, stop_after=300)
    before = {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()}
    with pytest.raises(FileExistsError, match="already holds a run"):
        dqn.train(cfg, tmp_path, progress=False)
    assert {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()} == before


def test_a_loaded_agent_acts_on_one_observation_or_a_batch(tmp_path):
    """``load_agent(...).act(obs)`` on one 1-D observation (as SB3's ``predict`` takes it) was
    an IndexError; it is the batch's answer for that row, as a tensor, a NumPy array or a
    list."""
    import numpy as np
    import torch

    from semigrad.algos import dqn

    _register_chain()
    cfg = dqn.DQNConfig(env="TestChain-v0", steps=600, eval_every=300, learning_starts=100,
                        hidden=(8,), tensorboard=False, device="cpu")
    dqn.train(cfg, tmp_path, progress=False)
    agent = dqn.load_agent(tmp_path, "last")
    batch = torch.eye(5)
    q, actions = agent.q_values(batch), agent.act(batch)
    assert q.shape == (5, 2) and actions.shape == (5,)
    for i in range(5):
        for one in (batch[i], batch[i].numpy(), batch[i].tolist(), np.eye(5)[i]):
            assert agent.act(one).shape == ()
            # a batch of one runs another matmul kernel than a batch of five: the same
            # values to a few float32 ulps, not bit for bit
            torch.testing.assert_close(agent.q_values(one), q[i], rtol=1e-6, atol=1e-6)
            assert agent.act(one).item() == agent.q_values(one).argmax().item()
        assert abs(q[i, 0] - q[i, 1]) < 1e-4 or agent.act(batch[i]).item() == actions[i].item()
    with pytest.raises(ValueError, match=r"one observation \(obs_dim,\) or a batch"):
        agent.act(torch.zeros(2, 1, 5))


def _tiny_seeds_run(tmp_path):
    _register_chain()
    run_dir = tmp_path / "many"
    assert main(["train", "--seeds", "0,1", "--run-dir", str(run_dir), *TINY]) == 0
    return run_dir


def test_plot_reads_a_seeds_run_and_says_no_resume_for_its_own_folder(tmp_path, capsys):
    """`plot` on a --seeds folder draws each seed (it asked 'is this a semigrad train run?');
    an output folder that holds a plot is refused without suggesting --resume (plot has
    none)."""
    import json

    run_dir = _tiny_seeds_run(tmp_path)
    out = tmp_path / "plot"
    assert main(["plot", str(run_dir), "--run-dir", str(out)]) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["runs"] == [str(run_dir)]
    assert (out / "curves.png").stat().st_size > 1000
    capsys.readouterr()
    assert main(["plot", str(run_dir), "--run-dir", str(out)]) == 2
    err = capsys.readouterr().err
    assert "already holds a finished run" in err and "--resume" not in err


def test_plot_of_a_folder_that_is_no_run_says_what_it_reads(tmp_path, capsys):
    (tmp_path / "x").mkdir()
    assert main(["plot", str(tmp_path / "x"), "--run-dir", str(tmp_path / "p")]) == 2
    err = capsys.readouterr().err
    assert "no metrics.csv, nor a --seeds run's seedK/ folders or a sweep's trials/" in err


def test_resuming_one_seed_of_a_seeds_run_points_to_the_top_folder(tmp_path, capsys):
    run_dir = _tiny_seeds_run(tmp_path)
    capsys.readouterr()
    assert main(["train", "--resume", str(run_dir / "seed1")]) == 2
    err = capsys.readouterr().err
    assert "one seed of a --seeds run" in err and f"--resume {run_dir}" in err


def test_eval_of_a_folder_with_a_foreign_config_names_no_none(tmp_path, capsys):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "config.json").write_text("{}")
    assert main(["eval", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "None" not in err and "names no semigrad command" in err


def test_a_full_disk_names_the_file(tmp_path, monkeypatch, capsys):
    """ENOSPC arrives without a file name (at fsync or a buffered write): the error names
    the file being written, and the file that was there is kept."""
    import errno
    import os

    assert main(["grad", "--run-dir", str(tmp_path / "g")]) == 0
    capsys.readouterr()

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)
    assert main(["grad", "--run-dir", str(tmp_path / "h")]) == 2
    err = capsys.readouterr().err
    assert str(tmp_path / "h" / "config.json") in err and "No space left on device" in err
    assert "files written before are kept" in err


def test_eval_gif_that_cannot_be_written_fails_before_the_episodes(tmp_path, monkeypatch,
                                                                    capsys):
    import errno
    import os

    from semigrad import policies

    run_dir = tmp_path / "run"
    assert main(["train", "--algo", "dqn", "--run-dir", str(run_dir), *TINY, "--env",
                 "CartPole-v1"]) == 0
    played = []
    monkeypatch.setattr(policies, "evaluate", lambda *a, **k: played.append(a))

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)
    gif = tmp_path / "a.gif"
    capsys.readouterr()
    assert main(["eval", str(run_dir), "--gif", str(gif), "--episodes", "50"]) == 2
    assert played == []  # no episode played before the GIF failed
    assert str(gif) in capsys.readouterr().err and not gif.exists()
