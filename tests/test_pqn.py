"""PQN: its lambda-returns against the recursion they stand for, LayerNorm's hand-written
backward against autograd, agent k of a --seeds run against the single run, exact resume,
load_agent, and learning (a chain MDP; CartPole)."""

import json
import math
from dataclasses import replace

import pytest
import torch

from chain_env import ChainEnv, PixelChainEnv
from semigrad import envs, trainer
from semigrad.algos import pqn
from semigrad.config import ConfigError
from semigrad.losses import (
    fold_termination,
    lambda_returns,
    per_agent_regression_loss_and_grad,
    td_error_loss_per_row,
    td_learning,
)
from semigrad.nets import (
    ChannelLayerNorm,
    DuelingQNetwork,
    QNetwork,
    StackedConvNet,
    StackedMLP,
    minatar_q_network,
    nature_q_network,
    q_ensemble,
)
from semigrad.run import read_metrics

envs.register("TestChain-v0", lambda **kw: ChainEnv(**kw))
envs.register("TestPixelChain-v0", lambda **kw: PixelChainEnv(**kw))
CPU = torch.device("cpu")

# small and fast: 8 envs x 16 steps = 128 env steps an iteration, 2 x 4 gradient steps
SMALL = dict(num_envs=8, rollout=16, epochs=2, minibatches=4, hidden=(16, 16),
             eval_every=256, eval_episodes=4, log_every=128, tensorboard=False, device="cpu")


# ----------------------------------------------------------------------------- lambda-returns


def _reference(r, discount, v, lam, truncated):
    """The per-step recursion in Python floats, one column at a time."""
    t_max, b = r.shape
    out = [[0.0] * b for _ in range(t_max)]
    for j in range(b):
        g = None
        for t in reversed(range(t_max)):
            r_t, d_t, v_t = float(r[t, j]), float(discount[t, j]), float(v[t, j])
            lam_t = 0.0 if truncated[t, j] else float(lam[t, j] if torch.is_tensor(lam)
                                                        else lam)
            if t == t_max - 1:
                g = r_t + d_t * v_t
            else:
                g = r_t + d_t * ((1 - lam_t) * v_t + lam_t * g)
            out[t][j] = g
    return torch.tensor(out, dtype=torch.float64)


def _rollout(seed, t=12, b=5, p_end=0.2):
    gen = torch.Generator().manual_seed(seed)
    r = torch.randn(t, b, generator=gen, dtype=torch.float64)
    v = torch.randn(t, b, generator=gen, dtype=torch.float64)
    ends = torch.rand(t, b, generator=gen) < p_end
    terminated = ends & (torch.rand(t, b, generator=gen) < 0.5)
    truncated = ends & ~terminated
    return r, v, terminated, truncated


@pytest.mark.parametrize("lam", [0.0, 0.3, 0.9, 1.0, "per-step"])
def test_lambda_returns_equal_the_per_step_recursion(lam):
    for seed in range(5):
        r, v, terminated, truncated = _rollout(seed)
        if lam == "per-step":
            lam = torch.rand(r.shape, generator=torch.Generator().manual_seed(seed),
                             dtype=torch.float64)
        discount = fold_termination(0.97, terminated.view(-1), torch.float64).view(r.shape)
        got = lambda_returns(r, discount, v, lam, truncated_t=truncated)
        assert torch.allclose(got, _reference(r, discount, v, lam, truncated), rtol=0,
                              atol=1e-12)


def test_lambda_zero_is_the_one_step_target_exactly():
    r, v, terminated, truncated = _rollout(1)
    discount = fold_termination(0.9, terminated.view(-1), torch.float64).view(r.shape)
    one_step = td_learning(torch.zeros(r.numel(), dtype=torch.float64), r.view(-1),
                           discount.view(-1), v.view(-1)).view(r.shape)
    assert torch.equal(lambda_returns(r, discount, v, 0.0, truncated_t=truncated), one_step)
    assert torch.equal(lambda_returns(r, discount, v, 0.0), one_step)


def test_lambda_one_is_the_monte_carlo_return_up_to_the_bootstrap():
    """Sum of discounted rewards to the episode's end: nothing after a termination, gamma^m
    v after a truncation or at the rollout's end."""
    gamma = 0.9
    r, v, terminated, truncated = _rollout(2, t=15, b=6, p_end=0.15)
    discount = fold_termination(gamma, terminated.view(-1), torch.float64).view(r.shape)
    got = lambda_returns(r, discount, v, 1.0, truncated_t=truncated)
    t_max, b = r.shape
    for j in range(b):
        for t in range(t_max):
            total, k = 0.0, t
            while True:
                total += gamma ** (k - t) * float(r[k, j])
                if terminated[k, j]:
                    break
                if truncated[k, j] or k == t_max - 1:
                    total += gamma ** (k - t + 1) * float(v[k, j])
                    break
                k += 1
            assert math.isclose(float(got[t, j]), total, rel_tol=0, abs_tol=1e-12), (t, j)


def test_terminated_and_truncated_are_told_apart():
    """Same rewards and values; step 2 of 5 ends the episode. Terminated: G_2 = r_2 (no
    bootstrap). Truncated: G_2 = r_2 + gamma v_2 (the true final state's value). Both cut the
    chain: G_2 does not see steps 3-4, which are equal in the two columns."""
    gamma, lam = 0.9, 0.8
    r = torch.tensor([[1.0, 1.0]] * 5, dtype=torch.float64)
    v = torch.tensor([[10.0, 10.0]] * 5, dtype=torch.float64)
    r[3:], v[3:] = 5.0, 30.0  # the next episode: another return than the bootstrap's
    terminated = torch.zeros(5, 2, dtype=torch.bool)
    truncated = torch.zeros(5, 2, dtype=torch.bool)
    terminated[2, 0] = truncated[2, 1] = True
    discount = fold_termination(gamma, terminated.view(-1), torch.float64).view(5, 2)
    g = lambda_returns(r, discount, v, lam, truncated_t=truncated)
    assert g[2, 0].item() == 1.0
    assert g[2, 1].item() == pytest.approx(1.0 + gamma * 10.0, abs=1e-12)
    assert torch.equal(g[3:, 0], g[3:, 1])
    g1 = 1.0 + gamma * ((1 - lam) * 10.0 + lam * g[2, 0].item())
    assert g[1, 0].item() == pytest.approx(g1, abs=1e-12)
    # without truncated_t a truncation would leak the next episode's return into G_2
    leaked = lambda_returns(r, discount, v, lam)
    assert leaked[2, 1].item() != pytest.approx(g[2, 1].item())


@pytest.mark.parametrize(("kwargs", "message"), [
    (dict(r_t=torch.zeros(3)), "`r_t` must be a float tensor of shape (T, B)"),
    (dict(v_t=torch.zeros(3, 5)), "`v_t` must be a float tensor of shape (T, B)=(3, 4)"),
    (dict(lambda_=1.5), "`lambda_` must be a float in [0, 1]"),
    (dict(lambda_=torch.zeros(2, 4)), "`lambda_` must be a float tensor of shape (T, B)"),
    (dict(truncated_t=torch.zeros(3, 4)), "`truncated_t` must be a bool tensor"),
])
def test_lambda_returns_checks_its_inputs(kwargs, message):
    args = dict(r_t=torch.zeros(3, 4), discount_t=torch.zeros(3, 4), v_t=torch.zeros(3, 4),
                lambda_=0.5)
    with pytest.raises(ValueError, match="lambda_returns") as info:
        lambda_returns(**{**args, **kwargs})
    assert message in str(info.value)


@pytest.mark.parametrize("kind", ["mse", "huber"])
def test_regression_loss_and_grad_are_autograds(kind):
    gen = torch.Generator().manual_seed(0)
    q = (3 * torch.randn(3, 7, 4, generator=gen, dtype=torch.float64)).requires_grad_()
    a = torch.randint(4, (3, 7), generator=gen)
    target = 3 * torch.randn(3, 7, generator=gen, dtype=torch.float64)
    losses, mean_q, grad_q = per_agent_regression_loss_and_grad(q.detach(), a, target, kind)
    ref = td_error_loss_per_row(target - q.gather(2, a.unsqueeze(2)).squeeze(2), kind)
    ref.sum().backward()
    assert torch.allclose(losses, ref.detach(), rtol=0, atol=1e-14)
    assert torch.allclose(grad_q, q.grad, rtol=0, atol=1e-14)
    assert torch.equal(mean_q, q.detach().mean(dim=(1, 2)))
    assert torch.equal((grad_q != 0).sum(dim=2), torch.ones(3, 7, dtype=torch.int64))


# ----------------------------------------------------------------------------- LayerNorm


def _normed_nets(cls, activation, k=3, hidden=(7, 6)):
    nets = []
    for s in range(k):
        torch.manual_seed(s)
        net = cls(5, 3, hidden=hidden, activation=activation, layer_norm=True).double()
        with torch.no_grad():  # away from LayerNorm's initial ones and zeros
            for m in net.modules():
                if isinstance(m, torch.nn.LayerNorm):
                    m.weight.normal_(1.0, 0.5)
                    m.bias.normal_(0.0, 0.5)
        nets.append(net)
    return nets


@pytest.mark.parametrize("cls", [QNetwork, DuelingQNetwork])
@pytest.mark.parametrize("activation", ["relu", "tanh", "elu"])
def test_stacked_layer_norm_forward_and_backward_are_autograds_in_float64(cls, activation):
    nets = _normed_nets(cls, activation)
    assert sum(isinstance(m, torch.nn.LayerNorm) for m in nets[0].modules()) == 2
    ens = q_ensemble(nets, CPU, "stacked", activation)
    assert isinstance(ens, StackedMLP) and ens.layer_norm
    x = torch.randn(3, 11, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    q, cache = ens.forward(x)
    grad_q = torch.randn(q.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    ens.backward(cache, grad_q)
    grads = StackedMLP([p.grad for p in ens.params], ens.dueling, activation, layer_norm=True)
    for k, net in enumerate(nets):
        out = net(x[k])
        assert torch.allclose(q[k], out, rtol=0, atol=1e-12)
        assert torch.allclose(ens(x)[k], out, rtol=0, atol=1e-12)
        out.backward(grad_q[k])
        weights, got = ens.agent_state_dict(k, net), grads.agent_state_dict(k, net)
        for name, p in net.named_parameters():
            assert torch.equal(weights[name], p.detach()), name
            assert torch.allclose(got[name], p.grad, rtol=0, atol=1e-10), name


def test_layer_norm_nets_on_the_general_backend_match_the_stacked_path():
    nets = _normed_nets(QNetwork, "relu", k=2)
    x = torch.randn(2, 9, 5, dtype=torch.float64)
    stacked, general = (q_ensemble(nets, CPU, b, "relu") for b in ("stacked", "vmap"))
    assert torch.allclose(stacked(x), general(x), rtol=0, atol=1e-12)


@pytest.mark.parametrize("dueling", [False, True])
def test_stacked_conv_layer_norm_is_autograds_in_float64(dueling):
    """The MinAtar network with LayerNorm on the fast path (each position's filters normalised
    as a row of patches) against K ConvQNetworks run with autograd."""
    nets = []
    for s in range(3):
        torch.manual_seed(s)
        net = minatar_q_network((3, 6, 7), 5, dueling, layer_norm=True).double()
        with torch.no_grad():
            for m in net.modules():
                if isinstance(m, torch.nn.LayerNorm):
                    m.weight.normal_(1.0, 0.5)
                    m.bias.normal_(0.0, 0.5)
        nets.append(net)
    assert isinstance(nets[0].torso[1], ChannelLayerNorm)
    ens = q_ensemble(nets, CPU, "stacked")
    assert isinstance(ens, StackedConvNet) and ens.layer_norm
    gen = torch.Generator().manual_seed(3)
    x = (torch.rand(3, 11, 3 * 6 * 7, generator=gen) < 0.3).to(torch.uint8)
    grad_q = torch.randn(3, 11, 5, dtype=torch.float64, generator=gen)
    q, cache = ens.forward(x)
    ens.backward(cache, grad_q)
    grads = StackedConvNet([p.grad for p in ens.params], dueling, ens.patches, 1.0,
                           layer_norm=True)
    for k, net in enumerate(nets):
        out = net(x[k])
        assert torch.allclose(q[k], out, rtol=0, atol=1e-12)
        assert torch.allclose(ens(x)[k], out, rtol=0, atol=1e-12)
        out.backward(grad_q[k])
        weights, got = ens.agent_state_dict(k, net), grads.agent_state_dict(k, net)
        assert weights.keys() == dict(net.named_parameters()).keys()
        for name, p in net.named_parameters():
            assert torch.equal(weights[name], p.detach()), name
            assert torch.allclose(got[name], p.grad, rtol=0, atol=1e-10), name


def test_channel_layer_norm_normalises_each_positions_channels():
    norm = ChannelLayerNorm(4).double()
    with torch.no_grad():
        norm.weight.normal_()
        norm.bias.normal_()
    x = torch.randn(2, 4, 3, 5, dtype=torch.float64)
    ref = torch.nn.functional.layer_norm(x.permute(0, 2, 3, 1), (4,), norm.weight, norm.bias)
    assert torch.allclose(norm(x), ref.permute(0, 3, 1, 2), rtol=0, atol=1e-14)
    nature = nature_q_network((4, 84, 84), 6, layer_norm=True)
    assert sum(isinstance(m, ChannelLayerNorm) for m in nature.modules()) == 3
    assert not StackedConvNet.fits(nature)  # three convolutions: the general path


def test_without_layer_norm_the_networks_are_unchanged():
    torch.manual_seed(0)
    plain = QNetwork(4, 2)
    torch.manual_seed(0)
    normed = QNetwork(4, 2, layer_norm=True)
    assert not any(isinstance(m, torch.nn.LayerNorm) for m in plain.modules())
    assert [n for n, _ in plain.named_parameters()] == \
        ["net.0.weight", "net.0.bias", "net.2.weight", "net.2.bias", "net.4.weight",
         "net.4.bias"]
    linear = [m for m in normed.modules() if isinstance(m, torch.nn.Linear)]
    for a, b in zip([m for m in plain.modules() if isinstance(m, torch.nn.Linear)], linear,
                    strict=True):
        assert torch.equal(a.weight, b.weight)  # LayerNorm draws no random numbers


# ----------------------------------------------------------------------------- the algorithm


def test_bad_config_values_are_one_clear_error():
    for overrides, message in [
        (dict(minibatches=7), "minibatches: 7 does not divide"),
        (dict(q_lambda=1.5), "q_lambda: 1.5 is outside the allowed range [0, 1]"),
        (dict(optimizer="sgd"), "optimizer: 'sgd' is not one of"),
        (dict(activation="gelu", q_backend="stacked"), "q_backend: 'stacked' runs"),
        (dict(rollout=0), "rollout: 0 is outside the allowed range"),
        (dict(env="CartPole-v9"), "did you mean 'CartPole-v1'"),
    ]:
        with pytest.raises(ConfigError) as info:
            pqn.preset(**overrides)
        assert message in str(info.value), overrides


def test_an_iteration_is_a_rollout_and_epochs_times_minibatches_steps():
    cfg = pqn.preset(**SMALL, steps=1024)
    st = pqn.init(cfg, [0, 1], CPU)
    assert pqn.iterate(cfg, st, 0) == 8 * 16
    assert st.gradient_steps == 2 * 4 and st.acc[:, 4].tolist() == [8.0, 8.0]
    assert st.rollout.obs.shape == (16, 16, 4)


def _strip(rows):
    return [{k: v for k, v in r.items() if k not in ("wall_s", "train_s")} for r in rows]


def _weights(run_dir):
    return pqn.load_agent(run_dir, "last").net.state_dict()


@pytest.mark.parametrize(("env_id", "backend", "extra"), [
    ("CartPole-v1", "stacked", {}),
    ("CartPole-v1", "vmap", {"activation": "tanh"}),
    ("TestChain-v0", "stacked", {"layer_norm": False, "optimizer": "radam"}),
    ("TestPixelChain-v0", "stacked", {"network": "minatar", "gamma": 0.9}),
])
def test_agent_k_of_a_seeds_run_is_the_single_run_with_seed_k(tmp_path, env_id, backend,
                                                               extra):
    cfg = pqn.preset(**{**SMALL, "env": env_id, "steps": 1024, "q_backend": backend,
                        **extra})
    many = pqn.train(cfg, tmp_path / "many", seeds=[0, 1, 2], progress=False)
    single = pqn.train(replace(cfg, seed=1), tmp_path / "single", progress=False)
    agent = json.loads((tmp_path / "many" / "seed1" / "summary.json").read_text())
    assert single["eval_returns"] == agent["eval_returns"]
    assert len(single["eval_returns"]) == 1024 // 256
    assert many["per_seed"][1]["final_eval_return"] == single["final_eval_return"]
    assert _strip(read_metrics(tmp_path / "single")) == \
        _strip(read_metrics(tmp_path / "many" / "seed1"))
    a, b = _weights(tmp_path / "single"), _weights(tmp_path / "many" / "seed1")
    assert all(torch.equal(a[n], b[n]) for n in a)
    c = _weights(tmp_path / "many" / "seed2")
    assert not all(torch.equal(a[n], c[n]) for n in a)  # another seed, another agent


@pytest.mark.parametrize("seeds", [None, [3, 1]])
def test_resume_equals_uninterrupted(tmp_path, seeds):
    """Stopped between evaluations and resumed: the metrics rows, evaluations and weights of
    an uninterrupted run, bit for bit."""
    cfg = pqn.preset(**SMALL, steps=1280, seed=3)
    full = pqn.train(cfg, tmp_path / "full", seeds=seeds, progress=False)
    part = pqn.train(cfg, tmp_path / "part", seeds=seeds, progress=False, stop_after=640)
    assert part["status"] == "interrupted"
    resumed = pqn.train(cfg, tmp_path / "part", seeds=seeds, progress=False, resume=True)
    dirs = [""] if seeds is None else [f"seed{s}" for s in seeds]
    for d in dirs:
        assert _strip(read_metrics(tmp_path / "full" / d)) == \
            _strip(read_metrics(tmp_path / "part" / d))
        a, b = _weights(tmp_path / "full" / d), _weights(tmp_path / "part" / d)
        assert all(torch.equal(a[n], b[n]) for n in a)
    if seeds is None:
        for key in ("eval_returns", "gradient_steps", "env_steps", "final_eval_return"):
            assert full[key] == resumed[key], key
    else:
        assert full["per_seed"] == [{**p, "run_dir": p["run_dir"].replace("part", "full")}
                                    for p in resumed["per_seed"]]
    a, b = (trainer.load_checkpoint(tmp_path / n / "checkpoint_last.pt") for n in ("full", "part"))
    assert all(torch.equal(x, y) for x, y in zip(a["online"], b["online"], strict=True))
    for x, y in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values(),
                    strict=True):
        assert all(torch.equal(x[n], y[n]) for n in x)


def test_load_agent_of_a_pqn_run_acts_greedily_with_its_weights(tmp_path):
    cfg = pqn.preset(**SMALL, steps=512)
    pqn.train(cfg, tmp_path, progress=False)
    for which in ("best", "last"):
        agent = pqn.load_agent(tmp_path, which)
        assert agent.cfg == cfg and isinstance(agent.net, QNetwork)
        assert sum(isinstance(m, torch.nn.LayerNorm) for m in agent.net.modules()) == 2
        obs = torch.randn(6, 4)
        assert torch.equal(agent.act(obs), agent.q_values(obs).argmax(dim=1))
    payload = trainer.load_checkpoint(tmp_path / "checkpoint_last.pt")
    template = pqn.make_network(cfg, envs.make("CartPole-v1"))
    state = pqn.weights_from_state(cfg, payload, template)
    last = pqn.load_agent(tmp_path, "last").net.state_dict()
    assert all(torch.equal(state[n], last[n]) for n in last)
    assert payload["algo"] == "pqn"


def test_greedy_policy_is_optimal_on_the_chain(tmp_path):
    cfg = pqn.PQNConfig(env="TestChain-v0", steps=6144, num_envs=16, rollout=16, epochs=2,
                        minibatches=4, hidden=(32,), alpha=3e-3, gamma=0.9, q_lambda=0.5,
                        epsilon_fraction=0.5, eval_every=2048, eval_episodes=4,
                        log_every=1024, tensorboard=False, device="cpu")
    summary = pqn.train(cfg, tmp_path, progress=False)
    agent = pqn.load_agent(tmp_path, "last")
    assert torch.equal(agent.act(torch.eye(5)[:4]), torch.ones(4, dtype=torch.int64))
    q = agent.q_values(torch.eye(5)[:4])
    q_right = torch.tensor([0.9 ** (3 - s) for s in range(4)])
    assert (q[:, 1] - q_right).abs().max().item() < 0.1
    assert summary["final_eval_return"] == 1.0


def test_learns_cartpole(tmp_path):
    """The CartPole preset from the env's own starts, seed 0, its first 61,440 env steps (the
    preset's exploration schedule; a few seconds): the greedy policy reaches the 475
    threshold (the preset's run first did at 40,960 env steps)."""
    cfg = pqn.preset(steps=60_000, epsilon_fraction=1.0, tensorboard=False, device="cpu")
    assert cfg.epsilon_fraction * cfg.steps == pqn.PRESETS["cartpole"].epsilon_fraction * \
        pqn.PRESETS["cartpole"].steps
    summary = pqn.train(cfg, tmp_path, progress=False)
    assert summary["solved"] and summary["best_eval_return"] >= 475, summary["eval_returns"]


def test_the_command_line_trains_resumes_evaluates_and_reports_a_pqn_run(tmp_path, capsys):
    """`semigrad train --algo pqn`: --seeds, Ctrl-C-style stop and --resume (the algorithm
    found in the run), eval of one seed's folder, report ranking it by its returns."""
    import json

    from semigrad.cli import main

    run_dir = tmp_path / "p"
    flags = ["--env", "TestChain-v0", "--steps", "2048", "--num-envs", "8", "--rollout", "16",
             "--epochs", "2", "--minibatches", "4", "--hidden", "16", "16", "--eval-every",
             "512", "--eval-episodes", "2", "--no-tensorboard", "--no-progress"]
    assert main(["train", "--algo", "pqn", "--seeds", "0-1", *flags,
                 "--run-dir", str(run_dir)]) == 0
    out = capsys.readouterr().out
    assert "2 agents in one process" in out
    config = json.loads((run_dir / "seed1" / "config.json").read_text())
    assert (config["command"], config["algo"], config["rollout"]) == ("train", "pqn", 16)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["algo"] == "pqn" and summary["env_steps_per_agent"] == 2048
    assert main(["eval", str(run_dir / "seed1"), "--episodes", "2"]) == 0
    assert main(["train", "--resume", str(run_dir), "--no-progress"]) == 2  # finished
    assert "already ended" in capsys.readouterr().err
    assert main(["report", str(run_dir), "--reps", "200"]) == 0
    assert "| pqn | 2 |" in capsys.readouterr().out
    assert main(["train", "--algo", "pqn", "--preset", "nope"]) == 2
    assert "invalid choice: 'nope'" in capsys.readouterr().err
