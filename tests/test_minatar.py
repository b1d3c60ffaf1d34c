"""MinAtarEnv against the minatar package run directly, same seeds and actions."""

import io
import math
import subprocess
import sys

import numpy as np
import pytest
import torch

minatar = pytest.importorskip("minatar")

from semigrad.envs.minatar import CHANNELS, GAMES, MinAtarEnv, register_minatar  # noqa: E402


def _flat(state: np.ndarray) -> np.ndarray:
    """The package's (10, 10, C) bool state -> the env's flat (C * 100,) uint8 row."""
    return state.transpose(2, 0, 1).astype(np.uint8).reshape(-1)


def _reference(game, seed, actions, max_steps=None, **kwargs):
    """Run ``minatar.Environment`` i (seeded seed + i) on column i of ``actions (T, N)``, with
    reset on terminal or after ``max_steps`` steps; per step the obs, final obs, reward,
    terminated and truncated flags, shapes (T, N, ...)."""
    steps, n = actions.shape
    obs = np.zeros((steps, n, CHANNELS[game] * 100), np.uint8)
    final = np.zeros_like(obs)
    reward = np.zeros((steps, n), np.float32)
    term = np.zeros((steps, n), bool)
    trunc = np.zeros((steps, n), bool)
    first = []
    for i in range(n):
        env = minatar.Environment(game, **kwargs)
        env.seed(seed + i)
        env.reset()
        first.append(_flat(env.state()))
        elapsed = 0
        for t in range(steps):
            reward[t, i], term[t, i] = env.act(int(actions[t, i]))
            elapsed += 1
            final[t, i] = _flat(env.state())
            trunc[t, i] = max_steps is not None and elapsed >= max_steps
            if term[t, i] or trunc[t, i]:
                env.reset()
                elapsed = 0
            obs[t, i] = _flat(env.state())
    return np.stack(first), obs, final, reward, term, trunc


def _random_actions(steps, n, seed=0):
    return torch.randint(0, 6, (steps, n), generator=torch.Generator().manual_seed(seed))


def _run(env, actions):
    out = {k: [] for k in ("obs", "reward", "term", "trunc", "final", "ret", "len")}
    for a in actions:
        obs, reward, term, trunc, info = env.step(a.clone())
        for key, value in zip(out, (obs, reward, term, trunc, info["final_obs"],
                                    info["episode_return"], info["episode_length"]),
                              strict=True):
            out[key].append(value)
    return {k: torch.stack(v).numpy() for k, v in out.items()}


@pytest.mark.parametrize("game,max_steps", [("breakout", None), ("seaquest", None),
                                            ("asterix", None), ("space_invaders", None),
                                            ("breakout", 16)])
def test_matches_the_package(game, max_steps):
    n, steps, seed = 3, 300, 11
    actions = _random_actions(steps, n)
    env = MinAtarEnv(game, num_envs=n, device="cpu", seed=seed, max_episode_steps=max_steps)
    first = env.reset()
    got = _run(env, actions)
    ref_first, obs, final, reward, term, trunc = _reference(game, seed, actions.numpy(),
                                                            max_steps)
    np.testing.assert_array_equal(first.numpy(), ref_first)
    np.testing.assert_array_equal(got["obs"], obs)
    np.testing.assert_array_equal(got["final"], final)
    np.testing.assert_array_equal(got["reward"], reward)
    np.testing.assert_array_equal(got["term"], term)
    np.testing.assert_array_equal(got["trunc"], trunc)
    assert term.any(), "no episode ended: auto-reset untested"
    assert reward.sum() > 0
    done = term | trunc
    # where the episode goes on, final_obs is obs; where it ended, obs is a new episode's start
    np.testing.assert_array_equal(got["final"][~done], got["obs"][~done])
    assert (got["final"][done] != got["obs"][done]).any(axis=-1).all()
    # episode statistics: the sum of rewards and number of steps since the last reset
    for i in range(n):
        start, total = 0, 0.0
        for t in range(steps):
            total += reward[t, i]
            if done[t, i]:
                assert got["ret"][t, i] == total and got["len"][t, i] == t + 1 - start
                start, total = t + 1, 0.0
            else:
                assert math.isnan(got["ret"][t, i]) and got["len"][t, i] == 0
    if max_steps is not None:  # Breakout's random episodes last 6, 16 or 26 steps here
        assert (trunc & ~term).any() and (got["len"] <= max_steps).all()
        assert (trunc & term).any(), "no episode both ended and reached the limit"


def test_time_limit_truncates():
    # Freeway never ends before 2500 steps: every episode is cut by the limit
    env = MinAtarEnv("freeway", num_envs=2, device="cpu", seed=0, max_episode_steps=7)
    env.reset()
    for t in range(1, 22):
        obs, _, term, trunc, info = env.step(torch.zeros(2, dtype=torch.int64))
        assert not term.any()
        assert trunc.tolist() == [t % 7 == 0] * 2
        assert info["episode_length"].tolist() == ([7, 7] if t % 7 == 0 else [0, 0])
    assert MinAtarEnv("freeway", device="cpu").spec.max_episode_steps is None


@pytest.mark.parametrize("game", list(GAMES))
def test_shapes_and_dtypes(game):
    n = 4
    env = MinAtarEnv(game, num_envs=n, device="cpu", seed=0)
    c = CHANNELS[game]
    assert env.spec.id == GAMES[game] and env.spec.backend == "minatar"
    assert env.obs_dim == c * 100 and env.num_actions == 6
    assert env.spec.reward_threshold is None and env.spec.max_episode_steps is None
    assert env.obs_shape == (c, 10, 10) and env.obs_dtype == torch.uint8
    obs = env.reset()
    assert obs.dtype == torch.uint8 and obs.shape == (n, c * 100)
    assert obs.view(n, *env.obs_shape)[0].permute(1, 2, 0).numpy().astype(bool).tolist() \
        == env.games[0].state().tolist()
    obs, reward, term, trunc, info = env.step(torch.arange(n, dtype=torch.int64))
    assert obs.shape == info["final_obs"].shape == (n, c * 100)
    assert obs.dtype == info["final_obs"].dtype == torch.uint8
    assert set(obs.unique().tolist()) <= {0, 1}
    assert reward.dtype == torch.float32 and reward.shape == (n,)
    assert term.dtype == trunc.dtype == torch.bool and term.shape == trunc.shape == (n,)
    assert info["episode_return"].dtype == torch.float32
    assert info["episode_length"].dtype == torch.int64
    assert all(t.device.type == "cpu" for t in (obs, reward, term, trunc))


def test_bad_actions_raise_and_change_nothing():
    env = MinAtarEnv("breakout", num_envs=2, device="cpu", seed=0)
    with pytest.raises(ValueError, match="reset"):
        env.step(torch.zeros(2, dtype=torch.int64))
    env.reset()
    before = env.state_dict()
    for bad in (torch.tensor([6, 0]), torch.tensor([0, -1]), torch.zeros(2, dtype=torch.int32),
                torch.zeros(3, dtype=torch.int64), torch.zeros((2, 1), dtype=torch.int64),
                [0, 1]):
        with pytest.raises(ValueError, match="MinAtar/Breakout-v1.step: actions"):
            env.step(bad)
    assert env.state_dict()["games"] == before["games"]


def test_bad_arguments():
    with pytest.raises(ValueError, match="expected one of asterix"):
        MinAtarEnv("pong")
    with pytest.raises(ValueError, match="num_envs"):
        MinAtarEnv("breakout", num_envs=0)
    with pytest.raises(ValueError, match="seed"):
        MinAtarEnv("breakout", seed=-1)
    with pytest.raises(ValueError, match="max_episode_steps"):
        MinAtarEnv("breakout", max_episode_steps=0)


def test_missing_package_is_one_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "minatar", None)
    with pytest.raises(ValueError) as err:
        MinAtarEnv("breakout", device="cpu")
    assert str(err.value) == ("env 'MinAtar/Breakout-v1' needs the minatar package: "
                              "pip install 'semigrad[pixels]' (or: make install)")


@pytest.mark.parametrize("game,seed", [("seaquest", 3), ("space_invaders", None),
                                       ("asterix", 5)])
def test_state_dict_resumes_exactly(game, seed):
    n = 2
    env = MinAtarEnv(game, num_envs=n, device="cpu", seed=seed, max_episode_steps=60)
    env.reset()
    _run(env, _random_actions(80, n, seed=1))
    buffer = io.BytesIO()
    torch.save(env.state_dict(), buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)
    last_actions = [g.last_action for g in env.games]
    actions = _random_actions(200, n, seed=2)
    expected = _run(env, actions)
    other = MinAtarEnv(game, num_envs=n, device="cpu", seed=1000, max_episode_steps=60)
    other.load_state_dict(saved)
    assert other.state_dict()["games"] == saved["games"]  # same values, of the same types
    assert [g.last_action for g in other.games] == last_actions
    got = _run(other, actions)
    for key in expected:
        np.testing.assert_array_equal(got[key], expected[key])
    with pytest.raises(ValueError, match="saved env state"):
        MinAtarEnv(game, num_envs=n + 1, device="cpu").load_state_dict(saved)


def test_register_and_lazy_import():
    registered = {}
    register_minatar(lambda env_id, factory: registered.__setitem__(env_id, factory))
    assert sorted(registered) == sorted(GAMES.values())
    env = registered["MinAtar/SpaceInvaders-v1"](num_envs=2, device="cpu", seed=0)
    assert isinstance(env, MinAtarEnv) and env.game == "space_invaders" and env.num_envs == 2
    code = ("import sys, semigrad.envs.minatar; "
            "assert 'minatar' not in sys.modules, 'minatar imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_render_colours_each_cell_by_its_highest_channel():
    """``render`` is the package's own display: 16 x 16 pixels a cell, black where empty, else
    the cubehelix colour of the highest channel present (checked cell by cell)."""
    from matplotlib import colormaps

    env = MinAtarEnv("seaquest", num_envs=2, device="cpu", seed=1)
    env.reset()
    channels = CHANNELS["seaquest"]
    colours = colormaps["cubehelix"](np.linspace(0, 1, channels + 2)[1:-1])[:, :3]
    gen = torch.Generator().manual_seed(0)
    seen = set()
    for _ in range(30):
        env.step(torch.randint(0, 6, (2,), generator=gen))
        picture = env.render(1)
        assert picture.shape == (160, 160, 3) and picture.dtype == np.uint8
        grid = env.games[1].state()
        for y in range(10):
            for x in range(10):
                present = np.flatnonzero(grid[y, x])
                want = (np.zeros(3) if present.size == 0
                        else (colours[present[-1]] * 255).round())
                cell = picture[16 * y:16 * y + 16, 16 * x:16 * x + 16]
                assert (cell == want.astype(np.uint8)).all(), (y, x, present)
                seen.add(int(present[-1]) if present.size else -1)
    assert len(seen) >= 3  # empty cells and at least two kinds of object were drawn
    with pytest.raises(ValueError, match="index"):
        env.render(2)
