"""C51 (Bellemare, Dabney & Munos 2017, "A Distributional Perspective on Reinforcement
Learning"): DQN whose network outputs, for each action, a categorical distribution of the
return over a fixed support of ``num_atoms`` atoms from ``v_min`` to ``v_max``, trained by the
cross-entropy to the projected n-step target (``losses.categorical_q_learning``, Algorithm 1).

It is DQN (``semigrad.algos.dqn``: acting, replay, n-step returns, Double targets, prioritized
replay, noisy nets, the K-seed batch, resume) with another head: ``CategoricalHead`` gives DQN
the Q-values (the distributions' means, for acting, Double targets and evaluation) and the
loss with its gradient. The network (``heads.HeadNetwork``: the MLP or a convolutional torso)
runs on the general (autograd) path. ``load_agent(run_dir).distribution(obs)``: ``(values,
probs)`` each ``(B, A, M)``.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from semigrad import envs, trainer
from semigrad.algos import dqn, presets
from semigrad.algos.base import option
from semigrad.config import ConfigError, check_range
from semigrad.heads import categorical_q_values, categorical_support
from semigrad.losses import categorical_q_learning
from semigrad.nets import CONV_NETWORKS


@dataclass(frozen=True)
class C51Config(dqn.DQNConfig):
    """DQN's fields and the categorical support (``loss`` is unused: the loss is C51's)."""

    num_atoms: int = option("atoms of the categorical support", default=51)
    v_min: float = option("the support's lowest return", default=-10.0)
    v_max: float = option("the support's highest return", default=10.0)

    def __post_init__(self) -> None:
        super().__post_init__()
        check_family_network(self)
        check_range("num_atoms", self.num_atoms, 2, 10_000)
        if not self.v_min < self.v_max:
            raise ConfigError(f"v_min: must be below v_max, got {self.v_min} and {self.v_max}")


def check_family_network(cfg: Any) -> None:
    """A distributional head runs on the built-in networks (``dqn.head_network``), on the
    general (autograd) backend."""
    if cfg.network not in ("mlp", *CONV_NETWORKS):
        raise ConfigError(f"network: {type(cfg).__name__} runs a distributional head on the "
                          f"built-in networks (mlp, {', '.join(CONV_NETWORKS)}), not "
                          f"{cfg.network!r}")
    if cfg.q_backend == "stacked":
        raise ConfigError("q_backend: 'stacked' does not run distributional heads; use 'vmap' "
                          "or 'auto'")


def make_network(cfg: C51Config, env: envs.BatchedEnv) -> nn.Module:
    """One agent's network: Q-values (the means) from ``forward``, the distribution from
    ``distribution``."""
    return dqn.head_network(cfg, env.obs_dim, env.num_actions, env.obs_shape, "categorical",
                            cfg.num_atoms, v_min=cfg.v_min, v_max=cfg.v_max)


def per_agent_loss(per_sample, out: torch.Tensor, weights: torch.Tensor | None):
    """K agents' losses ``(K,)``, each the (importance-weighted) mean over its own B samples of
    ``per_sample(leaf (K B, A, M)) -> (K B,)``, with ``d sum_k loss_k / d out`` by autograd
    and the per-sample losses ``(K B,)`` (the priorities' errors)."""
    k, b = out.shape[:2]
    leaf = out.detach().requires_grad_()
    with torch.enable_grad():
        per = per_sample(leaf.flatten(0, 1)).view(k, b)
        weighted = per if weights is None else per * weights.view(k, b).to(per.dtype)
        losses = weighted.mean(dim=1)
        grad, = torch.autograd.grad(losses.sum(), leaf)
    return losses.detach(), grad, per.detach().reshape(-1)


@dataclass(frozen=True)
class CategoricalHead:
    """C51's head for DQN (``dqn.Head``): outputs are logits ``(K, B, A, M)`` over ``z``."""

    z: torch.Tensor

    @classmethod
    def of(cls, cfg: C51Config, device: torch.device) -> CategoricalHead:
        return cls(categorical_support(cfg.v_min, cfg.v_max, cfg.num_atoms, device=device))

    def network(self, cfg: C51Config, env: envs.BatchedEnv) -> nn.Module:
        net = make_network(cfg, env)
        net.raw = True
        return net

    def q_values(self, out: torch.Tensor) -> torch.Tensor:
        return categorical_q_values(out, self.z)

    def loss(self, cfg, out, a_tm1, r_t, discount_t, out_t, q_t_selector, weights):
        dt = out.dtype
        selector = None if q_t_selector is None else q_t_selector.flatten(0, 1)
        losses, grad, per = per_agent_loss(
            lambda logits: categorical_q_learning(
                logits, a_tm1, r_t.to(dt), discount_t.to(dt), out_t.flatten(0, 1), self.z,
                selector), out, weights)
        return losses, self.q_values(out).mean(dim=(1, 2)), grad, per


def init(cfg: C51Config, seeds, device: torch.device) -> dqn.DQNState:
    return dqn.init(cfg, seeds, device, CategoricalHead.of(cfg, device))


NAME = "c51"
__getattr__ = trainer.extends(dqn, dqn.PROTOCOL)  # the rest of the protocol is DQN's
Config = C51Config
PRESETS, preset, preset_fields, preset_for_env = presets.preset_functions(
    C51Config, presets.C51, presets.C51_DEFAULT)
DEFAULT_PRESET = presets.C51_DEFAULT


def train(cfg: C51Config, run_dir: str | Path, **kw: Any) -> dict:
    """Train C51 with ``cfg`` into ``run_dir`` (``semigrad.trainer.train``)."""
    return trainer.train(sys.modules[__name__], cfg, run_dir, **kw)
