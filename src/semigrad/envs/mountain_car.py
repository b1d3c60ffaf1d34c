"""MountainCar-v0 as tensors: N mountain cars stepped at once on any torch device.

The dynamics, constants, reward, termination and time limit are gymnasium's ``MountainCar-v0``
(``gymnasium.envs.classic_control.mountain_car``), the task of Moore (1990) as given by Sutton
& Barto (2018, 2nd ed., Example 10.1 "Mountain Car Task"), written as batched tensor math with
no Python loop over environments and no host<->device synchronisation in ``step``. On the CPU
the same step runs by default as one compiled loop (``semigrad.envs.mountain_car_kernel``);
the constants of both are in ``semigrad.envs.mountain_car_physics``.

- State ``s = (x, v)``: the car's position on the curve ``sin(3 x)`` and its velocity. Action 0,
  1, 2 accelerates left, not at all, right. One step, in this order::

      v' = clip(v + (action - 1) 0.001 - 0.0025 cos(3 x), -0.07, 0.07)
      x' = clip(x + v', -1.2, 0.6)
      v' = 0   if x' = -1.2 and v' < 0          (the left wall stops the car)

  (gymnasium computes the velocity change as ``(action - 1) * 0.001 + cos(3 x) * (-0.0025)``;
  so do both forms here, so that in float64 they agree to rounding.)
- Reward -1 on every step; terminated when ``x' >= 0.5`` and ``v' >= 0`` (the goal on the
  right hilltop); truncated when the episode reaches 200 steps (both flags can be set on the
  same step, as with gymnasium's ``TimeLimit``). Observation ``(x, v)``. Initial state ``x``
  uniform in ``[-0.6, -0.4)``, ``v = 0``.

The state is kept in ``dtype`` (float64 by default, as gymnasium computes in float64), and
observations are returned in ``obs_dtype`` (float32 by default, as gymnasium returns them).

Randomness: one ``torch.Generator`` on the env's device, seeded with ``seed`` (a fresh random
seed when ``None``), draws every initial position, so the same seed gives the same episodes on
the same device. This stream is not gymnasium's NumPy one: a given seed gives other initial
positions than ``gymnasium.make("MountainCar-v0").reset(seed=seed)``; the distribution is the
same. As in ``semigrad.envs.cartpole``, each environment holds one *reserve* initial position,
drawn in advance, that an automatic reset takes; the whole reserve is redrawn after every
``RESERVE_REFRESH_STEPS = 8``-th step (the draw comes last, so that a step refused for bad
actions changes nothing). An episode cannot end sooner than 13 steps (the car moves at most
0.07 per step and must go from ``x < -0.4`` to ``x >= 0.5``; the time limit is 200), so the
reserve is redrawn between two automatic resets of an environment, and every episode starts
from a fresh, independent draw.
"""

from __future__ import annotations

import torch

from semigrad.envs.base import EnvSpec, TensorStateEnv, compiled_step
from semigrad.envs.mountain_car_physics import (
    FORCE,
    GOAL_POSITION,
    GOAL_VELOCITY,
    GRAVITY,
    INIT_HIGH,
    INIT_LOW,
    MAX_EPISODE_STEPS,
    MAX_POSITION,
    MAX_SPEED,
    MIN_POSITION,
)

# The reserve of initial positions is redrawn whole every 8 steps: at most the shortest
# episode, ceil((GOAL_POSITION - INIT_HIGH) / MAX_SPEED) = 13 steps.
RESERVE_REFRESH_STEPS = 8

SPEC = EnvSpec(
    id="MountainCar-v0",
    obs_dim=2,
    num_actions=3,
    reward_threshold=-110.0,
    max_episode_steps=MAX_EPISODE_STEPS,
    backend="torch",
)


class TorchMountainCar(TensorStateEnv):
    """N independent MountainCar-v0 environments as ``(2, N)`` state tensors on ``device``.

    Interface of ``semigrad.envs.base``: ``reset() -> obs (N, 2)``; ``step(actions (N,) int64
    in {0, 1, 2}) -> obs (N, 2), reward (N,) float32, terminated (N,) bool, truncated (N,)
    bool, info`` with same-step automatic reset and ``info["final_obs"] (N, 2)``,
    ``info["episode_return"] (N,)``, ``info["episode_length"] (N,)``.

    ``state`` / ``set_state`` read and write the exact ``(N, 2)`` state ``(position,
    velocity)`` in ``dtype``. ``compiled``: step with ``mountain_car_kernel.step_envs`` (one
    compiled loop, the fast form on a CPU) instead of tensor operations; default (None): on the
    CPU with a float64 state.
    """

    render_fps = 30  # gymnasium's metadata["render_fps"]

    spec = SPEC

    def __init__(
        self,
        num_envs: int = 1,
        device: str | torch.device | None = None,
        seed: int | None = None,
        dtype: torch.dtype = torch.float64,
        obs_dtype: torch.dtype = torch.float32,
        compiled: bool | None = None,
    ) -> None:
        self._init_common(num_envs, device, seed, dtype, obs_dtype)
        # structure of arrays: rows position and velocity of every environment
        self._state = torch.zeros(2, num_envs, dtype=dtype, device=self.device)
        self._reserve = torch.zeros(num_envs, dtype=dtype, device=self.device)  # positions
        # (action - 1) * FORCE for actions 0, 1, 2
        self._push = torch.tensor([-FORCE, 0.0, FORCE], dtype=dtype, device=self.device)
        self._kernel = compiled_step(_step_kernel, compiled, self.spec.id, self.device, dtype,
                                     obs_dtype)
        if self._kernel is not None:  # NumPy views of the buffers the loop updates in place
            self._arrays = (self._state.numpy(), self._reserve.numpy(), self._elapsed.numpy())

    def _obs(self, state: torch.Tensor) -> torch.Tensor:
        """``(2, N)`` state -> ``(N, 2)`` contiguous observations in ``obs_dtype`` (a copy)."""
        return state.T.to(self.obs_dtype, memory_format=torch.contiguous_format, copy=True)

    @property
    def state(self) -> torch.Tensor:
        """A copy of the state ``(N, 2)`` = ``(position, velocity)`` in ``dtype``."""
        return self._state.T.clone(memory_format=torch.contiguous_format)

    def _draw(self, out: torch.Tensor) -> torch.Tensor:
        return out.uniform_(INIT_LOW, INIT_HIGH, generator=self._generator)

    def reset(self) -> torch.Tensor:
        """Start a new episode in every environment -> obs ``(N, 2)`` in ``obs_dtype``."""
        self._draw(self._state[0])
        self._state[1].zero_()
        self._draw(self._reserve)
        self._elapsed.zero_()
        self._ready = True
        return self._obs(self._state)

    def _refresh_reserve(self) -> None:
        if self._steps % RESERVE_REFRESH_STEPS == 0:
            self._draw(self._reserve)

    def _step_loop(self, actions: torch.Tensor):
        """``step`` by ``mountain_car_kernel.step_envs`` on the tensors' memory."""
        return self._run_kernel(actions, "0, 1 or 2")

    def _step_tensors(self, actions: torch.Tensor):
        """``step`` as batched tensor operations (any device)."""
        try:
            push = self._push.index_select(0, actions)
        except (IndexError, RuntimeError) as err:
            raise ValueError(
                f"MountainCar-v0.step: actions must be 0, 1 or 2 on {self.device}: {err}"
            ) from err
        position, velocity = self._state.unbind(0)
        velocity = velocity + (push + torch.cos(3 * position) * (-GRAVITY))
        velocity = velocity.clamp(-MAX_SPEED, MAX_SPEED)
        position = (position + velocity).clamp(MIN_POSITION, MAX_POSITION)
        velocity = velocity.masked_fill((position == MIN_POSITION) & (velocity < 0), 0.0)
        terminated = (position >= GOAL_POSITION) & (velocity >= GOAL_VELOCITY)
        next_state = torch.stack((position, velocity))

        elapsed = self._elapsed.add_(1)
        truncated = elapsed >= MAX_EPISODE_STEPS
        done = terminated | truncated
        # -1 per step: a finished episode's return is minus its length
        episode_length = elapsed * done
        episode_return = torch.where(done, -episode_length, torch.nan).to(torch.float32)
        elapsed.masked_fill_(done, 0)
        # a new episode starts at a reserve position, at rest
        torch.where(done, self._reserve, position, out=self._state[0])
        self._state[1].copy_(velocity).masked_fill_(done, 0.0)
        reward = torch.full((self.num_envs,), -1.0, dtype=torch.float32, device=self.device)
        info = {
            "final_obs": self._obs(next_state),
            "episode_return": episode_return,
            "episode_length": episode_length,
        }
        return self._obs(self._state), reward, terminated, truncated, info


def _step_kernel():
    """The compiled CPU step (needs numba)."""
    import semigrad.envs.mountain_car_kernel as mountain_car_kernel

    return mountain_car_kernel.step_envs

