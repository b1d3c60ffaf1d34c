"""Batched environments behind one interface (see ``semigrad.envs.base``).

``make(env_id, num_envs, device, seed)`` returns semigrad's own implementation when one is
registered for ``env_id`` (``register``), else gymnasium's through ``GymVectorEnv``;
``gymnasium:ID`` forces gymnasium's implementation of ID.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable

import torch

from semigrad.devices import resolve_device
from semigrad.envs import cartpole
from semigrad.envs.base import BatchedEnv, EnvSpec, EpisodeCounter
from semigrad.envs.cartpole import TorchCartPole
from semigrad.envs.gym_vector import GymVectorEnv

__all__ = [
    "BatchedEnv", "EnvSpec", "EpisodeCounter", "GymVectorEnv", "check_env_id", "check_start_box",
    "make", "make_agents", "register",
]

GYMNASIUM_PREFIX = "gymnasium:"

# env id -> factory(num_envs=, device=, seed=) for semigrad's own (tensor) implementations.
_NATIVE: dict[str, Callable[..., BatchedEnv]] = {}


def register(env_id: str, factory: Callable[..., BatchedEnv]) -> None:
    """Make ``make(env_id)`` use ``factory(num_envs=..., device=..., seed=...)``."""
    _NATIVE[env_id] = factory


def _known_gym_ids() -> list[str]:
    import gymnasium as gym

    return sorted(gym.registry.keys())


def check_env_id(env_id: str) -> None:
    """Raise ``ValueError`` for an env id that neither semigrad nor gymnasium knows."""
    if not isinstance(env_id, str) or not env_id:
        raise ValueError(f"env: expected an environment id such as 'CartPole-v1', got {env_id!r}")
    name = env_id.removeprefix(GYMNASIUM_PREFIX)
    if env_id in _NATIVE:
        return
    known = _known_gym_ids()
    if name in known:
        return
    close = difflib.get_close_matches(name, sorted(set(known) | set(_NATIVE)), n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
    raise ValueError(f"env: unknown environment id {env_id!r}{hint}")


def check_start_box(env_id: str, start_box) -> None:
    """Raise ``ValueError`` unless ``start_box`` is empty/None or valid half-widths for an env
    that supports exploring starts (semigrad's ``CartPole-v1``)."""
    if start_box is None or len(start_box) == 0:
        return
    if env_id != "CartPole-v1":
        raise ValueError(f"start_box: supported for CartPole-v1 (semigrad's tensor CartPole) "
                         f"only, not {env_id!r}; leave it empty")
    cartpole.check_start_box(start_box)


def make(
    env_id: str,
    num_envs: int = 1,
    device: str | torch.device | None = None,
    seed: int | None = None,
    start_box: tuple[float, ...] | None = None,
    **env_kwargs,
) -> BatchedEnv:
    """Build ``num_envs`` copies of ``env_id`` on ``device`` (default: CUDA when available).

    ``start_box`` (CartPole-v1 only): half-widths ``(x, x_dot, theta, theta_dot)`` of uniform
    exploring starts instead of the env's own initial states (``TorchCartPole``).
    """
    if isinstance(num_envs, bool) or not isinstance(num_envs, int) or num_envs < 1:
        raise ValueError(f"num_envs: expected an integer >= 1, got {num_envs!r}")
    check_env_id(env_id)
    device = resolve_device(device)
    if start_box:
        check_start_box(env_id, start_box)  # only native envs whose factory takes start_box
        return _NATIVE[env_id](num_envs=num_envs, device=device, seed=seed,
                               start_box=tuple(start_box))
    if env_id in _NATIVE and not env_kwargs:
        return _NATIVE[env_id](num_envs=num_envs, device=device, seed=seed)
    return GymVectorEnv(
        env_id.removeprefix(GYMNASIUM_PREFIX), num_envs, device=device, seed=seed, **env_kwargs
    )


register("CartPole-v1", TorchCartPole)

# Importing the module registers Baird-v0 and BairdNotebook-v0 (kept last: it uses register).
import semigrad.envs.baird  # noqa: E402,F401
from semigrad.envs.agents import make_agents  # noqa: E402 (uses make)
