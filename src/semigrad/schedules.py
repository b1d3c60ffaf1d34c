"""Schedules of a run, read from its config: linear epsilon and step-size annealing.

Shared by every algorithm with these fields (DQN, PQN, SARSA): ``epsilon_start``,
``epsilon_end``, ``epsilon_fraction`` (of ``steps``) for exploration; ``alpha`` and
``alpha_end`` (None: constant) over ``steps`` for the optimizer's step size.
"""

from __future__ import annotations

from typing import Any


def linear_schedule(start: float, end: float, duration: float, step: float) -> float:
    """``start`` -> ``end`` linearly over ``duration`` steps, then ``end`` (``duration <= 0``:
    ``end`` at once)."""
    if duration <= 0:
        return end
    return start + (end - start) * min(1.0, step / duration)


def epsilon_at(cfg: Any, env_steps: int) -> float:
    """Linear from ``epsilon_start`` to ``epsilon_end`` over ``epsilon_fraction * steps``."""
    return linear_schedule(cfg.epsilon_start, cfg.epsilon_end,
                           cfg.epsilon_fraction * cfg.steps, env_steps)


def alpha_at(cfg: Any, env_steps: int) -> float:
    """Linear from ``alpha`` to ``alpha_end`` (if set) over ``steps``."""
    if cfg.alpha_end is None:
        return cfg.alpha
    return linear_schedule(cfg.alpha, cfg.alpha_end, cfg.steps, env_steps)
