"""CartPole-v1 as tensors: N cart-poles stepped at once on any torch device.

The dynamics, constants, thresholds, reward and time limit are gymnasium's ``CartPole-v1``
(Barto, Sutton & Anderson 1983; Sutton & Barto 2018, Example 3.4), written as batched tensor
math with no Python loop over environments and no host<->device synchronisation in ``step``
(on the CPU, where eager tensor operations cost more in dispatch than in arithmetic, the same
step runs by default as one compiled loop, ``semigrad.envs.cartpole_kernel``; the constants
of both are in ``semigrad.envs.cartpole_physics``):

- state ``s = (x, x_dot, theta, theta_dot)``, action 0 pushes left and 1 right with
  ``F = -10`` / ``+10`` N; with ``M = m_cart + m_pole`` and ``l`` the half pole length::

      temp       = (F + m_pole l theta_dot^2 sin(theta)) / M
      theta_acc  = (g sin(theta) - cos(theta) temp) / (l (4/3 - m_pole cos(theta)^2 / M))
      x_acc      = temp - m_pole l theta_acc cos(theta) / M
      s'         = s + tau (x_dot, x_acc, theta_dot, theta_acc)        (explicit Euler)

- reward 1 on every step, the last included; terminated when ``|x'| > 2.4`` or
  ``|theta'| > 12 degrees``; truncated when the episode reaches 500 steps (both flags can be
  set on the same step, as with gymnasium's ``TimeLimit``); initial state uniform in
  ``[-0.05, 0.05)^4``.

The state is kept in ``dtype`` (float64 by default, as gymnasium computes in float64), and
observations are returned in ``obs_dtype`` (float32 by default, as gymnasium returns them).

Randomness: one ``torch.Generator`` on the env's device, seeded with ``seed`` (a fresh random
seed when ``None``), draws every initial state, so the same seed gives the same episodes on
the same device (the stream differs from gymnasium's NumPy one). Drawing N new states on every
step would cost more than the dynamics, and drawing only for the finished episodes needs a
host<->device sync; instead each environment holds one *reserve* initial state, drawn in
advance, that an automatic reset takes, and one of the four state components of the reserve
is redrawn for all environments after each step (component ``k mod 4`` after step ``k``; the
draw comes last so that a step refused for bad actions changes nothing). No episode started
in the initial box ends in fewer than 8 steps (checked exhaustively in
``tests/test_cartpole.py``), so the whole reserve is redrawn between two automatic resets of
an environment, and every episode starts from a fresh, independent uniform draw.

``start_box`` widens the initial states to a uniform box of half-widths ``(x, x_dot, theta,
theta_dot)`` (exploring starts: for prediction, ``v_pi`` is the same whatever the start
distribution, and wide starts put training data where the policy seldom goes). Episodes from a
wide box can end after one step, so then the whole reserve is redrawn on every step.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from semigrad.envs.base import EnvSpec, TensorStateEnv, compiled_step
from semigrad.envs.cartpole_physics import (
    FORCE_MAG,
    GRAVITY,
    HALF_LENGTH,
    INIT_HIGH,
    INIT_LOW,
    MASS_POLE,
    MAX_EPISODE_STEPS,
    POLEMASS_LENGTH,
    TAU,
    THETA_THRESHOLD,
    TOTAL_MASS,
    X_THRESHOLD,
)
from semigrad.seeding import AgentUniforms

# The reserve of initial states is redrawn one component (row) per step, so all of it every 4
# steps: at most the shortest episode from the initial box (8 steps).
RESERVE_REFRESH_STEPS = 4

SPEC = EnvSpec(
    id="CartPole-v1",
    obs_dim=4,
    num_actions=2,
    reward_threshold=475.0,
    max_episode_steps=MAX_EPISODE_STEPS,
    backend="torch",
)


def check_start_box(box) -> tuple[float, float, float, float] | None:
    """Validate start-box half-widths ``(x, x_dot, theta, theta_dot)``; None keeps +-0.05."""
    if box is None:
        return None
    try:
        values = tuple(float(v) for v in box)
    except (TypeError, ValueError):
        values = ()
    if len(values) != 4 or not all(0 < v < math.inf for v in values):
        raise ValueError("start_box: expected 4 positive half-widths (x, x_dot, theta, "
                         f"theta_dot), e.g. (2.4, 3, 0.2, 3); got {box!r}")
    box = values
    if box[0] > X_THRESHOLD or box[2] > THETA_THRESHOLD:
        raise ValueError(f"start_box: x and theta half-widths must be <= {X_THRESHOLD} and "
                         f"{THETA_THRESHOLD:.4f} (12 degrees), else episodes start terminated; "
                         f"got x {box[0]:g}, theta {box[2]:g}")
    return box


class TorchCartPole(TensorStateEnv):
    """N independent CartPole-v1 environments as ``(N, 4)`` tensors on ``device``.

    Interface of ``semigrad.envs.base``: ``reset() -> obs (N, 4)``; ``step(actions (N,)
    int64 in {0, 1}) -> obs (N, 4), reward (N,) float32, terminated (N,) bool, truncated (N,)
    bool, info`` with same-step automatic reset and ``info["final_obs"] (N, 4)``,
    ``info["episode_return"] (N,)``, ``info["episode_length"] (N,)``.

    ``state`` / ``set_state`` read and write the exact ``(N, 4)`` state in ``dtype`` (for
    parity tests and Monte Carlo rollouts from given states). ``start_box`` (half-widths of
    ``(x, x_dot, theta, theta_dot)``) replaces the initial box ``[-0.05, 0.05)^4``.
    ``compiled``: step with ``cartpole_kernel.step_envs`` (one compiled loop, the fast form on
    a CPU) instead of tensor operations; default (None): on the CPU with a float64 state.
    """

    render_fps = 50  # gymnasium's metadata["render_fps"]

    spec = SPEC

    def __init__(
        self,
        num_envs: int = 1,
        device: str | torch.device | None = None,
        seed: int | None = None,
        dtype: torch.dtype = torch.float64,
        obs_dtype: torch.dtype = torch.float32,
        start_box: tuple[float, float, float, float] | None = None,
        compiled: bool | None = None,
    ) -> None:
        box = check_start_box(start_box)
        self._init_common(num_envs, device, seed, dtype, obs_dtype)

        def buffer(*shape: int) -> torch.Tensor:
            return torch.zeros(shape, dtype=dtype, device=self.device)

        # Structure of arrays: row k of a (4, N) state is component k of every environment,
        # contiguous; observations are its transpose. The views below are made once.
        self._state = buffer(4, num_envs)
        self._position, self._velocity = self._state[0::2], self._state[1::2]  # (x, theta), ...
        self._theta, self._theta_dot = self._state[2], self._state[3]
        self._acc = buffer(2, num_envs)
        self._x_acc, self._theta_acc = self._acc[0], self._acc[1]
        self._next = buffer(4, num_envs)
        self._next_position, self._next_velocity = self._next[0::2], self._next[1::2]
        self._abs_pos = buffer(2, num_envs)
        self._reserve = buffer(4, num_envs)
        self._reserve_rows = self._reserve.unbind(0)
        # F / M for action 0 (left) and 1 (right)
        self._force = torch.tensor([-FORCE_MAG, FORCE_MAG], dtype=dtype, device=self.device)
        self._force /= TOTAL_MASS
        self._neg_den_offset = torch.tensor(
            -HALF_LENGTH * 4.0 / 3.0, dtype=dtype, device=self.device
        )
        # (4, 1) half-widths of the start box; None: CartPole-v1's [-0.05, 0.05)^4
        self._start_box = None if box is None else torch.tensor(
            box, dtype=dtype, device=self.device).unsqueeze(1)
        self._bounds = torch.tensor(
            [[X_THRESHOLD], [THETA_THRESHOLD]], dtype=dtype, device=self.device
        )
        self._kernel = compiled_step(_step_kernel, compiled, self.spec.id, self.device, dtype,
                                     obs_dtype)
        if self._kernel is not None:  # NumPy views of the buffers the loop updates in place
            self._arrays = (self._state.numpy(), self._reserve.numpy(), self._elapsed.numpy())

    def _obs(self, rows: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
        """``(4, N)`` state -> ``(N, 4)`` contiguous observations (one copy)."""
        return rows.T.to(
            dtype or self.obs_dtype, memory_format=torch.contiguous_format, copy=True
        )

    @property
    def state(self) -> torch.Tensor:
        """A copy of the state ``(N, 4)`` = ``(x, x_dot, theta, theta_dot)`` in ``dtype``."""
        return self._obs(self._state, self.dtype)

    def _draw(self, out: torch.Tensor) -> torch.Tensor:
        """Fill ``out`` (the ``(4, N)`` state, or one row of it in the default box)."""
        if self._start_box is None:
            return out.uniform_(INIT_LOW, INIT_HIGH, generator=self._generator)
        return out.uniform_(-1.0, 1.0, generator=self._generator).mul_(self._start_box)

    def reset(self) -> torch.Tensor:
        """Start a new episode in every environment -> obs ``(N, 4)`` in ``obs_dtype``."""
        self._draw(self._state)
        self._draw(self._reserve)
        self._elapsed.zero_()
        self._ready = True
        return self._obs(self._state)

    def _refresh_reserve(self) -> None:
        # one row per step (every component within 4 steps), or all of it when episodes from a
        # wide start box can end after one step
        if self._start_box is None:
            self._draw(self._reserve_rows[self._steps % RESERVE_REFRESH_STEPS])
        else:
            self._draw(self._reserve)

    def _step_loop(self, actions: torch.Tensor):
        """``step`` by ``cartpole_kernel.step_envs`` on the tensors' memory."""
        return self._run_kernel(actions, "0 or 1")

    def _step_tensors(self, actions: torch.Tensor):
        """``step`` as batched tensor operations (any device)."""
        try:
            temp = self._force.index_select(0, actions)  # F / M
        except (IndexError, RuntimeError) as err:
            raise ValueError(
                f"CartPole-v1.step: actions must be 0 or 1 on {self.device}: {err}"
            ) from err
        state, next_state, theta_dot = self._state, self._next, self._theta_dot
        sin, cos = self._theta.sin(), self._theta.cos()
        temp = torch.addcmul(temp, theta_dot * sin, theta_dot, value=POLEMASS_LENGTH / TOTAL_MASS)
        # theta_acc = (g sin - cos temp) / (l (4/3 - m_pole cos^2 / M)), both signs flipped
        numerator = torch.sub(cos * temp, sin, alpha=GRAVITY)
        denominator = torch.addcmul(
            self._neg_den_offset, cos, cos, value=HALF_LENGTH * MASS_POLE / TOTAL_MASS
        )
        theta_acc = torch.div(numerator, denominator, out=self._theta_acc)
        torch.addcmul(temp, theta_acc, cos, value=-POLEMASS_LENGTH / TOTAL_MASS, out=self._x_acc)
        # explicit Euler: positions move with the old velocities, velocities with the accelerations
        torch.add(self._position, self._velocity, alpha=TAU, out=self._next_position)
        torch.add(self._velocity, self._acc, alpha=TAU, out=self._next_velocity)

        out_of_bounds = torch.abs(self._next_position, out=self._abs_pos) > self._bounds
        terminated = out_of_bounds[0] | out_of_bounds[1]
        elapsed = self._elapsed.add_(1)
        truncated = elapsed >= MAX_EPISODE_STEPS
        done = terminated | truncated
        # CartPole pays 1 per step, so a finished episode's return is its length
        episode_length = elapsed * done
        episode_return = torch.where(done, episode_length, torch.nan)
        elapsed.masked_fill_(done, 0)

        final_obs = self._obs(next_state)
        torch.where(done, self._reserve, next_state, out=state)
        reward = torch.ones(self.num_envs, dtype=torch.float32, device=self.device)
        info = {
            "final_obs": final_obs,
            "episode_return": episode_return,
            "episode_length": episode_length,
        }
        return self._obs(state), reward, terminated, truncated, info


def _step_kernel():
    """The compiled CPU step (needs numba)."""
    import semigrad.envs.cartpole_kernel as cartpole_kernel

    return cartpole_kernel.step_envs



class AgentsCartPole(TorchCartPole):
    """K groups of N CartPole-v1 envs in one ``TorchCartPole`` of ``K * N``.

    Group k (envs ``k N .. k N + N - 1``, observations ``obs.view(K, N, 4)[k]``) draws its
    initial states from ``generators[k]`` only, in the order a ``TorchCartPole(N)`` draws them,
    so on CPU they are exactly those of ``TorchCartPole(N, seed=seed_k)``.
    """

    def __init__(self, num_envs: int, generators: Sequence[torch.Generator],
                 device: torch.device, start_box: tuple[float, ...] | None = None) -> None:
        self.agents, self.envs_per_agent = len(generators), num_envs
        low, high = (INIT_LOW, INIT_HIGH) if not start_box else (-1.0, 1.0)
        self._uniforms = AgentUniforms(generators, chunk=max(1024, 64 * num_envs),
                                       low=low, high=high)
        super().__init__(self.agents * num_envs, device=device, seed=0,
                         start_box=start_box or None)

    def _draw(self, out: torch.Tensor) -> torch.Tensor:
        """Fill ``out``, the ``(4, K N)`` state or one ``(K N,)`` row of it, agent by agent
        (with a start box: uniforms in [-1, 1) times its half-widths, as ``TorchCartPole``)."""
        rows = out.shape[0] if out.dim() == 2 else 1
        values = self._uniforms.take(rows * self.envs_per_agent)
        values = values.view(self.agents, rows, self.envs_per_agent).transpose(0, 1)
        out.view(rows, self.agents, self.envs_per_agent).copy_(values)
        return out if self._start_box is None else out.mul_(self._start_box)

    def state_dict(self) -> dict:
        return {**super().state_dict(), "uniforms": self._uniforms.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self._uniforms.load_state_dict(state["uniforms"])
