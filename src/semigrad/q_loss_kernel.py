"""K agents' (Double) Q-learning loss and its gradient as one compiled loop, for the CPU.

An accelerator of ``losses.per_agent_q_learning_loss_and_grad`` (itself ``losses.q_learning``
or ``double_q_learning`` and ``td_error_loss``, with the gradient in closed form). Between the
forward and the backward pass, DQN (``semigrad.algos.dqn``) turns ``(K, B, A)`` Q-values into
TD errors, losses and ``d loss / d q``: some 20 batched tensor operations (argmax, gathers,
the loss, its gradient, a scatter, the health statistics), each a pass over memory with its
own dispatch cost. ``q_loss_and_grad`` does it in one pass over the K * B transitions, reading
the tensors' memory (``Tensor.numpy()`` views). ``losses.per_agent_q_learning`` picks it on
the CPU, and tests/test_losses.py checks it against the tensor form and the reference.
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(inline="always")
def _best(row):  # pragma: no cover (compiled)
    """``argmax`` as torch computes it: the first maximum, or the first NaN if there is one."""
    best, value = 0, row[0]
    for a in range(1, row.shape[0]):
        if value == value and (row[a] > value or row[a] != row[a]):
            best, value = a, row[a]
    return best


@numba.njit(cache=True, nogil=True, error_model="numpy")
def q_loss_and_grad(q_tm1, q_t_value, q_t_selector, double, a_tm1, r_t, discount_t,
                    huber_delta, grad_q, losses, mean_q):  # pragma: no cover (compiled)
    """TD errors, per-agent losses, their gradient and mean Q for K agents' minibatches.

    In: ``q_tm1``, ``q_t_value``, ``q_t_selector (K, B, A)`` (any strides; ``double``: Double
    Q-learning, ``q_t_selector`` picks the action, else ``q_t_value``'s max), ``a_tm1 (K B,)``,
    ``r_t (K B,)``, ``discount_t (K B,)`` (any float dtype), ``huber_delta`` (<= 0: MSE). Row
    ``k B + i`` is agent k's i-th transition: ``delta = r_t + discount_t * q_t_value(a*) -
    q_tm1(a_tm1)`` (``losses.q_learning`` / ``double_q_learning``). Out: ``losses (K,)`` the
    mean of ``delta^2`` (or Huber's), ``grad_q (K, B, A)`` ``d losses[k] / d q_tm1[k]``
    (``-2 delta / B`` or ``-clamp(delta, -delta_H, delta_H) / B`` at the taken action, 0
    elsewhere), ``mean_q (K,)`` the mean of ``q_tm1[k]``. Returns -1, or the first row whose
    action is not in ``0 .. A - 1`` (then nothing was computed). Errors and sums run in
    float64.
    """
    k, b, num_actions = q_tm1.shape
    for row in range(a_tm1.shape[0]):
        if a_tm1[row] < 0 or a_tm1[row] >= num_actions:
            return row
    scale = (2.0 if huber_delta <= 0 else 1.0) * (1.0 / b)
    for agent in range(k):
        total, q_sum = 0.0, 0.0
        for i in range(b):
            row = agent * b + i
            if double:
                bootstrap = np.float64(q_t_value[agent, i, _best(q_t_selector[agent, i])])
            else:
                bootstrap = np.float64(q_t_value[agent, i, _best(q_t_value[agent, i])])
            # the value minus the target: -delta, in float64
            error = q_tm1[agent, i, a_tm1[row]] - (r_t[row] + discount_t[row] * bootstrap)
            if huber_delta <= 0:
                total += error * error
                grad = error
            elif abs(error) <= huber_delta:
                total += 0.5 * error * error
                grad = error
            else:
                total += huber_delta * (abs(error) - 0.5 * huber_delta)
                # +-delta beyond it; a NaN error stays NaN, as torch's clamp keeps it
                grad = huber_delta if error > 0 else -huber_delta if error < 0 else error
            for a in range(num_actions):
                q_sum += q_tm1[agent, i, a]
                grad_q[agent, i, a] = 0.0
            grad_q[agent, i, a_tm1[row]] = grad * scale
        losses[agent] = total / b
        mean_q[agent] = q_sum / (b * num_actions)
    return -1
