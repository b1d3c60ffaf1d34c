"""Value-learning losses as small pure functions on tensors.

Notation follows Sutton & Barto (2nd ed.): ``B`` is the batch size, ``A`` the number of actions,
``q (B, A)`` action values of the states ``S``, ``actions (B,)`` int64 the actions ``A`` taken,
``rewards (B,)`` the rewards ``R``, ``terminated (B,)`` bool (no bootstrap past a terminal
state; a time-limit truncation is *not* terminal and does bootstrap), ``gamma`` a float in
[0, 1] or a ``(B,)`` tensor of per-sample discounts.

Two rules hold everywhere:

* targets are computed without gradient (semi-gradient methods; the target network, or the
  bootstrap through the online network, receives no gradient);
* only the taken action's output is trained: ``q`` enters the loss through
  ``taken_action_values`` (a ``gather``), so d loss / d q is zero at every other action.

Every public function checks its inputs and raises one ``ValueError`` naming the argument and
the expected shape.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

from semigrad.compiled import load_kernel

LossKind = Literal["mse", "huber"]
LOSS_KINDS: tuple[str, ...] = ("mse", "huber")


# ----------------------------------------------------------------------------- input checks


def _describe(x: torch.Tensor) -> str:
    return f"{str(x.dtype).removeprefix('torch.')} tensor of shape {tuple(x.shape)}"


def _check_tensor(fn: str, name: str, x: object) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{fn}: `{name}` must be a torch.Tensor, got {type(x).__name__}")
    return x


def _check_values(fn: str, name: str, x: object, rank: int, batch: int | None = None) -> int:
    """Check a floating tensor of the given rank (and batch size); return its batch size."""
    x = _check_tensor(fn, name, x)
    shape = "(B,)" if rank == 1 else "(B, A)"
    if x.dim() != rank or not x.is_floating_point():
        raise ValueError(
            f"{fn}: `{name}` must be a float tensor of shape {shape}, got {_describe(x)}"
        )
    if batch is not None and x.shape[0] != batch:
        raise ValueError(
            f"{fn}: `{name}` must have batch size B={batch} (shape {shape}), got {_describe(x)}"
        )
    return x.shape[0]


def _check_actions(fn: str, name: str, actions: object, batch: int, num_actions: int) -> None:
    actions = _check_tensor(fn, name, actions)
    if actions.dtype != torch.int64 or actions.shape != (batch,):
        raise ValueError(
            f"{fn}: `{name}` must be an int64 tensor of shape (B,)=({batch},), got "
            f"{_describe(actions)}"
        )
    if batch:
        low, high = torch.aminmax(actions)
        if low.item() < 0 or high.item() >= num_actions:
            raise ValueError(
                f"{fn}: `{name}` must lie in [0, A-1]=[0, {num_actions - 1}], got values in "
                f"[{low.item()}, {high.item()}]"
            )


def _check_terminated(fn: str, terminated: object, batch: int) -> torch.Tensor:
    terminated = _check_tensor(fn, "terminated", terminated)
    if terminated.shape != (batch,) or terminated.is_complex():
        raise ValueError(
            f"{fn}: `terminated` must be a bool tensor of shape (B,)=({batch},), got "
            f"{_describe(terminated)}"
        )
    return terminated if terminated.dtype == torch.bool else terminated != 0


def _check_gamma(fn: str, gamma: object, batch: int) -> None:
    if isinstance(gamma, torch.Tensor):
        if gamma.shape != (batch,) or not gamma.is_floating_point():
            raise ValueError(
                f"{fn}: `gamma` as a tensor must be float of shape (B,)=({batch},), got "
                f"{_describe(gamma)}"
            )
        return
    if isinstance(gamma, bool) or not isinstance(gamma, (int, float)) or not 0 <= gamma <= 1:
        raise ValueError(f"{fn}: `gamma` must be a float in [0, 1] or a (B,) tensor, got {gamma!r}")


def _check_kind(fn: str, kind: str) -> None:
    if kind not in LOSS_KINDS:
        raise ValueError(f"{fn}: `kind` must be one of {LOSS_KINDS}, got {kind!r}")


def _check_same_shape(fn: str, name: str, x: torch.Tensor, other: str, ref: torch.Tensor) -> None:
    if x.shape != ref.shape:
        raise ValueError(
            f"{fn}: `{name}` must have the shape of `{other}` {tuple(ref.shape)}, "
            f"got {_describe(x)}"
        )


# ----------------------------------------------------------------------------- building blocks


def taken_action_values(q: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    """``q[i, actions[i]]`` for every i, via ``gather``: ``q (B, A)``, ``actions (B,)`` -> ``(B,)``.

    The gradient flows back only to the gathered entries: d out_i / d q[j, a] = 1 if
    ``j == i and a == actions[i]`` else 0.
    """
    fn = "taken_action_values"
    batch = _check_values(fn, "q", q, rank=2)
    _check_actions(fn, "actions", actions, batch, q.shape[1])
    return q.gather(1, actions.unsqueeze(1)).squeeze(1)


def td_targets(
    rewards: torch.Tensor,
    next_values: torch.Tensor,
    terminated: torch.Tensor,
    gamma: float | torch.Tensor,
) -> torch.Tensor:
    """One-step TD targets ``R + gamma * (1 - terminated) * v(S')`` without gradient.

    ``rewards (B,)``, ``next_values (B,)`` the bootstrap values v(S'), ``terminated (B,)`` ->
    ``(B,)``. A terminal transition's target is ``R`` exactly, whatever ``next_values`` holds
    (even NaN). Sutton & Barto eq. 9.7 (semi-gradient TD(0)).
    """
    fn = "td_targets"
    batch = _check_values(fn, "rewards", rewards, rank=1)
    _check_values(fn, "next_values", next_values, rank=1, batch=batch)
    done = _check_terminated(fn, terminated, batch)
    _check_gamma(fn, gamma, batch)
    with torch.no_grad():
        return bootstrap(rewards, next_values, done, gamma)


def bootstrap(
    rewards: torch.Tensor,
    next_values: torch.Tensor,
    done: torch.Tensor,
    gamma: float | torch.Tensor,
) -> torch.Tensor:
    """``td_targets``' formula without its input checks and without disabling gradients: for
    hot loops that run under ``no_grad`` / inference mode on inputs they know are right.
    ``done (B,)`` bool: no bootstrap there, even from a NaN."""
    next_values = torch.where(done, 0.0, next_values)
    if rewards.dtype != next_values.dtype:
        rewards = rewards.to(next_values.dtype)
    if isinstance(gamma, torch.Tensor):
        return rewards + gamma * next_values
    return torch.add(rewards, next_values, alpha=gamma)  # one kernel


def q_learning_targets(
    rewards: torch.Tensor,
    next_q_target: torch.Tensor,
    terminated: torch.Tensor,
    gamma: float | torch.Tensor,
    next_q_online: torch.Tensor | None = None,
) -> torch.Tensor:
    """Bellman optimality targets without gradient; ``(B,)``.

    DQN (Mnih et al., 2015): ``R + gamma * (1 - terminated) * max_a' q_target(S', a')``.
    Double DQN (van Hasselt et al., 2016), when ``next_q_online (B, A)`` is given: the online
    network picks ``a* = argmax_a' q_online(S', a')`` and the target network evaluates it,
    ``R + gamma * (1 - terminated) * q_target(S', a*)``.
    ``next_q_target (B, A)`` holds the target network's values at the next states.
    """
    fn = "q_learning_targets"
    batch = _check_values(fn, "rewards", rewards, rank=1)
    _check_values(fn, "next_q_target", next_q_target, rank=2, batch=batch)
    if next_q_online is not None:
        _check_values(fn, "next_q_online", next_q_online, rank=2, batch=batch)
        _check_same_shape(fn, "next_q_online", next_q_online, "next_q_target", next_q_target)
    done = _check_terminated(fn, terminated, batch)
    _check_gamma(fn, gamma, batch)
    return _q_learning_targets(rewards, next_q_target, done, gamma, next_q_online)


@torch.no_grad()
def _q_learning_targets(rewards, next_q_target, done, gamma, next_q_online):
    if next_q_online is None:
        next_values = next_q_target.max(dim=1).values
    else:
        best = next_q_online.argmax(dim=1, keepdim=True)
        next_values = next_q_target.gather(1, best).squeeze(1)
    return bootstrap(rewards, next_values, done, gamma)


def sarsa_targets(
    rewards: torch.Tensor,
    next_q: torch.Tensor,
    next_actions: torch.Tensor,
    terminated: torch.Tensor,
    gamma: float | torch.Tensor,
) -> torch.Tensor:
    """SARSA targets ``R + gamma * (1 - terminated) * q(S', A')`` without gradient; ``(B,)``.

    ``next_q (B, A)`` at the next states, ``next_actions (B,)`` int64 the actions A' the policy
    takes there. Sutton & Barto eq. 10.1 (episodic semi-gradient SARSA).
    """
    fn = "sarsa_targets"
    batch = _check_values(fn, "rewards", rewards, rank=1)
    _check_values(fn, "next_q", next_q, rank=2, batch=batch)
    _check_actions(fn, "next_actions", next_actions, batch, next_q.shape[1])
    done = _check_terminated(fn, terminated, batch)
    _check_gamma(fn, gamma, batch)
    with torch.no_grad():
        next_values = next_q.gather(1, next_actions.unsqueeze(1)).squeeze(1)
        return bootstrap(rewards, next_values, done, gamma)


def expected_sarsa_targets(
    rewards: torch.Tensor,
    next_q: torch.Tensor,
    next_probs: torch.Tensor,
    terminated: torch.Tensor,
    gamma: float | torch.Tensor,
) -> torch.Tensor:
    """Expected SARSA targets ``R + gamma * (1 - terminated) * sum_a pi(a|S') q(S', a)``; ``(B,)``.

    ``next_q (B, A)`` and ``next_probs (B, A)`` (the policy's action probabilities at S', rows
    summing to 1). Sutton & Barto eq. 6.9, with function approximation as in section 10.1.
    """
    fn = "expected_sarsa_targets"
    batch = _check_values(fn, "rewards", rewards, rank=1)
    _check_values(fn, "next_q", next_q, rank=2, batch=batch)
    _check_values(fn, "next_probs", next_probs, rank=2, batch=batch)
    _check_same_shape(fn, "next_probs", next_probs, "next_q", next_q)
    done = _check_terminated(fn, terminated, batch)
    _check_gamma(fn, gamma, batch)
    with torch.no_grad():
        next_values = (next_probs * next_q).sum(dim=1)
        return bootstrap(rewards, next_values, done, gamma)


def value_loss(
    predictions: torch.Tensor,
    targets: torch.Tensor,
    kind: LossKind = "mse",
    huber_delta: float = 1.0,
) -> torch.Tensor:
    """Mean regression loss of ``predictions (B,)`` toward ``targets (B,)``; a scalar.

    ``mse``: ``mean_i (pred_i - target_i)^2``, so d loss / d pred_i = 2 (pred_i - target_i) / B.
    ``huber``: quadratic within ``huber_delta`` of the target, linear beyond (Huber, 1964);
    its gradient is the TD error clipped to [-delta, delta], divided by B.
    ``targets`` is detached here, whatever the caller did.
    """
    fn = "value_loss"
    batch = _check_values(fn, "predictions", predictions, rank=1)
    _check_values(fn, "targets", targets, rank=1, batch=batch)
    _check_kind(fn, kind)
    if huber_delta <= 0:
        raise ValueError(f"{fn}: `huber_delta` must be > 0, got {huber_delta!r}")
    return _value_loss(predictions, targets.detach(), kind, huber_delta)


def value_loss_per_row(
    predictions: torch.Tensor,
    targets: torch.Tensor,
    kind: LossKind = "mse",
    huber_delta: float = 1.0,
) -> torch.Tensor:
    """``value_loss`` of each row: ``predictions (K, B)``, ``targets (K, B)`` -> ``(K,)``.

    Row k is ``value_loss(predictions[k], targets[k], kind)``: K independent learners (e.g.
    seeds trained together) each get the mean over their own B samples, so summing the K
    losses gives every learner exactly its own gradient.
    """
    fn = "value_loss_per_row"
    for name, x in (("predictions", predictions), ("targets", targets)):
        if not isinstance(x, torch.Tensor) or x.dim() != 2 or not x.is_floating_point():
            raise ValueError(f"{fn}: `{name}` must be a float tensor of shape (K, B)")
    _check_same_shape(fn, "targets", targets, "predictions", predictions)
    _check_kind(fn, kind)
    return _value_loss(predictions, targets.detach(), kind, huber_delta, "none").mean(dim=1)


def value_loss_and_grad_per_row(
    predictions: torch.Tensor,
    targets: torch.Tensor,
    kind: LossKind = "mse",
    huber_delta: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``value_loss_per_row`` ``(K,)`` and its gradient ``d sum_k loss_k / d predictions (K, B)``
    in closed form, without autograd (for hand-written backward passes).

    With ``e = predictions - targets``: ``mse``: ``2 e / B``; ``huber``:
    ``clamp(e, -delta, delta) / B`` (``value_loss``'s docstring), scaled by ``1 / B`` as
    autograd does, so both agree bit for bit. Inputs are not checked.
    """
    b = predictions.shape[1]
    errors = predictions - targets
    if kind == "mse":
        grad = errors.mul_(2.0 / b)
    else:
        grad = errors.clamp_(-huber_delta, huber_delta).mul_(1.0 / b)
    return _value_loss(predictions, targets, kind, huber_delta, "none").mean(dim=1), grad


def _value_loss(predictions, targets, kind, huber_delta, reduction="mean"):
    if kind == "mse":
        return F.mse_loss(predictions, targets, reduction=reduction)
    return F.huber_loss(predictions, targets, delta=huber_delta, reduction=reduction)


# ----------------------------------------------------------------------------- Q-learning loss


def _check_q_learning(
    fn, q, actions, rewards, next_q_target, terminated, gamma, next_q_online, kind
):
    batch = _check_values(fn, "q", q, rank=2)
    _check_actions(fn, "actions", actions, batch, q.shape[1])
    _check_values(fn, "rewards", rewards, rank=1, batch=batch)
    _check_values(fn, "next_q_target", next_q_target, rank=2, batch=batch)
    _check_same_shape(fn, "next_q_target", next_q_target, "q", q)
    if next_q_online is not None:
        _check_values(fn, "next_q_online", next_q_online, rank=2, batch=batch)
        _check_same_shape(fn, "next_q_online", next_q_online, "q", q)
    done = _check_terminated(fn, terminated, batch)
    _check_gamma(fn, gamma, batch)
    _check_kind(fn, kind)
    return done


def q_learning_loss(
    q: torch.Tensor,
    actions: torch.Tensor,
    rewards: torch.Tensor,
    next_q_target: torch.Tensor,
    terminated: torch.Tensor,
    gamma: float | torch.Tensor,
    *,
    next_q_online: torch.Tensor | None = None,
    kind: LossKind = "mse",
    huber_delta: float = 1.0,
) -> torch.Tensor:
    """The batched (Double) DQN loss; a scalar.

    ``mean_i L(q[i, actions[i]] - y_i)`` with ``y = q_learning_targets(...)`` (no gradient) and
    ``L`` the squared error (``kind="mse"``) or the Huber loss. Shapes: ``q (B, A)`` from the
    online network at S, ``actions (B,)`` int64, ``rewards (B,)``, ``next_q_target (B, A)``,
    ``terminated (B,)`` bool, ``gamma`` float or ``(B,)``, ``next_q_online (B, A)`` or None.
    """
    fn = "q_learning_loss"
    done = _check_q_learning(
        fn, q, actions, rewards, next_q_target, terminated, gamma, next_q_online, kind
    )
    predictions = q.gather(1, actions.unsqueeze(1)).squeeze(1)
    targets = _q_learning_targets(rewards, next_q_target, done, gamma, next_q_online)
    return _value_loss(predictions, targets, kind, huber_delta)


def q_learning_loss_per_sample(
    q: torch.Tensor,
    actions: torch.Tensor,
    rewards: torch.Tensor,
    next_q_target: torch.Tensor,
    terminated: torch.Tensor,
    gamma: float | torch.Tensor,
    *,
    next_q_online: torch.Tensor | None = None,
    kind: LossKind = "mse",
    huber_delta: float = 1.0,
) -> torch.Tensor:
    """Reference implementation of ``q_learning_loss``: one scalar loss per sample, summed / B.

    Written as the loop of seed 000 (index the taken action, build the scalar target under
    ``no_grad``, compare two scalars), with its mistakes fixed. Slow on purpose; tests check
    that the batched loss equals it in value and gradient.
    """
    fn = "q_learning_loss_per_sample"
    done = _check_q_learning(
        fn, q, actions, rewards, next_q_target, terminated, gamma, next_q_online, kind
    )
    batch = q.shape[0]
    total = q.new_zeros(())
    for i in range(batch):
        prediction = q[i, actions[i]]
        with torch.no_grad():
            if next_q_online is None:
                bootstrap = next_q_target[i].max()
            else:
                bootstrap = next_q_target[i, next_q_online[i].argmax()]
            discount = gamma[i] if isinstance(gamma, torch.Tensor) else gamma
            target = rewards[i] if done[i] else rewards[i] + discount * bootstrap
        total = total + _value_loss(prediction, target.to(prediction.dtype), kind, huber_delta)
    return total / max(batch, 1)


# ----------------------------------------------------------------------------- K learners at once


def q_learning_loss_and_grad_per_agent(
    q: torch.Tensor,
    actions: torch.Tensor,
    rewards: torch.Tensor,
    next_q_target: torch.Tensor,
    terminated: torch.Tensor,
    gamma: float | torch.Tensor,
    next_q_online: torch.Tensor | None = None,
    kind: LossKind = "mse",
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """K learners' (Double) Q-learning losses and their gradient, without autograd.

    ``q``, ``next_q_target``, ``next_q_online (K, B, A)``; ``actions``, ``rewards``,
    ``terminated`` and a tensor ``gamma`` are flattened ``(K * B,)`` (learner k's at rows
    ``k B .. k B + B - 1``). Returns ``losses (K,)`` (learner k's ``q_learning_loss`` over its
    own B samples), ``mean_q (K,)`` and ``grad_q (K, B, A)`` = ``d sum_k losses_k / d q`` in
    closed form (``value_loss_and_grad_per_row``): every learner gets exactly its own gradient,
    at its taken actions only. Hot-path form: inputs are not checked (``q_learning_loss`` is the
    checked one), so actions must lie in ``0 .. A - 1``.
    """
    k, b = q.shape[:2]
    targets = _q_learning_targets(
        rewards, next_q_target.flatten(0, 1), terminated, gamma,
        None if next_q_online is None else next_q_online.flatten(0, 1))
    taken = actions.view(k, b, 1)
    predictions = q.gather(2, taken).squeeze(2)  # (K, B)
    losses, grad = value_loss_and_grad_per_row(predictions, targets.view(k, b), kind)
    grad_q = torch.zeros_like(q).scatter_(2, taken, grad.unsqueeze(2))
    return losses, q.mean(dim=(1, 2)), grad_q


_NO_DISCOUNTS = np.empty(0, np.float32)  # the kernel's "one gamma for all rows"


def _q_loss_kernel():
    """The compiled form of ``q_learning_loss_and_grad_per_agent`` (needs numba)."""
    import semigrad.q_loss_kernel as q_loss_kernel

    return q_loss_kernel.q_loss_and_grad


def _q_loss_loop(kernel, q, actions, rewards, next_q_target, terminated, gamma,
                 next_q_online=None, kind="mse"):
    """``q_learning_loss_and_grad_per_agent`` by ``q_loss_kernel.q_loss_and_grad``, on the
    tensors' memory (CPU)."""
    k = q.shape[0]
    grad_q = torch.empty_like(q)  # q's strides
    losses, mean_q = torch.empty(k, dtype=q.dtype), torch.empty(k, dtype=q.dtype)
    if isinstance(gamma, torch.Tensor):
        gamma, discounts = 0.0, gamma.numpy()
    else:
        discounts = _NO_DISCOUNTS
    bad = kernel(
        q.numpy(), next_q_target.numpy(),
        (next_q_target if next_q_online is None else next_q_online).numpy(),
        next_q_online is not None, actions.numpy(), rewards.numpy(), terminated.numpy(),
        gamma, discounts, 1.0 if kind == "huber" else 0.0, grad_q.numpy(), losses.numpy(),
        mean_q.numpy())
    if bad >= 0:
        raise ValueError(f"q_learning_loss_and_grad_per_agent: action "
                         f"{actions[bad].item()} at row {bad} is not in 0..{q.shape[2] - 1}")
    return losses, mean_q, grad_q


def per_agent_q_loss(device: torch.device,
                     compiled: bool | None = None) -> Callable[..., tuple[torch.Tensor, ...]]:
    """``q_learning_loss_and_grad_per_agent`` in its fastest form for ``device``: on the CPU one
    compiled loop (``semigrad.q_loss_kernel``, the same numbers to float32 rounding), else the
    tensor form. ``compiled`` as in ``semigrad.compiled.load_kernel``."""
    kernel = load_kernel(_q_loss_kernel, compiled, "the compiled per-agent Q-learning loss",
                         device.type == "cpu", f"on the CPU, got {device}", stacklevel=4)
    if kernel is None:
        return q_learning_loss_and_grad_per_agent
    return lambda *args, **kw: _q_loss_loop(kernel, *args, **kw)
