"""Experience replay as preallocated tensors on the training device.

Transitions ``(s, a, r, s', terminated, truncated)`` from N parallel environments are written
N at a time into a ring of ``capacity`` slots (no Python lists, no per-sample copies), so the
transition that followed slot j in the same environment is slot ``j + N`` (mod capacity, which
is a multiple of N): n-step returns are assembled at sampling time from those strides. ``s'`` is
the true next observation of each transition (for a truncated episode, the observation it was
cut at, which the target bootstraps from; see ``semigrad.envs.base``). Terminated and truncated
are stored apart: only ``terminated`` stops the bootstrap.

``AgentReplay`` holds K agents' buffers in one ring (seeds as a batch dimension; one agent is
K = 1), each agent sampling from its own transitions only: uniformly, or (``prioritized=``)
in proportion to priorities kept in K sum trees (``PrioritizedSampler``).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
import torch

from semigrad.compiled import load_kernel


@dataclass(frozen=True)
class Batch:
    """A sampled minibatch: ``obs (B, D)``, ``actions (B,)`` int64, ``rewards (B,)``,
    ``next_obs (B, D)``, ``terminated (B,)`` bool, ``truncated (B,)`` bool; n-step samples
    add ``discounts (B,)``."""

    obs: torch.Tensor
    actions: torch.Tensor
    rewards: torch.Tensor
    next_obs: torch.Tensor
    terminated: torch.Tensor
    truncated: torch.Tensor
    discounts: torch.Tensor | None = None


@dataclass(frozen=True)
class PrioritizedBatch(Batch):
    """A ``Batch`` drawn by priority, with the agent slots drawn, ``indices (B,)`` int64 (for
    ``AgentReplay.update_priorities``), and the importance weights ``weights (B,)`` float32."""

    indices: torch.Tensor | None = None
    weights: torch.Tensor | None = None


_FIELDS = ("obs", "actions", "rewards", "next_obs", "terminated", "truncated")


def _n_step_kernel():
    """The compiled form of ``ReplayBuffer.n_step_at`` (needs numba)."""
    import semigrad.replay_kernel as replay_kernel

    return replay_kernel.n_step_gather


def gather_rows(t: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``t[index]`` for an integer ``index`` of any shape, via ``index_select`` (on CPU several
    times faster than advanced indexing for minibatch gathers)."""
    return t.index_select(0, index.reshape(-1)).view(*index.shape, *t.shape[1:])


Layout = dict[str, tuple[tuple[int, ...], torch.dtype, int]]  # name -> (shape, dtype, fill)


def _allocate(buffer: ReplayBuffer | FrameStackReplay, layout: Layout) -> None:
    """Set each of ``layout``'s tensors on ``buffer`` (on ``buffer.device``); zeros come
    from ``torch.zeros``, whose pages the system commits only when they are written."""
    for name, (shape, dtype, fill) in layout.items():
        tensor = torch.zeros(shape, dtype=dtype, device=buffer.device)
        setattr(buffer, name, tensor.fill_(fill) if fill else tensor)


def layout_bytes(layout: Layout) -> int:
    """Bytes of the tensors ``layout`` describes."""
    return sum(math.prod(shape) * torch.empty(0, dtype=dtype).element_size()
               for shape, dtype, _ in layout.values())


class ReplayBuffer:
    """Ring buffer of ``capacity`` transitions with ``obs_dim``-dimensional observations.

    ``num_envs`` is the number of transitions each ``add`` writes (the stride between an
    environment's consecutive transitions); ``capacity`` must be a multiple of it.
    ``compiled``: assemble n-step transitions with ``replay_kernel.n_step_gather`` (one
    compiled loop, the fast form on a CPU) instead of tensor operations; default (None): on
    the CPU.
    """

    def __init__(
        self,
        capacity: int,
        obs_dim: int,
        device: torch.device | str = "cpu",
        obs_dtype: torch.dtype = torch.float32,
        num_envs: int = 1,
        compiled: bool | None = None,
    ) -> None:
        if capacity < 1 or num_envs < 1 or capacity % num_envs:
            raise ValueError(f"buffer capacity: expected a positive multiple of num_envs "
                             f"({num_envs}), got {capacity}")
        self.num_envs = num_envs
        self.capacity, self.obs_dim = capacity, obs_dim
        self.device = torch.device(device)
        _allocate(self, self.layout(capacity, obs_dim, obs_dtype))
        self.pos = 0  # next slot to write
        self.size = 0  # filled slots
        self.lag = 0  # steps of a transition's successors that must be stored to sample it
        self.lead = 0  # steps of history a transition needs (once the ring is full)
        self._offsets: dict[int, torch.Tensor] = {}
        self._kernel = load_kernel(
            _n_step_kernel, compiled,
            "ReplayBuffer: the compiled n-step sampling", self.device.type == "cpu",
            f"on the CPU, got {self.device}", stacklevel=4)
        self._powers: tuple[int, float, np.ndarray] | None = None  # (n, gamma, gamma^0..n)
        # NumPy views of the storage for the loop (add and load_state_dict write in place)
        self._arrays = tuple(getattr(self, name).numpy() for name in _FIELDS) if (
            self._kernel is not None) else ()

    @staticmethod
    def layout(capacity: int, obs_dim: int, obs_dtype: torch.dtype = torch.float32
               ) -> Layout:
        """The storage ``__init__`` allocates: ``{name: (shape, dtype, fill value)}``."""
        return {"obs": ((capacity, obs_dim), obs_dtype, 0),
                "next_obs": ((capacity, obs_dim), obs_dtype, 0),
                "actions": ((capacity,), torch.int64, 0),
                "rewards": ((capacity,), torch.float32, 0),
                "terminated": ((capacity,), torch.bool, 0),
                "truncated": ((capacity,), torch.bool, 0)}

    def __len__(self) -> int:
        return self.size

    def add(
        self,
        obs: torch.Tensor,
        actions: torch.Tensor,
        rewards: torch.Tensor,
        next_obs: torch.Tensor,
        terminated: torch.Tensor,
        truncated: torch.Tensor,
    ) -> None:
        """Write N transitions (all arguments with leading dimension N) at the ring's head."""
        n = actions.shape[0]
        if n != self.num_envs:
            raise ValueError(
                f"ReplayBuffer.add: expected {self.num_envs} transitions (one per env), got {n}"
            )
        if self.pos + n <= self.capacity:
            idx = slice(self.pos, self.pos + n)
        else:  # wrap around: slots pos..capacity-1 then 0..
            offsets = self._offsets.get(n)
            if offsets is None:
                offsets = self._offsets[n] = torch.arange(n, device=self.device)
            idx = (offsets + self.pos) % self.capacity
        self.obs[idx] = obs
        self.actions[idx] = actions
        self.rewards[idx] = rewards
        self.next_obs[idx] = next_obs
        self.terminated[idx] = terminated
        self.truncated[idx] = truncated
        self.pos = (self.pos + n) % self.capacity
        self.size = min(self.size + n, self.capacity)

    def sample(self, batch_size: int, generator: torch.Generator | None = None) -> Batch:
        """``batch_size`` transitions drawn uniformly with replacement from the filled slots."""
        if self.size == 0:
            raise ValueError("ReplayBuffer.sample: the buffer is empty")
        idx = torch.randint(self.size, (batch_size,), device=self.device, generator=generator)
        return self.at(idx)

    def at(self, idx: torch.Tensor) -> Batch:
        """The one-step transitions in ring slots ``idx (B,)``."""
        return Batch(*(gather_rows(getattr(self, name), idx) for name in _FIELDS))

    def sample_n_step(
        self, batch_size: int, n: int, gamma: float, generator: torch.Generator | None = None
    ) -> Batch:
        """``batch_size`` n-step transitions from start slots uniform over those whose n-1
        successors are stored (see ``n_step_at``)."""
        span = (n - 1) * self.num_envs
        valid = self.size - span
        if valid <= 0:
            raise ValueError(f"ReplayBuffer.sample_n_step: needs more than {span} transitions "
                             f"for n={n}, holds {self.size}")
        start = torch.randint(valid, (batch_size,), device=self.device, generator=generator)
        if self.size == self.capacity:  # the oldest slot is the write position
            start = (start + self.pos) % self.capacity
        return self.n_step_at(start, n, gamma)

    def n_step_at(self, start: torch.Tensor, n: int, gamma: float) -> Batch:
        """The n-step transitions starting at ring slots ``start (B,)`` (Sutton & Barto 7.1;
        Rainbow, Hessel et al., 2018).

        The return ``G = sum_{k<m} gamma^k R_{t+k+1}`` runs over ``m <= n`` steps of the same
        environment (slots ``start + k N``), stopping after the first terminated or truncated
        one. ``next_obs``, ``terminated`` and ``truncated`` are those of step ``m``, and
        ``discounts = gamma^m`` (B,), so the target is
        ``G + discounts * (1 - terminated) * max_a q(next_obs, a)``: a truncated episode still
        bootstraps from the observation it was cut at. On the CPU one compiled loop computes it
        (``replay_kernel``; it adds G's terms in order of k, the tensor form in torch's
        reduction order, so G can differ in the last bit).
        """
        if self._kernel is not None:
            return self._n_step_loop(start, n, gamma)
        steps = torch.arange(n, device=self.device)
        idx = (start.unsqueeze(1) + steps * self.num_envs) % self.capacity  # (B, n)
        done = gather_rows(self.terminated, idx) | gather_rows(self.truncated, idx)
        # step k counts if no earlier step ended the episode
        included = (torch.cumsum(done, dim=1) - done.long()) == 0
        powers = gamma ** steps.to(self.rewards.dtype)
        returns = (gather_rows(self.rewards, idx) * powers * included).sum(dim=1)
        m = included.sum(dim=1)  # (B,) in 1..n
        last = idx.gather(1, (m - 1).unsqueeze(1)).squeeze(1)
        return Batch(gather_rows(self.obs, start), gather_rows(self.actions, start), returns,
                     gather_rows(self.next_obs, last), gather_rows(self.terminated, last),
                     gather_rows(self.truncated, last), gamma ** m.to(returns.dtype))

    def _n_step_loop(self, start: torch.Tensor, n: int, gamma: float) -> Batch:
        """``n_step_at`` by ``replay_kernel.n_step_gather`` on the buffer's memory."""
        if self._powers is None or self._powers[:2] != (n, gamma):
            powers = gamma ** torch.arange(n + 1, dtype=self.rewards.dtype)
            self._powers = (n, gamma, powers.numpy())
        b, np_dtype = start.shape[0], self._arrays[0].dtype
        # outputs allocated by NumPy (cheaper than torch.empty + .numpy()), then shared
        outs = (np.empty((b, self.obs_dim), np_dtype), np.empty(b, np.int64),
                np.empty(b, np.float32), np.empty((b, self.obs_dim), np_dtype),
                np.empty(b, np.bool_), np.empty(b, np.bool_), np.empty(b, np.float32))
        bad = self._kernel(start.contiguous().numpy(), self.num_envs, self._powers[2],
                           *self._arrays, *outs)
        if bad >= 0:
            raise IndexError(f"ReplayBuffer.n_step_at: start slot {start[bad].item()} is "
                             f"outside the ring's 0..{self.capacity - 1}")
        return Batch(*(torch.from_numpy(a) for a in outs))

    def state_dict(self) -> dict:
        """The filled part of the buffer and its position, as tensors (for checkpoints)."""
        return {"pos": self.pos, "size": self.size,
                **{name: getattr(self, name)[: self.size].clone() for name in _FIELDS}}

    def load_state_dict(self, state: dict) -> None:
        size = int(state["size"])
        if size > self.capacity or state["obs"].shape[1:] != self.obs.shape[1:]:
            raise ValueError(
                f"replay buffer in checkpoint (size {size}, obs {tuple(state['obs'].shape[1:])}) "
                f"does not fit this buffer (capacity {self.capacity}, obs ({self.obs_dim},))"
            )
        for name in _FIELDS:
            getattr(self, name)[:size] = state[name].to(self.device)
        self.pos, self.size = int(state["pos"]), size


@dataclass(frozen=True)
class PrioritizedSpec:
    """Proportional prioritized replay (Schaul, Quan, Antonoglou & Silver 2016, section 3.3):
    transition i is drawn with probability ``P(i) = p_i^alpha / sum_k p_k^alpha``, its
    priority ``p_i = |delta_i| + eps`` from its last TD error (new transitions: the largest
    priority seen so far). ``alpha = 0`` is uniform sampling. The paper's proportional variant
    used alpha 0.6 with beta annealed from 0.4 to 1; Rainbow (Hessel et al. 2018) alpha 0.5,
    beta 0.4 -> 1. ``eps`` keeps a transition whose error was zero drawable."""

    alpha: float = 0.6
    eps: float = 1e-6

    def __post_init__(self) -> None:
        if isinstance(self.alpha, bool) or not 0 <= self.alpha <= 1:
            raise ValueError(f"prioritized replay: alpha must be in [0, 1], got {self.alpha!r}")
        if isinstance(self.eps, bool) or not 0 <= self.eps < math.inf:
            raise ValueError(f"prioritized replay: eps must be >= 0, got {self.eps!r}")


def _sum_tree_kernels():
    """The compiled sum-tree loops (need numba)."""
    import semigrad.sum_tree_kernel as sum_tree_kernel

    return sum_tree_kernel


class PrioritizedSampler:
    """K sum trees over ``capacity`` slots each, in one ``(K, 2P)`` float64 tensor ``tree``
    (``P`` the power of two >= capacity): agent k's root (the sum of its leaves) at ``[k, 1]``,
    node i's children at ``2i`` and ``2i + 1``, the leaf of slot j, ``p_j^alpha``, at ``P + j``
    (Schaul et al. 2016, appendix B.2.1). Every inner node is always the sum of its two
    children, so the tree is a function of its leaves (a checkpoint keeps only those).

    Drawing a slot is a walk from the root to a leaf (``log2 P`` steps); setting a leaf
    recomputes its ancestors. ``max_leaf (K,)``: the largest ``p^alpha`` each agent has seen
    (1 at first), which new transitions get. On the CPU the walks are compiled loops
    (``sum_tree_kernel``; ``compiled`` as in ``semigrad.compiled.load_kernel``), elsewhere
    batched tensor operations over the K agents; the two do the same additions in the same
    order. Agent k's numbers come only from its own tree and uniforms.
    """

    def __init__(self, agents: int, capacity: int, spec: PrioritizedSpec,
                 device: torch.device | str = "cpu", compiled: bool | None = None) -> None:
        self.agents, self.capacity, self.spec = agents, capacity, spec
        self.device = torch.device(device)
        self.leaves_at = 1 << max(capacity - 1, 0).bit_length()  # P
        _allocate(self, self.layout(agents, capacity))
        self._depth = self.leaves_at.bit_length() - 1
        self._kernel = load_kernel(
            _sum_tree_kernels, compiled, "PrioritizedSampler: the compiled sum trees",
            self.device.type == "cpu", f"on the CPU, got {self.device}", stacklevel=4)
        self._tree_np = self.tree.numpy() if self._kernel is not None else None
        self._max_np = self.max_leaf.numpy() if self._kernel is not None else None

    @staticmethod
    def layout(agents: int, capacity: int) -> Layout:
        """The storage ``__init__`` allocates (``{name: (shape, dtype, fill)}``)."""
        leaves_at = 1 << max(capacity - 1, 0).bit_length()
        return {"tree": ((agents, 2 * leaves_at), torch.float64, 0),
                "max_leaf": ((agents,), torch.float64, 1)}

    def leaves(self) -> torch.Tensor:
        """``p^alpha`` of every agent's slots, ``(K, capacity)`` (a view)."""
        return self.tree[:, self.leaves_at:self.leaves_at + self.capacity]

    def fill(self, first: int, count: int) -> None:
        """Slots ``first .. first + count - 1`` (new transitions) at each agent's largest
        priority."""
        if self._kernel is not None:
            self._kernel.fill(self._tree_np, self._max_np, first, count)
            return
        lo, hi = self.leaves_at + first, self.leaves_at + first + count
        self.tree[:, lo:hi] = self.max_leaf.unsqueeze(1)
        lo, hi = lo >> 1, ((hi - 1) >> 1) + 1
        while lo >= 1:
            self.tree[:, lo:hi] = self.tree[:, 2 * lo:2 * hi:2] + self.tree[:, 2 * lo + 1:2 * hi:2]
            lo, hi = lo >> 1, ((hi - 1) >> 1) + 1

    def _prefix(self, i: int) -> torch.Tensor:
        """Each agent's sum of leaves ``0 .. i-1``, ``(K,)``, added from the leaf level up."""
        if i >= self.leaves_at:
            return self.tree[:, 1]
        node, acc = self.leaves_at + i, torch.zeros(self.agents, dtype=torch.float64,
                                                    device=self.device)
        while node > 1:
            if node & 1:
                acc = acc + self.tree[:, node - 1]
            node >>= 1
        return acc

    def _cum(self, i: int) -> torch.Tensor:
        if i <= self.capacity:
            return self._prefix(i)
        return self._prefix(self.capacity) + self._prefix(i - self.capacity)

    def sample(self, start: int, valid: int, u: torch.Tensor, beta: float
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """Slots ``(K, B)`` int64 drawn with replacement, each agent's with probability
        ``P(j) = p_j^alpha / sum_i p_i^alpha`` over its ``valid`` slots ``start, start + 1,
        ... (mod capacity)`` (``u (K, B)``: uniforms in [0, 1), agent k's from its own
        stream; one walk from the root per draw), and their importance weights ``(K, B)``
        float32, ``w_j = (valid P(j))^-beta / max_b w_b``: each agent's normalised by the
        largest in its batch, as DQN Zoo and Dopamine do (Schaul et al.'s Algorithm 1 writes
        ``max_i w_i``). When an agent's priorities in the range are all zero it draws
        uniformly, with weights 1."""
        if not 0 <= beta <= 1:
            raise ValueError(f"prioritized replay: beta must be in [0, 1], got {beta!r}")
        u = u.to(torch.float64)
        if self._kernel is not None:
            slots = np.empty(u.shape, np.int64)
            weights = np.empty(u.shape, np.float32)
            self._kernel.sample(self._tree_np, start, valid, self.capacity,
                                u.contiguous().numpy(), float(beta), slots, weights)
            return torch.from_numpy(slots), torch.from_numpy(weights)
        low = self._cum(start).unsqueeze(1)
        mass = (self._cum(start + valid) - low.squeeze(1)).unsqueeze(1)
        whole = self._prefix(self.capacity).unsqueeze(1)
        t = low + u * mass
        t = torch.where(t >= whole, t - whole, t)
        node = torch.ones(u.shape, dtype=torch.int64, device=self.device)
        for _ in range(self._depth):
            left = self.tree.gather(1, 2 * node)
            go = (t >= left) & (self.tree.gather(1, 2 * node + 1) > 0)
            t = torch.where(go, t - left, t)
            node = 2 * node + go
        j = (node - self.leaves_at).clamp_(max=self.capacity - 1)
        d = (j - start) % self.capacity
        d = torch.where(d >= valid, torch.where(d - valid < self.capacity - d, valid - 1, 0), d)
        empty = ~(mass > 0)
        uniform = (u * valid).long().clamp_(max=valid - 1)
        slots = (start + torch.where(empty, uniform, d)) % self.capacity
        w = (valid * self.tree.gather(1, self.leaves_at + slots) / mass) ** -beta
        w = torch.where(empty, 1.0, w / w.amax(dim=1, keepdim=True))
        return slots, w.to(torch.float32)

    def update(self, slots: torch.Tensor, td_abs: torch.Tensor) -> None:
        """Priorities ``|delta| + eps`` of slots ``(K, B)`` from ``td_abs (K, B)`` (a slot
        drawn twice keeps the larger); ``max_leaf`` raised to them."""
        td_abs = td_abs.detach().to(torch.float64)
        if self._kernel is not None:
            self._kernel.update(self._tree_np, self._max_np, slots.contiguous().numpy(),
                                td_abs.contiguous().numpy(), self.spec.eps, self.spec.alpha)
            return
        leaf = (td_abs + self.spec.eps) ** self.spec.alpha
        node = self.leaves_at + slots
        self.tree.scatter_reduce_(1, node, leaf, "amax", include_self=False)
        torch.maximum(self.max_leaf, leaf.amax(dim=1), out=self.max_leaf)
        for _ in range(self._depth):
            node = node >> 1
            self.tree.scatter_(1, node, self.tree.gather(1, 2 * node)
                               + self.tree.gather(1, 2 * node + 1))

    def rebuild(self) -> None:
        """Every inner node recomputed from the leaves, level by level."""
        width = self.leaves_at >> 1
        while width >= 1:
            self.tree[:, width:2 * width] = (self.tree[:, 2 * width:4 * width:2]
                                             + self.tree[:, 2 * width + 1:4 * width:2])
            width >>= 1

    def state_dict(self, size: int) -> dict:
        """The leaves of the ``size`` filled slots per agent and ``max_leaf``."""
        return {"leaves": self.leaves()[:, :size].clone(), "max_leaf": self.max_leaf.clone()}

    def load_state_dict(self, state: dict) -> None:
        leaves = state["leaves"]
        if leaves.shape[0] != self.agents or leaves.shape[1] > self.capacity:
            raise ValueError(f"priorities in checkpoint ({tuple(leaves.shape)}) do not fit "
                             f"{self.agents} agents' trees of {self.capacity} slots")
        self.tree.zero_()
        self.leaves()[:, :leaves.shape[1]] = leaves.to(self.device, torch.float64)
        self.max_leaf.copy_(state["max_leaf"])
        self.rebuild()


class AgentReplay:
    """K replay buffers of ``capacity`` transitions in one ``ReplayBuffer`` of ``K * capacity``.

    ``add`` writes the ``K * N`` transitions of a step (agent k's at rows ``k N .. k N + N - 1``),
    so the ring is laid out ``(capacity / N, K, N)`` and agent k's slot j is ``(j // N) K N + k N
    + j % N``. Sampling takes ``u (K, B)`` uniforms in [0, 1) (agent k's from its own stream)
    and returns a ``Batch`` of ``K * B`` flattened transitions, agent k's at ``k B .. k B + B-1``.

    ``prioritized``: draw in proportion to priorities instead (``PrioritizedSpec``; the trees
    are ``self.prioritized``, None for uniform sampling). Then ``sample`` and
    ``sample_n_step`` take ``beta`` (the caller anneals it to 1) and their batches carry
    ``indices`` and ``weights``; ``update_priorities(batch.indices, |delta|)`` after the
    gradient step, before the next ``add``. New transitions come in at each agent's largest
    priority so far. The same slots are drawable as with uniform sampling (n-step windows
    whose successors are stored; the frame replay's readable stacks). ``compiled``: whether
    the sum trees run as compiled loops (``PrioritizedSampler``; default: on the CPU).
    Checkpoints: ``state_dict`` / ``load_state_dict`` (the buffer's, plus the priorities).
    """

    def __init__(self, agents: int, capacity: int, num_envs: int, obs_dim: int,
                 device: torch.device, obs_dtype: torch.dtype = torch.float32,
                 frames: tuple[int, int, int] | None = None,
                 max_episode_steps: int | None = None,
                 prioritized: PrioritizedSpec | None = None,
                 compiled: bool | None = None) -> None:
        self.agents, self.capacity, self.num_envs = agents, capacity, num_envs
        if frames is None:
            self.buffer = ReplayBuffer(agents * capacity, obs_dim, device=device,
                                       obs_dtype=obs_dtype, num_envs=agents * num_envs)
        else:  # stacks of S frames (S, H, W): each frame stored once
            self.buffer = FrameStackReplay(agents * capacity, frames, device=device,
                                           num_envs=agents * num_envs,
                                           max_episode_steps=max_episode_steps)
        self._offsets = torch.arange(agents, device=device).unsqueeze(1) * num_envs  # (K, 1)
        self._stride = (agents - 1) * num_envs  # slot j -> j + (j // N) (K - 1) N + k N
        self.prioritized = None if prioritized is None else PrioritizedSampler(
            agents, capacity, prioritized, device, compiled)

    @staticmethod
    def layout(agents: int, capacity: int, num_envs: int, obs_dim: int,
               obs_dtype: torch.dtype = torch.float32,
               frames: tuple[int, int, int] | None = None,
               max_episode_steps: int | None = None,
               prioritized: PrioritizedSpec | None = None) -> Layout:
        """The storage ``AgentReplay(...)`` with these arguments allocates: its buffer's, and
        the sum trees' when prioritized."""
        if frames is None:
            layout = ReplayBuffer.layout(agents * capacity, obs_dim, obs_dtype)
        else:
            layout = FrameStackReplay.layout(agents * capacity, frames, agents * num_envs,
                                             max_episode_steps)
        if prioritized is not None:
            layout = {**layout, **PrioritizedSampler.layout(agents, capacity)}
        return layout

    @staticmethod
    def memory_bytes(*args, **kwargs) -> int:
        """Bytes ``AgentReplay(...)`` with these arguments (``layout``'s) allocates, read off
        its storage layout (nothing is allocated)."""
        return layout_bytes(AgentReplay.layout(*args, **kwargs))

    def add(self, *transitions: torch.Tensor) -> None:
        """``obs, actions, rewards, next_obs, terminated, truncated`` with ``K * N`` rows each."""
        first = self.buffer.pos // self.agents  # each agent's first slot written
        self.buffer.add(*transitions)
        if self.prioritized is not None:
            self.prioritized.fill(first, self.num_envs)

    def update_priorities(self, indices: torch.Tensor, td_abs: torch.Tensor) -> None:
        """Priorities ``|delta| + eps`` of the slots a prioritized batch drew: ``indices``
        (``batch.indices``, ``(K * B,)``) and ``td_abs`` (``(K * B,)`` or ``(K, B)``, the
        absolute TD errors of the gradient step on that batch)."""
        if self.prioritized is None:
            raise ValueError("AgentReplay.update_priorities: this replay samples uniformly "
                             "(build it with prioritized=PrioritizedSpec(...))")
        self.prioritized.update(indices.view(self.agents, -1),
                                td_abs.reshape(self.agents, -1))

    def state_dict(self) -> dict:
        """The buffer's ``state_dict``, and with priorities their leaves (``"priorities"``)."""
        state = self.buffer.state_dict()
        if self.prioritized is not None:
            state["priorities"] = self.prioritized.state_dict(self.size)
        return state

    def load_state_dict(self, state: dict) -> None:
        if self.prioritized is not None and "priorities" not in state:
            raise ValueError("replay in checkpoint has no priorities; this replay is "
                             "prioritized")
        self.buffer.load_state_dict(state)
        if self.prioritized is not None:
            self.prioritized.load_state_dict(state["priorities"])

    @property
    def size(self) -> int:
        """Transitions held per agent."""
        return self.buffer.size // self.agents

    def _slots(self, j: torch.Tensor) -> torch.Tensor:
        """Agent slots ``j (K, B)`` -> flat ring indices ``(K * B,)``."""
        return (j + (j // self.num_envs) * self._stride + self._offsets).reshape(-1)

    def sample(self, u: torch.Tensor, beta: float = 1.0) -> Batch:
        """One-step transitions with replacement from each agent's filled slots: uniformly, or
        by priority (``beta``: the importance-weight exponent)."""
        if self.buffer.lag or self.prioritized is not None:
            return self._sample_from_oldest(1, u, self.buffer.at, beta)
        if self.size == 0:
            raise ValueError("AgentReplay.sample: the buffers are empty")
        j = (u * self.size).long().clamp_(max=self.size - 1)
        return self.buffer.at(self._slots(j))

    def sample_n_step(self, n: int, gamma: float, u: torch.Tensor, beta: float = 1.0) -> Batch:
        """n-step transitions with ``ReplayBuffer.sample_n_step``'s semantics, per agent."""
        return self._sample_from_oldest(n, u, lambda idx: self.buffer.n_step_at(idx, n, gamma),
                                        beta)

    def _sample_from_oldest(self, n: int, u: torch.Tensor, read, beta: float = 1.0) -> Batch:
        full = self.buffer.size == self.buffer.capacity
        lead = self.buffer.lead if full else 0  # the oldest steps' history is overwritten
        valid = self.size - (n - 1 + self.buffer.lag + lead) * self.num_envs
        if valid <= 0:
            raise ValueError(f"AgentReplay.sample_n_step: needs more than "
                             f"{(n - 1 + self.buffer.lag) * self.num_envs} transitions per "
                             f"agent for n={n}, holds {self.size}")
        # each agent's oldest readable slot
        start = (self.buffer.pos // self.agents + lead * self.num_envs) % self.capacity \
            if full else 0
        if self.prioritized is not None:
            j, weights = self.prioritized.sample(start, valid, u, beta)
            batch = read(self._slots(j))
            return PrioritizedBatch(*(getattr(batch, f.name) for f in dataclasses.fields(batch)),
                                    indices=j.reshape(-1), weights=weights.reshape(-1))
        j = (u * valid).long().clamp_(max=valid - 1)
        if full:
            j = (j + start) % self.capacity
        return read(self._slots(j))


class FrameStackReplay:
    """A replay of frame-stack observations that stores each frame once (for Atari).

    Observations are flat rows of ``S`` frames ``(S, H, W)`` uint8, oldest first, as frame-stack
    envs give them; a new episode's stack is its first frame repeated. ``obs`` and ``next_obs``
    of consecutive transitions share ``S - 1`` frames and a stack shares frames with the next
    ``S - 1`` ones, so storing stacks would keep every frame ``2 S`` times (56 GB for a million
    Atari transitions, against 7.06 GB for the frames themselves). Here slot ``j`` keeps only
    the newest frame of ``obs_j`` and its ``age`` (steps since its episode began, at most
    ``S - 1``); the stacks are rebuilt from indices at sample time:

    - ``obs_j = [frame[j - min(S - 1 - i, age_j) N] for i in 0..S-1]``: older frames of the
      same environment (stride N), padded with the episode's first frame, never crossing into
      another episode;
    - ``next_obs_j`` is ``obs`` of slot ``j + N`` (the same environment's next step), so a
      transition is sampled once its successor is stored (``lag = 1``); a truncated transition
      bootstraps from its true final observation: ``obs_j``'s last ``S - 1`` frames and the
      final frame, which is kept in a small side ring (one frame per truncation); a terminated
      one never bootstraps, and its ``next_obs`` is ``obs_j``;
    - once the ring is full, the oldest ``S - 1`` steps of each environment have lost their
      older frames to newer ones, so sampling skips them (``lead = S - 1``).

    The same interface as ``ReplayBuffer`` (``add``, ``at``, ``n_step_at``, ``sample``,
    ``sample_n_step``, ``state_dict``), so ``AgentReplay`` and DQN use either.
    ``max_episode_steps`` (per environment) sizes the side ring: at most one truncation per
    episode.
    """

    def __init__(self, capacity: int, frames: tuple[int, int, int],
                 device: torch.device | str = "cpu", num_envs: int = 1,
                 max_episode_steps: int | None = None) -> None:
        if capacity < 1 or num_envs < 1 or capacity % num_envs:
            raise ValueError(f"buffer capacity: expected a positive multiple of num_envs "
                             f"({num_envs}), got {capacity}")
        self.stack, height, width = (int(d) for d in frames)
        self.frame_size = height * width
        self.capacity, self.num_envs = capacity, num_envs
        self.obs_dim = self.stack * self.frame_size
        self.device = torch.device(device)
        _allocate(self, self.layout(capacity, frames, num_envs, max_episode_steps))
        self.final_pos = 0
        self._steps = torch.arange(self.stack, device=self.device)
        self.pos = self.size = 0
        self.lag = 1  # a transition's next_obs is its successor's obs
        self.lead = self.stack - 1  # obs needs S - 1 older frames, overwritten at the old end

    @staticmethod
    def layout(capacity: int, frames: tuple[int, int, int], num_envs: int = 1,
               max_episode_steps: int | None = None
               ) -> Layout:
        """The storage ``__init__`` allocates: ``{name: (shape, dtype, fill value)}``: the
        newest frame of each slot and its age, the per-transition fields, and the side ring of
        final frames (one per truncation: at most one per episode per environment)."""
        _, height, width = (int(d) for d in frames)
        frame_size = height * width
        per_env = capacity // num_envs
        side = num_envs * (2 + (per_env // max_episode_steps if max_episode_steps else 0))
        return {"frames": ((capacity, frame_size), torch.uint8, 0),
                "ages": ((capacity,), torch.uint8, 0),
                "actions": ((capacity,), torch.int64, 0),
                "rewards": ((capacity,), torch.float32, 0),
                "terminated": ((capacity,), torch.bool, 0),
                "truncated": ((capacity,), torch.bool, 0),
                "final_frames": ((side, frame_size), torch.uint8, 0),
                "final_of": ((capacity,), torch.int64, -1),  # slot -> side-ring index
                "final_owner": ((side,), torch.int64, -1),  # side-ring index -> slot
                "_age": ((num_envs,), torch.uint8, 0)}  # of the next obs per env

    def __len__(self) -> int:
        return self.size

    def nbytes(self) -> int:
        """Bytes of storage (frames and per-transition fields; the side ring included)."""
        return sum(getattr(self, name).nbytes for name in self._STATE)

    def add(self, obs, actions, rewards, next_obs, terminated, truncated) -> None:
        """Write N transitions; ``obs``/``next_obs`` ``(N, S * H * W)`` uint8 stacks (only the
        newest frame of ``obs``, and the final frame of truncated ``next_obs``, are kept)."""
        n = actions.shape[0]
        if n != self.num_envs:
            raise ValueError(f"FrameStackReplay.add: expected {self.num_envs} transitions "
                             f"(one per env), got {n}")
        idx = (torch.arange(n, device=self.device) + self.pos) % self.capacity
        self.frames[idx] = obs[:, -self.frame_size:]
        self.ages[idx] = self._age
        self.actions[idx] = actions
        self.rewards[idx] = rewards
        self.terminated[idx] = terminated
        self.truncated[idx] = truncated
        old = self.final_of[idx]  # slots being overwritten free their side frames
        self.final_owner[old[old >= 0]] = -1
        self.final_of[idx] = -1
        cut = torch.nonzero(truncated & ~terminated).flatten().tolist()
        for i in cut:  # rare: one per episode that hits the time limit
            side = self.final_pos
            if self.final_owner[side] >= 0:
                self.final_of[self.final_owner[side]] = -1
            self.final_frames[side] = next_obs[i, -self.frame_size:]
            self.final_owner[side] = idx[i]
            self.final_of[idx[i]] = side
            self.final_pos = (side + 1) % self.final_frames.shape[0]
        done = terminated | truncated
        self._age = torch.where(done, torch.zeros_like(self._age),
                                (self._age + 1).clamp_(max=self.stack - 1))
        self.pos = (self.pos + n) % self.capacity
        self.size = min(self.size + n, self.capacity)

    def stacks(self, slots: torch.Tensor) -> torch.Tensor:
        """``obs`` of ring slots ``slots (B,)`` as flat stacks ``(B, S * H * W)``."""
        back = (self.stack - 1 - self._steps).unsqueeze(0)  # (1, S): S-1 .. 0
        back = torch.minimum(back, self.ages[slots].long().unsqueeze(1))
        idx = (slots.unsqueeze(1) - back * self.num_envs) % self.capacity
        return self.frames[idx].reshape(slots.shape[0], self.obs_dim)

    def _next_stacks(self, slots: torch.Tensor) -> torch.Tensor:
        """The observation transition ``slots`` ended in (see the class docstring)."""
        nxt = self.stacks((slots + self.num_envs) % self.capacity)
        side = self.final_of[slots]
        cut = side >= 0
        if bool(cut.any()):
            own = self.stacks(slots[cut]).view(-1, self.stack, self.frame_size)
            final = torch.cat([own[:, 1:], self.final_frames[side[cut]].unsqueeze(1)], dim=1)
            nxt[cut] = final.reshape(-1, self.obs_dim)
        term = self.terminated[slots]
        if bool(term.any()):
            nxt[term] = self.stacks(slots[term])
        return nxt

    def at(self, idx: torch.Tensor) -> Batch:
        """The one-step transitions in ring slots ``idx (B,)``."""
        return Batch(self.stacks(idx), self.actions[idx], self.rewards[idx],
                     self._next_stacks(idx), self.terminated[idx], self.truncated[idx])

    def n_step_at(self, start: torch.Tensor, n: int, gamma: float) -> Batch:
        """``ReplayBuffer.n_step_at``'s n-step transitions, rebuilt from frames."""
        steps = torch.arange(n, device=self.device)
        idx = (start.unsqueeze(1) + steps * self.num_envs) % self.capacity  # (B, n)
        done = self.terminated[idx] | self.truncated[idx]
        included = (torch.cumsum(done, dim=1) - done.long()) == 0
        powers = gamma ** steps.to(self.rewards.dtype)
        returns = (self.rewards[idx] * powers * included).sum(dim=1)
        m = included.sum(dim=1)
        last = idx.gather(1, (m - 1).unsqueeze(1)).squeeze(1)
        return Batch(self.stacks(start), self.actions[start], returns, self._next_stacks(last),
                     self.terminated[last], self.truncated[last], gamma ** m.to(returns.dtype))

    def sample(self, batch_size: int, generator: torch.Generator | None = None) -> Batch:
        return self.sample_n_step(batch_size, 1, 1.0, generator)

    def sample_n_step(self, batch_size: int, n: int, gamma: float,
                      generator: torch.Generator | None = None) -> Batch:
        lead = self.lead if self.size == self.capacity else 0
        valid = self.size - (n - 1 + self.lag + lead) * self.num_envs
        if valid <= 0:
            raise ValueError(f"FrameStackReplay.sample_n_step: needs more than "
                             f"{(n - 1 + self.lag + lead) * self.num_envs} transitions for "
                             f"n={n}, holds {self.size}")
        start = torch.randint(valid, (batch_size,), device=self.device, generator=generator)
        if self.size == self.capacity:  # the oldest readable slot
            start = (start + self.pos + lead * self.num_envs) % self.capacity
        return self.n_step_at(start, n, gamma)

    _STATE = ("frames", "ages", "actions", "rewards", "terminated", "truncated", "final_frames",
              "final_of", "final_owner", "_age")

    def state_dict(self) -> dict:
        """The filled part of the ring (frames once), the side ring and the positions: a
        checkpoint's replay is no larger than the replay."""
        out = {name: getattr(self, name) for name in self._STATE}
        for name in ("frames", "ages", "actions", "rewards", "terminated", "truncated"):
            out[name] = out[name][: self.size].clone()
        return {**out, "pos": self.pos, "size": self.size, "final_pos": self.final_pos}

    def load_state_dict(self, state: dict) -> None:
        size = int(state["size"])
        if size > self.capacity or state["frames"].shape[1:] != self.frames.shape[1:]:
            raise ValueError(f"frame replay in checkpoint (size {size}) does not fit this "
                             f"buffer (capacity {self.capacity}, frame {self.frame_size})")
        for name in self._STATE:
            target, value = getattr(self, name), state[name].to(self.device)
            if name in ("frames", "ages", "actions", "rewards", "terminated", "truncated"):
                target[:size] = value
            else:
                target.copy_(value)
        self.pos, self.size, self.final_pos = int(state["pos"]), size, int(state["final_pos"])
