"""losses.py: each learning rule's formula, the per-sample reference, where the gradient goes,
the discount convention, the checks, and every accelerator against the autograd reference."""

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from semigrad import envs, losses
from semigrad.buffers import ReplayBuffer
from semigrad.losses import (
    double_q_learning,
    expected_sarsa,
    fold_termination,
    n_step_returns,
    per_agent_q_learning,
    per_agent_q_learning_loss_and_grad,
    q_learning,
    q_learning_loss_per_sample,
    sarsa,
    taken_action_values,
    td_error_loss,
    td_error_loss_and_grad_per_row,
    td_error_loss_per_row,
    td_learning,
)
from semigrad.nets import QNetwork

SEED_Q = torch.tensor(
    [[4.0, 2.5, 2.9], [1.2, 1.5, 1.9], [5.0, 5.5, 5.9], [4.8, 2.5, 2.9], [4.0, 2.8, 3.9]]
)
SEED_ACTIONS = torch.tensor([2, 1, 1, 0, 1])
CPU = torch.device("cpu")


def test_seed_gather_example():
    got = taken_action_values(SEED_Q, SEED_ACTIONS)
    assert torch.equal(got, torch.tensor([2.9, 1.5, 5.5, 4.8, 2.8]))


def test_seed_scalar_gradient_example():
    """Seed 000's one-sample case: outputs (0.235, 1.200, 1.321), action 1, target 0.890:
    d loss / d q = (0, 2 (1.2 - 0.89), 0) = (0, 0.62, 0), by the batched functions and by the
    per-sample reference (a target known outright: reward 0.890, discount 0)."""
    expected = torch.tensor([[0.0, 0.62, 0.0]], dtype=torch.float64)
    target = torch.tensor([0.890], dtype=torch.float64)
    for by_reference in (False, True):
        q = torch.tensor([[0.235, 1.200, 1.321]], dtype=torch.float64, requires_grad=True)
        if by_reference:
            loss = q_learning_loss_per_sample(q, torch.tensor([1]), target, torch.zeros(1,
                                              dtype=torch.float64), torch.zeros_like(q))
        else:
            loss = td_error_loss(target - taken_action_values(q, torch.tensor([1])))
        loss.backward()
        assert torch.allclose(q.grad, expected)


def _batch(gen, batch, num_actions, obs_dim=4, dtype=torch.float64, terminal_p=0.3):
    return dict(
        states=torch.randn(batch, obs_dim, generator=gen, dtype=dtype),
        next_states=torch.randn(batch, obs_dim, generator=gen, dtype=dtype),
        actions=torch.randint(num_actions, (batch,), generator=gen),
        rewards=torch.randn(batch, generator=gen, dtype=dtype),
        terminated=torch.rand(batch, generator=gen) < terminal_p,
    )


def _grads(net):
    return [p.grad.clone() for p in net.parameters()]


def _batched_q_loss(q, actions, rewards, discount, next_q_target, next_q_online, kind):
    if next_q_online is None:
        td_error = q_learning(q, actions, rewards, discount, next_q_target)
    else:
        td_error = double_q_learning(q, actions, rewards, discount, next_q_target, next_q_online)
    return td_error_loss(td_error, kind)


@settings(max_examples=40, deadline=None)
@given(
    batch=st.integers(1, 24),
    num_actions=st.integers(1, 6),
    gamma=st.one_of(st.floats(0.0, 1.0), st.just("tensor")),
    terminal_p=st.sampled_from([0.0, 0.3, 1.0]),
    double=st.booleans(),
    kind=st.sampled_from(["mse", "huber"]),
    seed=st.integers(0, 2**31 - 1),
)
def test_batched_equals_per_sample(batch, num_actions, gamma, terminal_p, double, kind, seed):
    """``td_error_loss(q_learning | double_q_learning)`` against the seed's loop, value and
    gradient, in float64 (the two sum the same terms in different orders: 1e-6 is far above
    their rounding, 1e-16 relative per operation, and far below any wrong formula)."""
    gen = torch.Generator().manual_seed(seed)
    data = _batch(gen, batch, num_actions, terminal_p=terminal_p)
    if gamma == "tensor":  # per-transition discounts (n-step gamma^m)
        gamma = torch.rand(batch, generator=gen, dtype=torch.float64)
    discount = fold_termination(gamma, data["terminated"], torch.float64)
    torch.manual_seed(seed)
    online = QNetwork(4, num_actions, hidden=(8,)).double()
    target = QNetwork(4, num_actions, hidden=(8,)).double()
    values = []
    grads = []
    for by_reference in (False, True):
        online.zero_grad()
        with torch.no_grad():
            next_q_target = target(data["next_states"])
            next_q_online = online(data["next_states"]) if double else None
        args = (online(data["states"]), data["actions"], data["rewards"], discount,
                next_q_target, next_q_online)
        if by_reference:
            loss = q_learning_loss_per_sample(*args, kind=kind)
        else:
            loss = _batched_q_loss(*args, kind)
        loss.backward()
        values.append(loss.detach())
        grads.append(_grads(online))
    assert abs(values[0] - values[1]).item() <= 1e-6
    for g_batched, g_loop in zip(*grads, strict=True):
        assert (g_batched - g_loop).abs().max().item() <= 1e-6


def test_gradient_only_at_taken_actions_with_closed_form():
    gen = torch.Generator().manual_seed(0)
    batch, num_actions, gamma = 7, 4, 0.9
    data = _batch(gen, batch, num_actions)
    q = torch.randn(batch, num_actions, generator=gen, dtype=torch.float64, requires_grad=True)
    next_q = torch.randn(batch, num_actions, generator=gen, dtype=torch.float64)
    discount = fold_termination(gamma, data["terminated"], torch.float64)
    loss = td_error_loss(q_learning(q, data["actions"], data["rewards"], discount, next_q))
    loss.backward()
    target = data["rewards"] + gamma * (~data["terminated"]) * next_q.max(1).values
    expected = torch.zeros_like(q)
    rows = torch.arange(batch)
    expected[rows, data["actions"]] = 2 * (q[rows, data["actions"]] - target).detach() / batch
    assert torch.allclose(q.grad, expected, atol=1e-12)
    mask = torch.ones_like(q, dtype=torch.bool)
    mask[rows, data["actions"]] = False
    assert torch.all(q.grad[mask] == 0)


def test_huber_gradient_is_clipped_td_error():
    q = torch.tensor([[0.0, 10.0], [1.0, 0.0]], dtype=torch.float64, requires_grad=True)
    actions = torch.tensor([1, 0])
    rewards = torch.tensor([0.0, 1.5], dtype=torch.float64)
    td_error = q_learning(q, actions, rewards, torch.zeros(2, dtype=torch.float64),
                          torch.zeros(2, 2, dtype=torch.float64))
    td_error_loss(td_error, "huber").backward()
    # errors: 10 - 0 = 10 (clipped to 1), 1 - 1.5 = -0.5 (kept); both divided by B=2
    assert torch.allclose(q.grad, torch.tensor([[0.0, 0.5], [-0.25, 0.0]], dtype=torch.float64))


def test_target_network_gets_no_gradient():
    torch.manual_seed(0)
    online, target = QNetwork(4, 3), QNetwork(4, 3)
    data = _batch(torch.Generator().manual_seed(1), 16, 3, dtype=torch.float32)
    discount = fold_termination(0.99, data["terminated"])
    for double in (False, True):
        next_q_online = online(data["next_states"]) if double else None  # with grad on purpose
        loss = _batched_q_loss(online(data["states"]), data["actions"], data["rewards"],
                               discount, target(data["next_states"]), next_q_online, "mse")
        loss.backward()
        assert all(p.grad is None for p in target.parameters())
        online.zero_grad()
    # the TD error's gradient comes from q_tm1 alone: none without it
    td_error = q_learning(online(data["states"]).detach(), data["actions"], data["rewards"],
                          discount, target(data["next_states"]))
    assert not td_error.requires_grad


def test_without_stop_target_gradients_the_target_is_trained_too():
    """``stop_target_gradients=False`` (residual gradient): d 0.5 delta^2 / d v_t = delta
    discount_t and d / d v_tm1 = -delta, per sample; Q-learning's reaches the argmax only."""
    gen = torch.Generator().manual_seed(2)
    v_tm1, v_t = (torch.randn(6, generator=gen, dtype=torch.float64).requires_grad_()
                  for _ in range(2))
    r_t = torch.randn(6, generator=gen, dtype=torch.float64)
    discount = torch.tensor([0.9, 0.0, 0.5, 1.0, 0.9, 0.3], dtype=torch.float64)
    delta = td_learning(v_tm1, r_t, discount, v_t, stop_target_gradients=False)
    (0.5 * delta.pow(2)).sum().backward()
    assert torch.allclose(v_t.grad, delta.detach() * discount)
    assert torch.allclose(v_tm1.grad, -delta.detach())
    q_t = torch.tensor([[1.0, 3.0], [2.0, 0.0]], requires_grad=True)
    q_learning(torch.zeros(2, 2), torch.tensor([0, 0]), torch.zeros(2), torch.ones(2), q_t,
               stop_target_gradients=False).sum().backward()
    assert torch.equal(q_t.grad, torch.tensor([[0.0, 1.0], [1.0, 0.0]]))


def test_terminal_next_state_contributes_no_bootstrap():
    """discount 0: the target is the reward exactly, whatever finite bootstrap value (here
    +-1e30); every rule, and the reference. As in rlax the product is computed, so a NaN
    bootstrap value is not hidden, even at a termination."""
    rewards = torch.tensor([1.0, 1.0, 1.0])
    next_q = torch.tensor([[5.0, 7.0], [-1e30, 1.0], [2.0, 1e30]])
    discount = fold_termination(0.5, torch.tensor([False, True, True]))
    zero_q, actions = torch.zeros(3, 2), torch.tensor([0, 0, 0])
    expected = torch.tensor([1.0 + 0.5 * 7.0, 1.0, 1.0])
    assert torch.equal(q_learning(zero_q, actions, rewards, discount, next_q), expected)
    assert torch.equal(double_q_learning(zero_q, actions, rewards, discount, next_q, next_q),
                       expected)
    assert torch.equal(sarsa(zero_q, actions, rewards, discount, next_q, torch.tensor([1, 0, 1])),
                       expected)
    assert torch.equal(expected_sarsa(zero_q, actions, rewards, discount, next_q,
                                      torch.tensor([[0.0, 1.0]] * 3)), expected)
    assert torch.equal(td_learning(torch.zeros(3), rewards, discount, next_q[:, 1]), expected)
    loss = q_learning_loss_per_sample(zero_q, actions, rewards, discount, next_q)
    assert torch.equal(loss, (expected**2).mean())
    next_q[1, 1] = float("nan")
    assert q_learning(zero_q, actions, rewards, discount, next_q).isnan().tolist() == [
        False, True, False]


def test_fold_termination_keeps_gamma_for_truncated_transitions():
    """``gamma (1 - terminated)``: a time-limit truncation is not terminated and bootstraps;
    a tensor gamma (n-step discounts) keeps its values and dtype; a float gamma gets the asked
    dtype with gamma itself (float64: not rounded to float32 first)."""
    terminated = torch.tensor([False, True, False])  # row 2: truncated, say
    assert torch.equal(fold_termination(0.9, terminated), torch.tensor([0.9, 0.0, 0.9]))
    got = fold_termination(0.9, terminated, torch.float64)
    assert got.dtype == torch.float64 and got[0].item() == 0.9
    discounts = torch.tensor([0.5, 0.25, 0.125], dtype=torch.float64)
    assert torch.equal(fold_termination(discounts, terminated),
                       torch.tensor([0.5, 0.0, 0.125], dtype=torch.float64))


def test_double_q_learning_uses_the_selectors_argmax_and_the_values_estimate():
    q_t_value = torch.tensor([[1.0, 9.0, 3.0], [4.0, 0.0, 2.0]])
    q_t_selector = torch.tensor([[0.0, 0.0, 5.0], [0.0, 8.0, 1.0]])
    zero_q, actions, ones = torch.zeros(2, 3), torch.tensor([0, 0]), torch.ones(2)
    got = double_q_learning(zero_q, actions, torch.zeros(2), ones, q_t_value, q_t_selector)
    assert torch.equal(got, torch.tensor([3.0, 0.0]))
    plain = q_learning(zero_q, actions, torch.zeros(2), ones, q_t_value)
    assert torch.equal(plain, torch.tensor([9.0, 4.0]))


def test_sarsa_and_expected_sarsa():
    next_q = torch.tensor([[1.0, 3.0], [2.0, 6.0]])
    rewards = torch.tensor([1.0, -1.0])
    discount = torch.tensor([0.5, 0.5])
    q_tm1, a_tm1 = torch.tensor([[0.25, 0.0], [0.0, 1.0]]), torch.tensor([0, 1])
    got = sarsa(q_tm1, a_tm1, rewards, discount, next_q, torch.tensor([0, 1]))
    assert torch.equal(got, torch.tensor([1.5 - 0.25, 2.0 - 1.0]))
    probs = torch.tensor([[0.25, 0.75], [0.5, 0.5]])
    got = expected_sarsa(q_tm1, a_tm1, rewards, discount, next_q, probs)
    assert torch.allclose(got, torch.tensor([1.0 + 0.5 * 2.5 - 0.25, -1.0 + 0.5 * 4.0 - 1.0]))


def test_per_sample_discount_tensor():
    got = td_learning(torch.zeros(3), torch.ones(3), torch.tensor([0.0, 0.5, 1.0]),
                      torch.full((3,), 2.0))
    assert torch.equal(got, torch.tensor([1.0, 2.0, 3.0]))


def test_batched_loss_matches_inline_formula():
    data = _batch(torch.Generator().manual_seed(3), 32, 4, dtype=torch.float32)
    q = torch.randn(32, 4)
    next_q = torch.randn(32, 4)
    inline = F.mse_loss(
        q.gather(1, data["actions"][:, None]).squeeze(1),
        data["rewards"] + 0.99 * (1 - data["terminated"].float()) * next_q.max(1).values,
    )
    discount = fold_termination(0.99, data["terminated"])
    got = td_error_loss(q_learning(q, data["actions"], data["rewards"], discount, next_q))
    assert torch.allclose(got, inline)


def test_n_step_returns_by_hand():
    """Windows cut by a termination (no bootstrap), by a truncation (bootstraps with
    gamma^m), and full ones (gamma^n)."""
    rewards = torch.tensor([[1.0, 2.0, 4.0, 8.0], [1.0, 2.0, 4.0, 8.0], [1.0, 2.0, 4.0, 8.0]])
    terminated = torch.tensor([[0, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 1]]).bool()
    truncated = torch.tensor([[0, 0, 0, 0], [0, 0, 1, 1], [0, 0, 0, 0]]).bool()
    got = n_step_returns(rewards, terminated, truncated, 0.5)
    assert torch.equal(got.returns, torch.tensor([1 + 0.5 * 2, 1 + 1 + 1, 1 + 1 + 1 + 1.0]))
    assert torch.equal(got.discount_t, torch.tensor([0.0, 0.125, 0.0]))
    assert torch.equal(got.steps, torch.tensor([2, 3, 4]))


@pytest.mark.parametrize("compiled", [False, True])
def test_n_step_returns_is_what_the_replay_samples(compiled):
    """The replay's n-step transitions (``ReplayBuffer.n_step_at``) are ``n_step_returns``
    of the windows they start: its tensor form runs the same operations (equal bit for bit);
    its compiled loop adds the terms in order of k where torch reduces in its own order, so
    the returns agree to float32 rounding (n = 5 terms of size <= 4: 1e-6 bounds a few ulps)."""
    n, gamma, num_envs, capacity = 5, 0.97, 4, 60
    buf = ReplayBuffer(capacity, 3, num_envs=num_envs, compiled=compiled)
    gen = torch.Generator().manual_seed(0)
    for _ in range(40):  # the ring wraps
        flags = torch.rand(num_envs, generator=gen)
        buf.add(torch.randn(num_envs, 3, generator=gen), torch.randint(3, (num_envs,),
                generator=gen), torch.randn(num_envs, generator=gen),
                torch.randn(num_envs, 3, generator=gen), flags < 0.2,
                (flags > 0.15) & (flags < 0.3))
    start = torch.randint(capacity, (3000,), generator=torch.Generator().manual_seed(1))
    batch = buf.n_step_at(start, n, gamma)
    window = (start.unsqueeze(1) + torch.arange(n) * num_envs) % capacity
    got = n_step_returns(buf.rewards[window], buf.terminated[window], buf.truncated[window],
                         gamma)
    if compiled:
        torch.testing.assert_close(got.returns, batch.rewards, rtol=0, atol=1e-6)
    else:
        assert torch.equal(got.returns, batch.rewards)
    assert torch.equal(got.discount_t, fold_termination(batch.discounts, batch.terminated))
    last = window.gather(1, (got.steps - 1).unsqueeze(1)).squeeze(1)
    assert torch.equal(buf.next_obs[last], batch.next_obs)
    assert got.steps.min() == 1 and got.steps.max() == n and (got.discount_t == 0).any()


# ----------------------------------------------------------------------------- accelerators


def test_check_false_skips_the_checks_only():
    """``check=False`` (TD(0)'s hot loop): the same numbers; the checks are what it skips."""
    gen = torch.Generator().manual_seed(4)
    v_tm1, r_t, v_t = (torch.randn(64, generator=gen) for _ in range(3))
    terminated = torch.rand(64, generator=gen) < 0.2
    discount = fold_termination(0.95, terminated)
    assert torch.equal(fold_termination(0.95, terminated, check=False), discount)
    assert torch.equal(td_learning(v_tm1, r_t, discount, v_t, check=False),
                       td_learning(v_tm1, r_t, discount, v_t))
    with pytest.raises(ValueError, match="td_learning: `v_t`"):
        td_learning(v_tm1, r_t, discount, v_t[:3])
    with pytest.raises(RuntimeError):  # unchecked: torch's own error, not ours
        td_learning(v_tm1, r_t, discount, v_t[:3], check=False)


@pytest.mark.parametrize("kind", ["mse", "huber"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_closed_form_loss_gradient_is_autograds(kind, dtype):
    """``td_error_loss_and_grad_per_row`` = autograd through ``td_error_loss_per_row``, bit
    for bit (the same arithmetic: torch's mse / huber backward scale by 1 / B as it does), and
    row k is ``td_error_loss`` of row k."""
    td_error = (3 * torch.randn(4, 50, generator=torch.Generator().manual_seed(0))).to(dtype)
    td_error.requires_grad_()
    losses_ = td_error_loss_per_row(td_error, kind)
    (grad,) = torch.autograd.grad(losses_.sum(), td_error)
    closed_losses, closed_grad = td_error_loss_and_grad_per_row(td_error.detach(), kind)
    assert torch.equal(closed_losses, losses_.detach()) and torch.equal(closed_grad, grad)
    for k in range(4):
        assert torch.equal(td_error_loss(td_error[k], kind), losses_[k])


def _per_agent_inputs(k=3, b=40, a=3, seed=0, nan_at_terminal=False):
    """Q-values in the stacked MLP's layout (``(K, A, B)`` memory seen as ``(K, B, A)``), a
    minibatch with terminal rows, Huber errors beyond delta, tied next Q-values, and n-step
    discounts folded with the terminations; ``nan_at_terminal``: next Q-values NaN at agent
    1's terminal rows."""
    gen = torch.Generator().manual_seed(seed)
    q, next_t, next_o = ((3 * torch.randn(k, a, b, generator=gen)).mT for _ in range(3))
    next_o[0, :6] = next_o[0, :6, :1].clone()  # ties: Double DQN takes the first maximum
    next_t[1, :6] = next_t[1, :6, :1].clone()
    actions = torch.randint(a, (k * b,), generator=gen)
    rewards = torch.randn(k * b, generator=gen)
    terminated = torch.rand(k * b, generator=gen) < 0.2
    discount = fold_termination(0.97 ** torch.randint(1, 4, (k * b,), generator=gen).float(),
                                terminated)
    if nan_at_terminal:
        bad = terminated.view(k, b) & (torch.arange(k) == 1).unsqueeze(1)
        next_t[bad] = float("nan")
        next_o[bad] = float("nan")
    return q, actions, rewards, discount, next_t, next_o


@pytest.mark.parametrize("double", [False, True])
@pytest.mark.parametrize("kind", ["mse", "huber"])
def test_per_agent_tensor_form_is_autograd_of_each_agents_loss(double, kind):
    """``per_agent_q_learning_loss_and_grad`` (closed-form gradient) = autograd through
    ``td_error_loss(q_learning(...))`` agent by agent: the same operations, bit for bit."""
    q, actions, rewards, discount, next_t, next_o = _per_agent_inputs()
    losses_, mean_q, grad_q = per_agent_q_learning_loss_and_grad(
        q, actions, rewards, discount, next_t, next_o if double else None, kind)
    b = q.shape[1]
    for k in range(q.shape[0]):
        rows = slice(k * b, (k + 1) * b)
        q_k = q[k].detach().clone().requires_grad_()
        loss = _batched_q_loss(q_k, actions[rows], rewards[rows], discount[rows], next_t[k],
                               next_o[k] if double else None, kind)
        loss.backward()
        assert torch.equal(losses_[k], loss.detach()) and torch.equal(grad_q[k], q_k.grad)
        assert torch.equal(mean_q[k], q[k].mean())


@pytest.mark.parametrize("double", [True, False])
@pytest.mark.parametrize("kind", ["mse", "huber"])
@pytest.mark.parametrize("nan_at_terminal", [False, True])
def test_compiled_per_agent_loss_matches_the_tensor_form(double, kind, nan_at_terminal):
    """The numba kernel against the tensor form. The kernel forms each TD error in float64
    from the float32 inputs and rounds once when it stores; the tensor form rounds in float32
    at the multiply-add and the subtraction (u = 6e-8 relative each). With |q|, |r| <= ~10 the
    errors are ~10, so losses (mean e^2 ~ 20) and gradients (2 e / B) agree to a few u:
    rtol 1e-6 with atol 1e-7 for entries near zero. A NaN bootstrap value makes the same
    NaNs in both, at a terminal row too (agent 1's loss; its gradient at those rows)."""
    q, actions, rewards, discount, next_t, next_o = _per_agent_inputs(
        nan_at_terminal=nan_at_terminal)
    compiled = per_agent_q_learning(CPU, compiled=True)
    args = (q, actions, rewards, discount, next_t, next_o if double else None, kind)
    got, ref = compiled(*args), per_agent_q_learning_loss_and_grad(*args)
    for name, x, y in zip(("losses", "mean_q", "grad_q"), got, ref, strict=True):
        torch.testing.assert_close(x, y, rtol=1e-6, atol=1e-7, equal_nan=True, msg=name)
    assert got[0].isnan().tolist() == [False, nan_at_terminal, False]
    assert got[2].stride() == q.stride()  # the layout the backward pass reads
    assert (got[2] != 0).sum() == q.shape[0] * q.shape[1]  # one taken action per row
    bad = actions.clone().index_fill_(0, torch.tensor([7]), 3)
    with pytest.raises(ValueError, match="action 3 at row 7 is not in 0..2"):
        compiled(q, bad, *args[2:])


@pytest.mark.parametrize("discount_dtype", [torch.float32, torch.float64])
def test_compiled_per_agent_loss_computes_in_float64(discount_dtype):
    """The kernel's TD errors are the float64 formula on the float32 inputs, rounded once when
    stored: its gradient (``-2 delta / B``, elementwise) equals that formula bit for bit, and
    its losses (a float64 sum in another order) to float32 rounding. A float32 product in the
    kernel would miss by an ulp in about a third of the entries."""
    q, actions, rewards, discount, next_t, _ = _per_agent_inputs()
    discount = discount.to(discount_dtype)
    losses_, _, grad_q = per_agent_q_learning(CPU, compiled=True)(
        q, actions, rewards, discount, next_t, None, "mse")
    k, b = q.shape[:2]
    taken = actions.view(k, b, 1)
    target = rewards.double().view(k, b) + discount.double().view(k, b) * next_t.double().amax(2)
    error = q.double().gather(2, taken).squeeze(2) - target
    grad = (error * (2.0 * (1.0 / b))).float().unsqueeze(2)
    assert torch.equal(grad_q, torch.zeros_like(q).scatter_(2, taken, grad))
    torch.testing.assert_close(losses_, (error**2).mean(1).float(), rtol=1.2e-7, atol=0)


# ----------------------------------------------------------------------------- bad input

Q = torch.zeros(4, 3)
A = torch.tensor([0, 1, 2, 0])
R = torch.zeros(4)
D = torch.full((4,), 0.9)
T = torch.zeros(4, dtype=torch.bool)
Q_ARGS = dict(q_tm1=Q, a_tm1=A, r_t=R, discount_t=D, q_t=Q)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(a_tm1=A.float()), "`a_tm1` must be an int64 tensor of shape (B,)=(4,)"),
        (dict(a_tm1=torch.tensor([0, 1, 3, 0])), "`a_tm1` must lie in [0, A-1]=[0, 2]"),
        (dict(a_tm1=torch.tensor([0, -1, 2, 0])), "`a_tm1` must lie in [0, A-1]=[0, 2]"),
        (dict(a_tm1=A[:3]), "`a_tm1` must be an int64 tensor of shape (B,)=(4,)"),
        (dict(q_tm1=torch.zeros(4)), "`q_tm1` must be a float tensor of shape (B, A)"),
        (dict(r_t=torch.zeros(5)), "`r_t` must be a float tensor of shape (B,)=(4,)"),
        (dict(r_t=torch.zeros(4, 1)), "`r_t` must be a float tensor of shape (B,)=(4,)"),
        (dict(q_t=torch.zeros(4, 2)), "`q_t` must be a float tensor of shape (B, A)=(4, 3)"),
        (dict(discount_t=D[:2]), "`discount_t` must be a float tensor of shape (B,)=(4,)"),
        (dict(discount_t=T), "`discount_t` must be a float tensor of shape (B,)=(4,)"),
        (dict(q_t=[[0.0] * 3] * 4), "`q_t` must be a torch.Tensor, got list"),
    ],
)
@pytest.mark.parametrize("fn", [q_learning, q_learning_loss_per_sample])
def test_bad_input_raises_one_clear_error(fn, kwargs, message):
    with pytest.raises(ValueError) as info:
        fn(**{**Q_ARGS, **kwargs})
    assert message in str(info.value)
    assert fn.__name__ in str(info.value)


# every public function with one wrong argument: the error names the function and argument
BAD_CALLS = [
    (taken_action_values, dict(q=Q, actions=A[:2]), "actions"),
    (fold_termination, dict(gamma=0.9, terminated=T.float()), "terminated"),
    (fold_termination, dict(gamma=1.5, terminated=T), "gamma"),
    (fold_termination, dict(gamma=D[:3], terminated=T), "gamma"),
    (n_step_returns, dict(r_t=torch.zeros(4, 3), terminated_t=torch.zeros(4, 2, dtype=bool),
                          truncated_t=torch.zeros(4, 3, dtype=bool), gamma=0.9), "terminated_t"),
    (n_step_returns, dict(r_t=torch.zeros(4, 3), terminated_t=torch.zeros(4, 3, dtype=bool),
                          truncated_t=torch.zeros(4, 3, dtype=bool), gamma=-0.1), "gamma"),
    (td_learning, dict(v_tm1=R, r_t=R, discount_t=D, v_t=Q), "v_t"),
    (q_learning, dict(Q_ARGS, q_t=Q[:, :2]), "q_t"),
    (double_q_learning, dict(q_tm1=Q, a_tm1=A, r_t=R, discount_t=D, q_t_value=Q,
                             q_t_selector=Q[:3]), "q_t_selector"),
    (sarsa, dict(Q_ARGS, a_t=torch.tensor([0, 0, 0, 3])), "a_t"),
    (expected_sarsa, dict(Q_ARGS, probs_a_t=Q.double()[:, :1]), "probs_a_t"),
    (td_error_loss, dict(td_error=Q), "td_error"),
    (td_error_loss, dict(td_error=R, kind="l1"), "kind"),
    (td_error_loss, dict(td_error=R, kind="huber", huber_delta=0.0), "huber_delta"),
    (td_error_loss_per_row, dict(td_error=R), "td_error"),
    (q_learning_loss_per_sample, dict(Q_ARGS, q_t_selector=Q[:, :1]), "q_t_selector"),
]


@pytest.mark.parametrize(("fn", "kwargs", "name"), BAD_CALLS,
                         ids=[f"{fn.__name__}-{name}" for fn, _, name in BAD_CALLS])
def test_every_public_function_checks_its_inputs(fn, kwargs, name):
    with pytest.raises(ValueError) as info:
        fn(**kwargs)
    assert str(info.value).startswith(f"{fn.__name__}: `{name}`"), str(info.value)


def test_the_readme_tour_takes_an_envs_step_as_it_comes():
    """The README's tour: ``q_learning`` and ``td_error_loss`` on a batched env's step as the
    env returns it (float32 observations and rewards, bool terminated, ``final_obs`` past an
    auto-reset), on a step where some episodes end: the loss of the taken actions against
    reward + gamma max next Q with no bootstrap past a termination, d loss / d q only at the
    taken actions, and a gradient for every parameter of the network."""
    env = envs.make("CartPole-v1", num_envs=8, device="cpu", seed=0)
    torch.manual_seed(0)
    online, target = QNetwork(env.obs_dim, env.num_actions), QNetwork(env.obs_dim,
                                                                      env.num_actions)
    obs = env.reset()
    for _ in range(100):  # greedy actions push one way: episodes end within a few dozen steps
        q = online(obs)
        q.retain_grad()
        actions = q.argmax(dim=1)
        next_obs, reward, terminated, truncated, info = env.step(actions)
        if terminated.any():
            break
        obs = next_obs
    assert terminated.any() and not terminated.all()
    with torch.no_grad():
        next_q = target(info["final_obs"])
    discount = losses.fold_termination(0.99, terminated)
    loss = losses.td_error_loss(losses.q_learning(q, actions, reward, discount, next_q))
    loss.backward()
    # the reference in float64 from the same float32 inputs. The numbers are of size ~1
    # (rewards 1, untrained Q-values ~0.1, errors ~1): the float32 target, error, square and
    # mean each round once, a few u = 6e-8 apiece, so 1e-6 bounds the difference
    rows = torch.arange(8)
    target_value = reward.double() + 0.99 * (~terminated) * next_q.double().max(1).values
    errors = q.detach().double()[rows, actions] - target_value
    assert loss.dtype == torch.float32
    torch.testing.assert_close(loss.double(), (errors**2).mean(), rtol=0, atol=1e-6)
    taken = torch.zeros_like(q, dtype=torch.bool)
    taken[rows, actions] = True
    assert torch.all(q.grad[~taken] == 0) and torch.all(q.grad[taken] != 0)
    torch.testing.assert_close(q.grad[taken].double(), 2 * errors / 8, rtol=0, atol=1e-6)
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in online.parameters())
