"""Experience replay as preallocated tensors on the training device.

Transitions ``(s, a, r, s', terminated, truncated)`` from N parallel environments are written
N at a time into a ring of ``capacity`` slots (no Python lists, no per-sample copies), so the
transition that followed slot j in the same environment is slot ``j + N`` (mod capacity, which
is a multiple of N): n-step returns are assembled at sampling time from those strides. ``s'`` is
the true next observation of each transition (for a truncated episode, the observation it was
cut at, which the target bootstraps from; see ``semigrad.envs.base``). Terminated and truncated
are stored apart: only ``terminated`` stops the bootstrap.

``AgentReplay`` holds K agents' buffers in one ring (seeds as a batch dimension; one agent is
K = 1), each agent sampling from its own transitions only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from semigrad.compiled import load_kernel


@dataclass(frozen=True)
class Batch:
    """A sampled minibatch: ``obs (B, D)``, ``actions (B,)`` int64, ``rewards (B,)``,
    ``next_obs (B, D)``, ``terminated (B,)`` bool, ``truncated (B,)`` bool."""

    obs: torch.Tensor
    actions: torch.Tensor
    rewards: torch.Tensor
    next_obs: torch.Tensor
    terminated: torch.Tensor
    truncated: torch.Tensor
    discounts: torch.Tensor | None = None


_FIELDS = ("obs", "actions", "rewards", "next_obs", "terminated", "truncated")


def _n_step_kernel():
    """The compiled form of ``ReplayBuffer.n_step_at`` (needs numba)."""
    import semigrad.replay_kernel as replay_kernel

    return replay_kernel.n_step_gather


def gather_rows(t: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``t[index]`` for an integer ``index`` of any shape, via ``index_select`` (on CPU several
    times faster than advanced indexing for minibatch gathers)."""
    return t.index_select(0, index.reshape(-1)).view(*index.shape, *t.shape[1:])


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
        kw = {"device": self.device}
        self.obs = torch.zeros(capacity, obs_dim, dtype=obs_dtype, **kw)
        self.next_obs = torch.zeros(capacity, obs_dim, dtype=obs_dtype, **kw)
        self.actions = torch.zeros(capacity, dtype=torch.int64, **kw)
        self.rewards = torch.zeros(capacity, dtype=torch.float32, **kw)
        self.terminated = torch.zeros(capacity, dtype=torch.bool, **kw)
        self.truncated = torch.zeros(capacity, dtype=torch.bool, **kw)
        self.pos = 0  # next slot to write
        self.size = 0  # filled slots
        self._offsets: dict[int, torch.Tensor] = {}
        self._kernel = load_kernel(
            _n_step_kernel, compiled,
            "ReplayBuffer: the compiled n-step sampling", self.device.type == "cpu",
            f"on the CPU, got {self.device}", stacklevel=4)
        self._powers: tuple[int, float, np.ndarray] | None = None  # (n, gamma, gamma^0..n)
        # NumPy views of the storage for the loop (add and load_state_dict write in place)
        self._arrays = tuple(getattr(self, name).numpy() for name in _FIELDS) if (
            self._kernel is not None) else ()

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


class AgentReplay:
    """K replay buffers of ``capacity`` transitions in one ``ReplayBuffer`` of ``K * capacity``.

    ``add`` writes the ``K * N`` transitions of a step (agent k's at rows ``k N .. k N + N - 1``),
    so the ring is laid out ``(capacity / N, K, N)`` and agent k's slot j is ``(j // N) K N + k N
    + j % N``. Sampling takes ``u (K, B)`` uniforms in [0, 1) (agent k's from its own stream)
    and returns a ``Batch`` of ``K * B`` flattened transitions, agent k's at ``k B .. k B + B-1``.
    """

    def __init__(self, agents: int, capacity: int, num_envs: int, obs_dim: int,
                 device: torch.device, obs_dtype: torch.dtype = torch.float32) -> None:
        self.agents, self.capacity, self.num_envs = agents, capacity, num_envs
        self.buffer = ReplayBuffer(agents * capacity, obs_dim, device=device,
                                   obs_dtype=obs_dtype, num_envs=agents * num_envs)
        self._offsets = torch.arange(agents, device=device).unsqueeze(1) * num_envs  # (K, 1)
        self._stride = (agents - 1) * num_envs  # slot j -> j + (j // N) (K - 1) N + k N

    def add(self, *transitions: torch.Tensor) -> None:
        """``obs, actions, rewards, next_obs, terminated, truncated`` with ``K * N`` rows each."""
        self.buffer.add(*transitions)

    @property
    def size(self) -> int:
        """Transitions held per agent."""
        return self.buffer.size // self.agents

    def _slots(self, j: torch.Tensor) -> torch.Tensor:
        """Agent slots ``j (K, B)`` -> flat ring indices ``(K * B,)``."""
        return (j + (j // self.num_envs) * self._stride + self._offsets).reshape(-1)

    def sample(self, u: torch.Tensor) -> Batch:
        """One-step transitions uniformly with replacement from each agent's filled slots."""
        if self.size == 0:
            raise ValueError("AgentReplay.sample: the buffers are empty")
        j = (u * self.size).long().clamp_(max=self.size - 1)
        return self.buffer.at(self._slots(j))

    def sample_n_step(self, n: int, gamma: float, u: torch.Tensor) -> Batch:
        """n-step transitions with ``ReplayBuffer.sample_n_step``'s semantics, per agent."""
        valid = self.size - (n - 1) * self.num_envs
        if valid <= 0:
            raise ValueError(f"AgentReplay.sample_n_step: needs more than "
                             f"{(n - 1) * self.num_envs} transitions per agent for n={n}, "
                             f"holds {self.size}")
        j = (u * valid).long().clamp_(max=valid - 1)
        if self.buffer.size == self.buffer.capacity:  # each agent's oldest slot
            j = (j + self.buffer.pos // self.agents) % self.capacity
        return self.buffer.n_step_at(self._slots(j), n, gamma)
