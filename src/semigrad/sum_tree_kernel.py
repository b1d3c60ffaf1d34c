"""Prioritized replay's sum trees as compiled loops, for replays on the CPU.

``buffers.PrioritizedSampler`` keeps K sum trees in one ``(K, 2P)`` float64 tensor (agent k's
root at ``[k, 1]``, node i's children at ``2i`` and ``2i + 1``, leaf j at ``P + j``). Its tensor
form walks the ``log2 P`` levels with a few batched operations each: the right form on a GPU, but
on a CPU some 16 levels of 4-5 dispatches cost more than the whole DQN step they serve. These
loops do the same additions in the same order (the tests compare the two), and do the powers
``p^alpha`` and ``(N P(j))^-beta`` element by element, so agent k's numbers do not depend on
how many agents share the call.
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _prefix(tree, k, i):  # pragma: no cover (compiled; tested via PrioritizedSampler)
    """Sum of agent k's leaves ``0 .. i-1``, added from the leaf level up (the tensor form's
    order); the root for ``i >= P``."""
    p = tree.shape[1] // 2
    if i >= p:
        return tree[k, 1]
    node = p + i
    acc = 0.0
    while node > 1:
        if node & 1:
            acc += tree[k, node - 1]
        node >>= 1
    return acc


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _cum(tree, k, i, capacity):  # pragma: no cover
    """The prefix sum over the ring unrolled twice: ``i`` in ``0 .. 2 capacity``."""
    if i <= capacity:
        return _prefix(tree, k, i)
    return _prefix(tree, k, capacity) + _prefix(tree, k, i - capacity)


@numba.njit(cache=True, nogil=True, error_model="numpy")
def sample(tree, start, valid, capacity, u, beta, out_slots,
           out_weights):  # pragma: no cover
    """Each agent's ``B`` slots drawn with probability proportional to their leaves among the
    ``valid`` slots ``start, start + 1, ... (mod capacity)``, from uniforms ``u (K, B)``, and
    their importance weights ``(valid P(j))^-beta`` over the batch's largest."""
    p = tree.shape[1] // 2
    agents, batch = u.shape
    for k in range(agents):
        low = _cum(tree, k, start, capacity)
        mass = _cum(tree, k, start + valid, capacity) - low
        whole = _prefix(tree, k, capacity)
        top = 0.0
        weights = np.empty(batch)
        for b in range(batch):
            if not mass > 0.0:  # no priority anywhere: uniform
                out_slots[k, b] = (start + min(int(u[k, b] * valid), valid - 1)) % capacity
                continue
            t = low + u[k, b] * mass
            if t >= whole:
                t -= whole
            node = 1
            while node < p:
                left = tree[k, 2 * node]
                if t >= left and tree[k, 2 * node + 1] > 0.0:
                    t -= left
                    node = 2 * node + 1
                else:
                    node = 2 * node
            j = min(node - p, capacity - 1)
            d = (j - start) % capacity
            if d >= valid:  # rounding at an end of the range: the nearer end
                d = valid - 1 if d - valid < capacity - d else 0
            j = (start + d) % capacity
            out_slots[k, b] = j
            weights[b] = (valid * tree[k, p + j] / mass) ** -beta
            top = max(top, weights[b])
        for b in range(batch):
            out_weights[k, b] = weights[b] / top if mass > 0.0 else 1.0


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _refresh(tree, k, node):  # pragma: no cover
    """Recompute ``node`` and its ancestors from their children."""
    while node >= 1:
        tree[k, node] = tree[k, 2 * node] + tree[k, 2 * node + 1]
        node >>= 1


@numba.njit(cache=True, nogil=True, error_model="numpy")
def update(tree, max_leaf, slots, td_abs, eps, alpha):  # pragma: no cover
    """Leaves ``slots (K, B)`` set to ``(td_abs + eps)^alpha`` (a slot drawn twice keeps the
    larger), ``max_leaf (K,)`` raised to the largest, the ancestors recomputed."""
    p = tree.shape[1] // 2
    agents, batch = slots.shape
    for k in range(agents):
        for b in range(batch):
            tree[k, p + slots[k, b]] = -1.0
        for b in range(batch):
            leaf = (td_abs[k, b] + eps) ** alpha
            node = p + slots[k, b]
            if leaf > tree[k, node] or tree[k, node] == -1.0:
                tree[k, node] = leaf
            if leaf > max_leaf[k]:
                max_leaf[k] = leaf
        for b in range(batch):
            _refresh(tree, k, (p + slots[k, b]) >> 1)


@numba.njit(cache=True, nogil=True, error_model="numpy")
def fill(tree, max_leaf, first, count):  # pragma: no cover
    """Leaves ``first .. first + count - 1`` of every agent set to its ``max_leaf``."""
    p = tree.shape[1] // 2
    for k in range(tree.shape[0]):
        for j in range(first, first + count):
            tree[k, p + j] = max_leaf[k]
        lo, hi = (p + first) >> 1, (p + first + count - 1) >> 1
        while lo >= 1:
            for node in range(lo, hi + 1):
                tree[k, node] = tree[k, 2 * node] + tree[k, 2 * node + 1]
            lo, hi = lo >> 1, hi >> 1
