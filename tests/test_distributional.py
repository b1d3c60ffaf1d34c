"""C51's and QR-DQN's losses against per-sample references written from the papers' algorithms
(terminated and truncated transitions, Double selection), their gradients (the taken action's
outputs only, never the target), and the distributional heads."""

import math

import pytest
import torch

from semigrad import heads
from semigrad.losses import (
    categorical_projection,
    categorical_q_learning,
    fold_termination,
    quantile_midpoints,
    quantile_q_learning,
    quantile_q_learning_and_grad,
)

B, A, M = 24, 3, 11


def _transitions(seed=0, dtype=torch.float64):
    """B transitions: rewards some beyond the support, every third terminated, some truncated
    (they bootstrap), and n-step discounts gamma^m on some."""
    gen = torch.Generator().manual_seed(seed)
    r_t = (torch.rand(B, generator=gen, dtype=dtype) - 0.5) * 14
    terminated = torch.arange(B) % 3 == 0
    truncated = (torch.arange(B) % 4 == 1) & ~terminated
    gamma = torch.where(torch.arange(B) % 5 == 2, 0.9**3, 0.9).to(dtype)
    a_tm1 = torch.randint(A, (B,), generator=gen)
    return a_tm1, r_t, fold_termination(gamma, terminated), terminated, truncated


def _c51_reference(logits_tm1, a_tm1, r_t, discount_t, logits_t, z, selector=None):
    """Bellemare et al. 2017, Algorithm 1, sample by sample and atom by atom in plain Python
    (with the fix for an atom landing exactly on a support atom: it keeps its whole mass)."""
    zs = z.tolist()
    v_min, v_max, dz = zs[0], zs[-1], zs[1] - zs[0]
    out = []
    for i in range(logits_tm1.shape[0]):
        p_next = [[math.exp(x) for x in row] for row in logits_t[i].tolist()]
        p_next = [[x / sum(row) for x in row] for row in p_next]
        q_next = [sum(p * zj for p, zj in zip(row, zs, strict=True)) for row in p_next]
        values = q_next if selector is None else selector[i].tolist()
        a_star = max(range(len(values)), key=lambda a: (values[a], -a))  # first maximum
        m = [0.0] * len(zs)
        r, d = r_t[i].item(), discount_t[i].item()
        for j, zj in enumerate(zs):
            tz = min(max(r + d * zj, v_min), v_max)
            b = (tz - v_min) / dz
            lo, up = math.floor(b), math.ceil(b)
            if lo == up:
                m[lo] += p_next[a_star][j]
            else:
                m[lo] += p_next[a_star][j] * (up - b)
                m[up] += p_next[a_star][j] * (b - lo)
        row = logits_tm1[i, a_tm1[i]].tolist()
        log_z = math.log(sum(math.exp(x) for x in row))
        out.append(-sum(mj * (x - log_z) for mj, x in zip(m, row, strict=True)))
    return torch.tensor(out, dtype=torch.float64)


def _huber(u, kappa):
    if kappa == 0:
        return abs(u)
    return 0.5 * u * u if abs(u) <= kappa else kappa * (abs(u) - 0.5 * kappa)


def _qr_reference(theta_tm1, a_tm1, r_t, discount_t, theta_t, kappa, selector=None):
    """Dabney et al. 2018, Algorithm 1 / eq. 10, pair by pair in plain Python:
    ``sum_i mean_j |tau_hat_i - 1{u_ij < 0}| L_kappa(u_ij)``, ``u_ij = T theta_j - theta_i``."""
    out = []
    for i in range(theta_tm1.shape[0]):
        rows = theta_t[i].tolist()
        values = [sum(row) / len(row) for row in rows] if selector is None else selector[i].tolist()
        a_star = max(range(len(values)), key=lambda a: (values[a], -a))
        target = [r_t[i].item() + discount_t[i].item() * x for x in rows[a_star]]
        theta = theta_tm1[i, a_tm1[i]].tolist()
        n_pred = len(theta)
        total = 0.0
        for k, th in enumerate(theta):
            tau = (2 * k + 1) / (2 * n_pred)
            inner = 0.0
            for tj in target:
                u = tj - th
                inner += abs(tau - (1.0 if u < 0 else 0.0)) * _huber(u, kappa)
            total += inner / len(target)
        out.append(total)
    return torch.tensor(out, dtype=torch.float64)


@pytest.mark.parametrize("double", [False, True])
def test_c51_equals_algorithm_1(double):
    gen = torch.Generator().manual_seed(1)
    a_tm1, r_t, discount_t, terminated, truncated = _transitions()
    z = heads.categorical_support(-5.0, 5.0, M, dtype=torch.float64)
    logits_tm1 = torch.randn(B, A, M, generator=gen, dtype=torch.float64)
    logits_t = torch.randn(B, A, M, generator=gen, dtype=torch.float64) * 2
    selector = torch.randn(B, A, generator=gen, dtype=torch.float64) if double else None
    got = categorical_q_learning(logits_tm1, a_tm1, r_t, discount_t, logits_t, z, selector)
    want = _c51_reference(logits_tm1, a_tm1, r_t, discount_t, logits_t, z, selector)
    assert got.shape == (B,)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-6)
    assert truncated.any() and terminated.any() and (r_t.abs() > 5).any()
    # float32 inputs: the same to float32 rounding
    got32 = categorical_q_learning(logits_tm1.float(), a_tm1, r_t.float(), discount_t.float(),
                                   logits_t.float(), z.float(),
                                   None if selector is None else selector.float())
    torch.testing.assert_close(got32.double(), want, rtol=1e-5, atol=1e-5)


def test_terminated_targets_collapse_onto_the_reward_and_truncated_ones_bootstrap():
    """A terminated transition's target is r alone (split between the two atoms around it),
    whatever the next distribution; a truncated one keeps the next state's distribution."""
    z = heads.categorical_support(-2.0, 2.0, 5, dtype=torch.float64)  # atoms -2 -1 0 1 2
    r_t = torch.tensor([0.25, 0.25], dtype=torch.float64)
    discount_t = fold_termination(0.5, torch.tensor([True, False]), torch.float64)
    logits_t = torch.zeros(2, 1, 5, dtype=torch.float64)
    logits_t[:, 0, 4] = 50.0  # all mass at z = 2
    target_logits = torch.zeros(2, 1, 5, dtype=torch.float64, requires_grad=True)
    loss = categorical_q_learning(target_logits, torch.zeros(2, dtype=torch.int64), r_t,
                                  discount_t, logits_t, z)
    loss.sum().backward()
    # d loss / d logits = softmax - m: m is the projected target
    m = torch.softmax(target_logits.detach(), -1)[:, 0] - target_logits.grad[:, 0]
    torch.testing.assert_close(m[0], torch.tensor([0, 0, 0.75, 0.25, 0], dtype=torch.float64))
    # truncated: 0.25 + 0.5 * 2 = 1.25 -> 0.75 at z = 1, 0.25 at z = 2
    torch.testing.assert_close(m[1], torch.tensor([0, 0, 0, 0.75, 0.25], dtype=torch.float64))


def test_projection_keeps_mass_and_the_mean_inside_the_support():
    gen = torch.Generator().manual_seed(2)
    z = heads.categorical_support(-10.0, 10.0, 51, dtype=torch.float64)
    atoms = (torch.rand(7, 30, generator=gen, dtype=torch.float64) - 0.5) * 19.9
    probs = torch.softmax(torch.randn(7, 30, generator=gen, dtype=torch.float64), -1)
    m = categorical_projection(atoms, probs, z)
    torch.testing.assert_close(m.sum(-1), torch.ones(7, dtype=torch.float64))
    torch.testing.assert_close((m * z).sum(-1), (probs * atoms).sum(-1))
    # an atom beyond the support lands on its end
    far = categorical_projection(torch.tensor([[30.0, -30.0]], dtype=torch.float64),
                                 torch.tensor([[0.3, 0.7]], dtype=torch.float64), z)
    assert far[0, -1] == 0.3 and far[0, 0] == 0.7


@pytest.mark.parametrize("kappa", [1.0, 0.0, 2.5])
@pytest.mark.parametrize("double", [False, True])
def test_qr_dqn_equals_the_pairwise_loss(kappa, double):
    gen = torch.Generator().manual_seed(3)
    a_tm1, r_t, discount_t, _, _ = _transitions(seed=4)
    theta_tm1 = torch.randn(B, A, M, generator=gen, dtype=torch.float64) * 3
    theta_t = torch.randn(B, A, M, generator=gen, dtype=torch.float64) * 3
    selector = torch.randn(B, A, generator=gen, dtype=torch.float64) if double else None
    got = quantile_q_learning(theta_tm1, a_tm1, r_t, discount_t, theta_t, selector, kappa)
    want = _qr_reference(theta_tm1, a_tm1, r_t, discount_t, theta_t, kappa, selector)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-6)
    # a different number of target quantiles (N != M)
    got = quantile_q_learning(theta_tm1, a_tm1, r_t, discount_t, theta_t[..., :5], selector,
                              kappa)
    want = _qr_reference(theta_tm1, a_tm1, r_t, discount_t, theta_t[..., :5], kappa, selector)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-6)


@pytest.mark.parametrize("kappa", [1.0, 0.0, 2.5])
@pytest.mark.parametrize("double", [False, True])
def test_qr_closed_form_gradient_is_autograds(kappa, double):
    """``quantile_q_learning_and_grad``: the same loss, and d loss_b / d quantiles_tm1 equal to
    autograd's (float64), zero off the taken action, terminated transitions included."""
    gen = torch.Generator().manual_seed(7)
    a_tm1, r_t, discount_t, _, _ = _transitions(seed=8)
    assert (discount_t == 0).any() and (discount_t > 0).any()
    theta_tm1 = (torch.randn(B, A, M, generator=gen, dtype=torch.float64) * 3).requires_grad_()
    theta_t = torch.randn(B, A, 5, generator=gen, dtype=torch.float64) * 3
    selector = torch.randn(B, A, generator=gen, dtype=torch.float64) if double else None
    want = quantile_q_learning(theta_tm1, a_tm1, r_t, discount_t, theta_t, selector, kappa)
    weights = torch.rand(B, generator=gen, dtype=torch.float64)
    want_grad, = torch.autograd.grad((want * weights).sum(), theta_tm1)
    with torch.no_grad():
        got, grad = quantile_q_learning_and_grad(theta_tm1, a_tm1, r_t, discount_t, theta_t,
                                                 selector, kappa)
    torch.testing.assert_close(got, want.detach(), rtol=0, atol=1e-12)
    torch.testing.assert_close(grad * weights.view(-1, 1, 1), want_grad, rtol=0, atol=1e-12)
    assert want_grad.abs().sum() > 0


def test_qr_terminated_target_is_the_reward():
    """With discount 0 every target quantile is r: the loss is the quantile Huber loss of
    theta against r alone, whatever the next state's quantiles."""
    theta = torch.tensor([[[-1.0, 0.0, 3.0]]], dtype=torch.float64)
    r_t = torch.tensor([0.5], dtype=torch.float64)
    got = quantile_q_learning(theta, torch.zeros(1, dtype=torch.int64), r_t,
                              torch.zeros(1, dtype=torch.float64),
                              torch.full((1, 1, 3), 1e6, dtype=torch.float64))
    # u = 1.5, 0.5, -2.5 at tau_hat 1/6, 1/2, 5/6; Huber (kappa 1): 1.0, 0.125, 2.0
    want = (1 / 6) * 1.0 + 0.5 * 0.125 + (1 - 5 / 6) * 2.0
    assert abs(got.item() - want) < 1e-12


@pytest.mark.parametrize("loss_name", ["c51", "qr"])
def test_gradients_reach_only_the_taken_action_and_never_the_target(loss_name):
    gen = torch.Generator().manual_seed(5)
    a_tm1, r_t, discount_t, _, _ = _transitions(seed=6, dtype=torch.float32)
    out_tm1 = torch.randn(B, A, M, generator=gen, requires_grad=True)
    out_t = torch.randn(B, A, M, generator=gen, requires_grad=True)
    if loss_name == "c51":
        z = heads.categorical_support(-5.0, 5.0, M)
        loss = categorical_q_learning(out_tm1, a_tm1, r_t, discount_t, out_t, z)
    else:
        loss = quantile_q_learning(out_tm1, a_tm1, r_t, discount_t, out_t)
    loss.mean().backward()
    taken = torch.zeros(B, A, dtype=torch.bool)
    taken[torch.arange(B), a_tm1] = True
    assert out_t.grad is None  # the target carries no gradient
    assert torch.all(out_tm1.grad[~taken] == 0)
    assert torch.all(out_tm1.grad[taken].abs().sum(-1) > 0)
    # asked for (residual-gradient form), the target does get a gradient
    out_t2 = out_t.detach().clone().requires_grad_()
    if loss_name == "c51":
        loss = categorical_q_learning(out_tm1, a_tm1, r_t, discount_t, out_t2, z,
                                      stop_target_gradients=False)
    else:
        loss = quantile_q_learning(out_tm1, a_tm1, r_t, discount_t, out_t2,
                                   stop_target_gradients=False)
    loss.sum().backward()
    assert out_t2.grad is not None and out_t2.grad.abs().sum() > 0


def test_shape_and_value_checks():
    z = heads.categorical_support(-1.0, 1.0, 4)
    q3 = torch.zeros(2, 3, 4)
    a, r, d = torch.zeros(2, dtype=torch.int64), torch.zeros(2), torch.ones(2)
    with pytest.raises(ValueError, match=r"categorical_q_learning: `logits_t` must be a float "
                                         r"tensor of shape \(B, A, M\)=\(2, 3, 4\)"):
        categorical_q_learning(q3, a, r, d, torch.zeros(2, 3, 5), z)
    with pytest.raises(ValueError, match="`a_tm1` must lie in"):
        categorical_q_learning(q3, a + 3, r, d, q3, z)
    with pytest.raises(ValueError, match="quantile_q_learning: `kappa` must be a float >= 0"):
        quantile_q_learning(q3, a, r, d, q3, kappa=-1.0)
    with pytest.raises(ValueError, match="`q_t_selector` must be"):
        quantile_q_learning(q3, a, r, d, q3, torch.zeros(2, 4))
    with pytest.raises(ValueError, match="categorical_projection: `z` must be a float tensor"):
        categorical_projection(torch.zeros(2, 3), torch.zeros(2, 3), torch.zeros(3, 1))
    with pytest.raises(ValueError, match="v_min must be < v_max"):
        heads.categorical_support(1.0, 1.0, 5)


def test_quantile_midpoints():
    torch.testing.assert_close(quantile_midpoints(4), torch.tensor([0.125, 0.375, 0.625, 0.875]))


def test_heads_give_means_and_distributions():
    gen = torch.Generator().manual_seed(7)
    head = heads.DistributionalHead(8, 3, 51, "categorical", -10.0, 10.0)
    x = torch.randn(2, 5, 8, generator=gen)  # (K, B, features): any leading dims
    logits = head(x)
    assert logits.shape == (2, 5, 3, 51)
    values, probs = head.distribution(logits)
    assert values.shape == probs.shape == (2, 5, 3, 51)
    torch.testing.assert_close(probs.sum(-1), torch.ones(2, 5, 3))
    q = head.q_values(logits)
    torch.testing.assert_close(q, (values * probs).sum(-1))
    manual = (torch.softmax(logits, -1) * torch.linspace(-10, 10, 51)).sum(-1)
    torch.testing.assert_close(q, manual)
    assert torch.equal(head.z, torch.linspace(-10, 10, 51)) and "z" in head.state_dict()

    qhead = heads.DistributionalHead(8, 3, 7, "quantile")
    out = qhead(x)
    assert qhead.z is None and out.shape == (2, 5, 3, 7)
    values, probs = qhead.distribution(out)
    assert torch.all(values.diff(dim=-1) >= 0) and torch.all(probs == 1 / 7)
    torch.testing.assert_close(qhead.q_values(out), out.mean(-1))
    torch.testing.assert_close((values * probs).sum(-1), out.mean(-1))
    with pytest.raises(ValueError, match="kind must be one of"):
        heads.DistributionalHead(8, 3, 7, "gaussian")
    with pytest.raises(ValueError, match="needs its support"):
        heads.q_values("categorical", out)


def test_projection_in_linear_time_equals_the_closeness_formula():
    from semigrad.losses import _project, _project_dense

    gen = torch.Generator().manual_seed(5)
    for dtype in (torch.float64, torch.float32):
        z = heads.categorical_support(0.0, 100.0, 51, dtype=dtype)
        atoms = (torch.rand(64, 30, generator=gen, dtype=dtype) * 140 - 20)
        atoms[:, :5] = z[torch.randint(0, 51, (64, 5), generator=gen)]  # on support atoms
        probs = torch.softmax(torch.randn(64, 30, generator=gen, dtype=dtype), -1)
        torch.testing.assert_close(_project(atoms, probs, z), _project_dense(atoms, probs, z),
                                   atol=1e-6 if dtype == torch.float32 else 1e-12, rtol=0)
