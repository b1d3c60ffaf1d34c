"""Baird's counterexample and gradient-TD (S&B 11.2, 11.7, 11.8), checked against the book's
numbers, closed forms, enumeration of every transition, and Monte Carlo."""

import csv
import json
import math

import pytest
import torch

from semigrad import envs
from semigrad.algos.baird import (
    METHODS,
    BairdConfig,
    BairdNetConfig,
    Transition,
    expected_followon,
    expected_increments,
    expected_net_increments,
    make_value_net,
    net_inputs,
    paper_l2,
    run_baird,
    run_baird_net,
    sampled_increments,
    summarize,
    summarize_net,
    verdict_line,
)
from semigrad.cli import main
from semigrad.config import ConfigError
from semigrad.envs.baird import ZERO_ERROR_DIRECTION, BairdEnv, baird, baird_notebook

N_DIR = torch.tensor(ZERO_ERROR_DIRECTION, dtype=torch.float64)


def book_value(s: int, w: torch.Tensor) -> torch.Tensor:
    """Figure 11.1 written out per state: upper 2 w_i + w_8, lower w_7 + 2 w_8 (0-based s)."""
    return 2 * w[..., s] + w[..., 7] if s < 6 else w[..., 6] + 2 * w[..., 7]


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(a @ b / (a.norm() * b.norm()))


def update_matrix(problem, method, alpha, beta, mu=None):
    """The expected update is linear in z = (w, v): z_{k+1} = M z_k; M (16, 16) column by column."""
    d = problem.num_features
    z = torch.eye(2 * d, dtype=torch.float64)
    dw, dv = expected_increments(problem, method, z[:, :d], z[:, d:], alpha, beta, mu)
    return (z + torch.cat([dw, dv], 1)).T


# ----------------------------------------------------------------------------- the MDP


def test_features_policies_and_book_quantities():
    p = baird("cpu")
    w = torch.randn(5, 8, dtype=torch.float64)
    expected = torch.stack([book_value(s, w) for s in range(7)], -1)
    torch.testing.assert_close(p.values(w), expected)
    # rho = pi / b: 7 for solid, 0 for dashed, in every state.
    torch.testing.assert_close(p.importance_ratios(),
                               torch.tensor([[0.0, 7.0]] * 7, dtype=torch.float64))
    assert p.start_weights.tolist() == [1, 1, 1, 1, 1, 1, 10, 1]
    # P_pi sends every state to the lower one; v_pi = 0; mu uniform and stationary under b.
    assert (p.target_transition_matrix()[:, 6] == 1).all()
    torch.testing.assert_close(p.true_values(), torch.zeros(7, dtype=torch.float64))
    p_b = torch.einsum("sa,sat->st", p.behaviour, p.transitions)
    torch.testing.assert_close(p.mu @ p_b, p.mu)
    torch.testing.assert_close(p.mu, torch.full((7,), 1 / 7, dtype=torch.float64))
    d_pi = p.on_policy_distribution()
    torch.testing.assert_close(d_pi, torch.eye(7, dtype=torch.float64)[6])
    # The zero-error direction: v_hat = 0 everywhere, and X has no other null direction.
    torch.testing.assert_close(p.values(N_DIR), torch.zeros(7, dtype=torch.float64))
    assert torch.linalg.matrix_rank(p.features) == 7


def test_notebook_variant_quantities():
    p = baird_notebook("cpu")
    w = torch.randn(3, 8, dtype=torch.float64)
    torch.testing.assert_close(p.values(w), 2 * w[:, :7] + w[:, 7:8])  # 2 w_s + w_8, all seven
    assert (p.importance_ratios() == 1).all() and p.gamma == 0.95 and p.restart
    assert p.mu[6] == 0 and torch.allclose(p.mu[:6], torch.full((6,), 1 / 6, dtype=torch.float64))


@pytest.mark.parametrize("make", [baird, baird_notebook])
def test_projection_and_pbe_match_the_normal_equations(make):
    p = make("cpu")
    proj, d = p.projection(), torch.diag(p.mu)
    torch.testing.assert_close(proj @ proj, proj)  # idempotent
    torch.testing.assert_close(d @ proj, (d @ proj).T)  # self-adjoint in the mu inner product
    w = torch.randn(4, 8, dtype=torch.float64)
    # PBE = (X^T D delta_bar)^T (X^T D X)^+ (X^T D delta_bar)  (S&B eq. 11.27's middle form)
    g = p.bellman_error(w) @ d @ p.features
    reference = torch.einsum("ni,ij,nj->n", g, torch.linalg.pinv(p.features.T @ d @ p.features), g)
    torch.testing.assert_close(p.projected_bellman_error(w), reference)
    ve = ((p.values(w) - p.true_values()) ** 2 @ p.mu)
    torch.testing.assert_close(p.value_error(w), ve)
    huge = torch.full((1, 8), 1e200, dtype=torch.float64)  # squares overflow, the norm does not
    assert torch.isfinite(p.sqrt_value_error(huge)).all()


def test_env_interface_and_transition_frequencies():
    import semigrad.envs.baird  # noqa: F401  (registers the ids)

    env = envs.make("Baird-v0", num_envs=20000, device="cpu", seed=3)
    obs = env.reset()
    assert obs.shape == (20000, 8) and obs.dtype == torch.float64
    start = env.state.clone()
    counts = torch.bincount(start, minlength=7) / 20000
    assert (counts - 1 / 7).abs().max() < 0.02
    dashed = torch.zeros(20000, dtype=torch.int64)
    obs, reward, terminated, truncated, info = env.step(dashed)
    assert not terminated.any() and not truncated.any() and (reward == 0).all()
    assert (info["final_state"] < 6).all()
    assert (torch.bincount(info["final_state"], minlength=7)[:6] / 20000 - 1 / 6).abs().max() < 0.02
    torch.testing.assert_close(obs, env.problem.features[env.state])
    obs, *_ , info = env.step(torch.ones(20000, dtype=torch.int64))
    assert (info["final_state"] == 6).all()
    # The notebook variant: one-step episodes, restarts from the upper six only.
    nb = BairdEnv(baird_notebook("cpu"), num_envs=5000, device="cpu", seed=0)
    nb.reset()
    _, _, terminated, truncated, info = nb.step(torch.ones(5000, dtype=torch.int64))
    assert truncated.all() and not terminated.any() and (info["final_state"] == 6).all()
    assert (nb.state < 6).all()


# ----------------------------------------------------------------------------- the updates


@pytest.mark.parametrize("make", [baird, baird_notebook])
@pytest.mark.parametrize("method", METHODS)
def test_expected_update_is_the_average_over_all_transitions(make, method):
    """Sum the sampled increment over every (s, a, s') with weight mu(s) b(a|s) p(s'|s,a)."""
    p = make("cpu")
    gen = torch.Generator().manual_seed(1)
    w = torch.randn(3, 8, dtype=torch.float64, generator=gen)
    v = torch.randn(3, 8, dtype=torch.float64, generator=gen)
    f = torch.rand(7, dtype=torch.float64, generator=gen) * (p.mu > 0)  # E[M_t 1{S_t = s}]
    alpha, beta = 0.1, 0.3
    rho = p.importance_ratios()
    dw_sum, dv_sum = torch.zeros_like(w), torch.zeros_like(v)
    for s in range(7):
        for a in range(2):
            for s2 in range(7):
                prob = p.mu[s] * p.behaviour[s, a] * p.transitions[s, a, s2]
                if prob == 0:
                    continue
                tr = Transition(
                    x=p.features[s].expand(3, -1), x_next=p.features[s2].expand(3, -1),
                    reward=p.rewards[s, a].expand(3), terminated=torch.zeros(3, dtype=torch.bool),
                    rho=rho[s, a].expand(3), emphasis=(f[s] / p.mu[s]).expand(3))
                dw, dv = sampled_increments(method, w, v, tr, p.gamma, alpha, beta)
                dw_sum += prob * dw
                dv_sum += prob * dv
    dw, dv = expected_increments(p, method, w, v, alpha, beta, followon=f)
    torch.testing.assert_close(dw, dw_sum)
    torch.testing.assert_close(dv, dv_sum)


def test_first_expected_sweep_by_hand():
    """(11.9) from w0: delta_bar = 0.99 * 12 - v; upper v = 3, lower v = 12; alpha/|S| = 0.01/7."""
    p = baird("cpu")
    dw, _ = expected_increments(p, "semi-gradient", p.start_weights[None], torch.zeros(1, 8,
                                dtype=torch.float64), alpha=0.01, beta=0.0)
    up, low = 0.99 * 12 - 3, 0.99 * 12 - 12
    hand = [0.01 / 7 * 2 * up] * 6 + [0.01 / 7 * low, 0.01 / 7 * (6 * up + 2 * low)]
    torch.testing.assert_close(dw[0], torch.tensor(hand, dtype=torch.float64))


def test_followon_expectation_matches_monte_carlo():
    """f_t(s) = E[M_t 1{S_t = s}] with M_t = gamma rho_{t-1} M_{t-1} + 1, M_{-1} = 0."""
    p, n, t_max = baird("cpu"), 200_000, 3
    env = BairdEnv(p, num_envs=n, device="cpu", seed=5)
    env.reset()
    gen = torch.Generator().manual_seed(6)
    rho, m_prev_term = p.importance_ratios(), torch.zeros(n, dtype=torch.float64)
    f = torch.zeros(7, dtype=torch.float64)
    for t in range(t_max + 1):
        m = m_prev_term + 1.0
        f = expected_followon(p, f, 1.0)
        if t == t_max:
            break
        a = torch.multinomial(p.behaviour[env.state], 1, generator=gen).squeeze(1)
        m_prev_term = p.gamma * rho[env.state, a] * m
        env.step(a)
    onehot = torch.nn.functional.one_hot(env.state, 7).to(torch.float64)
    estimate = (m[:, None] * onehot).mean(0)
    stderr = (m[:, None] * onehot).std(0) / math.sqrt(n)
    assert ((estimate - f).abs() < 5 * stderr + 1e-12).all(), (estimate, f, stderr)
    assert f[6] > 3  # the followon piles emphasis on the lower state


# ----------------------------------------------------------------------------- the book's figures


def test_expected_semi_gradient_diverges_figure_11_2():
    traj = run_baird(BairdConfig(steps=2000), device="cpu", progress=False)
    norms = traj.weights[:, 0].norm(dim=1)
    assert norms[1000] > 30 * norms[0] and norms[2000] > 8 * norms[1000]
    assert (norms[1:] > norms[:-1]).all()  # |w| grows at every sweep
    m = update_matrix(traj.problem, "semi-gradient", 0.01, 0.05)[:8, :8]
    assert torch.linalg.eigvals(m).abs().max() > 1.002  # an unstable mode: growth without bound
    assert summarize(traj)["status"] == "diverged"
    sampled = run_baird(BairdConfig(update="sampled"), seed=0, device="cpu", progress=False)
    assert summarize(sampled)["status"] == "diverged"


def test_on_policy_distribution_makes_semi_gradient_td_converge():
    p = baird("cpu")
    d_pi = p.on_policy_distribution()
    traj = run_baird(BairdConfig(steps=3000), device="cpu", mu=d_pi, progress=False)
    w = traj.weights[:, 0]
    assert torch.isfinite(w).all() and w.norm(dim=1).max() < 2 * w[0].norm()
    lower = p.sqrt_value_error(w, d_pi)  # |v_hat(lower) - v_pi(lower)|, shrinking every sweep
    assert (lower[1:] < lower[:-1]).all() and lower[-1] < 0.3 * lower[0]
    m = update_matrix(p, "semi-gradient", 0.01, 0.05, mu=d_pi)[:8, :8]
    assert torch.linalg.eigvals(m).abs().max() <= 1 + 1e-12
    torch.testing.assert_close(torch.linalg.matrix_power(m, 3000) @ w[0], w[-1])
    w_limit = torch.linalg.matrix_power(m, 2**30) @ w[0]
    assert p.sqrt_value_error(w_limit, d_pi) < 1e-12 and w_limit.norm() < 2 * w[0].norm()


@pytest.mark.parametrize("method", ["tdc", "gtd2"])
def test_expected_tdc_and_gtd2_figure_11_5(method):
    traj = run_baird(BairdConfig(method=method), device="cpu", progress=False)
    ve, pbe = traj.sqrt_ve[:, 0], traj.sqrt_pbe[:, 0]
    assert pbe[0] > 8 and pbe[-1] < 0.01  # sqrt(PBE) falls to (almost) zero
    assert 1.8 < ve[-1] < 2.1  # ... while sqrt(VE) stays near 2 (S&B 11.7)
    # In the limit the weights reach the zero-error direction: z_K = M^K z_0.
    p = traj.problem
    m = update_matrix(p, method, 0.005, 0.05)
    z0 = torch.cat([p.start_weights, torch.zeros(8, dtype=torch.float64)])
    z1000 = torch.linalg.matrix_power(m, 1000) @ z0
    torch.testing.assert_close(z1000[:8], traj.weights[-1, 0])  # the loop is this linear map
    w_limit = (torch.linalg.matrix_power(m, 2**34) @ z0)[:8]
    assert cosine(w_limit, N_DIR) > 1 - 1e-9 and p.sqrt_value_error(w_limit) < 1e-6


def test_sampled_tdc_stays_bounded_figure_11_5_left():
    traj = run_baird(BairdConfig(method="tdc", update="sampled"), seed=0, device="cpu",
                     progress=False)
    assert traj.weights.abs().max() < 15 and traj.sqrt_ve[-1, 0] < 3
    assert summarize(traj)["status"] == "bounded"


def test_sampled_emphatic_td_is_called_unstable_not_bounded():
    """Sampled emphatic TD on Baird: no exponential trend, but |w| and sqrt(VE) swing to
    hundreds of times their start (its follow-on trace is heavy-tailed, Sutton & Barto 11.8):
    the verdict says so instead of 'bounded'."""
    config = BairdConfig(method="etd", update="sampled")
    traj = run_baird(config, seed=0, device="cpu", progress=False)
    summary = summarize(traj)
    assert summary["status"] == "unstable"
    assert summary["peak_sqrt_ve"] > 10 * float(traj.sqrt_ve[0, 0])
    assert summary["peak_sqrt_ve"] == float(traj.sqrt_ve[:, 0].max())
    line = verdict_line(summary, config)
    assert "unstable" in line and "bounded" not in line


def test_expected_emphatic_td_figure_11_6():
    traj = run_baird(BairdConfig(method="etd"), device="cpu", progress=False)
    ve = traj.sqrt_ve[:, 0]
    peak = int(ve.argmax())
    assert 0 < peak < 100 and ve[peak] > 1.5 * ve[0]  # an initial rise ...
    assert ve[-1] < 1e-9  # ... then sqrt(VE) goes to zero
    assert cosine(traj.weights[-1, 0], N_DIR) > 1 - 1e-12
    assert summarize(traj)["status"] == "converged"


# ----------------------------------------------------------------------------- config and command


def test_config_defaults_and_errors():
    assert BairdConfig().alpha == 0.01 and BairdConfig(method="tdc").beta == 0.05
    assert BairdConfig(method="etd").alpha == 0.03
    nb = BairdConfig(variant="notebook")
    assert nb.alpha == 0.8 and nb.gamma == 0.95
    with pytest.raises(ConfigError, match="alpha"):
        BairdConfig(alpha=-1.0)
    with pytest.raises(ConfigError, match="gamma"):
        BairdConfig(gamma=1.0)
    with pytest.raises(ConfigError, match="method"):
        BairdConfig(method="q-learning")


def read_csv(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_command_writes_trajectory_summary_and_figure(tmp_path, capsys):
    run_dir = tmp_path / "r"
    assert main(["baird", "--method", "tdc", "--steps", "300", "--run-dir", str(run_dir),
                 "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "TDC (expected, book)" in out and "sqrt(VE)" in out
    rows = read_csv(run_dir / "weights.csv")
    assert list(rows[0]) == ["step", *(f"w{i}" for i in range(1, 9)), "sqrt_ve", "sqrt_pbe"]
    assert len(rows) == 301 and rows[0]["step"] == "0"
    assert [float(rows[0][f"w{i}"]) for i in range(1, 9)] == [1, 1, 1, 1, 1, 1, 10, 1]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["weights"] == [float(rows[-1][f"w{i}"]) for i in range(1, 9)]
    assert summary["sqrt_pbe"] == pytest.approx(float(rows[-1]["sqrt_pbe"]))
    assert (run_dir / "baird.png").stat().st_size > 10_000


def test_notebook_divergence_is_reported_not_crashed(tmp_path, capsys):
    run_dir = tmp_path / "nb"
    assert main(["baird", "--variant", "notebook", "--update", "sampled", "--steps", "2500",
                 "--run-dir", str(run_dir), "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "diverged" in out and "w8" in out
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "diverged" and summary["overflow_step"] is not None
    values = [summary["w8"], summary["sqrt_ve"], summary["sqrt_pbe"], *summary["weights"]]
    assert all(isinstance(x, float) and math.isfinite(x) for x in values)
    rows = read_csv(run_dir / "weights.csv")
    last = rows[summary["last_finite_step"]]
    assert float(last["w8"]) == summary["w8"]
    assert not all(math.isfinite(float(x)) for x in rows[summary["overflow_step"]].values())
    assert (run_dir / "baird.png").exists()


def test_notebook_variant_default_runs_and_reports_w8(tmp_path, capsys):
    assert main(["baird", "--variant", "notebook", "--run-dir", str(tmp_path / "e"),
                 "--device", "cpu"]) == 0
    summary = json.loads((tmp_path / "e" / "summary.json").read_text())
    assert "w8" in capsys.readouterr().out and math.isfinite(summary["w8"])


def test_all_draws_the_three_figures(tmp_path, capsys):
    assert main(["baird", "--all", "--steps", "200", "--run-dir", str(tmp_path / "a"),
                 "--device", "cpu"]) == 0
    summary = json.loads((tmp_path / "a" / "summary.json").read_text())
    assert set(summary["panels"]) == {"semi-gradient/sampled", "semi-gradient/expected",
                                      "tdc/sampled", "tdc/expected", "etd/expected"}
    assert summary["panels"]["semi-gradient/expected"]["status"] == "diverged"
    assert (tmp_path / "a" / "weights_tdc_expected.csv").exists()
    assert main(["baird", "--all", "--method", "tdc", "--run-dir", str(tmp_path / "b")]) == 2
    assert "drop --method" in capsys.readouterr().err


# ----------------------------------------------------------------------------- PQN's fix


def test_net_update_on_a_linear_net_is_expected_semi_gradient_td():
    """With v_hat = w . x (nets.LinearValue) the network update is the book's X^T D delta_bar,
    and L2 adds -alpha eta w."""
    from semigrad.nets import LinearValue

    p = baird("cpu")
    net = LinearValue(8).double()
    w = torch.randn(8, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    params = {"linear.weight": w[None].clone()}
    for l2 in (0.0, 0.3):
        d = expected_net_increments(net, params, p.features, p, alpha=0.01, l2=l2)
        dw, _ = expected_increments(p, "semi-gradient", w[None], torch.zeros(1, 8,
                                    dtype=torch.float64), alpha=0.01, beta=0.0)
        torch.testing.assert_close(d["linear.weight"][0], dw[0] - 0.01 * l2 * w)


@pytest.mark.parametrize("l2", [0.0, 0.245])
def test_layer_norm_net_update_is_the_semi_gradient_by_hand(l2):
    """alpha sum_s mu(s) delta_bar(s) grad v_hat(s) - alpha eta W_last, with delta_bar computed
    from the values (no gradient through the target), per-state gradients from jacrev; and it
    is not the residual gradient (the gradient through the target too)."""
    p = baird("cpu")
    config = BairdNetConfig(l2=l2)
    net = make_value_net(config, p, seed=4)
    params = {k: v.detach() for k, v in net.named_parameters()}
    x = net_inputs(p, "features")

    def values(q):
        return torch.func.functional_call(net, q, (x,)).squeeze(-1)

    v = values(params)
    jac = torch.func.jacrev(values)(params)  # name -> (S, *shape)
    delta_bar = p.target_rewards() + p.gamma * p.target_transition_matrix() @ v - v
    alpha = 0.01
    d = expected_net_increments(net, params, x, p, alpha, l2)
    assert list(d) == list(params)
    for name, j in jac.items():
        hand = alpha * torch.einsum("s,s...->...", p.mu * delta_bar, j)
        if name == "net.3.weight":  # Linear, LayerNorm, ReLU, Linear: the last layer's weights
            hand = hand - alpha * l2 * params[name]
        torch.testing.assert_close(d[name], hand, rtol=1e-10, atol=1e-12)
    # The residual gradient differs: grad of 1/2 sum mu (r + gamma P v - v)^2 through both.
    residual = torch.func.grad(lambda q: 0.5 * (p.mu * (p.target_rewards() + p.gamma * (
        p.target_transition_matrix() @ values(q)) - values(q)) ** 2).sum())(params)
    first = "net.0.weight"
    assert (d[first] + alpha * residual[first]).abs().max() > 1e-3 * d[first].abs().max()


def test_every_method_starts_from_the_book_values():
    p = baird("cpu")
    for config in (BairdNetConfig(), BairdNetConfig(layer_norm=False), BairdNetConfig(l2=0.1)):
        for seed in (0, 7):
            net = make_value_net(config, p, seed)
            with torch.no_grad():
                v = net(p.features).squeeze(-1)
            torch.testing.assert_close(v, p.values(p.start_weights), rtol=0, atol=1e-9)
    state = torch.get_rng_state()
    make_value_net(BairdNetConfig(), p, 3)
    assert torch.equal(state, torch.get_rng_state())  # the global generator is untouched


def test_layer_norm_net_run_is_k_independent_runs():
    """Run k of a vmapped batch equals a run from seed + k alone."""
    config = BairdNetConfig(steps=40)
    both = run_baird_net(config, seed=3, device="cpu", num_runs=2, progress=False)
    one = run_baird_net(config, seed=4, device="cpu", num_runs=1, progress=False)
    torch.testing.assert_close(both.values[:, 1], one.values[:, 0], rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(both.norm_w[:, 1], one.norm_w[:, 0], rtol=1e-12, atol=1e-12)


# What docs/baird.md reports (5000 sweeps, seeds 0-4, 32 ReLU units on x(s), alpha 0.01), with
# the measured value beside each bound. Runs are float64 and deterministic; the bounds sit 1.2x
# (norms), 1.6x (peak error) and 4x or more (final error) away from what was measured, where a
# run on another machine differs by rounding (~1e-16 relative per operation), which these
# runs, converging or shrinking once past their first ~25 sweeps, do not amplify to that size.
NET_STEPS, NET_SEEDS = 5000, 5


@pytest.fixture(scope="module")
def net_runs():
    torch.set_num_threads(1)
    return {l2: run_baird_net(BairdNetConfig(l2=l2, steps=NET_STEPS), seed=0, device="cpu",
                              num_runs=NET_SEEDS, progress=False)
            for l2 in (0.0, paper_l2(0.99))}


def test_layer_norm_net_is_bounded_and_converges_to_v_pi(net_runs):
    """LayerNorm, no L2: bounded (|theta| peaks at 1.17-1.26x its start, sqrt(VE) at 9-12x
    within the first 30 sweeps) and converging to v_pi = 0: final sqrt(VE) 8e-14 .. 0.066 from
    5.32 (median 5.5e-7), while linear semi-gradient TD diverges from the same start."""
    traj = net_runs[0.0]
    ve, norms = traj.sqrt_ve, traj.norm_w
    start = float(ve[0, 0])
    assert abs(start - math.sqrt((6 * 9 + 144) / 7)) < 1e-9  # the book's start values
    assert torch.isfinite(traj.values).all()
    assert (norms.max(0).values < 1.5 * norms[0]).all()  # measured <= 1.26x
    assert (ve.max(0).values < 20 * start).all()  # measured <= 12.3x
    assert (ve.argmax(0) < 100).all()  # the peak is a transient (sweeps 17-26)
    assert (ve[-1] < 0.05 * start).all()  # measured <= 0.066 = 0.012 x start
    assert ve[-1].median() < 1e-4 * start  # measured 5.5e-7
    assert (ve[-1] < ve[NET_STEPS // 2]).all()  # still falling, not parked
    statuses = [summarize_net(traj, k)["status"] for k in range(NET_SEEDS)]
    assert "diverged" not in statuses and statuses.count("converged") >= 3  # measured 4
    linear = run_baird(BairdConfig(steps=NET_STEPS), device="cpu", progress=False)
    assert summarize(linear)["status"] == "diverged"


def test_layer_norm_net_with_l2_is_bounded_but_parks_near_a_constant(net_runs):
    """LayerNorm + L2 (gamma/2)^2 on the last layer: bounded like the net without it, the last
    layer's weights decay to 0.02-0.9% of their start, and the values end nearly constant and
    slow: final sqrt(VE) 0.014 .. 0.41, no lower than without L2 (a constant value b moves by
    only alpha (1 - gamma) b = 1e-4 b per sweep under expected TD)."""
    traj, plain = net_runs[paper_l2(0.99)], net_runs[0.0]
    ve, norms, last = traj.sqrt_ve, traj.norm_w, traj.norm_last
    start = float(ve[0, 0])
    assert torch.isfinite(traj.values).all()
    assert (norms.max(0).values < 1.5 * norms[0]).all()  # measured <= 1.23x
    assert (ve.max(0).values < 20 * start).all()  # measured <= 11.9x
    assert (last[-1] < 0.05 * last[0]).all()  # measured <= 0.009x
    assert (ve[-1] < 0.2 * start).all()  # measured <= 0.41 = 0.077 x start
    assert ve[-1].median() > 1e3 * plain.sqrt_ve[-1].median()  # measured 0.234 vs 5.5e-7
    assert all(summarize_net(traj, k)["status"] != "diverged" for k in range(NET_SEEDS))


def test_mlp_without_layer_norm_diverges():
    traj = run_baird_net(BairdNetConfig(layer_norm=False, steps=200), device="cpu", num_runs=2,
                         progress=False)
    for k in range(2):
        s = summarize_net(traj, k)
        assert s["status"] == "diverged" and s["overflow_step"] is not None  # measured: 15-16


def test_compare_draws_one_figure(tmp_path, capsys):
    run_dir = tmp_path / "c"
    assert main(["baird", "--compare", "--steps", "300", "--net-runs", "2", "--run-dir",
                 str(run_dir), "--device", "cpu"]) == 0
    summary = json.loads((run_dir / "summary.json").read_text())
    methods = summary["methods"]
    assert len(methods) == 6
    semi = methods["linear semi-gradient off-policy TD(0) (book features)"]
    assert semi["runs"][0]["status"] == "diverged"
    assert [r["status"] for r in methods["MLP (no LayerNorm), 32 ReLU, on x(s)"]["runs"]] == \
        ["diverged"] * 2
    ln = methods["LayerNorm MLP + L2 0.245, 32 ReLU, on x(s)"]
    assert ln["l2"] == pytest.approx(0.245025) and ln["seeds"] == [0, 1]
    rows = read_csv(run_dir / "compare.csv")
    assert list(rows[0]) == ["method", "seed", "step", "sqrt_ve", "norm_w", "norm_last"]
    assert len(rows) == 3 * 301 + 3 * 2 * 301
    assert (run_dir / "compare.png").stat().st_size > 10_000
    assert main(["baird", "--compare", "--method", "tdc", "--run-dir", str(tmp_path / "d")]) == 2
    assert "drop --method" in capsys.readouterr().err
