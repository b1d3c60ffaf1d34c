"""The Rainbow family wired into DQN (issue 26): prioritized replay's importance-weighted loss
and priority updates inside the learning step, the C51 and QR-DQN losses inside it against the
losses module, Q-values as the distributions' means, noisy exploration, and for each
algorithm agent k of a --seeds run = the single run with seed k and exact resume."""

import json
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

from chain_env import ChainEnv
from semigrad import envs, trainer
from semigrad.algos import dqn
from semigrad.losses import (
    double_q_learning,
    per_agent_q_learning_loss_and_grad,
    per_agent_weighted_q_learning_loss_and_grad,
    q_learning,
)
from semigrad.run import read_metrics
from semigrad.trainer import load_checkpoint

envs.register("TestChain-v0", lambda **kw: ChainEnv(**kw))
CPU = torch.device("cpu")
CHAIN = dict(env="TestChain-v0", steps=1200, num_envs=4, buffer_size=1200, batch_size=16,
             n_step=1, gradient_steps=1, alpha=3e-3, gamma=0.9, hidden=(16,), loss="mse",
             learning_starts=200, target_update_interval=50, epsilon_fraction=0.5,
             eval_every=400, eval_episodes=2, log_every=200, tensorboard=False, device="cpu")


def _strip(rows):
    return [{k: v for k, v in r.items() if k not in ("wall_s", "train_s")} for r in rows]


def _weights(run_dir):
    return trainer.load_agent(run_dir, "last").net.state_dict()


def assert_agent_k_is_single_run_k(algo, cfg, tmp_path, seeds=(0, 1, 2)):
    trainer.train(algo, cfg, tmp_path / "many", seeds=list(seeds), progress=False)
    single = trainer.train(algo, replace(cfg, seed=1), tmp_path / "single", progress=False)
    agent = json.loads((tmp_path / "many" / "seed1" / "summary.json").read_text())
    assert single["eval_returns"] == agent["eval_returns"]
    assert _strip(read_metrics(tmp_path / "single")) == \
        _strip(read_metrics(tmp_path / "many" / "seed1"))
    a, b = _weights(tmp_path / "single"), _weights(tmp_path / "many" / "seed1")
    assert all(torch.equal(a[n], b[n]) for n in a)
    c = _weights(tmp_path / "many" / "seed2")
    assert not all(torch.equal(a[n], c[n]) for n in a)


def assert_resume_is_exact(algo, cfg, tmp_path, stop_after=600):
    full = trainer.train(algo, cfg, tmp_path / "full", progress=False)
    part = trainer.train(algo, cfg, tmp_path / "part", progress=False, stop_after=stop_after)
    assert part["status"] == "interrupted"
    resumed = trainer.train(algo, cfg, tmp_path / "part", progress=False, resume=True)
    assert _strip(read_metrics(tmp_path / "full")) == _strip(read_metrics(tmp_path / "part"))
    assert full["eval_returns"] == resumed["eval_returns"]
    a = load_checkpoint(tmp_path / "full" / "checkpoint_last.pt")
    b = load_checkpoint(tmp_path / "part" / "checkpoint_last.pt")
    for key in ("online", "target", "buffers"):
        assert all(torch.equal(x, y) for x, y in zip(a[key], b[key], strict=True))
    if "priorities" in a["replay"]:
        assert torch.equal(a["replay"]["priorities"]["leaves"],
                           b["replay"]["priorities"]["leaves"])


# ----------------------------------------------------------------------------- prioritized


def _q_batch(k=3, b=8, a=4, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    q_tm1 = torch.randn(k, b, a, generator=g, dtype=dtype)
    q_t = torch.randn(k, b, a, generator=g, dtype=dtype)
    sel = torch.randn(k, b, a, generator=g, dtype=dtype)
    actions = torch.randint(0, a, (k * b,), generator=g)
    r = torch.randn(k * b, generator=g, dtype=dtype)
    disc = torch.rand(k * b, generator=g, dtype=dtype) * (torch.rand(k * b, generator=g) > 0.2)
    w = torch.rand(k * b, generator=g, dtype=torch.float32)
    return q_tm1, actions, r, disc, q_t, sel, w


@pytest.mark.parametrize("kind", ["mse", "huber"])
@pytest.mark.parametrize("double", [False, True])
def test_weighted_per_agent_loss_equals_autograd_of_the_weighted_loss(kind, double):
    q_tm1, a, r, disc, q_t, sel, w = _q_batch()
    k, b = q_tm1.shape[:2]
    selector = sel if double else None
    losses, mean_q, grad_q, td_abs = per_agent_weighted_q_learning_loss_and_grad(
        q_tm1, a, r, disc, q_t, selector, kind, w)
    leaf = q_tm1.clone().requires_grad_()
    per_row = []
    for i in range(k):
        rows = slice(i * b, (i + 1) * b)
        delta = (double_q_learning(leaf[i], a[rows], r[rows], disc[rows], q_t[i], sel[i])
                 if double else q_learning(leaf[i], a[rows], r[rows], disc[rows], q_t[i]))
        per = (delta ** 2 if kind == "mse"
               else F.huber_loss(delta, torch.zeros_like(delta), reduction="none"))
        per_row.append((w[rows].double() * per).mean())
        assert torch.allclose(td_abs[rows], delta.abs().detach())
    expected = torch.stack(per_row)
    grad, = torch.autograd.grad(expected.sum(), leaf)
    assert torch.allclose(losses, expected.detach())
    assert torch.allclose(grad_q, grad)
    assert torch.allclose(mean_q, q_tm1.mean(dim=(1, 2)))
    # no weights: the uniform loss exactly
    plain = per_agent_q_learning_loss_and_grad(q_tm1, a, r, disc, q_t, selector, kind)
    unweighted = per_agent_weighted_q_learning_loss_and_grad(q_tm1, a, r, disc, q_t, selector,
                                                             kind)
    for x, y in zip(plain, unweighted[:3], strict=True):
        assert torch.equal(x, y)


def _filled(cfg, seeds=(0, 1)):
    st = dqn.init(cfg, list(seeds), CPU)
    for _ in range(60):
        dqn.act(cfg, st, 1.0)
    return st


def test_prioritized_learn_step_weights_the_loss_and_updates_the_drawn_priorities():
    cfg = dqn.DQNConfig(**{**CHAIN, "prioritized": True, "q_backend": "vmap",
                           "max_grad_norm": 0.0, "double": True})
    st = _filled(cfg)
    # some priorities apart from the maximum, so the draw is not uniform
    st.replay.prioritized.update(torch.arange(8).expand(2, 8), torch.linspace(0, 3, 16)
                                 .view(2, 8))
    batch = st.replay.sample(st.uniforms.take(cfg.batch_size), beta=0.5)
    assert not torch.all(batch.weights == 1)
    k, b = 2, cfg.batch_size
    discount = cfg.gamma * (~batch.terminated).double()
    shape = (k, b, -1)
    q = st.online(batch.obs.view(shape))
    with torch.no_grad():
        q_t = st.target(batch.next_obs.view(shape))
        sel = st.online(batch.next_obs.view(shape))
    expected_loss, expected_abs = [], []
    for i in range(k):
        rows = slice(i * b, (i + 1) * b)
        delta = double_q_learning(q[i], batch.actions[rows], batch.rewards[rows],
                                  discount[rows].float(), q_t[i], sel[i])
        expected_abs.append(delta.abs().detach())
        expected_loss.append((batch.weights[rows] * delta ** 2).mean())
    grads = torch.autograd.grad(torch.stack(expected_loss).sum(), st.online.params)
    dqn.learn(cfg, st, batch, discount)
    for p, g in zip(st.online.params, grads, strict=True):
        assert torch.allclose(p.grad, g, atol=1e-6)
    slots = batch.indices.view(k, b)
    leaves = st.replay.prioritized.leaves().gather(1, slots)
    want = (torch.stack(expected_abs).double() + cfg.priority_eps) ** cfg.priority_alpha
    # a slot drawn twice keeps its larger priority
    for i in range(k):
        for j in range(b):
            same = slots[i] == slots[i, j]
            assert torch.isclose(leaves[i, j], want[i][same].max(), rtol=1e-5)


def test_prioritized_beta_anneals_to_one_and_memory_counts_the_trees():
    cfg = dqn.DQNConfig(**{**CHAIN, "prioritized": True})
    assert dqn.beta_at(cfg, 0) == cfg.priority_beta and dqn.beta_at(cfg, cfg.steps) == 1.0
    assert dqn.memory_bytes(cfg, 2) > dqn.memory_bytes(replace(cfg, prioritized=False), 2)


@pytest.mark.parametrize("n_step", [1, 3])
def test_prioritized_dqn_agent_k_is_single_run_k(tmp_path, n_step):
    cfg = dqn.DQNConfig(**{**CHAIN, "prioritized": True, "n_step": n_step})
    assert_agent_k_is_single_run_k(dqn, cfg, tmp_path)


def test_prioritized_dqn_resumes_exactly(tmp_path):
    cfg = dqn.DQNConfig(**{**CHAIN, "prioritized": True, "n_step": 3, "seed": 2})
    assert_resume_is_exact(dqn, cfg, tmp_path)
