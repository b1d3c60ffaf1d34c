"""QR-DQN (Dabney, Rowland, Bellemare & Munos 2018, "Distributional Reinforcement Learning
with Quantile Regression"): DQN whose network outputs, for each action, ``num_quantiles``
values of the return at the levels ``tau_hat_i = (2i + 1) / 2M``, trained by the quantile
Huber loss to the n-step target's quantiles (``losses.quantile_q_learning``).

As C51 (``semigrad.algos.c51``), it is DQN with another head: ``QuantileHead`` gives DQN the
Q-values (the quantiles' means) and the loss with its gradient; the network
(``heads.HeadNetwork``) runs on the general (autograd) path;
``load_agent(run_dir).distribution(obs)`` gives the M sorted quantiles, each with
probability 1/M.
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
from semigrad.algos.c51 import check_family_network
from semigrad.config import check_range
from semigrad.heads import quantile_q_values
from semigrad.losses import quantile_q_learning_and_grad


@dataclass(frozen=True)
class QRDQNConfig(dqn.DQNConfig):
    """DQN's fields and the quantiles (``loss`` is unused: the loss is the quantile Huber
    loss with threshold ``kappa``)."""

    num_quantiles: int = option("quantiles per action (the paper: 200)", default=200)
    kappa: float = option("the quantile Huber loss's threshold (0: the plain quantile loss)",
                          default=1.0)

    def __post_init__(self) -> None:
        super().__post_init__()
        check_family_network(self)
        check_range("num_quantiles", self.num_quantiles, 1, 10_000)
        check_range("kappa", self.kappa, 0, 1e6)


def make_network(cfg: QRDQNConfig, env: envs.BatchedEnv) -> nn.Module:
    """One agent's network: Q-values (the quantiles' means) from ``forward``, the quantiles
    from ``distribution``."""
    return dqn.head_network(cfg, env.obs_dim, env.num_actions, env.obs_shape, "quantile",
                            cfg.num_quantiles)


@dataclass(frozen=True)
class QuantileHead:
    """QR-DQN's head for DQN (``dqn.Head``): outputs are quantiles ``(K, B, A, M)``."""

    kappa: float

    def network(self, cfg: QRDQNConfig, env: envs.BatchedEnv) -> nn.Module:
        net = make_network(cfg, env)
        net.raw = True
        return net

    def q_values(self, out: torch.Tensor) -> torch.Tensor:
        return quantile_q_values(out)

    def loss(self, cfg, out, a_tm1, r_t, discount_t, out_t, q_t_selector, weights):
        """The K agents' (importance-weighted) mean losses, their gradient with respect to
        ``out (K, B, A, M)`` in closed form (``losses.quantile_q_learning_and_grad``) and the
        per-sample losses (the priorities' errors)."""
        k, b = out.shape[:2]
        dt = out.dtype
        selector = None if q_t_selector is None else q_t_selector.flatten(0, 1)
        per, grad = quantile_q_learning_and_grad(
            out.flatten(0, 1), a_tm1, r_t.to(dt), discount_t.to(dt), out_t.flatten(0, 1),
            selector, self.kappa)
        per, grad = per.view(k, b), grad.view(out.shape)
        if weights is None:
            losses, scale = per.mean(dim=1), grad.new_full((k, b), 1.0 / b)
        else:
            w = weights.view(k, b).to(dt)
            losses, scale = (per * w).mean(dim=1), w / b
        grad.mul_(scale.view(k, b, 1, 1))
        return losses, self.q_values(out).mean(dim=(1, 2)), grad, per.reshape(-1)


def init(cfg: QRDQNConfig, seeds, device: torch.device) -> dqn.DQNState:
    return dqn.init(cfg, seeds, device, QuantileHead(cfg.kappa))


NAME = "qrdqn"
__getattr__ = trainer.extends(dqn, dqn.PROTOCOL)  # the rest of the protocol is DQN's
Config = QRDQNConfig
PRESETS, preset, preset_fields, preset_for_env = presets.preset_functions(
    QRDQNConfig, presets.QRDQN, presets.QRDQN_DEFAULT)
DEFAULT_PRESET = presets.QRDQN_DEFAULT


def train(cfg: QRDQNConfig, run_dir: str | Path, **kw: Any) -> dict:
    """Train QR-DQN with ``cfg`` into ``run_dir`` (``semigrad.trainer.train``)."""
    return trainer.train(sys.modules[__name__], cfg, run_dir, **kw)
