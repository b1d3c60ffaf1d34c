"""semigrad's torch Acrobot-v1 and MountainCar-v0 against gymnasium's (the reference we did not
write), in both forms of the step: the compiled CPU loop and the tensor operations."""

import copy
import io
import itertools
import math
import sys

import gymnasium as gym
import numpy as np
import pytest
import torch

from semigrad import envs
from semigrad.envs import acrobot, mountain_car
from semigrad.envs.acrobot import TorchAcrobot
from semigrad.envs.mountain_car import TorchMountainCar

ACROBOT, MOUNTAIN_CAR = "Acrobot-v1", "MountainCar-v0"
CLASSES = {ACROBOT: TorchAcrobot, MOUNTAIN_CAR: TorchMountainCar}
FORMS = pytest.mark.parametrize("compiled", [True, False], ids=["compiled-loop", "tensor-ops"])
BOTH = pytest.mark.parametrize("env_id", [ACROBOT, MOUNTAIN_CAR])
# state-space extents: Acrobot (theta1, theta2, dtheta1, dtheta2), MountainCar (x, v)
WIDE = {ACROBOT: ((-math.pi, -math.pi, -4 * math.pi, -9 * math.pi),
                  (math.pi, math.pi, 4 * math.pi, 9 * math.pi)),
        MOUNTAIN_CAR: ((-1.2, -0.07), (0.6, 0.07))}
# where a new episode starts
START = {ACROBOT: ((-0.1,) * 4, (0.1,) * 4), MOUNTAIN_CAR: ((-0.6, 0.0), (-0.4, 0.0))}
# float64 observations computed from the same state by two libraries' sine and cosine
OBS_ATOL = 4 * np.finfo(np.float64).eps
# float32 roundings of float64 values that agree to 1e-12 differ by at most 1e-12 and one
# float32 ulp, which is <= 2**-23 of the value (Acrobot's velocities reach 9 pi = 28.3, where an
# ulp is 1.9e-6: an absolute 1e-6 fails whenever the two round to neighbours)
F32 = dict(rtol=2.0**-23, atol=1e-12)


def gym_obs(env_id: str, state: np.ndarray) -> np.ndarray:
    """gymnasium's observation of ``state (N, 4 | 2)``, in float64 (gymnasium rounds it to
    float32)."""
    if env_id == ACROBOT:
        s = state
        return np.stack([np.cos(s[:, 0]), np.sin(s[:, 0]), np.cos(s[:, 1]), np.sin(s[:, 1]),
                         s[:, 2], s[:, 3]], axis=1)
    return state.copy()


def policy(env_id: str, state: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """The first half of the envs pump energy (Acrobot: torque along dtheta2; MountainCar: push
    along the velocity), with 20% random actions, so that their episodes reach the goal; the
    rest act at random (Acrobot: some reach the goal, most the time limit; MountainCar: the time
    limit)."""
    n = state.shape[0]
    velocity = state[:, 3] if env_id == ACROBOT else state[:, 1]
    pump = torch.where(velocity >= 0, 2, 0)
    random = torch.randint(0, 3, (n,), generator=gen)
    explore = torch.rand(n, generator=gen) < 0.2
    explore[n // 2:] = True
    return torch.where(explore, random, pump)


def uniform_states(env_id: str, n: int, gen: torch.Generator, bounds=WIDE) -> torch.Tensor:
    low, high = (torch.tensor(b, dtype=torch.float64) for b in bounds[env_id])
    return low + (high - low) * torch.rand(n, len(low), generator=gen, dtype=torch.float64)


def make_refs(env_id: str, n: int) -> list:
    refs = [gym.make(env_id) for _ in range(n)]
    for i, ref in enumerate(refs):
        ref.reset(seed=i)
    return refs


def run_parity(env_id: str, compiled: bool, num_envs: int, steps: int, resync: bool = True,
               seed: int = 0) -> dict:
    """Step ``num_envs`` of our envs and as many of gymnasium's side by side with the same
    actions, from the same states, and assert after every step: the same next states and
    observations to 1e-12 (float64), the same rewards, terminated and truncated flags exactly,
    same-step resets with gymnasium's episode returns and lengths. Returns counts of the events
    seen (terminations, truncations, clipped velocities, ...), for the callers to check coverage.

    The envs start with random elapsed steps (early truncations), a quarter of them anywhere in
    the state space (every branch of the dynamics: wrapped angles, clipped velocities, the left
    wall), the rest from a reset; every 100 steps another quarter is moved anywhere, in both. A
    new episode of ours starts gymnasium's env in the same state.
    ``resync``: before each step, also copy our state into gymnasium's env (after checking that
    the two agree to 1e-12): the one-step maps then meet along the whole rollout. Acrobot is
    chaotic, so its rounding differences (gymnasium squares with ``pow``, libm's and torch's
    sine and cosine differ by an ulp) would otherwise grow to 1e-4 within a few hundred steps.
    """
    gen = torch.Generator().manual_seed(seed)
    env = CLASSES[env_id](num_envs, device="cpu", seed=seed, obs_dtype=torch.float64,
                          compiled=compiled)
    assert (env._kernel is not None) == compiled
    refs = make_refs(env_id, num_envs)
    env.reset()
    start = env.state
    wide = num_envs // 4
    start[:wide] = uniform_states(env_id, wide, gen)
    elapsed = torch.randint(0, env.spec.max_episode_steps, (num_envs,), generator=gen)
    env.set_state(start, elapsed)
    state = env.state.numpy()
    for i, ref in enumerate(refs):
        ref.unwrapped.state = state[i].copy()
        ref._elapsed_steps = int(elapsed[i])  # gymnasium's TimeLimit, the outer wrapper
    lengths = elapsed.numpy().copy()
    returns = -lengths.astype(np.float64)  # the steps before, none of them terminating
    counts = dict.fromkeys(["terminated", "truncated", "both", "wall", "speed_limit", "wrapped",
                            "steps"], 0)
    ref_next = np.empty_like(state)
    ref_obs32 = np.empty((num_envs, env.obs_dim), dtype=np.float32)
    ref_reward = np.empty(num_envs, dtype=np.float32)
    ref_flags = np.empty((num_envs, 2), dtype=bool)
    for step in range(steps):
        if step % 100 == 99:  # another quarter of the envs moved anywhere, in both
            state[num_envs - wide:] = uniform_states(env_id, wide, gen).numpy()
            env.set_state(torch.from_numpy(state), torch.from_numpy(lengths))
            for i in range(num_envs - wide, num_envs):
                refs[i].unwrapped.state = state[i].copy()
        actions = policy(env_id, torch.from_numpy(state), gen)
        obs, reward, terminated, truncated, info = env.step(actions)
        for i, (ref, action) in enumerate(zip(refs, actions.tolist(), strict=True)):
            if resync:
                ref_state = np.asarray(ref.unwrapped.state, dtype=np.float64)
                np.testing.assert_allclose(ref_state, state[i], rtol=0, atol=1e-12)
                ref.unwrapped.state = state[i].copy()
            ref_obs32[i], ref_reward[i], te, tr, _ = ref.step(action)
            ref_next[i] = ref.unwrapped.state
            ref_flags[i] = te, tr
        new_state = env.state.numpy()
        final_obs = info["final_obs"].numpy()
        np.testing.assert_allclose(final_obs, gym_obs(env_id, ref_next), rtol=0, atol=1e-12)
        np.testing.assert_allclose(final_obs.astype(np.float32), ref_obs32, **F32)
        np.testing.assert_array_equal(reward.numpy(), ref_reward)
        np.testing.assert_array_equal(terminated.numpy(), ref_flags[:, 0])
        np.testing.assert_array_equal(truncated.numpy(), ref_flags[:, 1])
        done = ref_flags.any(1)
        np.testing.assert_allclose(new_state[~done], ref_next[~done], rtol=0, atol=1e-12)
        # same-step reset: obs is the next state's where the episode goes on, a fresh start
        # elsewhere; the finished episodes' statistics are gymnasium's
        np.testing.assert_array_equal(obs.numpy()[~done], final_obs[~done])
        # the new start's observation from its state: ours by torch's sine and cosine (the
        # compiled loop: libm's), the reference by NumPy's, whose SIMD forms differ from
        # torch's in the last bit on some CPUs (an Intel Xeon with AVX-512); each is within
        # about 1 ulp of the exact value and the values lie in [-1, 1] (ulp <= 2.2e-16), so 4
        # ulps of 1.0 bound the difference (the velocities are copied: equal)
        np.testing.assert_allclose(obs.numpy()[done], gym_obs(env_id, new_state[done]), rtol=0,
                                   atol=OBS_ATOL)
        low, high = (np.array(b) for b in START[env_id])
        assert np.all((new_state[done] >= low) & (new_state[done] <= high))
        returns += ref_reward
        lengths += 1
        np.testing.assert_array_equal(info["episode_length"].numpy(), np.where(done, lengths, 0))
        np.testing.assert_array_equal(info["episode_return"].numpy(),
                                      np.where(done, returns, np.nan).astype(np.float32))
        returns[done], lengths[done] = 0.0, 0
        for i in np.flatnonzero(done):  # gymnasium's new episode starts in ours
            refs[i].reset()
            refs[i].unwrapped.state = new_state[i].copy()
        # coverage
        counts["terminated"] += int(ref_flags[:, 0].sum())
        counts["truncated"] += int(ref_flags[:, 1].sum())
        counts["both"] += int(ref_flags.all(1).sum())
        counts["steps"] += num_envs
        if env_id == ACROBOT:
            counts["speed_limit"] += int((np.abs(ref_next[:, 2]) == acrobot.MAX_VEL_1).sum()
                                         + (np.abs(ref_next[:, 3]) == acrobot.MAX_VEL_2).sum())
            # angles that crossed +-pi (large jumps, not small moves through 0)
            counts["wrapped"] += int(((np.sign(ref_next[:, :2]) != np.sign(state[:, :2]))
                                      & (np.abs(state[:, :2]) > 2)).sum())
        else:
            counts["speed_limit"] += int((np.abs(ref_next[:, 1]) == 0.07).sum())
            counts["wall"] += int((ref_next[:, 0] == -1.2).sum())
        state = new_state
    return counts


@BOTH
@FORMS
def test_parity_with_gymnasium_over_long_rollouts(env_id, compiled):
    """64 envs x 1000 steps (64k transitions, hundreds of episodes), every branch of the
    dynamics seen many times."""
    counts = run_parity(env_id, compiled, num_envs=64, steps=1000)
    assert counts["steps"] >= 64_000
    assert counts["terminated"] > 200 and counts["truncated"] > 30
    assert counts["speed_limit"] > 50
    if env_id == ACROBOT:
        assert counts["wrapped"] > 1000
    else:
        assert counts["wall"] > 50


@FORMS
def test_mountain_car_parity_without_resync(compiled):
    """MountainCar is not chaotic: gymnasium's env, given only our initial states, follows ours
    to 1e-12 on its own over 32k transitions (the compiled loop uses libm's cosine in
    gymnasium's order, so it even agrees bit for bit)."""
    counts = run_parity(MOUNTAIN_CAR, compiled, num_envs=32, steps=1000, resync=False, seed=1)
    assert counts["terminated"] > 100 and counts["truncated"] > 32
    assert counts["wall"] > 20 and counts["speed_limit"] > 20


@pytest.mark.parametrize("env_id, constant, value", [
    (ACROBOT, None, None),
    (ACROBOT, "GRAVITY", 9.81),
    (ACROBOT, "LINK_MASS_2", 1.001),
    (ACROBOT, "LINK_COM_POS_1", 0.501),
    (ACROBOT, "DT", 0.2001),
    (ACROBOT, "MAX_VEL_2", 8.9 * math.pi),
    (ACROBOT, "MAX_EPISODE_STEPS", 499),
    (MOUNTAIN_CAR, None, None),
    (MOUNTAIN_CAR, "FORCE", 0.0010001),
    (MOUNTAIN_CAR, "GRAVITY", 0.00251),
    (MOUNTAIN_CAR, "MAX_SPEED", 0.0699),
    (MOUNTAIN_CAR, "MIN_POSITION", -1.19),
    (MOUNTAIN_CAR, "GOAL_POSITION", 0.499),
    (MOUNTAIN_CAR, "MAX_EPISODE_STEPS", 201),
])
def test_parity_check_detects_a_wrong_constant(monkeypatch, env_id, constant, value):
    """The parity check can fail: with one constant of the tensor form off (the compiled loop
    freezes the module's constants when it is compiled), it does within 200 steps of 32 envs;
    with all of them right (constant None), the same check passes."""
    if constant is None:
        run_parity(env_id, compiled=False, num_envs=32, steps=200)
        return
    module = acrobot if env_id == ACROBOT else mountain_car
    monkeypatch.setattr(module, constant, value)
    with pytest.raises(AssertionError):
        run_parity(env_id, compiled=False, num_envs=32, steps=200)


def edge_states(env_id: str) -> list[list[float]]:
    """States on the edges of the dynamics' branches."""
    if env_id == ACROBOT:
        pi = math.pi
        # at the speed limits theta2 turns twice in a step; beyond them (set_state), more
        return [[pi, -pi, 0.0, 0.0], [-pi, pi, 0.0, 0.0], [3.0, 3.0, 4 * pi, 9 * pi],
                [-3.0, -3.0, -4 * pi, -9 * pi], [3.0, 3.0, 20.0, 40.0], [-3.0, -3.0, -20.0, -40.0],
                [3.0, 3.0, 30.0, 60.0], [-3.0, -3.0, -30.0, -60.0],
                [pi / 2, 0.0, 0.0, 0.0], [2.0, -1.0, 1.0, -2.0], [0.0, 0.0, 0.0, 0.0]]
    # at rest on the goal line after the step (v' exactly 0), against and at the left wall,
    # at the right end, at full speed
    rest = -(math.cos(3 * 0.55) * (-mountain_car.GRAVITY))  # cancels gravity (action 1)
    return [[0.55, rest], [-1.19, -0.07], [-1.2, 0.0], [-1.2, -0.01], [0.6, 0.07],
            [0.5, 0.0], [-0.5, 0.07], [-0.5, -0.07], [0.45, 0.07], [-0.52, 0.0]]


@BOTH
@FORMS
def test_edge_states_match_gymnasium(env_id, compiled):
    """From states on the edges of the branches (clipping, wrapping, walls, the goal line),
    under every action: gymnasium's next states to 1e-12, its rewards and flags exactly."""
    states = torch.tensor(edge_states(env_id), dtype=torch.float64).repeat_interleave(3, 0)
    actions = torch.arange(3).repeat(len(states) // 3)
    env = CLASSES[env_id](len(states), device="cpu", seed=0, obs_dtype=torch.float64,
                          compiled=compiled)
    env.reset()
    env.set_state(states)
    _, reward, terminated, truncated, info = env.step(actions)
    ref = gym.make(env_id)
    ref.reset(seed=0)
    for i, action in enumerate(actions.tolist()):
        ref.unwrapped.state = states[i].numpy().copy()
        _, ref_reward, te, tr, _ = ref.step(action)
        ref_state = np.asarray(ref.unwrapped.state, dtype=np.float64)
        np.testing.assert_allclose(info["final_obs"][i].numpy(),
                                   gym_obs(env_id, ref_state[None])[0], rtol=0, atol=1e-12)
        if not te:  # the state itself (Acrobot's observation does not show whole turns)
            np.testing.assert_allclose(env.state[i].numpy(), ref_state, rtol=0, atol=1e-12)
        assert (reward[i].item(), terminated[i].item(), truncated[i].item()) == (
            ref_reward, te, tr)
    if env_id == MOUNTAIN_CAR:
        assert terminated[1] and info["final_obs"][1, 1] == 0.0  # at rest on the goal line


@BOTH
def test_compiled_loop_and_tensor_ops_give_the_same_episodes(env_id):
    """From the same state (synced every step), the same outputs, default float32
    observations included, next states to 1e-12, and the same draws of new initial states."""
    a, b = (CLASSES[env_id](48, device="cpu", seed=3, compiled=c) for c in (True, False))
    assert a._kernel is not None and b._kernel is None
    torch.testing.assert_close(a.reset(), b.reset(), rtol=0, atol=0)
    gen = torch.Generator().manual_seed(1)
    ends = 0
    for _ in range(600):
        actions = policy(env_id, a.state, gen)
        b.load_state_dict(a.state_dict())
        out_a, out_b = a.step(actions), b.step(actions)
        for x, y in zip((*out_a[:4], *out_a[4].values()), (*out_b[:4], *out_b[4].values()),
                        strict=True):
            assert x.dtype == y.dtype and x.shape == y.shape
            torch.testing.assert_close(x, y, **F32, equal_nan=True)
        torch.testing.assert_close(a.state, b.state, rtol=0, atol=1e-12)
        ends += int((out_a[2] | out_a[3]).sum())
    assert ends > 100
    assert out_a[0].dtype == torch.float32 and a.state.dtype == torch.float64


def rollout(env_id: str, seed: int, compiled: bool, steps: int = 300, env=None) -> list:
    env = env or CLASSES[env_id](16, device="cpu", seed=seed, compiled=compiled)
    out = [env.reset()] if env._steps == 0 else []
    gen = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        obs, reward, terminated, truncated, info = env.step(policy(env_id, env.state, gen))
        out += [obs, reward, terminated, truncated, *info.values()]
    return out


def assert_same(first: list, second: list) -> None:
    assert len(first) == len(second)
    for a, b in zip(first, second, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0, equal_nan=True)


@BOTH
@FORMS
def test_seed_makes_episodes_reproducible(env_id, compiled):
    first, again = rollout(env_id, 5, compiled), rollout(env_id, 5, compiled)
    assert_same(first, again)
    other = CLASSES[env_id](16, device="cpu", seed=6, compiled=compiled).reset()
    assert not torch.equal(first[0], other)


@BOTH
@FORMS
def test_state_dict_round_trip_continues_identically(env_id, compiled):
    """A copy loaded from a saved (serialised) state_dict mid-run continues exactly as the
    original, over resets and redraws of the reserve starts."""
    env = CLASSES[env_id](16, device="cpu", seed=0, compiled=compiled)
    rollout(env_id, 0, compiled, steps=37, env=env)
    buffer = io.BytesIO()
    torch.save(env.state_dict(), buffer)
    buffer.seek(0)
    copy_env = CLASSES[env_id](16, device="cpu", seed=123, compiled=compiled)
    copy_env.load_state_dict(torch.load(buffer))
    assert_same(rollout(env_id, 1, compiled, steps=700, env=env),
                rollout(env_id, 1, compiled, steps=700, env=copy_env))
    with pytest.raises(ValueError, match="holds 16 envs"):
        CLASSES[env_id](4, device="cpu").load_state_dict(env.state_dict())


@BOTH
@FORMS
def test_bad_actions_raise_and_change_nothing(env_id, compiled):
    env = CLASSES[env_id](3, device="cpu", seed=0, compiled=compiled)
    with pytest.raises(ValueError, match="reset"):
        env.step(torch.tensor([0, 1, 2]))
    env.reset()
    before = copy.deepcopy(env.state_dict())
    for bad in (torch.tensor([0, 3, 1]), torch.tensor([-1, 0, 1])):
        with pytest.raises(ValueError, match="0, 1 or 2"):
            env.step(bad)
    for bad in (torch.tensor([0.0, 1.0, 2.0]), torch.tensor([0, 1]), [0, 1, 2],
                torch.tensor([0, 1, 2], dtype=torch.int32)):
        with pytest.raises(ValueError, match=r"int64 tensor of shape \(3,\)"):
            env.step(bad)
    after = env.state_dict()
    for key in ("state", "reserve", "elapsed", "generator"):
        assert torch.equal(before[key], after[key]), key
    assert before["steps"] == after["steps"]
    with pytest.raises(ValueError, match=r"states must be a \(3, "):
        env.set_state(torch.zeros(2, env.obs_dim))


@BOTH
@FORMS
def test_time_limit_truncates_also_on_a_terminating_step(env_id, compiled):
    """At the time limit every episode is truncated; one that also reaches the goal on that
    step is terminated too (gymnasium's TimeLimit sets both), with gymnasium's return."""
    env = CLASSES[env_id](3, device="cpu", seed=0, compiled=compiled)
    limit = gym.spec(env_id).max_episode_steps
    assert env.spec.max_episode_steps == limit
    env.reset()
    # env 0 reaches the goal in one step, env 1 does not
    goal = [math.pi - 0.1, 0.0, 0.0, 0.0] if env_id == ACROBOT else [0.49, 0.05]
    rest = [0.0, 0.0, 0.0, 0.0] if env_id == ACROBOT else [-0.5, 0.0]
    states = torch.tensor([goal, rest, rest], dtype=torch.float64)
    actions = torch.tensor([1, 1, 1])
    env.set_state(states, torch.tensor([limit - 1, limit - 1, limit - 2]))
    _, reward, terminated, truncated, info = env.step(actions)
    assert terminated.tolist() == [True, False, False]
    assert truncated.tolist() == [True, True, False]
    assert info["episode_length"].tolist() == [limit, limit, 0]
    goal_reward = 0.0 if env_id == ACROBOT else -1.0
    assert reward.tolist() == [goal_reward, -1.0, -1.0]
    expected_return = [-(limit - 1) + goal_reward, -limit]
    assert info["episode_return"][:2].tolist() == expected_return
    assert info["episode_return"][2].isnan()
    ref = gym.make(env_id)
    for i in range(2):  # gymnasium agrees, flags and return
        ref.reset()
        ref.unwrapped.state = states[i].numpy().copy()
        ref._elapsed_steps = limit - 1
        ref_obs, ref_reward, te, tr, _ = ref.step(1)
        assert (ref_reward, te, tr) == (reward[i].item(), terminated[i].item(), truncated[i].item())
        np.testing.assert_allclose(info["final_obs"][i].numpy(), ref_obs, rtol=0, atol=1e-6)
    # the third env truncates one step later
    assert env.step(actions)[3].tolist()[2]


def test_acrobot_no_episode_ends_before_its_reserve_is_redrawn():
    """The reserve of initial states is fully redrawn every RESERVE_REFRESH_STEPS (4) steps;
    safe because no episode started in [-0.1, 0.1]^4 ends within 8 steps: under all 3^8 action
    sequences, from every corner of the box and points inside, the free end stays more than 1.7
    below the fixed joint (the goal: 1 above)."""
    corners = torch.tensor(list(itertools.product([-0.1, 0.1], repeat=4)), dtype=torch.float64)
    inside = torch.rand(16, 4, generator=torch.Generator().manual_seed(0),
                        dtype=torch.float64) * 0.2 - 0.1
    starts = torch.cat([corners, inside])
    sequences = torch.tensor(list(itertools.product([0, 1, 2], repeat=8)))
    env = TorchAcrobot(len(starts) * len(sequences), device="cpu", seed=0)
    env.set_state(starts.repeat_interleave(len(sequences), 0))
    for t in range(8):
        assert not env.step(sequences[:, t].repeat(len(starts)))[2].any()
    theta1, theta2 = env.state[:, 0], env.state[:, 1]
    assert (-torch.cos(theta1) - torch.cos(theta1 + theta2)).max() < -1.7
    assert acrobot.RESERVE_REFRESH_STEPS <= 8


def test_mountain_car_no_episode_ends_before_its_reserve_is_redrawn():
    """Redrawing the reserve every RESERVE_REFRESH_STEPS (8) steps is safe because the car
    moves at most MAX_SPEED per step, so from x < -0.4 it needs 13 steps to reach x >= 0.5;
    even at full speed from the right end of the start interval it takes more."""
    fewest = math.ceil((mountain_car.GOAL_POSITION - mountain_car.INIT_HIGH)
                       / mountain_car.MAX_SPEED)
    assert mountain_car.RESERVE_REFRESH_STEPS <= fewest == 13
    env = TorchMountainCar(1, device="cpu", seed=0)
    env.reset()
    env.set_state(torch.tensor([[mountain_car.INIT_HIGH, mountain_car.MAX_SPEED]],
                               dtype=torch.float64))
    steps = 1
    while not env.step(torch.tensor([2]))[2].item():
        steps += 1
    assert steps >= fewest


@BOTH
@FORMS
def test_initial_states_are_fresh_uniform_draws(env_id, compiled):
    """Every (automatic) start is a new uniform draw from gymnasium's initial distribution."""
    n = 64
    env = CLASSES[env_id](n, device="cpu", seed=1, compiled=compiled)
    env.reset()
    starts = [env.state]
    gen = torch.Generator().manual_seed(0)
    elapsed = torch.randint(0, env.spec.max_episode_steps, (n,), generator=gen)
    env.set_state(env.state, elapsed)  # spread the time-limit resets over the steps
    for _ in range(1500):
        _, _, terminated, truncated, _ = env.step(policy(env_id, env.state, gen))
        starts.append(env.state[terminated | truncated])
    starts = torch.cat(starts)
    assert len(starts) > 500
    low, high = (torch.tensor(b, dtype=torch.float64) for b in START[env_id])
    assert torch.all((starts >= low) & (starts < high) | (low == high))
    random = low < high
    assert len(torch.unique(starts[:, random], dim=0)) == len(starts)  # never the same twice
    half = (high - low)[random] / 2
    sigma = 2 * half / math.sqrt(12)
    centred = starts[:, random] - ((low + high) / 2)[random]
    assert torch.all(centred.mean(0).abs() < 5 * sigma / math.sqrt(len(starts)))
    torch.testing.assert_close(centred.std(0), sigma, rtol=0.1, atol=0)


@pytest.fixture
def registered(monkeypatch):
    """``envs.make`` knows both ids (a no-op once ``semigrad.envs`` registers them itself);
    other tests see the registry as it was."""
    monkeypatch.setattr(envs, "_NATIVE", dict(envs._NATIVE))
    envs.register(ACROBOT, TorchAcrobot)
    envs.register(MOUNTAIN_CAR, TorchMountainCar)


@BOTH
def test_make_builds_the_torch_env_with_gymnasiums_spec(registered, env_id):
    env = envs.make(env_id, num_envs=2, device="cpu", seed=0)
    assert isinstance(env, CLASSES[env_id]) and env.spec.backend == "torch"
    ref_spec, ref = gym.spec(env_id), gym.make(env_id)
    assert env.spec.id == env_id
    assert env.spec.reward_threshold == ref_spec.reward_threshold
    assert env.spec.max_episode_steps == ref_spec.max_episode_steps
    assert (env.obs_dim, env.num_actions) == (ref.observation_space.shape[0],
                                               ref.action_space.n)
    assert env.reset().equal(envs.make(env_id, num_envs=2, device="cpu", seed=0).reset())
    forced = envs.make(f"gymnasium:{env_id}", num_envs=2, device="cpu", seed=0)
    assert isinstance(forced, envs.GymVectorEnv) and forced.spec.id == env.spec.id


@BOTH
def test_without_numba_the_env_falls_back_to_tensor_ops(monkeypatch, env_id):
    """numba missing (or unable to compile here): a warning and the tensor form, which gives
    the same episodes; asked for explicitly, a clear error."""
    kernel = f"semigrad.envs.{'acrobot' if env_id == ACROBOT else 'mountain_car'}_kernel"
    monkeypatch.setitem(sys.modules, kernel, None)  # the import fails
    with pytest.warns(RuntimeWarning, match="compiled CPU step is unavailable"):
        env = CLASSES[env_id](4, device="cpu", seed=0)
    assert env._kernel is None
    with pytest.raises(RuntimeError, match="install numba, or pass compiled=False"):
        CLASSES[env_id](4, device="cpu", compiled=True)
    monkeypatch.undo()
    reference = CLASSES[env_id](4, device="cpu", seed=0)
    assert reference._kernel is not None
    torch.testing.assert_close(env.reset(), reference.reset(), rtol=0, atol=0)
    actions = torch.tensor([0, 1, 2, 1])
    torch.testing.assert_close(env.step(actions)[0], reference.step(actions)[0], rtol=0,
                               atol=1e-6)
    with pytest.raises(ValueError, match="compiled CPU step runs on the CPU with a float64"):
        CLASSES[env_id](2, device="cpu", dtype=torch.float32, compiled=True)
    assert CLASSES[env_id](2, device="cpu", dtype=torch.float32)._kernel is None


@BOTH
def test_float32_state_and_argument_errors(env_id):
    env = CLASSES[env_id](2, device="cpu", seed=0, dtype=torch.float32)
    obs = env.reset()
    out = env.step(torch.tensor([0, 2]))
    assert env.state.dtype == torch.float32 and obs.dtype == torch.float32
    assert out[0].shape == (2, env.obs_dim) and out[2].dtype == torch.bool
    with pytest.raises(ValueError, match="num_envs"):
        CLASSES[env_id](0, device="cpu")
    with pytest.raises(ValueError, match="floating-point"):
        CLASSES[env_id](2, device="cpu", dtype=torch.int64)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@BOTH
def test_cuda_tensor_form_matches_the_cpu_loop(env_id):
    """On CUDA (tensor operations), from the same states and actions, the CPU loop's next
    states, flags and rewards (states synced every step, new starts included)."""
    cpu = CLASSES[env_id](256, device="cpu", seed=0)
    cuda = CLASSES[env_id](256, device="cuda", seed=0)
    assert cuda._kernel is None
    cpu.reset()
    cuda.reset()
    gen = torch.Generator().manual_seed(0)
    ends = 0
    for _ in range(600):
        for name in ("_state", "_reserve", "_elapsed"):
            getattr(cuda, name).copy_(getattr(cpu, name))
        actions = policy(env_id, cpu.state, gen)
        out_cpu, out_cuda = cpu.step(actions), cuda.step(actions.cuda())
        for x, y in zip((*out_cpu[:4], *out_cpu[4].values()),
                        (*out_cuda[:4], *out_cuda[4].values()), strict=True):
            assert y.device.type == "cuda" and x.shape == y.shape
            torch.testing.assert_close(x, y.cpu(), **F32, equal_nan=True)
        torch.testing.assert_close(cpu.state, cuda.state.cpu(), rtol=0, atol=1e-12)
        ends += int((out_cpu[2] | out_cpu[3]).sum())
    assert ends > 100


@pytest.mark.parametrize("env_id", ["CartPole-v1", ACROBOT, MOUNTAIN_CAR])
def test_render_draws_what_gymnasium_draws_for_the_same_state(env_id):
    """``render(i)`` is gymnasium's own picture of sub-env i's state (for GIFs), pixel for
    pixel, after a reset and along a rollout."""
    env = envs.make(env_id, num_envs=3, device="cpu", seed=4)
    ref = gym.make(env_id, render_mode="rgb_array")
    ref.reset(seed=0)
    gen = torch.Generator().manual_seed(0)
    env.reset()
    for _ in range(20):
        for i in (0, 2):
            ref.unwrapped.state = env.state[i].double().numpy()
            np.testing.assert_array_equal(env.render(i), ref.render())
        env.step(torch.randint(0, env.num_actions, (3,), generator=gen))
    assert env.render(0).shape[2] == 3 and env.render_fps == ref.metadata["render_fps"]
    with pytest.raises(ValueError, match=r"index must be an integer in \[0, 3\)"):
        env.render(3)
    env.close()
    ref.close()
