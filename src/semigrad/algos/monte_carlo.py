"""Monte Carlo ground truth for CartPole: ``v_pi(s)`` by rollouts from exact states.

``v_pi(s) = E_pi[sum_k gamma^k R_{t+k+1} | S_t = s]`` (Sutton & Barto 3.5) is estimated by the
mean discounted return of ``n`` rollouts that *start in* ``s`` (first-visit Monte Carlo
prediction from a chosen state, S&B 5.1), with the standard error ``sd / sqrt(n)``.

The rollouts run on gymnasium's own vectorised CartPole (``CartPoleVectorEnv``, NumPy,
float64 state), whose state is set directly to the probe states, so the dynamics are
gymnasium's, not a re-implementation. All ``P x n`` rollouts step together.

The time limit is not part of CartPole's state, so the value a TD learner that bootstraps on
truncation estimates is the *infinite-horizon* one: rollouts run until the pole falls or the
remaining discount ``gamma^t / (1 - gamma)`` is below ``tail`` (no 500-step cut).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

# The course notebook's probe state (x, x_dot, theta, theta_dot).
NOTEBOOK_PROBE = (0.0, 2.0, -0.1, -1.0)
# Probes reported by default: the notebook's, the upright rest state, and two typical states.
DEFAULT_PROBES = (
    NOTEBOOK_PROBE,
    (0.0, 0.0, 0.0, 0.0),
    (0.0, 0.0, 0.05, 0.3),
    (0.0, 0.5, -0.05, -0.5),
)

Policy = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class MonteCarloEstimate:
    """``values (P,)`` mean discounted returns, ``stderr (P,)``, ``rollouts`` per state,
    ``horizon`` steps at most, ``cut_fraction`` of rollouts still running at the horizon."""

    values: np.ndarray
    stderr: np.ndarray
    rollouts: int
    horizon: int
    cut_fraction: float


def default_horizon(gamma: float, tail: float = 1e-4, cap: int = 100_000) -> int:
    """Smallest ``H`` with ``gamma^H / (1 - gamma) <= tail`` (at most ``cap``)."""
    if gamma <= 0:
        return 1
    if gamma >= 1:
        return cap
    return min(cap, max(1, math.ceil(math.log(tail * (1 - gamma)) / math.log(gamma))))


def cartpole_values(
    states: torch.Tensor | np.ndarray | list,
    gamma: float,
    rollouts: int = 1000,
    policy: Policy | None = None,
    seed: int = 0,
    horizon: int | None = None,
) -> MonteCarloEstimate:
    """Monte Carlo ``v_pi`` at CartPole ``states (P, 4)``, ``rollouts`` returns per state.

    ``policy(obs (N, 4) float32 tensor) -> actions (N,) int64``; ``None`` is the uniform
    random policy (drawn with NumPy from ``seed``). The first reward is that of the step out
    of the given state, so every state is worth at least 1 (CartPole pays 1 per step).
    """
    from gymnasium.envs.classic_control.cartpole import CartPoleVectorEnv

    starts = np.asarray(torch.as_tensor(states, dtype=torch.float64).cpu(), dtype=np.float64)
    if starts.ndim != 2 or starts.shape[1] != 4:
        raise ValueError(f"cartpole_values: states must have shape (P, 4), got {starts.shape}")
    if not 0 <= gamma <= 1:
        raise ValueError(f"cartpole_values: gamma must lie in [0, 1], got {gamma}")
    if rollouts < 2:
        raise ValueError(
            f"cartpole_values: need rollouts >= 2 for a standard error, got {rollouts}"
        )
    horizon = default_horizon(gamma) if horizon is None else horizon
    num_states = starts.shape[0]
    n = num_states * rollouts
    env = CartPoleVectorEnv(num_envs=n, max_episode_steps=horizon + 1)
    env.reset(seed=seed)
    env.state = np.repeat(starts, rollouts, axis=0).T.copy()  # (4, P * rollouts), float64
    rng = np.random.default_rng(seed)
    returns = np.zeros(n)
    alive = np.ones(n, dtype=bool)
    discount = 1.0
    obs = env.state.T.astype(np.float32)
    for _ in range(horizon):
        if policy is None:
            actions = rng.integers(0, 2, n)
        else:
            actions = policy(torch.from_numpy(obs)).cpu().numpy()
        obs, reward, terminated, _, _ = env.step(actions)
        returns[alive] += discount * reward[alive].astype(np.float64)
        alive &= ~terminated
        discount *= gamma
        if not alive.any():
            break
    env.close()
    per_state = returns.reshape(num_states, rollouts)
    return MonteCarloEstimate(
        values=per_state.mean(axis=1),
        stderr=per_state.std(axis=1, ddof=1) / math.sqrt(rollouts),
        rollouts=rollouts,
        horizon=horizon,
        cut_fraction=float(alive.mean()),
    )
