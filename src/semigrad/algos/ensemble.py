"""The trainer's protocol for an algorithm whose K agents' Q-networks run as one ensemble.

DQN, PQN and SARSA keep their K agents' networks in ``st.online`` (``nets.q_ensemble``: the
stacked fast path or the general one), count ``st.gradient_steps`` per agent, and act with
``nets.acting_mode``; the protocol functions below are theirs, written once. Also here: how
a resumed run gets its envs back (``restore_envs``) and the checks their configs share.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from semigrad import envs, policies
from semigrad.config import MAX_COUNT, ConfigError, check_range
from semigrad.nets import ModuleEnsemble, acting_mode, q_ensemble


def gradient_steps(st: Any) -> int:
    return st.gradient_steps


def grad_mode(st: Any):
    """Acting and learning need no autograd tape, except the general backend's forward."""
    return acting_mode(st.online)


def q_values(st: Any, obs: torch.Tensor) -> torch.Tensor:
    """The K online networks on ``obs (K, E, ...)``: ``(K, E, A)``."""
    return st.online(obs)


def agent_state_dict(st: Any, k: int, template: nn.Module) -> dict:
    """Agent k's online network as ``template``'s state dict."""
    return st.online.agent_state_dict(k, template)


def weights_from_state(cfg: Any, payload: dict, template: nn.Module) -> dict:
    """Agent 0's online network from a whole-state checkpoint (``payload["online"]``, and
    ``payload["buffers"]`` of the general backend), as ``template``'s state dict."""
    backend = getattr(cfg, "q_backend", "auto")
    ens = q_ensemble([template], payload["online"][0].device, backend, cfg.activation)
    if isinstance(ens, ModuleEnsemble):
        ens = ModuleEnsemble(payload["online"], payload.get("buffers", []), template)
    else:
        ens.params = list(payload["online"])  # StackedMLP or StackedConvNet: the saved layout
    return ens.agent_state_dict(0, template)


@torch.no_grad()
def load_tensors(tensors: Sequence[torch.Tensor], saved: Sequence[torch.Tensor]) -> None:
    """Copy a checkpoint's tensors into the live ones, in place (their views stay valid)."""
    for t, value in zip(tensors, saved, strict=True):
        t.copy_(value)


def restore_envs(cfg: Any, st: Any, payload: dict, seeds: Sequence[int],
                 device: torch.device) -> None:
    """``st.env`` and ``st.obs`` from a checkpoint; an env that could not save its episodes in
    progress starts new ones from fresh seeds, with a warning (the resumed run will not match
    an uninterrupted one exactly)."""
    if payload["env"] is not None:
        st.env.load_state_dict(payload["env"])
        st.obs = payload["obs"].to(device)
        return
    warnings.warn(f"{cfg.env} cannot save its state: the resumed run starts new episodes, so "
                  "it will not match an uninterrupted run exactly", stacklevel=4)
    st.env.close()
    steps = payload["counters"]["env_steps"]
    st.env = envs.make_agents(cfg.env, cfg.num_envs, [s + 1 + steps for s in seeds], device,
                              getattr(cfg, "start_box", None))
    st.obs = st.env.reset()


def check_counts(cfg: Any, names: Sequence[str], zero_ok: Sequence[str] = ()) -> None:
    """Each field in ``names`` an integer in 1..MAX_COUNT (0.. for those in ``zero_ok``);
    ``eval_episodes`` at most ``policies.MAX_PARALLEL_EPISODES`` (they are played at once)."""
    for name in names:
        value = getattr(cfg, name)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{name}: expected an integer, got {value!r}")
        check_range(name, value, 0 if name in zero_ok else 1,
                    policies.MAX_PARALLEL_EPISODES if name == "eval_episodes" else MAX_COUNT)


def check_widths(hidden: Sequence[int]) -> None:
    """``hidden``: one or more layer widths >= 1."""
    if not hidden or any(isinstance(h, bool) or not isinstance(h, int) or h < 1
                         for h in hidden):
        raise ConfigError(f"hidden: expected one or more widths >= 1, got {hidden!r}")


def state_dict(st: Any) -> dict:
    """What every Q-ensemble algorithm's state holds: the K networks (and the general
    backend's buffers), the optimizer, the envs and where they are, the random streams, the
    gradient steps and the last epsilon. An algorithm adds its own keys (a replay, a target
    network, the next actions)."""
    return {"online": st.online.params, "buffers": getattr(st.online, "buffers", []),
            "optimizer": st.optimizer.state_dict(), "env": st.env.state_dict(), "obs": st.obs,
            "uniforms": st.uniforms.state_dict(), "gradient_steps": st.gradient_steps,
            "epsilon": st.epsilon}


def load_state_dict(cfg: Any, st: Any, payload: dict, seeds: Sequence[int],
                    device: torch.device) -> None:
    """``state_dict``'s keys of a checkpoint into ``init``'s state ``st``."""
    from semigrad.optim import optimizer_step

    for tensors, saved in ((st.online.params, payload["online"]),
                           (getattr(st.online, "buffers", []), payload["buffers"])):
        load_tensors(tensors, saved)
    st.optimizer.load_state_dict(payload["optimizer"])
    st.optimizer_step = optimizer_step(st.optimizer, st.online.params)  # on the loaded state
    restore_envs(cfg, st, payload, seeds, device)
    st.uniforms.load_state_dict(payload["uniforms"])
    st.gradient_steps, st.epsilon = payload["gradient_steps"], payload["epsilon"]
