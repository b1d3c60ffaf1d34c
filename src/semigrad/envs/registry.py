"""The table of semigrad's own environments and ``make``, which builds an env from an id.

``make(env_id, num_envs, device, seed)`` returns semigrad's own implementation when one is
registered for ``env_id`` (``register``), else gymnasium's through ``GymVectorEnv``;
``gymnasium:ID`` forces gymnasium's implementation of ID.

``module.path:ID`` (gymnasium's own form, e.g. ``my_pkg.envs:MyEnv-v0``) first imports
``module.path``, which registers ID (with gymnasium, or with ``register`` here), then makes ID as
above; ``gymnasium:module.path:ID`` forces gymnasium's implementation. The current directory is
searched for the module too (after the installed packages), as ``python -m`` does, so that
``semigrad train --env examples.custom_env:Corridor-v0`` works from the repository root.

This module registers nothing itself and imports no env module that registers: the package
(``semigrad.envs``) registers semigrad's own envs, and re-exports what is here.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable

import torch

from semigrad.devices import resolve_device
from semigrad.envs import cartpole
from semigrad.envs.base import BatchedEnv
from semigrad.envs.gym_vector import GymVectorEnv
from semigrad.importing import import_user_module

GYMNASIUM_PREFIX = "gymnasium:"

# env id -> factory(num_envs=, device=, seed=) for semigrad's own (tensor) implementations.
_NATIVE: dict[str, Callable[..., BatchedEnv]] = {}


def register(env_id: str, factory: Callable[..., BatchedEnv]) -> None:
    """Make ``make(env_id)`` use ``factory(num_envs=..., device=..., seed=...)``."""
    _NATIVE[env_id] = factory


def _known_gym_ids() -> list[str]:
    import gymnasium as gym

    return sorted(gym.registry.keys())


def _split_env_id(env_id: str) -> tuple[bool, str | None, str]:
    """``[gymnasium:][module.path:]ID`` -> (gymnasium forced, module path or None, ID)."""
    rest = env_id.removeprefix(GYMNASIUM_PREFIX)
    module, colon, name = rest.rpartition(":")
    if not colon:
        return rest != env_id, None, rest
    if not name or not all(part.isidentifier() for part in module.split(".")):
        raise ValueError(f"env: expected 'ID' or 'module.path:ID' (e.g. 'my_pkg.envs:MyEnv-v0'), "
                         f"got {env_id!r}")
    return rest != env_id, module, name


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def _import_env_module(module: str, env_id: str) -> None:
    """Import ``module`` (which registers the env of ``env_id``); failure is one ValueError line.

    The current directory is searched last, as ``python -m`` searches it (a console script such
    as ``semigrad`` does not)."""
    try:
        import_user_module(module)
    except Exception as err:
        raise ValueError(f"env: cannot import module {module!r} for {env_id!r} "
                         f"({_one_line(err)})") from None


def check_env_id(env_id: str) -> None:
    """Raise ``ValueError`` for an env id that neither semigrad nor gymnasium knows.

    For ``module.path:ID`` this imports ``module.path`` first (see the module docstring)."""
    if not isinstance(env_id, str) or not env_id:
        raise ValueError(f"env: expected an environment id such as 'CartPole-v1', got {env_id!r}")
    forced, module, name = _split_env_id(env_id)
    if module is not None:
        _import_env_module(module, env_id)
    if not forced and name in _NATIVE:
        return
    known = _known_gym_ids()
    if name in known:
        return
    close = difflib.get_close_matches(name, sorted(set(known) | set(_NATIVE)), n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
    where = "" if module is None else f" (importing {module!r} did not register {name!r})"
    raise ValueError(f"env: unknown environment id {env_id!r}{where}{hint}")


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
    render: bool = False,
    **env_kwargs,
) -> BatchedEnv:
    """Build ``num_envs`` copies of ``env_id`` on ``device`` (default: CUDA when available).

    ``render``: gymnasium envs are made with ``render_mode="rgb_array"`` so that ``render``
    can draw them (semigrad's own envs always can).

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
    forced, module, name = _split_env_id(env_id)
    if not forced and name in _NATIVE and not env_kwargs:
        return _NATIVE[name](num_envs=num_envs, device=device, seed=seed)
    gym_id = name if module is None else f"{module}:{name}"  # gymnasium.make's own forms
    return GymVectorEnv(gym_id, num_envs, device=device, seed=seed, render=render,
                        **env_kwargs)
