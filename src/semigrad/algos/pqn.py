"""PQN: parallelised Q-learning with lambda-returns, for K seeds at once (a single run is K = 1).

Gallici et al., "Simplifying Deep Temporal Difference Learning" (ICLR 2025); reference code
purejaxql, and CleanRL's ``pqn.py`` in PyTorch. No replay and no target network: each
iteration collects a rollout of T steps from N parallel envs per agent with epsilon-greedy
exploration, computes Peng's Q(lambda) returns backward over it (``losses.lambda_returns``:
``G_t = r_t + discount_t ((1 - lambda) max_a q(S_t, a) + lambda G_{t+1})``, a termination
does not bootstrap, a truncation bootstraps from the true final observation and cuts the
chain), then takes E epochs of M minibatch steps on the squared error ``(G - q(S, A))^2``.
Normalising the network's hidden layers (LayerNorm, ``layer_norm``) is what the paper finds
keeps this semi-gradient Q-learning stable without a target network.

As in ``semigrad.algos.dqn``, seeds are a batch dimension: agent k has its own weights, Adam
moments, envs and random streams, and on the CPU agent k of a run with seeds ``[.., k, ..]``
is, number for number, the single run with seed k (``tests/test_pqn.py``). The pieces:

- networks: ``semigrad.nets.seeded_q_ensemble`` (the stacked-MLP fast path with its
  hand-written backward pass, LayerNorm included, or ``torch.vmap`` with autograd);
- targets and loss: ``semigrad.losses.lambda_returns``, ``fold_termination`` and
  ``per_agent_regression_loss_and_grad`` (the targets carry no gradient; only the taken
  action is trained); per-agent gradient clipping and Adam (``semigrad.optim``);
- environments: ``semigrad.envs.make_agents``; exploration: ``semigrad.policies``;
  randomness (exploration, minibatch order): ``semigrad.seeding.AgentUniforms``;
- the run harness (evaluation, metrics, checkpoints, resume, summaries): ``semigrad.trainer``,
  which calls this module's protocol functions (``init``, ``iterate``, ...; see there).

Step counts are transitions per agent, summed over its envs: one iteration is ``rollout *
num_envs`` of them and ``epochs * minibatches`` gradient steps.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from semigrad import envs, policies, schedules, trainer
from semigrad.algos import ensemble, presets
from semigrad.algos.base import ControlConfig, option
from semigrad.config import ConfigError, check_choice, check_range
from semigrad.losses import (
    LOSS_KINDS,
    fold_termination,
    lambda_returns,
    per_agent_regression_loss_and_grad,
)
from semigrad.nets import (
    ACTIVATIONS,
    CONV_NETWORKS,
    ModuleEnsemble,
    StackedMLP,
    build_q_network,
    check_backend,
    seeded_q_ensemble,
)
from semigrad.optim import clip_grad_norm_per_agent, optimizer_step
from semigrad.seeding import AgentUniforms, agent_generators
from semigrad.trainer import load_agent  # noqa: F401 (semigrad's API)

OPTIMIZERS = {"adam": torch.optim.Adam, "radam": torch.optim.RAdam}


@dataclass(frozen=True)
class PQNConfig(ControlConfig):
    """Every PQN hyper-parameter (and the run fields of ``ControlConfig``); validated when
    built. Steps count transitions per agent."""

    steps: int = option("environment steps to train for", default=200_000)
    num_envs: int = option("parallel training environments (N)", default=64)
    rollout: int = option("env steps per env in one rollout (T); an iteration is T * N env "
                         "steps", default=32)
    epochs: int = option("passes over each rollout (E)", default=2)
    minibatches: int = option("minibatches per epoch (M): each of T * N / M transitions",
                             default=8)
    alpha: float = option("step size alpha: the optimizer's learning rate", default=1e-3)
    alpha_end: float | None = option("alpha anneals linearly to this by the end (none: "
                                    "constant alpha)", default=None)
    optimizer: Literal["adam", "radam"] = option("adam or radam (Liu et al. 2020)",
                                                default="adam")
    gamma: float = option("discount", default=0.99)
    reward_scale: float = option("rewards are multiplied by this in the targets (Q-values come "
                                "out in those units; purejaxql scales CartPole's by 0.1)",
                                default=1.0)
    q_lambda: float = option("lambda of Peng's Q(lambda) returns (0: one-step Q-learning "
                            "targets, 1: Monte Carlo to the rollout's end)", default=0.9)
    network: str = option("Q-network: mlp (hidden, activation, layer_norm), minatar or nature "
                         "(convolutional, for frames; layer_norm)", default="mlp")
    hidden: tuple[int, ...] = option("hidden layer widths (network mlp)", default=(64, 64))
    activation: str = option("hidden activation (network mlp): "
                            + ", ".join(ACTIVATIONS), default="relu")
    layer_norm: bool = option("LayerNorm before each hidden activation (of the convolutions: "
                             "over each position's channels)", default=True)
    q_backend: Literal["auto", "stacked", "vmap"] = option(
        "how the K agents' networks run: stacked (fast path: the MLP, relu/tanh/elu), vmap "
        "(any module, autograd) or auto (stacked where it applies)", default="auto")
    loss: Literal["mse", "huber"] = option("regression loss", default="mse")
    max_grad_norm: float = option("clip the gradient norm (0: no clipping)", default=10.0)
    epsilon_fraction: float = option("fraction of steps to anneal epsilon over", default=0.3)
    eval_every: int = option("env steps between greedy evaluations", default=8_192)
    log_every: int = option("env steps between metric rows", default=2_048)

    def __post_init__(self) -> None:
        super().__post_init__()
        ensemble.check_counts(self, ("steps", "num_envs", "rollout", "epochs", "minibatches",
                                     "eval_every", "log_every"))
        batch = self.num_envs * self.rollout
        if batch % self.minibatches:
            raise ConfigError(f"minibatches: {self.minibatches} does not divide a rollout of "
                              f"num_envs * rollout = {batch} transitions")
        check_range("alpha", self.alpha, 0, 1e3, low_open=True)
        if self.alpha_end is not None:
            check_range("alpha_end", self.alpha_end, 0, 1e3)
        check_choice("optimizer", self.optimizer, tuple(OPTIMIZERS))
        check_range("gamma", self.gamma, 0, 1)
        check_range("reward_scale", self.reward_scale, 0, 1e6, low_open=True)
        check_range("q_lambda", self.q_lambda, 0, 1)
        check_range("max_grad_norm", self.max_grad_norm, 0, 1e30)
        check_range("epsilon_fraction", self.epsilon_fraction, 0, 1)
        check_choice("network", self.network, ("mlp", *CONV_NETWORKS))
        ensemble.check_widths(self.hidden)
        check_choice("activation", self.activation, ACTIVATIONS)
        check_choice("loss", self.loss, LOSS_KINDS)
        check_backend(self.q_backend, self.network, self.activation)


# ----------------------------------------------------------------------------- presets

# purejaxql anneals epsilon over a share of the run, so the share stays when steps change
PRESETS, preset, preset_fields, preset_for_env = presets.preset_functions(
    PQNConfig, presets.PQN, presets.PQN_DEFAULT, fixed_exploration=False)
DEFAULT_PRESET = presets.PQN_DEFAULT


# ----------------------------------------------------------------------------- state


def make_network(cfg: PQNConfig, env: envs.BatchedEnv) -> nn.Module:
    """One agent's Q-network for ``env``: ``(B, obs_dim) -> (B, num_actions)``."""
    return build_q_network(cfg.network, env.obs_dim, env.num_actions, env.obs_shape,
                           hidden=cfg.hidden, activation=cfg.activation,
                           layer_norm=cfg.layer_norm, env_id=cfg.env)


@dataclass
class Rollout:
    """T steps of the K agents' N envs, time first: ``obs``, ``final_obs`` (the state each
    step ended in, before any reset) ``(T, K N, obs_dim)``, ``actions``, ``rewards``,
    ``terminated``, ``truncated`` ``(T, K N)``. Agent k owns columns ``k N .. k N + N - 1``."""

    obs: torch.Tensor
    final_obs: torch.Tensor
    actions: torch.Tensor
    rewards: torch.Tensor
    terminated: torch.Tensor
    truncated: torch.Tensor

    @staticmethod
    def layout(cfg: PQNConfig, env: envs.BatchedEnv, agents: int) -> dict[str, tuple]:
        """Each tensor's (shape, dtype) for ``agents`` agents on ``env``."""
        t, b = cfg.rollout, agents * cfg.num_envs
        return {"obs": ((t, b, env.obs_dim), env.obs_dtype),
                "final_obs": ((t, b, env.obs_dim), env.obs_dtype),
                "actions": ((t, b), torch.int64), "rewards": ((t, b), torch.float32),
                "terminated": ((t, b), torch.bool), "truncated": ((t, b), torch.bool)}

    @classmethod
    def empty(cls, cfg: PQNConfig, env: envs.BatchedEnv, agents: int,
              device: torch.device) -> Rollout:
        return cls(**{name: torch.empty(shape, dtype=dtype, device=device)
                      for name, (shape, dtype) in cls.layout(cfg, env, agents).items()})


@dataclass
class PQNState:
    """Everything that changes while K agents train (stacked along dimension 0)."""

    online: StackedMLP | ModuleEnsemble
    optimizer: torch.optim.Optimizer
    optimizer_step: Callable[[], object]  # one optimizer step on online.params' .grad
    env: envs.BatchedEnv
    obs: torch.Tensor  # (K N, obs_dim): where each env is now
    uniforms: AgentUniforms
    rollout: Rollout
    acc: torch.Tensor  # (K, 5) sums since the last metric row: returns, episodes, loss, Q, updates
    num_actions: int
    iterations: int = 0
    gradient_steps: int = 0  # per agent
    epsilon: float = 1.0  # of the last env step

    @property
    def agents(self) -> int:
        return self.acc.shape[0]


def _optimizer(cfg: PQNConfig, params: list[torch.Tensor],
               device: torch.device) -> torch.optim.Optimizer:
    """Adam with torch's fused kernel where it runs (``optim.optimizer_step`` then steps each
    agent's row as its own tensor), or RAdam."""
    fused = cfg.optimizer == "adam" and device.type in ("cpu", "cuda")
    return OPTIMIZERS[cfg.optimizer](params, lr=cfg.alpha, **({"fused": True} if fused else {}))


def init(cfg: PQNConfig, seeds: Sequence[int], device: torch.device) -> PQNState:
    """The K agents' fresh state: agent k seeded ``seeds[k]``."""
    env = envs.make_agents(cfg.env, cfg.num_envs, seeds, device)
    online = seeded_q_ensemble(lambda: make_network(cfg, env), seeds, device, cfg.q_backend,
                               cfg.activation)
    optimizer = _optimizer(cfg, online.params, device)
    k = len(seeds)
    return PQNState(
        online=online, optimizer=optimizer,
        optimizer_step=optimizer_step(optimizer, online.params), env=env, obs=env.reset(),
        uniforms=AgentUniforms(agent_generators(seeds, device)),
        rollout=Rollout.empty(cfg, env, k, device),
        acc=torch.zeros(k, 2 + len(HEALTH) + 1, dtype=torch.float64, device=device),
        num_actions=env.num_actions)


# ----------------------------------------------------------------------------- the algorithm


def iterate(cfg: PQNConfig, st: PQNState, env_steps: int) -> int:
    """One iteration from ``env_steps`` env steps per agent: a rollout of ``rollout`` steps
    in each agent's N envs, its Q(lambda) returns, then ``epochs`` x ``minibatches`` gradient
    steps. Returns the env steps per agent it took (T N)."""
    with grad_mode(st):
        collect(cfg, st, env_steps)
        returns = q_lambda_returns(cfg, st)
        steps = cfg.rollout * cfg.num_envs
        st.optimizer.param_groups[0]["lr"] = schedules.alpha_at(cfg, env_steps + steps)
        learn(cfg, st, returns)
    st.iterations += 1
    return steps


def collect(cfg: PQNConfig, st: PQNState, env_steps: int) -> None:
    """``rollout`` epsilon-greedy steps of every agent's N envs into ``st.rollout`` (epsilon
    annealed step by step); finished episodes' returns go to ``st.acc``."""
    k, n, ro = st.agents, cfg.num_envs, st.rollout
    for t in range(cfg.rollout):
        st.epsilon = schedules.epsilon_at(cfg, env_steps + t * n)
        obs = st.obs
        actions = policies.epsilon_greedy_from_uniforms(
            lambda obs=obs: st.online(obs.view(k, n, *obs.shape[1:])), st.num_actions,
            st.epsilon, st.uniforms.take(2 * n)).reshape(-1)
        st.obs, reward, terminated, truncated, info = st.env.step(actions)
        ro.obs[t], ro.actions[t], ro.rewards[t] = obs, actions, reward
        ro.terminated[t], ro.truncated[t], ro.final_obs[t] = terminated, truncated, \
            info["final_obs"]
        returns = info["episode_return"].view(k, n)
        st.acc[:, 0] += returns.nan_to_num().sum(dim=1)
        st.acc[:, 1] += (~returns.isnan()).sum(dim=1)


def _per_agent(x: torch.Tensor, k: int) -> torch.Tensor:
    """``(T, K N, ...)`` -> ``(K, T N, ...)``: agent k's T N transitions in row k."""
    t, n = x.shape[0], x.shape[1] // k
    return x.view(t, k, n, *x.shape[2:]).transpose(0, 1).reshape(k, t * n, *x.shape[2:])


def q_lambda_returns(cfg: PQNConfig, st: PQNState) -> torch.Tensor:
    """Peng's Q(lambda) returns ``(T, K N)`` of ``st.rollout`` by the network that collected
    it: ``v_t = max_a q(S_t, a)`` at the state each step ended in (a truncated episode's true
    final observation), termination folded into the discount, the chain cut at every
    episode end (``losses.lambda_returns``); rewards times ``reward_scale``."""
    ro, k = st.rollout, st.agents
    t, b = ro.rewards.shape
    v_t = st.online(_per_agent(ro.final_obs, k)).amax(dim=2)  # (K, T N)
    v_t = v_t.view(k, t, b // k).transpose(0, 1).reshape(t, b)
    discount_t = fold_termination(cfg.gamma, ro.terminated.view(-1), v_t.dtype).view(t, b)
    rewards = ro.rewards.to(v_t.dtype)
    if cfg.reward_scale != 1.0:
        rewards = rewards * cfg.reward_scale
    return lambda_returns(rewards, discount_t, v_t, cfg.q_lambda, truncated_t=ro.truncated)


def learn(cfg: PQNConfig, st: PQNState, returns: torch.Tensor) -> None:
    """``epochs`` passes over the rollout, each in ``minibatches`` gradient steps of every
    agent on its own transitions (a fresh random order per agent and epoch, from its own
    uniforms): the squared (or Huber) error of ``q(S, A)`` against ``returns`` (no gradient
    through them), per-agent clipping, the optimizer step. No host sync: a non-finite loss
    stays in ``st.acc`` until the next metric row reads it."""
    ro, k, n = st.rollout, st.agents, cfg.num_envs
    t = ro.rewards.shape[0]
    size = t * n // cfg.minibatches
    obs = ro.obs.view(t * k * n, *ro.obs.shape[2:])
    actions, targets = ro.actions.view(-1), returns.view(-1)
    column = (torch.arange(k, device=obs.device) * n).unsqueeze(1)  # agent k's first column
    for _ in range(cfg.epochs):
        order = st.uniforms.take(t * n).argsort(dim=1, stable=True)  # (K, T N)
        rows = (order // n) * (k * n) + column + order % n  # agent k's j-th -> row of (T K N)
        for m in range(cfg.minibatches):
            idx = rows[:, m * size:(m + 1) * size]  # (K, size)
            q, cache = st.online.forward(obs[idx])
            losses, mean_q, grad_q = per_agent_regression_loss_and_grad(
                q.detach(), actions[idx], targets[idx], cfg.loss)
            st.online.backward(cache, grad_q)
            if cfg.max_grad_norm > 0:
                clip_grad_norm_per_agent(st.online.params, cfg.max_grad_norm)
            st.optimizer_step()
            st.gradient_steps += 1
            st.acc[:, 2] += losses
            st.acc[:, 3] += mean_q
            st.acc[:, 4] += 1


# ----------------------------------------------------------------------------- for the trainer

NAME = "pqn"
Config = PQNConfig
HEALTH = ("loss", "mean Q-value")  # st.acc[:, 2:4]; st.acc[:, 4] counts the updates
METRIC_COLUMNS = ("loss", "mean_q", "epsilon", "alpha", "gradient_steps")


def metric_values(cfg: PQNConfig, st: PQNState, sums: Sequence[float],
                  env_steps: int) -> dict[str, Any]:
    loss_sum, q_sum, updates = sums
    return {"loss": loss_sum / updates if updates else None,
            "mean_q": q_sum / updates if updates else None, "epsilon": st.epsilon,
            "alpha": schedules.alpha_at(cfg, env_steps), "gradient_steps": st.gradient_steps}


gradient_steps, grad_mode, q_values = (ensemble.gradient_steps, ensemble.grad_mode,
                                       ensemble.q_values)
agent_state_dict, weights_from_state = ensemble.agent_state_dict, ensemble.weights_from_state


def state_dict(st: PQNState) -> dict:
    """The K agents' whole state between iterations (networks, optimizer, envs, random
    streams, counters); the rollout is refilled before it is read, so it is not saved."""
    return {**ensemble.state_dict(st), "iterations": st.iterations}


def load_state_dict(cfg: PQNConfig, st: PQNState, payload: dict, seeds: Sequence[int],
                    device: torch.device) -> PQNState:
    """``init``'s state ``st``, overwritten with a checkpoint's."""
    ensemble.load_state_dict(cfg, st, payload, seeds, device)
    st.iterations = payload["iterations"]
    return st


def memory_bytes(cfg: PQNConfig, agents: int) -> int:
    """Bytes the rollout storage of ``agents`` agents will allocate (from its layout)."""
    probe = envs.make(cfg.env, num_envs=1, device="cpu")
    try:
        layout = Rollout.layout(cfg, probe, agents)
    finally:
        probe.close()
    return sum(torch.Size(shape).numel() * torch.empty((), dtype=dtype).element_size()
               for shape, dtype in layout.values())


def train(cfg: PQNConfig, run_dir: str | Path, **kw: Any) -> dict:
    """Train PQN with ``cfg`` into ``run_dir`` (``semigrad.trainer.train``: ``seeds``,
    ``resume``, ``progress``, ``stop_after``); returns the summary."""
    return trainer.train(sys.modules[__name__], cfg, run_dir, **kw)
