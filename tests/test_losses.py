"""losses.py: batched vs per-sample reference, where the gradient goes, the seed's examples."""

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from semigrad import envs, losses
from semigrad.losses import (
    expected_sarsa_targets,
    q_learning_loss,
    q_learning_loss_per_sample,
    q_learning_targets,
    sarsa_targets,
    taken_action_values,
    td_targets,
    value_loss,
)
from semigrad.nets import QNetwork

SEED_Q = torch.tensor(
    [[4.0, 2.5, 2.9], [1.2, 1.5, 1.9], [5.0, 5.5, 5.9], [4.8, 2.5, 2.9], [4.0, 2.8, 3.9]]
)
SEED_ACTIONS = torch.tensor([2, 1, 1, 0, 1])


def test_seed_gather_example():
    got = taken_action_values(SEED_Q, SEED_ACTIONS)
    assert torch.equal(got, torch.tensor([2.9, 1.5, 5.5, 4.8, 2.8]))


def test_seed_scalar_gradient_example():
    predictions = torch.tensor([0.235, 1.200, 1.321], dtype=torch.float64, requires_grad=True)
    q = predictions.unsqueeze(0)  # one sample, three actions
    loss = value_loss(taken_action_values(q, torch.tensor([1])), torch.tensor([0.890],
                      dtype=torch.float64))
    loss.backward()
    assert torch.allclose(predictions.grad, torch.tensor([0.0, 0.62, 0.0], dtype=torch.float64))


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
    gen = torch.Generator().manual_seed(seed)
    data = _batch(gen, batch, num_actions, terminal_p=terminal_p)
    if gamma == "tensor":
        gamma = torch.rand(batch, generator=gen, dtype=torch.float64)
    torch.manual_seed(seed)
    online = QNetwork(4, num_actions, hidden=(8,)).double()
    target = QNetwork(4, num_actions, hidden=(8,)).double()
    values = []
    grads = []
    for fn in (q_learning_loss, q_learning_loss_per_sample):
        online.zero_grad()
        with torch.no_grad():
            next_q_target = target(data["next_states"])
            next_q_online = online(data["next_states"]) if double else None
        loss = fn(online(data["states"]), data["actions"], data["rewards"], next_q_target,
                  data["terminated"], gamma, next_q_online=next_q_online, kind=kind)
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
    loss = q_learning_loss(q, data["actions"], data["rewards"], next_q, data["terminated"], gamma)
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
    loss = q_learning_loss(q, actions, rewards, torch.zeros(2, 2, dtype=torch.float64),
                           torch.tensor([True, True]), 0.99, kind="huber")
    loss.backward()
    # errors: 10 - 0 = 10 (clipped to 1), 1 - 1.5 = -0.5 (kept); both divided by B=2
    assert torch.allclose(q.grad, torch.tensor([[0.0, 0.5], [-0.25, 0.0]], dtype=torch.float64))


def test_target_network_gets_no_gradient():
    torch.manual_seed(0)
    online, target = QNetwork(4, 3), QNetwork(4, 3)
    data = _batch(torch.Generator().manual_seed(1), 16, 3, dtype=torch.float32)
    for double in (False, True):
        next_q_online = online(data["next_states"]) if double else None  # with grad on purpose
        loss = q_learning_loss(online(data["states"]), data["actions"], data["rewards"],
                               target(data["next_states"]), data["terminated"], 0.99,
                               next_q_online=next_q_online)
        loss.backward()
        assert all(p.grad is None for p in target.parameters())
        online.zero_grad()
    targets = q_learning_targets(data["rewards"], target(data["next_states"]),
                                 data["terminated"], 0.99)
    assert not targets.requires_grad


def test_terminal_next_state_contributes_no_bootstrap():
    rewards = torch.tensor([1.0, 1.0, 1.0])
    next_q = torch.tensor([[5.0, 7.0], [float("nan"), 1.0], [2.0, 3.0]])
    terminated = torch.tensor([False, True, True])
    got = q_learning_targets(rewards, next_q, terminated, 0.5)
    assert torch.equal(got, torch.tensor([1.0 + 0.5 * 7.0, 1.0, 1.0]))


def test_double_dqn_targets_use_online_argmax_and_target_values():
    next_q_target = torch.tensor([[1.0, 9.0, 3.0], [4.0, 0.0, 2.0]])
    next_q_online = torch.tensor([[0.0, 0.0, 5.0], [0.0, 8.0, 1.0]])
    got = q_learning_targets(torch.zeros(2), next_q_target, torch.tensor([False, False]), 1.0,
                             next_q_online=next_q_online)
    assert torch.equal(got, torch.tensor([3.0, 0.0]))
    plain = q_learning_targets(torch.zeros(2), next_q_target, torch.tensor([False, False]), 1.0)
    assert torch.equal(plain, torch.tensor([9.0, 4.0]))


def test_sarsa_and_expected_sarsa_targets():
    next_q = torch.tensor([[1.0, 3.0], [2.0, 6.0]])
    rewards = torch.tensor([1.0, -1.0])
    terminated = torch.tensor([False, False])
    got = sarsa_targets(rewards, next_q, torch.tensor([0, 1]), terminated, 0.5)
    assert torch.equal(got, torch.tensor([1.5, 2.0]))
    probs = torch.tensor([[0.25, 0.75], [0.5, 0.5]])
    got = expected_sarsa_targets(rewards, next_q, probs, terminated, 0.5)
    assert torch.allclose(got, torch.tensor([1.0 + 0.5 * 2.5, -1.0 + 0.5 * 4.0]))


def test_per_sample_gamma_tensor():
    got = td_targets(torch.ones(3), torch.full((3,), 2.0), torch.zeros(3, dtype=torch.bool),
                     torch.tensor([0.0, 0.5, 1.0]))
    assert torch.equal(got, torch.tensor([1.0, 2.0, 3.0]))


def test_batched_loss_matches_inline_formula():
    data = _batch(torch.Generator().manual_seed(3), 32, 4, dtype=torch.float32)
    q = torch.randn(32, 4)
    next_q = torch.randn(32, 4)
    inline = F.mse_loss(
        q.gather(1, data["actions"][:, None]).squeeze(1),
        data["rewards"] + 0.99 * (1 - data["terminated"].float()) * next_q.max(1).values,
    )
    got = q_learning_loss(q, data["actions"], data["rewards"], next_q, data["terminated"], 0.99)
    assert torch.allclose(got, inline)


# ----------------------------------------------------------------------------- bad input

Q = torch.zeros(4, 3)
A = torch.tensor([0, 1, 2, 0])
R = torch.zeros(4)
T = torch.zeros(4, dtype=torch.bool)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(actions=A.float()), "`actions` must be an int64 tensor of shape (B,)=(4,)"),
        (dict(actions=torch.tensor([0, 1, 3, 0])), "`actions` must lie in [0, A-1]=[0, 2]"),
        (dict(actions=torch.tensor([0, -1, 2, 0])), "`actions` must lie in [0, A-1]=[0, 2]"),
        (dict(actions=A[:3]), "`actions` must be an int64 tensor of shape (B,)=(4,)"),
        (dict(q=torch.zeros(4)), "`q` must be a float tensor of shape (B, A)"),
        (dict(rewards=torch.zeros(5)), "`rewards` must have batch size B=4"),
        (dict(rewards=torch.zeros(4, 1)), "`rewards` must be a float tensor of shape (B,)"),
        (dict(next_q_target=torch.zeros(4, 2)), "`next_q_target` must have the shape of `q`"),
        (dict(terminated=T[:2]), "`terminated` must be a bool tensor of shape (B,)=(4,)"),
        (dict(gamma=1.5), "`gamma` must be a float in [0, 1]"),
        (dict(gamma=torch.zeros(3)), "`gamma` as a tensor must be float of shape (B,)=(4,)"),
        (dict(kind="l1"), "`kind` must be one of"),
        (dict(next_q_online=torch.zeros(4, 2)), "`next_q_online` must have the shape of `q`"),
    ],
)
@pytest.mark.parametrize("fn", [q_learning_loss, q_learning_loss_per_sample])
def test_bad_input_raises_one_clear_error(fn, kwargs, message):
    args = dict(q=Q, actions=A, rewards=R, next_q_target=Q, terminated=T, gamma=0.9)
    kwargs = dict(kwargs)
    extra = {k: kwargs.pop(k) for k in ("kind", "next_q_online") if k in kwargs}
    args.update(kwargs)
    with pytest.raises(ValueError) as info:
        fn(**args, **extra)
    assert message in str(info.value)
    assert fn.__name__ in str(info.value)


def test_taken_action_values_rejects_non_tensor():
    with pytest.raises(ValueError, match="`q` must be a torch.Tensor"):
        taken_action_values([[1.0, 2.0]], torch.tensor([0]))


def test_value_loss_rejects_bad_delta():
    with pytest.raises(ValueError, match="huber_delta"):
        value_loss(torch.zeros(2), torch.zeros(2), "huber", huber_delta=0.0)


def test_the_readme_tour_takes_an_envs_step_as_it_comes():
    """The README's tour: ``q_learning_loss`` on a batched env's step as the env returns it
    (float32 observations and rewards, bool terminated, ``final_obs`` past an auto-reset),
    on a step where some episodes end: the loss of the taken actions against reward + gamma
    max next Q with no bootstrap past a termination, d loss / d q only at the taken actions,
    and a gradient for every parameter of the network."""
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
    loss = losses.q_learning_loss(q, actions, reward, next_q, terminated, gamma=0.99)
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
