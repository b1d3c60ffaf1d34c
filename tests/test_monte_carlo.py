"""The Monte Carlo evaluator against gymnasium's single CartPoleEnv stepped by hand."""

import math

import gymnasium as gym
import numpy as np
import pytest
import torch

from semigrad.algos.monte_carlo import NOTEBOOK_PROBE, cartpole_values, default_horizon


def gym_return(state, actions, gamma):
    """Discounted return of gymnasium's CartPoleEnv from ``state`` under a fixed action list."""
    env = gym.make("CartPole-v1").unwrapped
    env.reset(seed=0)
    env.state = np.array(state, dtype=np.float64)
    total, discount = 0.0, 1.0
    for action in actions:
        _, reward, terminated, _, _ = env.step(int(action))
        total += discount * reward
        discount *= gamma
        if terminated:
            return total, True
    return total, False


def test_deterministic_policy_matches_gymnasium_exactly():
    """Always push right / always left: one return per state, equal to gymnasium's own."""
    states = [NOTEBOOK_PROBE, (0.0, 0.0, 0.0, 0.0), (0.1, -0.3, 0.02, 0.4)]
    for action in (0, 1):
        def policy(obs, action=action):
            return torch.full((obs.shape[0],), action, dtype=torch.int64)

        est = cartpole_values(states, 0.9, rollouts=3, policy=policy)
        for i, state in enumerate(states):
            expected, ended = gym_return(state, [action] * est.horizon, 0.9)
            assert ended
            assert est.values[i] == pytest.approx(expected, abs=1e-12)
            assert est.stderr[i] == pytest.approx(0.0, abs=1e-12)


def test_policy_sees_the_state_as_float32_observations():
    seen = []

    def policy(obs):
        seen.append(obs.clone())
        return (obs[:, 3] > 0).long()  # push toward the pole's fall

    cartpole_values([NOTEBOOK_PROBE], 0.95, rollouts=2, policy=policy)
    assert seen[0].dtype == torch.float32
    assert torch.equal(seen[0][0], torch.tensor(NOTEBOOK_PROBE, dtype=torch.float32))


def test_random_policy_agrees_with_per_episode_gymnasium_rollouts():
    """Mean returns agree with independent single-env rollouts within 4 standard errors."""
    state, gamma, n = (0.0, 0.3, 0.05, -0.2), 0.95, 400
    est = cartpole_values([state], gamma, rollouts=4000, seed=1)
    rng = np.random.default_rng(123)
    returns = [gym_return(state, rng.integers(0, 2, 500), gamma)[0] for _ in range(n)]
    ref_mean, ref_se = np.mean(returns), np.std(returns, ddof=1) / math.sqrt(n)
    se = math.hypot(ref_se, est.stderr[0])
    assert abs(est.values[0] - ref_mean) < 4 * se
    assert 0.02 < est.stderr[0] < 0.3 and est.cut_fraction == 0.0


def test_gamma_zero_and_horizon():
    est = cartpole_values([(0.0, 0.0, 0.0, 0.0)] * 2, 0.0, rollouts=5)
    assert np.all(est.values == 1.0) and np.allclose(est.stderr, 0.0)
    h = default_horizon(0.95)
    assert 0.95**h / 0.05 <= 1e-4 < 0.95 ** (h - 1) / 0.05
    with pytest.raises(ValueError, match=r"shape \(P, 4\)"):
        cartpole_values([(0.0, 0.0)], 0.9)
