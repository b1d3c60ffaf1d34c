"""Prioritized replay (Schaul et al. 2016, proportional): frequencies against p^alpha (a
chi-square test), importance weights against the formula, priority updates, new transitions at
the largest priority, exact resume, K agents equal to single runs, the compiled loops equal to
the tensor form, and the uniform sampler untouched."""

import io

import pytest
import torch
from scipy import stats

from semigrad.buffers import AgentReplay, Batch, PrioritizedSampler, PrioritizedSpec
from semigrad.seeding import AgentUniforms, agent_generators

CPU = torch.device("cpu")


def _fill(replay, steps, seed=0, first=0):
    """``steps`` adds of random transitions (actions number the transitions)."""
    gen = torch.Generator().manual_seed(seed)
    rows = replay.agents * replay.num_envs
    for t in range(first, first + steps):
        ids = torch.arange(rows) + t * rows
        obs = torch.randn(rows, 3, generator=gen)
        flags = torch.rand(rows, generator=gen)
        replay.add(obs, ids, torch.randn(rows, generator=gen), obs + 1, flags < 0.1,
                   (flags > 0.1) & (flags < 0.15))


def _replay(agents=1, capacity=64, num_envs=2, alpha=0.6, compiled=None, **kw):
    return AgentReplay(agents, capacity, num_envs, 3, CPU, prioritized=PrioritizedSpec(alpha),
                       compiled=compiled, **kw)


def _set_all(replay, td_abs):
    """Every slot's priority set from ``td_abs (K, capacity)`` (through ``update``)."""
    slots = torch.arange(replay.capacity).expand(replay.agents, -1)
    replay.prioritized.update(slots, td_abs)


@pytest.mark.parametrize("compiled", [True, False])
@pytest.mark.parametrize("n", [1, 3])
def test_frequencies_follow_priorities_to_the_alpha(compiled, n):
    """200,000 draws per agent from a full, wrapped ring (n-step: only the windows whose
    successors are stored, a cyclic range): the counts pass a chi-square test against
    ``p^alpha / sum p^alpha`` over the drawable slots, and nothing else is drawn."""
    replay = _replay(agents=2, capacity=40, num_envs=2, alpha=0.7, compiled=compiled)
    _fill(replay, 27)  # 54 steps per agent into 40 slots: wrapped, pos at slot 14
    gen = torch.Generator().manual_seed(1)
    td = torch.rand(2, 40, generator=gen, dtype=torch.float64) * 3
    _set_all(replay, td)
    start, valid = replay.buffer.pos // 2, 40 - (n - 1) * 2
    drawable = (torch.arange(valid) + start) % 40
    counts = torch.zeros(2, 40, dtype=torch.float64)
    for _ in range(50):
        u = torch.rand(2, 4000, generator=gen, dtype=torch.float64)
        batch = replay.sample_n_step(n, 0.9, u, beta=0.5)
        j = batch.indices.view(2, -1)
        counts.scatter_add_(1, j, torch.ones_like(j, dtype=torch.float64))
    for k in range(2):
        p = (td[k, drawable] + 1e-6) ** 0.7
        assert counts[k].sum() == 200_000
        assert counts[k, drawable].sum() == 200_000  # never a window cut short of its successors
        result = stats.chisquare(counts[k, drawable].numpy(), (p / p.sum() * 200_000).numpy())
        assert result.pvalue > 1e-3, (k, result)
    # a uniform replay returns plain batches
    uniform = AgentReplay(2, 40, 2, 3, CPU)
    _fill(uniform, 27)
    flat = uniform.sample_n_step(n, 0.9, torch.rand(2, 20000, generator=gen,
                                                    dtype=torch.float64))
    assert type(flat) is Batch  # no indices, no weights


def test_alpha_zero_is_uniform_with_unit_weights():
    replay = _replay(capacity=32, num_envs=1, alpha=0.0)
    _fill(replay, 32)
    _set_all(replay, torch.rand(1, 32, dtype=torch.float64) * 10)
    u = torch.rand(1, 64_000, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    batch = replay.sample(u, beta=1.0)
    counts = torch.bincount(batch.indices, minlength=32).double()
    assert stats.chisquare(counts.numpy()).pvalue > 1e-3
    assert torch.all(batch.weights == 1)


@pytest.mark.parametrize("compiled", [True, False])
def test_importance_weights_follow_the_formula(compiled):
    """``w_j = (N P(j))^-beta / max_b w_b`` per agent, with N the drawable slots and
    ``P(j) = p_j^alpha / sum`` over them; beta 0 gives weights 1."""
    replay = _replay(agents=3, capacity=32, num_envs=4, alpha=0.5, compiled=compiled)
    _fill(replay, 6)  # 24 of 32 slots per agent filled
    td = torch.rand(3, 32, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    _set_all(replay, td)
    u = torch.rand(3, 16, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    n, valid = 2, 24 - 4
    for beta in (0.0, 0.4, 1.0):
        batch = replay.sample_n_step(n, 0.99, u, beta=beta)
        j = batch.indices.view(3, 16)
        assert int(j.max()) < valid
        leaf = (td + 1e-6) ** 0.5
        prob = leaf.gather(1, j) / leaf[:, :valid].sum(dim=1, keepdim=True)
        w = (valid * prob) ** -beta
        want = (w / w.amax(dim=1, keepdim=True)).float().view(-1)
        torch.testing.assert_close(batch.weights, want, rtol=1e-6, atol=0)
        assert batch.weights.dtype == torch.float32 and batch.weights.max() == 1
        assert torch.all(batch.weights.view(3, 16).amax(dim=1) == 1)


@pytest.mark.parametrize("compiled", [True, False])
def test_updates_new_transitions_and_the_tree(compiled):
    """``update_priorities`` sets ``(|delta| + eps)^alpha`` (a slot drawn twice keeps the
    larger), raises the running maximum that new transitions get, and every inner node stays
    the sum of its children."""
    replay = _replay(agents=2, capacity=12, num_envs=3, alpha=0.6, compiled=compiled)
    trees = replay.prioritized
    assert trees.leaves_at == 16 and trees.tree.shape == (2, 32)
    _fill(replay, 2)
    assert torch.equal(trees.leaves()[:, :6], torch.ones(2, 6, dtype=torch.float64))
    indices = torch.tensor([[0, 4, 4, 2], [5, 1, 0, 5]]).view(-1)
    td = torch.tensor([[0.5, 2.0, 3.0, -0.0], [1.0, 0.25, 0.0, 0.5]])
    replay.update_priorities(indices, td.view(-1))
    want = torch.ones(2, 12, dtype=torch.float64)
    want[:, 6:] = 0
    for k in range(2):
        for j, d in sorted(zip(indices.view(2, 4)[k].tolist(), td[k].double().tolist(),
                               strict=True),
                           key=lambda jd: jd[1]):  # the larger one last
            want[k, j] = (d + 1e-6) ** 0.6
    torch.testing.assert_close(trees.leaves(), want, rtol=1e-15, atol=0)
    torch.testing.assert_close(trees.max_leaf, torch.tensor([3.000001, 1.000001],
                                                            dtype=torch.float64) ** 0.6)
    _fill(replay, 1, first=2)  # 3 new transitions per agent at the running maximum
    torch.testing.assert_close(trees.leaves()[:, 6:9], trees.max_leaf.unsqueeze(1).expand(2, 3))
    for node in range(1, 16):  # inner nodes: the sums of their children, exactly
        children = trees.tree[:, 2 * node] + trees.tree[:, 2 * node + 1]
        assert torch.equal(trees.tree[:, node], children)
    rebuilt = trees.tree.clone()
    trees.rebuild()
    assert torch.equal(rebuilt, trees.tree)


def test_compiled_loops_equal_the_tensor_form():
    """The same adds, draws and updates through both forms: the same slots, the trees and
    the weights equal to float64 / float32 rounding (the powers are libm's and torch's)."""
    replays = [_replay(agents=3, capacity=48, num_envs=4, compiled=c) for c in (True, False)]
    assert replays[0].prioritized._kernel is not None and replays[1].prioritized._kernel is None
    gen = torch.Generator().manual_seed(4)
    for step in range(40):
        u = torch.rand(3, 32, generator=gen, dtype=torch.float64)
        td = torch.rand(3, 32, generator=gen) * 5
        batches = []
        for replay in replays:
            _fill(replay, 1, seed=step, first=step)
            if step >= 3:
                batch = replay.sample_n_step(3, 0.9, u, beta=0.6)
                replay.update_priorities(batch.indices, td)
                batches.append(batch)
        if batches:
            assert torch.equal(batches[0].indices, batches[1].indices)
            torch.testing.assert_close(batches[0].weights, batches[1].weights)
        torch.testing.assert_close(replays[0].prioritized.tree, replays[1].prioritized.tree,
                                   rtol=1e-14, atol=0)


def _agent_rows(k, step, num_envs):
    """Agent k's transitions at ``step``: a function of (k, step) only."""
    gen = torch.Generator().manual_seed(1000 * k + step)
    obs = torch.randn(num_envs, 3, generator=gen)
    flags = torch.rand(num_envs, generator=gen)
    return (obs, torch.randint(4, (num_envs,), generator=gen), torch.randn(num_envs, generator=gen),
            obs - 1, flags < 0.1, (flags > 0.1) & (flags < 0.2))


def _run(seeds, steps, frames=None, capacity=30, num_envs=3, compiled=None):
    """K agents adding their own transitions, drawing 3-step batches with their own uniforms
    and setting priorities from the batch (|reward| as the TD error); the batches drawn."""
    obs_dim = 3 if frames is None else 2 * 2 * 3
    replay = AgentReplay(len(seeds), capacity, num_envs, obs_dim, CPU, frames=frames,
                         max_episode_steps=7, prioritized=PrioritizedSpec(0.6),
                         obs_dtype=torch.float32 if frames is None else torch.uint8,
                         compiled=compiled)
    uniforms = AgentUniforms(agent_generators(seeds, CPU))
    drawn = []
    for step in range(steps):
        rows = [_agent_rows(s, step, num_envs) for s in seeds]
        fields = [torch.cat(parts) for parts in zip(*rows, strict=True)]
        if frames is not None:
            fields[0] = (fields[0].abs() * 40).to(torch.uint8).repeat(1, 4)
            fields[3] = (fields[3].abs() * 40).to(torch.uint8).repeat(1, 4)
        replay.add(*fields)
        if step >= 4:
            batch = replay.sample_n_step(3, 0.9, uniforms.take(8), beta=0.5)
            replay.update_priorities(batch.indices, batch.rewards.abs())
            drawn.append(batch)
    return replay, drawn


@pytest.mark.parametrize("compiled", [None, False])
@pytest.mark.parametrize("frames", [None, (4, 1, 3)])
def test_agent_k_of_three_equals_its_single_run(frames, compiled):
    """Agent 1 of seeds (5, 6, 7) draws the same slots with the same weights, and keeps the
    same priorities, as the single run of seed 6, step for step (the ring wraps); in the
    compiled loops and in the tensor form."""
    many, many_drawn = _run([5, 6, 7], 25, frames, compiled=compiled)
    one, one_drawn = _run([6], 25, frames, compiled=compiled)
    for a, b in zip(many_drawn, one_drawn, strict=True):
        for name in ("indices", "weights", "actions", "rewards", "obs"):
            assert torch.equal(getattr(a, name).view(3, 8, -1)[1],
                               getattr(b, name).view(1, 8, -1)[0]), name
    assert torch.equal(many.prioritized.tree[1], one.prioritized.tree[0])
    assert torch.equal(many.prioritized.max_leaf[1], one.prioritized.max_leaf[0])


@pytest.mark.parametrize("frames", [None, (4, 1, 3)])
def test_resume_is_exact(frames):
    """A replay saved mid-run (through torch.save / torch.load(weights_only=True)) and loaded
    into a fresh one goes on bit for bit: the same draws, weights and priorities."""
    replay, _ = _run([3, 4], 12, frames)
    saved = io.BytesIO()
    torch.save(replay.state_dict(), saved)
    saved.seek(0)
    state = torch.load(saved, weights_only=True)
    fresh = AgentReplay(2, 30, 3, 3 if frames is None else 12, CPU, frames=frames,
                        max_episode_steps=7, prioritized=PrioritizedSpec(0.6),
                        obs_dtype=torch.float32 if frames is None else torch.uint8)
    fresh.load_state_dict(state)
    assert torch.equal(fresh.prioritized.tree, replay.prioritized.tree)
    gen = torch.Generator().manual_seed(9)
    for step in range(12, 30):
        u = torch.rand(2, 8, generator=gen, dtype=torch.float64)
        out = []
        for r in (replay, fresh):
            rows = [_agent_rows(s, step, 3) for s in (3, 4)]
            fields = [torch.cat(parts) for parts in zip(*rows, strict=True)]
            if frames is not None:
                fields[0] = (fields[0].abs() * 40).to(torch.uint8).repeat(1, 4)
                fields[3] = (fields[3].abs() * 40).to(torch.uint8).repeat(1, 4)
            r.add(*fields)
            batch = r.sample_n_step(3, 0.9, u, beta=0.7)
            r.update_priorities(batch.indices, batch.rewards.abs())
            out.append(batch)
        for name in ("indices", "weights", "obs", "next_obs", "rewards", "discounts"):
            assert torch.equal(getattr(out[0], name), getattr(out[1], name)), name
    assert torch.equal(fresh.prioritized.tree, replay.prioritized.tree)


def test_zero_priorities_fall_back_to_uniform():
    replay = AgentReplay(1, 16, 1, 3, CPU, prioritized=PrioritizedSpec(0.6, eps=0.0))
    _fill(replay, 16)
    _set_all(replay, torch.zeros(1, 16))
    u = torch.rand(1, 32_000, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    batch = replay.sample(u)
    assert stats.chisquare(torch.bincount(batch.indices, minlength=16).numpy()).pvalue > 1e-3
    assert torch.all(batch.weights == 1)


def test_errors():
    with pytest.raises(ValueError, match="alpha must be in"):
        PrioritizedSpec(alpha=1.5)
    with pytest.raises(ValueError, match="eps must be >= 0"):
        PrioritizedSpec(eps=-1.0)
    uniform = AgentReplay(1, 8, 1, 3, CPU)
    _fill(uniform, 3)
    with pytest.raises(ValueError, match="samples uniformly"):
        uniform.update_priorities(torch.zeros(2, dtype=torch.int64), torch.ones(2))
    replay = _replay(capacity=8, num_envs=1)
    _fill(replay, 3)
    with pytest.raises(ValueError, match="beta must be in"):
        replay.sample(torch.rand(1, 2, dtype=torch.float64), beta=2.0)
    with pytest.raises(ValueError, match="has no priorities"):
        replay.load_state_dict(uniform.state_dict())
    with pytest.raises(ValueError, match="do not fit"):
        saved = replay.prioritized.state_dict(3)
        PrioritizedSampler(2, 8, PrioritizedSpec()).load_state_dict(saved)
    with pytest.raises(ValueError, match="runs on the CPU"):
        PrioritizedSampler(1, 8, PrioritizedSpec(), device="meta", compiled=True)
