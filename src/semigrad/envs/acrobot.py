"""Acrobot-v1 as tensors: N acrobots stepped at once on any torch device.

The dynamics, constants, reward, termination and time limit are gymnasium's ``Acrobot-v1``
(``gymnasium.envs.classic_control.acrobot``, with its defaults ``book_or_nips="book"`` and no
torque noise), the task of Sutton (1996) and of Sutton & Barto (1998, 1st ed., Section 11.3 "The
Acrobot"; the case studies of the 2nd edition, 2018, Chapter 16, no longer include it), written
as batched tensor math with no Python loop over environments and no host<->device
synchronisation in ``step``. On the CPU the same step runs by default as one compiled loop
(``semigrad.envs.acrobot_kernel``); the constants of both are in
``semigrad.envs.acrobot_physics``.

- Two links of length ``l1 = l2 = 1``, mass ``m1 = m2 = 1``, centre of mass at ``lc1 = lc2 = 0.5``,
  moments of inertia ``I1 = I2 = 1``, ``g = 9.8``. State ``s = (theta1, theta2, dtheta1,
  dtheta2)``: ``theta1`` the angle of the first link from hanging straight down, ``theta2`` the
  second link's angle relative to the first. Action 0, 1, 2 applies torque ``a = -1, 0, +1`` at
  the joint between the links. The equations of motion (the book's, with the
  ``-m2 l1 lc2 dtheta1^2 sin(theta2)`` term that the NIPS paper omits)::

      d1     = m1 lc1^2 + m2 (l1^2 + lc2^2 + 2 l1 lc2 cos theta2) + I1 + I2
      d2     = m2 (lc2^2 + l1 lc2 cos theta2) + I2
      phi2   = m2 lc2 g cos(theta1 + theta2 - pi/2)
      phi1   = -m2 l1 lc2 dtheta2^2 sin theta2 - 2 m2 l1 lc2 dtheta2 dtheta1 sin theta2
               + (m1 lc1 + m2 l1) g cos(theta1 - pi/2) + phi2
      ddtheta2 = (a + d2/d1 phi1 - m2 l1 lc2 dtheta1^2 sin theta2 - phi2)
                 / (m2 lc2^2 + I2 - d2^2/d1)
      ddtheta1 = -(d2 ddtheta2 + phi1) / d1

- One step integrates ``ds/dt = (dtheta1, dtheta2, ddtheta1, ddtheta2)`` over ``dt = 0.2`` with
  one classical fourth-order Runge-Kutta step (``k1 .. k4``, ``s + dt/6 (k1 + 2 k2 + 2 k3 +
  k4)``, the torque held constant), then wraps both angles into ``[-pi, pi]`` (adding or
  subtracting whole turns ``2 pi``) and clips ``dtheta1`` to ``[-4 pi, 4 pi]`` and ``dtheta2``
  to ``[-9 pi, 9 pi]``. The operations come in gymnasium's order, so in float64 one step of
  ours and one of gymnasium's from the same state agree to rounding, 1e-12 at most
  (``tests/test_classic_envs.py``); not always to the bit (gymnasium squares with ``pow``,
  torch's sine and cosine differ from libm's by an ulp at times), and the acrobot is chaotic,
  so two trajectories from the same start drift apart over a few hundred steps.
- Terminated when the free end is more than one link length above the fixed joint,
  ``-cos(theta1) - cos(theta1 + theta2) > 1``; reward -1 on every step except 0 on the step that
  terminates; truncated when the episode reaches 500 steps (both flags can be set on the same
  step, as with gymnasium's ``TimeLimit``). Observation ``(cos theta1, sin theta1, cos theta2,
  sin theta2, dtheta1, dtheta2)``. Initial state uniform in ``[-0.1, 0.1)^4``.

The state is kept in ``dtype`` (float64 by default, as gymnasium computes in float64), and
observations are returned in ``obs_dtype`` (float32 by default, as gymnasium returns them).

Randomness: one ``torch.Generator`` on the env's device, seeded with ``seed`` (a fresh random
seed when ``None``), draws every initial state, so the same seed gives the same episodes on the
same device. This stream is not gymnasium's NumPy one: a given seed gives other initial states
than ``gymnasium.make("Acrobot-v1").reset(seed=seed)`` (and gymnasium rounds its initial
states to float32; ours are drawn in ``dtype``); the distribution is the same. As in
``semigrad.envs.cartpole``, each environment holds one *reserve* initial state, drawn in
advance, that an automatic reset takes, and one of its four components is redrawn for all
environments after each step (component ``k mod 4`` after step ``k``; the draw comes last so
that a step refused for bad actions changes nothing). No episode started in the initial box
ends within 8 steps: over all 3^8 action sequences from the box's corners and points inside,
the free end is still more than 1.7 below the fixed joint after 8 steps, far from the goal 1
above it (``tests/test_classic_envs.py``; good policies take some 60 steps or more). So the
whole reserve is redrawn between two automatic resets of an environment, and every episode
starts from a fresh, independent draw.
"""

from __future__ import annotations

import math

import torch

from semigrad.envs.acrobot_physics import (
    DT,
    GRAVITY,
    INIT_HIGH,
    INIT_LOW,
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
from semigrad.envs.base import EnvSpec, TensorStateEnv, compiled_step

# The reserve of initial states is redrawn one component (row) per step, so all of it every 4
# steps: at most the shortest episode from the initial box (tests/test_classic_envs.py).
RESERVE_REFRESH_STEPS = 4

SPEC = EnvSpec(
    id="Acrobot-v1",
    obs_dim=6,
    num_actions=3,
    reward_threshold=-100.0,
    max_episode_steps=MAX_EPISODE_STEPS,
    backend="torch",
)


def derivatives(y: torch.Tensor, torque: torch.Tensor) -> torch.Tensor:
    """``ds/dt (4, N)`` at states ``y (4, N)`` under ``torque (N,)`` (the module docstring's
    equations, written in gymnasium's order of operations)."""
    theta1, theta2, dtheta1, dtheta2 = y.unbind(0)
    m1, m2, l1 = LINK_MASS_1, LINK_MASS_2, LINK_LENGTH_1
    lc1, lc2, i1, i2, g = LINK_COM_POS_1, LINK_COM_POS_2, LINK_MOI, LINK_MOI, GRAVITY
    cos2, sin2 = torch.cos(theta2), torch.sin(theta2)
    d1 = m1 * lc1**2 + m2 * (l1**2 + lc2**2 + 2 * l1 * lc2 * cos2) + i1 + i2
    d2 = m2 * (lc2**2 + l1 * lc2 * cos2) + i2
    phi2 = m2 * lc2 * g * torch.cos(theta1 + theta2 - math.pi / 2.0)
    phi1 = (-m2 * l1 * lc2 * dtheta2**2 * sin2
            - 2 * m2 * l1 * lc2 * dtheta2 * dtheta1 * sin2
            + (m1 * lc1 + m2 * l1) * g * torch.cos(theta1 - math.pi / 2)
            + phi2)
    ddtheta2 = ((torque + d2 / d1 * phi1 - m2 * l1 * lc2 * dtheta1**2 * sin2 - phi2)
                / (m2 * lc2**2 + i2 - d2**2 / d1))
    ddtheta1 = -(d2 * ddtheta2 + phi1) / d1
    return torch.stack((dtheta1, dtheta2, ddtheta1, ddtheta2))


def wrap_angle(x: torch.Tensor) -> torch.Tensor:
    """``x`` moved into ``[-pi, pi]`` by whole turns, as gymnasium's ``wrap`` (which subtracts
    or adds ``2 pi`` until it gets there) with the number of turns computed at once."""
    turn = 2 * math.pi
    turns = torch.where(x > math.pi, torch.ceil((x - math.pi) / turn),
                        torch.where(x < -math.pi, -torch.ceil((-math.pi - x) / turn), 0.0))
    return x - turns * turn


def rk4_step(state: torch.Tensor, torque: torch.Tensor) -> torch.Tensor:
    """One Runge-Kutta step of ``dt`` from ``state (4, N)``, angles wrapped and velocities
    clipped -> the next state ``(4, N)``."""
    half = DT / 2.0
    k1 = derivatives(state, torque)
    k2 = derivatives(state + half * k1, torque)
    k3 = derivatives(state + half * k2, torque)
    k4 = derivatives(state + DT * k3, torque)
    y = state + DT / 6.0 * (k1 + 2 * k2 + 2 * k3 + k4)
    return torch.stack((wrap_angle(y[0]), wrap_angle(y[1]),
                        y[2].clamp(-MAX_VEL_1, MAX_VEL_1), y[3].clamp(-MAX_VEL_2, MAX_VEL_2)))


class TorchAcrobot(TensorStateEnv):
    """N independent Acrobot-v1 environments as ``(4, N)`` state tensors on ``device``.

    Interface of ``semigrad.envs.base``: ``reset() -> obs (N, 6)``; ``step(actions (N,) int64
    in {0, 1, 2}) -> obs (N, 6), reward (N,) float32, terminated (N,) bool, truncated (N,)
    bool, info`` with same-step automatic reset and ``info["final_obs"] (N, 6)``,
    ``info["episode_return"] (N,)``, ``info["episode_length"] (N,)``.

    ``state`` / ``set_state`` read and write the exact ``(N, 4)`` state ``(theta1, theta2,
    dtheta1, dtheta2)`` in ``dtype``. ``compiled``: step with ``acrobot_kernel.step_envs`` (one
    compiled loop, the fast form on a CPU) instead of tensor operations; default (None): on the
    CPU with a float64 state.
    """

    render_fps = 15  # gymnasium's metadata["render_fps"]

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
        # structure of arrays: row k of a (4, N) state is component k of every environment
        self._state = torch.zeros(4, num_envs, dtype=dtype, device=self.device)
        self._reserve = torch.zeros_like(self._state)
        self._reserve_rows = self._reserve.unbind(0)
        self._torques = torch.tensor(TORQUES, dtype=dtype, device=self.device)
        self._kernel = compiled_step(_step_kernel, compiled, self.spec.id, self.device, dtype,
                                     obs_dtype)
        if self._kernel is not None:  # NumPy views of the buffers the loop updates in place
            self._arrays = (self._state.numpy(), self._reserve.numpy(), self._elapsed.numpy())

    def _obs(self, state: torch.Tensor) -> torch.Tensor:
        """``(4, N)`` state -> ``(N, 6)`` observations ``(cos, sin theta1, cos, sin theta2,
        dtheta1, dtheta2)`` in ``obs_dtype``."""
        theta1, theta2, dtheta1, dtheta2 = state.unbind(0)
        obs = torch.stack((theta1.cos(), theta1.sin(), theta2.cos(), theta2.sin(),
                           dtheta1, dtheta2), dim=1)
        return obs.to(self.obs_dtype)

    @property
    def state(self) -> torch.Tensor:
        """A copy of the state ``(N, 4)`` = ``(theta1, theta2, dtheta1, dtheta2)`` in ``dtype``."""
        return self._state.T.clone(memory_format=torch.contiguous_format)

    def _draw(self, out: torch.Tensor) -> torch.Tensor:
        return out.uniform_(INIT_LOW, INIT_HIGH, generator=self._generator)

    def reset(self) -> torch.Tensor:
        """Start a new episode in every environment -> obs ``(N, 6)`` in ``obs_dtype``."""
        self._draw(self._state)
        self._draw(self._reserve)
        self._elapsed.zero_()
        self._ready = True
        return self._obs(self._state)

    def _refresh_reserve(self) -> None:
        self._draw(self._reserve_rows[self._steps % RESERVE_REFRESH_STEPS])

    def _step_loop(self, actions: torch.Tensor):
        """``step`` by ``acrobot_kernel.step_envs`` on the tensors' memory."""
        return self._run_kernel(actions, "0, 1 or 2")

    def _step_tensors(self, actions: torch.Tensor):
        """``step`` as batched tensor operations (any device)."""
        try:
            torque = self._torques.index_select(0, actions)
        except (IndexError, RuntimeError) as err:
            raise ValueError(
                f"Acrobot-v1.step: actions must be 0, 1 or 2 on {self.device}: {err}"
            ) from err
        next_state = rk4_step(self._state, torque)
        theta1, theta2 = next_state[0], next_state[1]
        terminated = -torch.cos(theta1) - torch.cos(theta2 + theta1) > 1.0
        elapsed = self._elapsed.add_(1)
        truncated = elapsed >= MAX_EPISODE_STEPS
        done = terminated | truncated
        # -1 per step, 0 on the terminating one
        reward = terminated.to(torch.float32) - 1.0
        episode_length = elapsed * done
        episode_return = torch.where(done, terminated.long() - episode_length, torch.nan)
        elapsed.masked_fill_(done, 0)
        torch.where(done, self._reserve, next_state, out=self._state)
        info = {
            "final_obs": self._obs(next_state),
            "episode_return": episode_return.to(torch.float32),
            "episode_length": episode_length,
        }
        return self._obs(self._state), reward, terminated, truncated, info


def _step_kernel():
    """The compiled CPU step (needs numba)."""
    import semigrad.envs.acrobot_kernel as acrobot_kernel

    return acrobot_kernel.step_envs

