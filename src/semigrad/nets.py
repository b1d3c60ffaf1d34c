"""Value networks: MLP, multi-head Q ``(B, A)``, dueling Q, state-action Q, linear value; and
the Q-ensembles that run K agents' networks at once (seeds as a batch dimension).

A Q-ensemble holds K networks of one architecture, agent k's in row k of every parameter, and
maps ``x (K, M, *obs_shape) -> q (K, M, A)``. Two backends share one small interface
(``params``, ``forward``, ``backward``, ``__call__``, ``clone``, ``agent_state_dict``):

- ``StackedMLP``, the fast path for ``QNetwork`` and ``DuelingQNetwork``: stacked weights run
  with batched matmuls and a hand-written backward pass (no autograd tape); ``StackedConvNet``
  extends it to the MinAtar network (its convolution as a layer on image patches).
- ``ModuleEnsemble``, the general path for any ``nn.Module``: its parameters stacked along
  dimension 0 and run with ``torch.vmap(functional_call)``, with autograd for the backward pass.

``backward(cache, grad_q)`` sets every ``params[i].grad`` to ``d (sum_ij grad_q_ij q_ij) /
d params[i]``; no operation mixes rows, so agent k's gradient depends on agent k's data only.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence

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
    activation (Linear + LayerNorm + activation with ``layer_norm``: Ba et al. 2016, as PQN
    normalises, Gallici et al. 2025), the last layer is Linear only.
    """

    def __init__(
        self, in_dim: int, out_dim: int, hidden: Sequence[int] = (64, 64),
        activation: str = "relu", layer_norm: bool = False,
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
            layers += [nn.Linear(width, h), *([nn.LayerNorm(h)] if layer_norm else []), act()]
            width = h
        layers.append(nn.Linear(width, out_dim))
        self.net = nn.Sequential(*layers)
        self.in_dim, self.out_dim = in_dim, out_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class QNetwork(MLP):
    """Multi-head Q network: states ``(B, obs_dim)`` -> action values ``(B, num_actions)``
    (``layer_norm``: each hidden layer normalised before its activation, see ``MLP``)."""

    def __init__(
        self,
        obs_dim: int,
        num_actions: int,
        hidden: Sequence[int] = (64, 64),
        activation: str = "relu",
        layer_norm: bool = False,
    ) -> None:
        super().__init__(obs_dim, num_actions, hidden, activation, layer_norm)
        self.num_actions = num_actions


class DuelingQNetwork(nn.Module):
    """Dueling architecture (Wang et al., 2016): ``q = v(s) + a(s, .) - mean_a a(s, a)``.

    A shared torso feeds a value head ``(B, 1)`` and an advantage head ``(B, A)``;
    output ``(B, A)``. ``layer_norm``: the torso's layers are Linear + LayerNorm + activation.
    """

    def __init__(
        self,
        obs_dim: int,
        num_actions: int,
        hidden: Sequence[int] = (64, 64),
        activation: str = "relu",
        layer_norm: bool = False,
    ) -> None:
        super().__init__()
        if not hidden:
            raise ValueError("DuelingQNetwork: needs at least one hidden layer for the torso")
        act = _activation(activation)
        torso: list[nn.Module] = []
        width = obs_dim
        norm = (lambda h: [nn.LayerNorm(h)]) if layer_norm else (lambda h: [])
        for h in hidden[:-1]:
            torso += [nn.Linear(width, h), *norm(h), act()]
            width = h
        torso += [nn.Linear(width, hidden[-1]), *norm(hidden[-1]), act()]
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

    ``forward(states (B, obs_dim), actions (B,) int64) -> (B,)``; ``forward(states)`` (or
    ``all_actions(states)``) evaluates every action and returns ``(B, A)`` (one batched
    forward of ``B * A`` rows), so the same losses and policies work as with a multi-head
    network. ``action_encoding`` is ``"one_hot"`` (default) or ``"index"`` (the action number
    as one float input, as in the course notebook).
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

    def forward(self, states: torch.Tensor, actions: torch.Tensor | None = None) -> torch.Tensor:
        """``q_hat(states, actions) (B,)``; without ``actions``, every action's: ``(B, A)``
        (``all_actions``), the shape every other Q-network gives."""
        if actions is None:
            return self.all_actions(states)
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


class ChannelLayerNorm(nn.LayerNorm):
    """LayerNorm over the channels at each position of ``(B, C, H, W)`` feature maps: what a
    channels-last LayerNorm computes (as PQN's convolutional networks normalise, Gallici et
    al. 2025). ``ChannelLayerNorm(C)``; weight and bias ``(C,)``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.movedim(1, -1)).movedim(-1, 1)


class ConvQNetwork(nn.Module):
    """A convolutional Q-network on flat frame rows: ``(B, prod(obs_shape)) -> (B, A)``.

    Rows of any dtype (uint8 or bool frames, as the replay stores them) are viewed as
    ``obs_shape = (C, H, W)``, turned to float and multiplied by ``scale`` inside the network.
    ``dueling``: a value and an advantage head on the last hidden layer (Wang et al., 2016).
    ``layer_norm``: each convolution is followed by a ``ChannelLayerNorm`` and the hidden
    Linear by a ``LayerNorm``, before their ReLUs.
    """

    def __init__(self, obs_shape: Sequence[int], num_actions: int, convs: Sequence[tuple],
                 hidden: int, scale: float = 1.0, dueling: bool = False,
                 layer_norm: bool = False) -> None:
        super().__init__()
        self.obs_shape, self.scale = frame_shape(obs_shape, "ConvQNetwork"), scale
        self.torso = nn.Sequential(*conv_layers(self.obs_shape[0], convs, layer_norm),
                                   nn.Flatten())
        self.fc = nn.Sequential(nn.Linear(flat_width(self.torso, self.obs_shape), hidden),
                                *([nn.LayerNorm(hidden)] if layer_norm else []), nn.ReLU())
        self.head = nn.Linear(hidden, num_actions + (1 if dueling else 0))
        self.num_actions, self.dueling = num_actions, dueling

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = frames_in(x, self.obs_shape, self.head.weight.dtype, self.scale)
        out = self.head(self.fc(self.torso(x)))
        if self.dueling:
            adv = out[..., 1:]
            return out[..., :1] + adv - adv.mean(dim=-1, keepdim=True)
        return out


# The built-in convolutional networks: (convolutions as (filters, kernel, stride), the width of
# the one hidden Linear layer after them, the scale frames are multiplied by).
# MinAtar (Young & Tian 2019): one 3x3 convolution with 16 filters (stride 1), a 128-unit layer;
# frames are 0/1, not scaled. Nature DQN (Mnih et al. 2015): 32 8x8 filters stride 4, 64 4x4
# stride 2, 64 3x3 stride 1, a 512-unit layer; uint8 frames scaled by 1/255.
CONV_SPECS: dict[str, tuple[tuple[tuple[int, int, int], ...], int, float]] = {
    "minatar": (((16, 3, 1),), 128, 1.0),
    "nature": (((32, 8, 4), (64, 4, 2), (64, 3, 1)), 512, 1.0 / 255.0),
}


def frame_shape(obs_shape: Sequence[int], who: str) -> tuple[int, int, int]:
    """``obs_shape`` as a ``(C, H, W)`` tuple of ints, or one ``ValueError`` naming ``who``."""
    if len(obs_shape) != 3:
        raise ValueError(f"{who}: obs_shape must be (C, H, W), got {tuple(obs_shape)}")
    return tuple(int(d) for d in obs_shape)


def conv_layers(channels: int, convs: Sequence[tuple], layer_norm: bool = False
                ) -> list[nn.Module]:
    """Convolutions ``(filters, kernel, stride)`` from ``channels`` input channels, each
    followed by a ReLU (and before it a ``ChannelLayerNorm`` with ``layer_norm``)."""
    layers: list[nn.Module] = []
    for out, kernel, stride in convs:
        layers += [nn.Conv2d(channels, out, kernel, stride),
                   *([ChannelLayerNorm(out)] if layer_norm else []), nn.ReLU()]
        channels = out
    return layers


def flat_width(torso: nn.Module, obs_shape: tuple[int, int, int]) -> int:
    """The number of features ``torso`` makes of one ``obs_shape`` frame."""
    with torch.no_grad():
        return torso(torch.zeros(1, *obs_shape)).shape[1]


def frames_in(x: torch.Tensor, obs_shape: tuple[int, int, int], dtype: torch.dtype,
              scale: float) -> torch.Tensor:
    """Flat frame rows of any dtype (uint8 or bool, as the replay stores them) as ``(B, C, H,
    W)`` of ``dtype``, multiplied by ``scale``."""
    x = x.reshape(-1, *obs_shape).to(dtype)
    return x * scale if scale != 1.0 else x


def minatar_q_network(obs_shape: Sequence[int], num_actions: int, dueling: bool = False,
                      layer_norm: bool = False) -> ConvQNetwork:
    """The MinAtar network (``CONV_SPECS["minatar"]``)."""
    return ConvQNetwork(obs_shape, num_actions, *CONV_SPECS["minatar"], dueling, layer_norm)


def nature_q_network(obs_shape: Sequence[int], num_actions: int, dueling: bool = False,
                     layer_norm: bool = False) -> ConvQNetwork:
    """The Nature DQN network (``CONV_SPECS["nature"]``)."""
    return ConvQNetwork(obs_shape, num_actions, *CONV_SPECS["nature"], dueling, layer_norm)


CONV_NETWORKS = {"minatar": minatar_q_network, "nature": nature_q_network}


def network_factory(spec: str) -> Callable[[int, int], nn.Module]:
    """The function named by ``"package.module:function"`` (found in the current folder too),
    or one ``ConfigError``."""
    from semigrad.config import ConfigError
    from semigrad.importing import import_user_module

    module, colon, name = spec.partition(":")
    if not colon or not module or not name:
        raise ConfigError(f"network: expected 'mlp' or 'package.module:function', got {spec!r}")
    try:
        factory = getattr(import_user_module(module), name)
    except (ImportError, AttributeError) as err:
        raise ConfigError(f"network: cannot import {spec!r} ({type(err).__name__}: {err})") \
            from None
    if not callable(factory):
        raise ConfigError(f"network: {spec!r} is not callable")
    return factory


def build_q_network(network: str, obs_dim: int, num_actions: int,
                    obs_shape: Sequence[int] | None = None, *, hidden: Sequence[int] = (64, 64),
                    activation: str = "relu", dueling: bool = False,
                    layer_norm: bool = False, env_id: str = "the env") -> nn.Module:
    """One agent's Q-network ``(B, obs_dim) -> (B, num_actions)`` named by ``network``: "mlp"
    (``QNetwork``, or ``DuelingQNetwork`` with ``dueling``; ``hidden``, ``activation``,
    ``layer_norm``), a convolutional one of ``CONV_NETWORKS`` (frames ``obs_shape = (C, H,
    W)``), or a factory ``module:function`` called as ``function(obs_dim, num_actions)``."""
    from semigrad.config import ConfigError

    if network == "mlp":
        cls = DuelingQNetwork if dueling else QNetwork
        return cls(obs_dim, num_actions, hidden, activation, layer_norm)
    if network in CONV_NETWORKS:
        if obs_shape is None or len(obs_shape) != 3:
            raise ConfigError(f"network: {network} takes frames (C, H, W); {env_id} has "
                              f"flat observations of {obs_dim} numbers: use network mlp")
        return CONV_NETWORKS[network](obs_shape, num_actions, dueling, layer_norm)
    net = network_factory(network)(obs_dim, num_actions)
    if not isinstance(net, nn.Module):
        raise ConfigError(f"network: {network} returned a {type(net).__name__}, not an "
                          "nn.Module")
    return net


def check_backend(backend: str, network: str, activation: str) -> None:
    """One ``ConfigError`` unless ``backend`` ("auto", "stacked", "vmap") can run ``network``
    with ``activation``: the stacked fast path runs the MLP with ``STACKED_ACTIVATIONS`` and
    the MinAtar network."""
    from semigrad.config import ConfigError, check_choice

    check_choice("q_backend", backend, ("auto", "stacked", "vmap"))
    if backend == "stacked" and not (
            network == "minatar" or (network == "mlp" and activation in STACKED_ACTIVATIONS)):
        raise ConfigError(f"q_backend: 'stacked' runs network mlp with activation "
                          f"{', '.join(STACKED_ACTIVATIONS)} and network minatar, not "
                          f"{network} with {activation}; use 'vmap' or 'auto'")


# ----------------------------------------------------------------------------- Q-ensembles


# Outputs of at least this many elements are written into buffers the ensemble keeps from one
# call to the next instead of fresh tensors. For K agents' minibatches (32 x 256 x 128 floats
# is 4 MB) a fresh tensor is fresh memory on every gradient step: the allocator hands large
# blocks back to the system and the next step pays page faults and cache misses to write them
# (about a sixth of a K = 32 step of the cartpole preset; benchmarks/many_seeds.py). Smaller
# outputs (one agent's) are cheaper to allocate than to look up.
REUSE_MIN_NUMEL = 1 << 16


def _reused(store: dict, key: object, shape: tuple[int, int, int],
            like: torch.Tensor) -> torch.Tensor:
    """The buffer ``store`` keeps under ``key`` for a ``shape`` output of ``like``'s dtype and
    device (made on first use)."""
    key = (key, shape, like.dtype, like.device)
    buf = store.get(key)
    if buf is None:
        buf = store[key] = torch.empty(shape, dtype=like.dtype, device=like.device)
    return buf


def _bmm(a: torch.Tensor, b: torch.Tensor, store: dict | None = None,
         key: object = None) -> torch.Tensor:
    """``a @ b`` for ``(K, M, P) x (K, P, N)``; computed as ``(b^T a^T)^T`` when ``N < M``.

    The thin products of small MLPs (``N`` = the number of actions) run several times faster
    that way in MKL's batched gemm on CPU (``benchmarks/many_seeds.py``). ``store``, ``key``:
    an output of at least ``REUSE_MIN_NUMEL`` elements goes into the buffer ``store`` keeps
    under ``key`` (and its shape).
    """
    k, m, n = a.shape[0], a.shape[1], b.shape[2]
    if store is None or k * m * n < REUSE_MIN_NUMEL:
        return torch.bmm(b.mT, a.mT).mT if n < m else torch.bmm(a, b)
    if n < m:
        return torch.bmm(b.mT, a.mT, out=_reused(store, key, (k, n, m), a)).mT
    return torch.bmm(a, b, out=_reused(store, key, (k, m, n), a))


def _affine(a: torch.Tensor, b: torch.Tensor, bias: torch.Tensor, store: dict | None = None,
            key: object = None) -> torch.Tensor:
    """``a @ b + bias`` (``bias (K, 1, N)``) in one fused kernel, in ``_bmm``'s orientation
    (and, with ``store``, into a kept buffer as ``_bmm``)."""
    k, m, n = a.shape[0], a.shape[1], b.shape[2]
    if store is None or k * m * n < REUSE_MIN_NUMEL:
        return torch.baddbmm(bias.mT, b.mT, a.mT).mT if n < m else torch.baddbmm(bias, a, b)
    if n < m:
        return torch.baddbmm(bias.mT, b.mT, a.mT, out=_reused(store, key, (k, n, m), a)).mT
    return torch.baddbmm(bias, a, b, out=_reused(store, key, (k, m, n), a))


# activation -> (in-place forward, derivative from the activation's output h, written into g)
_ops = torch.ops.aten
_STACKED_ACTIVATIONS = {
    "relu": (torch.relu_, lambda g, h, f=_ops.threshold_backward.grad_input:
             f(g, h, 0, grad_input=g)),
    "tanh": (torch.tanh_, lambda g, h, f=_ops.tanh_backward.grad_input: f(g, h, grad_input=g)),
    "elu": (torch.nn.functional.elu_, lambda g, h, f=_ops.elu_backward.grad_input:
            f(g, 1.0, 1, 1, True, h, grad_input=g)),
}
STACKED_ACTIVATIONS = tuple(_STACKED_ACTIVATIONS)


def _grad_buffer(p: torch.Tensor) -> torch.Tensor | None:
    """``p.grad`` when a product can be written into it (at least ``REUSE_MIN_NUMEL``
    elements, ``p``'s shape, dtype and device, contiguous), else None."""
    g = p.grad
    if (g is None or g.numel() < REUSE_MIN_NUMEL or g.shape != p.shape or g.dtype != p.dtype
            or g.device != p.device or not g.is_contiguous()):
        return None
    return g


class StackedMLP:
    """K MLPs with stacked weights: ``(K, M, in) -> (K, M, out)``, backward written out.

    ``params = [W1 (K, in, h1), b1 (K, 1, h1), ..., WL (K, h, out), bL (K, 1, out)]``: layer l
    is ``z_l = h_{l-1} W_l + b_l``, ``h_l = act(z_l)`` except on the last layer. ``backward``
    writes the gradients into ``p.grad``: with ``g_L = d loss / d out``, ``dW_l = h_{l-1}^T
    g_l``, ``db_l = sum_m g_l``, ``g_{l-1} = (g_l W_l^T) * act'(z_{l-1})``, the derivative taken
    from the activation's output (so ``activation`` is one of ``STACKED_ACTIVATIONS``: relu,
    tanh, elu). No autograd tape: cheaper for small layers, and each product runs in its
    fastest orientation (``_bmm``).

    ``layer_norm`` (the networks' ``layer_norm=True``): every hidden layer is ``h_l =
    act(gamma_l * xhat_l + beta_l)``, ``xhat_l = (z_l - mean(z_l)) / sqrt(var(z_l) + eps)``
    over its units, and ``params`` hold ``W_l, b_l, gamma_l (K, 1, h_l), beta_l (K, 1, h_l)``
    per hidden layer (the modules' order). Backward: ``d gamma = sum_m g * xhat``, ``d beta =
    sum_m g``, and ``d z = rstd (g' - mean(g') - xhat mean(g' xhat))`` with ``g' = g *
    gamma`` (aten's layer-norm backward kernel, the one autograd runs).

    Large outputs (many agents' minibatches, ``REUSE_MIN_NUMEL``) go into buffers kept between
    calls, and the weight gradients into the existing ``p.grad`` (as autograd accumulates into
    it): ``forward``'s cache is this ensemble's own and holds until its next ``forward``; the
    hidden activations of ``__call__`` and ``backward``'s intermediate products live in scratch
    buffers that ``clone()`` shares (an online network and its target), so one ensemble and its
    clones are used from one thread at a time. The arithmetic is the same as with fresh
    tensors, bit for bit.
    """

    needs_autograd = False

    def __init__(self, params: Sequence[torch.Tensor], dueling: bool = False,
                 activation: str = "relu", scratch: dict | None = None, *,
                 layer_norm: bool = False, eps: float = 1e-5) -> None:
        if activation not in _STACKED_ACTIVATIONS:
            raise ValueError(f"activation: the stacked MLP backend takes "
                             f"{', '.join(STACKED_ACTIVATIONS)}, not {activation!r}; use the "
                             "general backend (q_backend='vmap') for it")
        self.params = list(params)
        self.dueling, self.activation = dueling, activation
        self.layer_norm, self.eps = layer_norm, eps
        # each layer's (index of W in params, index of gamma or None); beta follows gamma
        per = 4 if layer_norm else 2
        if (len(self.params) - 2) % per:
            raise ValueError(f"StackedMLP: {len(self.params)} parameters do not make layers of "
                             f"{per} and a last layer of 2")
        hidden = (len(self.params) - 2) // per
        self._layers = [(per * i, per * i + 2 if layer_norm else None) for i in range(hidden)]
        self._layers.append((per * hidden, None))
        self._act, self._act_grad = _STACKED_ACTIVATIONS[activation]
        self._cache: dict = {}  # forward's activations (the cache backward reads)
        self._scratch: dict = {} if scratch is None else scratch  # shared with clones

    @classmethod
    def stack(cls, nets: Sequence[nn.Module], device: torch.device,
              activation: str = "relu") -> StackedMLP:
        """From K ``QNetwork``s or ``DuelingQNetwork``s; ``nn.Linear``'s ``(out, in)`` weights
        are transposed, a ``LayerNorm``'s weight and bias become ``(K, 1, h)``. A dueling
        network's value and advantage heads become one last layer with ``1 + A`` outputs
        (value first)."""
        dueling = isinstance(nets[0], DuelingQNetwork)
        layers = [[m for m in net.modules() if isinstance(m, (nn.Linear, nn.LayerNorm))]
                  for net in nets]
        norms = [m for m in layers[0] if isinstance(m, nn.LayerNorm)]
        params = []
        for i in range(len(layers[0]) - (1 if dueling else 0)):
            if isinstance(layers[0][i], nn.LayerNorm):
                for name in ("weight", "bias"):
                    params.append(torch.stack([getattr(net[i], name).detach()
                                               for net in layers]).unsqueeze(1))
                continue
            heads = (slice(i, i + 2) if dueling and i == len(layers[0]) - 2
                     else slice(i, i + 1))
            params.append(torch.stack([torch.cat([m.weight.detach().T for m in net[heads]], 1)
                                       for net in layers]))
            params.append(torch.stack([torch.cat([m.bias.detach() for m in net[heads]])
                                       for net in layers]).unsqueeze(1))
        return cls([p.to(device).contiguous() for p in params], dueling, activation,
                   layer_norm=bool(norms), eps=norms[0].eps if norms else 1e-5)

    def clone(self) -> StackedMLP:
        return StackedMLP([p.clone() for p in self.params], self.dueling, self.activation,
                          self._scratch, layer_norm=self.layer_norm, eps=self.eps)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """``x (K, M, in)`` -> ``(q (K, M, A), inputs of every layer)`` for ``backward``.

        Dueling (Wang et al., 2016): the last layer gives ``[v, a_1..a_A]`` and
        ``q = v + a - mean(a)``. ``q`` is a fresh tensor; the inputs are valid until the next
        ``forward`` (kept buffers, see the class)."""
        return self._forward(x, self._cache)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self._forward(x, self._scratch)[0]

    def _forward(self, x: torch.Tensor, store: dict) -> tuple[torch.Tensor, list]:
        if self.layer_norm:
            return self._forward_normed(x, store)
        inputs = []
        last = len(self.params) - 2
        for i in range(0, last + 2, 2):
            inputs.append(x)
            if i == last:  # q: a fresh tensor
                x = _affine(x, self.params[i], self.params[i + 1])
            else:
                x = self._act(_affine(x, self.params[i], self.params[i + 1], store, i))
        return self._head(x), inputs

    def _head(self, x: torch.Tensor) -> torch.Tensor:
        if self.dueling:
            adv = x[..., 1:]
            x = adv - adv.mean(dim=-1, keepdim=True) + x[..., :1]
        return x

    def _forward_normed(self, x: torch.Tensor, store: dict) -> tuple[torch.Tensor, list]:
        """``_forward`` with LayerNorm: the cache is ``[inputs, norms]``, ``norms[l] = (z,
        xhat, mean, rstd)`` of hidden layer l."""
        inputs, norms = [], []
        p = self.params
        for i, j in self._layers:
            inputs.append(x)
            if j is None:  # the last layer: q, a fresh tensor
                x = _affine(x, p[i], p[i + 1])
                break
            x = self._normed_layer(x, i, j, store, norms)
        return self._head(x), [inputs, norms]

    def _normed_layer(self, x: torch.Tensor, i: int, j: int, store: dict | None,
                      norms: list) -> torch.Tensor:
        """``act(gamma * LayerNorm(x W + b) + beta)`` with W, b at ``params[i]``, gamma, beta
        at ``params[j]``; ``(z, xhat, mean, rstd)`` appended to ``norms`` for ``backward``."""
        p = self.params
        z = _affine(x, p[i], p[i + 1], store, i) if store is not None else \
            _affine(x, p[i], p[i + 1])
        xhat, mean, rstd = _ops.native_layer_norm(z, [z.shape[-1]], None, None, self.eps)
        norms.append((z, xhat, mean, rstd))
        return self._act(torch.addcmul(p[j + 1], xhat, p[j]))

    def backward(self, inputs: list, grad_out: torch.Tensor) -> None:
        """Set every ``p.grad`` from ``grad_out (K, M, out)`` and ``forward``'s cache
        (``inputs``: each layer's input; with LayerNorm ``[inputs, norms]``)."""
        norms = None
        if self.layer_norm:
            inputs, norms = inputs
        g = grad_out
        if self.dueling:  # d q_j / d v = 1, d q_j / d a_i = [i == j] - 1 / A
            total = g.sum(dim=-1, keepdim=True)
            g = torch.cat([total, g - total / g.shape[-1]], dim=-1)
        for layer in range(len(inputs) - 1, -1, -1):
            i = self._layers[layer][0]
            w, b, h = self.params[i], self.params[i + 1], inputs[layer]
            g = g.reshape(*h.shape[:2], -1)  # a no-op but after StackedConvNet's first layer
            if g.shape[2] < h.shape[2]:  # _bmm's transposed form, then w's layout
                w.grad = _bmm(h.mT, g).contiguous()
            elif w.numel() < REUSE_MIN_NUMEL:
                w.grad = torch.bmm(h.mT, g)
            else:
                w.grad = torch.bmm(h.mT, g, out=_grad_buffer(w))
            b.grad = g.sum(dim=1, keepdim=True)
            if layer > 0:  # the activation's derivative kernel autograd uses, from its output;
                # g (K, M, in) takes the scratch buffer of the layer input's forward output
                below, norm = self._layers[layer - 1]
                g = self._act_grad(_bmm(g, w.mT, self._scratch, below), h)
                if norm is not None:  # through y = gamma * xhat + beta, then the normalisation
                    z, xhat, mean, rstd = norms[layer - 1]
                    g = g.reshape(z.shape)  # a no-op but after StackedConvNet's convolution
                    gamma, beta = self.params[norm], self.params[norm + 1]
                    gamma.grad = (g * xhat).sum(dim=1, keepdim=True)
                    beta.grad = g.sum(dim=1, keepdim=True)
                    g = _ops.native_layer_norm_backward(
                        g * gamma, z, [z.shape[-1]], mean, rstd, None, None,
                        [True, False, False])[0]

    def agent_state_dict(self, k: int, template: nn.Module) -> dict:
        """Agent k's weights under ``template``'s (a ``QNetwork``'s or ``DuelingQNetwork``'s)
        parameter names."""
        names = [name for name, _ in template.named_parameters()]
        values = []
        for i, j in self._layers:
            w, b = self.params[i][k].T, self.params[i + 1][k, 0]
            if self.dueling and i + 2 == len(self.params):  # value head, then advantage head
                values += [w[:1].contiguous(), b[:1].clone(), w[1:].contiguous(), b[1:].clone()]
            else:
                values += [w.contiguous(), b.clone()]
            if j is not None:  # the layer's LayerNorm: weight, bias
                values += [self.params[j][k, 0].clone(), self.params[j + 1][k, 0].clone()]
        return dict(zip(names, values, strict=True))


class StackedConvNet(StackedMLP):
    """K copies of a ``ConvQNetwork`` with one stride-1 convolution (the MinAtar network) on
    the fast path: the convolution is an MLP layer applied to every ``k x k`` patch.

    ``x (K, M, C H W)`` is gathered into patches ``(K, M P, C k k)`` (P output positions; a
    fixed index, computed once), the first layer maps each patch to the filters' outputs, and
    the rest is ``StackedMLP`` on ``(K, M, P * filters)``: the first hidden layer's weight rows
    are reordered from PyTorch's flatten order (filter-major) to this one (position-major). The
    backward pass is ``StackedMLP``'s; no gradient with respect to the frames is needed. The
    same numbers as ``ConvQNetwork`` up to float rounding (tested). ``layer_norm`` (a network
    built with ``layer_norm=True``): the ``ChannelLayerNorm`` of each position's filters is the
    ``StackedMLP`` LayerNorm of each patch's row, and the hidden layer's is the MLP's.
    """

    def __init__(self, params, dueling, patches: torch.Tensor, scale: float,
                 scratch: dict | None = None, *, layer_norm: bool = False,
                 eps: float = 1e-5) -> None:
        super().__init__(params, dueling, "relu", scratch, layer_norm=layer_norm, eps=eps)
        self.patches, self.scale = patches, scale

    @classmethod
    def fits(cls, net: nn.Module) -> bool:
        if type(net) is not ConvQNetwork:
            return False
        convs = [m for m in net.torso if isinstance(m, nn.Conv2d)]
        norms = [m for m in net.modules() if isinstance(m, nn.LayerNorm)]
        return (len(convs) == 1 and convs[0].stride == (1, 1) and convs[0].padding == (0, 0)
                and convs[0].dilation == (1, 1) and convs[0].groups == 1
                and convs[0].bias is not None
                and (not norms or (len(norms) == 2 and len(net.fc) == 3
                                   and isinstance(net.torso[1], ChannelLayerNorm)
                                   and all(m.elementwise_affine and m.bias is not None
                                           and m.eps == norms[0].eps for m in norms))))

    @staticmethod
    def _patch_index(shape: tuple[int, int, int], k: int) -> torch.Tensor:
        """``(P, C k k)`` indices into a flat ``(C, H, W)`` row, in the conv weight's order."""
        c, h, w = shape
        rows, cols = torch.meshgrid(torch.arange(h - k + 1), torch.arange(w - k + 1),
                                    indexing="ij")
        ch, di, dj = torch.meshgrid(torch.arange(c), torch.arange(k), torch.arange(k),
                                    indexing="ij")
        offsets = (ch * h * w + di * w + dj).reshape(1, -1)  # (1, C k k)
        return (rows.reshape(-1, 1) * w + cols.reshape(-1, 1)) + offsets

    @classmethod
    def stack(cls, nets: Sequence[nn.Module], device: torch.device,
              activation: str = "relu") -> StackedConvNet:
        conv = next(m for m in nets[0].torso if isinstance(m, nn.Conv2d))
        k, filters = conv.kernel_size[0], conv.out_channels
        patches = cls._patch_index(nets[0].obs_shape, k)
        positions = patches.shape[0]
        norm = isinstance(nets[0].torso[1], ChannelLayerNorm)
        row = lambda module, name: getattr(module, name).detach().unsqueeze(0)  # noqa: E731
        params = []
        for get in (
            lambda n: n.torso[0].weight.detach().reshape(filters, -1).T,  # (C k k, F)
            lambda n: row(n.torso[0], "bias"),
            *((lambda n: row(n.torso[1], "weight"), lambda n: row(n.torso[1], "bias"))
              if norm else ()),
            # fc rows: PyTorch flattens (F, P) filter-major; here (P, F) position-major
            lambda n: n.fc[0].weight.detach().T.reshape(filters, positions, -1)
            .transpose(0, 1).reshape(filters * positions, -1),
            lambda n: row(n.fc[0], "bias"),
            *((lambda n: row(n.fc[1], "weight"), lambda n: row(n.fc[1], "bias"))
              if norm else ()),
            lambda n: n.head.weight.detach().T,
            lambda n: row(n.head, "bias"),
        ):
            params.append(torch.stack([get(n) for n in nets]).to(device).contiguous())
        return cls(params, nets[0].dueling, patches.to(device), nets[0].scale,
                   layer_norm=norm, eps=nets[0].fc[1].eps if norm else 1e-5)

    def clone(self) -> StackedConvNet:
        return StackedConvNet([p.clone() for p in self.params], self.dueling, self.patches,
                              self.scale, self._scratch, layer_norm=self.layer_norm,
                              eps=self.eps)

    def _forward(self, x: torch.Tensor, store: dict) -> tuple[torch.Tensor, list[torch.Tensor]]:
        k, m = x.shape[:2]  # fresh outputs (store unused): the frames make small batches
        patches = x[:, :, self.patches].to(self.params[0].dtype)  # (K, M, P, C k k)
        if self.scale != 1.0:
            patches = patches * self.scale
        h0 = patches.reshape(k, m * self.patches.shape[0], -1)
        if self.layer_norm:
            norms: list = []
            (i1, j1), (i2, j2), (i3, _) = self._layers
            h1 = self._normed_layer(h0, i1, j1, None, norms).reshape(k, m, -1)
            h2 = self._normed_layer(h1, i2, j2, None, norms)
            out = self._head(_affine(h2, self.params[i3], self.params[i3 + 1]))
            return out, [[h0, h1, h2], norms]
        h1 = self._act(_affine(h0, self.params[0], self.params[1])).reshape(k, m, -1)
        h2 = self._act(_affine(h1, self.params[2], self.params[3]))
        out = _affine(h2, self.params[4], self.params[5])
        if self.dueling:
            adv = out[..., 1:]
            out = adv - adv.mean(dim=-1, keepdim=True) + out[..., :1]
        return out, [h0, h1, h2]

    def agent_state_dict(self, k: int, template: nn.Module) -> dict:
        """Agent k's weights under ``ConvQNetwork``'s names and layouts."""
        conv = template.torso[0]
        filters, positions = conv.out_channels, self.patches.shape[0]
        (i1, j1), (i2, j2), (i3, _) = self._layers
        w1, b1, w2, b2, w3, b3 = (self.params[i][k] for i in (i1, i1 + 1, i2, i2 + 1, i3,
                                                               i3 + 1))
        fc = w2.reshape(positions, filters, -1).transpose(0, 1).reshape(filters * positions, -1)
        out = {"torso.0.weight": w1.T.reshape(conv.weight.shape).contiguous(),
               "torso.0.bias": b1[0].clone(), "fc.0.weight": fc.T.contiguous(),
               "fc.0.bias": b2[0].clone(), "head.weight": w3.T.contiguous(),
               "head.bias": b3[0].clone()}
        if self.layer_norm:
            for name, j in (("torso.1", j1), ("fc.1", j2)):
                out[f"{name}.weight"] = self.params[j][k, 0].clone()
                out[f"{name}.bias"] = self.params[j + 1][k, 0].clone()
        return out


def _per_agent_call(template: nn.Module) -> Callable[[list, list, torch.Tensor], torch.Tensor]:
    """``call(params, buffers, x) -> stack_k module_k(x[k])``: K stacked copies of
    ``template`` run one agent at a time, agent k on row k of every stacked tensor
    (``params`` and ``buffers`` in ``named_parameters`` and ``named_buffers`` order).

    What ``torch.func.functional_call`` does, for one module over and over: a shell copy of
    ``template`` (on the meta device) has its parameters and buffers removed and each call
    puts agent k's rows in their place as plain attributes, a dictionary write each, where
    ``functional_call`` swaps and restores every tensor and checks for tied ones per call (on
    the MinAtar network with noisy layers, ~0.3 ms of a ~0.7 ms acting forward). Tied
    tensors (one tensor under two names) are served by the same stacked row.
    """
    shell = copy.deepcopy(template).to("meta")
    tensors = [t for _, t in (*template.named_parameters(), *template.named_buffers())]
    index = {id(t): i for i, t in enumerate(tensors)}  # position in [*params, *buffers]
    slots: dict[tuple[int, str], tuple[dict, str, int]] = {}  # owner's __dict__, name, row
    for store, named in (("_parameters", template.named_parameters(remove_duplicate=False)),
                         ("_buffers", template.named_buffers(remove_duplicate=False))):
        for full, tensor in named:
            path, _, leaf = full.rpartition(".")
            owner = shell.get_submodule(path)  # a module under two names is one owner
            getattr(owner, store).pop(leaf, None)
            slots[id(owner), leaf] = (owner.__dict__, leaf, index[id(tensor)])

    def call(params: list, buffers: list, x: torch.Tensor) -> torch.Tensor:
        # rows by unbind, not p[k]: autograd's backward of one unbind stacks the K agents'
        # gradients, where each p[k] would write its gradient into a zero tensor of p's whole
        # (K, ...) shape and add those K tensors up (~23% of a K = 3 forward and backward pass)
        rows = [t.unbind(0) for t in (*params, *buffers)]
        outs = []
        for k in range(x.shape[0]):
            for where, leaf, i in slots.values():
                where[leaf] = rows[i][k]
            outs.append(shell(x[k]))
        return torch.stack(outs)

    return call


class ModuleEnsemble:
    """K copies of any ``nn.Module`` (``(M, *obs_shape) -> (M, A)``), run as one with
    ``torch.vmap(functional_call)`` over its parameters stacked along dimension 0 (a module
    with convolutions: one plain call per agent on its rows, ``_per_agent_call``, faster on a
    CPU).

    ``forward`` records autograd's tape (even inside ``torch.no_grad``) and returns the output
    as its own cache; ``backward`` runs autograd from ``grad_q``. Buffers are stacked too, but
    a module that updates buffers in its forward pass (batch norm in training mode) is not
    supported.
    """

    needs_autograd = True

    def __init__(self, params: Sequence[torch.Tensor], buffers: Sequence[torch.Tensor],
                 template: nn.Module) -> None:
        from torch.func import functional_call

        self.params, self.buffers = list(params), list(buffers)
        self.template = template
        self._names = [n for n, _ in template.named_parameters()]
        self._buffer_names = [n for n, _ in template.named_buffers()]
        base = copy.deepcopy(template).to("meta")

        def one(params, buffers, x):
            return functional_call(base, (dict(zip(self._names, params, strict=True)),
                                          dict(zip(self._buffer_names, buffers, strict=True))),
                                   (x,))

        if any(isinstance(m, nn.modules.conv._ConvNd) for m in template.modules()):
            # convolutional modules: one plain call per agent (on its parameters' views), not
            # vmap, whose batched convolutions cost 1.7x a plain one for the Nature network on
            # a CPU core at K = 1 and 1.1x at K = 4; agent k is then computed exactly as a
            # single run computes it, whatever K
            self._call = _per_agent_call(template)
        else:
            self._call = torch.vmap(one)

    @classmethod
    def stack(cls, nets: Sequence[nn.Module], device: torch.device) -> ModuleEnsemble:
        params = [torch.stack([dict(n.named_parameters())[name].detach() for n in nets])
                  .to(device).requires_grad_() for name, _ in nets[0].named_parameters()]
        buffers = [torch.stack([dict(n.named_buffers())[name] for n in nets]).to(device)
                   for name, _ in nets[0].named_buffers()]
        return cls(params, buffers, nets[0])

    def clone(self) -> ModuleEnsemble:
        return ModuleEnsemble([p.detach().clone().requires_grad_() for p in self.params],
                              [b.clone() for b in self.buffers], self.template)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.enable_grad():
            q = self._call(self.params, self.buffers, x)
        return q, q

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self._call(self.params, self.buffers, x)

    def backward(self, q: torch.Tensor, grad_out: torch.Tensor) -> None:
        for p in self.params:
            p.grad = None
        torch.autograd.backward(q, grad_out)

    def agent_state_dict(self, k: int, template: nn.Module | None = None) -> dict:
        """Agent k's parameters and buffers under the module's own names."""
        return {**{n: p[k].detach().clone() for n, p in zip(self._names, self.params,
                                                             strict=True)},
                **{n: b[k].clone() for n, b in zip(self._buffer_names, self.buffers,
                                                   strict=True)}}


def q_ensemble(nets: Sequence[nn.Module], device: torch.device, backend: str = "auto",
               activation: str = "relu") -> StackedMLP | ModuleEnsemble:
    """The K networks ``nets`` (one architecture) as one Q-ensemble on ``device``.

    ``backend``: ``"stacked"`` (``StackedMLP``: ``QNetwork`` or ``DuelingQNetwork`` with a
    relu, tanh or elu ``activation``), ``"vmap"`` (``ModuleEnsemble``: any module), or
    ``"auto"``: stacked where it applies, else vmap.
    """
    conv = StackedConvNet.fits(nets[0])
    fits = conv or (type(nets[0]) in (QNetwork, DuelingQNetwork)
                    and activation in _STACKED_ACTIVATIONS)
    if backend == "stacked" and not fits:
        raise ValueError(f"q_backend: 'stacked' runs QNetwork and DuelingQNetwork with "
                         f"{', '.join(STACKED_ACTIVATIONS)} and the MinAtar network, not "
                         f"{type(nets[0]).__name__} with {activation!r}; use 'vmap' or 'auto'")
    if backend == "vmap" or (backend == "auto" and not fits):
        return ModuleEnsemble.stack(nets, device)
    return (StackedConvNet if conv else StackedMLP).stack(nets, device, activation)


def acting_mode(ensemble: StackedMLP | ModuleEnsemble):
    """The cheapest autograd context for acting and learning with ``ensemble``: inference
    mode, except for the general backend, whose forward records autograd's tape."""
    return torch.no_grad() if ensemble.needs_autograd else torch.inference_mode()


def seeded_q_ensemble(build: Callable[[], nn.Module], seeds: Sequence[int],
                      device: torch.device, backend: str = "auto",
                      activation: str = "relu") -> StackedMLP | ModuleEnsemble:
    """The Q-ensemble of K agents whose networks agent k's seed alone initialises: ``build()``
    right after ``torch.manual_seed(seeds[k])``, then ``q_ensemble``. Agent k's initial
    weights are those of a single run seeded ``seeds[k]``, whatever the other seeds are."""
    nets = []
    for s in seeds:
        torch.manual_seed(s)
        nets.append(build())
    return q_ensemble(nets, device, backend, activation)
