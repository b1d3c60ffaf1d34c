"""PQN on Atari at a tiny scale: the `atari` preset (purejaxql's Atari config) trains from the
command line and from Python with the Nature network and LayerNorm, and resumes exactly; and
ale-py's AtariVectorEnv, as benchmarks/pqn_atari.py configures it, preprocesses frames as
semigrad's AtariEnv does (the benchmark's claim that the two do the same work)."""

import json

import numpy as np
import pytest
import torch

from semigrad import trainer
from semigrad.algos import pqn
from semigrad.nets import ChannelLayerNorm
from semigrad.run import read_metrics

pytest.importorskip("ale_py")

# 2 envs x 8 steps = 16 agent steps an iteration, 1 epoch of 2 minibatches of 8
TINY = dict(steps=64, num_envs=2, rollout=8, epochs=1, minibatches=2, eval_every=32,
            eval_episodes=1, log_every=16, tensorboard=False, device="cpu")


@pytest.fixture
def short_games(monkeypatch):
    """Games of 400 frames (100 agent steps): Pong's greedy evaluation games would otherwise
    run for thousands of steps."""
    from semigrad.envs import atari

    real = atari.AtariEnv.__init__

    def short(self, *args, **kw):
        real(self, *args, **{**kw, "max_episode_frames": 400})

    monkeypatch.setattr(atari.AtariEnv, "__init__", short)


def _strip(rows):
    return [{k: v for k, v in r.items() if k not in ("wall_s", "train_s")} for r in rows]


def test_the_preset_is_purejaxqls_atari_config():
    cfg = pqn.preset("atari")
    assert (cfg.env, cfg.network, cfg.layer_norm) == ("ALE/Pong-v5", "nature", True)
    assert (cfg.num_envs, cfg.rollout, cfg.epochs, cfg.minibatches) == (128, 32, 2, 32)
    assert (cfg.q_lambda, cfg.gamma, cfg.alpha, cfg.alpha_end, cfg.optimizer) == \
        (0.65, 0.99, 2.5e-4, None, "radam")
    assert (cfg.epsilon_start, cfg.epsilon_end) == (1.0, 0.001)
    assert cfg.epsilon_fraction * cfg.steps == 5_000_000 and cfg.steps == 50_000_000
    assert pqn.preset_for_env("ALE/Pong-v5") == "atari"
    # the network: Nature's convolutions and 512 units, each normalised before its ReLU
    st = pqn.init(pqn.preset("atari", **TINY), [0], torch.device("cpu"))
    assert isinstance(st.optimizer, torch.optim.RAdam)
    template = pqn.make_network(pqn.preset("atari", **TINY), st.env)
    norms = [m for m in template.modules() if isinstance(m, torch.nn.LayerNorm)]
    assert [type(m) is ChannelLayerNorm for m in norms] == [True, True, True, False]
    assert template(torch.zeros(3, 4 * 84 * 84, dtype=torch.uint8)).shape == (3, 6)
    st.env.close()


def test_trains_from_python_and_resumes_exactly(tmp_path, short_games):
    """Two seeds stopped half-way and resumed: the metric rows, evaluations, weights and
    RAdam's moments of the uninterrupted run, bit for bit (the emulators are saved exactly)."""
    cfg = pqn.preset("atari", **TINY)
    full = pqn.train(cfg, tmp_path / "full", seeds=[0, 1], progress=False)
    part = pqn.train(cfg, tmp_path / "part", seeds=[0, 1], progress=False, stop_after=32)
    assert part["status"] == "interrupted"
    resumed = pqn.train(cfg, tmp_path / "part", seeds=[0, 1], progress=False, resume=True)
    assert resumed["status"] == "finished"
    assert full["per_seed"] == [{**p, "run_dir": p["run_dir"].replace("part", "full")}
                                for p in resumed["per_seed"]]
    for s in (0, 1):
        rows = read_metrics(tmp_path / "full" / f"seed{s}")
        assert [r["step"] for r in rows] == [16, 32, 48, 64]
        assert _strip(rows) == _strip(read_metrics(tmp_path / "part" / f"seed{s}"))
    a, b = (trainer.load_checkpoint(tmp_path / d / "checkpoint_last.pt") for d in ("full", "part"))
    assert all(torch.equal(x, y) for x, y in zip(a["online"], b["online"], strict=True))
    for x, y in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values(),
                    strict=True):
        assert all(torch.equal(x[n], y[n]) for n in x)
    # the two seeds are two agents: other weights
    agents = [pqn.load_agent(tmp_path / "full" / f"seed{s}", "last").net for s in (0, 1)]
    assert not torch.equal(*(next(net.parameters()) for net in agents))
    for s in (0, 1):
        summary = json.loads((tmp_path / "full" / f"seed{s}" / "summary.json").read_text())
        assert summary["env_steps"] == 64 and -21 <= summary["final_eval_return"] <= 21


def test_the_command_line_trains_the_atari_preset(tmp_path, short_games, capsys):
    from semigrad.cli import main

    run_dir = tmp_path / "pong"
    flags = ["--steps", "32", "--num-envs", "2", "--rollout", "8", "--epochs", "1",
             "--minibatches", "2", "--eval-every", "32", "--eval-episodes", "1",
             "--no-tensorboard", "--no-progress", "--device", "cpu"]
    assert main(["train", "--algo", "pqn", "--preset", "atari", "--env", "ALE/Pong-v5",
                 *flags, "--run-dir", str(run_dir)]) == 0
    config = json.loads((run_dir / "config.json").read_text())
    assert (config["algo"], config["network"], config["optimizer"], config["q_lambda"]) == \
        ("pqn", "nature", "radam", 0.65)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["env_steps"] == 32 and summary["gradient_steps"] == 4
    agent = pqn.load_agent(run_dir, "last")
    assert agent.q_values(torch.zeros(2, 4 * 84 * 84, dtype=torch.uint8)).shape == (2, 6)
    # another game through --env; a flat-observation env is one clear error
    assert main(["train", "--algo", "pqn", "--preset", "atari", "--env", "ALE/Breakout-v5",
                 *flags, "--run-dir", str(tmp_path / "breakout")]) == 0
    assert json.loads((tmp_path / "breakout" / "config.json").read_text())["env"] == \
        "ALE/Breakout-v5"
    capsys.readouterr()
    assert main(["train", "--algo", "pqn", "--preset", "atari", "--env", "CartPole-v1",
                 *flags, "--run-dir", str(tmp_path / "bad")]) == 2
    assert "network: nature takes frames" in capsys.readouterr().err


@pytest.mark.parametrize("game", ["Pong", "Breakout"])
def test_ale_vector_env_as_benchmarked_preprocesses_as_atari_env(game, monkeypatch):
    """With no-op starts off (the two draw them differently), games of 400 frames and the same
    actions: the same newest frame every step, the same whole stack but in a game's first 3
    steps (ale-py pads a new game's stack with black frames, semigrad repeats its first
    frame), the same clipped rewards, the same terminations (life losses, Breakout) and
    truncations (with no no-ops both count a game's frames from its start)."""
    from pathlib import Path

    from semigrad.envs.atari import AtariEnv

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import pqn_atari

    n, steps = 2, 250
    ours = AtariEnv(game, n, device="cpu", seed=0, noop_max=0, max_episode_frames=400)
    step, close, num_actions = pqn_atari.ale_vector_env(game, n, seed=0, threads=1,
                                                        noop_max=0, max_frames=400)
    assert num_actions == ours.num_actions
    try:
        ours.reset()
        rng = np.random.default_rng(0)
        since_start = np.zeros(n, dtype=np.int64)
        ends = np.zeros(2, dtype=np.int64)  # terminations, truncations
        for _ in range(steps):
            a = rng.integers(0, num_actions, n)
            obs, reward, terminated, truncated, info = ours.step(torch.from_numpy(a))
            obs_v, reward_v, terminated_v, truncated_v, info_v = step(a)
            obs = obs.view(n, 4, 84, 84).numpy()
            # steps into the game each stack shows (0: a new game began in this step)
            since_start += 1
            since_start[~np.isnan(info["episode_return"].numpy())] = 0
            assert np.array_equal(terminated.numpy(), terminated_v)
            assert np.array_equal(truncated.numpy(), truncated_v)
            assert np.array_equal(reward.numpy(), np.sign(reward_v).astype(np.float32))
            assert np.array_equal(obs[:, -1], obs_v[:, -1])
            full = since_start >= 3
            assert np.array_equal(obs[full], obs_v[full])
            ends += [int(terminated.sum()), int(truncated.sum())]
        assert ends[1] > 0 and (ends[0] > 0 or game == "Pong")  # the test saw episode ends
    finally:
        close()
        ours.close()
