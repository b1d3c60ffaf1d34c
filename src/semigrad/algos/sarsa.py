"""Episodic semi-gradient SARSA and Expected SARSA (Sutton & Barto 10.1, 6.6), K seeds x N envs.

For each transition ``(S, A, R, S', A')`` of the epsilon-greedy policy::

    delta = R + gamma * (1 - terminated) * q_hat(S', A', w) - q_hat(S, A, w)      (SARSA)
    delta = R + gamma * (1 - terminated) * sum_a pi(a|S') q_hat(S', a, w) - q_hat(S, A, w)
                                                                          (Expected SARSA)
    w    <- w + alpha * delta * grad_w q_hat(S, A, w)

``A'`` is drawn from the epsilon-greedy policy at ``S'`` *before* the update and is the action
taken next (on-policy). ``delta`` is ``losses.sarsa`` / ``losses.expected_sarsa`` with
``gamma * (1 - terminated)`` as the discount (``losses.fold_termination``): the target carries
no gradient and only the taken action's value is trained. A time-limit truncation bootstraps
from ``S' = info["final_obs"]``; when an episode ends, the next action is drawn at the first
state of the new episode. The loss is ``0.5 * td_error_loss(delta)``, so plain SGD with step
``alpha`` is the textbook update; its gradient ``-delta / N`` at the taken action is written
in closed form (``losses.td_error_loss_and_grad_per_row``) and run backward through the
network (``nets.q_ensemble``: the stacked MLP's hand-written backward, or autograd).

Two forms of ``q_hat`` give the same ``(B, A)`` table of action values:

``multi-head``
    ``QNetwork``: states ``(B, d)`` -> ``(B, A)``, one output per action.
``state-action``
    ``StateActionQNetwork``, the course notebook's form: ``q_hat(s, a)`` is an MLP on the
    state concatenated with the action (one-hot, or the action number as in the notebook);
    called on states alone it evaluates every action.

Seeds are a batch dimension, as in DQN: agent k has its own network, optimizer, envs and
random stream, and on the CPU agent k of ``seeds=[.., k, ..]`` is the single run with seed k
number for number. The run harness (evaluation, metrics, checkpoints, exact resume,
summaries, the divergence rule) is ``semigrad.trainer``'s. Health: the mean loss and the
largest ``|q_hat(S, .)|`` since the last metric row, which may not pass
``1.5 r_max / (1 - gamma)`` (no value can exceed ``r_max / (1 - gamma)``; Sutton & Barto 3.3).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from semigrad import envs, losses, policies, schedules, trainer
from semigrad.algos import ensemble
from semigrad.algos.base import ControlConfig, option
from semigrad.config import check_choice, check_range
from semigrad.nets import (
    ACTIVATIONS,
    ModuleEnsemble,
    QNetwork,
    StackedMLP,
    StateActionQNetwork,
    seeded_q_ensemble,
)
from semigrad.optim import optimizer_step
from semigrad.seeding import AgentUniforms, agent_generators

METHODS = ("sarsa", "expected-sarsa")
Q_FORMS = ("multi-head", "state-action")
ACTION_ENCODINGS = ("one_hot", "index")
OPTIMIZERS = ("sgd", "adam")
SLACK = 1.5  # a value beyond SLACK * r_max / (1 - gamma) is divergence, not noise


@dataclass(frozen=True)
class SarsaConfig(ControlConfig):
    """Hyper-parameters of a semi-gradient SARSA run (and the run fields of
    ``ControlConfig``; validated when built). Steps count transitions per agent, summed over
    its N envs."""

    num_envs: int = option("parallel environments N", default=4)
    steps: int = option("environment steps to train for", default=60_000)
    gamma: float = option("discount gamma in [0, 1]", default=0.99)
    alpha: float = option("step size alpha (learning rate)", default=1e-3)
    optimizer: Literal["sgd", "adam"] = option("sgd is the textbook update", default="adam")
    method: Literal["sarsa", "expected-sarsa"] = option(
        "bootstrap on q(S', A') or on E_pi q(S', .)", default="sarsa")
    q_form: Literal["multi-head", "state-action"] = option(
        "(B, A) outputs, or the notebook's q(s, a) on [state, action]", default="multi-head")
    action_encoding: Literal["one_hot", "index"] = option(
        "action input of the state-action form ('index': the notebook's)", default="one_hot")
    hidden: tuple[int, ...] = option("hidden widths", default=(64, 64))
    activation: str = option("hidden activation: " + ", ".join(ACTIVATIONS), default="relu")
    epsilon_fraction: float = option("fraction of the run over which epsilon decays",
                                     default=0.5)
    r_max: float = option("largest |reward|: a |q_hat| over 1.5 r_max / (1 - gamma) stops the "
                          "run as diverged", default=1.0)
    eval_every: int = option("env steps between greedy evaluations", default=5_000)
    log_every: int = option("env steps between metric rows", default=1_000)

    def __post_init__(self) -> None:
        super().__post_init__()
        ensemble.check_counts(self, ("num_envs", "steps", "eval_every", "log_every"))
        check_range("num_envs", self.num_envs, 1, policies.MAX_PARALLEL_EPISODES)
        check_range("gamma", self.gamma, 0.0, 1.0)
        check_range("alpha", self.alpha, 0.0, low_open=True)
        check_choice("optimizer", self.optimizer, OPTIMIZERS)
        check_choice("method", self.method, METHODS)
        check_choice("q_form", self.q_form, Q_FORMS)
        check_choice("action_encoding", self.action_encoding, ACTION_ENCODINGS)
        ensemble.check_widths(self.hidden)
        check_choice("activation", self.activation, sorted(ACTIVATIONS))
        check_range("epsilon_fraction", self.epsilon_fraction, 0.0, 1.0)
        check_range("r_max", self.r_max, 0.0, low_open=True)


def make_q_network(cfg: SarsaConfig, obs_dim: int, num_actions: int) -> nn.Module:
    """The ``q_form`` network; called on states ``(B, d)`` it gives ``(B, A)``."""
    if cfg.q_form == "multi-head":
        return QNetwork(obs_dim, num_actions, cfg.hidden, cfg.activation)
    return StateActionQNetwork(obs_dim, num_actions, cfg.hidden, cfg.activation,
                               cfg.action_encoding)


def value_bound(cfg: SarsaConfig) -> float:
    """``r_max / (1 - gamma)``: no action value can be larger (``inf`` at gamma = 1)."""
    return float("inf") if cfg.gamma >= 1 else cfg.r_max / (1.0 - cfg.gamma)


@dataclass
class SarsaState:
    """Everything that changes while K agents train (stacked along dimension 0)."""

    online: StackedMLP | ModuleEnsemble  # the K agents' q_hat
    optimizer: torch.optim.Optimizer
    optimizer_step: Any
    env: envs.BatchedEnv
    obs: torch.Tensor  # (K N, d)
    actions: torch.Tensor  # (K N,): the actions taken at obs (drawn on-policy)
    uniforms: AgentUniforms
    acc: torch.Tensor  # (K, 5): returns, episodes, loss sum, max |q|, updates
    num_actions: int
    gradient_steps: int = 0  # updates per agent
    epsilon: float = 1.0

    @property
    def agents(self) -> int:
        return self.acc.shape[0]


def _explore(st: SarsaState, q: torch.Tensor, epsilon: float, u: torch.Tensor) -> torch.Tensor:
    """Epsilon-greedy actions ``(K, N)`` from ``q (K, N, A)`` and uniforms ``u (K, 2N)``."""
    return policies.epsilon_greedy_from_uniforms(lambda: q, st.num_actions, epsilon, u)


def init(cfg: SarsaConfig, seeds: Sequence[int], device: torch.device) -> SarsaState:
    """The K agents' fresh state: agent k's network initialised after
    ``torch.manual_seed(seeds[k])``, its envs and random stream seeded ``seeds[k]``."""
    env = envs.make_agents(cfg.env, cfg.num_envs, seeds, device)
    online = seeded_q_ensemble(lambda: make_network(cfg, env), seeds, device, "auto",
                               cfg.activation)
    kind = torch.optim.SGD if cfg.optimizer == "sgd" else torch.optim.Adam
    optimizer = kind(online.params, lr=cfg.alpha,
                     **({"fused": True} if device.type in ("cpu", "cuda") else {}))
    k, n = len(seeds), cfg.num_envs
    obs = env.reset()
    st = SarsaState(online=online, optimizer=optimizer,
                    optimizer_step=optimizer_step(optimizer, online.params), env=env, obs=obs,
                    actions=torch.zeros(0, dtype=torch.int64),
                    uniforms=AgentUniforms(agent_generators(seeds, device)),
                    acc=torch.zeros(k, 5, dtype=torch.float64, device=device),
                    num_actions=env.num_actions, epsilon=cfg.epsilon_start)
    with grad_mode(st):
        st.actions = _explore(st, online(obs.view(k, n, -1)), st.epsilon,
                              st.uniforms.take(2 * n)).reshape(-1)
    return st


def iterate(cfg: SarsaConfig, st: SarsaState, env_steps: int) -> int:
    """One step of every agent's N envs and one (Expected) SARSA update of each agent on its
    N transitions. Returns N, the env steps per agent."""
    k, n, a = st.agents, cfg.num_envs, st.num_actions
    with grad_mode(st):
        next_obs, reward, terminated, truncated, info = st.env.step(st.actions)
        st.epsilon = epsilon = schedules.epsilon_at(cfg, env_steps + n)
        q_s, cache = st.online.forward(st.obs.view(k, n, -1))  # (K, N, A), trained
        # one forward for S' (the bootstrap) and the next episode's first state
        q_t = st.online(torch.cat((info["final_obs"].view(k, n, -1), next_obs.view(k, n, -1)),
                                 dim=1))
        q_final, q_next = q_t[:, :n], q_t[:, n:]
        u = st.uniforms.take(4 * n)
        next_actions = _explore(st, q_final, epsilon, u[:, :2 * n])  # A' at S'
        discount = losses.fold_termination(cfg.gamma, terminated, q_s.dtype, check=False)
        q_tm1, q_final_rows = q_s.detach().reshape(-1, a), q_final.reshape(-1, a)
        if cfg.method == "sarsa":
            delta = losses.sarsa(q_tm1, st.actions, reward, discount, q_final_rows,
                                 next_actions.reshape(-1))
        else:
            delta = losses.expected_sarsa(q_tm1, st.actions, reward, discount, q_final_rows,
                                          policies.epsilon_greedy_probs(q_final_rows, epsilon))
        loss, grad_delta = losses.td_error_loss_and_grad_per_row(delta.view(k, n))
        # loss 0.5 * td_error_loss(delta); d delta / d q(S, A) = -1, 0 at the other actions
        grad_q = torch.zeros_like(q_s).scatter_(2, st.actions.view(k, n, 1),
                                                grad_delta.mul(-0.5).unsqueeze(2))
        st.online.backward(cache, grad_q)
        st.optimizer_step()
        first = _explore(st, q_next, epsilon, u[:, 2 * n:])  # after an episode ended
        st.actions = torch.where(terminated | truncated, first.reshape(-1),
                                 next_actions.reshape(-1))
        st.obs = next_obs
        returns = info["episode_return"].view(k, n)
        st.acc[:, 0] += returns.nan_to_num().sum(dim=1)
        st.acc[:, 1] += (~returns.isnan()).sum(dim=1)
        st.acc[:, 2] += loss.mul(0.5)
        torch.maximum(st.acc[:, 3], q_s.detach().abs().amax(dim=(1, 2)), out=st.acc[:, 3])
        st.acc[:, 4] += 1
    st.gradient_steps += 1
    return n


# ----------------------------------------------------------------------------- for the trainer

NAME = "sarsa"
Config = SarsaConfig
HEALTH = ("loss", "max |q_hat|")  # st.acc[:, 2:4]; st.acc[:, 4] counts the updates
METRIC_COLUMNS = ("loss", "max_q", "epsilon", "gradient_steps")
DIVERGENCE_HINT = ("a step size alpha too large for the network and optimizer, or "
                   "gradient flowing through the bootstrap target (the deadly triad, Sutton & "
                   "Barto 11.3); lower --alpha")


def health_bounds(cfg: SarsaConfig) -> dict[str, tuple[float, str]]:
    """``max |q_hat|`` may not pass ``SLACK`` times the largest possible value."""
    bound = value_bound(cfg)
    return {"max |q_hat|": (SLACK * bound, f"{SLACK:g} x r_max / (1 - gamma) = "
                                           f"{SLACK:g} x {bound:.4g}")}


def metric_values(cfg: SarsaConfig, st: SarsaState, sums: Sequence[float],
                  env_steps: int) -> dict[str, Any]:
    loss_sum, max_q, updates = sums
    return {"loss": loss_sum / updates if updates else None,
            "max_q": max_q if updates else None, "epsilon": st.epsilon,
            "gradient_steps": st.gradient_steps}


gradient_steps, grad_mode, q_values = (ensemble.gradient_steps, ensemble.grad_mode,
                                       ensemble.q_values)
agent_state_dict, weights_from_state = ensemble.agent_state_dict, ensemble.weights_from_state


def make_network(cfg: SarsaConfig, env: envs.BatchedEnv) -> nn.Module:
    return make_q_network(cfg, env.obs_dim, env.num_actions)


def state_dict(st: SarsaState) -> dict:
    """The K agents' whole state, with the actions they take next (drawn on-policy)."""
    return {**ensemble.state_dict(st), "actions": st.actions}


def load_state_dict(cfg: SarsaConfig, st: SarsaState, payload: dict, seeds: Sequence[int],
                    device: torch.device) -> SarsaState:
    """``init``'s state ``st``, overwritten with a checkpoint's."""
    ensemble.load_state_dict(cfg, st, payload, seeds, device)
    st.actions = payload["actions"].to(device)
    return st


def memory_bytes(cfg: SarsaConfig, agents: int) -> int:
    return 0  # no replay


def train(cfg: SarsaConfig, run_dir: str | Path, **kw: Any) -> dict:
    """Train with ``cfg`` into ``run_dir`` (``semigrad.trainer.train``: ``seeds``, ``resume``,
    ``progress``, ``stop_after``); returns the summary."""
    return trainer.train(sys.modules[__name__], cfg, run_dir, **kw)
