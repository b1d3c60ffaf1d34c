"""Deep Q-Network (Mnih et al., 2015), readable top to bottom.

Options: Double DQN (van Hasselt et al., 2016), a dueling head (Wang et al., 2016), n-step
returns (Sutton & Barto 7.1; as in Rainbow, Hessel et al., 2018), Huber or squared loss,
gradient-norm clipping, a linearly decaying learning rate, hard or Polyak target updates, N
parallel environments. The pieces are shared with the rest of semigrad:
``semigrad.losses.q_learning_loss`` (targets without gradient, only the taken action trained),
``semigrad.buffers.ReplayBuffer`` (terminated and truncated apart; truncated transitions bootstrap
from the true final observation) and ``semigrad.envs.make``.

One training iteration: act epsilon-greedily in N envs -> store N transitions -> every
``train_freq`` iterations, ``gradient_steps`` updates on minibatches -> every ``eval_every`` env
steps, greedy evaluation on separate envs, metrics, checkpoints. Step counts are transitions
summed over all environments.
"""

from __future__ import annotations

import io
import math
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn
from tqdm import tqdm

from semigrad import envs
from semigrad.buffers import ReplayBuffer
from semigrad.config import ConfigError, check_choice, check_range, to_dict
from semigrad.devices import resolve_device
from semigrad.losses import LOSS_KINDS, q_learning_loss
from semigrad.nets import DuelingQNetwork, QNetwork
from semigrad.run import CtrlC, MetricsLog, atomic_write_bytes, atomic_write_json, truncate_metrics

CHECKPOINT_FORMAT = "semigrad-dqn-1"
METRIC_COLUMNS = ("step", "wall_s", "train_s", "episode_return", "episodes", "eval_return",
                  "eval_std", "loss", "mean_q", "epsilon", "lr", "gradient_steps")


def _help(text: str, **kw: Any) -> Any:
    return field(metadata={"help": text}, **kw)


@dataclass(frozen=True)
class DQNConfig:
    """Every DQN hyper-parameter; validated when built. Steps count transitions over all envs."""

    env: str = _help("environment id (gymnasium:ID forces gymnasium's)", default="CartPole-v1")
    start_box: tuple[float, ...] = _help(
        "CartPole-v1 only: training episodes start uniformly in +-(x, x_dot, theta, theta_dot) "
        "(exploring starts; evaluation keeps the env's own starts); none (--start-box "
        "alone): the env's own",
        default=())
    seed: int = field(default=0, metadata={"cli": False})
    total_steps: int = _help("environment steps to train for", default=50_000)
    num_envs: int = _help("parallel training environments", default=4)
    buffer_size: int = _help("replay capacity (transitions)", default=50_000)
    batch_size: int = _help("minibatch size", default=128)
    lr: float = _help("Adam learning rate", default=1e-3)
    lr_final_fraction: float = _help("lr decays linearly to lr * this by the end", default=1.0)
    gamma: float = _help("discount", default=0.99)
    hidden: tuple[int, ...] = _help("hidden layer widths", default=(64, 64))
    dueling: bool = _help("dueling head", default=False)
    double: bool = _help("Double DQN targets", default=True)
    n_step: int = _help("n-step returns (1: one-step Q-learning)", default=5)
    loss: Literal["mse", "huber"] = _help("regression loss", default="mse")
    max_grad_norm: float = _help("clip the gradient norm (0: no clipping)", default=10.0)
    target_update: Literal["hard", "polyak"] = _help("target network update", default="hard")
    target_update_interval: int = _help("gradient steps between hard copies", default=50)
    tau: float = _help("Polyak rate per gradient step", default=0.005)
    eps_start: float = _help("initial epsilon", default=1.0)
    eps_end: float = _help("final epsilon", default=0.05)
    eps_fraction: float = _help("fraction of total_steps to anneal epsilon over", default=0.4)
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
        check_range("seed", self.seed, 0)
        for name in ("total_steps", "num_envs", "buffer_size", "batch_size", "n_step",
                     "target_update_interval", "train_freq", "gradient_steps", "eval_every",
                     "eval_episodes", "log_every"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ConfigError(f"{name}: expected an integer, got {value!r}")
            check_range(name, value, 1)
        check_range("learning_starts", self.learning_starts, 0)
        check_range("lr", self.lr, 0, low_open=True)
        check_range("lr_final_fraction", self.lr_final_fraction, 0, 1)
        check_range("gamma", self.gamma, 0, 1)
        check_range("tau", self.tau, 0, 1, low_open=True)
        check_range("max_grad_norm", self.max_grad_norm, 0)
        for name in ("eps_start", "eps_end", "eps_fraction"):
            check_range(name, getattr(self, name), 0, 1)
        if not self.hidden or any(h < 1 for h in self.hidden):
            raise ConfigError(f"hidden: expected one or more widths >= 1, got {self.hidden!r}")
        check_choice("loss", self.loss, LOSS_KINDS)
        check_choice("target_update", self.target_update, ("hard", "polyak"))
        if self.buffer_size < self.num_envs:
            raise ConfigError(f"buffer_size: {self.buffer_size} must be >= num_envs "
                              f"({self.num_envs})")
        resolve_device(self.device)


# Exploring starts for CartPole-v1's training episodes: the whole track, the pole within its
# 12 degrees, and velocities a little past what a random policy reaches.
CARTPOLE_START_BOX = (2.4, 2.5, 0.2, 2.5)

# Presets live here and only here; `semigrad train --help` lists them.
PRESETS: dict[str, DQNConfig] = {
    "cartpole": DQNConfig(start_box=CARTPOLE_START_BOX),
}
DEFAULT_PRESET = "cartpole"


def preset_fields(name: str, overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Preset ``name``'s fields with ``overrides`` on top, for ``DQNConfig(**...)``.

    A preset's ``start_box`` belongs to its env: it is dropped when ``overrides`` name another
    env and do not set ``start_box`` themselves.
    """
    fields = to_dict(PRESETS[name])
    if overrides.get("env", fields["env"]) != fields["env"] and "start_box" not in overrides:
        fields["start_box"] = ()
    return {**fields, **overrides}


class TrainingDiverged(RuntimeError):
    """A loss or Q-value became non-finite; the message names the step and the quantity."""


# ----------------------------------------------------------------------------- schedules


def epsilon_at(cfg: DQNConfig, env_steps: int) -> float:
    """Linear from ``eps_start`` to ``eps_end`` over ``eps_fraction * total_steps``."""
    span = cfg.eps_fraction * cfg.total_steps
    frac = 1.0 if span == 0 else min(env_steps / span, 1.0)
    return cfg.eps_start + frac * (cfg.eps_end - cfg.eps_start)


def lr_at(cfg: DQNConfig, env_steps: int) -> float:
    """Linear from ``lr`` to ``lr * lr_final_fraction`` over ``total_steps``."""
    frac = min(env_steps / cfg.total_steps, 1.0)
    return cfg.lr * (1.0 + frac * (cfg.lr_final_fraction - 1.0))


# ----------------------------------------------------------------------------- pieces


def make_q_network(cfg: DQNConfig, obs_dim: int, num_actions: int) -> nn.Module:
    """The online network's architecture: ``(B, obs_dim) -> (B, num_actions)``."""
    cls = DuelingQNetwork if cfg.dueling else QNetwork
    return cls(obs_dim, num_actions, hidden=cfg.hidden)


@torch.no_grad()
def select_actions(q_net: nn.Module, obs: torch.Tensor, epsilon: float,
                   gen: torch.Generator) -> torch.Tensor:
    """Epsilon-greedy actions ``(N,)`` int64 for observations ``(N, obs_dim)``."""
    n = obs.shape[0]
    num_actions = q_net.num_actions
    random_actions = torch.randint(num_actions, (n,), generator=gen, device=obs.device)
    if epsilon >= 1.0:
        return random_actions
    greedy = q_net(obs).argmax(dim=1)
    explore = torch.rand(n, generator=gen, device=obs.device) < epsilon
    return torch.where(explore, random_actions, greedy)


@torch.no_grad()
def first_episode_returns(env: envs.BatchedEnv,
                          policy: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """Play ``policy (N, obs_dim) -> actions (N,)`` in all N envs until each has finished one
    episode; returns those N episodes' returns ``(N,)``."""
    obs = env.reset()
    returns = torch.full((env.num_envs,), float("nan"), device=env.device)
    limit = env.spec.max_episode_steps or 100_000
    for _ in range(limit + 1):
        obs, _, terminated, truncated, info = env.step(policy(obs))
        first = (terminated | truncated) & returns.isnan()
        returns = torch.where(first, info["episode_return"].to(returns.dtype), returns)
        if not returns.isnan().any():
            break
    return returns


def evaluate(q_net: nn.Module, env_id: str, episodes: int, seed: int,
             device: torch.device) -> torch.Tensor:
    """Returns ``(episodes,)`` of greedy episodes, one per environment, all run in parallel."""
    env = envs.make(env_id, num_envs=episodes, device=device, seed=seed)
    try:
        return first_episode_returns(env, lambda obs: q_net(obs).argmax(dim=1))
    finally:
        env.close()


@dataclass
class DQNState:
    """Everything that changes while training: what a checkpoint holds."""

    online: nn.Module
    target: nn.Module
    optimizer: torch.optim.Optimizer
    buffer: ReplayBuffer
    env: envs.BatchedEnv
    obs: torch.Tensor
    gen: torch.Generator
    env_steps: int = 0
    iterations: int = 0
    gradient_steps: int = 0
    next_eval: int = 0
    next_log: int = 0
    evals: list[float] = field(default_factory=list)
    best_eval: float = -math.inf
    solved_at: dict | None = None
    train_s: float = 0.0
    eval_s: float = 0.0
    # sums since the last metric row: episode returns, episode count, loss, mean Q, updates;
    # ``sums`` accumulates on the device, ``acc`` on the host (``check_health`` moves them)
    acc: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0, 0.0, 0.0])
    sums: torch.Tensor | None = None
    checked: tuple[int, int] = (0, 0)  # env and gradient steps at the last health check


def init_state(cfg: DQNConfig, device: torch.device) -> DQNState:
    torch.manual_seed(cfg.seed)  # network initialisation
    env = envs.make(cfg.env, num_envs=cfg.num_envs, device=device, seed=cfg.seed,
                    start_box=cfg.start_box)
    online = make_q_network(cfg, env.obs_dim, env.num_actions).to(device)
    target = make_q_network(cfg, env.obs_dim, env.num_actions).to(device)
    target.load_state_dict(online.state_dict())
    target.requires_grad_(False)
    optimizer = torch.optim.Adam(online.parameters(), lr=cfg.lr,
                                 **({"fused": True} if device.type in ("cpu", "cuda") else {}))
    gen = torch.Generator(device=device).manual_seed(cfg.seed)
    return DQNState(
        online=online, target=target, optimizer=optimizer,
        buffer=ReplayBuffer(cfg.buffer_size // cfg.num_envs * cfg.num_envs, env.obs_dim,
                            device=device, num_envs=cfg.num_envs),
        env=env, obs=env.reset(), gen=gen, next_eval=cfg.eval_every, next_log=cfg.log_every,
        sums=torch.zeros(5, dtype=torch.float64, device=device),
    )


def check_health(st: DQNState) -> None:
    """Move the device sums to ``st.acc`` (one host sync) and raise ``TrainingDiverged`` if a
    loss or Q-value since the last check was non-finite. Called before every metric row and
    checkpoint, so a checkpoint never holds diverged weights."""
    sums = st.sums.tolist()
    st.sums.zero_()
    st.acc = [a + b for a, b in zip(st.acc, sums, strict=True)]
    for what, value in (("loss", sums[2]), ("mean Q-value", sums[3])):
        if not math.isfinite(value):
            (env0, grad0), grad1 = st.checked, st.gradient_steps
            raise TrainingDiverged(
                f"non-finite {what} between env steps {env0} and {st.env_steps} (gradient steps "
                f"{grad0 + 1}-{grad1}); usual causes: a learning rate too high, gamma close to 1 "
                "with unbounded rewards, or no gradient clipping (--max-grad-norm)"
            )
    st.checked = (st.env_steps, st.gradient_steps)


def update(cfg: DQNConfig, st: DQNState) -> None:
    """One gradient step on a minibatch; target network update; divergence check."""
    if cfg.n_step == 1:
        batch, gamma = st.buffer.sample(cfg.batch_size, st.gen), cfg.gamma
    else:
        batch = st.buffer.sample_n_step(cfg.batch_size, cfg.n_step, cfg.gamma, st.gen)
        gamma = batch.discounts
    q = st.online(batch.obs)
    with torch.no_grad():  # S' apart from S: the backward pass then covers only the B rows of S
        next_q_target = st.target(batch.next_obs)
        next_q_online = st.online(batch.next_obs) if cfg.double else None
    loss = q_learning_loss(
        q, batch.actions, batch.rewards, next_q_target, batch.terminated, gamma,
        next_q_online=next_q_online, kind=cfg.loss,
    )
    # summed on the device (no host sync per step); a NaN or inf stays in the sum until
    # check_health reads it, before any metric row or checkpoint
    st.sums[2:] += torch.stack([loss.detach(), q.detach().mean(), loss.new_ones(())]).double()
    for group in st.optimizer.param_groups:
        group["lr"] = lr_at(cfg, st.env_steps)
    st.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if cfg.max_grad_norm > 0:
        nn.utils.clip_grad_norm_(st.online.parameters(), cfg.max_grad_norm)
    st.optimizer.step()
    st.gradient_steps += 1
    if cfg.target_update == "polyak":
        with torch.no_grad():
            for t, p in zip(st.target.parameters(), st.online.parameters(), strict=True):
                t.lerp_(p, cfg.tau)
    elif st.gradient_steps % cfg.target_update_interval == 0:
        st.target.load_state_dict(st.online.state_dict())


# ----------------------------------------------------------------------------- checkpoints


def _counters(st: DQNState) -> dict:
    return {k: getattr(st, k) for k in ("env_steps", "iterations", "gradient_steps", "next_eval",
                                        "next_log", "evals", "best_eval", "solved_at", "train_s",
                                        "eval_s", "acc", "sums", "checked")}


def save_checkpoint(path: Path, cfg: DQNConfig, st: DQNState) -> None:
    """Write the whole training state to ``path`` atomically (loads with weights_only=True)."""
    payload = {
        "format": CHECKPOINT_FORMAT, "config": to_dict(cfg),
        "online": st.online.state_dict(), "target": st.target.state_dict(),
        "optimizer": st.optimizer.state_dict(), "buffer": st.buffer.state_dict(),
        "env": st.env.state_dict(), "obs": st.obs, "gen": st.gen.get_state(),
        "counters": _counters(st),
    }
    buf = io.BytesIO()
    torch.save(payload, buf)
    atomic_write_bytes(path, buf.getvalue())


def load_checkpoint(path: Path, device: torch.device | str = "cpu",
                    expected: str = CHECKPOINT_FORMAT) -> dict:
    """Read a checkpoint of format ``expected`` with ``weights_only=True``; a damaged file or
    another format gives one clear error."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no checkpoint there")
    try:
        payload = torch.load(path, map_location=device, weights_only=True)
    except Exception as err:  # torch raises several types for damaged files
        raise ValueError(f"{path}: not a readable semigrad checkpoint ({type(err).__name__}: "
                         f"{str(err).splitlines()[0][:120]}); the file was left as it is") from None
    if not isinstance(payload, dict) or payload.get("format") != expected:
        raise ValueError(f"{path}: not a resumable checkpoint of format {expected} (format "
                         f"{payload.get('format') if isinstance(payload, dict) else '?'})")
    return payload


def restore_state(payload: dict, cfg: DQNConfig, device: torch.device) -> DQNState:
    st = init_state(cfg, device)
    st.online.load_state_dict(payload["online"])
    st.target.load_state_dict(payload["target"])
    st.optimizer.load_state_dict(payload["optimizer"])
    st.buffer.load_state_dict(payload["buffer"])
    if payload["env"] is not None:
        st.env.load_state_dict(payload["env"])
        st.obs = payload["obs"].to(device)
    else:  # the env could not save its episodes in progress: new ones, from a fresh seed
        warnings.warn(f"{cfg.env} cannot save its state: the resumed run starts new episodes, "
                      "so it will not match an uninterrupted run exactly", stacklevel=2)
        st.env.close()
        st.env = envs.make(cfg.env, num_envs=cfg.num_envs, device=device,
                           seed=cfg.seed + 1 + payload["counters"]["env_steps"],
                           start_box=cfg.start_box)
        st.obs = st.env.reset()
    st.gen.set_state(payload["gen"].cpu() if device.type == "cpu" else payload["gen"])
    for key, value in payload["counters"].items():
        setattr(st, key, value)
    return st


def config_differences(saved: dict, cfg: DQNConfig) -> list[str]:
    """Fields where ``cfg`` differs from a checkpoint's config, as ``name: saved -> given``."""
    given = to_dict(cfg)
    return [f"{k}: {saved.get(k)!r} (checkpoint) vs {v!r} (given)"
            for k, v in given.items() if _norm(saved.get(k)) != _norm(v)]


def _norm(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


# ----------------------------------------------------------------------------- training loop


def train(
    cfg: DQNConfig,
    run_dir: Path,
    *,
    resume: bool = False,
    progress: bool = True,
    stop_after: int | None = None,
    on_log: Callable[[dict], None] | None = None,
) -> dict:
    """Train DQN with ``cfg``, writing the run directory; returns the summary dict.

    ``resume=True`` continues from ``run_dir/checkpoint_last.pt`` exactly where it stopped.
    ``stop_after`` (env steps) stops early, saving a resumable checkpoint, as Ctrl-C does.
    """
    wall0 = time.perf_counter()
    device = resolve_device(cfg.device)
    run_dir = Path(run_dir)
    last_path, best_path = run_dir / "checkpoint_last.pt", run_dir / "checkpoint_best.pt"
    if resume:
        payload = load_checkpoint(last_path, device)
        diffs = config_differences(payload["config"], cfg)
        if diffs:
            raise ValueError("config differs from the checkpoint's: " + "; ".join(diffs))
        st = restore_state(payload, cfg, device)
        truncate_metrics(run_dir, st.env_steps)
    else:
        st = init_state(cfg, device)
    threshold = st.env.spec.reward_threshold
    metrics = MetricsLog(run_dir, METRIC_COLUMNS, tensorboard=cfg.tensorboard)

    stop = CtrlC().install()  # Ctrl-C: finish the iteration, save, exit cleanly
    bar = tqdm(total=cfg.total_steps, initial=st.env_steps, unit="step", disable=not progress,
               dynamic_ncols=True, desc="dqn")
    status = "finished"
    try:
        t_train = time.perf_counter()
        while st.env_steps < cfg.total_steps:
            if stop.requested or (stop_after is not None and st.env_steps >= stop_after):
                status = "interrupted"
                break
            epsilon = epsilon_at(cfg, st.env_steps)
            actions = select_actions(st.online, st.obs, epsilon, st.gen)
            next_obs, reward, terminated, truncated, info = st.env.step(actions)
            st.buffer.add(st.obs, actions, reward, info["final_obs"], terminated, truncated)
            st.obs = next_obs
            ended = info["episode_return"]
            st.sums[:2] += torch.stack([ended.nan_to_num().sum(), (~ended.isnan()).sum()])
            st.env_steps += cfg.num_envs
            st.iterations += 1
            bar.update(cfg.num_envs)
            if (st.env_steps >= max(cfg.learning_starts, cfg.n_step * cfg.num_envs)
                    and st.iterations % cfg.train_freq == 0):
                for _ in range(cfg.gradient_steps):
                    update(cfg, st)

            if st.env_steps >= st.next_eval or st.env_steps >= cfg.total_steps:
                check_health(st)
                st.train_s += time.perf_counter() - t_train
                t_eval = time.perf_counter()
                row = _evaluate_and_checkpoint(cfg, st, device, threshold, run_dir, best_path,
                                               last_path, epsilon)
                log_metrics(metrics, st, row, wall0, on_log, cfg.log_every)
                bar.set_postfix(eval=f"{row['eval_return']:.1f}", eps=f"{epsilon:.2f}",
                                refresh=False)
                st.eval_s += time.perf_counter() - t_eval
                t_train = time.perf_counter()
            elif st.env_steps >= st.next_log:
                check_health(st)
                log_metrics(metrics, st, {"epsilon": epsilon, "lr": lr_at(cfg, st.env_steps)},
                     wall0, on_log, cfg.log_every)
        else:
            st.train_s += time.perf_counter() - t_train
        if status == "interrupted":
            st.train_s += time.perf_counter() - t_train
            check_health(st)
            save_checkpoint(last_path, cfg, st)
    except TrainingDiverged as err:
        status = "diverged"
        summary = summarize(cfg, st, threshold, wall0, status, str(err))
        atomic_write_json(run_dir / "summary.json", summary)
        raise
    finally:
        bar.close()
        metrics.close()
        stop.restore()
        st.env.close()
    summary = summarize(cfg, st, threshold, wall0, status)
    if status == "finished":
        atomic_write_json(run_dir / "summary.json", summary)
    return summary


def _evaluate_and_checkpoint(cfg, st, device, threshold, run_dir, best_path, last_path, epsilon):
    returns = evaluate(st.online, cfg.env, cfg.eval_episodes,
                       seed=10_000_019 * (cfg.seed + 1) + len(st.evals), device=device)
    mean = returns.mean().item()
    st.evals.append(mean)
    if threshold is not None and st.solved_at is None and mean >= threshold:
        st.solved_at = {"env_steps": st.env_steps, "train_s": st.train_s,
                        "gradient_steps": st.gradient_steps}
    if mean > st.best_eval:
        st.best_eval = mean
        buf = io.BytesIO()
        torch.save({"format": CHECKPOINT_FORMAT + "-weights", "config": to_dict(cfg),
                    "online": st.online.state_dict(), "env_steps": st.env_steps,
                    "eval_return": mean}, buf)
        atomic_write_bytes(best_path, buf.getvalue())
    st.next_eval = (st.env_steps // cfg.eval_every + 1) * cfg.eval_every
    row = {"eval_return": mean, "eval_std": returns.std(unbiased=False).item(),
           "epsilon": epsilon, "lr": lr_at(cfg, st.env_steps)}
    save_checkpoint(last_path, cfg, st)
    return row


def log_metrics(metrics: MetricsLog, st: DQNState, extra: dict, wall0: float, on_log,
         log_every: int) -> None:
    ep_sum, ep_count, loss_sum, q_sum, updates = st.acc
    row = {"step": st.env_steps, "wall_s": round(time.perf_counter() - wall0, 4),
           "train_s": round(st.train_s, 4),
           "episode_return": ep_sum / ep_count if ep_count else None,
           "episodes": int(ep_count), "eval_return": None, "eval_std": None,
           "loss": loss_sum / updates if updates else None,
           "mean_q": q_sum / updates if updates else None,
           "gradient_steps": st.gradient_steps, **extra}
    metrics.log(row)
    st.acc = [0.0, 0.0, 0.0, 0.0, 0.0]
    st.next_log = (st.env_steps // log_every + 1) * log_every
    if on_log is not None:
        on_log(row)


def summarize(cfg, st, threshold, wall0, status, error=None) -> dict:
    solved = st.solved_at is not None
    later = []
    if solved:
        first = next(i for i, v in enumerate(st.evals) if v >= threshold)
        later = st.evals[first + 1:]
    summary = {
        "status": status,
        "env": cfg.env,
        "solved": solved,
        "reward_threshold": threshold,
        "time_to_solve_s": st.solved_at["train_s"] if solved else None,
        "env_steps_to_solve": st.solved_at["env_steps"] if solved else None,
        "gradient_steps_to_solve": st.solved_at["gradient_steps"] if solved else None,
        "final_eval_return": st.evals[-1] if st.evals else None,
        "best_eval_return": st.best_eval if st.evals else None,
        "evals_after_solve": len(later),
        "stable_fraction": (sum(v >= threshold for v in later) / len(later)) if later else None,
        "env_steps": st.env_steps,
        "gradient_steps": st.gradient_steps,
        "train_s": st.train_s,
        "eval_s": st.eval_s,
        "wall_s": time.perf_counter() - wall0,
        "env_steps_per_s": st.env_steps / st.train_s if st.train_s else None,
        "eval_returns": st.evals,
    }
    if error:
        summary["error"] = error
    return summary
