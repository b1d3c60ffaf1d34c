"""MountainCar-v0's step as one compiled loop over the environments, for tensors on the CPU.

``TorchMountainCar``'s tensor form dispatches some 40 tensor operations per step: the right
form on a GPU, but on a CPU each eager operation costs microseconds of dispatch whatever N is
(about 50 us per step at N = 1 to 256).
``step_envs`` computes the same step (the equations in ``semigrad.envs.mountain_car``'s
docstring, in gymnasium's order of operations, with libm's cosine and no fast-math reordering)
environment by environment in a single loop compiled by numba (Lam, Pitrou & Seibert 2015),
reading and writing the tensors' own memory.

Both forms take the same random draws (the reserve of initial positions, drawn with the env's
``torch.Generator`` outside the loop), so they give the same episodes; the tests check that
they agree to 1e-12 and that both agree with gymnasium's MountainCar-v0.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from semigrad.envs.mountain_car_physics import (
    FORCE,
    GOAL_POSITION,
    GOAL_VELOCITY,
    GRAVITY,
    MAX_EPISODE_STEPS,
    MAX_POSITION,
    MAX_SPEED,
    MIN_POSITION,
)


@numba.njit(cache=True, nogil=True, error_model="numpy")
def step_envs(state, reserve, elapsed, actions, obs, final_obs, reward, terminated, truncated,
              episode_return, episode_length):  # pragma: no cover (compiled; tested via the env)
    """One step of N mountain cars with same-step reset; returns -1, or the index of the first
    action that is not 0, 1 or 2 (then nothing was written).

    In/out: ``state (2, N)`` float64 (rows position, velocity), ``elapsed (N,)`` int64 steps of
    each episode so far. In: ``reserve (N,)`` the next initial positions, ``actions (N,)``
    int64. Out: ``obs, final_obs (N, 2)``, ``reward (N,)``, ``terminated, truncated (N,)``
    bool, ``episode_return (N,)`` (NaN where the episode goes on), ``episode_length (N,)`` (0
    where it goes on).
    """
    n = actions.shape[0]
    for i in range(n):
        if actions[i] < 0 or actions[i] > 2:
            return i
    for i in range(n):
        position, velocity = state[0, i], state[1, i]
        velocity = velocity + ((actions[i] - 1) * FORCE + math.cos(3 * position) * (-GRAVITY))
        velocity = min(max(velocity, -MAX_SPEED), MAX_SPEED)
        position = min(max(position + velocity, MIN_POSITION), MAX_POSITION)
        if position == MIN_POSITION and velocity < 0:  # the left wall stops the car
            velocity = 0.0
        final_obs[i, 0], final_obs[i, 1] = position, velocity
        ended = position >= GOAL_POSITION and velocity >= GOAL_VELOCITY
        steps = elapsed[i] + 1
        cut = steps >= MAX_EPISODE_STEPS
        terminated[i], truncated[i], reward[i] = ended, cut, -1.0
        if ended or cut:  # -1 per step: the return is minus the length
            episode_length[i], episode_return[i], elapsed[i] = steps, -steps, 0
            position, velocity = reserve[i], 0.0
        else:
            episode_length[i], episode_return[i], elapsed[i] = 0, np.nan, steps
        state[0, i], state[1, i] = position, velocity
        obs[i, 0], obs[i, 1] = position, velocity
    return -1
