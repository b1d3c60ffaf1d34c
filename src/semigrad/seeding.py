"""Randomness for K agents at once: one generator per seed, drawn in chunks.

A run of K agents (seeds as a batch dimension; a single run is K = 1) gives agent k a
``torch.Generator`` seeded with its own seed, and everything random agent k does (exploration,
minibatch indices, its environments' initial states) comes from its own streams. So agent k's
numbers do not depend on how many other agents run beside it, or on their seeds.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def agent_generators(seeds: Sequence[int], device: torch.device | str) -> list[torch.Generator]:
    """One generator per seed, on ``device``."""
    return [torch.Generator(device=device).manual_seed(s) for s in seeds]


class AgentUniforms:
    """K independent streams of uniforms in ``[low, high)``: ``take(m) -> (K, m)``.

    Row k comes from ``generators[k]`` only, drawn ``chunk`` numbers at a time, so K agents cost
    K generator calls per chunk instead of K per use. Takes continue each stream without gaps:
    row k is the sequence that ``uniform_(low, high, generator=generators[k])`` calls of any
    sizes would give on CPU (a CUDA generator's stream depends on the call sizes).
    """

    def __init__(self, generators: Sequence[torch.Generator], chunk: int = 4096,
                 dtype: torch.dtype = torch.float64, low: float = 0.0, high: float = 1.0) -> None:
        self.generators = list(generators)
        self.chunk, self.low, self.high = chunk, low, high
        self._buf = torch.empty(len(self.generators), 0, dtype=dtype,
                                device=self.generators[0].device)
        self._pos = 0

    def take(self, m: int) -> torch.Tensor:
        if self._pos + m > self._buf.shape[1]:
            left = self._buf[:, self._pos:]
            new = torch.empty(len(self.generators), max(self.chunk, m), dtype=self._buf.dtype,
                              device=self._buf.device)
            new[:, : left.shape[1]] = left
            for row, gen in zip(new, self.generators, strict=True):
                row[left.shape[1]:].uniform_(self.low, self.high, generator=gen)
            self._buf, self._pos = new, 0
        out = self._buf[:, self._pos:self._pos + m]
        self._pos += m
        return out

    def state_dict(self) -> dict:
        """The generators' states and the uniforms drawn but not yet taken."""
        return {"generators": [g.get_state() for g in self.generators],
                "left": self._buf[:, self._pos:].clone()}

    def load_state_dict(self, state: dict) -> None:
        if len(state["generators"]) != len(self.generators):
            raise ValueError(f"checkpoint holds {len(state['generators'])} random streams, "
                             f"this run has {len(self.generators)}")
        for gen, saved in zip(self.generators, state["generators"], strict=True):
            gen.set_state(saved.cpu())  # a ByteTensor on the CPU, for CUDA generators too
        self._buf = state["left"].to(self._buf.device, self._buf.dtype)
        self._pos = 0
