"""Any discrete-action gymnasium environment behind semigrad's batched interface.

Backed by ``gymnasium.vector.SyncVectorEnv`` in same-step autoreset mode; observations cross
from NumPy to ``device`` once per step (one copy for the whole batch). An env whose optional
dependency is missing (Box2D for LunarLander-v3) is refused in one line that says what to install.
"""

from __future__ import annotations

import json

import numpy as np
import torch

from semigrad.envs.base import BatchedEnv, EnvSpec, EpisodeCounter, offscreen_rendering

# Top-level modules that gymnasium env families import, and the semigrad extra installing each.
OPTIONAL_MODULES = {"Box2D": "box2d"}


def _missing_module(err: BaseException) -> str | None:
    """The top-level module whose import failed somewhere in ``err``'s chain, if any."""
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, ImportError) and err.name:
            return err.name.partition(".")[0]
        err = err.__cause__ or err.__context__
    return None


def missing_dependency_message(env_id: str, err: BaseException) -> str | None:
    """One line for ``err``, raised while making ``env_id``, when it means that an optional
    package is not installed (``OPTIONAL_MODULES`` say which extra brings it, gymnasium's
    ``DependencyNotInstalled`` says what to install); ``None`` for any other error."""
    from gymnasium.error import DependencyNotInstalled

    module = _missing_module(err)
    if module in OPTIONAL_MODULES:
        return (f"env {env_id!r} needs {module}: pip install "
                f"'semigrad[{OPTIONAL_MODULES[module]}]' (or: make install)")
    if isinstance(err, DependencyNotInstalled):
        return f"env {env_id!r} needs a package that is not installed: {' '.join(str(err).split())}"
    return None


class GymVectorEnv(BatchedEnv):
    """N copies of gymnasium env ``env_id``; sub-env i is seeded with ``seed + i``.

    ``env_id`` is any id ``gymnasium.make`` takes, ``module.path:ID`` included."""

    def __init__(
        self,
        env_id: str,
        num_envs: int = 1,
        device: torch.device | str = "cpu",
        seed: int | None = None,
        render: bool = False,
        **env_kwargs,
    ) -> None:
        import gymnasium as gym
        from gymnasium.vector import AutoresetMode, SyncVectorEnv

        self.device = torch.device(device)
        self.num_envs = num_envs
        self._seed = seed
        if render:  # sub-envs that can draw themselves (``render``), off-screen
            offscreen_rendering()
            env_kwargs = {**env_kwargs, "render_mode": "rgb_array"}
        try:
            self._env = SyncVectorEnv(
                [lambda: gym.make(env_id, **env_kwargs) for _ in range(num_envs)],
                autoreset_mode=AutoresetMode.SAME_STEP,
            )
        except Exception as err:
            message = missing_dependency_message(env_id, err)
            if message is None and render and "render_mode" in str(err):
                message = (f"env {env_id!r} cannot draw itself: making it with "
                           f"render_mode='rgb_array' failed ({type(err).__name__}: {err})")
            if message is None:
                raise
            raise ValueError(message) from None
        space = self._env.single_action_space
        if not isinstance(space, gym.spaces.Discrete) or space.start != 0:
            self._env.close()
            raise ValueError(
                f"env {env_id!r}: semigrad's value-based methods need a discrete action space "
                f"Discrete(n) starting at 0, but it has {space}; pick a discrete-action env "
                "(e.g. CartPole-v1, Acrobot-v1, MountainCar-v0, or LunarLander-v3 with "
                "semigrad[box2d])"
            )
        obs_space = self._env.single_observation_space
        if len(obs_space.shape or ()) != 1:
            self._env.close()
            raise ValueError(
                f"env {env_id!r}: observations must be flat vectors, got shape {obs_space.shape}; "
                "wrap the env with gymnasium.wrappers.FlattenObservation first"
            )
        spec = gym.spec(env_id.rpartition(":")[2])  # the registered id (module imported above)
        self.spec = EnvSpec(
            id=env_id,
            obs_dim=int(obs_space.shape[0]),
            num_actions=int(space.n),
            reward_threshold=spec.reward_threshold,
            max_episode_steps=spec.max_episode_steps,
            backend="gymnasium",
        )
        self._episodes = EpisodeCounter(num_envs, self.device)
        self._np_actions = np.zeros(num_envs, dtype=np.int64)

    def render(self, index: int = 0):
        """Sub-env ``index`` drawn by its gymnasium renderer (made with ``render=True``)."""
        env = self._env.envs[self.check_index(index)]
        if env.render_mode != "rgb_array":
            raise ValueError(f"{self.spec.id}: made without render=True, so it cannot draw; "
                             "make it with semigrad.envs.make(..., render=True)")
        picture = env.render()
        if not (isinstance(picture, np.ndarray) and picture.ndim == 3 and picture.shape[2] == 3):
            raise ValueError(f"{self.spec.id}: its render() gave {type(picture).__name__}, not "
                             "an RGB picture; give the env a render_mode 'rgb_array' that "
                             "returns an (H, W, 3) array")
        return picture

    @property
    def render_fps(self) -> float:
        return float(self._env.envs[0].metadata.get("render_fps") or 25.0)

    @property
    def gym_env(self):
        """The underlying ``gymnasium.vector.SyncVectorEnv`` (for state access in tests)."""
        return self._env

    def _tensor(self, array: np.ndarray, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        return torch.as_tensor(np.asarray(array), dtype=dtype).to(self.device, non_blocking=True)

    def reset(self) -> torch.Tensor:
        """Reset all sub-envs (seeded on the first call only) -> obs ``(N, obs_dim)``."""
        obs, _ = self._env.reset(seed=self._seed)
        self._seed = None
        self._episodes.reset()
        return self._tensor(obs)

    def step(self, actions: torch.Tensor):
        """Step all sub-envs with ``actions (N,)`` int64; see ``semigrad.envs.base``."""
        self.check_actions(actions)
        obs, reward, terminated, truncated, info = self._env.step(actions.cpu().numpy())
        final_obs = obs.copy()
        mask = info.get("_final_obs")
        if mask is not None and mask.any():
            final_obs[mask] = np.stack(info["final_obs"][mask])
        reward_t = self._tensor(reward)
        terminated_t = self._tensor(terminated, torch.bool)
        truncated_t = self._tensor(truncated, torch.bool)
        ep_return, ep_length = self._episodes.update(reward_t, terminated_t | truncated_t)
        out_info = {
            "final_obs": self._tensor(final_obs),
            "episode_return": ep_return,
            "episode_length": ep_length,
        }
        return self._tensor(obs), reward_t, terminated_t, truncated_t, out_info

    def state_dict(self) -> dict | None:
        """Exact state of every sub-env: its physical state, step count and random generator.

        Supported for environments that keep their dynamic state in ``unwrapped.state`` (the
        classic-control family: CartPole, Acrobot, MountainCar); ``None`` for the others.
        The sub-envs' part is JSON (NumPy's generator state holds integers wider than 64
        bits).
        """
        subs = []
        for sub in self._env.envs:
            core = sub.unwrapped
            if not isinstance(getattr(core, "state", None), (np.ndarray, tuple, list)):
                return None  # no unwrapped.state: nothing exact to save
            wrappers, layer = {}, sub
            while layer is not core:
                for attr in _WRAPPER_COUNTERS:
                    if hasattr(layer, attr):
                        wrappers[f"{type(layer).__name__}.{attr}"] = getattr(layer, attr)
                layer = layer.env
            subs.append({
                "state": np.asarray(core.state, dtype=np.float64).tolist(),
                "extra": {k: getattr(core, k) for k in _CORE_COUNTERS if hasattr(core, k)},
                "wrappers": wrappers,
                "rng": core.np_random.bit_generator.state,
            })
        return {"sub_envs": json.dumps(subs), "episodes": self._episodes.state_dict(),
                "seed_pending": self._seed}

    def load_state_dict(self, state: dict) -> None:
        subs = json.loads(state["sub_envs"])
        if len(subs) != self.num_envs:
            raise ValueError(f"env state holds {len(subs)} sub-envs, this env has {self.num_envs}")
        if state["seed_pending"] is None:
            self._env.reset(seed=None)  # mark the vector env as started; state is set below
        for sub, saved in zip(self._env.envs, subs, strict=True):
            core = sub.unwrapped
            core.state = np.array(saved["state"], dtype=np.float64)
            for key, value in saved["extra"].items():
                setattr(core, key, value)
            layer = sub
            while layer is not core:
                for attr in _WRAPPER_COUNTERS:
                    key = f"{type(layer).__name__}.{attr}"
                    if key in saved["wrappers"]:
                        setattr(layer, attr, saved["wrappers"][key])
                layer = layer.env
            core.np_random.bit_generator.state = saved["rng"]
        self._episodes.load_state_dict(state["episodes"])
        self._seed = state["seed_pending"]

    def close(self) -> None:
        self._env.close()


# Counters kept by gymnasium's wrappers and classic-control envs that an exact resume restores.
_WRAPPER_COUNTERS = ("_elapsed_steps", "_has_reset")
_CORE_COUNTERS = ("steps_beyond_terminated",)
