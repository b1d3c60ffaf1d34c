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


# ----------------------------------------------------------------------------- distributional

from semigrad.algos import c51, qrdqn, rainbow  # noqa: E402
from semigrad.heads import HeadNetwork  # noqa: E402
from semigrad.losses import categorical_q_learning, quantile_q_learning  # noqa: E402
from semigrad.noisy import (  # noqa: E402
    noise_indices,
    noise_off,
    resample_noise,
    resample_stacked_noise,
)

FAMILY = dict(CHAIN, num_atoms=11, v_min=0.0, v_max=2.0)


def _config(module, **extra):
    fields = dict(FAMILY) if module is not qrdqn else {**CHAIN, "num_quantiles": 9}
    return module.Config(**{**fields, **extra})


def _reference(module, cfg, logits, a, r, disc, logits_t, selector):
    if module is qrdqn:
        return quantile_q_learning(logits, a, r, disc, logits_t, selector, cfg.kappa)
    z = torch.linspace(cfg.v_min, cfg.v_max, cfg.num_atoms)
    return categorical_q_learning(logits, a, r, disc, logits_t, z, selector)


@pytest.mark.parametrize("module", [c51, qrdqn, rainbow])
def test_distributional_learn_step_equals_the_losses_modules_loss(module):
    """One learning step of K = 2 agents: each agent's loss (in st.acc) and the gradient of
    the online network are those of ``losses.categorical_q_learning`` (or
    ``quantile_q_learning``) per agent, with Double selection by the online means, weighted
    by the importance weights where prioritized; the drawn priorities become the losses."""
    cfg = _config(module, max_grad_norm=0.0, n_step=3, double=True)
    st = module.init(cfg, [0, 1], CPU)
    for _ in range(60):
        dqn.act(cfg, st, 1.0)
    u = st.uniforms.take(cfg.batch_size)
    beta = {"beta": 0.5} if cfg.prioritized else {}
    batch = st.replay.sample_n_step(cfg.n_step, cfg.gamma, u, **beta)
    disc = batch.discounts * (~batch.terminated)
    k, b = 2, cfg.batch_size
    if cfg.noisy:  # the step resamples first: replay it from the same generator states
        states = [g.get_state() for g in st.noise.generators]
        st.noise.resample(st.online, st.target)
    shape = (k, b, -1)
    out = st.online(batch.obs.view(shape))
    with torch.no_grad():
        out_t = st.target(batch.next_obs.view(shape))
        sel = st.head.q_values(st.online(batch.next_obs.view(shape)))
    per_agent, per_sample = [], []
    for i in range(k):
        rows = slice(i * b, (i + 1) * b)
        per = _reference(module, cfg, out[i], batch.actions[rows], batch.rewards[rows],
                         disc[rows].float(), out_t[i], sel[i])
        w = batch.weights[rows] if cfg.prioritized else torch.ones(b)
        per_agent.append((w * per).mean())
        per_sample.append(per.detach())
    grads = torch.autograd.grad(torch.stack(per_agent).sum(), st.online.params)
    if cfg.noisy:
        for g, s in zip(st.noise.generators, states, strict=True):
            g.set_state(s)
    before = st.acc[:, 2].clone()
    dqn.learn(cfg, st, batch, disc)
    torch.testing.assert_close((st.acc[:, 2] - before).float(),
                               torch.stack(per_agent).detach(), atol=1e-6, rtol=1e-6)
    for p, g in zip(st.online.params, grads, strict=True):
        torch.testing.assert_close(p.grad, g, atol=1e-6, rtol=1e-5)
    if cfg.prioritized:
        leaves = st.replay.prioritized.leaves().gather(1, batch.indices.view(k, b))
        want = (torch.stack(per_sample).double() + cfg.priority_eps) ** cfg.priority_alpha
        assert torch.all(leaves >= want * (1 - 1e-5))  # a slot drawn twice keeps the larger


@pytest.mark.parametrize("module", [c51, qrdqn, rainbow])
def test_q_values_are_the_distributions_means_everywhere(module, tmp_path):
    cfg = _config(module, steps=400, learning_starts=100, eval_every=400)
    st = module.init(cfg, [0, 3], CPU)
    obs = torch.eye(5)[:4].expand(2, 4, 5)
    with dqn.grad_mode(st):
        q = module.q_values(st, obs)
    nets = []
    for k in range(2):
        net = module.make_network(cfg, st.env)
        net.load_state_dict(module.agent_state_dict(st, k, net))
        nets.append(net.eval())
        v, p = net.distribution(obs[k])
        torch.testing.assert_close(q[k], (v * p).sum(-1))
        torch.testing.assert_close(q[k], net(obs[k]))
    module.train(cfg, tmp_path, progress=False)
    agent = trainer.load_agent(tmp_path, "last")
    values, probs = agent.distribution(torch.eye(5)[:3])
    m = cfg.num_quantiles if module is qrdqn else cfg.num_atoms
    assert values.shape == probs.shape == (3, 2, m)
    torch.testing.assert_close(probs.sum(-1), torch.ones(3, 2))
    torch.testing.assert_close(agent.q_values(torch.eye(5)[:3]), (values * probs).sum(-1))
    one_v, one_p = agent.distribution(torch.eye(5)[0])
    assert one_v.shape == one_p.shape == (2, m)
    with pytest.raises(ValueError, match="no return distribution"):
        dqn.train(dqn.DQNConfig(**{**CHAIN, "steps": 400, "learning_starts": 100,
                                   "eval_every": 400}), tmp_path / "dqn", progress=False)
        trainer.load_agent(tmp_path / "dqn", "last").distribution(torch.eye(5)[:1])


@pytest.mark.parametrize("module", [c51, rainbow])
def test_distributional_agent_k_is_single_run_k(module, tmp_path):
    assert_agent_k_is_single_run_k(module, _config(module, n_step=3), tmp_path)


@pytest.mark.parametrize("module", [c51, rainbow, qrdqn])
def test_distributional_resume_is_exact(module, tmp_path):
    assert_resume_is_exact(module, _config(module, n_step=3, seed=1), tmp_path)


def test_c51_learns_the_chain():
    """The chain's optimal values (all < 1) from C51 with a support on [0, 2]."""
    from chain_env import optimal_q

    cfg = _config(c51, steps=3000, eval_every=1000)
    st = c51.init(cfg, [0], CPU)
    env_steps = 0
    while env_steps < cfg.steps:
        env_steps += c51.iterate(cfg, st, env_steps)
    with dqn.grad_mode(st):
        q = c51.q_values(st, torch.eye(5)[:4].unsqueeze(0))[0].double()
    assert torch.equal(q.argmax(dim=1), torch.ones(4, dtype=torch.int64))
    assert (q - optimal_q(5, 0.9)).abs().max().item() < 0.1


def test_bad_family_configs_are_one_clear_error():
    from semigrad.config import ConfigError

    with pytest.raises(ConfigError, match="v_min"):
        c51.C51Config(**{**FAMILY, "v_min": 3.0})
    with pytest.raises(ConfigError, match="network"):
        c51.C51Config(**{**FAMILY, "network": "conv_net:conv_q_network"})
    with pytest.raises(ConfigError, match="q_backend"):
        qrdqn.QRDQNConfig(**{**CHAIN, "q_backend": "stacked"})
    with pytest.raises(ConfigError, match="noisy"):
        dqn.DQNConfig(**{**CHAIN, "noisy": True, "network": "conv_net:conv_q_network"})


# ----------------------------------------------------------------------------- noisy nets


def test_stacked_noise_is_each_agents_single_network_noise_and_off_is_eval():
    nets = []
    for s in (0, 1):
        torch.manual_seed(s)
        nets.append(HeadNetwork(5, 2, "categorical", 7, (8, 8), dueling=True, noisy_sigma0=0.5))
    from semigrad.nets import ModuleEnsemble

    ens = ModuleEnsemble.stack(nets, CPU)
    idx = noise_indices(nets[0])
    assert len(idx) == 2 * 4  # two torso layers, advantage, value
    gens = [torch.Generator().manual_seed(10 + s) for s in (0, 1)]
    resample_stacked_noise(ens.buffers, idx, gens)
    x = torch.randn(2, 3, 5)
    for k in (0, 1):
        resample_noise(nets[k], torch.Generator().manual_seed(10 + k))
        state = ens.agent_state_dict(k, nets[k])
        for name, b in nets[k].named_buffers():
            assert torch.equal(state[name], b), name
        with torch.no_grad():
            torch.testing.assert_close(ens(x)[k], nets[k](x[k]))
    with noise_off(ens.buffers, idx), torch.no_grad():
        means = ens(x)
    for k in (0, 1):
        with torch.no_grad():
            torch.testing.assert_close(means[k], nets[k].eval()(x[k]))
        nets[k].train()
    with torch.no_grad():  # the noise is back
        torch.testing.assert_close(ens(x)[1], nets[1](x[1]))


def test_noisy_dqn_explores_by_noise_reproducibly(tmp_path):
    cfg = dqn.DQNConfig(**{**CHAIN, "noisy": True, "epsilon_start": 0.0, "epsilon_end": 0.0,
                           "noisy_sigma0": 2.0})
    runs = []
    for _ in range(2):
        st = dqn.init(cfg, [4], CPU)
        actions = []
        for _ in range(30):
            dqn.act(cfg, st, 0.0)
            actions.append(st.replay.buffer.actions[st.replay.buffer.pos - 4:
                                                    st.replay.buffer.pos].clone())
        runs.append(torch.stack(actions))
    assert torch.equal(runs[0], runs[1])
    assert 0 < runs[0].float().mean() < 1  # with epsilon 0, the noise alone varies actions


def test_noisy_dqn_agent_k_is_single_run_k_and_resumes(tmp_path):
    cfg = dqn.DQNConfig(**{**CHAIN, "noisy": True, "epsilon_start": 0.0, "epsilon_end": 0.0})
    assert_agent_k_is_single_run_k(dqn, cfg, tmp_path / "k")
    assert_resume_is_exact(dqn, replace(cfg, seed=3), tmp_path / "r")
