"""Semi-gradient TD(0) prediction of ``v_pi`` (Sutton & Barto 9.3), batched over N envs.

For each transition ``(S, R, S')`` of the policy ``pi``::

    delta = R + gamma * (1 - terminated) * v_hat(S', w) - v_hat(S, w)
    w    <- w + alpha * delta * grad_w v_hat(S, w)

The target ``R + gamma v_hat(S', w)`` is held fixed (no gradient): that is what makes the
method *semi*-gradient. A time-limit truncation is not a terminal state: it bootstraps from
``v_hat(S')`` with ``S' = info["final_obs"]`` (the state the episode was cut in). With N
environments one update uses the N transitions of a step and averages: ``w <- w + alpha *
mean_i delta_i grad v_hat(S_i, w)``.

With ``discount = gamma * (1 - terminated)`` (``losses.fold_termination``), ``delta`` is
``losses.td_learning`` and the update is written as the loss ``0.5 * td_error_loss(delta)``
(the mean squared TD error, whose gradient is ``-2 delta / B`` with respect to ``v_hat(S)``;
the factor 0.5 removes the 2), so plain SGD with learning rate ``alpha`` is the textbook rule
exactly and any torch optimizer (Adam...) can follow the same gradient.

``rule`` selects the update, for teaching:

``semi-gradient`` (default)
    The rule above (S&B 9.3, eq. 9.7).
``residual-gradient``
    True gradient descent on the mean squared TD error ``0.5 * mean(delta^2)`` with gradient
    through ``v_hat(S')`` too (Baird 1995; S&B 11.5): ``w <- w + alpha * delta * (grad
    v_hat(S) - gamma (1 - terminated) grad v_hat(S'))``, i.e. ``td_learning`` with
    ``stop_target_gradients=False``. Converges, but to a different (and usually worse)
    solution than TD's fixed point, and is biased under stochastic transitions.
``notebook``
    A demonstration, not a method: the course notebook's mistake, kept to show what goes
    wrong (it is the one rule not written with ``semigrad.losses``). It minimises
    ``notebook_alpha * (R + gamma v_hat(S') - v_hat(S))``, which is linear in the TD error
    (not a square) and lets gradient flow through ``v_hat(S')``; it also bootstraps past
    terminal states. Every step raises ``v_hat(S)`` and lowers ``gamma v_hat(S')``; as
    ``S`` and ``S'`` are close, ``v_hat`` climbs without bound. The trainer's divergence rule
    stops it.

Runs go through ``semigrad.trainer`` (``train``): K seeds x N envs (agent k is the single run
with seed k), metric rows with ``v_hat`` at the probe states, checkpoints and exact resume,
one summary schema; the summary compares each probe's ``v_hat`` with its Monte Carlo value
(``semigrad.algos.monte_carlo``). ``td0`` runs the same ``init``/``iterate`` in memory, on any
env, network, policy or optimizer, without a run directory. Health (sampled every
``HEALTH_EVERY`` updates, to keep one env's hot loop lean): the mean squared TD error and the
largest ``|v_hat|``, which may not pass ``1.5 r_max / (1 - gamma)``.
"""

from __future__ import annotations

import contextlib
import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from semigrad import envs, trainer
from semigrad.algos import ensemble
from semigrad.algos.base import RunConfig, check_start_box, option
from semigrad.config import ConfigError, check_choice, check_range
from semigrad.devices import resolve_device
from semigrad.losses import fold_termination, td_error_loss, td_learning
from semigrad.nets import ACTIVATIONS, LinearValue, ValueNetwork
from semigrad.optim import lean_step

RULES = ("semi-gradient", "residual-gradient", "notebook")
OPTIMIZERS = ("sgd", "adam")

Policy = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class TD0Config(RunConfig):
    """Hyper-parameters of a TD(0) prediction run (and the run fields of ``RunConfig``;
    validated when built). Steps count transitions per agent, summed over its N envs."""

    num_envs: int = option("parallel environments N", default=8)
    steps: int = option("transitions to learn from", default=100_000)
    gamma: float = option("discount gamma in [0, 1]", default=0.95)
    alpha: float = option("step size alpha (learning rate)", default=3e-3)
    alpha_end: float = option("alpha anneals linearly to this over the run (= alpha: constant)",
                             default=0.0)
    optimizer: Literal["sgd", "adam"] = option(
        "sgd is the textbook update w += alpha delta grad v", default="adam")
    rule: Literal["semi-gradient", "residual-gradient", "notebook"] = option(
        "update rule; 'notebook' is the course notebook's mistake", default="semi-gradient")
    hidden: tuple[int, ...] = option("hidden widths of the value MLP (notebook's)",
                                    default=(64, 64, 64))
    activation: str = option("hidden activation", default="relu")
    notebook_alpha: float = option("the factor inside the notebook's 'loss' (rule notebook)",
                                  default=0.8)
    r_max: float = option("largest |reward|: a |v_hat| over 1.5 r_max / (1 - gamma) stops the "
                         "run as diverged", default=1.0)
    start_box: tuple[float, ...] = option(
        "CartPole-v1 only: start episodes uniformly in +-(x, x_dot, theta, theta_dot), e.g. "
        "2.4 3 0.2 3.5 (exploring starts; v_pi does not change); none: the env's +-0.05",
        default=())
    fast_path: bool = option("hand-written backprop for MLP value nets (semi-gradient rule); "
                            "same update as autograd with less per-step overhead", default=True)
    probes: tuple[float, ...] = field(default=(), metadata={
        "cli": False, "help": "extra probe states, obs_dim numbers each, one after another "
                              "(after CartPole-v1's default probes)"})
    mc_rollouts: int = option("Monte Carlo rollouts per probe state (CartPole-v1)", default=2000)
    log_every: int = option("env steps between metric rows (v_hat at the probes; the default "
                           "keeps the records under 5% of the time)", default=2000)
    eval_every: int = option("env steps between checkpoints", default=20_000)

    def __post_init__(self) -> None:
        super().__post_init__()
        check_start_box(self)
        ensemble.check_counts(self, ("num_envs", "steps", "log_every", "eval_every"))
        check_range("gamma", self.gamma, 0.0, 1.0)
        check_range("alpha", self.alpha, 0.0, low_open=True)
        check_range("alpha_end", self.alpha_end, 0.0)
        check_choice("optimizer", self.optimizer, OPTIMIZERS)
        check_choice("rule", self.rule, RULES)
        ensemble.check_widths(self.hidden)
        check_choice("activation", self.activation, sorted(ACTIVATIONS))
        check_range("notebook_alpha", self.notebook_alpha, 0.0, low_open=True)
        check_range("r_max", self.r_max, 0.0, low_open=True)
        check_range("mc_rollouts", self.mc_rollouts, 2, 1_000_000)
        for x in self.probes:
            if not math.isfinite(x):
                raise ConfigError(f"probes: expected finite numbers, got {x}")

    def probe_states(self) -> list[tuple[float, ...]]:
        """The probe states: CartPole-v1's defaults (``monte_carlo.DEFAULT_PROBES``), then
        ``probes`` cut into states of the env's ``obs_dim`` numbers."""
        from semigrad.algos.monte_carlo import DEFAULT_PROBES

        cartpole = is_cartpole(self.env)
        width = 4 if cartpole else envs.make(self.env, num_envs=1, device="cpu").obs_dim
        if len(self.probes) % width:
            raise ConfigError(f"probes: every probe needs {width} numbers ({self.env}'s "
                              f"observation), got {len(self.probes)} in all")
        extra = [tuple(self.probes[i:i + width]) for i in range(0, len(self.probes), width)]
        return ([*DEFAULT_PROBES] if cartpole else []) + extra


def is_cartpole(env_id: str) -> bool:
    return env_id.removeprefix("gymnasium:") == CARTPOLE


class UniformRandomPolicy:
    """``pi(a|s) = 1 / A``: ``obs (N, obs_dim) -> actions (N,)`` int64 on ``obs.device``.

    Actions are drawn ``chunk`` calls at a time (one generator call per chunk rather than per
    step); a call returns a view of the next row, not to be modified in place.
    """

    def __init__(self, num_actions: int, generator: torch.Generator, chunk: int = 1024) -> None:
        self.num_actions = num_actions
        self.generator = generator
        self.chunk = chunk
        self._rows = torch.empty(0, 0, dtype=torch.int64)
        self._next = 0

    def __call__(self, obs: torch.Tensor) -> torch.Tensor:
        rows = self._rows
        if self._next == rows.shape[0] or rows.shape[1] != obs.shape[0] \
                or rows.device != obs.device:
            self._rows = rows = torch.randint(self.num_actions, (self.chunk, obs.shape[0]),
                                              generator=self.generator, device=obs.device)
            self._next = 0
        self._next += 1
        return rows[self._next - 1]


def make_optimizer(name: str, params, alpha: float) -> torch.optim.Optimizer:
    """``sgd``: ``w <- w - alpha * grad`` (the textbook step); ``adam``: Adam with lr alpha.

    Both use torch's fused kernels (one kernel for all parameters: the leanest step).
    """
    check_choice("optimizer", name, OPTIMIZERS)
    if name == "sgd":
        return torch.optim.SGD(params, lr=alpha, fused=True)
    return torch.optim.Adam(params, lr=alpha, fused=True)


def set_step_size(optimizer: torch.optim.Optimizer, start: float, end: float, frac: float):
    """Set every group's learning rate to ``start + (end - start) * frac`` (linear annealing).

    A step size decaying to a small value averages out the noise of a constant-step TD
    iterate (the stochastic-approximation conditions, Sutton & Barto 2.7, eq. 2.7).
    """
    for group in optimizer.param_groups:
        group["lr"] = start + (end - start) * frac


def td_loss(
    v_hat: nn.Module,
    states: torch.Tensor,
    rewards: torch.Tensor,
    terminated: torch.Tensor,
    next_states: torch.Tensor,
    gamma: float,
    rule: str = "semi-gradient",
    notebook_alpha: float = 0.8,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The loss whose gradient step is the chosen TD(0) ``rule``; returns ``(loss, v, delta)``.

    ``states (B, d)``, ``rewards (B,)``, ``terminated (B,)`` bool, ``next_states (B, d)`` (for
    a truncated transition, the state it was cut in). One forward of ``v_hat`` on the ``2B``
    rows ``[S; S']``. ``v (2B,)`` are the values (for the health checks), ``delta (B,)`` the TD
    errors, both detached. SGD on the loss with step alpha gives, per rule (mean over B):

    * ``semi-gradient``: ``w += alpha * delta * grad v(S)``;
    * ``residual-gradient``: ``w += alpha * delta * (grad v(S) - gamma (1-term) grad v(S'))``;
    * ``notebook``: ``w += notebook_alpha * alpha * (grad v(S) - gamma grad v(S'))``.
    """
    if rule not in RULES:
        check_choice("rule", rule, RULES)  # raises
    batch = states.shape[0]
    values = v_hat(torch.cat((states, next_states)))
    v_s, v_next = values[:batch], values[batch:]
    if rule == "notebook":
        # DEMONSTRATION of the course notebook's mistake, not a TD rule: its line, batched,
        # loss = alpha * (reward + gamma * v(S') - v(S)): linear in the error, gradient through
        # v(S'), and a bootstrap past terminal states.
        delta = rewards + gamma * v_next - v_s
        loss = notebook_alpha * delta.mean()
    else:  # semi-gradient: no gradient through the target; residual-gradient: through it
        discount = fold_termination(gamma, terminated, values.dtype)
        delta = td_learning(v_s, rewards, discount, v_next,
                            stop_target_gradients=rule == "semi-gradient")
        loss = 0.5 * td_error_loss(delta)
    return loss, values.detach(), delta.detach()


class MLPSemiGradient:
    """Semi-gradient TD(0) step of an MLP value network by hand-written backprop.

    For ``v_hat`` a ``ValueNetwork`` (Linear layers with ReLU or Tanh between them) or a
    ``LinearValue``, ``step(states, rewards, terminated, next_states, gamma)`` computes, with
    one forward on ``[S; S']`` and no autograd, the values ``v (2B,)``, the TD errors
    ``delta (B,)`` (``losses.td_learning``) and, for every parameter
    (``parameters`` order), the gradient of ``0.5 * td_error_loss(delta)`` with the target
    fixed, i.e. ``-mean_i delta_i grad v_hat(S_i)``: an accelerator of ``td_loss`` +
    ``backward``, equal to it (tests check it), without autograd's graph and per-node
    overhead, which dominate a step on small batches. ``build(v_hat)`` returns None for any
    other network (then autograd is used).

    Backprop through ``x_{k+1} = act(W_k x_k + b_k)`` with ``g = d loss / d (W_k x_k + b_k)``
    on the B rows of S: ``grad W_k = g^T x_k``, ``grad b_k = sum_rows g``, and the next ``g``
    is ``(g W_k) * act'`` (ReLU: zero where ``x_k = 0``; tanh: ``1 - x_k^2``).
    """

    def __init__(self, linears: list[nn.Linear], activation: str | None) -> None:
        self.weights = [layer.weight for layer in linears]
        self.biases = [layer.bias for layer in linears]
        self.activation = activation  # "relu", "tanh", or None for a single Linear
        self.parameters = [p for layer in linears for p in layer.parameters()]

    @classmethod
    def build(cls, v_hat: nn.Module) -> MLPSemiGradient | None:
        if isinstance(v_hat, LinearValue):
            return cls([v_hat.linear], None)
        if type(v_hat) is not ValueNetwork:
            return None
        layers = list(v_hat.net)
        linears, activations = layers[0::2], {type(layer) for layer in layers[1::2]}
        if len(layers) % 2 == 0 or not all(type(layer) is nn.Linear for layer in linears):
            return None
        if not activations:
            return cls(linears, None)
        if activations == {nn.ReLU}:
            return cls(linears, "relu")
        return cls(linears, "tanh") if activations == {nn.Tanh} else None

    @torch.no_grad()
    def step(
        self,
        states: torch.Tensor,
        rewards: torch.Tensor,
        terminated: torch.Tensor,
        next_states: torch.Tensor,
        gamma: float,
    ) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        """``(v (2B,), delta (B,), gradients)`` for one batch of transitions."""
        batch = states.shape[0]
        weights, biases, relu = self.weights, self.biases, self.activation == "relu"
        last = len(weights) - 1
        x = torch.cat((states, next_states))
        inputs = []  # every Linear's input, (2B, width)
        for k in range(last + 1):
            inputs.append(x)
            x = nn.functional.linear(x, weights[k], biases[k])
            if k < last:
                x = x.relu_() if relu else x.tanh_()
        values = x.view(-1)
        # shapes fixed by the forward and the env: td_learning without its checks
        discount = fold_termination(gamma, terminated, values.dtype, check=False)
        delta = td_learning(values[:batch], rewards, discount, values[batch:], check=False)
        g = (delta / -batch).unsqueeze(1)  # d loss / d v_hat(S_i), shape (B, 1)
        grads: list[torch.Tensor] = []
        for k in range(last, -1, -1):
            rows = inputs[k][:batch]
            if biases[k] is not None:
                grads.append(g.sum(0))
            grads.append(g.T.mm(rows))
            if k > 0:
                g = g.mm(weights[k])
                if relu:
                    g = torch.ops.aten.threshold_backward(g, rows, 0)  # 0 where rows == 0
                else:
                    g = g.mul_(1 - rows * rows)
        grads.reverse()  # weight, bias of each layer, first layer first
        return values, delta, grads


HEALTH_EVERY = 64  # updates between health samples (one env's update costs ~30 us)
RETURNS_KEPT = 1024  # steps of episode returns kept before they are summed into st.acc
SLACK = 1.5  # a value beyond SLACK * r_max / (1 - gamma) is divergence, not noise
CARTPOLE = "CartPole-v1"


def value_bound(r_max: float, gamma: float) -> float:
    """``r_max / (1 - gamma)``, the largest possible ``|v_pi(s)|`` (Sutton & Barto 3.3;
    ``inf`` when gamma = 1)."""
    return math.inf if gamma >= 1 else r_max / (1.0 - gamma)


@dataclass
class Agent:
    """One seed's learner: its value network, optimizer, policy and (fast path) step."""

    v_hat: nn.Module
    optimizer: torch.optim.Optimizer
    policy: Policy
    generator: torch.Generator | None  # the default policy's (saved for exact resume)
    fast: MLPSemiGradient | None = None
    step: Callable[[list[torch.Tensor]], None] | None = None


@dataclass
class TD0State:
    """Everything that changes while K agents learn."""

    agents: list[Agent]
    env: envs.BatchedEnv
    obs: torch.Tensor  # (K N, d)
    probes: torch.Tensor  # (P, d)
    mc: list  # each agent's Monte Carlo estimate at the probes (CartPole-v1), or None
    acc: torch.Tensor  # (K, 5): returns, episodes, squared TD error, max |v_hat|, samples
    updates: int = 0


def _agent(cfg: TD0Config, v_hat: nn.Module, policy: Policy | None,
           optimizer: torch.optim.Optimizer | None, num_actions: int, seed: int,
           device: torch.device) -> Agent:
    generator = None
    if policy is None:
        generator = torch.Generator(device=device).manual_seed(seed)
        policy = UniformRandomPolicy(num_actions, generator)
    if optimizer is None:
        optimizer = make_optimizer(cfg.optimizer, v_hat.parameters(), cfg.alpha)
    agent = Agent(v_hat, optimizer, policy, generator)
    if cfg.fast_path and cfg.rule == "semi-gradient":
        agent.fast = MLPSemiGradient.build(v_hat)
        agent.step = None if agent.fast is None else lean_step(optimizer, agent.fast.parameters)
    return agent


def init(cfg: TD0Config, seeds: Sequence[int], device: torch.device, *,
         env: envs.BatchedEnv | None = None, v_hat: nn.Module | None = None,
         policy: Policy | None = None, optimizer: torch.optim.Optimizer | None = None,
         probes: torch.Tensor | None = None) -> TD0State:
    """The K agents' fresh state: agent k's ``ValueNetwork`` initialised after
    ``torch.manual_seed(seeds[k])``, its envs seeded ``seeds[k]``, the uniform random policy
    drawing from a generator seeded ``seeds[k]``; the probe states (``cfg.probe_states()``)
    with each agent's Monte Carlo values on CartPole-v1. ``env``, ``v_hat``, ``policy``,
    ``optimizer``, ``probes (P, d)``: one agent's own instead (``td0``; no Monte Carlo)."""
    own = env is not None
    if env is None:
        env = envs.make_agents(cfg.env, cfg.num_envs, seeds, device, cfg.start_box)
    agents = []
    for s in seeds:
        torch.manual_seed(s)
        net = (v_hat if v_hat is not None
               else ValueNetwork(env.obs_dim, cfg.hidden, cfg.activation)).to(device)
        agents.append(_agent(cfg, net, policy, optimizer, env.num_actions, s, device))
    mc = [None] * len(seeds)
    if probes is not None:
        probes = torch.as_tensor(probes, dtype=torch.float32, device=device)
    elif own:
        probes = torch.zeros(0, env.obs_dim, device=device)
    else:
        states = cfg.probe_states()
        if is_cartpole(cfg.env) and states:
            from semigrad.algos.monte_carlo import cartpole_values

            mc = [cartpole_values(states, cfg.gamma, cfg.mc_rollouts, seed=s) for s in seeds]
        probes = torch.tensor(states, dtype=torch.float32, device=device).view(len(states), -1)
    k = len(seeds)
    return TD0State(agents, env, env.reset(), probes, mc,
                    torch.zeros(k, 5, dtype=torch.float64, device=device))


def _learn(cfg: TD0Config, agent: Agent, obs, reward, terminated, final_obs):
    """One update of one agent on its N transitions; returns ``(values (2N,), delta (N,))``."""
    if agent.fast is None:
        loss, values, delta = td_loss(agent.v_hat, obs, reward, terminated, final_obs,
                                      cfg.gamma, cfg.rule, cfg.notebook_alpha)
        agent.optimizer.zero_grad()
        loss.backward()
        agent.optimizer.step()
        return values, delta
    values, delta, grads = agent.fast.step(obs, reward, terminated, final_obs, cfg.gamma)
    if agent.step is None:  # the same update as td_loss's semi-gradient rule, no autograd
        for param, grad in zip(agent.fast.parameters, grads, strict=True):
            param.grad = grad
        agent.optimizer.step()
    else:
        agent.step(grads)
    return values, delta


def iterate(cfg: TD0Config, st: TD0State, env_steps: int) -> int:
    """Updates of every agent, each on the N transitions of one step of its envs, up to the
    next metric row (``log_every``) or the end of the run; returns the env steps per agent."""
    n, k = cfg.num_envs, len(st.agents)
    end = min((env_steps // cfg.log_every + 1) * cfg.log_every, cfg.steps)
    updates = max(1, -(-(end - env_steps) // n))
    total = math.ceil(cfg.steps / n)
    anneal_every = max(1, total // 100)
    returns = []
    # With the lean step nothing here needs autograd: inference mode, the cheapest dispatch
    lean = all(a.step is not None for a in st.agents)
    with torch.inference_mode() if lean else contextlib.nullcontext():
        for _ in range(updates):
            obs = st.obs
            if k == 1:
                actions = st.agents[0].policy(obs)
            else:
                actions = torch.cat([a.policy(o) for a, o in zip(st.agents, obs.split(n),
                                                                   strict=True)])
            next_obs, reward, terminated, _, info = st.env.step(actions)
            final = info["final_obs"]
            sample = st.updates % HEALTH_EVERY == 0
            for i, agent in enumerate(st.agents):
                rows = slice(i * n, i * n + n)
                values, delta = (_learn(cfg, agent, obs, reward, terminated, final) if k == 1
                                 else _learn(cfg, agent, obs[rows], reward[rows],
                                             terminated[rows], final[rows]))
                if sample:
                    st.acc[i, 2] += delta.double().square().mean()
                    torch.maximum(st.acc[i, 3], values.double().abs().max(), out=st.acc[i, 3])
                    st.acc[i, 4] += 1
            returns.append(info["episode_return"])
            if len(returns) == RETURNS_KEPT:  # bounded memory whatever log_every is
                _count_episodes(st, returns, k, n)
            st.obs = next_obs
            if cfg.alpha_end != cfg.alpha and st.updates % anneal_every == 0:
                for agent in st.agents:  # for the next updates
                    set_step_size(agent.optimizer, cfg.alpha, cfg.alpha_end, st.updates / total)
            st.updates += 1
        if returns:
            _count_episodes(st, returns, k, n)
    return updates * n


def _count_episodes(st: TD0State, returns: list[torch.Tensor], k: int, n: int) -> None:
    """Add the episodes that ended in ``returns`` (each step's ``(K N,)`` episode returns, NaN
    where none ended) to ``st.acc``'s sums, and empty the list."""
    ended = torch.stack(returns).view(len(returns), k, n)
    st.acc[:, 0] += ended.nan_to_num().sum(dim=(0, 2))
    st.acc[:, 1] += (~ended.isnan()).sum(dim=(0, 2))
    returns.clear()


def probe_values(st: TD0State) -> list[list[float]]:
    """Each agent's ``v_hat`` at the probe states (one host sync)."""
    if st.probes.shape[0] == 0:
        return [[] for _ in st.agents]
    with torch.no_grad():
        return torch.stack([a.v_hat(st.probes) for a in st.agents]).tolist()


# ----------------------------------------------------------------------------- for the trainer

NAME = "td0"
KIND = "prediction"  # no greedy policy to evaluate: the probes' values against Monte Carlo
Config = TD0Config
HEALTH = ("squared TD error", "max |v_hat|")  # sampled: st.acc[:, 2:4]; st.acc[:, 4] counts


def metric_columns(cfg: TD0Config) -> tuple[str, ...]:
    return ("td_error_sq", "max_v", "alpha",
            *(f"v_hat_{i}" for i in range(len(cfg.probe_states()))))


def agent_metrics(cfg: TD0Config, st: TD0State) -> list[dict[str, Any]]:
    """Each agent's ``v_hat`` at the probes, for its metric row."""
    return [{f"v_hat_{i}": v for i, v in enumerate(values)} for values in probe_values(st)]


def health_bounds(cfg: TD0Config) -> dict[str, tuple[float, str]]:
    bound = value_bound(cfg.r_max, cfg.gamma)
    return {"max |v_hat|": (SLACK * bound, f"{SLACK:g} x r_max / (1 - gamma) = "
                                           f"{SLACK:g} x {bound:.4g}")}


def divergence_hint(cfg: TD0Config) -> str:
    if cfg.rule == "notebook":
        return ("the notebook's update: its 'loss' alpha * (R + gamma v(S') - v(S)) is not a "
                "squared error, and minimising it lets gradient flow through v(S'), so it "
                "pushes v(S) up without end; use the semi-gradient rule (target without "
                "gradient, Sutton & Barto 9.3)")
    return ("a step size alpha too large for the network and optimizer, gradient flowing "
            "through the bootstrap target, or off-policy bootstrapping with function "
            "approximation (the deadly triad, Sutton & Barto 11.3); lower --alpha")


def metric_values(cfg: TD0Config, st: TD0State, sums: Sequence[float],
                  env_steps: int) -> dict[str, Any]:
    sq, max_v, samples = sums
    lr = st.agents[0].optimizer.param_groups[0]["lr"]
    return {"td_error_sq": sq / samples if samples else None,
            "max_v": max_v if samples else None, "alpha": lr}


def summary_extras(cfg: TD0Config, st: TD0State, k: int) -> dict[str, Any]:
    """Agent k's probes: ``v_hat`` against the Monte Carlo value (CartPole-v1)."""
    states, mc = cfg.probe_states(), st.mc[k]
    final = probe_values(st)[k]
    rows = []
    for i, state in enumerate(states):
        v = final[i] if math.isfinite(final[i]) else None
        row = {"state": list(state), "v_hat": v, "mc_value": None, "mc_stderr": None,
               "error": None, "relative_error": None}
        if mc is not None and v is not None:
            row.update(mc_value=float(mc.values[i]), mc_stderr=float(mc.stderr[i]),
                       error=v - float(mc.values[i]),
                       relative_error=(v - float(mc.values[i])) / float(mc.values[i]))
        rows.append(row)
    errors = [abs(r["relative_error"]) for r in rows if r["relative_error"] is not None]
    return {"rule": cfg.rule, "probes": rows,
            "max_abs_relative_error": max(errors) if errors and len(errors) == len(rows)
            else None,
            "mc_rollouts": cfg.mc_rollouts if mc is not None else None}


def gradient_steps(st: TD0State) -> int:
    return st.updates


def grad_mode(st: TD0State):
    return torch.no_grad()


def make_network(cfg: TD0Config, env: envs.BatchedEnv) -> nn.Module:
    return ValueNetwork(env.obs_dim, cfg.hidden, cfg.activation)


def agent_state_dict(st: TD0State, k: int, template: nn.Module) -> dict:
    return {name: t.detach().clone() for name, t in st.agents[k].v_hat.state_dict().items()}


def weights_from_state(cfg: TD0Config, payload: dict, template: nn.Module) -> dict:
    return payload["v_hat"][0]


def state_dict(st: TD0State) -> dict:
    return {"v_hat": [a.v_hat.state_dict() for a in st.agents],
            "optimizer": [a.optimizer.state_dict() for a in st.agents],
            "generator": [a.generator.get_state() for a in st.agents],
            "policy": [{"rows": a.policy._rows, "next": a.policy._next} for a in st.agents],
            "env": st.env.state_dict(), "obs": st.obs, "updates": st.updates}


def load_state_dict(cfg: TD0Config, st: TD0State, payload: dict, seeds: Sequence[int],
                    device: torch.device) -> TD0State:
    if payload["env"] is None:
        raise ValueError(f"{cfg.env} cannot save its state, so this TD(0) run cannot resume "
                         "exactly; run it again")
    for i, agent in enumerate(st.agents):
        agent.v_hat.load_state_dict(payload["v_hat"][i])
        agent.optimizer.load_state_dict(payload["optimizer"][i])
        if agent.fast is not None:
            agent.step = lean_step(agent.optimizer, agent.fast.parameters)
        agent.generator.set_state(payload["generator"][i].cpu())
        agent.policy._rows = payload["policy"][i]["rows"].to(device)
        agent.policy._next = payload["policy"][i]["next"]
    st.env.load_state_dict(payload["env"])
    st.obs, st.updates = payload["obs"].to(device), payload["updates"]
    return st


def memory_bytes(cfg: TD0Config, agents: int) -> int:
    return 0  # no replay


def train(cfg: TD0Config, run_dir: str | Path, **kw: Any) -> dict:
    """TD(0) with ``cfg`` into ``run_dir`` (``semigrad.trainer.train``: ``seeds``, ``resume``,
    ``progress``, ``stop_after``); returns the summary (each agent's probes against Monte
    Carlo)."""
    return trainer.train(sys.modules[__name__], cfg, run_dir, **kw)


# ----------------------------------------------------------------------------- in memory


@dataclass
class TD0Result:
    """What ``td0`` returns: ``v_hat`` the trained network; ``steps`` transitions done;
    ``seconds`` of training; ``log_steps (T,)`` and ``probe_values (T, P)``: v_hat at the
    probe states over training; ``divergence`` what broke when the run stopped early (the
    trainer's divergence rule), else None."""

    v_hat: nn.Module
    steps: int
    seconds: float
    log_steps: list[int]
    probe_values: np.ndarray
    divergence: str | None = None

    @property
    def steps_per_second(self) -> float:
        return self.steps / self.seconds if self.seconds > 0 else math.inf


def td0(
    config: TD0Config,
    *,
    device: str | torch.device | None = None,
    seed: int = 0,
    env: envs.BatchedEnv | None = None,
    v_hat: nn.Module | None = None,
    policy: Policy | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    probes: torch.Tensor | None = None,
    on_log: Callable[[dict], None] | None = None,
) -> TD0Result:
    """TD(0) prediction of ``policy`` (default: uniform random) for ``config.steps``, in
    memory (no run directory): ``init`` and ``iterate``, as ``train`` runs them.

    ``env``, ``v_hat``, ``policy``, ``optimizer``: yours instead of ``config``'s (the env
    seeded ``seed``). ``probes (P, obs_dim)``: states at which v_hat is recorded every
    ``config.log_every`` transitions (also passed to ``on_log`` as a row ``{"step",
    "seconds", "v_hat_0", ...}``). Stops early, with ``divergence`` set, when the health
    values break the trainer's rule.
    """
    device = resolve_device(device)
    if env is None:
        env = envs.make(config.env, config.num_envs, device, seed, start_box=config.start_box)
    cfg = replace(config, seed=seed, num_envs=env.num_envs)
    st = init(cfg, [seed], device, env=env, v_hat=v_hat, policy=policy, optimizer=optimizer,
              probes=probes)
    module = sys.modules[__name__]
    log_steps: list[int] = []
    history: list[list[float]] = []
    start = time.perf_counter()

    def record(steps: int) -> None:
        values = probe_values(st)[0]
        history.append(values)
        log_steps.append(steps)
        if on_log is not None:
            on_log({"step": steps, "seconds": time.perf_counter() - start,
                    **{f"v_hat_{i}": v for i, v in enumerate(values)}})

    record(0)
    steps, divergence = 0, None
    while steps < cfg.steps:
        steps += iterate(cfg, st, steps)
        record(steps)
        broke = trainer.health_broken(module, cfg, st.acc[0, 2:].tolist())
        st.acc.zero_()
        if broke is not None:
            divergence = (f"diverged by step {steps:,}: {broke}; usual causes: "
                          + divergence_hint(cfg))
            break
    return TD0Result(v_hat=st.agents[0].v_hat, steps=steps,
                     seconds=time.perf_counter() - start, log_steps=log_steps,
                     probe_values=np.asarray(history, dtype=np.float64).reshape(
                         len(log_steps), -1), divergence=divergence)
