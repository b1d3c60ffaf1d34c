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
- loss: ``semigrad.losses.per_agent_q_loss``, each agent's (Double) Q-learning loss over its
  own minibatch and ``d loss / d q`` in closed form (targets carry no gradient; only the taken
  action is trained); per-agent gradient clipping and Adam (``semigrad.optim``);
- replay: ``semigrad.buffers.AgentReplay`` (terminated and truncated apart; a truncated
  transition bootstraps from the true final observation);
- environments: ``semigrad.envs.make_agents``; exploration and greedy evaluation:
  ``semigrad.policies``; randomness: ``semigrad.seeding.AgentUniforms``;
- the run directory (metrics, checkpoints, summaries): ``semigrad.run``.

One iteration: act epsilon-greedily in N envs per agent -> store the transitions -> every
``train_freq`` iterations, ``gradient_steps`` updates -> every ``eval_every`` env steps, greedy
evaluation, metrics, checkpoints. Step counts are transitions per agent, summed over its envs.
"""

from __future__ import annotations

import math
import os
import statistics
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn
from tqdm import tqdm

from semigrad import envs, policies, run
from semigrad.buffers import AgentReplay, Batch
from semigrad.config import (
    MAX_COUNT,
    MAX_SEED,
    RENAMED_FIELDS,
    ConfigError,
    check_choice,
    check_range,
    parse_seeds,
    to_dict,
)
from semigrad.devices import resolve_device
from semigrad.importing import import_user_module
from semigrad.losses import LOSS_KINDS, per_agent_q_loss
from semigrad.nets import (
    ACTIVATIONS,
    CONV_NETWORKS,
    STACKED_ACTIVATIONS,
    DuelingQNetwork,
    ModuleEnsemble,
    QNetwork,
    StackedMLP,
    q_ensemble,
)
from semigrad.optim import clip_grad_norm_per_agent, optimizer_step
from semigrad.run import (
    CtrlC,
    MetricsLog,
    RunLock,
    atomic_save_torch,
    atomic_write_json,
    read_json,
    remove_unstarted_run,
    stats_over,
    truncate_metrics,
)
from semigrad.seeding import AgentUniforms, agent_generators

CHECKPOINT_FORMAT = "semigrad-dqn-2"  # the whole training state of K agents (resumable)
WEIGHTS_FORMAT = "semigrad-dqn-2-weights"  # one agent's online network (what eval loads)
OLD_FORMATS = ("semigrad-dqn-1", "semigrad-dqn-1-many", "semigrad-dqn-1-weights")
METRIC_COLUMNS = ("step", "wall_s", "train_s", "episode_return", "episodes", "eval_return",
                  "eval_std", "loss", "mean_q", "epsilon", "alpha", "gradient_steps")


def _help(text: str, **kw: Any) -> Any:
    return field(metadata={"help": text}, **kw)


@dataclass(frozen=True)
class DQNConfig:
    """Every DQN hyper-parameter; validated when built. Steps count transitions per agent."""

    env: str = _help("environment id (gymnasium:ID forces gymnasium's)", default="CartPole-v1")
    start_box: tuple[float, ...] = _help(
        "CartPole-v1 only: training episodes start uniformly in +-(x, x_dot, theta, theta_dot) "
        "(exploring starts; evaluation keeps the env's own starts); none (--start-box "
        "alone): the env's own",
        default=())
    seed: int = field(default=0, metadata={"cli": False})
    steps: int = _help("environment steps to train for", default=50_000)
    num_envs: int = _help("parallel training environments", default=4)
    buffer_size: int = _help("replay capacity (transitions)", default=50_000)
    batch_size: int = _help("minibatch size", default=128)
    alpha: float = _help("step size alpha: Adam's learning rate", default=1e-3)
    alpha_end: float | None = _help("alpha anneals linearly to this by the end (none: "
                                    "constant alpha)", default=None)
    gamma: float = _help("discount", default=0.99)
    network: str = _help("Q-network: mlp (hidden, activation, dueling), minatar or nature "
                         "(convolutional, for frames; dueling) or a factory 'module:function' "
                         "called as function(obs_dim, num_actions) -> nn.Module",
                         default="mlp")
    hidden: tuple[int, ...] = _help("hidden layer widths (network mlp)", default=(64, 64))
    activation: str = _help("hidden activation (network mlp): "
                            + ", ".join(ACTIVATIONS), default="relu")
    dueling: bool = _help("dueling head (network mlp)", default=False)
    q_backend: Literal["auto", "stacked", "vmap"] = _help(
        "how the K agents' networks run: stacked (fast path: the MLP, relu/tanh/elu), vmap "
        "(any module, autograd) or auto (stacked where it applies)", default="auto")
    double: bool = _help("Double DQN targets", default=True)
    n_step: int = _help("n-step returns (1: one-step Q-learning)", default=5)
    loss: Literal["mse", "huber"] = _help("regression loss", default="mse")
    max_grad_norm: float = _help("clip the gradient norm (0: no clipping)", default=10.0)
    target_update: Literal["hard", "polyak"] = _help("target network update", default="hard")
    target_update_interval: int = _help("gradient steps between hard copies", default=50)
    tau: float = _help("Polyak rate per gradient step", default=0.005)
    epsilon_start: float = _help("initial epsilon", default=1.0)
    epsilon_end: float = _help("final epsilon", default=0.05)
    epsilon_fraction: float = _help("fraction of steps to anneal epsilon over", default=0.4)
    learning_starts: int = _help("env steps of random play before learning", default=1_000)
    train_freq: int = _help("iterations (vector steps) between updates", default=1)
    gradient_steps: int = _help("gradient steps per update", default=1)
    eval_every: int = _help("env steps between greedy evaluations", default=2_500)
    eval_episodes: int = _help("greedy episodes per evaluation", default=20)
    log_every: int = _help("env steps between metric rows", default=500)
    tensorboard: bool = _help("write TensorBoard events", default=True)
    device: str = _help("torch device: auto, cpu, cuda, cuda:N", default="auto")

    def __post_init__(self) -> None:
        try:
            envs.check_env_id(self.env)
            envs.check_start_box(self.env, self.start_box)
        except ValueError as err:
            raise ConfigError(str(err)) from None
        check_range("seed", self.seed, 0, MAX_SEED)
        for name in ("steps", "num_envs", "buffer_size", "batch_size", "n_step",
                     "target_update_interval", "train_freq", "gradient_steps", "eval_every",
                     "eval_episodes", "log_every", "learning_starts"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ConfigError(f"{name}: expected an integer, got {value!r}")
            check_range(name, value, 0 if name == "learning_starts" else 1,
                        policies.MAX_PARALLEL_EPISODES if name == "eval_episodes" else MAX_COUNT)
        if self.steps <= self.learning_starts:
            raise ConfigError(f"steps: {self.steps} is not more than learning_starts "
                              f"({self.learning_starts}): the run would only play randomly; "
                              "raise --steps or lower --learning-starts")
        check_range("alpha", self.alpha, 0, 1e3, low_open=True)
        if self.alpha_end is not None:
            check_range("alpha_end", self.alpha_end, 0, 1e3)
        check_range("gamma", self.gamma, 0, 1)
        check_range("tau", self.tau, 0, 1, low_open=True)
        check_range("max_grad_norm", self.max_grad_norm, 0, 1e30)
        for name in ("epsilon_start", "epsilon_end", "epsilon_fraction"):
            check_range(name, getattr(self, name), 0, 1)
        if not self.hidden or any(isinstance(h, bool) or not isinstance(h, int) or h < 1
                                  for h in self.hidden):
            raise ConfigError(f"hidden: expected one or more widths >= 1, got {self.hidden!r}")
        check_choice("activation", self.activation, ACTIVATIONS)
        check_choice("loss", self.loss, LOSS_KINDS)
        check_choice("target_update", self.target_update, ("hard", "polyak"))
        check_choice("q_backend", self.q_backend, ("auto", "stacked", "vmap"))
        if self.q_backend == "stacked" and not (
                self.network == "minatar"
                or (self.network == "mlp" and self.activation in STACKED_ACTIVATIONS)):
            raise ConfigError(f"q_backend: 'stacked' runs network mlp with activation "
                              f"{', '.join(STACKED_ACTIVATIONS)} and network minatar, not "
                              f"{self.network} with {self.activation}; use 'vmap' or 'auto'")
        if self.network not in ("mlp", *CONV_NETWORKS):
            network_factory(self.network)  # importable and callable, or a clear error
            if self.dueling:
                raise ConfigError("dueling: applies to the built-in networks only; build the "
                                  f"dueling head into {self.network!r}")
        if self.buffer_size < self.num_envs * (self.n_step + 1):
            raise ConfigError(f"buffer_size: {self.buffer_size} is too small; it must hold at "
                              f"least num_envs * (n_step + 1) = "
                              f"{self.num_envs * (self.n_step + 1)} transitions")
        resolve_device(self.device)


def network_factory(spec: str) -> Callable[[int, int], nn.Module]:
    """The function named by ``"package.module:function"``, or one ``ConfigError``."""
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


# Exploring starts for CartPole-v1's training episodes: the whole track, the pole within its
# 12 degrees, and velocities a little past what a random policy reaches.
CARTPOLE_START_BOX = (2.4, 2.5, 0.2, 2.5)

# The MinAtar paper's DQN protocol (Young & Tian 2019, section 4): a replay of 100k
# transitions, minibatches of 32, one update per frame, a target copy every 1,000 updates,
# epsilon 1 -> 0.1 over the first 100k frames after 5,000 frames of random play, the Huber
# loss, gamma 0.99, one-step Q-learning targets, 5M frames; Adam (semigrad's optimizer)
# instead of RMSProp, at 2.5e-4.
_MINATAR = dict(network="minatar", num_envs=1, steps=5_000_000, buffer_size=100_000,
                batch_size=32, alpha=2.5e-4, gamma=0.99, n_step=1, double=False,
                loss="huber", max_grad_norm=0.0, target_update_interval=1_000,
                epsilon_start=1.0, epsilon_end=0.1, epsilon_fraction=100_000 / 5_000_000,
                learning_starts=5_000, eval_every=100_000, eval_episodes=30, log_every=10_000)
# Breakout takes 3-step returns and Double DQN targets, where they measured better at 1M
# frames; the other games keep the paper's learner (docs/pixels.md has the measurements).
_MINATAR_LEARNER = {"breakout": dict(n_step=3, double=True)}
MINATAR_GAMES = {"asterix": "Asterix", "breakout": "Breakout", "freeway": "Freeway",
                 "seaquest": "Seaquest", "space-invaders": "SpaceInvaders"}

# Nature DQN (Mnih et al. 2015, Extended Data Table 1) on Atari: a 1M-frame replay (each
# frame stored once), minibatches of 32, an update every 4 agent steps, a target copy every
# 10,000 agent steps (2,500 updates), epsilon 1 -> 0.1 over the first 1M steps after 50,000
# steps of random play, the Huber loss, gamma 0.99, 10M agent steps (40M frames); Adam at
# 1e-4 instead of RMSProp (as Dopamine and CleanRL do).
ATARI = DQNConfig(env="ALE/Pong-v5", network="nature", num_envs=1, steps=10_000_000,
                  buffer_size=1_000_000, batch_size=32, alpha=1e-4, gamma=0.99, n_step=1,
                  double=False, loss="huber", max_grad_norm=0.0, train_freq=4,
                  target_update_interval=2_500, epsilon_start=1.0, epsilon_end=0.1,
                  epsilon_fraction=0.1, learning_starts=50_000, eval_every=250_000,
                  eval_episodes=10, log_every=10_000)

# Classic control, each from the env's own initial states as the peers train; what was
# measured to choose them, and what else was tried, is in docs/presets.md.
_CLASSIC = {
    # CartPole-v1: a 128x128 network, batch 256, 2 gradient steps per iteration, the Huber loss
    # and a step size decaying to 0
    "cartpole": dict(hidden=(128, 128), batch_size=256, gradient_steps=2, loss="huber",
                     alpha_end=0.0),
    # the RL Zoo's Acrobot settings in semigrad's terms (one gradient step per env step, a
    # target copy every 250), with 3-step returns, a decaying step size and dueling heads
    "acrobot": dict(env="Acrobot-v1", steps=100_000, hidden=(256, 256), alpha=6.3e-4,
                    alpha_end=0.0, learning_starts=0, epsilon_fraction=0.12,
                    epsilon_end=0.01, n_step=3, gradient_steps=4,
                    target_update_interval=250, dueling=True, eval_every=5_000),
    # the RL Zoo's MountainCar settings with 5-step returns, no Double DQN, the Huber loss, a
    # decaying step size and a 128x128 dueling network
    "mountaincar": dict(env="MountainCar-v0", steps=120_000, num_envs=1, buffer_size=10_000,
                        hidden=(128, 128), dueling=True, alpha=4e-3, alpha_end=0.0, gamma=0.98,
                        double=False, loss="huber", target_update_interval=300,
                        train_freq=16, gradient_steps=8, epsilon_fraction=0.2,
                        epsilon_end=0.07, eval_every=5_000),
    # the RL Zoo's LunarLander settings (its Acrobot ones) translated as for Acrobot: one
    # gradient step per 4 env steps, 3-step returns, a decaying step size
    "lunarlander": dict(env="LunarLander-v3", steps=300_000, hidden=(256, 256), alpha=6.3e-4,
                        alpha_end=0.0, learning_starts=0, epsilon_fraction=0.12,
                        epsilon_end=0.01, n_step=3, eval_every=5_000),
}

# Presets live here and only here; `semigrad train --help` lists them.
PRESETS: dict[str, DQNConfig] = {
    **{name: DQNConfig(**fields) for name, fields in _CLASSIC.items()},
    # CartPole-v1 with exploring starts (training only; evaluation on the env's own starts):
    # the 64x64 learner of DQNConfig(), on work the peers do not do
    "cartpole-explore": DQNConfig(start_box=CARTPOLE_START_BOX),
    **{f"minatar-{name}": DQNConfig(env=f"MinAtar/{game}-v1",
                                    **{**_MINATAR, **_MINATAR_LEARNER.get(name, {})})
       for name, game in MINATAR_GAMES.items()},
    "atari": ATARI,  # any ALE/<Game>-v5 with --env
}
DEFAULT_PRESET = "cartpole"

# Presets whose papers fix exploration in env steps, not as a share of the run (MinAtar: 100k
# frames; Nature DQN: 1M steps): ``preset_fields`` keeps that length when ``steps`` changes,
# unless the overrides set ``epsilon_fraction`` themselves.
EXPLORATION_STEPS: dict[str, int] = {
    name: round(PRESETS[name].epsilon_fraction * PRESETS[name].steps)
    for name in [*(f"minatar-{game}" for game in MINATAR_GAMES), "atari"]}


def preset_fields(name: str, overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Preset ``name``'s fields with ``overrides`` on top, for ``DQNConfig(**...)``.

    A preset's ``start_box`` belongs to its env: it is dropped when ``overrides`` name another
    env and do not set ``start_box`` themselves. A preset in ``EXPLORATION_STEPS`` explores
    for that many env steps whatever ``steps`` is (``epsilon_fraction`` is recomputed, at
    most 1), unless ``overrides`` set ``epsilon_fraction``.
    """
    if name not in PRESETS:
        raise ConfigError(f"preset: {name!r} is not one of {', '.join(sorted(PRESETS))}")
    fields = to_dict(PRESETS[name])
    if overrides.get("env", fields["env"]) != fields["env"] and "start_box" not in overrides:
        fields["start_box"] = ()
    fields.update(overrides)
    steps = fields["steps"]
    if (name in EXPLORATION_STEPS and "epsilon_fraction" not in overrides
            and isinstance(steps, int) and steps > 0):
        fields["epsilon_fraction"] = min(1.0, EXPLORATION_STEPS[name] / steps)
    return fields


def preset_for_env(env_id: str) -> str | None:
    """The name of the preset tuned for ``env_id`` (``gymnasium:`` prefix ignored), or None."""
    plain = env_id.removeprefix("gymnasium:")
    return next((name for name, cfg in PRESETS.items() if cfg.env == plain), None)


def preset(name: str = DEFAULT_PRESET, **overrides: Any) -> DQNConfig:
    """The config ``semigrad train --preset NAME --FIELD VALUE ...`` trains with:
    ``preset("cartpole", alpha=5e-4, seed=3)``."""
    return DQNConfig(**preset_fields(name, overrides))


class TrainingDiverged(RuntimeError):
    """A loss or Q-value became non-finite; the message names the steps and the quantity."""


def epsilon_at(cfg: DQNConfig, env_steps: int) -> float:
    """Linear from ``epsilon_start`` to ``epsilon_end`` over ``epsilon_fraction * steps``."""
    return policies.linear_schedule(cfg.epsilon_start, cfg.epsilon_end,
                                    cfg.epsilon_fraction * cfg.steps, env_steps)


def alpha_at(cfg: DQNConfig, env_steps: int) -> float:
    """Linear from ``alpha`` to ``alpha_end`` (if set) over ``steps``."""
    if cfg.alpha_end is None:
        return cfg.alpha
    return policies.linear_schedule(cfg.alpha, cfg.alpha_end, cfg.steps, env_steps)


# ----------------------------------------------------------------------------- networks


def make_q_network(cfg: DQNConfig, obs_dim: int, num_actions: int,
                   obs_shape: Sequence[int] | None = None) -> nn.Module:
    """One agent's online network: ``(B, obs_dim) -> (B, num_actions)``; ``obs_shape``: what
    each row stands for (``(C, H, W)`` frames for the convolutional networks)."""
    if cfg.network == "mlp":
        cls = DuelingQNetwork if cfg.dueling else QNetwork
        return cls(obs_dim, num_actions, hidden=cfg.hidden, activation=cfg.activation)
    if cfg.network in CONV_NETWORKS:
        if obs_shape is None or len(obs_shape) != 3:
            raise ConfigError(f"network: {cfg.network} takes frames (C, H, W); {cfg.env} has "
                              f"flat observations of {obs_dim} numbers: use network mlp")
        return CONV_NETWORKS[cfg.network](obs_shape, num_actions, cfg.dueling)
    net = network_factory(cfg.network)(obs_dim, num_actions)
    if not isinstance(net, nn.Module):
        raise ConfigError(f"network: {cfg.network} returned a {type(net).__name__}, not an "
                          "nn.Module")
    return net


def make_ensemble(cfg: DQNConfig, seeds: Sequence[int], env: envs.BatchedEnv,
                  device: torch.device) -> StackedMLP | ModuleEnsemble:
    """The K agents' online networks for ``env``, agent k initialised as
    ``torch.manual_seed(seeds[k])`` then ``make_q_network``."""
    nets = []
    for s in seeds:
        torch.manual_seed(s)
        nets.append(make_q_network(cfg, env.obs_dim, env.num_actions, env.obs_shape))
    return q_ensemble(nets, device, cfg.q_backend, cfg.activation)


# ----------------------------------------------------------------------------- state, update


@dataclass
class AgentRecord:
    """One agent's bookkeeping: its run directory, evaluations and health."""

    seed: int
    run_dir: Path
    evals: list[float] = field(default_factory=list)
    best_eval: float = -math.inf
    solved_at: dict | None = None
    error: str | None = None  # set when its loss or Q-values went non-finite
    checked: tuple[int, int] = (0, 0)  # env and gradient steps of its last finite metric row
    metrics: MetricsLog | None = None


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
    loss_fn: Callable[..., tuple[torch.Tensor, torch.Tensor, torch.Tensor]]
    acc: torch.Tensor  # (K, 5) sums since the last metric row: returns, episodes, loss, Q, updates
    records: list[AgentRecord]
    num_actions: int
    env_steps: int = 0  # per agent
    iterations: int = 0
    gradient_steps: int = 0  # per agent
    next_eval: int = 0
    next_log: int = 0
    train_s: float = 0.0
    eval_s: float = 0.0
    wall_s: float = 0.0  # before this process (resumed runs): wall times are cumulative
    started: float = field(default_factory=time.perf_counter)  # this process's start

    def rows(self) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Each agent's rows of the target and online parameters (views, made once)."""
        if getattr(self, "_rows", None) is None:
            self._rows = tuple([r for p in net.params for r in p.unbind(0)]
                               for net in (self.target, self.online))
        return self._rows

    def wall(self) -> float:
        """Wall seconds of the whole run, earlier processes of a resumed run included."""
        return self.wall_s + time.perf_counter() - self.started

    @property
    def agents(self) -> int:
        return len(self.records)

    def grad_mode(self):
        """Acting and learning need no autograd tape, except the general backend's forward."""
        return torch.no_grad() if self.online.needs_autograd else torch.inference_mode()


def replay_layout(cfg: DQNConfig, env: envs.BatchedEnv) -> dict[str, Any]:
    """``AgentReplay``'s arguments but ``agents`` and ``device``, for ``cfg`` on ``env``."""
    return dict(capacity=cfg.buffer_size // cfg.num_envs * cfg.num_envs,
                num_envs=cfg.num_envs, obs_dim=env.obs_dim, obs_dtype=env.obs_dtype,
                # frame-stack envs (Atari): each frame stored once
                frames=env.obs_shape if getattr(env, "frame_stack", 1) > 1 else None,
                max_episode_steps=env.spec.max_episode_steps)


def init_state(cfg: DQNConfig, seeds: Sequence[int], dirs: Sequence[Path],
               device: torch.device) -> DQNState:
    env = envs.make_agents(cfg.env, cfg.num_envs, seeds, device, cfg.start_box)
    online = make_ensemble(cfg, seeds, env, device)
    optimizer = torch.optim.Adam(online.params, lr=cfg.alpha,
                                 **({"fused": True} if device.type in ("cpu", "cuda") else {}))
    k = len(seeds)
    return DQNState(
        online=online, target=online.clone(), optimizer=optimizer,
        optimizer_step=optimizer_step(optimizer, online.params),
        replay=AgentReplay(k, device=device, **replay_layout(cfg, env)),
        env=env, obs=env.reset(), uniforms=AgentUniforms(agent_generators(seeds, device)),
        loss_fn=per_agent_q_loss(device),
        acc=torch.zeros(k, 5, dtype=torch.float64, device=device),
        records=[AgentRecord(s, Path(d)) for s, d in zip(seeds, dirs, strict=True)],
        num_actions=env.num_actions, next_eval=cfg.eval_every, next_log=cfg.log_every,
    )


def act(cfg: DQNConfig, st: DQNState, epsilon: float) -> None:
    """One environment step of every agent's N envs, epsilon-greedy; the transitions go to
    the replay and finished episodes' returns to ``st.acc``."""
    k = st.agents
    n = st.obs.shape[0] // k
    with st.grad_mode():
        actions = policies.epsilon_greedy_from_uniforms(
            lambda: st.online(st.obs.view(k, n, *st.obs.shape[1:])), st.num_actions, epsilon,
            st.uniforms.take(2 * n)).reshape(-1)
    next_obs, reward, terminated, truncated, info = st.env.step(actions)
    st.replay.add(st.obs, actions, reward, info["final_obs"], terminated, truncated)
    st.obs = next_obs
    returns = info["episode_return"].view(k, n)
    st.acc[:, 0] += returns.nan_to_num().sum(dim=1)
    st.acc[:, 1] += (~returns.isnan()).sum(dim=1)
    st.env_steps += n
    st.iterations += 1


def update(cfg: DQNConfig, st: DQNState) -> None:
    """One gradient step of every agent on a minibatch from its own replay (``learn``)."""
    with st.grad_mode():
        u = st.uniforms.take(cfg.batch_size)
        if cfg.n_step == 1:
            learn(cfg, st, st.replay.sample(u), cfg.gamma)
        else:
            batch = st.replay.sample_n_step(cfg.n_step, cfg.gamma, u)
            learn(cfg, st, batch, batch.discounts)


def learn(cfg: DQNConfig, st: DQNState, batch: Batch, gamma: float | torch.Tensor) -> None:
    """The gradient step of all K agents on ``batch`` (``K * B`` transitions, agent k's at rows
    ``k B .. k B + B - 1``; ``gamma`` a float or ``(K * B,)``): the (Double) Q-learning loss,
    per-agent clipping, Adam, target update. No host sync: a non-finite loss stays in
    ``st.acc`` until the next metric row reads it."""
    with st.grad_mode():
        k = st.agents
        shape = (k, batch.actions.shape[0] // k, *batch.obs.shape[1:])
        q, cache = st.online.forward(batch.obs.view(shape))  # (K, B, A)
        next_obs = batch.next_obs.view(shape)
        next_q_target = st.target(next_obs)
        next_q_online = st.online(next_obs) if cfg.double else None
        losses, mean_q, grad_q = st.loss_fn(q.detach(), batch.actions, batch.rewards,
                                            next_q_target, batch.terminated, gamma,
                                            next_q_online, cfg.loss)
        st.online.backward(cache, grad_q)
        st.optimizer.param_groups[0]["lr"] = alpha_at(cfg, st.env_steps)
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


@torch.no_grad()
def evaluate_agents(online: StackedMLP | ModuleEnsemble, env_id: str, episodes: int,
                    seeds: Sequence[int], device: torch.device) -> torch.Tensor:
    """Greedy returns ``(K, episodes)``: agent k plays ``episodes`` envs seeded ``seeds[k]``
    (those ``policies.evaluate`` would make for it), one episode each, all in parallel."""
    k = len(seeds)
    env = envs.make_agents(env_id, episodes, seeds, device)
    try:
        returns = policies.first_episode_returns(
            env, lambda obs: online(obs.view(k, episodes, *obs.shape[1:]))
            .argmax(dim=2).reshape(-1))
    finally:
        env.close()
    return returns.view(k, episodes)


# ----------------------------------------------------------------------------- checkpoints


_COUNTERS = ("env_steps", "iterations", "gradient_steps", "next_eval", "next_log", "train_s",
             "eval_s", "wall_s")
_RECORD_FIELDS = ("evals", "best_eval", "solved_at", "error", "checked")


def save_checkpoint(path: Path, cfg: DQNConfig, st: DQNState) -> None:
    """Write the K agents' whole training state to ``path`` atomically (loads with
    ``weights_only=True``): what ``train(..., resume=True)`` continues from."""
    atomic_save_torch(path, {
        "format": CHECKPOINT_FORMAT, "config": to_dict(cfg),
        "seeds": [r.seed for r in st.records],
        "online": st.online.params, "target": st.target.params,
        "buffers": getattr(st.online, "buffers", []),
        "optimizer": st.optimizer.state_dict(), "replay": st.replay.buffer.state_dict(),
        "env": st.env.state_dict(), "obs": st.obs, "uniforms": st.uniforms.state_dict(),
        "acc": st.acc, "counters": {**{k: getattr(st, k) for k in _COUNTERS},
                                    "wall_s": st.wall()},
        "records": [{f: getattr(r, f) for f in _RECORD_FIELDS} for r in st.records],
    })


def save_weights(path: Path, cfg: DQNConfig, state_dict: dict, **extra: Any) -> None:
    """One agent's online network (``load_agent`` reads it), atomically."""
    atomic_save_torch(path, {"format": WEIGHTS_FORMAT, "config": to_dict(cfg),
                             "online": state_dict, **extra})


def load_checkpoint(path: Path, device: torch.device | str = "cpu",
                    expected: Sequence[str] = (CHECKPOINT_FORMAT,)) -> dict:
    """A DQN checkpoint of a format in ``expected`` (``semigrad.run.load_checkpoint``)."""
    return run.load_checkpoint(path, expected, OLD_FORMATS, device, "DQN ")


def restore_state(payload: dict, cfg: DQNConfig, seeds: Sequence[int],
                  dirs: Sequence[Path], device: torch.device) -> DQNState:
    """``init_state``'s state, overwritten with a checkpoint's."""
    if list(payload["seeds"]) != list(seeds):
        raise ValueError(f"seeds: the checkpoint holds seeds {payload['seeds']}, "
                         f"got {list(seeds)}")
    st = init_state(cfg, seeds, dirs, device)
    with torch.no_grad():
        for params, saved in ((st.online.params, payload["online"]),
                              (st.target.params, payload["target"]),
                              (getattr(st.online, "buffers", []), payload["buffers"])):
            for p, value in zip(params, saved, strict=True):
                p.copy_(value)
    st.optimizer.load_state_dict(payload["optimizer"])
    st.optimizer_step = optimizer_step(st.optimizer, st.online.params)  # on the loaded state
    st.replay.buffer.load_state_dict(payload["replay"])
    if payload["env"] is not None:
        st.env.load_state_dict(payload["env"])
        st.obs = payload["obs"].to(device)
    else:  # the env could not save its episodes in progress: new ones, from fresh seeds
        warnings.warn(f"{cfg.env} cannot save its state: the resumed run starts new episodes, "
                      "so it will not match an uninterrupted run exactly", stacklevel=3)
        st.env.close()
        steps = payload["counters"]["env_steps"]
        st.env = envs.make_agents(cfg.env, cfg.num_envs, [s + 1 + steps for s in seeds],
                                  device, cfg.start_box)
        st.obs = st.env.reset()
    st.uniforms.load_state_dict(payload["uniforms"])
    st.acc.copy_(payload["acc"])
    for key, value in payload["counters"].items():
        setattr(st, key, value)
    for rec, saved in zip(st.records, payload["records"], strict=True):
        for f in _RECORD_FIELDS:
            setattr(rec, f, tuple(saved[f]) if f == "checked" else saved[f])
    return st


def config_differences(saved: dict, cfg: DQNConfig) -> list[str]:
    """Fields where ``cfg`` differs from a checkpoint's config, as ``name: saved -> given``."""
    given = to_dict(cfg)
    return [f"{k}: {saved.get(k)!r} (checkpoint) vs {v!r} (given)"
            for k, v in given.items() if k != "seed" and _norm(saved.get(k)) != _norm(v)]


def _norm(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def config_from_dict(saved: Mapping[str, Any]) -> DQNConfig:
    """A ``DQNConfig`` from ``config.json``'s or a checkpoint's fields (lists back to tuples;
    ``command`` and ``seeds`` ignored), with one clear error for another format."""
    names = {f for f in DQNConfig.__dataclass_fields__}
    old = sorted(set(saved) & set(RENAMED_FIELDS))
    if old:
        raise ValueError(f"config: written by an earlier semigrad (fields {old}; this version "
                         f"names them {[RENAMED_FIELDS[k] for k in old]}, checkpoint format "
                         f"{CHECKPOINT_FORMAT}); train again with this version")
    unknown = sorted(set(saved) - names - {"command", "seeds"})
    if unknown:
        raise ValueError(f"config: fields {unknown} are not DQNConfig's; the run was written by "
                         "another semigrad version or command")
    return DQNConfig(**{k: tuple(v) if isinstance(v, list) else v
                        for k, v in saved.items() if k in names})


# ----------------------------------------------------------------------------- loading an agent


class Agent:
    """A trained DQN agent: its online network and config, acting greedily.

    ``q_values(obs (B, obs_dim)) -> (B, A)``; ``act(obs) -> (B,)`` int64 greedy actions.
    One observation ``(obs_dim,)`` (as SB3's ``predict`` takes it) gives ``(A,)`` and a 0-d
    action. ``obs``: a tensor, NumPy array or list.
    """

    def __init__(self, net: nn.Module, cfg: DQNConfig, device: torch.device, meta: dict):
        self.net, self.cfg, self.device, self.meta = net.eval(), cfg, device, meta

    @torch.no_grad()
    def q_values(self, obs: torch.Tensor) -> torch.Tensor:
        obs = torch.as_tensor(obs, device=self.device)
        if obs.dim() not in (1, 2):
            raise ValueError(f"obs: expected one observation (obs_dim,) or a batch (B, obs_dim), "
                             f"got shape {tuple(obs.shape)}")
        q = self.net((obs.float() if obs.is_floating_point() else obs).reshape(
            -1, obs.shape[-1]))
        return q[0] if obs.dim() == 1 else q

    def act(self, obs: torch.Tensor) -> torch.Tensor:
        return self.q_values(obs).argmax(dim=-1)

    __call__ = act


def load_agent(run_dir: str | Path, which: Literal["best", "last"] = "best",
               device: str | torch.device = "cpu") -> Agent:
    """The agent trained in ``run_dir`` (a single run, or one ``seedN`` folder of a ``--seeds``
    run), with its best (highest greedy evaluation) or last weights."""
    run_dir = Path(run_dir)
    device = resolve_device(device)
    if which not in ("best", "last"):
        raise ValueError(f"which: expected 'best' or 'last', got {which!r}")
    saved = read_json(run_dir / "config.json")
    if saved.get("command") != "train" or "seeds" in saved:
        command = saved.get("command")
        what = ("a folder whose config.json names no semigrad command" if command is None
                else f"a 'semigrad {command}" + (" --seeds'" if "seeds" in saved else "'")
                + " run")
        raise ValueError(f"{run_dir}: {what}, not one `semigrad train` run; give a train run "
                         "directory (of a --seeds run: one of its seedN folders)")
    cfg = config_from_dict(saved)
    path = run_dir / f"checkpoint_{which}.pt"
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such checkpoint; has the run evaluated yet?")
    payload = load_checkpoint(path, device, (WEIGHTS_FORMAT, CHECKPOINT_FORMAT))
    probe = envs.make(cfg.env, num_envs=1, device="cpu")
    net = make_q_network(cfg, probe.obs_dim, probe.num_actions, probe.obs_shape).to(device)
    probe.close()
    if payload["format"] == CHECKPOINT_FORMAT:  # a single run's full state: agent 0
        ens = _ensemble_like(cfg, net, payload["online"], payload["buffers"])
        state = ens.agent_state_dict(0, net)
        meta = {"env_steps": payload["counters"]["env_steps"]}
    else:
        state = payload["online"]
        meta = {k: payload[k] for k in ("env_steps", "eval_return") if k in payload}
    net.load_state_dict(state)
    return Agent(net, cfg, device, meta)


def _ensemble_like(cfg: DQNConfig, template: nn.Module, params: list, buffers: list):
    """A Q-ensemble of ``template``'s architecture holding ``params`` (as saved)."""
    ens = q_ensemble([template], params[0].device, cfg.q_backend, cfg.activation)
    if isinstance(ens, ModuleEnsemble):
        return ModuleEnsemble(params, buffers, template)
    ens.params = list(params)  # StackedMLP or StackedConvNet: the layout is the saved one
    return ens


# ----------------------------------------------------------------------------- training loop


def train(
    cfg: DQNConfig,
    run_dir: str | Path,
    *,
    seeds: Sequence[int] | None = None,
    resume: bool = False,
    progress: bool = True,
    stop_after: int | None = None,
) -> dict:
    """Train DQN with ``cfg`` and write the run directory; returns the summary.

    ``seeds=None``: one agent, seeded ``cfg.seed``; ``run_dir`` holds config.json,
    metrics.csv, tb/, checkpoint_last.pt (the resumable state), checkpoint_best.pt and
    summary.json. ``seeds=[...]``: one agent per seed, trained at once; ``run_dir/seedS/``
    holds what a single run with seed S writes (checkpoint_last.pt there: weights only) and
    ``run_dir`` the resumable state of all agents and the summary over seeds. A single run whose
    loss goes non-finite raises ``TrainingDiverged`` (after writing summary.json); with
    several seeds the other agents go on and the summary names the diverged seeds.
    ``resume=True`` continues from ``run_dir/checkpoint_last.pt`` exactly where it stopped;
    ``stop_after`` (env steps) or Ctrl-C stop early with a resumable checkpoint.
    """
    device = resolve_device(cfg.device)
    single = seeds is None
    seeds = [cfg.seed] if single else list(parse_seeds(seeds))
    run_dir = Path(run_dir)
    dirs = [run_dir] if single else [run_dir / f"seed{s}" for s in seeds]
    last_path = run_dir / "checkpoint_last.pt"
    if resume:
        if not last_path.is_file():
            raise FileNotFoundError(f"{last_path}: no checkpoint there")
    else:
        estimate_memory(cfg, len(seeds))  # refuses what will not fit, before anything is made
        run_dir.mkdir(parents=True, exist_ok=True)
    locked = RunLock.acquire(run_dir)  # one process per run folder (re-entrant in-process)
    held = [] if resume else [p for d in {run_dir, *dirs} for p in (
        d / "metrics.csv", d / "checkpoint_last.pt", d / "summary.json") if p.exists()]
    if held:
        if locked:
            RunLock.release(run_dir)
        raise FileExistsError(f"{held[0].parent}: already holds a run ({held[0].name}); "
                              "continue it with --resume (resume=True) or train into a new "
                              "folder")
    try:
        return _train(cfg, run_dir, seeds, single, dirs, last_path, device, resume, progress,
                      stop_after)
    except TrainingDiverged:
        raise  # its summary.json says so
    except BaseException:
        if not resume and not last_path.exists():  # no half-made run: the folder is reusable
            remove_unstarted_run(run_dir, [] if single else dirs)
        raise
    finally:
        if locked:
            RunLock.release(run_dir)


def _train(cfg, run_dir, seeds, single, dirs, last_path, device, resume, progress, stop_after):
    if resume:
        payload = load_checkpoint(last_path, device)
        diffs = config_differences(payload["config"], cfg)
        if diffs:
            raise ValueError("config differs from the checkpoint's: " + "; ".join(diffs))
        st = restore_state(payload, cfg, seeds, dirs, device)
        for d in dirs:
            truncate_metrics(d, st.env_steps)
    else:
        st = init_state(cfg, seeds, dirs, device)
        _write_configs(cfg, run_dir, dirs, seeds, single)
    threshold = st.env.spec.reward_threshold
    template = make_q_network(cfg, st.env.obs_dim, st.num_actions, st.env.obs_shape)
    for rec in st.records:
        rec.metrics = MetricsLog(rec.run_dir, METRIC_COLUMNS, tensorboard=cfg.tensorboard,
                                 purge_step=st.env_steps + 1 if resume else None)

    stop = CtrlC().install()  # Ctrl-C: finish the iteration, save, exit cleanly
    bar = tqdm(total=cfg.steps, initial=st.env_steps, unit="step", disable=not progress,
               dynamic_ncols=True, desc="dqn" if single else f"dqn x{len(seeds)}")
    status = "finished"
    try:
        t_train = time.perf_counter()
        while st.env_steps < cfg.steps:
            if stop.requested or (stop_after is not None and st.env_steps >= stop_after):
                status = "interrupted"
                break
            epsilon = epsilon_at(cfg, st.env_steps)
            act(cfg, st, epsilon)
            bar.update(cfg.num_envs)
            if (st.env_steps >= max(cfg.learning_starts, cfg.n_step * cfg.num_envs)
                    and st.iterations % cfg.train_freq == 0):
                for _ in range(cfg.gradient_steps):
                    update(cfg, st)

            if st.env_steps >= st.next_eval or st.env_steps >= cfg.steps:
                st.train_s += time.perf_counter() - t_train
                t_eval = time.perf_counter()
                rows = metric_rows(cfg, st, epsilon, single)
                evals = _evaluate_and_save_best(cfg, st, rows, template, threshold, device)
                st.eval_s += time.perf_counter() - t_eval
                _log(cfg, st, rows)
                _save_last(cfg, st, template, single, last_path)
                if evals:
                    bar.set_postfix(eval=f"{statistics.median(evals):.1f}",
                                    eps=f"{epsilon:.2f}", refresh=False)
                t_train = time.perf_counter()
            elif st.env_steps >= st.next_log:
                _log(cfg, st, metric_rows(cfg, st, epsilon, single))
        else:
            st.train_s += time.perf_counter() - t_train
        if status == "interrupted":
            st.train_s += time.perf_counter() - t_train
            metric_rows(cfg, st, epsilon, single, row=False)  # health only: no row
            _save_last(cfg, st, template, single, last_path)
    except TrainingDiverged as err:
        summary = summarize(cfg, st, st.records[0], threshold, "diverged", str(err))
        atomic_write_json(run_dir / "summary.json", summary)
        raise
    finally:
        bar.close()
        stop.restore()
        st.env.close()
        for rec in st.records:
            rec.metrics.close()
    summaries = []
    for rec in st.records:
        summary = summarize(cfg, st, rec, threshold, "diverged" if rec.error else status,
                            rec.error)
        if not single and (status == "finished" or rec.error):
            atomic_write_json(rec.run_dir / "summary.json", summary)
        summaries.append(summary)
    if single:
        if status == "finished":
            atomic_write_json(run_dir / "summary.json", summaries[0])
        return summaries[0]
    total = aggregate(cfg, seeds, summaries, dirs)
    if status == "finished":
        atomic_write_json(run_dir / "summary.json", total)
    return total


def replay_bytes(cfg: DQNConfig, agents: int) -> int:
    """Bytes the replay of ``agents`` agents will allocate (from the buffer's own layout)."""
    probe = envs.make(cfg.env, num_envs=1, device="cpu")
    try:
        return AgentReplay.memory_bytes(agents, **replay_layout(cfg, probe))
    finally:
        probe.close()


def check_network(cfg: DQNConfig) -> None:
    """One ``ConfigError`` unless ``cfg.network`` maps a batch of ``cfg.env``'s observations
    ``(B, obs_dim)`` to Q-values ``(B, num_actions)``: a factory with a wrong head would
    otherwise fail later, in the env, with actions it cannot take."""
    probe = envs.make(cfg.env, num_envs=2, device="cpu", seed=0)
    try:
        obs = probe.reset()
        torch.manual_seed(0)
        net = make_q_network(cfg, probe.obs_dim, probe.num_actions, probe.obs_shape)
        try:
            with torch.no_grad():
                q = net(obs)
        except Exception as err:  # the user's module: whatever it raises, said in one line
            raise ConfigError(f"network: {cfg.network} failed on a batch of {cfg.env} "
                              f"observations {tuple(obs.shape)} ({type(err).__name__}: "
                              f"{err})") from None
        want = (obs.shape[0], probe.num_actions)
        if not isinstance(q, torch.Tensor) or tuple(q.shape) != want:
            got = tuple(q.shape) if isinstance(q, torch.Tensor) else type(q).__name__
            raise ConfigError(f"network: {cfg.network} maps {cfg.env} observations "
                              f"{tuple(obs.shape)} to {got}; it must return Q-values of shape "
                              f"(batch, {probe.num_actions}), one per action")
    finally:
        probe.close()


def estimate_memory(cfg: DQNConfig, agents: int) -> int:
    """Check the network (``check_network``) and return ``replay_bytes``; raises
    ``ConfigError`` (with the estimate) when that exceeds the memory this machine has
    available."""
    check_network(cfg)
    need = replay_bytes(cfg, agents)
    device = resolve_device(cfg.device)
    if device.type == "cuda":
        have = torch.cuda.mem_get_info(device)[0]
        where = f"free on {device}"
    else:
        try:
            have = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            return need
        where = "of available memory"
    if need > 0.9 * have:
        raise ConfigError(f"seeds: {agents} agents with buffer_size {cfg.buffer_size} need "
                          f"about {need / 2**30:.1f} GiB of replay, more than the "
                          f"{have / 2**30:.1f} GiB {where}; train fewer seeds at once or "
                          "lower --buffer-size")
    return need


def _write_configs(cfg: DQNConfig, run_dir: Path, dirs: Sequence[Path], seeds: Sequence[int],
                   single: bool) -> None:
    """config.json of the run (and of each agent's folder), before any work."""
    if single:
        atomic_write_json(run_dir / "config.json", {"command": "train", **to_dict(cfg)})
        return
    shared = {k: v for k, v in to_dict(cfg).items() if k != "seed"}
    atomic_write_json(run_dir / "config.json", {"command": "train", "seeds": list(seeds),
                                                **shared})
    for s, d in zip(seeds, dirs, strict=True):
        atomic_write_json(d / "config.json", {"command": "train", **to_dict(replace(cfg, seed=s))})


def metric_rows(cfg: DQNConfig, st: DQNState, epsilon: float, single: bool,
                row: bool = True) -> list[dict | None]:
    """Each agent's metric row from the sums since the last one (one host sync), or None for
    an agent that diverged. An agent whose loss or mean Q went non-finite since its last row is
    marked diverged; a single run raises ``TrainingDiverged`` instead."""
    acc = st.acc.tolist()
    if row:
        st.acc.zero_()
    rows: list[dict | None] = []
    for rec, (ep_sum, ep_count, loss_sum, q_sum, updates) in zip(st.records, acc, strict=True):
        if rec.error is None:
            for what, value in (("loss", loss_sum), ("mean Q-value", q_sum)):
                if not math.isfinite(value) and rec.error is None:
                    (env0, grad0), grad1 = rec.checked, st.gradient_steps
                    rec.error = (
                        f"non-finite {what} between env steps {env0} and {st.env_steps} "
                        f"(gradient steps {grad0 + 1}-{grad1}); usual causes: a learning rate "
                        "too high, gamma close to 1 with unbounded rewards, or no gradient "
                        "clipping (--max-grad-norm)")
                    if single:
                        raise TrainingDiverged(rec.error)
        if rec.error is not None or not row:
            rows.append(None)
            continue
        rec.checked = (st.env_steps, st.gradient_steps)
        rows.append({"step": st.env_steps, "train_s": round(st.train_s, 4),
                     "episode_return": ep_sum / ep_count if ep_count else None,
                     "episodes": int(ep_count), "eval_return": None, "eval_std": None,
                     "loss": loss_sum / updates if updates else None,
                     "mean_q": q_sum / updates if updates else None, "epsilon": epsilon,
                     "alpha": alpha_at(cfg, st.env_steps),
                     "gradient_steps": st.gradient_steps})
    return rows


def _evaluate_and_save_best(cfg, st, rows, template, threshold, device) -> list[float]:
    """Greedy evaluation of every agent still training; best weights; returns the means."""
    live = [i for i, row in enumerate(rows) if row is not None]
    if not live:
        return []
    seeds = [policies.evaluation_seed(rec.seed, len(rec.evals)) for rec in st.records]
    with st.grad_mode():
        returns = evaluate_agents(st.online, cfg.env, cfg.eval_episodes, seeds, device)
    means = returns.mean(dim=1).tolist()
    stds = returns.std(dim=1, unbiased=False).tolist()
    for i in live:
        rec, mean = st.records[i], means[i]
        rows[i].update(eval_return=mean, eval_std=stds[i])
        rec.evals.append(mean)
        if threshold is not None and rec.solved_at is None and mean >= threshold:
            rec.solved_at = {"env_steps": st.env_steps, "train_s": st.train_s,
                             "gradient_steps": st.gradient_steps}
        if mean > rec.best_eval:
            rec.best_eval = mean
            save_weights(rec.run_dir / "checkpoint_best.pt", replace(cfg, seed=rec.seed),
                         st.online.agent_state_dict(i, template), env_steps=st.env_steps,
                         eval_return=mean)
    st.next_eval = (st.env_steps // cfg.eval_every + 1) * cfg.eval_every
    return [means[i] for i in live]


def _log(cfg: DQNConfig, st: DQNState, rows: list[dict | None]) -> None:
    wall = round(st.wall(), 4)
    for rec, row in zip(st.records, rows, strict=True):
        if row is not None:
            rec.metrics.log({"step": row["step"], "wall_s": wall, **row})
    st.next_log = (st.env_steps // cfg.log_every + 1) * cfg.log_every


def _save_last(cfg, st, template, single, last_path) -> None:
    """The resumable state (after the rows it covers were logged, so a resumed run logs no row
    twice) and, with several seeds, each live agent's last weights."""
    for rec in st.records:
        rec.metrics.flush()  # the rows this checkpoint covers are on disk before it is
    save_checkpoint(last_path, cfg, st)
    if not single:
        for i, rec in enumerate(st.records):
            if rec.error is None:
                save_weights(rec.run_dir / "checkpoint_last.pt", replace(cfg, seed=rec.seed),
                             st.online.agent_state_dict(i, template), env_steps=st.env_steps)


# ----------------------------------------------------------------------------- summaries


def summarize(cfg: DQNConfig, st: DQNState, rec: AgentRecord, threshold: float | None,
              status: str, error: str | None = None) -> dict:
    """One agent's summary (times are the whole run's)."""
    solved = rec.solved_at is not None
    later = []
    if solved:
        first = next(i for i, v in enumerate(rec.evals) if v >= threshold)
        later = rec.evals[first + 1:]
    summary = {
        "status": status,
        "env": cfg.env,
        "seed": rec.seed,
        "solved": solved,
        "reward_threshold": threshold,
        "time_to_solve_s": rec.solved_at["train_s"] if solved else None,
        "env_steps_to_solve": rec.solved_at["env_steps"] if solved else None,
        "gradient_steps_to_solve": rec.solved_at["gradient_steps"] if solved else None,
        "final_eval_return": rec.evals[-1] if rec.evals else None,
        "best_eval_return": rec.best_eval if rec.evals else None,
        "evals_after_solve": len(later),
        "stable_fraction": (sum(v >= threshold for v in later) / len(later)) if later else None,
        "env_steps": rec.checked[0] if rec.error else st.env_steps,
        "gradient_steps": rec.checked[1] if rec.error else st.gradient_steps,
        "train_s": st.train_s,
        "eval_s": st.eval_s,
        "wall_s": st.wall(),
        "env_steps_per_s": st.env_steps / st.train_s if st.train_s else None,
        "eval_returns": rec.evals,
    }
    if error:
        summary["error"] = error
    return summary


def aggregate(cfg: DQNConfig, seeds: list[int], summaries: list[dict],
              dirs: list[Path]) -> dict:
    """A ``--seeds`` run's summary: status, solve counts and statistics over seeds."""
    k = len(seeds)
    live = [s for s in summaries if s["status"] != "diverged"]
    solved = [s for s in summaries if s["solved"]]
    first = summaries[0]
    statuses = {s["status"] for s in summaries}
    return {
        "status": ("interrupted" if "interrupted" in statuses
                   else "diverged" if "diverged" in statuses else "finished"),
        "env": cfg.env,
        "seeds": seeds,
        "agents": k,
        "diverged_seeds": [s["seed"] for s in summaries if s["status"] == "diverged"],
        "solved": len(solved),
        "solved_fraction": len(solved) / k,
        "reward_threshold": first["reward_threshold"],
        "final_eval_return": stats_over([s["final_eval_return"] for s in live
                                     if s["final_eval_return"] is not None]),
        "best_eval_return": stats_over([s["best_eval_return"] for s in live
                                    if s["best_eval_return"] is not None]),
        "env_steps_to_solve": stats_over([s["env_steps_to_solve"] for s in solved]),
        "time_to_solve_s": stats_over([s["time_to_solve_s"] for s in solved]),
        "stable_fraction": stats_over([s["stable_fraction"] for s in solved
                                   if s["stable_fraction"] is not None]),
        "env_steps_per_agent": max(s["env_steps"] for s in summaries),
        "gradient_steps_per_agent": max(s["gradient_steps"] for s in summaries),
        "train_s": first["train_s"],
        "eval_s": first["eval_s"],
        "wall_s": first["wall_s"],
        "agent_env_steps_per_s": (k * max(s["env_steps"] for s in summaries) / first["train_s"]
                                  if first["train_s"] else None),
        "per_seed": [{"seed": s["seed"], "status": s["status"], "solved": s["solved"],
                      "final_eval_return": s["final_eval_return"],
                      "best_eval_return": s["best_eval_return"],
                      "env_steps_to_solve": s["env_steps_to_solve"], "run_dir": str(d),
                      **({"error": s["error"]} if "error" in s else {})}
                     for s, d in zip(summaries, dirs, strict=True)],
    }
