"""CartPole-v1's step as one compiled loop over the environments, for tensors on the CPU.

``TorchCartPole`` writes a step as some 25 batched tensor operations: the right form on a GPU,
where one kernel launch serves all N environments. On a CPU each eager PyTorch operation costs
2-4 us of dispatch whatever N is, so a step of 1 to 64 environments takes 70-100 us, most of it
overhead. ``step_envs`` computes the same step (the equations in ``semigrad.envs.cartpole``'s
docstring) environment by environment in a single loop compiled to machine code by numba (Lam,
Pitrou & Seibert 2015), reading and writing the tensors' own memory (``Tensor.numpy()`` views,
no copies): about 20 us per step for N = 1 to 64 (``benchmarks/env_speed.py``).

Both forms take the same random draws (the reserve of initial states, drawn with the env's
``torch.Generator`` outside the loop), so they give the same episodes; the tests check that
they agree to 1e-12 and that both agree with gymnasium's CartPole-v1.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from semigrad.envs.cartpole_physics import (
    FORCE_MAG,
    GRAVITY,
    HALF_LENGTH,
    MASS_POLE,
    MAX_EPISODE_STEPS,
    POLEMASS_LENGTH,
    TAU,
    THETA_THRESHOLD,
    TOTAL_MASS,
    X_THRESHOLD,
)

# Taylor coefficients of sin (t^3 .. t^11) and cos (t^2 .. t^12): for |t| < 0.25 the first
# omitted terms are below 1e-17, so these polynomials are as exact as libm's sin and cos (to
# an ulp, checked in tests/test_cartpole.py) at a third of the cost; the pole angle of a
# running episode stays within 12 degrees (0.21) plus one step.
SIN = tuple((-1) ** k / math.factorial(2 * k + 1) for k in range(1, 6))
COS = tuple((-1) ** k / math.factorial(2 * k) for k in range(1, 7))
SMALL_ANGLE = 0.25
INV_TOTAL_MASS = 1.0 / TOTAL_MASS


@numba.njit(inline="always")
def sin_cos(t):  # pragma: no cover (compiled)
    """``(sin t, cos t)``: polynomials for ``|t| < SMALL_ANGLE``, libm beyond."""
    if abs(t) >= SMALL_ANGLE:
        return math.sin(t), math.cos(t)
    u = t * t
    s = t + t * u * (SIN[0] + u * (SIN[1] + u * (SIN[2] + u * (SIN[3] + u * SIN[4]))))
    c = 1.0 + u * (COS[0] + u * (COS[1] + u * (COS[2] + u * (COS[3] + u * (COS[4]
                                                                           + u * COS[5])))))
    return s, c


@numba.njit(cache=True, nogil=True, error_model="numpy",
           fastmath={"contract", "reassoc", "nsz", "arcp"})
def step_envs(state, reserve, elapsed, actions, obs, final_obs, reward, terminated, truncated,
              episode_return, episode_length):  # pragma: no cover (compiled; tested via the env)
    """One step of N cart-poles with same-step reset; returns -1, or the index of the first
    action that is not 0 or 1 (then nothing was written).

    In/out: ``state (4, N)`` float64 (rows x, x_dot, theta, theta_dot), ``elapsed (N,)`` int64
    steps of each episode so far. In: ``reserve (4, N)`` the next initial states, ``actions
    (N,)`` int64. Out: ``obs, final_obs (N, 4)``, ``reward (N,)``, ``terminated, truncated
    (N,)`` bool, ``episode_return (N,)`` (NaN where the episode goes on), ``episode_length
    (N,)`` (0 where it goes on).
    """
    n = actions.shape[0]
    for i in range(n):
        if actions[i] != 0 and actions[i] != 1:
            return i
    for i in range(n):
        x, x_dot, theta, theta_dot = state[0, i], state[1, i], state[2, i], state[3, i]
        force = FORCE_MAG if actions[i] == 1 else -FORCE_MAG
        sin, cos = sin_cos(theta)
        temp = (force + POLEMASS_LENGTH * theta_dot * theta_dot * sin) * INV_TOTAL_MASS
        theta_acc = (GRAVITY * sin - cos * temp) / (
            HALF_LENGTH * (4.0 / 3.0 - MASS_POLE * cos * cos * INV_TOTAL_MASS))
        x_acc = temp - POLEMASS_LENGTH * theta_acc * cos * INV_TOTAL_MASS
        # explicit Euler: positions move with the old velocities
        x, x_dot = x + TAU * x_dot, x_dot + TAU * x_acc
        theta, theta_dot = theta + TAU * theta_dot, theta_dot + TAU * theta_acc
        final_obs[i, 0], final_obs[i, 1] = x, x_dot
        final_obs[i, 2], final_obs[i, 3] = theta, theta_dot
        ended = abs(x) > X_THRESHOLD or abs(theta) > THETA_THRESHOLD
        steps = elapsed[i] + 1
        cut = steps >= MAX_EPISODE_STEPS
        terminated[i], truncated[i], reward[i] = ended, cut, 1.0
        if ended or cut:  # CartPole pays 1 per step: the return is the length
            episode_length[i], episode_return[i], elapsed[i] = steps, steps, 0
            x, x_dot, theta, theta_dot = reserve[0, i], reserve[1, i], reserve[2, i], reserve[3, i]
        else:
            episode_length[i], episode_return[i], elapsed[i] = 0, np.nan, steps
        state[0, i], state[1, i], state[2, i], state[3, i] = x, x_dot, theta, theta_dot
        obs[i, 0], obs[i, 1], obs[i, 2], obs[i, 3] = x, x_dot, theta, theta_dot
    return -1
