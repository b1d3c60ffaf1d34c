"""K independent DQN agents trained in one process, seeds as a batch dimension.

PureJaxRL's idea (Lu et al., 2022) in PyTorch: the algorithm and hyper-parameters are
``semigrad.algos.dqn``'s (``DQNConfig``, its presets), run for K seeds in lockstep. Each agent k
has its own weights, Adam moments, replay buffer, exploration, environments and seed; where one
agent would run one tensor operation, the K agents run one batched operation:

- networks: the K online (and target) MLPs are stacked layer by layer, ``W (K, in, out)``,
  ``b (K, 1, out)``, and run with batched matmuls (``torch.bmm``) on ``(K, M, in)`` inputs ->
  ``(K, M, A)`` (``StackedMLP``), with the backward pass written out (no autograd tape).
  Stacked weights were chosen over ``torch.func.functional_call`` + ``vmap`` because they are
  faster on CPU for small MLPs: forward + backward of 32 stacked 4-64-64-2 MLPs on 128 rows
  each, one thread, took 3.8 ms with ``baddbmm`` + autograd vs 5.1 ms with vmap (vmap runs
  each ``nn.Linear`` as a matmul against a transposed weight plus a separate bias add, with
  dispatch work per operation); the hand-written backward then saves the tape and lets each
  product run in its fastest orientation (``_bmm``).
- loss: agent k's loss is ``value_loss`` over its own minibatch
  (``losses.value_loss_per_row``: the mean is per agent), and d loss / d q is that of the sum
  of the K losses, in closed form (``losses.value_loss_and_grad_per_row``, equal to
  autograd's): ``d(sum_j L_j) / d q_k = d L_k / d q_k``, every agent gets exactly its own
  gradient, at its taken actions only. Targets come from ``q_learning_targets`` on the
  flattened ``(K * B,)`` batch (row-wise math, without gradient). On the CPU one compiled loop
  computes targets, losses and d loss / d q together (``q_loss_kernel``), the same numbers to
  float32 rounding.
- gradient clipping uses each agent's own global norm (``clip_grad_norm_per_agent``); Adam is
  element-wise, so one Adam over the stacked tensors is K independent Adams.
- replay: one ``ReplayBuffer`` of capacity ``K * C`` written ``K * N`` transitions at a time, so
  its ring is laid out ``(C / N, K, N)``: agent k owns slots ``t K N + k N + n`` and draws its
  minibatches from those only (``AgentReplay``).
- randomness: agent k's exploration and minibatch indices come from one generator seeded with
  its seed, through ``AgentUniforms`` (uniforms drawn for all K agents in chunks: K generator
  calls per chunk, not per step). Its environments draw their initial states from a second
  generator seeded with its seed: for CartPole-v1 one ``TorchCartPole`` of ``K * N`` envs whose
  draws come per agent (``AgentsCartPole``; on CPU agent k's initial states are exactly those of
  ``TorchCartPole(N, seed=seed_k)``, the single run's), for other ids K envs from ``envs.make``
  with the agents' seeds, stepped one after another (``StackedEnvs``).

Nothing agent k computes depends on another agent's seed or data, so changing agent j leaves
agent k's weights bit-identical (``tests/test_dqn_many.py``). Network initialisation is the
single run's (``torch.manual_seed(seed)`` then ``make_q_network``); exploration, sampling and
summation orders differ, so agent k does not reproduce ``dqn.train(seed=k)`` number for number,
only in distribution. The dueling head is supported (one last layer with ``1 + A`` outputs),
and so is an exact resume (``save_checkpoint`` / ``restore_state``).
"""

from __future__ import annotations

import io
import math
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from semigrad import envs
from semigrad.algos import dqn
from semigrad.algos.dqn import DQNConfig, epsilon_at, lr_at
from semigrad.buffers import Batch, ReplayBuffer
from semigrad.compiled import load_kernel
from semigrad.config import ConfigError, to_dict
from semigrad.devices import resolve_device
from semigrad.envs.cartpole import INIT_HIGH, INIT_LOW, TorchCartPole
from semigrad.losses import q_learning_targets, value_loss_and_grad_per_row
from semigrad.nets import DuelingQNetwork
from semigrad.optim import lean_step
from semigrad.run import (
    CtrlC,
    MetricsLog,
    atomic_write_bytes,
    atomic_write_json,
    truncate_metrics,
)

WEIGHTS_FORMAT = dqn.CHECKPOINT_FORMAT + "-weights"  # what `semigrad eval` loads
CHECKPOINT_FORMAT = dqn.CHECKPOINT_FORMAT + "-many"  # all K agents' state, for resuming


def check_supported(cfg: DQNConfig, seeds: Sequence[int]) -> None:
    """Raise ``ConfigError`` for options or seeds many-seed training does not take."""
    if not seeds:
        raise ConfigError("seeds: expected at least one seed")
    for s in seeds:
        if isinstance(s, bool) or not isinstance(s, int) or s < 0:
            raise ConfigError(f"seeds: expected non-negative integers, got {s!r}")
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"seeds: each seed at most once, got {list(seeds)}")


# ----------------------------------------------------------------------------- randomness


class AgentUniforms:
    """K independent streams of uniforms in ``[low, high)``: ``take(m) -> (K, m)``.

    Row k comes from ``generators[k]`` only, drawn ``chunk`` numbers at a time, so K agents cost
    K generator calls per chunk instead of K per use. Takes continue each stream without gaps:
    row k is the sequence that ``uniform_(low, high, generator=generators[k])`` calls of any
    sizes would give on CPU (a CUDA generator's stream depends on the call sizes).
    """

    def __init__(self, generators: Sequence[torch.Generator], chunk: int = 4096,
                 dtype: torch.dtype = torch.float64, low: float = 0.0, high: float = 1.0) -> None:
        self.generators = list(generators)
        self.chunk, self.low, self.high = chunk, low, high
        self._buf = torch.empty(len(self.generators), 0, dtype=dtype,
                                device=self.generators[0].device)
        self._pos = 0

    def take(self, m: int) -> torch.Tensor:
        if self._pos + m > self._buf.shape[1]:
            left = self._buf[:, self._pos:]
            new = torch.empty(len(self.generators), max(self.chunk, m), dtype=self._buf.dtype,
                              device=self._buf.device)
            new[:, : left.shape[1]] = left
            for row, gen in zip(new, self.generators, strict=True):
                row[left.shape[1]:].uniform_(self.low, self.high, generator=gen)
            self._buf, self._pos = new, 0
        out = self._buf[:, self._pos:self._pos + m]
        self._pos += m
        return out

    def state_dict(self) -> dict:
        """The generators' states and the uniforms drawn but not yet taken."""
        return {"generators": [g.get_state() for g in self.generators],
                "left": self._buf[:, self._pos:].clone()}

    def load_state_dict(self, state: dict) -> None:
        if len(state["generators"]) != len(self.generators):
            raise ValueError(f"checkpoint holds {len(state['generators'])} random streams, "
                             f"this run has {len(self.generators)}")
        for gen, saved in zip(self.generators, state["generators"], strict=True):
            gen.set_state(saved.cpu() if gen.device.type == "cpu" else saved)
        self._buf = state["left"].to(self._buf.device, self._buf.dtype)
        self._pos = 0


def agent_generators(seeds: Sequence[int], device: torch.device) -> list[torch.Generator]:
    return [torch.Generator(device=device).manual_seed(s) for s in seeds]


# ----------------------------------------------------------------------------- environments


class AgentsCartPole(TorchCartPole):
    """K groups of N CartPole-v1 envs in one ``TorchCartPole`` of ``K * N``.

    Group k (envs ``k N .. k N + N - 1``, observations ``obs.view(K, N, 4)[k]``) draws its
    initial states from ``generators[k]`` only, in the order a ``TorchCartPole(N)`` draws them,
    so on CPU they are exactly those of ``TorchCartPole(N, seed=seed_k)``.
    """

    def __init__(self, num_envs: int, generators: Sequence[torch.Generator],
                 device: torch.device, start_box: tuple[float, ...] | None = None) -> None:
        self.agents, self.envs_per_agent = len(generators), num_envs
        low, high = (INIT_LOW, INIT_HIGH) if not start_box else (-1.0, 1.0)
        self._uniforms = AgentUniforms(generators, chunk=max(1024, 64 * num_envs),
                                       low=low, high=high)
        super().__init__(self.agents * num_envs, device=device, seed=0,
                         start_box=start_box or None)

    def _draw(self, out: torch.Tensor) -> torch.Tensor:
        """Fill ``out``, the ``(4, K N)`` state or one ``(K N,)`` row of it, agent by agent
        (with a start box: uniforms in [-1, 1) times its half-widths, as ``TorchCartPole``)."""
        rows = out.shape[0] if out.dim() == 2 else 1
        values = self._uniforms.take(rows * self.envs_per_agent)
        values = values.view(self.agents, rows, self.envs_per_agent).transpose(0, 1)
        out.view(rows, self.agents, self.envs_per_agent).copy_(values)
        return out if self._start_box is None else out.mul_(self._start_box)

    def state_dict(self) -> dict:
        return {**super().state_dict(), "uniforms": self._uniforms.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self._uniforms.load_state_dict(state["uniforms"])


class StackedEnvs(envs.BatchedEnv):
    """K environments of N sub-envs (any ``envs.make`` id, agent k's seeded with ``seeds[k]``),
    stepped one after another and seen as one of ``K * N``; agent k owns rows ``k N .. k N + N-1``.
    """

    def __init__(self, env_id: str, num_envs: int, seeds: Sequence[int],
                 device: torch.device, start_box: tuple[float, ...] | None = None) -> None:
        self.envs = [envs.make(env_id, num_envs=num_envs, device=device, seed=s,
                               start_box=start_box) for s in seeds]
        self.spec, self.device = self.envs[0].spec, device
        self.num_envs = len(self.envs) * num_envs

    def reset(self) -> torch.Tensor:
        return torch.cat([e.reset() for e in self.envs])

    def step(self, actions: torch.Tensor):
        self.check_actions(actions)
        outs = [e.step(a) for e, a in zip(self.envs, actions.chunk(len(self.envs)), strict=True)]
        obs, reward, terminated, truncated = (torch.cat([o[i] for o in outs]) for i in range(4))
        info = {key: torch.cat([o[4][key] for o in outs])
                for key in ("final_obs", "episode_return", "episode_length")}
        return obs, reward, terminated, truncated, info

    def state_dict(self) -> dict | None:
        """Every agent's env state; None when one of them cannot save its state."""
        states = [e.state_dict() for e in self.envs]
        return None if any(state is None for state in states) else {"envs": states}

    def load_state_dict(self, state: dict) -> None:
        for e, saved in zip(self.envs, state["envs"], strict=True):
            e.load_state_dict(saved)

    def close(self) -> None:
        for e in self.envs:
            e.close()


def make_agent_envs(env_id: str, num_envs: int, seeds: Sequence[int], device: torch.device,
                    start_box: tuple[float, ...] | None = None) -> envs.BatchedEnv:
    """``len(seeds) * num_envs`` envs, agent k's ``num_envs`` seeded by ``seeds[k]`` alone."""
    probe = envs.make(env_id, num_envs=1, device=device, seed=0, start_box=start_box)
    probe.close()
    if type(probe) is TorchCartPole:
        return AgentsCartPole(num_envs, agent_generators(seeds, device), device, start_box)
    return StackedEnvs(env_id, num_envs, seeds, device, start_box)


# ----------------------------------------------------------------------------- networks


def _bmm(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``a @ b`` for ``(K, M, P) x (K, P, N)``; computed as ``(b^T a^T)^T`` when ``N < M``.

    The thin products of small MLPs (``N`` = the number of actions) run several times faster
    that way in MKL's batched gemm on CPU (``benchmarks/many_seeds.py``).
    """
    return torch.bmm(b.mT, a.mT).mT if b.shape[2] < a.shape[1] else torch.bmm(a, b)


def _affine(a: torch.Tensor, b: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """``a @ b + bias`` (``bias (K, 1, N)``) in one fused kernel, in ``_bmm``'s orientation."""
    if b.shape[2] < a.shape[1]:
        return torch.baddbmm(bias.mT, b.mT, a.mT).mT
    return torch.baddbmm(bias, a, b)


class StackedMLP:
    """K ReLU MLPs with stacked weights: ``(K, M, in) -> (K, M, out)``, backward written out.

    ``params = [W1 (K, in, h1), b1 (K, 1, h1), ..., WL (K, h, out), bL (K, 1, out)]``: layer l
    is ``z_l = h_{l-1} W_l + b_l``, ``h_l = relu(z_l)`` except on the last layer. Row k of every
    tensor is agent k's network, and no operation mixes rows. ``backward`` writes the
    gradients into ``p.grad``: with ``g_L = d loss / d out``, ``dW_l = h_{l-1}^T g_l``,
    ``db_l = sum_m g_l``, ``g_{l-1} = (g_l W_l^T) * [h_{l-1} > 0]`` (no autograd tape: cheaper
    for small layers, and each product runs in its fastest orientation, see ``_bmm``).
    """

    def __init__(self, params: Sequence[torch.Tensor], dueling: bool = False) -> None:
        self.params = list(params)
        self.dueling = dueling

    @classmethod
    def stack(cls, nets: Sequence[nn.Module], device: torch.device) -> StackedMLP:
        """From K ``QNetwork``s or ``DuelingQNetwork``s; ``nn.Linear``'s ``(out, in)`` weights
        are transposed. A dueling network's value and advantage heads become one last layer
        with ``1 + A`` outputs (value first)."""
        dueling = isinstance(nets[0], DuelingQNetwork)
        layers = [[m for m in net.modules() if isinstance(m, nn.Linear)] for net in nets]
        params = []
        for i in range(len(layers[0]) - (1 if dueling else 0)):
            heads = (slice(i, i + 2) if dueling and i == len(layers[0]) - 2
                     else slice(i, i + 1))
            params.append(torch.stack([torch.cat([m.weight.detach().T for m in net[heads]], 1)
                                       for net in layers]))
            params.append(torch.stack([torch.cat([m.bias.detach() for m in net[heads]])
                                       for net in layers]).unsqueeze(1))
        return cls([p.to(device).contiguous() for p in params], dueling)

    def clone(self) -> StackedMLP:
        return StackedMLP([p.clone() for p in self.params], self.dueling)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """``x (K, M, in)`` -> ``(q (K, M, A), inputs of every layer)`` for ``backward``.

        Dueling (Wang et al., 2016): the last layer gives ``[v, a_1..a_A]`` and
        ``q = v + a - mean(a)``."""
        inputs = []
        for i in range(0, len(self.params), 2):
            inputs.append(x)
            x = _affine(x, self.params[i], self.params[i + 1])
            if i + 2 < len(self.params):
                x = x.relu_()
        if self.dueling:
            adv = x[..., 1:]
            x = adv - adv.mean(dim=-1, keepdim=True) + x[..., :1]
        return x, inputs

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward(x)[0]

    def backward(self, inputs: list[torch.Tensor], grad_out: torch.Tensor) -> None:
        """Set every ``p.grad`` from ``grad_out (K, M, out)`` and ``forward``'s ``inputs``."""
        g = grad_out
        if self.dueling:  # d q_j / d v = 1, d q_j / d a_i = [i == j] - 1 / A
            total = g.sum(dim=-1, keepdim=True)
            g = torch.cat([total, g - total / g.shape[-1]], dim=-1)
        for layer in range(len(inputs) - 1, -1, -1):
            w, b, h = self.params[2 * layer], self.params[2 * layer + 1], inputs[layer]
            w.grad = _bmm(h.mT, g).contiguous()
            b.grad = g.sum(dim=1, keepdim=True)
            if layer > 0:  # the ReLU derivative kernel autograd uses: g where h > 0, else 0
                g = torch.ops.aten.threshold_backward(_bmm(g, w.mT), h, 0)

    def state_dict(self, k: int, template: nn.Module) -> dict:
        """Agent k's weights under ``template``'s (a ``QNetwork``'s or ``DuelingQNetwork``'s)
        parameter names."""
        names = [name for name, _ in template.named_parameters()]
        values = []
        for i in range(0, len(self.params), 2):
            w, b = self.params[i][k].T, self.params[i + 1][k, 0]
            if self.dueling and i + 2 == len(self.params):  # value head, then advantage head
                values += [w[:1].contiguous(), b[:1].clone(), w[1:].contiguous(), b[1:].clone()]
            else:
                values += [w.contiguous(), b.clone()]
        return dict(zip(names, values, strict=True))


def clip_grad_norm_per_agent(params: Sequence[torch.Tensor], max_norm: float) -> torch.Tensor:
    """``nn.utils.clip_grad_norm_`` for each agent; returns the norms ``(K,)`` before clipping.

    Agent k's gradients (row k of every stacked parameter) are scaled by
    ``min(1, max_norm / (||g_k|| + 1e-6))``, ``||g_k||`` the norm over all of its parameters.
    """
    grads = [p.grad for p in params]
    k = grads[0].shape[0]
    per_param = torch.stack([torch.linalg.vector_norm(g.reshape(k, -1), dim=1) for g in grads])
    total = torch.linalg.vector_norm(per_param, dim=0)
    coef = (max_norm / (total + 1e-6)).clamp(max=1.0)
    for g in grads:
        g.mul_(coef.view(k, *([1] * (g.dim() - 1))))
    return total


# ----------------------------------------------------------------------------- replay


class AgentReplay:
    """K replay buffers of ``capacity`` transitions in one ``ReplayBuffer`` of ``K * capacity``.

    ``add`` writes the ``K * N`` transitions of a step (agent k's at rows ``k N .. k N + N - 1``),
    so the ring is laid out ``(capacity / N, K, N)`` and agent k's slot j is ``(j // N) K N + k N
    + j % N``. Sampling takes ``u (K, B)`` uniforms in [0, 1) (agent k's from its own stream)
    and returns a ``Batch`` of ``K * B`` flattened transitions, agent k's at ``k B .. k B + B-1``.
    """

    def __init__(self, agents: int, capacity: int, num_envs: int, obs_dim: int,
                 device: torch.device) -> None:
        self.agents, self.capacity, self.num_envs = agents, capacity, num_envs
        self.buffer = ReplayBuffer(agents * capacity, obs_dim, device=device,
                                   num_envs=agents * num_envs)
        self._offsets = torch.arange(agents, device=device).unsqueeze(1) * num_envs  # (K, 1)
        self._stride = (agents - 1) * num_envs  # slot j -> j + (j // N) (K - 1) N + k N

    def add(self, *transitions: torch.Tensor) -> None:
        """``obs, actions, rewards, next_obs, terminated, truncated`` with ``K * N`` rows each."""
        self.buffer.add(*transitions)

    @property
    def size(self) -> int:
        """Transitions held per agent."""
        return self.buffer.size // self.agents

    def _slots(self, j: torch.Tensor) -> torch.Tensor:
        """Agent slots ``j (K, B)`` -> flat ring indices ``(K * B,)``."""
        return (j + (j // self.num_envs) * self._stride + self._offsets).reshape(-1)

    def sample(self, u: torch.Tensor) -> Batch:
        """One-step transitions uniformly with replacement from each agent's filled slots."""
        if self.size == 0:
            raise ValueError("AgentReplay.sample: the buffers are empty")
        j = (u * self.size).long().clamp_(max=self.size - 1)
        idx, b = self._slots(j), self.buffer
        return b.at(idx)

    def sample_n_step(self, n: int, gamma: float, u: torch.Tensor) -> Batch:
        """n-step transitions with ``ReplayBuffer.sample_n_step``'s semantics, per agent."""
        valid = self.size - (n - 1) * self.num_envs
        if valid <= 0:
            raise ValueError(f"AgentReplay.sample_n_step: needs more than "
                             f"{(n - 1) * self.num_envs} transitions per agent for n={n}, "
                             f"holds {self.size}")
        j = (u * valid).long().clamp_(max=valid - 1)
        if self.buffer.size == self.buffer.capacity:  # each agent's oldest slot
            j = (j + self.buffer.pos // self.agents) % self.capacity
        return self.buffer.n_step_at(self._slots(j), n, gamma)


# ----------------------------------------------------------------------------- state, update


@dataclass
class ManyState:
    """Everything that changes while K agents train (stacked along dimension 0)."""

    online: StackedMLP
    target: StackedMLP
    optimizer: torch.optim.Optimizer
    optimizer_step: Callable[[], object]  # one Adam step on online.params' .grad
    replay: AgentReplay
    env: envs.BatchedEnv
    obs: torch.Tensor
    uniforms: AgentUniforms
    alive: torch.Tensor  # (K,) bool: False once an agent's loss or Q-values went non-finite
    acc: torch.Tensor  # (K, 5) sums since the last metric row: returns, episodes, loss, Q, updates
    num_actions: int
    # q_loss_kernel.q_loss_and_grad on the CPU (None: tensor operations)
    loss_kernel: Callable | None = None
    env_steps: int = 0  # per agent
    iterations: int = 0
    gradient_steps: int = 0  # per agent
    next_eval: int = 0  # env steps of the next evaluation and metric row
    next_log: int = 0
    train_s: float = 0.0
    eval_s: float = 0.0
    # agent -> (env steps, gradient steps, message) where its loss or Q-values went non-finite
    errors: dict[int, tuple[int, int, str]] = field(default_factory=dict)

    @property
    def agents(self) -> int:
        return self.alive.shape[0]


def init_many(cfg: DQNConfig, seeds: Sequence[int], device: torch.device) -> ManyState:
    """Agent k initialised as ``dqn.init_state`` initialises seed ``seeds[k]``'s network."""
    check_supported(cfg, seeds)
    env = make_agent_envs(cfg.env, cfg.num_envs, seeds, device, cfg.start_box)
    nets = []
    for s in seeds:
        torch.manual_seed(s)
        nets.append(dqn.make_q_network(cfg, env.obs_dim, env.num_actions))
    online = StackedMLP.stack(nets, device)
    optimizer = torch.optim.Adam(online.params, lr=cfg.lr,
                                 **({"fused": True} if device.type in ("cpu", "cuda") else {}))
    k = len(seeds)
    return ManyState(
        online=online, target=online.clone(), optimizer=optimizer,
        optimizer_step=optimizer_step(optimizer, online.params),
        replay=AgentReplay(k, cfg.buffer_size // cfg.num_envs * cfg.num_envs, cfg.num_envs,
                           env.obs_dim, device),
        env=env, obs=env.reset(), uniforms=AgentUniforms(agent_generators(seeds, device)),
        alive=torch.ones(k, dtype=torch.bool, device=device),
        acc=torch.zeros(k, 5, dtype=torch.float64, device=device), num_actions=env.num_actions,
        loss_kernel=load_kernel("semigrad.algos.q_loss_kernel", "q_loss_and_grad", None,
                                "many-seed DQN: the compiled loss", device.type == "cpu",
                                stacklevel=4),
        next_eval=cfg.eval_every, next_log=cfg.log_every,
    )


def optimizer_step(optimizer: torch.optim.Optimizer,
                   params: list[torch.Tensor]) -> Callable[[], object]:
    """``optimizer.step()`` on ``params``' gradients, as ``semigrad.optim.lean_step`` (the same
    numbers without the per-call Python work) where it applies. Build it after loading any
    optimizer state."""
    lean = lean_step(optimizer, params)
    if lean is None:
        return optimizer.step
    return lambda: lean([p.grad for p in params])


@torch.inference_mode()
def select_actions(st: ManyState, epsilon: float) -> torch.Tensor:
    """Epsilon-greedy actions ``(K * N,)`` int64 for observations ``(K * N, obs_dim)``."""
    k = st.agents
    n = st.obs.shape[0] // k
    u = st.uniforms.take(2 * n)
    random_actions = (u[:, :n] * st.num_actions).long()
    if epsilon >= 1.0:
        return random_actions.reshape(-1)
    greedy = st.online(st.obs.view(k, n, -1)).argmax(dim=2)
    return torch.where(u[:, n:] < epsilon, random_actions, greedy).reshape(-1)


@torch.inference_mode()
def update(cfg: DQNConfig, st: ManyState) -> None:
    """One gradient step for every agent on a minibatch from its own replay buffer (in
    inference mode: the backward pass is written out, so no autograd bookkeeping is needed)."""
    u = st.uniforms.take(cfg.batch_size)
    if cfg.n_step == 1:
        learn(cfg, st, st.replay.sample(u), cfg.gamma)
    else:
        batch = st.replay.sample_n_step(cfg.n_step, cfg.gamma, u)
        learn(cfg, st, batch, batch.discounts)


def learn(cfg: DQNConfig, st: ManyState, batch: Batch, gamma: float | torch.Tensor) -> None:
    """``dqn.update``'s gradient step for all K agents on ``batch`` (``K * B`` transitions,
    agent k's at rows ``k B .. k B + B - 1``; ``gamma`` a float or ``(K * B,)``): the (Double)
    Q-learning loss, per-agent clipping, Adam, target update, health check."""
    k = st.agents
    b = batch.actions.shape[0] // k
    obs, next_obs = batch.obs.view(k, b, -1), batch.next_obs.view(k, b, -1)
    q, inputs = st.online.forward(obs)  # (K, B, A)
    next_q_target = st.target(next_obs)
    next_q_online = st.online(next_obs) if cfg.double else None
    loss_and_grad = _loss_loop if st.loss_kernel is not None else _loss_tensors
    losses, mean_q, grad_q = loss_and_grad(cfg, st, q, next_q_target, next_q_online, batch, gamma)
    health = torch.stack([losses, mean_q])
    finite = torch.isfinite(health).all(dim=0)
    if not bool((finite | ~st.alive).all()):
        _record_divergence(st, finite, health)
    st.online.backward(inputs, grad_q)
    for group in st.optimizer.param_groups:
        group["lr"] = lr_at(cfg, st.env_steps)
    if cfg.max_grad_norm > 0:
        clip_grad_norm_per_agent(st.online.params, cfg.max_grad_norm)
    st.optimizer_step()
    st.gradient_steps += 1
    if cfg.target_update == "polyak":
        torch._foreach_lerp_(st.target.params, st.online.params, cfg.tau)
    elif st.gradient_steps % cfg.target_update_interval == 0:
        torch._foreach_copy_(st.target.params, st.online.params)
    st.acc[:, 2:4] += health.T
    st.acc[:, 4] += 1


def _loss_tensors(cfg, st, q, next_q_target, next_q_online, batch, gamma):
    """``(losses (K,), mean_q (K,), d losses / d q (K, B, A))`` as tensor operations."""
    k, b = q.shape[:2]
    targets = q_learning_targets(
        batch.rewards, next_q_target.flatten(0, 1), batch.terminated, gamma,
        next_q_online=None if next_q_online is None else next_q_online.flatten(0, 1))
    # only the taken action's output is trained: d loss / d q is zero at the other actions
    taken = batch.actions.view(k, b, 1)
    predictions = q.gather(2, taken).squeeze(2)  # (K, B)
    losses, grad = value_loss_and_grad_per_row(predictions, targets.view(k, b), cfg.loss)
    grad_q = torch.zeros_like(q).scatter_(2, taken, grad.unsqueeze(2))
    return losses, q.mean(dim=(1, 2)), grad_q


_NO_DISCOUNTS = np.empty(0, np.float32)  # the kernel's "one gamma for all rows"


def _loss_loop(cfg, st, q, next_q_target, next_q_online, batch, gamma):
    """``_loss_tensors`` by ``q_loss_kernel.q_loss_and_grad`` on the tensors' memory."""
    k = q.shape[0]
    grad_q = torch.empty_like(q)  # q's strides
    losses, mean_q = torch.empty(k, dtype=q.dtype), torch.empty(k, dtype=q.dtype)
    if isinstance(gamma, torch.Tensor):
        gamma, discounts = 0.0, gamma.numpy()
    else:
        discounts = _NO_DISCOUNTS
    bad = st.loss_kernel(
        q.numpy(), next_q_target.numpy(),
        (next_q_target if next_q_online is None else next_q_online).numpy(),
        next_q_online is not None, batch.actions.numpy(), batch.rewards.numpy(),
        batch.terminated.numpy(), gamma, discounts, 1.0 if cfg.loss == "huber" else 0.0,
        grad_q.numpy(), losses.numpy(), mean_q.numpy())
    if bad >= 0:
        raise ValueError(f"dqn_many.learn: action {batch.actions[bad].item()} at row {bad} is "
                         f"not in 0..{q.shape[2] - 1}")
    return losses, mean_q, grad_q


def _record_divergence(st: ManyState, finite: torch.Tensor, health: torch.Tensor) -> None:
    """Mark agents whose loss or mean Q just went non-finite; the others train on unaffected."""
    for k in torch.nonzero(~finite & st.alive).flatten().tolist():
        loss, mean_q = health[:, k].tolist()
        what = "loss" if not math.isfinite(loss) else "mean Q-value"
        st.errors[k] = (st.env_steps, st.gradient_steps, (
            f"non-finite {what} ({[loss, mean_q]}) at env step {st.env_steps}, gradient step "
            f"{st.gradient_steps + 1}; usual causes: a learning rate too high, gamma close to 1 "
            "with unbounded rewards, or no gradient clipping (--max-grad-norm)"))
    st.alive &= finite


# ----------------------------------------------------------------------------- checkpoints


_COUNTERS = ("env_steps", "iterations", "gradient_steps", "next_eval", "next_log", "train_s",
             "eval_s", "errors")


def save_checkpoint(path: Path, cfg: DQNConfig, seeds: Sequence[int], st: ManyState,
                    records: Sequence[AgentRecord]) -> None:
    """Write the K agents' whole training state to ``path`` atomically (loads with
    ``weights_only=True``): what ``train_many(..., resume=True)`` continues from."""
    payload = {
        "format": CHECKPOINT_FORMAT, "config": to_dict(cfg), "seeds": list(seeds),
        "online": st.online.params, "target": st.target.params,
        "optimizer": st.optimizer.state_dict(), "replay": st.replay.buffer.state_dict(),
        "env": st.env.state_dict(), "obs": st.obs, "uniforms": st.uniforms.state_dict(),
        "alive": st.alive, "acc": st.acc, "counters": {k: getattr(st, k) for k in _COUNTERS},
        "records": [{"evals": r.evals, "best_eval": r.best_eval, "solved_at": r.solved_at}
                    for r in records],
    }
    buf = io.BytesIO()
    torch.save(payload, buf)
    atomic_write_bytes(path, buf.getvalue())


def restore_state(payload: dict, cfg: DQNConfig, seeds: Sequence[int],
                  device: torch.device) -> ManyState:
    """``init_many``'s state, overwritten with a checkpoint's."""
    if list(payload["seeds"]) != list(seeds):
        raise ValueError(f"seeds: the checkpoint holds seeds {payload['seeds']}, "
                         f"got {list(seeds)}")
    st = init_many(cfg, seeds, device)
    for params, saved in ((st.online.params, payload["online"]),
                          (st.target.params, payload["target"])):
        torch._foreach_copy_(params, [p.to(device) for p in saved])
    st.optimizer.load_state_dict(payload["optimizer"])
    st.optimizer_step = optimizer_step(st.optimizer, st.online.params)  # on the loaded state
    st.replay.buffer.load_state_dict(payload["replay"])
    if payload["env"] is not None:
        st.env.load_state_dict(payload["env"])
        st.obs = payload["obs"].to(device)
    else:  # as dqn.restore_state: new episodes, from fresh seeds
        warnings.warn(f"{cfg.env} cannot save its state: the resumed run starts new episodes, "
                      "so it will not match an uninterrupted run exactly", stacklevel=2)
        st.env.close()
        steps = payload["counters"]["env_steps"]
        st.env = make_agent_envs(cfg.env, cfg.num_envs, [s + 1 + steps for s in seeds], device,
                                 cfg.start_box)
        st.obs = st.env.reset()
    st.uniforms.load_state_dict(payload["uniforms"])
    st.alive.copy_(payload["alive"])
    st.acc.copy_(payload["acc"])
    for key, value in payload["counters"].items():
        setattr(st, key, value)
    return st


def evaluate(q_net: StackedMLP, env_id: str, episodes: int, seeds: Sequence[int],
             device: torch.device) -> torch.Tensor:
    """``dqn.evaluate`` for K agents at once: returns ``(K, episodes)`` of greedy episodes.

    Agent k plays ``episodes`` envs seeded with ``seeds[k]`` (the envs ``dqn.evaluate`` would
    make for it), one episode each, all K * episodes in parallel.
    """
    k = len(seeds)
    env = make_agent_envs(env_id, episodes, seeds, device)
    try:
        returns = dqn.first_episode_returns(
            env, lambda obs: q_net(obs.view(k, episodes, -1)).argmax(dim=2).reshape(-1))
    finally:
        env.close()
    return returns.view(k, episodes)


# ----------------------------------------------------------------------------- run directories


@dataclass
class AgentRecord:
    """One agent's run directory and bookkeeping, under the names ``dqn.log_metrics`` and
    ``dqn.summarize`` read."""

    cfg: DQNConfig
    run_dir: Path
    metrics: MetricsLog
    env_steps: int = 0
    gradient_steps: int = 0
    train_s: float = 0.0
    eval_s: float = 0.0
    evals: list[float] = field(default_factory=list)
    best_eval: float = -math.inf
    solved_at: dict | None = None
    acc: list[float] = field(default_factory=lambda: [0.0] * 5)
    next_log: int = 0


def save_weights(path: Path, cfg: DQNConfig, state_dict: dict, **extra) -> None:
    """A ``semigrad eval``-loadable checkpoint (``dqn``'s best-weights format), atomically."""
    buf = io.BytesIO()
    torch.save({"format": WEIGHTS_FORMAT, "config": to_dict(cfg), "online": state_dict, **extra},
               buf)
    atomic_write_bytes(path, buf.getvalue())


def train_many(
    cfg: DQNConfig,
    seeds: Sequence[int],
    run_dirs: Sequence[Path],
    *,
    progress: bool = True,
    stop_after: int | None = None,
    checkpoint: Path | None = None,
    resume: bool = False,
) -> list[dict]:
    """Train one DQN agent per seed (``cfg`` with ``seed=seeds[k]``) in lockstep.

    ``run_dirs[k]`` receives what ``dqn.train`` writes for a single run (metrics.csv, tb/,
    summary.json, checkpoint_best.pt and checkpoint_last.pt, both weights only). With
    ``checkpoint``, the whole state of the K agents is saved there at every evaluation and
    when stopping early, and ``resume=True`` continues from it exactly where it stopped.
    Returns the K summaries (``dqn``'s keys; times are the whole batch's). An agent whose loss
    goes non-finite stops being logged, its summary says ``diverged``, and the others go on.
    ``stop_after`` (env steps per agent) or Ctrl-C stop early with status ``interrupted``.
    """
    wall0 = time.perf_counter()
    device = resolve_device(cfg.device)
    check_supported(cfg, seeds)
    if len(run_dirs) != len(seeds):
        raise ValueError(f"run_dirs: expected one per seed ({len(seeds)}), got {len(run_dirs)}")
    payload = None
    if resume:
        if checkpoint is None:
            raise ValueError("resume: give the checkpoint to resume from")
        payload = dqn.load_checkpoint(checkpoint, device, CHECKPOINT_FORMAT)
        diffs = dqn.config_differences(payload["config"], cfg)
        if diffs:
            raise ValueError("config differs from the checkpoint's: " + "; ".join(diffs))
        st = restore_state(payload, cfg, seeds, device)
        for d in run_dirs:
            truncate_metrics(d, st.env_steps)
    else:
        st = init_many(cfg, seeds, device)
    k, n = st.agents, cfg.num_envs
    threshold = st.env.spec.reward_threshold
    template = dqn.make_q_network(cfg, st.env.obs_dim, st.num_actions)
    records = [AgentRecord(replace(cfg, seed=s), Path(d),
                           MetricsLog(d, dqn.METRIC_COLUMNS, tensorboard=cfg.tensorboard))
               for s, d in zip(seeds, run_dirs, strict=True)]
    if payload is not None:
        for rec, saved in zip(records, payload["records"], strict=True):
            rec.evals, rec.best_eval, rec.solved_at = (saved["evals"], saved["best_eval"],
                                                       saved["solved_at"])

    def log(extra: list[dict]) -> None:
        acc = st.acc.tolist()
        for i, rec in enumerate(records):
            if i not in st.errors:
                rec.acc, rec.env_steps, rec.gradient_steps = acc[i], st.env_steps, \
                    st.gradient_steps
                rec.train_s, rec.eval_s = st.train_s, st.eval_s
                dqn.log_metrics(rec.metrics, rec, extra[i], wall0, None, cfg.log_every)
        st.acc.zero_()
        st.next_log = (st.env_steps // cfg.log_every + 1) * cfg.log_every

    stop = CtrlC().install()
    bar = tqdm(total=cfg.total_steps, initial=st.env_steps, unit="step",
               disable=not progress, dynamic_ncols=True, desc=f"dqn x{k}")
    status = "finished"
    try:
        t_train = time.perf_counter()
        while st.env_steps < cfg.total_steps:
            if stop.requested or (stop_after is not None and st.env_steps >= stop_after):
                status = "interrupted"
                break
            epsilon = epsilon_at(cfg, st.env_steps)
            actions = select_actions(st, epsilon)
            next_obs, reward, terminated, truncated, info = st.env.step(actions)
            st.replay.add(st.obs, actions, reward, info["final_obs"], terminated, truncated)
            st.obs = next_obs
            returns = info["episode_return"].view(k, n)
            st.acc[:, 0] += returns.nan_to_num().sum(dim=1)
            st.acc[:, 1] += (~returns.isnan()).sum(dim=1)
            st.env_steps += n
            st.iterations += 1
            bar.update(n)
            if (st.env_steps >= max(cfg.learning_starts, cfg.n_step * n)
                    and st.iterations % cfg.train_freq == 0):
                for _ in range(cfg.gradient_steps):
                    update(cfg, st)

            if st.env_steps >= st.next_eval or st.env_steps >= cfg.total_steps:
                st.train_s += time.perf_counter() - t_train
                t_eval = time.perf_counter()
                extra = _evaluate_and_checkpoint(cfg, st, records, template, threshold,
                                                 epsilon, device)
                st.next_eval = (st.env_steps // cfg.eval_every + 1) * cfg.eval_every
                alive = [r for i, r in enumerate(extra) if i not in st.errors]
                if alive:
                    median = sorted(r["eval_return"] for r in alive)[len(alive) // 2]
                    bar.set_postfix(median_eval=f"{median:.1f}", eps=f"{epsilon:.2f}",
                                    refresh=False)
                st.eval_s += time.perf_counter() - t_eval
                log(extra)
                if checkpoint is not None:
                    save_checkpoint(checkpoint, cfg, seeds, st, records)
                t_train = time.perf_counter()
            elif st.env_steps >= st.next_log:
                log([{"epsilon": epsilon, "lr": lr_at(cfg, st.env_steps)}] * k)
        else:
            st.train_s += time.perf_counter() - t_train
        if status == "interrupted":
            st.train_s += time.perf_counter() - t_train
            if checkpoint is not None:
                save_checkpoint(checkpoint, cfg, seeds, st, records)
    finally:
        bar.close()
        stop.restore()
        st.env.close()
        for rec in records:
            rec.metrics.close()
    summaries = []
    for i, rec in enumerate(records):
        rec.env_steps, rec.train_s, rec.eval_s = st.env_steps, st.train_s, st.eval_s
        rec.gradient_steps = st.gradient_steps
        if i in st.errors:
            rec.env_steps, rec.gradient_steps, error = st.errors[i]
            summary = dqn.summarize(rec.cfg, rec, threshold, wall0, "diverged", error)
        else:
            if status == "interrupted":
                save_weights(rec.run_dir / "checkpoint_last.pt", rec.cfg,
                             st.online.state_dict(i, template), env_steps=st.env_steps)
            summary = dqn.summarize(rec.cfg, rec, threshold, wall0, status)
        summary["seed"] = rec.cfg.seed
        atomic_write_json(rec.run_dir / "summary.json", summary)
        summaries.append(summary)
    return summaries


def _evaluate_and_checkpoint(cfg, st, records, template, threshold, epsilon, device):
    """Greedy evaluation of every agent (``dqn``'s protocol and seeds); best/last weights."""
    eval_seeds = [10_000_019 * (rec.cfg.seed + 1) + len(rec.evals) for rec in records]
    returns = evaluate(st.online, cfg.env, cfg.eval_episodes, eval_seeds, device)
    means, stds = returns.mean(dim=1).tolist(), returns.std(dim=1, unbiased=False).tolist()
    rows = []
    for i, rec in enumerate(records):
        rows.append({"eval_return": means[i], "eval_std": stds[i], "epsilon": epsilon,
                     "lr": lr_at(cfg, st.env_steps)})
        if i in st.errors:
            continue
        rec.evals.append(means[i])
        if threshold is not None and rec.solved_at is None and means[i] >= threshold:
            rec.solved_at = {"env_steps": st.env_steps, "train_s": st.train_s,
                             "gradient_steps": st.gradient_steps}
        weights = st.online.state_dict(i, template)
        if means[i] > rec.best_eval:
            rec.best_eval = means[i]
            save_weights(rec.run_dir / "checkpoint_best.pt", rec.cfg, weights,
                         env_steps=st.env_steps, eval_return=means[i])
        save_weights(rec.run_dir / "checkpoint_last.pt", rec.cfg, weights,
                     env_steps=st.env_steps, eval_return=means[i])
    return rows
