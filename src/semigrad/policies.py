"""Policies shared by every control algorithm: epsilon-greedy action choice and greedy
evaluation (DQN, SARSA; TD(0) evaluates fixed policies with the same loop).

Epsilon-greedy (Sutton & Barto 2.2, 5.4): with probability epsilon a uniformly random action,
else ``argmax_a q(s, a)``; its probabilities are ``epsilon / A`` for every action plus
``1 - epsilon`` at the argmax (Expected SARSA needs them, S&B 6.6).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from semigrad import envs


def epsilon_greedy_from_uniforms(q_fn: Callable[[], torch.Tensor], num_actions: int,
                                 epsilon: float, u: torch.Tensor) -> torch.Tensor:
    """Epsilon-greedy actions ``(K, N)`` for K agents from their own uniforms ``u (K, 2 N)``.

    Agent k's random action is ``floor(u[k, :N] * A)`` and it explores where ``u[k, N:] <
    epsilon``; ``q_fn()`` gives the Q-values ``(K, N, A)`` and is only called when
    ``epsilon < 1`` (pure random play needs no forward pass).
    """
    n = u.shape[1] // 2
    random_actions = (u[:, :n] * num_actions).long()
    if epsilon >= 1.0:
        return random_actions
    return torch.where(u[:, n:] < epsilon, random_actions, q_fn().argmax(dim=2))


def epsilon_greedy_probs(q: torch.Tensor, epsilon: float) -> torch.Tensor:
    """Epsilon-greedy ``pi(a|s)`` for ``q (B, A)``: ``eps / A`` (+ ``1 - eps`` at the argmax)."""
    num_actions = q.shape[1]
    greedy = nn.functional.one_hot(q.argmax(dim=1), num_actions).to(q.dtype)
    return epsilon / num_actions + (1.0 - epsilon) * greedy


def evaluation_seed(seed: int, index: int) -> int:
    """The seed of a run's ``index``-th greedy evaluation: fresh episodes every time, apart from
    the training envs' (seeded ``seed``) and the same for the same run seed."""
    return 10_000_019 * (seed + 1) + index


@torch.no_grad()
def first_episode_returns(env: envs.BatchedEnv,
                          policy: Callable[[torch.Tensor], torch.Tensor],
                          max_steps: int | None = None) -> torch.Tensor:
    """Play ``policy (N, obs_dim) -> actions (N,)`` in all N envs until each has finished one
    episode; returns those N episodes' returns ``(N,)``.

    ``max_steps`` (default: the env's time limit, else 100,000) bounds the loop: an episode
    still running then (an env without a time limit and a policy that never ends it) raises a
    ``RuntimeError`` that says so, instead of looping for ever.
    """
    obs = env.reset()
    returns = torch.full((env.num_envs,), math.nan, device=env.device)
    limit = max_steps or env.spec.max_episode_steps or 100_000
    for _ in range(limit + 1):
        obs, _, terminated, truncated, info = env.step(policy(obs))
        first = (terminated | truncated) & returns.isnan()
        returns = torch.where(first, info["episode_return"].to(returns.dtype), returns)
        if not returns.isnan().any():
            return returns
    raise RuntimeError(f"evaluation: {int(returns.isnan().sum())} of {env.num_envs} episodes "
                       f"of {env.spec.id} still running after {limit} steps; give the env a "
                       "time limit")


MAX_PARALLEL_EPISODES = 10_000  # greedy episodes played at once (one env each)


def evaluate(policy: Callable[[torch.Tensor], torch.Tensor], env_id: str, episodes: int,
             seed: int, device: torch.device | str | None = None) -> torch.Tensor:
    """Returns ``(episodes,)``: the first episode of each of ``episodes`` fresh envs of
    ``env_id`` seeded ``seed``, all played in parallel by ``policy (N, obs_dim) -> (N,)``."""
    if not 1 <= episodes <= MAX_PARALLEL_EPISODES:
        raise ValueError(f"episodes: expected 1..{MAX_PARALLEL_EPISODES} (they are played at "
                         f"once, one env each), got {episodes}")
    env = envs.make(env_id, num_envs=episodes, device=device, seed=seed)
    try:
        return first_episode_returns(env, policy)
    finally:
        env.close()


def greedy(q_net: Callable[[torch.Tensor], torch.Tensor]) -> Callable[[torch.Tensor],
                                                                     torch.Tensor]:
    """The greedy policy of ``q_net (N, obs_dim) -> (N, A)``: ``obs -> argmax_a q``."""
    return lambda obs: q_net(obs).argmax(dim=1)
