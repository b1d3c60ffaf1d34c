"""Batched environments behind one interface (see ``semigrad.envs.base``).

``make(env_id, num_envs, device, seed)`` builds ``num_envs`` copies of an environment:
semigrad's own implementation where one is registered (``register``), else gymnasium's (the
forms of ``env_id`` are in ``semigrad.envs.registry``). This package registers semigrad's own
envs (the tensor classic-control envs, Baird's counterexample, MinAtar, Atari) and re-exports
the names below.
"""

from __future__ import annotations

from semigrad.envs.acrobot import TorchAcrobot
from semigrad.envs.agents import make_agents
from semigrad.envs.atari import register_atari
from semigrad.envs.baird import register_baird
from semigrad.envs.base import BatchedEnv, EnvSpec, EpisodeCounter
from semigrad.envs.cartpole import TorchCartPole
from semigrad.envs.gym_vector import GymVectorEnv
from semigrad.envs.minatar import register_minatar
from semigrad.envs.mountain_car import TorchMountainCar
from semigrad.envs.registry import (
    _NATIVE,  # noqa: F401 (importable here as before: tests/test_classic_envs.py patches it)
    check_env_id,
    check_start_box,
    make,
    register,
)

__all__ = [
    "BatchedEnv", "EnvSpec", "EpisodeCounter", "GymVectorEnv", "check_env_id", "check_start_box",
    "make", "make_agents", "register",
]

register("CartPole-v1", TorchCartPole)
register("Acrobot-v1", TorchAcrobot)
register("MountainCar-v0", TorchMountainCar)
register_minatar(register)  # MinAtar/Breakout-v1 ...: the minatar package is imported lazily
register_atari(register)  # ALE/Pong-v5 ...: ale-py is imported lazily
register_baird(register)  # Baird-v0, BairdNotebook-v0
