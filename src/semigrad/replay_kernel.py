"""n-step replay sampling as one compiled loop over the minibatch, for buffers on the CPU.

``ReplayBuffer.n_step_at`` assembles n-step transitions with some 20 batched tensor operations
(gathers of ``(B, n)`` windows, a cumulative sum for the episode ends, powers of gamma): the
right form on a GPU. On a CPU their dispatch costs more than their arithmetic for one agent's
minibatch (about 110 us for B = 128, n = 5), and for many agents' the ``(B, n)`` passes cost
memory traffic. ``n_step_gather`` walks each sampled transition's successors directly, reading
the buffer's own memory (``Tensor.numpy()`` views): about 20 us for B = 128
(``benchmarks/many_seeds.py``). The tests check it against the tensor form and against a
per-sample walk.
"""

from __future__ import annotations

import numba


@numba.njit(cache=True, nogil=True, error_model="numpy")
def n_step_gather(start, stride, powers, obs, actions, rewards, next_obs, terminated, truncated,
                  out_obs, out_actions, out_returns, out_next_obs, out_terminated, out_truncated,
                  out_discounts):  # pragma: no cover (compiled; tested via ReplayBuffer)
    """The n-step transitions starting at ring slots ``start (B,)``; returns -1, or the index
    of the first slot outside ``[0, capacity)`` (then the outputs are incomplete).

    ``n = len(powers) - 1``, ``powers[k] = gamma^k`` in the rewards' dtype; the successor of
    slot j is ``(j + stride) % capacity``. Transition b runs over ``m <= n`` steps, stopping
    after the first terminated or truncated one: ``out_returns[b] = sum_{k<m} powers[k]
    r_k`` (added in order of k), ``out_discounts[b] = powers[m]``, and ``out_next_obs``,
    ``out_terminated``, ``out_truncated`` are step m's; ``out_obs``, ``out_actions`` are
    the start slot's (``ReplayBuffer.n_step_at``'s semantics).
    """
    capacity = rewards.shape[0]
    n = powers.shape[0] - 1
    for b in range(start.shape[0]):
        j = start[b]
        if j < 0 or j >= capacity:
            return b
        out_obs[b] = obs[j]
        out_actions[b] = actions[j]
        total = rewards[j] * powers[0]
        m = 1
        while m < n and not (terminated[j] or truncated[j]):
            j += stride
            if j >= capacity:
                j -= capacity
            total += rewards[j] * powers[m]
            m += 1
        out_returns[b] = total
        out_next_obs[b] = next_obs[j]
        out_terminated[b] = terminated[j]
        out_truncated[b] = truncated[j]
        out_discounts[b] = powers[m]
    return -1
