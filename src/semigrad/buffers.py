"""Experience replay as preallocated tensors on the training device.

Transitions ``(s, a, r, s', terminated, truncated)`` from N parallel environments are written
N at a time into a ring of ``capacity`` slots (no Python lists, no per-sample copies). ``s'`` is
the true next observation of each transition (for a truncated episode, the observation it was
cut at, which the target bootstraps from; see ``semigrad.envs.base``). Terminated and truncated
are stored apart: only ``terminated`` stops the bootstrap.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


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


_FIELDS = ("obs", "actions", "rewards", "next_obs", "terminated", "truncated")


class ReplayBuffer:
    """Ring buffer of ``capacity`` transitions with ``obs_dim``-dimensional observations."""

    def __init__(
        self,
        capacity: int,
        obs_dim: int,
        device: torch.device | str = "cpu",
        obs_dtype: torch.dtype = torch.float32,
    ) -> None:
        if capacity < 1:
            raise ValueError(f"buffer capacity: expected >= 1, got {capacity}")
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
        if n > self.capacity:
            raise ValueError(
                f"ReplayBuffer.add: {n} transitions exceed the capacity {self.capacity}"
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
        return Batch(*(getattr(self, name)[idx] for name in _FIELDS))

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
