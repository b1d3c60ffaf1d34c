"""Acrobot-v1's step as one compiled loop over the environments, for tensors on the CPU.

``TorchAcrobot``'s tensor form dispatches some 270 tensor operations per step (four evaluations
of the equations of motion for the Runge-Kutta step, views included): the right form on a GPU,
where one launch serves all N environments, but on a CPU each eager operation costs microseconds
of dispatch whatever N is (about 400 us per step at N = 1 to 256). ``step_envs`` computes the
same step (the equations in ``semigrad.envs.acrobot``'s docstring, in gymnasium's order of
operations, with libm's sine and cosine and no fast-math reordering) environment by environment
in a single loop compiled by numba (Lam, Pitrou & Seibert 2015), reading and writing the
tensors' own memory.

Both forms take the same random draws (the reserve of initial states, drawn with the env's
``torch.Generator`` outside the loop), so they give the same episodes; the tests check that
they agree to 1e-12 and that both agree with gymnasium's Acrobot-v1.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from semigrad.envs.acrobot_physics import (
    DT,
    GRAVITY,
    LINK_COM_POS_1,
    LINK_COM_POS_2,
    LINK_LENGTH_1,
    LINK_MASS_1,
    LINK_MASS_2,
    LINK_MOI,
    MAX_EPISODE_STEPS,
    MAX_VEL_1,
    MAX_VEL_2,
    TORQUES,
)


@numba.njit(inline="always")
def derivatives(theta1, theta2, dtheta1, dtheta2, torque):  # pragma: no cover (compiled)
    """``ds/dt = (dtheta1, dtheta2, ddtheta1, ddtheta2)`` of one acrobot."""
    m1, m2, l1 = LINK_MASS_1, LINK_MASS_2, LINK_LENGTH_1
    lc1, lc2, i1, i2, g = LINK_COM_POS_1, LINK_COM_POS_2, LINK_MOI, LINK_MOI, GRAVITY
    cos2, sin2 = math.cos(theta2), math.sin(theta2)
    d1 = m1 * lc1**2 + m2 * (l1**2 + lc2**2 + 2 * l1 * lc2 * cos2) + i1 + i2
    d2 = m2 * (lc2**2 + l1 * lc2 * cos2) + i2
    phi2 = m2 * lc2 * g * math.cos(theta1 + theta2 - math.pi / 2.0)
    phi1 = (-m2 * l1 * lc2 * dtheta2**2 * sin2
            - 2 * m2 * l1 * lc2 * dtheta2 * dtheta1 * sin2
            + (m1 * lc1 + m2 * l1) * g * math.cos(theta1 - math.pi / 2)
            + phi2)
    ddtheta2 = ((torque + d2 / d1 * phi1 - m2 * l1 * lc2 * dtheta1**2 * sin2 - phi2)
                / (m2 * lc2**2 + i2 - d2**2 / d1))
    ddtheta1 = -(d2 * ddtheta2 + phi1) / d1
    return dtheta1, dtheta2, ddtheta1, ddtheta2


@numba.njit(inline="always")
def wrap_angle(x):  # pragma: no cover (compiled)
    """``x`` moved into ``[-pi, pi]`` by whole turns of ``2 pi``, one at a time."""
    turn = math.pi - (-math.pi)
    while x > math.pi:
        x = x - turn
    while x < -math.pi:
        x = x + turn
    return x


@numba.njit(cache=True, nogil=True, error_model="numpy")
def step_envs(state, reserve, elapsed, actions, obs, final_obs, reward, terminated, truncated,
              episode_return, episode_length):  # pragma: no cover (compiled; tested via the env)
    """One step of N acrobots with same-step reset; returns -1, or the index of the first
    action that is not 0, 1 or 2 (then nothing was written).

    In/out: ``state (4, N)`` float64 (rows theta1, theta2, dtheta1, dtheta2), ``elapsed (N,)``
    int64 steps of each episode so far. In: ``reserve (4, N)`` the next initial states,
    ``actions (N,)`` int64. Out: ``obs, final_obs (N, 6)``, ``reward (N,)``, ``terminated,
    truncated (N,)`` bool, ``episode_return (N,)`` (NaN where the episode goes on),
    ``episode_length (N,)`` (0 where it goes on).
    """
    n = actions.shape[0]
    for i in range(n):
        if actions[i] < 0 or actions[i] > 2:
            return i
    half = DT / 2.0
    sixth = DT / 6.0
    for i in range(n):
        torque = TORQUES[actions[i]]
        y0, y1, y2, y3 = state[0, i], state[1, i], state[2, i], state[3, i]
        # classical Runge-Kutta: four slopes, then their weighted mean
        a0, a1, a2, a3 = derivatives(y0, y1, y2, y3, torque)
        b0, b1, b2, b3 = derivatives(y0 + half * a0, y1 + half * a1, y2 + half * a2,
                                     y3 + half * a3, torque)
        c0, c1, c2, c3 = derivatives(y0 + half * b0, y1 + half * b1, y2 + half * b2,
                                     y3 + half * b3, torque)
        d0, d1, d2, d3 = derivatives(y0 + DT * c0, y1 + DT * c1, y2 + DT * c2, y3 + DT * c3,
                                     torque)
        theta1 = wrap_angle(y0 + sixth * (a0 + 2 * b0 + 2 * c0 + d0))
        theta2 = wrap_angle(y1 + sixth * (a1 + 2 * b1 + 2 * c1 + d1))
        dtheta1 = min(max(y2 + sixth * (a2 + 2 * b2 + 2 * c2 + d2), -MAX_VEL_1), MAX_VEL_1)
        dtheta2 = min(max(y3 + sixth * (a3 + 2 * b3 + 2 * c3 + d3), -MAX_VEL_2), MAX_VEL_2)
        cos1, sin1 = math.cos(theta1), math.sin(theta1)
        cos2, sin2 = math.cos(theta2), math.sin(theta2)
        final_obs[i, 0], final_obs[i, 1], final_obs[i, 2] = cos1, sin1, cos2
        final_obs[i, 3], final_obs[i, 4], final_obs[i, 5] = sin2, dtheta1, dtheta2
        # the free end more than one link length above the fixed joint
        ended = -cos1 - math.cos(theta2 + theta1) > 1.0
        steps = elapsed[i] + 1
        cut = steps >= MAX_EPISODE_STEPS
        terminated[i], truncated[i] = ended, cut
        reward[i] = 0.0 if ended else -1.0
        if ended or cut:  # -1 per step but 0 on a terminating one
            episode_length[i], elapsed[i] = steps, 0
            episode_return[i] = -steps + 1 if ended else -steps
            theta1, theta2 = reserve[0, i], reserve[1, i]
            dtheta1, dtheta2 = reserve[2, i], reserve[3, i]
            cos1, sin1 = math.cos(theta1), math.sin(theta1)
            cos2, sin2 = math.cos(theta2), math.sin(theta2)
        else:
            episode_length[i], episode_return[i], elapsed[i] = 0, np.nan, steps
        state[0, i], state[1, i], state[2, i], state[3, i] = theta1, theta2, dtheta1, dtheta2
        obs[i, 0], obs[i, 1], obs[i, 2] = cos1, sin1, cos2
        obs[i, 3], obs[i, 4], obs[i, 5] = sin2, dtheta1, dtheta2
    return -1
