"""The one batched interface every semigrad algorithm talks to.

::

    env = semigrad.envs.make(env_id, num_envs=N, device=..., seed=...)
    obs = env.reset()                                   # (N, obs_dim) float32 on device
    obs, reward, terminated, truncated, info = env.step(actions)   # actions (N,) int64

All returned values are tensors on ``env.device`` with leading dimension N; ``terminated`` and
``truncated`` are bool. Resets are automatic and same-step: when sub-env i finishes,
``obs[i]`` is already the first observation of its next episode, and ``info["final_obs"]``
``(N, obs_dim)`` holds, for every i, the observation the transition really ended in (the one
to bootstrap from on truncation; equal to ``obs[i]`` where the episode goes on).
``info["episode_return"]`` and ``info["episode_length"]`` ``(N,)`` hold the finished
episode's return and length where ``terminated | truncated``, and NaN / 0 elsewhere.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class EnvSpec:
    """What an algorithm needs to know about an environment."""

    id: str
    obs_dim: int
    num_actions: int
    reward_threshold: float | None
    max_episode_steps: int | None
    backend: str


class BatchedEnv(ABC):
    """Base class of semigrad's batched environments (see the module docstring)."""

    spec: EnvSpec
    num_envs: int
    device: torch.device

    # Pixel envs return flat rows of another dtype and say how a network unflattens them:
    obs_dtype: torch.dtype = torch.float32  # e.g. torch.uint8 for frames

    @property
    def obs_dim(self) -> int:
        return self.spec.obs_dim

    @property
    def obs_shape(self) -> tuple[int, ...]:
        """The shape each ``(obs_dim,)`` row stands for, e.g. ``(C, H, W)`` for frames."""
        return (self.spec.obs_dim,)

    @property
    def num_actions(self) -> int:
        return self.spec.num_actions

    @abstractmethod
    def reset(self) -> torch.Tensor:
        """Start a new episode in every environment -> obs ``(N, obs_dim)``."""

    @abstractmethod
    def step(self, actions: torch.Tensor):
        """Step every environment with ``actions (N,)`` int64 -> obs, reward, terminated,
        truncated, info (see the module docstring)."""

    def close(self) -> None:  # noqa: B027 - a no-op by default, on purpose
        """Release resources; a no-op unless the backend holds any."""

    def state_dict(self) -> dict | None:
        """Everything needed to continue exactly where the envs are (episodes in progress,
        step counts, random generators), as tensors and plain Python values; ``None`` for an
        env that cannot save it (the default), so a resume has to start new episodes."""
        return None

    def load_state_dict(self, state: dict) -> None:
        """Restore what ``state_dict`` returned; the next ``step`` continues from there."""
        raise ValueError(f"{type(self).__name__} saves no state, so it cannot restore one")

    # frames per second of the env's own clock, for animations of ``render`` (GIFs)
    render_fps: float = 25.0

    def render(self, index: int = 0):
        """An RGB picture ``(H, W, 3)`` uint8 (NumPy) of sub-env ``index`` as it is now, for
        GIFs (``semigrad eval --gif``); envs that cannot draw themselves raise ValueError."""
        raise ValueError(f"{self.spec.id}: {type(self).__name__} cannot draw its state")

    def check_index(self, index: int) -> int:
        """``index`` if it names a sub-env, else ValueError."""
        if isinstance(index, bool) or not isinstance(index, int) or not (
                0 <= index < self.num_envs):
            raise ValueError(f"{self.spec.id}: sub-env index must be an integer in "
                             f"[0, {self.num_envs}), got {index!r}")
        return index

    def check_actions(self, actions: torch.Tensor) -> None:
        """Raise ``ValueError`` unless ``actions`` is an int64 ``(num_envs,)`` tensor."""
        if (
            not isinstance(actions, torch.Tensor)
            or actions.dtype != torch.int64
            or actions.shape != (self.num_envs,)
        ):
            got = (
                f"{actions.dtype} tensor of shape {tuple(actions.shape)}"
                if isinstance(actions, torch.Tensor)
                else type(actions).__name__
            )
            raise ValueError(
                f"{self.spec.id}.step: actions must be an int64 tensor of shape "
                f"({self.num_envs},), got {got}"
            )

    def __enter__(self) -> BatchedEnv:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class TensorStateEnv(BatchedEnv):
    """Shared by semigrad's physics envs written as tensors (CartPole, Acrobot, MountainCar):
    the state ``_state (D, N)`` in ``dtype``, a reserve of initial states ``_reserve``, the
    steps into each episode ``_elapsed (N,)``, one generator ``_generator``, a step counter
    ``_steps`` and ``_ready`` (reset done). Subclasses set those in ``__init__`` and give
    ``state`` (a copy, ``(N, D)``)."""

    def _init_common(self, num_envs: int, device, seed: int | None, dtype: torch.dtype,
                     obs_dtype: torch.dtype) -> None:
        """Check and set ``num_envs``, ``device``, ``dtype``, ``obs_dtype``; seed the generator
        (``seed`` None: a fresh random seed); zero step counter and ``_elapsed``."""
        from semigrad.devices import resolve_device

        if isinstance(num_envs, bool) or not isinstance(num_envs, int) or num_envs < 1:
            raise ValueError(f"num_envs: expected an integer >= 1, got {num_envs!r}")
        if not (dtype.is_floating_point and obs_dtype.is_floating_point):
            raise ValueError(
                f"dtype, obs_dtype: expected floating-point dtypes, got {dtype}, {obs_dtype}"
            )
        self.num_envs, self.device = num_envs, resolve_device(device)
        self.dtype, self.obs_dtype = dtype, obs_dtype
        self._generator = torch.Generator(device=self.device)
        if seed is None:
            self._generator.seed()
        else:
            self._generator.manual_seed(seed)
        # elapsed steps of each episode (before this step), for the time limit and statistics
        self._elapsed = torch.zeros(num_envs, dtype=torch.int64, device=self.device)
        self._steps, self._ready = 0, False

    def step(self, actions: torch.Tensor):
        """One step of every environment (the compiled loop on the CPU, else tensor
        operations), with same-step reset of finished episodes; then the reserve of initial
        states is refreshed (``_refresh_reserve``), after the step, so that a step refused for
        bad actions changes nothing."""
        self.check_actions(actions)
        if not self._ready:
            raise ValueError(f"{self.spec.id}.step: call reset() before step()")
        out = self._step_tensors(actions) if self._kernel is None else self._step_loop(actions)
        self._refresh_reserve()
        self._steps += 1
        return out

    @abstractmethod
    def _refresh_reserve(self) -> None:
        """Redraw (part of) the reserve of initial states after step ``self._steps`` (each env
        says how much of its reserve one step redraws)."""

    def _run_kernel(self, actions: torch.Tensor, allowed: str):
        """One step by the compiled loop ``self._kernel`` on ``self._arrays`` (NumPy views of
        the buffers it updates in place): outputs allocated by NumPy (half the cost of
        ``torch.empty`` + ``.numpy()``), then shared with torch. ``allowed`` names the valid
        actions for the error."""
        import numpy as np

        if actions.device.type != "cpu":
            raise ValueError(f"{self.spec.id}.step: actions must be on cpu, got {actions.device}")
        n, d = self.num_envs, self.spec.obs_dim
        obs_dtype = torch.empty(0, dtype=self.obs_dtype).numpy().dtype
        outs = (np.empty((n, d), obs_dtype), np.empty((n, d), obs_dtype),
                np.empty(n, np.float32), np.empty(n, np.bool_), np.empty(n, np.bool_),
                np.empty(n, np.float32), np.empty(n, np.int64))
        bad = self._kernel(*self._arrays, actions.numpy(), *outs)
        if bad >= 0:
            raise ValueError(f"{self.spec.id}.step: actions must be {allowed}, got "
                             f"{actions[bad].item()} at index {bad}")
        obs, final_obs, reward, terminated, truncated, episode_return, episode_length = (
            torch.from_numpy(a) for a in outs)
        info = {"final_obs": final_obs, "episode_return": episode_return,
                "episode_length": episode_length}
        return obs, reward, terminated, truncated, info

    def render(self, index: int = 0):
        """Sub-env ``index`` drawn by gymnasium's own renderer of the same env (an instance
        of it whose ``state`` is set to this sub-env's), so a GIF looks as gymnasium's does."""
        self.check_index(index)
        painter = getattr(self, "_painter", None)
        if painter is None:
            import gymnasium as gym

            offscreen_rendering()
            painter = self._painter = gym.make(self.spec.id, render_mode="rgb_array").unwrapped
        painter.state = self.state[index].double().cpu().numpy()
        return painter.render()

    def close(self) -> None:
        painter = getattr(self, "_painter", None)
        if painter is not None:
            painter.close()
            self._painter = None

    def set_state(self, states: torch.Tensor, elapsed_steps: torch.Tensor | int = 0) -> None:
        """Put the environments in ``states (N, D)``, ``elapsed_steps`` steps into their
        episodes. The next ``step`` continues from there; the time limit truncates an episode
        when ``elapsed_steps`` plus the steps taken since reaches ``spec.max_episode_steps``.
        """
        shape = (self.num_envs, self._state.shape[0])
        if not isinstance(states, torch.Tensor) or states.shape != shape:
            got = tuple(states.shape) if isinstance(states, torch.Tensor) else type(states).__name__
            raise ValueError(f"set_state: states must be a {shape} tensor, got {got}")
        self._state.copy_(states.T)
        self._elapsed.copy_(torch.as_tensor(elapsed_steps).expand(self.num_envs))
        self._ready = True

    def state_dict(self) -> dict:
        """Exact state for a resume: physics, reserve starts, step counters, generator."""
        return {"state": self._state.clone(), "reserve": self._reserve.clone(),
                "elapsed": self._elapsed.clone(), "generator": self._generator.get_state(),
                "steps": self._steps, "ready": self._ready}

    def load_state_dict(self, state: dict) -> None:
        if state["state"].shape != self._state.shape:
            raise ValueError(f"{self.spec.id} state holds {state['state'].shape[1]} envs, "
                             f"this one has {self.num_envs}")
        self._state.copy_(state["state"])
        self._reserve.copy_(state["reserve"])
        self._elapsed.copy_(state["elapsed"])
        # a ByteTensor on the CPU, for CUDA generators too (a checkpoint loaded with
        # map_location="cuda" holds it on the GPU)
        self._generator.set_state(state["generator"].cpu())
        self._steps, self._ready = int(state["steps"]), bool(state["ready"])


class EpisodeCounter:
    """Running return and length of each of N episodes, for ``info["episode_return"]``.

    ``update(reward, done)`` adds this step and returns ``(returns, lengths)`` of the
    episodes that ended now (NaN / 0 elsewhere), then restarts those slots.
    """

    def __init__(self, num_envs: int, device: torch.device) -> None:
        self.returns = torch.zeros(num_envs, dtype=torch.float64, device=device)
        self.lengths = torch.zeros(num_envs, dtype=torch.int64, device=device)

    def update(self, reward: torch.Tensor, done: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self.returns += reward
        self.lengths += 1
        finished_returns = torch.where(done, self.returns, torch.full_like(self.returns, torch.nan))
        finished_lengths = torch.where(done, self.lengths, torch.zeros_like(self.lengths))
        self.returns = torch.where(done, torch.zeros_like(self.returns), self.returns)
        self.lengths = torch.where(done, torch.zeros_like(self.lengths), self.lengths)
        return finished_returns.to(torch.float32), finished_lengths

    def reset(self) -> None:
        self.returns.zero_()
        self.lengths.zero_()

    def state_dict(self) -> dict:
        return {"returns": self.returns.clone(), "lengths": self.lengths.clone()}

    def load_state_dict(self, state: dict) -> None:
        self.returns.copy_(state["returns"])
        self.lengths.copy_(state["lengths"])


def offscreen_rendering() -> None:
    """Let gymnasium's pygame renderers draw without a display or a sound device (else SDL
    prints e.g. "XDG_RUNTIME_DIR is invalid" on success); call before making such an env."""
    import os

    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    os.environ.setdefault("SDL_AUDIODRIVER", "dummy")


def compiled_step(importer, compiled: bool | None, env_id: str, device: torch.device,
                  dtype: torch.dtype, obs_dtype: torch.dtype):
    """A tensor physics env's compiled CPU step (``importer()`` returns it) where it applies
    (CPU, float64 state, float32 or float64 observations) and is wanted, else None (tensor
    operations); see ``semigrad.compiled.load_kernel``."""
    from semigrad.compiled import load_kernel

    fits = (device.type == "cpu" and dtype == torch.float64
            and obs_dtype in (torch.float32, torch.float64))
    return load_kernel(importer, compiled, f"{env_id}: the compiled CPU step", fits,
                       f"on the CPU with a float64 state and float32 or float64 observations; "
                       f"got {device}, {dtype}, {obs_dtype}", stacklevel=5)


def import_extra(module: str, env_id: str, extra: str, why: str = ""):
    """Import an optional package an env needs; missing, it is one ``ValueError`` line naming
    the extra to install (an import error inside the package itself propagates)."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as err:
        if (err.name or "").partition(".")[0] != module.partition(".")[0]:
            raise
        raise ValueError(f"env {env_id!r} needs {why or module}: pip install "
                         f"'semigrad[{extra}]' (or: make install)") from None
