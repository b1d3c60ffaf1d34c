"""DQN on real pixel envs at a small scale: Atari frames kept once in the replay, two seeds at
once with the Nature network, an exact resume; MinAtar with its preset's network."""

import json

import pytest
import torch

from semigrad import trainer
from semigrad.algos import dqn
from semigrad.buffers import FrameStackReplay
from semigrad.run import read_metrics

pytest.importorskip("ale_py")

TINY = dict(steps=300, buffer_size=400, batch_size=8, learning_starts=100, eval_every=150,
            eval_episodes=1, log_every=50, train_freq=2, target_update_interval=20,
            tensorboard=False, device="cpu")


def _strip(rows):
    return [{k: v for k, v in r.items() if k not in ("wall_s", "train_s")} for r in rows]


def test_atari_dqn_keeps_frames_once_trains_two_seeds_and_resumes_exactly(tmp_path,
                                                                          monkeypatch):
    # short evaluation games: Pong's greedy episodes would run for thousands of steps
    from semigrad.envs import atari

    real = atari.AtariEnv.__init__

    def short(self, *args, **kw):
        real(self, *args, **{**kw, "max_episode_frames": 400})

    monkeypatch.setattr(atari.AtariEnv, "__init__", short)
    cfg = dqn.preset("atari", env="ALE/Pong-v5", **TINY)
    st = dqn.init(cfg, [0, 1], torch.device("cpu"))
    assert isinstance(st.replay.buffer, FrameStackReplay)
    assert st.replay.buffer.frames.shape == (2 * 400, 84 * 84)  # one frame per transition
    full = dqn.train(cfg, tmp_path / "full", seeds=[0, 1], progress=False)
    part = dqn.train(cfg, tmp_path / "part", seeds=[0, 1], progress=False, stop_after=200)
    assert part["status"] == "interrupted"
    resumed = dqn.train(cfg, tmp_path / "part", seeds=[0, 1], progress=False, resume=True)
    assert [s["final_eval_return"] for s in full["per_seed"]] == \
        [s["final_eval_return"] for s in resumed["per_seed"]]
    for s in (0, 1):
        assert _strip(read_metrics(tmp_path / "full" / f"seed{s}")) == \
            _strip(read_metrics(tmp_path / "part" / f"seed{s}"))
    a, b = (trainer.load_checkpoint(tmp_path / d / "checkpoint_last.pt") for d in ("full", "part"))
    assert all(torch.equal(x, y) for x, y in zip(a["online"], b["online"], strict=True))
    summary = json.loads((tmp_path / "full" / "seed0" / "summary.json").read_text())
    assert summary["env_steps"] == 300 and -21 <= summary["final_eval_return"] <= 21


def test_minatar_preset_trains_with_its_network(tmp_path):
    pytest.importorskip("minatar")
    cfg = dqn.preset("minatar-breakout", **TINY)
    total = dqn.train(cfg, tmp_path, seeds=[0, 1], progress=False)
    assert total["status"] == "finished" and len(total["per_seed"]) == 2
    agent = dqn.load_agent(tmp_path / "seed0", "last")
    assert type(agent.net).__name__ == "ConvQNetwork"
    assert agent.q_values(torch.zeros(3, 400, dtype=torch.uint8)).shape == (3, 6)


def test_eval_gif_of_a_pixel_agent_shows_the_game(tmp_path):
    """``semigrad eval --gif`` on a MinAtar run: frames are the env's rendered grid (160 x 160,
    not the 10 x 10 x C observation), one per step, cut at ``--gif-steps``."""
    pytest.importorskip("minatar")
    from PIL import Image

    from semigrad.cli import main

    cfg = dqn.preset("minatar-breakout", **TINY)
    dqn.train(cfg, tmp_path / "run", progress=False)
    gif = tmp_path / "breakout.gif"
    assert main(["eval", str(tmp_path / "run"), "--episodes", "1", "--gif", str(gif),
                 "--gif-steps", "40", "--run-dir", str(tmp_path / "eval"),
                 "--device", "cpu"]) == 0
    summary = json.loads((tmp_path / "eval" / "summary.json").read_text())
    with Image.open(gif) as image:
        assert image.size == (160, 160)
        assert image.n_frames >= 2
        assert image.info["duration"] == 100  # MinAtar's 10 steps a second
        frames = image.n_frames
    steps = summary["gif_steps"]
    assert 1 <= steps <= 40
    # a frame before every step (the ball moves every step, so no two frames are merged); an
    # episode that ended shows no frame of the next one
    assert frames == steps + (0 if summary["gif_episode_finished"] else 1)
