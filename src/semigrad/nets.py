"""Value networks: MLP, multi-head Q ``(B, A)``, dueling Q, state-action Q, linear value."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "elu": nn.ELU, "gelu": nn.GELU}


def _activation(name: str) -> type[nn.Module]:
    try:
        return ACTIVATIONS[name]
    except KeyError:
        raise ValueError(f"activation: {name!r} is not one of {sorted(ACTIVATIONS)}") from None


class MLP(nn.Module):
    """Fully connected network ``(B, in_dim) -> (B, out_dim)``.

    ``hidden`` lists the hidden widths, e.g. ``(64, 64)``; each hidden layer is Linear +
    activation, the last layer is Linear only.
    """

    def __init__(
        self, in_dim: int, out_dim: int, hidden: Sequence[int] = (64, 64), activation: str = "relu"
    ) -> None:
        super().__init__()
        if in_dim < 1 or out_dim < 1 or any(h < 1 for h in hidden):
            raise ValueError(
                f"MLP: sizes must be >= 1, got in_dim={in_dim}, out_dim={out_dim}, hidden={hidden}"
            )
        act = _activation(activation)
        layers: list[nn.Module] = []
        width = in_dim
        for h in hidden:
            layers += [nn.Linear(width, h), act()]
            width = h
        layers.append(nn.Linear(width, out_dim))
        self.net = nn.Sequential(*layers)
        self.in_dim, self.out_dim = in_dim, out_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class QNetwork(MLP):
    """Multi-head Q network: states ``(B, obs_dim)`` -> action values ``(B, num_actions)``."""

    def __init__(
        self,
        obs_dim: int,
        num_actions: int,
        hidden: Sequence[int] = (64, 64),
        activation: str = "relu",
    ) -> None:
        super().__init__(obs_dim, num_actions, hidden, activation)
        self.num_actions = num_actions


class DuelingQNetwork(nn.Module):
    """Dueling architecture (Wang et al., 2016): ``q = v(s) + a(s, .) - mean_a a(s, a)``.

    A shared torso feeds a value head ``(B, 1)`` and an advantage head ``(B, A)``;
    output ``(B, A)``.
    """

    def __init__(
        self,
        obs_dim: int,
        num_actions: int,
        hidden: Sequence[int] = (64, 64),
        activation: str = "relu",
    ) -> None:
        super().__init__()
        if not hidden:
            raise ValueError("DuelingQNetwork: needs at least one hidden layer for the torso")
        act = _activation(activation)
        torso: list[nn.Module] = []
        width = obs_dim
        for h in hidden[:-1]:
            torso += [nn.Linear(width, h), act()]
            width = h
        torso += [nn.Linear(width, hidden[-1]), act()]
        self.torso = nn.Sequential(*torso)
        self.value = nn.Linear(hidden[-1], 1)
        self.advantage = nn.Linear(hidden[-1], num_actions)
        self.num_actions = num_actions

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.torso(x)
        adv = self.advantage(h)
        return self.value(h) + adv - adv.mean(dim=1, keepdim=True)


class StateActionQNetwork(nn.Module):
    """The notebook's state-action form ``q_hat(s, a, w)``: an MLP on ``[s, encode(a)]`` -> scalar.

    ``forward(states (B, obs_dim), actions (B,) int64) -> (B,)``; ``all_actions(states)``
    evaluates every action and returns ``(B, A)`` (one batched forward of ``B * A`` rows), so
    the same losses and policies work as with a multi-head network. ``action_encoding`` is
    ``"one_hot"`` (default) or ``"index"`` (the action number as one float input, as in the
    course notebook).
    """

    def __init__(
        self,
        obs_dim: int,
        num_actions: int,
        hidden: Sequence[int] = (64, 64),
        activation: str = "relu",
        action_encoding: str = "one_hot",
    ) -> None:
        super().__init__()
        if action_encoding not in ("one_hot", "index"):
            raise ValueError(
                f"action_encoding: {action_encoding!r} is not 'one_hot' or 'index'"
            )
        width = num_actions if action_encoding == "one_hot" else 1
        self.body = MLP(obs_dim + width, 1, hidden, activation)
        self.num_actions = num_actions
        self.action_encoding = action_encoding

    def _encode(self, actions: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        if self.action_encoding == "one_hot":
            return nn.functional.one_hot(actions, self.num_actions).to(dtype)
        return actions.to(dtype).unsqueeze(-1)

    def forward(self, states: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        x = torch.cat([states, self._encode(actions, states.dtype)], dim=-1)
        return self.body(x).squeeze(-1)

    def all_actions(self, states: torch.Tensor) -> torch.Tensor:
        batch = states.shape[0]
        actions = torch.arange(self.num_actions, device=states.device).repeat(batch)
        rows = states.repeat_interleave(self.num_actions, dim=0)
        return self.forward(rows, actions).view(batch, self.num_actions)


class LinearValue(nn.Module):
    """Linear value function ``v_hat(s, w) = w . x(s)`` (+ optional bias): ``(B, d) -> (B,)``.

    With a linear ``v_hat`` the gradient is the feature vector, ``grad v_hat(s, w) = x(s)``
    (Sutton & Barto 9.4).
    """

    def __init__(self, num_features: int, bias: bool = False) -> None:
        super().__init__()
        self.linear = nn.Linear(num_features, 1, bias=bias)
        nn.init.zeros_(self.linear.weight)
        if bias:
            nn.init.zeros_(self.linear.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x).squeeze(-1)


class ValueNetwork(MLP):
    """Nonlinear state-value network ``v_hat(s, w)``: ``(B, obs_dim) -> (B,)``."""

    def __init__(
        self, obs_dim: int, hidden: Sequence[int] = (64, 64), activation: str = "relu"
    ) -> None:
        super().__init__(obs_dim, 1, hidden, activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x).squeeze(-1)
