"""semigrad's torch CartPole-v1 against gymnasium's CartPoleEnv (the reference we did not write)."""

import itertools
import math

import gymnasium as gym
import numpy as np
import pytest
import torch

from semigrad import envs
from semigrad.envs.cartpole import RESERVE_REFRESH_STEPS, TorchCartPole

BALANCE = torch.tensor([0.05, 0.2, 1.0, 0.3], dtype=torch.float64)  # obs @ BALANCE > 0: push right


def mixed_policy(obs: torch.Tensor, gen: torch.Generator, num_balancing: int) -> torch.Tensor:
    """Envs ``< num_balancing`` balance the pole (5% random actions, episodes reach 500 steps),
    the next ``num_balancing`` balance with 40% random actions, the rest act at random."""
    n = obs.shape[0]
    greedy = (obs.to(torch.float64) @ BALANCE > 0).long()
    noise = torch.full((n,), 1.0, dtype=torch.float64)
    noise[:num_balancing] = 0.05
    noise[num_balancing:2 * num_balancing] = 0.4
    explore = torch.rand(n, generator=gen, dtype=torch.float64) < noise
    return torch.where(explore, torch.randint(0, 2, (n,), generator=gen), greedy)


@pytest.mark.parametrize("compiled", [True, False], ids=["compiled-loop", "tensor-ops"])
def test_parity_with_gymnasium_over_100k_steps(compiled):
    """From the same states and actions, gymnasium's CartPole-v1 and ours give the same next
    states (float64), rewards, terminated and truncated flags, time limit included; for both
    forms of the step."""
    num_envs, steps = 200, 520
    env = TorchCartPole(num_envs, device="cpu", seed=0, obs_dtype=torch.float64,
                        compiled=compiled)
    refs = [gym.make("CartPole-v1") for _ in range(num_envs)]
    for i, ref in enumerate(refs):
        ref.reset(seed=i)
    gen = torch.Generator().manual_seed(0)
    obs = env.reset()
    ref_next = np.empty((num_envs, 4))
    ref_reward = np.empty(num_envs, dtype=np.float32)
    ref_flags = np.empty((num_envs, 2), dtype=bool)
    max_diff, ends = 0.0, np.zeros(2, dtype=int)
    for _ in range(steps):
        states = env.state.numpy()
        actions = mixed_policy(obs, gen, num_balancing=40)
        obs, reward, terminated, truncated, info = env.step(actions)
        for i, (ref, action) in enumerate(zip(refs, actions.tolist(), strict=True)):
            ref.unwrapped.state = states[i].copy()  # the same state...
            _, ref_reward[i], te, tr, _ = ref.step(action)  # ...and the same action
            ref_next[i] = ref.unwrapped.state
            ref_flags[i] = te, tr
            if te or tr:
                ref.reset()
        np.testing.assert_allclose(info["final_obs"].numpy(), ref_next, rtol=0, atol=1e-6)
        max_diff = max(max_diff, float(np.abs(info["final_obs"].numpy() - ref_next).max()))
        np.testing.assert_array_equal(reward.numpy(), ref_reward)
        np.testing.assert_array_equal(terminated.numpy(), ref_flags[:, 0])
        np.testing.assert_array_equal(truncated.numpy(), ref_flags[:, 1])
        done = (terminated | truncated).numpy()
        # same-step reset: obs is the next state where the episode goes on, a fresh start elsewhere
        np.testing.assert_array_equal(obs.numpy()[~done], info["final_obs"].numpy()[~done])
        assert np.all(np.abs(obs.numpy()[done]) <= 0.05)
        ends += ref_flags.sum(0)
    assert num_envs * steps >= 100_000
    assert ends[0] > 1000 and ends[1] >= 40  # many terminations; time-limit truncations too
    assert max_diff < 1e-12  # in practice the two agree to rounding


@pytest.mark.parametrize("box", [None, (2.4, 2.5, 0.2, 2.5)])
def test_compiled_loop_and_tensor_ops_give_the_same_episodes(box):
    """The compiled CPU loop and the tensor operations: from the same state (synced every
    step: rounding differences would otherwise grow along a trajectory), the same next states
    to 1e-12, flags, episode statistics and next draws, over episodes that end both ways."""
    a, b = (TorchCartPole(64, device="cpu", seed=3, start_box=box, compiled=c)
            for c in (True, False))
    assert a._kernel is not None and b._kernel is None
    torch.testing.assert_close(a.reset(), b.reset(), rtol=0, atol=0)
    gen = torch.Generator().manual_seed(1)
    ends = torch.zeros(2, dtype=torch.int64)  # terminations, truncations
    for _ in range(600):
        actions = mixed_policy(a.state.to(torch.float32), gen, num_balancing=16)
        b.load_state_dict(a.state_dict())
        out_a, out_b = a.step(actions), b.step(actions)
        for x, y in zip((*out_a[:4], *out_a[4].values()), (*out_b[:4], *out_b[4].values()),
                        strict=True):
            assert x.dtype == y.dtype and x.shape == y.shape
            torch.testing.assert_close(x, y, rtol=0, atol=1e-6, equal_nan=True)
        torch.testing.assert_close(a.state, b.state, rtol=0, atol=1e-12)
        ends += torch.stack([out_a[2].sum(), out_a[3].sum()])
    assert ends[0] > 500 and (ends[1] > 0 or box)  # balancing envs reach the time limit


def test_compiled_loop_sine_and_cosine_are_within_an_ulp_of_exact():
    """Polynomials inside the pole's range (|theta| < 0.25), libm beyond: within 1 ulp of the
    correctly rounded value (mpmath at 80 bits, rounded to float64), not of NumPy's sine,
    whose SIMD forms are themselves up to an ulp off on some CPUs. The error argument: the
    kernel is within 0.59 ulp of the exact value here and the reference within 0.5, so the
    two float64 numbers are at most 1 ulp apart."""
    import mpmath

    from semigrad.envs.cartpole_kernel import SMALL_ANGLE, sin_cos

    angles = np.concatenate([np.linspace(-0.3, 0.3, 50_001), [SMALL_ANGLE, -SMALL_ANGLE, 3.0]])
    got = np.array([sin_cos(t) for t in angles])
    with mpmath.workprec(80):
        exact = np.array([(float(mpmath.sin(t)), float(mpmath.cos(t))) for t in angles])
    ulps = np.abs(got - exact) / np.spacing(np.abs(exact))
    assert ulps.max() <= 1.0, (angles[ulps.argmax(0)], ulps.max(0))


def test_compiled_loop_rejects_bad_actions_without_changing_anything():
    env = TorchCartPole(3, device="cpu", seed=0)
    env.reset()
    before = env.state_dict()
    with pytest.raises(ValueError, match=r"0 or 1, got 2 at index 1"):
        env.step(torch.tensor([0, 2, 1]))
    after = env.state_dict()
    for key in ("state", "reserve", "elapsed", "generator"):
        assert torch.equal(before[key], after[key]), key
    with pytest.raises(ValueError, match="compiled CPU step runs on the CPU with a float64 state"):
        TorchCartPole(2, device="cpu", dtype=torch.float32, compiled=True)


def test_without_the_compiled_step_the_env_falls_back_to_tensor_ops(monkeypatch):
    """numba missing (or unable to compile here): a warning and the tensor form, which gives
    the same episodes; asked for explicitly, a clear error."""
    import sys

    monkeypatch.setitem(sys.modules, "semigrad.envs.cartpole_kernel", None)  # import fails
    with pytest.warns(RuntimeWarning, match="compiled CPU step is unavailable"):
        env = TorchCartPole(4, device="cpu", seed=0)
    assert env._kernel is None
    monkeypatch.undo()
    reference = TorchCartPole(4, device="cpu", seed=0)
    torch.testing.assert_close(env.reset(), reference.reset(), rtol=0, atol=0)
    actions = torch.tensor([0, 1, 1, 0])
    torch.testing.assert_close(env.step(actions)[0], reference.step(actions)[0], rtol=0,
                               atol=1e-6)
    monkeypatch.setitem(sys.modules, "semigrad.envs.cartpole_kernel", None)
    with pytest.raises(RuntimeError, match="install numba, or pass compiled=False"):
        TorchCartPole(4, device="cpu", compiled=True)


def test_float32_observations_are_gymnasiums():
    """Default dtypes: float32 observations as gymnasium returns them, float64 state inside."""
    num_envs = 8
    env = envs.make("CartPole-v1", num_envs=num_envs, device="cpu", seed=3)
    refs = [gym.make("CartPole-v1") for _ in range(num_envs)]
    obs = env.reset()
    assert obs.dtype == torch.float32 and env.state.dtype == torch.float64
    rng = np.random.default_rng(0)
    for _ in range(200):
        states = env.state.numpy()
        actions = rng.integers(0, 2, num_envs)
        obs, reward, terminated, truncated, info = env.step(torch.as_tensor(actions))
        assert info["final_obs"].dtype == torch.float32 and reward.dtype == torch.float32
        for i, ref in enumerate(refs):
            ref.reset()
            ref.unwrapped.state = states[i].copy()
            ref_obs = ref.step(int(actions[i]))[0]
            np.testing.assert_allclose(info["final_obs"][i].numpy(), ref_obs, rtol=0, atol=1e-6)


def test_no_episode_from_the_initial_box_ends_before_8_steps():
    """The reserve of initial states is fully redrawn every RESERVE_REFRESH_STEPS steps; this is
    safe because no episode started in [-0.05, 0.05]^4 ends sooner than 8 steps: exhaustively,
    every corner of the box and random points inside under all 2^8 action sequences."""
    corners = torch.tensor(list(itertools.product([-0.05, 0.05], repeat=4)), dtype=torch.float64)
    inside = torch.rand(200, 4, generator=torch.Generator().manual_seed(0),
                        dtype=torch.float64) * 0.1 - 0.05
    starts = torch.cat([corners, inside])
    sequences = torch.tensor(list(itertools.product([0, 1], repeat=8)))
    env = TorchCartPole(len(starts) * len(sequences), device="cpu", seed=0)
    env.set_state(starts.repeat_interleave(len(sequences), 0))
    ended = []
    for t in range(8):
        ended.append(env.step(sequences[:, t].repeat(len(starts)))[2].any().item())
    assert not any(ended[:7]) and ended[7]  # 8 is the exact minimum
    assert RESERVE_REFRESH_STEPS <= 8


@pytest.mark.parametrize("box", [None, (2.4, 2.5, 0.2, 2.5)])
def test_initial_states_are_fresh_uniform_draws(box):
    """Every start is a new uniform draw from the box, also from a wide ``start_box`` whose
    episodes can end after one step (there the whole reserve is redrawn every step)."""
    env = TorchCartPole(64, device="cpu", seed=1, start_box=box)
    half = torch.tensor(box or (0.05,) * 4, dtype=torch.float64)
    starts = [env.reset()]
    actions_gen = torch.Generator().manual_seed(0)
    for _ in range(3000):
        obs, _, terminated, truncated, _ = env.step(
            torch.randint(0, 2, (64,), generator=actions_gen))
        starts.append(obs[terminated | truncated])
    starts = torch.cat(starts).to(torch.float64)
    assert len(starts) > 5000
    assert torch.all(starts >= -half - 1e-7) and torch.all(starts < half + 1e-7)
    assert len(torch.unique(starts, dim=0)) == len(starts)  # never the same start twice
    # uniform on [-h, h): mean 0, standard deviation 2 h / sqrt(12), per component
    sigma = 2 * half / math.sqrt(12)
    assert torch.all(starts.mean(0).abs() < 5 * sigma / math.sqrt(len(starts)))
    torch.testing.assert_close(starts.std(0), sigma, rtol=0.03, atol=0)


@pytest.mark.parametrize("box, problem", [
    ((1, 1), "4 positive half-widths"),
    ((1, 0, 0.1, 1), "4 positive half-widths"),
    ((3, 1, 0.1, 1), "must be <= 2.4"),
    ((1, 1, 0.5, 1), "12 degrees"),
])
def test_bad_start_box_is_one_clear_error(box, problem):
    with pytest.raises(ValueError, match=problem):
        TorchCartPole(2, device="cpu", start_box=box)


def test_seed_makes_episodes_reproducible():
    def rollout(seed: int) -> list[torch.Tensor]:
        env = TorchCartPole(16, device="cpu", seed=seed)
        out = [env.reset()]
        gen = torch.Generator().manual_seed(0)
        for _ in range(300):
            obs, reward, terminated, truncated, info = env.step(
                torch.randint(0, 2, (16,), generator=gen))
            out += [obs, reward, terminated, truncated, *info.values()]
        return out

    first, again, other = rollout(5), rollout(5), rollout(6)
    for a, b in zip(first, again, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0, equal_nan=True)
    assert not torch.equal(first[0], other[0])
    assert envs.make("CartPole-v1", 4, device="cpu", seed=0).reset().equal(
        envs.make("CartPole-v1", 4, device="cpu", seed=0).reset())


def test_episode_statistics_count_steps_since_reset():
    env = TorchCartPole(16, device="cpu", seed=0)
    env.reset()
    gen = torch.Generator().manual_seed(0)
    lengths = torch.zeros(16, dtype=torch.int64)
    finished = 0
    for _ in range(400):
        _, reward, terminated, truncated, info = env.step(
            torch.randint(0, 2, (16,), generator=gen))
        lengths += 1
        done = terminated | truncated
        assert torch.equal(reward, torch.ones(16))
        assert torch.equal(info["episode_length"], torch.where(done, lengths, 0))
        assert torch.equal(info["episode_return"].isnan(), ~done)
        assert torch.equal(info["episode_return"][done], lengths[done].float())
        finished += int(done.sum())
        lengths = torch.where(done, 0, lengths)
    assert finished > 100


def test_set_state_and_truncation_at_500_steps():
    env = TorchCartPole(2, device="cpu", seed=0)
    env.reset()
    start = torch.tensor([[0.1, -0.2, 0.03, 0.1], [0.0, 0.0, 0.0, 0.0]], dtype=torch.float64)
    env.set_state(start, elapsed_steps=499)
    assert torch.equal(env.state, start)
    obs, reward, terminated, truncated, info = env.step(torch.tensor([0, 1]))
    assert truncated.all() and not terminated.any()
    assert info["episode_length"].tolist() == [500, 500]
    assert info["episode_return"].tolist() == [500.0, 500.0]
    ref = gym.make("CartPole-v1").unwrapped
    for i, action in enumerate([0, 1]):
        ref.reset()
        ref.state = start[i].numpy().copy()
        np.testing.assert_allclose(info["final_obs"][i].numpy(), ref.step(action)[0], atol=1e-7)
    assert (obs.abs() <= 0.05).all()  # already the first observation of the next episode
    env.set_state(start)  # elapsed_steps=0: the episode goes on
    assert not env.step(torch.tensor([0, 1]))[3].any()


def test_device_dtype_and_errors():
    env = TorchCartPole(2, device="cpu", seed=0, dtype=torch.float32)
    with pytest.raises(ValueError, match="reset"):
        env.step(torch.tensor([0, 1]))
    obs = env.reset()
    out = env.step(torch.tensor([0, 1]))
    tensors = [obs, *out[:4], *out[4].values()]
    assert all(t.device == torch.device("cpu") for t in tensors)
    assert env.state.dtype == torch.float32 and out[2].dtype == torch.bool
    with pytest.raises(ValueError, match=r"int64 tensor of shape \(2,\)"):
        env.step(torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match=r"int64 tensor of shape \(2,\)"):
        env.step(torch.tensor([0, 1, 1]))
    with pytest.raises(ValueError, match="0 or 1"):
        env.step(torch.tensor([0, 2]))
    with pytest.raises(ValueError, match=r"\(2, 4\)"):
        env.set_state(torch.zeros(3, 4))
    with pytest.raises(ValueError, match="num_envs"):
        TorchCartPole(0, device="cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA"):
            TorchCartPole(2, device="cuda")


def test_make_picks_torch_cartpole_and_prefix_forces_gymnasium():
    env = envs.make("CartPole-v1", num_envs=2, device="cpu", seed=0)
    assert isinstance(env, TorchCartPole) and env.spec.backend == "torch"
    assert (env.obs_dim, env.num_actions, env.spec.max_episode_steps) == (4, 2, 500)
    assert env.spec.reward_threshold == 475.0
    forced = envs.make("gymnasium:CartPole-v1", num_envs=2, device="cpu", seed=0)
    assert isinstance(forced, envs.GymVectorEnv) and forced.spec.backend == "gymnasium"
    assert forced.spec.id == env.spec.id
