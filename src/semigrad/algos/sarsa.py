"""Episodic semi-gradient SARSA and Expected SARSA (Sutton & Barto 10.1, 6.6), N envs at once.

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
state of the new episode.

Two forms of ``q_hat`` give the same ``(B, A)`` table of action values:

``multi-head``
    ``QNetwork``: states ``(B, d)`` -> ``(B, A)``, one output per action.
``state-action``
    ``StateActionQNetwork``, the course notebook's form: ``q_hat(s, a)`` is an MLP on the
    state concatenated with the action (one-hot, or the action number as in the notebook);
    ``all_actions`` evaluates every action.

epsilon decays linearly from ``epsilon_start`` to ``epsilon_end`` over the first
``epsilon_fraction`` fraction of the run, then stays at ``epsilon_end``. As in ``td0``, the
loss is ``0.5 * td_error_loss(delta)`` so that plain SGD with step ``alpha`` is the textbook
update.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch
from torch import nn

from semigrad import envs, losses, policies
from semigrad.algos.guard import DivergenceError, DivergenceGuard
from semigrad.algos.td0 import OPTIMIZERS, make_optimizer
from semigrad.config import MAX_COUNT, MAX_SEED, check_choice, check_range, to_dict
from semigrad.devices import resolve_device
from semigrad.nets import ACTIVATIONS, QNetwork, StateActionQNetwork
from semigrad.policies import epsilon_greedy, epsilon_greedy_probs, linear_schedule
from semigrad.run import MetricsLog, atomic_write_json

METHODS = ("sarsa", "expected-sarsa")
Q_FORMS = ("multi-head", "state-action")
ACTION_ENCODINGS = ("one_hot", "index")


@dataclass(frozen=True)
class SarsaConfig:
    """Hyper-parameters of a semi-gradient SARSA run (validated when built)."""

    env: str = field(default="CartPole-v1", metadata={"help": "environment id"})
    num_envs: int = field(default=4, metadata={"help": "parallel environments N"})
    steps: int = field(default=60_000, metadata={"help": "transitions, summed over all envs"})
    gamma: float = field(default=0.99, metadata={"help": "discount gamma in [0, 1]"})
    alpha: float = field(default=1e-3, metadata={"help": "step size alpha (learning rate)"})
    optimizer: Literal["sgd", "adam"] = field(default="adam", metadata={"help": "optimizer"})
    method: Literal["sarsa", "expected-sarsa"] = field(
        default="sarsa", metadata={"help": "bootstrap on q(S', A') or on E_pi q(S', .)"}
    )
    q_form: Literal["multi-head", "state-action"] = field(
        default="multi-head",
        metadata={"help": "(B, A) outputs, or the notebook's q(s, a) on [state, action]"},
    )
    action_encoding: Literal["one_hot", "index"] = field(
        default="one_hot",
        metadata={"help": "action input of the state-action form ('index': the notebook's)"},
    )
    hidden: tuple[int, ...] = field(default=(64, 64), metadata={"help": "hidden widths"})
    activation: str = field(default="relu", metadata={"help": "hidden activation"})
    epsilon_start: float = field(default=1.0, metadata={"help": "initial exploration rate"})
    epsilon_end: float = field(default=0.05, metadata={"help": "final exploration rate"})
    epsilon_fraction: float = field(
        default=0.5, metadata={"help": "fraction of the run over which epsilon decays"}
    )
    r_max: float = field(
        default=1.0, metadata={"help": "largest |reward|; guard bound is r_max / (1 - gamma)"}
    )
    guard: bool = field(default=True, metadata={"help": "stop the run when it diverges"})
    guard_every: int = field(default=100, metadata={"help": "check the guard every K updates"})
    log_every: int = field(default=2000, metadata={"help": "log every K transitions"})
    eval_episodes: int = field(
        default=100, metadata={"help": "episodes to evaluate the greedy and random policies"})
    seed: int = field(default=0, metadata={"cli": False})

    def __post_init__(self) -> None:
        envs.check_env_id(self.env)
        check_range("eval_episodes", self.eval_episodes, 1, policies.MAX_PARALLEL_EPISODES)
        check_range("seed", self.seed, 0, MAX_SEED)
        check_range("num_envs", self.num_envs, 1, MAX_COUNT)
        check_range("steps", self.steps, 1, MAX_COUNT)
        check_range("gamma", self.gamma, 0.0, 1.0)
        check_range("alpha", self.alpha, 0.0, low_open=True)
        check_choice("optimizer", self.optimizer, OPTIMIZERS)
        check_choice("method", self.method, METHODS)
        check_choice("q_form", self.q_form, Q_FORMS)
        check_choice("action_encoding", self.action_encoding, ACTION_ENCODINGS)
        for width in self.hidden:
            check_range("hidden", width, 1)
        check_choice("activation", self.activation, sorted(ACTIVATIONS))
        check_range("epsilon_start", self.epsilon_start, 0.0, 1.0)
        check_range("epsilon_end", self.epsilon_end, 0.0, 1.0)
        check_range("epsilon_fraction", self.epsilon_fraction, 0.0, 1.0)
        check_range("r_max", self.r_max, 0.0, low_open=True)
        check_range("guard_every", self.guard_every, 1, MAX_COUNT)
        check_range("log_every", self.log_every, 1, MAX_COUNT)


def make_q_network(config: SarsaConfig, obs_dim: int, num_actions: int) -> nn.Module:
    """The ``q_form`` network; ``action_values(net, states)`` gives its ``(B, A)`` table."""
    if config.q_form == "multi-head":
        return QNetwork(obs_dim, num_actions, config.hidden, config.activation)
    return StateActionQNetwork(
        obs_dim, num_actions, config.hidden, config.activation, config.action_encoding
    )


def action_values(q_hat: nn.Module, states: torch.Tensor) -> torch.Tensor:
    """``q_hat`` at every action: ``states (B, d) -> (B, A)`` for either Q form."""
    if isinstance(q_hat, StateActionQNetwork):
        return q_hat.all_actions(states)
    return q_hat(states)


class GreedyPolicy:
    """Epsilon-greedy (default greedy) policy of ``q_hat``: ``obs (N, d) -> actions (N,)``."""

    def __init__(self, q_hat: nn.Module, generator: torch.Generator, epsilon: float = 0.0):
        self.q_hat, self.generator, self.epsilon = q_hat, generator, epsilon

    @torch.no_grad()
    def __call__(self, obs: torch.Tensor) -> torch.Tensor:
        return epsilon_greedy(action_values(self.q_hat, obs), self.epsilon, self.generator)


def evaluate(
    policy: Callable[[torch.Tensor], torch.Tensor],
    env_id: str,
    episodes: int,
    device: str | torch.device | None = None,
    seed: int = 0,
) -> np.ndarray:
    """Returns ``(episodes,)`` of the first episode of each of ``episodes`` fresh envs
    (``semigrad.policies.evaluate``, as float64 NumPy)."""
    returns = policies.evaluate(policy, env_id, episodes, seed, resolve_device(device))
    return returns.cpu().numpy().astype(np.float64)


@dataclass
class SarsaResult:
    """What a SARSA run returns: the trained ``q_hat``; ``steps`` transitions in ``seconds``;
    ``episode_steps`` / ``episode_returns``: the step at which each training episode ended
    and its return (the learning curve); ``divergence``: the guard's error, or None."""

    q_hat: nn.Module
    steps: int
    seconds: float
    episode_steps: np.ndarray
    episode_returns: np.ndarray
    divergence: DivergenceError | None = None

    @property
    def steps_per_second(self) -> float:
        return self.steps / self.seconds if self.seconds > 0 else math.inf


def sarsa(
    config: SarsaConfig,
    *,
    device: str | torch.device | None = None,
    seed: int = 0,
    env: envs.BatchedEnv | None = None,
    q_hat: nn.Module | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    on_log: Callable[[dict], None] | None = None,
    progress: bool = False,
) -> SarsaResult:
    """Train ``q_hat`` by semi-gradient (Expected) SARSA for ``config.steps`` transitions.

    Defaults are built from ``config`` as in ``td0``. ``on_log`` receives a row ``{"step",
    "seconds", "epsilon", "episodes", "mean_return"}`` every ``config.log_every`` transitions
    (mean over the episodes that ended since the last row).
    """
    device = resolve_device(device)
    torch.manual_seed(seed)
    env = env if env is not None else envs.make(config.env, config.num_envs, device, seed)
    num_envs = env.num_envs
    if q_hat is None:
        q_hat = make_q_network(config, env.obs_dim, env.num_actions)
    q_hat = q_hat.to(device)
    if optimizer is None:
        optimizer = make_optimizer(config.optimizer, q_hat.parameters(), config.alpha)
    generator = torch.Generator(device=device).manual_seed(seed)
    guard = DivergenceGuard(config.r_max, config.gamma, config.guard_every, config.guard,
                            value_name="q_hat")
    updates = math.ceil(config.steps / num_envs)
    log_every = max(1, config.log_every // num_envs)
    decay_steps = config.epsilon_fraction * config.steps
    ended_steps: list[np.ndarray] = []
    ended_returns: list[np.ndarray] = []
    pending: list[tuple[int, torch.Tensor]] = []
    start = time.perf_counter()

    def flush(update: int, epsilon: float) -> None:
        new = []
        for step, returns in pending:
            returns = returns.cpu().numpy()
            returns = returns[~np.isnan(returns)].astype(np.float64)
            ended_steps.append(np.full(len(returns), step))
            ended_returns.append(returns)
            new.append(returns)
        pending.clear()
        new = np.concatenate(new) if new else np.zeros(0)
        if on_log is not None:
            on_log({"step": update * num_envs, "seconds": time.perf_counter() - start,
                    "epsilon": epsilon, "episodes": len(new),
                    "mean_return": float(new.mean()) if len(new) else None})

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=updates * num_envs, unit="step", unit_scale=True,
                   desc=f"{config.method} ({config.q_form})")
    obs = env.reset()
    epsilon = config.epsilon_start
    with torch.no_grad():
        actions = epsilon_greedy(action_values(q_hat, obs), epsilon, generator)
    divergence = None
    update = 0
    try:
        for update in range(updates):
            next_obs, reward, terminated, truncated, info = env.step(actions)
            epsilon = linear_schedule(config.epsilon_start, config.epsilon_end, decay_steps,
                                     (update + 1) * num_envs)
            # one forward for S (trained), S' (bootstrap) and the next episode's first state
            q_all = action_values(q_hat, torch.cat((obs, info["final_obs"], next_obs)))
            q_s, q_final, q_next = q_all.detach().split(num_envs)
            next_actions = epsilon_greedy(q_final, epsilon, generator)  # A' at S'
            discount = losses.fold_termination(config.gamma, terminated, q_final.dtype)
            if config.method == "sarsa":
                delta = losses.sarsa(q_all[:num_envs], actions, reward, discount, q_final,
                                     next_actions)
            else:
                probs = epsilon_greedy_probs(q_final, epsilon)
                delta = losses.expected_sarsa(q_all[:num_envs], actions, reward, discount,
                                              q_final, probs)
            loss = 0.5 * losses.td_error_loss(delta)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            done = terminated | truncated
            actions = torch.where(done, epsilon_greedy(q_next, epsilon, generator), next_actions)
            obs = next_obs
            pending.append(((update + 1) * num_envs, info["episode_return"]))
            if guard.due(update):
                guard.check((update + 1) * num_envs, q_s, delta.detach())
            if (update + 1) % log_every == 0:
                flush(update + 1, epsilon)
                if bar is not None:
                    bar.update(log_every * num_envs)
        update = updates
    except DivergenceError as err:
        divergence = err
        update += 1
    finally:
        if bar is not None:
            bar.close()
    if pending:
        flush(update, epsilon)
    return SarsaResult(
        q_hat=q_hat,
        steps=update * num_envs,
        seconds=time.perf_counter() - start,
        episode_steps=np.concatenate(ended_steps) if ended_steps else np.zeros(0),
        episode_returns=np.concatenate(ended_returns) if ended_returns else np.zeros(0),
        divergence=divergence,
    )


METRIC_COLUMNS = ("step", "seconds", "epsilon", "episodes", "mean_return")


def train(config: SarsaConfig, run_dir, *, device: str | torch.device | None = None,
          progress: bool = False) -> tuple[dict, SarsaResult, np.ndarray]:
    """Train with ``config`` (seed ``config.seed``) into the run directory ``run_dir``:
    config.json, metrics.csv (the mean training return per ``log_every`` transitions) and
    summary.json, whose ``final_eval_return`` is the greedy policy's mean return over
    ``eval_episodes`` fresh episodes (what ``semigrad report`` ranks). Returns the summary, the
    ``SarsaResult`` and the uniform random policy's returns on the same episodes."""
    from pathlib import Path

    run_dir = Path(run_dir)
    device = resolve_device(device)
    atomic_write_json(run_dir / "config.json", {"command": "sarsa", **to_dict(config),
                                                "device": str(device)})
    with MetricsLog(run_dir, METRIC_COLUMNS, tensorboard=False) as log:
        result = sarsa(config, device=device, seed=config.seed, on_log=log.log,
                       progress=progress)
    eval_seed = policies.evaluation_seed(config.seed, 0)  # not the training episodes
    generator = torch.Generator(device=device).manual_seed(config.seed)
    greedy = evaluate(GreedyPolicy(result.q_hat, generator), config.env,
                      config.eval_episodes, device, eval_seed)
    from semigrad.algos.td0 import UniformRandomPolicy

    random = evaluate(UniformRandomPolicy(result.q_hat.num_actions, generator), config.env,
                      config.eval_episodes, device, eval_seed)
    diverged = result.divergence is not None
    threshold = envs.make(config.env, num_envs=1, device="cpu").spec.reward_threshold
    final = float(greedy.mean())
    summary = {
        "status": "diverged" if diverged else "finished",
        "env": config.env,
        "seed": config.seed,
        "method": config.method,
        "q_form": config.q_form,
        "steps": result.steps,
        "env_steps": result.steps,
        "seconds": result.seconds,
        "steps_per_second": result.steps_per_second,
        "training_episodes": len(result.episode_returns),
        "final_eval_return": final,
        "eval_returns": [final],
        "greedy_return_std": float(greedy.std()),
        "random_return_mean": float(random.mean()),
        "eval_episodes": config.eval_episodes,
        "reward_threshold": threshold,
        "solved": threshold is not None and final >= threshold,
        "divergence": str(result.divergence) if diverged else None,
    }
    atomic_write_json(run_dir / "summary.json", summary)
    return summary, result, random
