"""ReplayBuffer: wrap-around, sampling only filled slots, flags kept apart, checkpoints."""

import math

import pytest
import torch

from semigrad.buffers import ReplayBuffer


def _add(buf, start, n):
    ids = torch.arange(start, start + n)
    obs = ids.float().unsqueeze(1).repeat(1, 2)
    buf.add(obs, ids, ids.float(), obs + 0.5, ids % 3 == 0, ids % 3 == 1)


def test_wrap_around_overwrites_oldest():
    with pytest.raises(ValueError, match="multiple of num_envs"):
        ReplayBuffer(5, 2, num_envs=4)
    buf = ReplayBuffer(6, 2, num_envs=2)
    _add(buf, 0, 2)
    _add(buf, 2, 2)
    _add(buf, 4, 2)
    _add(buf, 6, 2)  # ids 6,7 wrap to slots 0,1
    assert len(buf) == 6 and buf.pos == 2
    assert buf.actions.tolist() == [6, 7, 2, 3, 4, 5]
    assert torch.equal(buf.next_obs[:, 0], buf.actions.float() + 0.5)


def test_sampling_only_from_filled_slots():
    buf = ReplayBuffer(98, 2, num_envs=7)
    _add(buf, 10, 7)
    batch = buf.sample(2000, torch.Generator().manual_seed(0))
    assert set(batch.actions.tolist()) == set(range(10, 17))  # every filled slot, nothing else


def test_terminated_and_truncated_kept_apart():
    buf = ReplayBuffer(18, 2, num_envs=9)
    _add(buf, 0, 9)
    batch = buf.sample(500, torch.Generator().manual_seed(1))
    assert torch.equal(batch.terminated, batch.actions % 3 == 0)
    assert torch.equal(batch.truncated, batch.actions % 3 == 1)
    assert not torch.any(batch.terminated & batch.truncated)


def test_state_dict_round_trip():
    buf = ReplayBuffer(8, 2, num_envs=2)
    for start in range(0, 12, 2):
        _add(buf, start, 2)
    other = ReplayBuffer(8, 2, num_envs=2)
    other.load_state_dict(buf.state_dict())
    assert (other.pos, other.size) == (buf.pos, buf.size)
    assert torch.equal(other.obs, buf.obs) and torch.equal(other.truncated, buf.truncated)
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    assert torch.equal(buf.sample(16, g1).next_obs, other.sample(16, g2).next_obs)
    start = torch.arange(8)  # the compiled loop reads the loaded storage
    assert torch.equal(buf.n_step_at(start, 3, 0.9).rewards, other.n_step_at(start, 3, 0.9).rewards)


def test_errors():
    with pytest.raises(ValueError, match="empty"):
        ReplayBuffer(4, 2).sample(1)
    with pytest.raises(ValueError, match="does not fit"):
        ReplayBuffer(4, 3).load_state_dict(ReplayBuffer(4, 2).state_dict())


def _reference_n_step(buf, start, n, gamma):
    """Walk one environment's transitions forward from slot ``start`` (per-sample loop)."""
    ret, slot = 0.0, start
    for k in range(n):
        slot = (start + k * buf.num_envs) % buf.capacity
        ret += gamma**k * buf.rewards[slot].item()
        if buf.terminated[slot] or buf.truncated[slot]:
            return ret, slot, gamma ** (k + 1)
    return ret, slot, gamma**n


@pytest.mark.parametrize("compiled", [True, False])
@pytest.mark.parametrize("fill", [30, 57])  # partly filled, and wrapped around
def test_n_step_matches_per_sample_walk(fill, compiled):
    num_envs, n, gamma = 3, 4, 0.9
    buf = ReplayBuffer(45, 2, num_envs=num_envs, compiled=compiled)
    gen = torch.Generator().manual_seed(0)
    for t in range(fill // num_envs):
        ids = torch.arange(num_envs) + t * num_envs
        obs = ids.float().unsqueeze(1).repeat(1, 2)
        flags = torch.rand(num_envs, generator=gen)
        buf.add(obs, ids, torch.rand(num_envs, generator=gen), obs + 0.5, flags < 0.15,
                (flags > 0.15) & (flags < 0.25))
    batch = buf.sample_n_step(400, n, gamma, torch.Generator().manual_seed(1))
    newest = fill // num_envs * num_envs - 1
    for i in range(400):
        start = int((batch.actions[i] % 45).item())  # action ids tell the start slot
        assert batch.actions[i].item() <= newest - (n - 1) * num_envs  # successors exist
        ret, last, discount = _reference_n_step(buf, start, n, gamma)
        assert abs(batch.rewards[i].item() - ret) < 1e-5
        assert torch.equal(batch.next_obs[i], buf.next_obs[last])
        assert batch.terminated[i] == buf.terminated[last]
        assert abs(batch.discounts[i].item() - discount) < 1e-6


def _random_buffer(capacity, num_envs, steps, obs_dtype, seed=0):
    """Two buffers (compiled loop, tensor form) holding the same random transitions."""
    bufs = [ReplayBuffer(capacity, 3, obs_dtype=obs_dtype, num_envs=num_envs, compiled=c)
            for c in (True, False)]
    gen = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        flags = torch.rand(num_envs, generator=gen)
        row = (torch.randn(num_envs, 3, generator=gen).to(obs_dtype),
               torch.randint(3, (num_envs,), generator=gen), torch.randn(num_envs, generator=gen),
               torch.randn(num_envs, 3, generator=gen).to(obs_dtype), flags < 0.2,
               (flags > 0.15) & (flags < 0.3))  # both flags set on some steps
        for buf in bufs:
            buf.add(*row)
    return bufs


@pytest.mark.parametrize("n", [1, 2, 5, 7])
@pytest.mark.parametrize("obs_dtype", [torch.float32, torch.float64])
def test_compiled_n_step_matches_the_tensor_form(n, obs_dtype):
    """Same starts, same transitions: every field equal, the returns to float32 rounding (the
    two forms add the discounted rewards in different orders); the ring has wrapped."""
    compiled, tensors = _random_buffer(60, 4, 40, obs_dtype)
    assert compiled._kernel is not None and tensors._kernel is None
    start = torch.randint(60, (5000,), generator=torch.Generator().manual_seed(1))
    got, ref = compiled.n_step_at(start, n, 0.97), tensors.n_step_at(start, n, 0.97)
    for name in ("obs", "actions", "next_obs", "terminated", "truncated", "discounts"):
        assert torch.equal(getattr(got, name), getattr(ref, name)), name
    assert got.obs.dtype == obs_dtype and got.discounts.dtype == torch.float32
    torch.testing.assert_close(got.rewards, ref.rewards, rtol=1e-6, atol=1e-6)
    steps = (got.discounts.log() / math.log(0.97)).round()
    assert steps.min() == 1 and steps.max() == n  # windows cut by an episode's end, and full


def test_compiled_n_step_refuses_slots_outside_the_ring():
    buf = _random_buffer(12, 2, 3, torch.float32)[0]
    with pytest.raises(IndexError, match="start slot 12 is outside the ring's 0..11"):
        buf.n_step_at(torch.tensor([0, 12]), 3, 0.9)
    with pytest.raises(IndexError, match="start slot -1"):
        buf.n_step_at(torch.tensor([-1]), 3, 0.9)
    with pytest.raises(ValueError, match="runs on the CPU, got meta"):
        ReplayBuffer(4, 2, device="meta", compiled=True)


def test_without_numba_the_buffer_falls_back_to_tensor_ops(monkeypatch):
    """numba missing (or unable to compile here): a warning and the tensor form; asked for
    explicitly, a clear error."""
    import sys

    monkeypatch.setitem(sys.modules, "semigrad.replay_kernel", None)  # import fails
    with pytest.warns(RuntimeWarning, match="compiled n-step sampling is unavailable"):
        buf = ReplayBuffer(8, 2, num_envs=2)
    assert buf._kernel is None
    for start in (0, 2, 4):
        _add(buf, start, 2)
    # slot 1 is truncated: its own reward only; slot 2 goes on to slot 4
    assert buf.n_step_at(torch.tensor([1, 2]), 2, 0.5).rewards.tolist() == [1.0, 4.0]
    with pytest.raises(RuntimeError, match="install numba, or pass compiled=False"):
        ReplayBuffer(8, 2, compiled=True)


def test_n_step_needs_enough_transitions():
    buf = ReplayBuffer(12, 2, num_envs=2)
    _add(buf, 0, 2)
    with pytest.raises(ValueError, match="needs more than 4 transitions for n=3"):
        buf.sample_n_step(4, 3, 0.9)


def _allocated_bytes(obj) -> int:
    """Bytes of every tensor an object holds as an attribute (distinct storages once)."""
    seen, total = set(), 0
    for value in vars(obj).values():
        if isinstance(value, torch.Tensor) and value.untyped_storage().data_ptr() not in seen:
            seen.add(value.untyped_storage().data_ptr())
            total += value.untyped_storage().nbytes()
    return total


@pytest.mark.parametrize("prioritized", [False, True])
@pytest.mark.parametrize("frames", [None, (4, 10, 12)])
@pytest.mark.parametrize("agents,num_envs", [(1, 1), (3, 4)])
def test_memory_estimate_equals_the_bytes_the_replay_allocates(frames, agents, num_envs,
                                                               prioritized):
    """The estimate the CLI refuses runs by (``AgentReplay.memory_bytes``) is the storage the
    buffer really allocates, counted from its tensors: for vector observations (obs and
    next_obs per transition) and for frame stacks (each frame once, plus the side ring), and
    the sum trees of prioritized replay (a float64 tree of 2P nodes per agent, P = 256 here).
    The only tensors it leaves out are index helpers of a few integers per agent."""
    from semigrad.buffers import AgentReplay, PrioritizedSpec

    capacity, obs_dim = 240, 6 if frames is None else 4 * 10 * 12
    kw = dict(obs_dtype=torch.float32 if frames is None else torch.uint8, frames=frames,
              max_episode_steps=50, prioritized=PrioritizedSpec() if prioritized else None)
    replay = AgentReplay(agents, capacity, num_envs, obs_dim, torch.device("cpu"), **kw)
    real = _allocated_bytes(replay.buffer) + _allocated_bytes(replay)
    if prioritized:
        real += _allocated_bytes(replay.prioritized)
    estimate = AgentReplay.memory_bytes(agents, capacity, num_envs, obs_dim, **kw)
    assert estimate <= real <= estimate + 64 * (agents + 4)
    if prioritized:
        tree = agents * (2 * 256 + 1) * 8
        kw["prioritized"] = None
        assert estimate == AgentReplay.memory_bytes(agents, capacity, num_envs, obs_dim,
                                                     **kw) + tree
        estimate -= tree
    per_transition = estimate / (agents * capacity)
    if frames is None:  # two float32 observations, an int64 action, a reward and two flags
        assert per_transition == 2 * 6 * 4 + 8 + 4 + 2
    else:  # one 10x12 frame, its age, the same fields, and a small side ring
        assert 120 + 1 + 8 + 4 + 2 + 8 <= per_transition < 1.2 * (120 + 23)


def test_atari_preset_replay_estimate_counts_each_frame_once():
    """``--preset atari`` (1M transitions of 84x84 frames, stacks of 4): the estimate is the
    frame replay's ~7.1 GB, not the 52.6 GiB of two stacked observations per transition."""
    pytest.importorskip("ale_py")
    from semigrad.algos import dqn

    cfg = dqn.preset("atari", device="cpu")
    one = dqn.memory_bytes(cfg, 1)
    assert 84 * 84 * 1_000_000 < one < 7.5e9
    assert dqn.memory_bytes(cfg, 2) == 2 * one
    assert dqn.memory_bytes(dqn.preset("cartpole"), 3) == 3 * 50_000 * (2 * 4 * 4 + 14)
