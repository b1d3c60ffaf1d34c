"""Semi-gradient TD(0): the textbook update by hand, closed-form fixed points, CartPole vs MC,
the notebook's rule and the divergence rule, K seeds at once and exact resume."""

import numpy as np
import pytest
import torch

from semigrad import envs, trainer
from semigrad.algos import td0 as td0_mod
from semigrad.algos.monte_carlo import DEFAULT_PROBES, cartpole_values
from semigrad.algos.td0 import (
    MLPSemiGradient,
    TD0Config,
    UniformRandomPolicy,
    make_optimizer,
    td0,
    td_loss,
    value_bound,
)
from semigrad.config import ConfigError
from semigrad.envs import BatchedEnv, EnvSpec, EpisodeCounter
from semigrad.nets import LinearValue, ValueNetwork
from semigrad.optim import lean_step


class Recorder(BatchedEnv):
    """Wraps an env and records every transition (S, R, terminated, truncated, S')."""

    def __init__(self, env):
        self.env, self.spec, self.num_envs, self.device = env, env.spec, env.num_envs, env.device
        self.transitions = []

    def reset(self):
        self.obs = self.env.reset()
        return self.obs

    def step(self, actions):
        out = self.env.step(actions)
        obs, reward, terminated, truncated, info = out
        self.transitions.append((self.obs.double(), reward.double(), terminated, truncated,
                                 info["final_obs"].double()))
        self.obs = obs
        return out


def textbook_replay(transitions, w, b, alpha, gamma, rule, notebook_alpha=0.8):
    """The update rules written out per transition in float64 (batch mean per step)."""
    for s, r, term, _, s2 in transitions:
        cont = (~term).double()
        v, v2 = s @ w + b, s2 @ w + b
        if rule == "semi-gradient":  # w += alpha * delta * x(S)
            delta = r + gamma * cont * v2 - v
            w = w + alpha * (delta[:, None] * s).mean(0)
            b = b + alpha * delta.mean()
        elif rule == "residual-gradient":  # w += alpha * delta * (x(S) - gamma x(S'))
            delta = r + gamma * cont * v2 - v
            w = w + alpha * (delta[:, None] * (s - gamma * cont[:, None] * s2)).mean(0)
            b = b + alpha * (delta * (1 - gamma * cont)).mean()
        else:  # the notebook: minimise notebook_alpha * (R + gamma v(S') - v(S))
            w = w + alpha * notebook_alpha * (s - gamma * s2).mean(0)
            b = b + alpha * notebook_alpha * (1 - gamma)
    return w, b


@pytest.mark.parametrize("rule,fast", [("semi-gradient", True), ("semi-gradient", False),
                                       ("residual-gradient", False), ("notebook", False)])
def test_linear_sgd_is_the_textbook_update(rule, fast):
    """Many steps of 3 envs, with terminations and time-limit truncations, by hand to 1e-6."""
    env = Recorder(envs.make("gymnasium:CartPole-v1", num_envs=3, device="cpu", seed=4,
                             max_episode_steps=12))
    v_hat = LinearValue(4, bias=True)
    with torch.no_grad():
        v_hat.linear.weight.copy_(torch.tensor([[0.3, -0.2, 0.5, 0.1]]))
        v_hat.linear.bias.fill_(0.7)
    w0 = v_hat.linear.weight.detach().double().clone()[0]
    b0 = v_hat.linear.bias.detach().double().clone()[0]
    config = TD0Config(num_envs=3, steps=3 * 40, gamma=0.9, alpha=0.05, alpha_end=0.05,
                       optimizer="sgd", rule=rule, fast_path=fast)
    td0(config, device="cpu", seed=1, env=env, v_hat=v_hat)
    terminated = torch.stack([t[2] for t in env.transitions])
    truncated = torch.stack([t[3] for t in env.transitions])
    assert terminated.any() and truncated.any()  # both kinds of episode end were exercised
    w, b = textbook_replay(env.transitions, w0, b0, 0.05, 0.9, rule)
    np.testing.assert_allclose(v_hat.linear.weight.detach()[0].double(), w, atol=1e-6)
    assert abs(v_hat.linear.bias.item() - b.item()) < 1e-6


def test_one_step_closed_form():
    """One transition, computed by hand: w1 = w0 + alpha * delta * x(S)."""
    v_hat = LinearValue(2)
    with torch.no_grad():
        v_hat.linear.weight.copy_(torch.tensor([[1.0, 2.0]]))
    s, s2 = torch.tensor([[1.0, 0.5]]), torch.tensor([[0.0, 1.0]])
    loss, _, delta = td_loss(v_hat, s, torch.tensor([1.0]), torch.tensor([False]), s2, 0.5)
    loss.backward()
    torch.optim.SGD(v_hat.parameters(), lr=0.1).step()
    # delta = 1 + 0.5 * 2 - (1 + 1) = 0; use a second transition with delta != 0 as well
    assert delta.item() == pytest.approx(0.0)
    loss, _, delta = td_loss(v_hat, s, torch.tensor([3.0]), torch.tensor([True]), s2, 0.5)
    v_hat.zero_grad()
    loss.backward()
    torch.optim.SGD(v_hat.parameters(), lr=0.1).step()
    assert delta.item() == pytest.approx(3.0 - 2.0)  # terminal: no bootstrap
    expected = torch.tensor([1.0, 2.0]) + 0.1 * 1.0 * torch.tensor([1.0, 0.5])
    assert torch.allclose(v_hat.linear.weight[0], expected, atol=1e-6)


def test_fast_path_equals_autograd():
    torch.manual_seed(0)
    for act in ("relu", "tanh"):
        net = ValueNetwork(4, (16, 8), act)
        fast = MLPSemiGradient.build(net)
        s, s2 = torch.randn(5, 4), torch.randn(5, 4)
        r, term = torch.rand(5), torch.tensor([False, True, False, False, True])
        loss, values, delta = td_loss(net, s, r, term, s2, 0.9)
        loss.backward()
        values_f, delta_f, grads = fast.step(s, r, term, s2, 0.9)
        # the same forward and TD errors (td_learning with check=False: the same arithmetic)
        assert torch.equal(values, values_f) and torch.equal(delta, delta_f)
        # the gradients to float32 rounding: autograd scales the error by 0.5 * 2 / B through
        # the loss's backward, the hand-written pass by -1 / B, then the same matrix products
        # (entries ~0.1-1, a few u = 6e-8 apart)
        for p, g in zip(fast.parameters, grads, strict=True):
            assert torch.allclose(p.grad, g, atol=1e-6)
    assert MLPSemiGradient.build(torch.nn.Sequential(torch.nn.Linear(4, 1))) is None
    assert MLPSemiGradient.build(ValueNetwork(4, (8,), "gelu")) is None  # autograd then


@pytest.mark.parametrize("make", [
    lambda ps: torch.optim.Adam(ps, lr=3e-3, fused=True),
    lambda ps: torch.optim.SGD(ps, lr=0.05),
])
def test_lean_step_is_the_optimizer_step(make):
    """The fast path's lean step gives exactly ``optimizer.step()``'s parameters and state,
    also when the learning rate changes between steps and when the optimizer carries on."""
    nets = [ValueNetwork(4, (8, 8)) for _ in range(2)]
    nets[1].load_state_dict(nets[0].state_dict())
    initial = [p.detach().clone() for p in nets[0].parameters()]
    optimizers = [make(list(net.parameters())) for net in nets]
    step = lean_step(optimizers[1], list(nets[1].parameters()))
    gen = torch.Generator().manual_seed(0)
    for i in range(5):
        grads = [torch.randn(p.shape, generator=gen) for p in nets[0].parameters()]
        for opt in optimizers:
            opt.param_groups[0]["lr"] *= 0.5
        for p, g in zip(nets[0].parameters(), grads, strict=True):
            p.grad = g
        optimizers[0].step()
        if i < 4:
            step(grads)
        else:  # the torch optimizer carries on from the lean steps' state
            for p, g in zip(nets[1].parameters(), grads, strict=True):
                p.grad = g
            optimizers[1].step()
    # a lean step built on an optimizer that has state already carries on from it
    grads = [torch.randn(p.shape, generator=gen) for p in nets[0].parameters()]
    for p, g in zip(nets[0].parameters(), grads, strict=True):
        p.grad = g
    optimizers[0].step()
    lean_step(optimizers[1], list(nets[1].parameters()))(grads)
    for a, b in zip(nets[0].parameters(), nets[1].parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert not any(torch.equal(a, b) for a, b in zip(initial, nets[0].parameters(), strict=True))


def test_after_a_lean_run_the_network_and_optimizer_work_with_autograd():
    """The lean path runs in inference mode; nothing it leaves behind may be an inference
    tensor: the network and its optimizer carry on with autograd afterwards."""
    net = ValueNetwork(4, (16, 16))
    optimizer = make_optimizer("adam", net.parameters(), 1e-3)
    td0(TD0Config(num_envs=4, steps=400, log_every=100), device="cpu", seed=0, v_hat=net,
        optimizer=optimizer, probes=torch.zeros(1, 4))
    env = envs.make("CartPole-v1", 4, device="cpu", seed=1)
    obs = env.reset()
    obs2, reward, terminated, _, info = env.step(torch.zeros(4, dtype=torch.int64))
    loss, _, _ = td_loss(net, obs, reward, terminated, info["final_obs"], 0.95)
    before = [p.detach().clone() for p in net.parameters()]
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    assert all(not torch.equal(a, p) for a, p in zip(before, net.parameters(), strict=True))


def test_lean_step_declines_what_it_does_not_do():
    params = list(ValueNetwork(4, (8,)).parameters())
    assert lean_step(torch.optim.Adam(params, amsgrad=True, fused=True), params) is None
    assert lean_step(torch.optim.Adam(params, weight_decay=0.1, fused=True), params) is None
    assert lean_step(torch.optim.SGD(params, lr=0.1, momentum=0.9), params) is None
    assert lean_step(torch.optim.RMSprop(params), params) is None
    assert lean_step(torch.optim.Adam(params[:1], fused=True), params) is None


def test_semi_gradient_target_has_no_gradient():
    net = ValueNetwork(4, (8,))
    s, s2 = torch.randn(3, 4), torch.randn(3, 4)
    loss, _, _ = td_loss(net, s, torch.ones(3), torch.zeros(3, dtype=torch.bool), s2, 0.9)
    # the gradient equals the one of the loss on v(S) alone, with the target a constant
    grads = torch.autograd.grad(loss, list(net.parameters()))
    with torch.no_grad():
        target = 1 + 0.9 * net(s2)
    ref = torch.autograd.grad(0.5 * ((net(s) - target) ** 2).mean(), list(net.parameters()))
    for g, h in zip(grads, ref, strict=True):
        assert torch.allclose(g, h, atol=1e-7)


# --------------------------------------------------------------- chain MDP, closed forms


class RandomWalk(BatchedEnv):
    """Sutton & Barto's 5-state random walk (Example 6.2) as batched tensors.

    States 0..4, start in 2; action 1 moves right, 0 left; leaving on the right ends the
    episode with reward 1, on the left with 0. Observations are the features [1, s / 4].
    """

    def __init__(self, num_envs, seed=0):
        self.num_envs, self.device = num_envs, torch.device("cpu")
        self.spec = EnvSpec("RandomWalk-v0", 2, 2, None, None, "test")
        self.pos = torch.full((num_envs,), 2)
        self.episodes = EpisodeCounter(num_envs, self.device)

    @staticmethod
    def features(pos):
        return torch.stack((torch.ones_like(pos, dtype=torch.float32), pos / 4.0), dim=1)

    def reset(self):
        self.pos.fill_(2)
        return self.features(self.pos)

    def step(self, actions):
        pos = self.pos + 2 * actions - 1
        terminated = (pos < 0) | (pos > 4)
        reward = (pos > 4).float()
        final = self.features(pos)
        self.pos = torch.where(terminated, torch.full_like(pos, 2), pos)
        ret, length = self.episodes.update(reward, terminated)
        info = {"final_obs": final, "episode_return": ret, "episode_length": length}
        return self.features(self.pos), reward, terminated, torch.zeros_like(terminated), info


def random_walk_solutions(gamma):
    """TD fixed point and residual-gradient solution of RandomWalk, in closed form."""
    n = 5
    phi = np.stack([np.ones(n), np.arange(n) / 4.0], axis=1)  # (5, 2)
    p = np.zeros((n, n))  # transitions among non-terminal states
    for s in range(n):
        for s2 in (s - 1, s + 1):
            if 0 <= s2 < n:
                p[s, s2] = 0.5
    start = np.eye(n)[2]
    eta = start @ np.linalg.inv(np.eye(n) - p)  # expected visits per episode
    d = eta / eta.sum()  # on-policy distribution (S&B 9.2)
    # each state: two equally likely successors (s2 = None when terminal) and rewards
    a_td, b_td = np.zeros((2, 2)), np.zeros(2)
    c_rg, e_rg = np.zeros((2, 2)), np.zeros(2)
    for s in range(n):
        for s2 in (s - 1, s + 1):
            prob = 0.5 * d[s]
            terminal = not 0 <= s2 < n
            x2 = np.zeros(2) if terminal else phi[s2]
            r = 1.0 if s2 == n else 0.0
            a_td += prob * np.outer(phi[s], phi[s] - gamma * x2)
            b_td += prob * phi[s] * r
            u = phi[s] - gamma * x2
            c_rg += prob * np.outer(u, u)
            e_rg += prob * u * r
    return np.linalg.solve(a_td, b_td), np.linalg.solve(c_rg, e_rg)


def test_chain_td_fixed_point_and_residual_gradient_solution():
    gamma = 0.8
    w_td, w_rg = random_walk_solutions(gamma)
    gap = np.abs(w_td - w_rg).max()
    assert gap > 0.05  # the two solutions differ
    for rule, expected in (("semi-gradient", w_td), ("residual-gradient", w_rg)):
        env = RandomWalk(512)
        v_hat = LinearValue(2)
        config = TD0Config(env="CartPole-v1", num_envs=512, steps=512 * 1500, gamma=gamma,
                           alpha=0.1, alpha_end=0.1, optimizer="sgd", rule=rule,
                           r_max=100.0)
        # the last 500 iterates, averaged (Polyak), remove the constant-step noise
        rows = []
        td0(config, device="cpu", seed=0, env=env, v_hat=v_hat, probes=torch.eye(2),
            on_log=rows.append)
        iterates = np.array([[row["v_hat_0"], row["v_hat_1"]] for row in rows])
        w = iterates[-len(iterates) // 3:].mean(axis=0)
        assert np.abs(w - expected).max() < gap / 5, (rule, w, w_td, w_rg)


# --------------------------------------------------------------- CartPole vs Monte Carlo


def test_cartpole_td0_close_to_monte_carlo():
    """A short seeded run: within 10% of Monte Carlo at typical probe states (gamma 0.95).

    The full check at all default probes, the notebook's included, is
    benchmarks/td0_accuracy.py (longer).
    """
    probes = torch.tensor([[0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.05, 0.3]])
    mc = cartpole_values(probes, 0.95, rollouts=2000)
    config = TD0Config(num_envs=8, steps=60_000, gamma=0.95, alpha=3e-3, alpha_end=0.0)
    result = td0(config, device="cpu", seed=0, probes=probes)
    assert result.divergence is None
    rel = np.abs(result.probe_values[-1] - mc.values) / mc.values
    assert (rel < 0.10).all(), (result.probe_values[-1], mc.values)


def test_exploring_starts_bring_every_probe_within_10_percent():
    """With starts spread over the state space (``start_box``), v_hat is trained where the
    notebook's rarely visited probe [0, 2, -0.1, -1] lies: every default probe ends within 10%
    of Monte Carlo (benchmarks/td0_accuracy.py: the notebook's probe is 5-17% off without)."""
    probes = torch.tensor(DEFAULT_PROBES)
    mc = cartpole_values(probes, 0.95, rollouts=2000)
    config = TD0Config(num_envs=64, steps=600_000, gamma=0.95, alpha=3e-3, alpha_end=0.0,
                       log_every=600_000, start_box=(2.4, 2.5, 0.2, 2.5))
    result = td0(config, device="cpu", seed=0, probes=probes)
    rel = np.abs(result.probe_values[-1] - mc.values) / mc.values
    assert (rel < 0.10).all(), (result.probe_values[-1], mc.values)


# --------------------------------------------------------------- the notebook and divergence


def test_notebook_rule_diverges_and_the_divergence_rule_stops_it():
    config = TD0Config(num_envs=1, steps=20_000, alpha=3e-4, alpha_end=3e-4,
                       rule="notebook", hidden=(64, 64, 64), log_every=200)
    result = td0(config, device="cpu", seed=0, probes=torch.tensor([[0.0, 2, -0.1, -1]]))
    message = result.divergence
    assert message is not None and result.steps < 20_000
    peak = float(message.split("max |v_hat| = ")[1].split(",")[0])
    assert peak > td0_mod.SLACK * value_bound(1.0, 0.95) == pytest.approx(30.0)
    assert f"diverged by step {result.steps:,}" in message and "notebook" in message
    assert "semi-gradient" in message  # says what to use instead
    assert result.probe_values[-1, 0] > 30  # the probe climbed past the bound
    # the same run with the semi-gradient rule stays in bounds
    good = td0(TD0Config(num_envs=1, steps=result.steps, alpha=3e-4, alpha_end=3e-4),
               device="cpu", seed=0)
    assert good.divergence is None


def test_health_rule_catches_non_finite_and_names_it():
    cfg = TD0Config(r_max=1.0, gamma=0.9)
    assert trainer.health_broken(td0_mod, cfg, [1.0, 14.9, 1]) is None
    assert trainer.health_broken(td0_mod, cfg, [float("nan"), 1.0, 1]) == \
        "non-finite squared TD error"
    assert trainer.health_broken(td0_mod, cfg, [1.0, -31.0, 1]).startswith(
        "max |v_hat| = -31, beyond its bound 1.5 x r_max / (1 - gamma) = 1.5 x 10")
    assert trainer.health_broken(td0_mod, TD0Config(gamma=1.0), [1.0, 1e30, 1]) is None


# --------------------------------------------------------------- K seeds, resume


SMALL = dict(num_envs=4, steps=1200, log_every=200, eval_every=400, hidden=(16,),
             mc_rollouts=20, tensorboard=False, device="cpu")


def _without_time(rows):
    return [{k: v for k, v in r.items() if k not in ("wall_s", "train_s")} for r in rows]


def test_agent_k_is_the_single_run_with_seed_k(tmp_path):
    from semigrad.run import read_metrics

    many = td0_mod.train(TD0Config(**SMALL), tmp_path / "many", seeds=[2, 5], progress=False)
    one = td0_mod.train(TD0Config(**SMALL, seed=5), tmp_path / "one", progress=False)
    assert _without_time(read_metrics(tmp_path / "many" / "seed5")) == \
        _without_time(read_metrics(tmp_path / "one"))
    assert json_of(tmp_path / "many" / "seed5")["probes"] == one["probes"]
    assert many["per_seed"][1]["max_abs_relative_error"] == one["max_abs_relative_error"]


def json_of(run_dir):
    import json

    return json.loads((run_dir / "summary.json").read_text())


@pytest.mark.parametrize("seeds", [None, [0, 1]])
def test_resume_equals_uninterrupted(tmp_path, seeds):
    from semigrad.run import read_metrics

    cfg = TD0Config(**SMALL, seed=3)
    td0_mod.train(cfg, tmp_path / "full", seeds=seeds, progress=False)
    part = td0_mod.train(cfg, tmp_path / "part", seeds=seeds, progress=False, stop_after=600)
    assert part["status"] == "interrupted"
    td0_mod.train(cfg, tmp_path / "part", seeds=seeds, progress=False, resume=True)
    for d in ([""] if seeds is None else [f"seed{s}" for s in seeds]):
        assert _without_time(read_metrics(tmp_path / "full" / d)) == \
            _without_time(read_metrics(tmp_path / "part" / d))
        assert json_of(tmp_path / "full" / d)["probes"] == json_of(tmp_path / "part" / d)["probes"]


def test_random_policy_and_config_errors():
    policy = UniformRandomPolicy(3, torch.Generator().manual_seed(0))
    actions = policy(torch.zeros(3000, 4))
    assert actions.dtype == torch.int64 and set(actions.tolist()) == {0, 1, 2}
    assert abs((actions == 1).float().mean().item() - 1 / 3) < 0.03
    with pytest.raises(ConfigError, match="gamma"):
        TD0Config(gamma=1.5)
    with pytest.raises(ConfigError, match="rule"):
        TD0Config(rule="gradient")
    with pytest.raises(ValueError, match="did you mean"):
        TD0Config(env="CartPole-v7")
    with pytest.raises(ConfigError, match="CartPole-v1 .* only"):
        TD0Config(env="gymnasium:CartPole-v1", start_box=(1, 1, 0.1, 1))
    with pytest.raises(ConfigError, match="12 degrees"):
        TD0Config(start_box=(1, 1, 0.5, 1))


# --------------------------------------------------------------- the command


def test_td0_command_writes_probes_with_monte_carlo(tmp_path, capsys):
    import json

    from semigrad.cli import main

    run_dir = tmp_path / "r"
    assert main(["td0", "--steps", "4000", "--num-envs", "4", "--no-progress",
                 "--mc-rollouts", "200", "--probe", "0,0.2,0.01,-0.1",
                 "--run-dir", str(run_dir)]) == 0
    out = capsys.readouterr().out
    assert "probe 0 [0.0, 2.0, -0.1, -1.0]" in out and "MC" in out and "env steps/s" in out
    summary = json.loads((run_dir / "summary.json").read_text())
    probes = summary["probes"]
    assert len(probes) == 5 and probes[-1]["state"] == [0.0, 0.2, 0.01, -0.1]
    for probe in probes:
        assert {"v_hat", "mc_value", "mc_stderr"} <= probe.keys()
        assert 1.0 <= probe["mc_value"] <= 20.0 and probe["mc_stderr"] > 0
    assert summary["env_steps"] == 4000 and summary["status"] == "finished"
    assert summary["algo"] == "td0" and summary["final_eval_return"] is None
    for name in ("probes.png", "value_slice.png", "metrics.csv", "config.json"):
        assert (run_dir / name).stat().st_size > 100
    config = json.loads((run_dir / "config.json").read_text())
    assert config["num_envs"] == 4 and config["rule"] == "semi-gradient"
    assert (config["command"], config["algo"]) == ("train", "td0")
    assert main(["eval", str(run_dir)]) == 2  # no policy to play
    assert "no policy to load" in capsys.readouterr().err


def test_td0_command_notebook_rule_says_it_blew_up(tmp_path, capsys):
    import json

    from semigrad.cli import main

    run_dir = tmp_path / "nb"
    assert main(["td0", "--rule", "notebook", "--num-envs", "1", "--alpha", "3e-4",
                 "--alpha-end", "3e-4", "--log-every", "200", "--steps", "20000",
                 "--mc-rollouts", "100", "--no-progress", "--run-dir", str(run_dir)]) == 0
    out = capsys.readouterr().out
    assert "DIVERGED" in out and "course notebook's blow-up" in out
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "diverged" and summary["env_steps"] < 20000
    assert "max |v_hat|" in summary["error"]
    assert (run_dir / "probes.png").exists()


def test_td0_command_bad_probe_is_one_line_error(tmp_path, capsys):
    from semigrad.cli import main

    assert main(["td0", "--probe", "1,2,3", "--run-dir", str(tmp_path / "x")]) == 2
    assert "every probe needs 4 numbers" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
