"""Distributional output heads: a network's last layer read as each action's return
distribution, and the Q-values acting and Double targets use, the distributions' means.

Shapes: a head's output is ``(..., A, M)`` (any leading dimensions: ``(B, ...)`` for one
agent, ``(K, B, ...)`` for K agents), M atoms or quantiles per action.

* categorical (C51, Bellemare, Dabney & Munos 2017): ``logits (..., A, M)`` over a fixed,
  evenly spaced support ``z (M,)`` from ``v_min`` to ``v_max``; probabilities ``softmax``,
  ``q = sum_i p_i z_i``; the loss is ``losses.categorical_q_learning``.
* quantile (QR-DQN, Dabney et al. 2018): ``quantiles (..., A, M)``, the values at levels
  ``tau_hat_i = (2i + 1) / 2M``, each with probability 1/M; ``q`` is their mean; the loss is
  ``losses.quantile_q_learning``.

``distribution`` gives both kinds in one form, ``(values, probs)`` each ``(..., A, M)``.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

HeadKind = Literal["categorical", "quantile"]
HEAD_KINDS: tuple[str, ...] = ("categorical", "quantile")


def categorical_support(v_min: float, v_max: float, num_atoms: int,
                        device: torch.device | str | None = None,
                        dtype: torch.dtype | None = None) -> torch.Tensor:
    """C51's support: ``num_atoms`` evenly spaced atoms from ``v_min`` to ``v_max``, ``(M,)``
    (the paper: 51 atoms in [-10, 10])."""
    if not v_min < v_max:
        raise ValueError(f"categorical support: v_min must be < v_max, got {v_min} and {v_max}")
    if num_atoms < 2:
        raise ValueError(f"categorical support: num_atoms must be >= 2, got {num_atoms}")
    return torch.linspace(v_min, v_max, num_atoms, device=device, dtype=dtype)


def categorical_q_values(logits: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """Means of categorical distributions: ``logits (..., A, M)``, ``z (M,)`` -> ``(..., A)``,
    ``sum_i softmax(logits)_i z_i``."""
    return (torch.softmax(logits, dim=-1) * z).sum(dim=-1)


def quantile_q_values(quantiles: torch.Tensor) -> torch.Tensor:
    """Means of quantile distributions: ``quantiles (..., A, M)`` -> ``(..., A)``."""
    return quantiles.mean(dim=-1)


def q_values(kind: HeadKind, out: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
    """The Q-values ``(..., A)`` of a head's output ``out (..., A, M)`` of ``kind``."""
    if kind == "categorical":
        if z is None:
            raise ValueError("q_values: a categorical head needs its support z")
        return categorical_q_values(out, z)
    if kind == "quantile":
        return quantile_q_values(out)
    raise ValueError(f"q_values: kind must be one of {HEAD_KINDS}, got {kind!r}")


def distribution(kind: HeadKind, out: torch.Tensor, z: torch.Tensor | None = None
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """``(values, probs)``, each ``(..., A, M)``: the atoms and their probabilities. For a
    categorical head, the support (broadcast) and ``softmax(logits)``; for a quantile head,
    the M quantile values (sorted, since a network's need not be) each with probability
    1/M. ``(values * probs).sum(-1)`` is ``q_values``."""
    if kind == "categorical":
        if z is None:
            raise ValueError("distribution: a categorical head needs its support z")
        return z.expand(out.shape), torch.softmax(out, dim=-1)
    if kind == "quantile":
        return out.sort(dim=-1).values, torch.full_like(out, 1.0 / out.shape[-1])
    raise ValueError(f"distribution: kind must be one of {HEAD_KINDS}, got {kind!r}")


class DistributionalHead(nn.Module):
    """A linear layer ``in_features -> A * M`` read as ``(..., A, M)``: categorical logits
    or quantile values. ``layer``: the linear layer to use (e.g. ``noisy.NoisyLinear(
    in_features, A * M)``); default ``nn.Linear``. ``q_values`` and ``distribution`` of the
    output as the module functions, with the head's own support ``z`` (a buffer; None for
    quantiles)."""

    def __init__(self, in_features: int, num_actions: int, num_atoms: int,
                 kind: HeadKind = "categorical", v_min: float = -10.0, v_max: float = 10.0,
                 layer: nn.Module | None = None) -> None:
        super().__init__()
        if kind not in HEAD_KINDS:
            raise ValueError(f"DistributionalHead: kind must be one of {HEAD_KINDS}, "
                             f"got {kind!r}")
        if num_actions < 1 or num_atoms < 1:
            raise ValueError(f"DistributionalHead: num_actions and num_atoms must be >= 1, "
                             f"got {num_actions} and {num_atoms}")
        self.kind, self.num_actions, self.num_atoms = kind, num_actions, num_atoms
        self.layer = layer if layer is not None else nn.Linear(in_features,
                                                               num_actions * num_atoms)
        z = categorical_support(v_min, v_max, num_atoms) if kind == "categorical" else None
        self.register_buffer("z", z)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x (..., in_features)`` -> ``(..., A, M)``."""
        return self.layer(x).unflatten(-1, (self.num_actions, self.num_atoms))

    def q_values(self, out: torch.Tensor) -> torch.Tensor:
        return q_values(self.kind, out, self.z)

    def distribution(self, out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return distribution(self.kind, out, self.z)


class HeadNetwork(nn.Module):
    """A Q-network with a head of any kind, for DQN's family: ``(B, obs_dim)`` -> a torso
    -> per action ``M`` outputs (``kind`` "categorical" or "quantile"; "scalar": one
    Q-value, no atom dimension).

    The torso: ``hidden`` layers (Linear + activation) on flat observations; or, with ``conv``
    (a name of ``nets.CONV_SPECS``: "minatar", "nature") and ``obs_shape = (C, H, W)``, that
    network's convolutions (plain ``nn.Conv2d``, ReLU) on the frames and its one hidden layer
    (Linear + ReLU; ``hidden`` and ``activation`` are then unused), as Rainbow's network
    (Hessel et al. 2018) keeps the convolutions and makes the fully connected layers noisy.

    ``dueling`` (Wang et al. 2016; with distributions as Rainbow combines them, Hessel et al.
    2018): a value stream ``(B, 1, M)`` and an advantage stream ``(B, A, M)`` combined as
    ``v + a - mean_a a`` (on logits for categorical heads). ``noisy_sigma0``: every linear
    layer a factorised-Gaussian ``noisy.NoisyLinear`` with that ``sigma0`` (Fortunato et al.
    2018; None: plain ``nn.Linear``). ``v_min``, ``v_max``: the categorical support ``z``
    (a buffer).

    ``forward`` returns the Q-values ``(B, A)`` (the distributions' means), so the network
    plays, evaluates and loads as any Q-network; with ``raw = True`` it returns the head's
    output ``(B, A, M)`` (``(B, A)`` for "scalar"), what the losses take. ``distribution(x)``:
    ``(values, probs)`` each ``(B, A, M)`` (``heads.distribution``).
    """

    def __init__(self, obs_dim: int, num_actions: int, kind: str = "categorical",
                 num_atoms: int = 51, hidden: tuple[int, ...] = (64, 64),
                 activation: str = "relu", dueling: bool = False,
                 noisy_sigma0: float | None = None, v_min: float = -10.0,
                 v_max: float = 10.0, conv: str | None = None,
                 obs_shape: tuple[int, ...] | None = None) -> None:
        super().__init__()
        from semigrad.nets import (
            ACTIVATIONS,
            CONV_SPECS,
            conv_layers,
            flat_width,
            frame_shape,
        )
        from semigrad.noisy import NoisyLinear

        if kind not in ("scalar", *HEAD_KINDS):
            raise ValueError(f"HeadNetwork: kind must be scalar or one of {HEAD_KINDS}, "
                             f"got {kind!r}")
        if conv is not None and conv not in CONV_SPECS:
            raise ValueError(f"HeadNetwork: conv must be None or one of {sorted(CONV_SPECS)}, "
                             f"got {conv!r}")
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation: {activation!r} is not one of {sorted(ACTIVATIONS)}")
        if not hidden:
            raise ValueError("HeadNetwork: needs at least one hidden layer")

        def linear(p: int, q: int) -> nn.Module:
            return nn.Linear(p, q) if noisy_sigma0 is None else NoisyLinear(p, q, noisy_sigma0)

        self.kind, self.num_actions = kind, num_actions
        self.num_atoms = 1 if kind == "scalar" else num_atoms
        self.dueling, self.raw = dueling, False
        self.convs, self.obs_shape, self.scale = None, None, 1.0
        width = obs_dim
        if conv is not None:
            convs, fc, self.scale = CONV_SPECS[conv]
            self.obs_shape = frame_shape(obs_shape or (), f"HeadNetwork({conv})")
            self.convs = nn.Sequential(*conv_layers(self.obs_shape[0], convs), nn.Flatten())
            width, hidden, activation = flat_width(self.convs, self.obs_shape), (fc,), "relu"
        layers: list[nn.Module] = []
        for h in hidden:
            layers += [linear(width, h), ACTIVATIONS[activation]()]
            width = h
        self.torso = nn.Sequential(*layers)
        self.advantage = linear(width, num_actions * self.num_atoms)
        self.value = linear(width, self.num_atoms) if dueling else None
        z = categorical_support(v_min, v_max, num_atoms) if kind == "categorical" else None
        self.register_buffer("z", z)

    def output(self, x: torch.Tensor) -> torch.Tensor:
        """The head's output: ``(B, A, M)``, or ``(B, A)`` for "scalar"."""
        if self.convs is not None:
            from semigrad.nets import frames_in

            x = self.convs(frames_in(x, self.obs_shape, self.convs[0].weight.dtype,
                                     self.scale))
        h = self.torso(x)
        out = self.advantage(h).unflatten(-1, (self.num_actions, self.num_atoms))
        if self.value is not None:
            out = self.value(h).unsqueeze(-2) + out - out.mean(dim=-2, keepdim=True)
        return out.squeeze(-1) if self.kind == "scalar" else out

    def q_values(self, out: torch.Tensor) -> torch.Tensor:
        """The Q-values ``(..., A)`` of an output of ``output``."""
        return out if self.kind == "scalar" else q_values(self.kind, out, self.z)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.output(x)
        return out if self.raw else self.q_values(out)

    def distribution(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(values, probs)`` each ``(B, A, M)`` of observations ``x (B, obs_dim)``."""
        if self.kind == "scalar":
            raise ValueError("distribution: this network has a scalar head (one Q-value per "
                             "action), no return distribution")
        return distribution(self.kind, self.output(x), self.z)
