"""Deep Q-Network (Mnih et al., 2015) for K seeds at once; a single run is K = 1.

Options: Double DQN (van Hasselt et al., 2016), a dueling head (Wang et al., 2016), n-step
returns (Sutton & Barto 7.1; as in Rainbow, Hessel et al., 2018), Huber or squared loss,
gradient-norm clipping, a linearly decaying learning rate, hard or Polyak target updates, N
parallel environments per agent, and any Q-network (``network``: the built-in MLP or a factory
``module:function`` returning an ``nn.Module``).

Seeds are a batch dimension (PureJaxRL's idea, Lu et al., 2022): agent k has its own weights,
Adam moments, replay, exploration, environments and seed, and where one agent would run one
tensor operation the K agents run one batched operation. Nothing agent k computes depends on
another agent, so on the CPU agent k of a run with seeds ``[.., k, ..]`` is, number for number,
the single run with seed k (``tests/test_dqn.py``). The pieces come from the lower layers:

- networks: ``semigrad.nets.q_ensemble`` (the stacked-MLP fast path with a hand-written
  backward pass, or ``torch.vmap`` over any module with autograd);
- loss: ``semigrad.losses.per_agent_q_learning``, each agent's (Double) Q-learning loss over
  its own minibatch (``q_learning`` / ``double_q_learning`` with the replay's per-transition
  ``discount_t``, termination folded in) and ``d loss / d q`` in closed form (targets carry
  no gradient; only the taken action is trained); per-agent gradient clipping and Adam
  (``semigrad.optim``);
- replay: ``semigrad.buffers.AgentReplay`` (terminated and truncated apart; a truncated
  transition bootstraps from the true final observation);
- environments: ``semigrad.envs.make_agents``; exploration and greedy evaluation:
  ``semigrad.policies``; randomness: ``semigrad.seeding.AgentUniforms``;
- the run harness (evaluation, metrics, checkpoints, resume, summaries): ``semigrad.trainer``,
  which calls this module's protocol functions (``init``, ``iterate``, ...; see there).

One iteration: act epsilon-greedily in N envs per agent -> store the transitions -> every
``train_freq`` iterations, ``gradient_steps`` updates. Step counts are transitions per agent,
summed over its envs.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import torch
from torch import nn

from semigrad import envs, policies, schedules, trainer
from semigrad.algos import ensemble, presets
from semigrad.algos.base import ControlConfig, check_start_box, option
from semigrad.buffers import AgentReplay, Batch, PrioritizedSpec
from semigrad.config import (
    ConfigError,
    check_choice,
    check_range,
    config_from_saved,
)
from semigrad.heads import HeadNetwork
from semigrad.losses import (
    LOSS_KINDS,
    fold_termination,
    per_agent_q_learning,
    per_agent_weighted_q_learning_loss_and_grad,
)
from semigrad.nets import (
    ACTIVATIONS,
    CONV_NETWORKS,
    ModuleEnsemble,
    StackedMLP,
    build_q_network,
    check_backend,
    network_factory,
    seeded_q_ensemble,
)
from semigrad.noisy import StackedNoise
from semigrad.optim import clip_grad_norm_per_agent, optimizer_step
from semigrad.seeding import AgentUniforms, agent_generators
from semigrad.trainer import TrainingDiverged, load_agent  # noqa: F401 (semigrad's API)


@dataclass(frozen=True)
class DQNConfig(ControlConfig):
    """Every DQN hyper-parameter (and the run fields of ``ControlConfig``); validated when
    built. Steps count transitions per agent."""

    start_box: tuple[float, ...] = option(
        "CartPole-v1 only: training episodes start uniformly in +-(x, x_dot, theta, theta_dot) "
        "(exploring starts; evaluation keeps the env's own starts); none (--start-box "
        "alone): the env's own",
        default=())
    steps: int = option("environment steps to train for", default=50_000)
    num_envs: int = option("parallel training environments", default=4)
    buffer_size: int = option("replay capacity (transitions)", default=50_000)
    batch_size: int = option("minibatch size", default=128)
    alpha: float = option("step size alpha: Adam's learning rate", default=1e-3)
    alpha_end: float | None = option("alpha anneals linearly to this by the end (none: "
                                    "constant alpha)", default=None)
    gamma: float = option("discount", default=0.99)
    network: str = option("Q-network: mlp (hidden, activation, dueling), minatar or nature "
                         "(convolutional, for frames; dueling) or a factory 'module:function' "
                         "called as function(obs_dim, num_actions) -> nn.Module",
                         default="mlp")
    hidden: tuple[int, ...] = option("hidden layer widths (network mlp)", default=(64, 64))
    activation: str = option("hidden activation (network mlp): "
                            + ", ".join(ACTIVATIONS), default="relu")
    dueling: bool = option("dueling head (network mlp)", default=False)
    noisy: bool = option("noisy nets (Fortunato et al. 2018, factorised Gaussian; built-in "
                         "networks): every fully connected layer learns its own noise, "
                         "resampled before each action and each gradient step; set epsilon to 0 "
                         "for exploration by noise alone", default=False)
    noisy_sigma0: float = option("noisy nets: initial noise scale sigma0 (sigma = sigma0 / "
                                 "sqrt(inputs))", default=0.5)
    q_backend: Literal["auto", "stacked", "vmap"] = option(
        "how the K agents' networks run: stacked (fast path: the MLP, relu/tanh/elu), vmap "
        "(any module, autograd) or auto (stacked where it applies)", default="auto")
    double: bool = option("Double DQN targets", default=True)
    n_step: int = option("n-step returns (1: one-step Q-learning)", default=5)
    loss: Literal["mse", "huber"] = option("regression loss", default="mse")
    prioritized: bool = option("prioritized replay (Schaul et al. 2016, proportional): draw "
                              "transitions by priority |delta| + eps, importance-weighted loss",
                              default=False)
    priority_alpha: float = option("prioritized replay: the priority exponent alpha",
                                  default=0.6)
    priority_beta: float = option("prioritized replay: the importance-weight exponent beta at "
                                 "the start, annealed linearly to 1 by the end", default=0.4)
    priority_eps: float = option("prioritized replay: eps added to |delta|", default=1e-6)
    max_grad_norm: float = option("clip the gradient norm (0: no clipping)", default=10.0)
    target_update: Literal["hard", "polyak"] = option("target network update", default="hard")
    target_update_interval: int = option("gradient steps between hard copies", default=50)
    tau: float = option("Polyak rate per gradient step", default=0.005)
    epsilon_fraction: float = option("fraction of steps to anneal epsilon over", default=0.4)
    learning_starts: int = option("env steps of random play before learning", default=1_000)
    train_freq: int = option("iterations (vector steps) between updates", default=1)
    gradient_steps: int = option("gradient steps per update", default=1)
    eval_every: int = option("env steps between greedy evaluations", default=2_500)
    log_every: int = option("env steps between metric rows", default=500)

    def __post_init__(self) -> None:
        super().__post_init__()
        check_start_box(self)
        ensemble.check_counts(self, ("steps", "num_envs", "buffer_size", "batch_size", "n_step",
                                     "target_update_interval", "train_freq", "gradient_steps",
                                     "eval_every", "log_every", "learning_starts"),
                              zero_ok=("learning_starts",))
        if self.steps <= self.learning_starts:
            raise ConfigError(f"steps: {self.steps} is not more than learning_starts "
                              f"({self.learning_starts}): the run would only play randomly; "
                              "raise --steps or lower --learning-starts")
        check_range("alpha", self.alpha, 0, 1e3, low_open=True)
        if self.alpha_end is not None:
            check_range("alpha_end", self.alpha_end, 0, 1e3)
        check_range("gamma", self.gamma, 0, 1)
        check_range("tau", self.tau, 0, 1, low_open=True)
        check_range("priority_alpha", self.priority_alpha, 0, 1)
        check_range("priority_beta", self.priority_beta, 0, 1)
        check_range("priority_eps", self.priority_eps, 0, 1e3)
        check_range("noisy_sigma0", self.noisy_sigma0, 0, 1e3)
        if self.noisy and self.network not in ("mlp", *CONV_NETWORKS):
            raise ConfigError(f"noisy: applies to the built-in networks (mlp, "
                              f"{', '.join(CONV_NETWORKS)}), not {self.network!r}")
        if self.noisy and self.q_backend == "stacked":
            raise ConfigError("q_backend: 'stacked' does not run noisy layers; use 'vmap' or "
                              "'auto'")
        check_range("max_grad_norm", self.max_grad_norm, 0, 1e30)
        check_range("epsilon_fraction", self.epsilon_fraction, 0, 1)
        ensemble.check_widths(self.hidden)
        check_choice("activation", self.activation, ACTIVATIONS)
        check_choice("loss", self.loss, LOSS_KINDS)
        check_choice("target_update", self.target_update, ("hard", "polyak"))
        check_backend(self.q_backend, self.network, self.activation)
        if self.network not in ("mlp", *CONV_NETWORKS):
            network_factory(self.network)  # importable and callable, or a clear error
            if self.dueling:
                raise ConfigError("dueling: applies to the built-in networks only; build the "
                                  f"dueling head into {self.network!r}")
        if self.buffer_size < self.num_envs * (self.n_step + 1):
            raise ConfigError(f"buffer_size: {self.buffer_size} is too small; it must hold at "
                              f"least num_envs * (n_step + 1) = "
                              f"{self.num_envs * (self.n_step + 1)} transitions")


# The trainer's protocol as DQN supplies it, which the algorithms that extend DQN with another
# head (c51, qrdqn, rainbow) take as theirs (``trainer.extends``).
PROTOCOL = ("DIVERGENCE_HINT", "HEALTH", "MEMORY_HINT", "METRIC_COLUMNS", "agent_state_dict",
            "grad_mode", "gradient_steps", "iterate", "load_state_dict", "memory_bytes",
            "metric_values", "q_values", "state_dict", "weights_from_state")

PRESETS, preset, preset_fields, preset_for_env = presets.preset_functions(
    DQNConfig, presets.DQN, presets.DQN_DEFAULT)
DEFAULT_PRESET = presets.DQN_DEFAULT
EXPLORATION_STEPS = presets.EXPLORATION_STEPS
CARTPOLE_START_BOX = presets.CARTPOLE_START_BOX


# ----------------------------------------------------------------------------- networks


def make_q_network(cfg: DQNConfig, obs_dim: int, num_actions: int,
                   obs_shape: Sequence[int] | None = None) -> nn.Module:
    """One agent's online network: ``(B, obs_dim) -> (B, num_actions)``; ``obs_shape``: what
    each row stands for (``(C, H, W)`` frames for the convolutional networks). ``noisy``:
    ``head_network`` with a scalar head."""
    if cfg.noisy:
        return head_network(cfg, obs_dim, num_actions, obs_shape, "scalar")
    return build_q_network(cfg.network, obs_dim, num_actions, obs_shape, hidden=cfg.hidden,
                           activation=cfg.activation, dueling=cfg.dueling, env_id=cfg.env)


def head_network(cfg: DQNConfig, obs_dim: int, num_actions: int,
                 obs_shape: Sequence[int] | None, kind: str, num_atoms: int = 1,
                 **support: float) -> HeadNetwork:
    """One agent's ``heads.HeadNetwork`` of ``kind`` (``num_atoms`` per action) for ``cfg``:
    its ``network`` ("mlp" with ``hidden`` and ``activation``, or a convolutional one on
    frames ``obs_shape``), ``dueling`` and ``noisy``; ``support``: C51's ``v_min``,
    ``v_max``."""
    conv = cfg.network if cfg.network in CONV_NETWORKS else None
    if conv is not None and (obs_shape is None or len(obs_shape) != 3):
        raise ConfigError(f"network: {conv} takes frames (C, H, W); {cfg.env} has flat "
                          f"observations of {obs_dim} numbers: use network mlp")
    return HeadNetwork(obs_dim, num_actions, kind, num_atoms, cfg.hidden, cfg.activation,
                       cfg.dueling, cfg.noisy_sigma0 if cfg.noisy else None, conv=conv,
                       obs_shape=obs_shape, **support)


# ----------------------------------------------------------------------------- heads


class Head(Protocol):
    """What DQN's learning step and acting need from the network's output (an extension
    point: C51 and QR-DQN are heads, ``semigrad.algos.c51`` and ``qrdqn``).

    ``network(cfg, env)``: one agent's network as the ensemble runs it (its ``forward`` the
    head's output). ``q_values(out)``: the Q-values ``(K, E, A)`` of an output ``(K, E,
    ...)``, for acting, Double targets and evaluation. ``loss(cfg, out, a_tm1, r_t,
    discount_t, out_t, q_t_selector, weights)``: K agents' losses ``(K,)`` (each the mean over
    its own B samples, weighted by ``weights (K * B,)`` when given), their mean Q-values
    ``(K,)``, ``d sum_k loss_k / d out`` and the per-sample ``|delta|`` (the priorities'
    errors; None is allowed only when ``weights`` is None); ``out (K, B, ...)`` the online
    network's at ``S_{t-1}`` (detached), ``out_t`` the target network's at ``S_t``,
    ``q_t_selector (K, B, A)`` the online Q-values at ``S_t`` (Double) or None.
    """

    def network(self, cfg: Any, env: envs.BatchedEnv) -> nn.Module: ...
    def q_values(self, out: torch.Tensor) -> torch.Tensor: ...
    def loss(self, cfg: Any, out: torch.Tensor, a_tm1: torch.Tensor, r_t: torch.Tensor,
             discount_t: torch.Tensor, out_t: torch.Tensor, q_t_selector: torch.Tensor | None,
             weights: torch.Tensor | None) -> tuple[torch.Tensor, ...]: ...


@dataclass(frozen=True)
class ScalarHead:
    """DQN's own head: the network outputs Q-values; the (Double) Q-learning loss in closed
    form (``loss_fn``: ``losses.per_agent_q_learning``, compiled on the CPU), importance
    weighted for prioritized replay (``per_agent_weighted_q_learning_loss_and_grad``)."""

    loss_fn: Callable[..., tuple[torch.Tensor, torch.Tensor, torch.Tensor]]

    def network(self, cfg: DQNConfig, env: envs.BatchedEnv) -> nn.Module:
        net = make_network(cfg, env)
        if isinstance(net, HeadNetwork):
            net.raw = True
        return net

    def q_values(self, out: torch.Tensor) -> torch.Tensor:
        return out

    def loss(self, cfg, out, a_tm1, r_t, discount_t, out_t, q_t_selector, weights):
        if weights is None:
            return (*self.loss_fn(out, a_tm1, r_t, discount_t, out_t, q_t_selector, cfg.loss),
                    None)
        return per_agent_weighted_q_learning_loss_and_grad(out, a_tm1, r_t, discount_t, out_t,
                                                           q_t_selector, cfg.loss, weights)


# ----------------------------------------------------------------------------- state


@dataclass
class DQNState:
    """Everything that changes while K agents train (stacked along dimension 0)."""

    online: StackedMLP | ModuleEnsemble
    target: StackedMLP | ModuleEnsemble
    optimizer: torch.optim.Optimizer
    optimizer_step: Callable[[], object]  # one Adam step on online.params' .grad
    replay: AgentReplay
    env: envs.BatchedEnv
    obs: torch.Tensor
    uniforms: AgentUniforms
    head: Head
    acc: torch.Tensor  # (K, 5) sums since the last metric row: returns, episodes, loss, Q, updates
    num_actions: int
    iterations: int = 0
    gradient_steps: int = 0  # per agent
    epsilon: float = 1.0  # of the last iteration
    beta: float = 1.0  # prioritized replay's importance-weight exponent, of the last iteration
    noise: StackedNoise | None = None  # noisy nets: where the noise sits, each agent's generator

    @property
    def loss_fn(self) -> Callable[..., tuple[torch.Tensor, ...]] | None:
        """The scalar head's per-agent loss (compiled on the CPU)."""
        return getattr(self.head, "loss_fn", None)

    def rows(self) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Each agent's rows of the target and online parameters (views, made once)."""
        if getattr(self, "_rows", None) is None:
            self._rows = tuple([r for p in net.params for r in p.unbind(0)]
                               for net in (self.target, self.online))
        return self._rows

    @property
    def agents(self) -> int:
        return self.acc.shape[0]


def replay_layout(cfg: DQNConfig, env: envs.BatchedEnv) -> dict[str, Any]:
    """``AgentReplay``'s arguments but ``agents`` and ``device``, for ``cfg`` on ``env``."""
    return dict(capacity=cfg.buffer_size // cfg.num_envs * cfg.num_envs,
                num_envs=cfg.num_envs, obs_dim=env.obs_dim, obs_dtype=env.obs_dtype,
                # frame-stack envs (Atari): each frame stored once
                frames=env.obs_shape if getattr(env, "frame_stack", 1) > 1 else None,
                max_episode_steps=env.spec.max_episode_steps)


def priority_spec(cfg: DQNConfig) -> PrioritizedSpec | None:
    """The replay's ``PrioritizedSpec`` (None: uniform sampling)."""
    return PrioritizedSpec(cfg.priority_alpha, cfg.priority_eps) if cfg.prioritized else None


def beta_at(cfg: DQNConfig, env_steps: int) -> float:
    """Prioritized replay's beta: ``priority_beta`` -> 1 linearly over the run (Schaul et al.
    2016, section 3.4)."""
    return schedules.linear_schedule(cfg.priority_beta, 1.0, cfg.steps, env_steps)


def init(cfg: DQNConfig, seeds: Sequence[int], device: torch.device,
         head: Head | None = None) -> DQNState:
    """The K agents' fresh state: agent k seeded ``seeds[k]``. ``head``: what the network
    outputs and its loss (default ``ScalarHead``: Q-values)."""
    env = envs.make_agents(cfg.env, cfg.num_envs, seeds, device, cfg.start_box)
    head = head if head is not None else ScalarHead(per_agent_q_learning(device))
    templates = []

    def build() -> nn.Module:
        templates.append(head.network(cfg, env))
        return templates[-1]

    online = seeded_q_ensemble(build, seeds, device, cfg.q_backend, cfg.activation)
    noise = StackedNoise.of(templates[0], seeds, device) if cfg.noisy else None
    optimizer = torch.optim.Adam(online.params, lr=cfg.alpha,
                                 **({"fused": True} if device.type in ("cpu", "cuda") else {}))
    k = len(seeds)
    return DQNState(
        online=online, target=online.clone(), optimizer=optimizer,
        optimizer_step=optimizer_step(optimizer, online.params),
        replay=AgentReplay(k, device=device, prioritized=priority_spec(cfg),
                           **replay_layout(cfg, env)),
        env=env, obs=env.reset(), uniforms=AgentUniforms(agent_generators(seeds, device)),
        head=head, noise=noise,
        acc=torch.zeros(k, 2 + len(HEALTH) + 1, dtype=torch.float64, device=device),
        num_actions=env.num_actions,
    )


# ----------------------------------------------------------------------------- the algorithm


def iterate(cfg: DQNConfig, st: DQNState, env_steps: int) -> int:
    """One iteration from ``env_steps`` env steps per agent: one epsilon-greedy step in each
    agent's N envs, then every ``train_freq`` iterations ``gradient_steps`` updates. Returns
    the env steps per agent it took (N)."""
    st.epsilon = schedules.epsilon_at(cfg, env_steps)
    st.beta = beta_at(cfg, env_steps) if cfg.prioritized else 1.0
    n = act(cfg, st, st.epsilon)
    env_steps += n
    if (env_steps >= max(cfg.learning_starts, cfg.n_step * cfg.num_envs)
            and st.iterations % cfg.train_freq == 0):
        st.optimizer.param_groups[0]["lr"] = schedules.alpha_at(cfg, env_steps)
        for _ in range(cfg.gradient_steps):
            update(cfg, st)
    return n


def act(cfg: DQNConfig, st: DQNState, epsilon: float) -> int:
    """One environment step of every agent's N envs, epsilon-greedy; the transitions go to
    the replay and finished episodes' returns to ``st.acc``. Returns N."""
    k = st.agents
    n = st.obs.shape[0] // k
    with grad_mode(st):
        if st.noise is not None:
            st.noise.resample(st.online)
        actions = policies.epsilon_greedy_from_uniforms(
            lambda: st.head.q_values(st.online(st.obs.view(k, n, *st.obs.shape[1:]))),
            st.num_actions, epsilon, st.uniforms.take(2 * n)).reshape(-1)
    next_obs, reward, terminated, truncated, info = st.env.step(actions)
    st.replay.add(st.obs, actions, reward, info["final_obs"], terminated, truncated)
    st.obs = next_obs
    returns = info["episode_return"].view(k, n)
    st.acc[:, 0] += returns.nan_to_num().sum(dim=1)
    st.acc[:, 1] += (~returns.isnan()).sum(dim=1)
    st.iterations += 1
    return n


def update(cfg: DQNConfig, st: DQNState) -> None:
    """One gradient step of every agent on a minibatch from its own replay (``learn``)."""
    with grad_mode(st):
        u = st.uniforms.take(cfg.batch_size)
        beta = {"beta": st.beta} if cfg.prioritized else {}
        if cfg.n_step == 1:
            batch = st.replay.sample(u, **beta)
            discount_t = fold_termination(cfg.gamma, batch.terminated, torch.float64)
        else:
            batch = st.replay.sample_n_step(cfg.n_step, cfg.gamma, u, **beta)
            discount_t = fold_termination(batch.discounts, batch.terminated)
        learn(cfg, st, batch, discount_t)


def learn(cfg: DQNConfig, st: DQNState, batch: Batch, discount_t: torch.Tensor) -> None:
    """The gradient step of all K agents on ``batch`` (``K * B`` transitions, agent k's at rows
    ``k B .. k B + B - 1``; ``discount_t (K * B,)`` each transition's discount, 0 where it
    terminated): the (Double) Q-learning loss (importance-weighted for a prioritized batch,
    whose priorities are then updated from the step's ``|delta|``),
    per-agent clipping, Adam (at the step size ``iterate`` set), target update. No host sync:
    a non-finite loss stays in ``st.acc`` until the next metric row reads it."""
    with grad_mode(st):
        k = st.agents
        shape = (k, batch.actions.shape[0] // k, *batch.obs.shape[1:])
        if st.noise is not None:
            st.noise.resample(st.online, st.target)
        q, cache = st.online.forward(batch.obs.view(shape))  # (K, B, A) or the head's output
        next_obs = batch.next_obs.view(shape)
        next_q_target = st.target(next_obs)
        next_q_online = st.head.q_values(st.online(next_obs)) if cfg.double else None
        weights = getattr(batch, "weights", None)
        losses, mean_q, grad_q, td_abs = st.head.loss(
            cfg, q.detach(), batch.actions, batch.rewards, discount_t, next_q_target,
            next_q_online, weights)
        if weights is not None:
            st.replay.update_priorities(batch.indices, td_abs)
        st.online.backward(cache, grad_q)
        if cfg.max_grad_norm > 0:
            clip_grad_norm_per_agent(st.online.params, cfg.max_grad_norm)
        st.optimizer_step()
        st.gradient_steps += 1
        if cfg.target_update == "polyak":
            # agent by agent (each row a tensor of its own): a vectorised loop over the stacked
            # tensor would round an element differently depending on K (see optim.lean_step)
            torch._foreach_lerp_(*st.rows(), cfg.tau)
        elif st.gradient_steps % cfg.target_update_interval == 0:
            torch._foreach_copy_(st.target.params, st.online.params)
        st.acc[:, 2] += losses
        st.acc[:, 3] += mean_q
        st.acc[:, 4] += 1


# ----------------------------------------------------------------------------- for the trainer

NAME = "dqn"
Config = DQNConfig
HEALTH = ("loss", "mean Q-value")  # st.acc[:, 2:4]; st.acc[:, 4] counts the updates
MEMORY_HINT = "lower --buffer-size (the replay's capacity)"
DIVERGENCE_HINT = ("a learning rate too high, gamma close to 1 with unbounded rewards, or no "
                   "gradient clipping (--max-grad-norm)")
METRIC_COLUMNS = ("loss", "mean_q", "epsilon", "alpha", "gradient_steps")


def metric_values(cfg: DQNConfig, st: DQNState, sums: Sequence[float],
                  env_steps: int) -> dict[str, Any]:
    loss_sum, q_sum, updates = sums
    return {"loss": loss_sum / updates if updates else None,
            "mean_q": q_sum / updates if updates else None, "epsilon": st.epsilon,
            "alpha": schedules.alpha_at(cfg, env_steps), "gradient_steps": st.gradient_steps}


gradient_steps, grad_mode = ensemble.gradient_steps, ensemble.grad_mode


def q_values(st: DQNState, obs: torch.Tensor) -> torch.Tensor:
    """The K online networks' greedy Q-values on ``obs (K, E, ...)``: ``(K, E, A)`` (the
    head's means; noisy layers at their means, as ``eval()`` computes them)."""
    if st.noise is None:
        return st.head.q_values(st.online(obs))
    with st.noise.off(st.online):
        return st.head.q_values(st.online(obs))
agent_state_dict, weights_from_state = ensemble.agent_state_dict, ensemble.weights_from_state


def make_network(cfg: DQNConfig, env: envs.BatchedEnv) -> nn.Module:
    return make_q_network(cfg, env.obs_dim, env.num_actions, env.obs_shape)


def state_dict(st: DQNState) -> dict:
    """The K agents' whole state (networks, Adam, replay, envs, random streams, counters)."""
    return {**ensemble.state_dict(st), "target": st.target.params,
            "replay": st.replay.state_dict(), "iterations": st.iterations,
            **({} if st.noise is None else
               {"noise": [g.get_state() for g in st.noise.generators]})}


def load_state_dict(cfg: DQNConfig, st: DQNState, payload: dict, seeds: Sequence[int],
                    device: torch.device) -> DQNState:
    """``init``'s state ``st``, overwritten with a checkpoint's."""
    ensemble.load_state_dict(cfg, st, payload, seeds, device)
    ensemble.load_tensors(st.target.params, payload["target"])
    st.replay.load_state_dict(payload["replay"])
    st.iterations = payload["iterations"]
    if st.noise is not None:
        for gen, saved in zip(st.noise.generators, payload["noise"], strict=True):
            gen.set_state(saved.cpu())
    return st


def config_from_dict(saved: Mapping[str, Any]) -> DQNConfig:
    """A ``DQNConfig`` from ``config.json``'s or a checkpoint's fields."""
    return config_from_saved(DQNConfig, saved)


def memory_bytes(cfg: DQNConfig, agents: int) -> int:
    """Bytes the replay of ``agents`` agents will allocate (from the buffer's own layout)."""
    probe = envs.make(cfg.env, num_envs=1, device="cpu")
    try:
        return AgentReplay.memory_bytes(agents, prioritized=priority_spec(cfg),
                                        **replay_layout(cfg, probe))
    finally:
        probe.close()


def train(cfg: DQNConfig, run_dir: str | Path, **kw: Any) -> dict:
    """Train DQN with ``cfg`` into ``run_dir`` (``semigrad.trainer.train``: ``seeds``,
    ``resume``, ``progress``, ``stop_after``); returns the summary."""
    return trainer.train(sys.modules[__name__], cfg, run_dir, **kw)
