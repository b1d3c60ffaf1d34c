"""K agents' (Double) Q-learning loss and its gradient as one compiled loop, for the CPU.

Between the forward and the backward pass, DQN (``semigrad.algos.dqn``) turns
``(K, B, A)`` Q-values into targets, losses and ``d loss / d q``: some 20 batched tensor
operations (argmax, gathers, the loss, its gradient, a scatter, the health statistics), each a
pass over memory with its own dispatch cost. ``q_loss_and_grad`` does it in one pass over the
K * B transitions, reading the tensors' memory (``Tensor.numpy()`` views). The tensor form
(``losses.q_learning_loss_and_grad_per_agent``) runs elsewhere; ``losses.per_agent_q_loss``
picks one, and the tests check that the two agree.
"""

from __future__ import annotations

import numba


@numba.njit(inline="always")
def _best(row):  # pragma: no cover (compiled)
    """``argmax`` as torch computes it: the first maximum, or the first NaN if there is one."""
    best, value = 0, row[0]
    for a in range(1, row.shape[0]):
        if value == value and (row[a] > value or row[a] != row[a]):
            best, value = a, row[a]
    return best


@numba.njit(cache=True, nogil=True, error_model="numpy")
def q_loss_and_grad(q, next_q_target, next_q_online, double, actions, rewards, terminated,
                    gamma, discounts, huber_delta, grad_q, losses, mean_q):  # pragma: no cover
    """Targets, per-agent losses, their gradient and mean Q for K agents' minibatches.

    In: ``q``, ``next_q_target``, ``next_q_online (K, B, A)`` (any strides; ``double``: Double
    DQN's online argmax, else the target network's max), ``actions (K B,)``, ``rewards (K B,)``,
    ``terminated (K B,)`` bool, ``discounts (K B,)`` (or empty: ``gamma`` for all),
    ``huber_delta`` (<= 0: MSE). Row ``k B + i`` is agent k's i-th transition:
    ``y = r + discount * (1 - terminated) * q_target(s', a*)``, ``e = q(s, a) - y``.
    Out: ``losses (K,)`` the mean of ``e^2`` (or Huber's), ``grad_q (K, B, A)``
    ``d losses[k] / d q[k]`` (``2 e / B`` or ``clamp(e, -delta, delta) / B`` at the taken
    action, 0 elsewhere), ``mean_q (K,)`` the mean of ``q[k]``. Returns -1, or the first row
    whose action is not in ``0 .. A - 1`` (then nothing was computed). Sums run in float64.
    """
    k, b, num_actions = q.shape
    for row in range(actions.shape[0]):
        if actions[row] < 0 or actions[row] >= num_actions:
            return row
    scale = (2.0 if huber_delta <= 0 else 1.0) * (1.0 / b)
    for agent in range(k):
        total, q_sum = 0.0, 0.0
        for i in range(b):
            row = agent * b + i
            if terminated[row]:
                bootstrap = 0.0
            elif double:
                bootstrap = next_q_target[agent, i, _best(next_q_online[agent, i])]
            else:
                bootstrap = next_q_target[agent, i, _best(next_q_target[agent, i])]
            discount = gamma if discounts.shape[0] == 0 else discounts[row]
            error = q[agent, i, actions[row]] - (rewards[row] + discount * bootstrap)
            if huber_delta <= 0:
                total += error * error
                grad = error
            elif abs(error) <= huber_delta:
                total += 0.5 * error * error
                grad = error
            else:
                total += huber_delta * (abs(error) - 0.5 * huber_delta)
                grad = huber_delta if error > 0 else -huber_delta
            for a in range(num_actions):
                q_sum += q[agent, i, a]
                grad_q[agent, i, a] = 0.0
            grad_q[agent, i, actions[row]] = grad * scale
        losses[agent] = total / b
        mean_q[agent] = q_sum / (b * num_actions)
    return -1
