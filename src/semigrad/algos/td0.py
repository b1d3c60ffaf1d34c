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
    ``S`` and ``S'`` are close, ``v_hat`` climbs without bound. The divergence guard stops it.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch
from torch import nn

from semigrad import envs
from semigrad.algos.guard import DivergenceError, DivergenceGuard
from semigrad.config import MAX_COUNT, MAX_SEED, ConfigError, check_choice, check_range, to_dict
from semigrad.devices import resolve_device
from semigrad.losses import fold_termination, td_error_loss, td_learning
from semigrad.nets import ACTIVATIONS, LinearValue, ValueNetwork
from semigrad.optim import lean_step
from semigrad.run import MetricsLog, atomic_write_json

RULES = ("semi-gradient", "residual-gradient", "notebook")
OPTIMIZERS = ("sgd", "adam")

Policy = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class TD0Config:
    """Hyper-parameters of a TD(0) prediction run (validated when built)."""

    env: str = field(default="CartPole-v1", metadata={"help": "environment id"})
    num_envs: int = field(default=8, metadata={"help": "parallel environments N"})
    steps: int = field(default=100_000, metadata={"help": "transitions, summed over all envs"})
    gamma: float = field(default=0.95, metadata={"help": "discount gamma in [0, 1]"})
    alpha: float = field(default=3e-3, metadata={"help": "step size alpha (learning rate)"})
    alpha_end: float = field(
        default=0.0,
        metadata={"help": "alpha anneals linearly to this over the run (= alpha: constant)"},
    )
    optimizer: Literal["sgd", "adam"] = field(
        default="adam", metadata={"help": "sgd is the textbook update w += alpha delta grad v"}
    )
    rule: Literal["semi-gradient", "residual-gradient", "notebook"] = field(
        default="semi-gradient",
        metadata={"help": "update rule; 'notebook' is the course notebook's mistake"},
    )
    hidden: tuple[int, ...] = field(
        default=(64, 64, 64), metadata={"help": "hidden widths of the value MLP (notebook's)"}
    )
    activation: str = field(default="relu", metadata={"help": "hidden activation"})
    notebook_alpha: float = field(
        default=0.8, metadata={"help": "the factor inside the notebook's 'loss' (rule notebook)"}
    )
    r_max: float = field(
        default=1.0, metadata={"help": "largest |reward|; guard bound is r_max / (1 - gamma)"}
    )
    guard: bool = field(default=True, metadata={"help": "stop the run when it diverges"})
    guard_every: int = field(default=100, metadata={"help": "check the guard every K updates"})
    log_every: int = field(
        default=2000, metadata={"help": "record v_hat at the probes every K transitions (the "
                                        "default keeps the records under 5% of the time)"}
    )
    start_box: tuple[float, ...] = field(
        default=(),
        metadata={"help": "CartPole-v1 only: start episodes uniformly in +-(x, x_dot, theta, "
                          "theta_dot), e.g. 2.4 3 0.2 3.5 (exploring starts; v_pi does not "
                          "change); none: the env's +-0.05"},
    )
    fast_path: bool = field(
        default=True,
        metadata={"help": "hand-written backprop for MLP value nets (semi-gradient rule); "
                          "same update as autograd with less per-step overhead"},
    )
    seed: int = field(default=0, metadata={"cli": False})

    def __post_init__(self) -> None:
        envs.check_env_id(self.env)
        check_range("seed", self.seed, 0, MAX_SEED)
        check_range("num_envs", self.num_envs, 1, MAX_COUNT)
        check_range("steps", self.steps, 1, MAX_COUNT)
        check_range("gamma", self.gamma, 0.0, 1.0)
        check_range("alpha", self.alpha, 0.0, low_open=True)
        check_range("alpha_end", self.alpha_end, 0.0)
        check_choice("optimizer", self.optimizer, OPTIMIZERS)
        check_choice("rule", self.rule, RULES)
        for width in self.hidden:
            check_range("hidden", width, 1)
        check_choice("activation", self.activation, sorted(ACTIVATIONS))
        check_range("notebook_alpha", self.notebook_alpha, 0.0, low_open=True)
        check_range("r_max", self.r_max, 0.0, low_open=True)
        check_range("guard_every", self.guard_every, 1, MAX_COUNT)
        check_range("log_every", self.log_every, 1, MAX_COUNT)
        try:
            envs.check_start_box(self.env, self.start_box)
        except ValueError as err:
            raise ConfigError(str(err)) from None


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
    rows ``[S; S']``. ``v (2B,)`` are the values (for the guard), ``delta (B,)`` the TD
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


@dataclass
class TD0Result:
    """What a TD(0) run returns.

    ``v_hat`` the trained network; ``steps`` transitions done; ``seconds`` of training;
    ``log_steps (T,)`` and ``probe_values (T, P)``: v_hat at the probe states over training;
    ``divergence`` the guard's error when the run stopped early, else None.
    """

    v_hat: nn.Module
    steps: int
    seconds: float
    log_steps: list[int]
    probe_values: np.ndarray
    divergence: DivergenceError | None = None

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
    progress: bool = False,
) -> TD0Result:
    """Run TD(0) prediction of ``policy`` (default: uniform random) for ``config.steps``.

    Defaults are built from ``config``: ``env`` by ``semigrad.envs.make(config.env,
    config.num_envs, device, seed, start_box=config.start_box)``, ``v_hat`` a
    ``ValueNetwork`` (seeded by ``seed``),
    ``optimizer`` from ``config.optimizer`` and ``config.alpha``. ``probes (P, obs_dim)``:
    states at which v_hat is recorded every ``config.log_every`` transitions (and passed to
    ``on_log`` as a row ``{"step", "seconds", "v_hat_0", ...}``).
    """
    device = resolve_device(device)
    torch.manual_seed(seed)
    if env is None:
        env = envs.make(config.env, config.num_envs, device, seed, start_box=config.start_box)
    num_envs = env.num_envs
    if v_hat is None:
        v_hat = ValueNetwork(env.obs_dim, config.hidden, config.activation)
    v_hat = v_hat.to(device)
    if policy is None:
        generator = torch.Generator(device=device).manual_seed(seed)
        policy = UniformRandomPolicy(env.num_actions, generator)
    if optimizer is None:
        optimizer = make_optimizer(config.optimizer, v_hat.parameters(), config.alpha)
    fast = step = None
    if config.fast_path and config.rule == "semi-gradient":
        fast = MLPSemiGradient.build(v_hat)
        step = None if fast is None else lean_step(optimizer, fast.parameters)
    guard = DivergenceGuard(config.r_max, config.gamma, config.guard_every, config.guard,
                            rule=config.rule)
    probes = None if probes is None else torch.as_tensor(probes, dtype=torch.float32,
                                                        device=device)
    updates = math.ceil(config.steps / num_envs)
    log_every = max(1, config.log_every // num_envs)
    anneal_every = max(1, updates // 100)
    log_steps: list[int] = []
    history: list[list[float]] = []
    start = time.perf_counter()

    def record(update: int) -> None:
        step = update * num_envs
        row: dict = {"step": step, "seconds": time.perf_counter() - start}
        if probes is not None:
            with torch.no_grad():
                values = v_hat(probes).tolist()
            history.append(values)
            row.update({f"v_hat_{i}": v for i, v in enumerate(values)})
        log_steps.append(step)
        if on_log is not None:
            on_log(row)

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=updates * num_envs, unit="step", unit_scale=True,
                   desc=f"TD(0) {config.rule}")
    divergence = None
    record(0)
    obs = env.reset()
    update = 0
    # With the lean step nothing the loop makes needs autograd: it runs in inference mode, the
    # cheapest dispatch (the network and optimizer still work with autograd afterwards).
    mode = torch.inference_mode() if step is not None else contextlib.nullcontext()
    with mode:
        try:
            for update in range(updates):
                actions = policy(obs)
                next_obs, reward, terminated, _, info = env.step(actions)
                if fast is None:
                    loss, values, delta = td_loss(
                        v_hat, obs, reward, terminated, info["final_obs"], config.gamma,
                        config.rule, config.notebook_alpha,
                    )
                    optimizer.zero_grad()
                    loss.backward()
                    optimizer.step()
                else:  # the same update as td_loss's semi-gradient rule, without autograd
                    values, delta, grads = fast.step(
                        obs, reward, terminated, info["final_obs"], config.gamma
                    )
                    if step is None:
                        for param, grad in zip(fast.parameters, grads, strict=True):
                            param.grad = grad
                        optimizer.step()
                    else:
                        step(grads)
                obs = next_obs
                if config.alpha_end != config.alpha and update % anneal_every == 0:
                    set_step_size(optimizer, config.alpha, config.alpha_end, update / updates)
                if guard.due(update):
                    guard.check((update + 1) * num_envs, values, delta)
                if (update + 1) % log_every == 0:
                    record(update + 1)
                    if bar is not None:
                        bar.update(log_every * num_envs)
            update = updates
        except DivergenceError as err:
            divergence = err
            update += 1
        finally:
            if bar is not None:
                bar.close()
    if not log_steps or log_steps[-1] != update * num_envs:
        record(update)
    seconds = time.perf_counter() - start
    return TD0Result(
        v_hat=v_hat,
        steps=update * num_envs,
        seconds=seconds,
        log_steps=log_steps,
        probe_values=np.asarray(history, dtype=np.float64).reshape(len(log_steps), -1),
        divergence=divergence,
    )


CARTPOLE = "CartPole-v1"


def train(config: TD0Config, run_dir, *, probes=(), mc_rollouts: int = 2000,
          device: str | torch.device | None = None, progress: bool = False):
    """Run TD(0) with ``config`` (seed ``config.seed``) into the run directory ``run_dir``:
    config.json, metrics.csv (v_hat at every probe state every ``log_every`` transitions, also
    as TensorBoard events) and summary.json (each probe's v_hat against its Monte Carlo value,
    from ``mc_rollouts`` rollouts, on CartPole-v1). ``probes``: extra probe states, after
    CartPole-v1's default ones. Returns ``(summary, TD0Result, Monte Carlo values or None)``.
    """
    from pathlib import Path

    from semigrad.algos.monte_carlo import DEFAULT_PROBES, cartpole_values

    run_dir = Path(run_dir)
    device = resolve_device(device)
    is_cartpole = config.env.removeprefix("gymnasium:") == CARTPOLE
    probes = ([*DEFAULT_PROBES] if is_cartpole else []) + [tuple(p) for p in probes]
    if mc_rollouts < 2:
        raise ValueError(f"mc_rollouts: need at least 2, got {mc_rollouts}")
    width = 4 if is_cartpole else len(probes[0]) if probes else 0
    for probe in probes:
        if len(probe) != width:
            raise ValueError(f"probe: every probe needs {width} numbers, got {list(probe)}")
    atomic_write_json(run_dir / "config.json", {
        "command": "td0", **to_dict(config), "probes": probes, "mc_rollouts": mc_rollouts,
        "device": str(device)})
    mc = cartpole_values(probes, config.gamma, mc_rollouts, seed=config.seed) \
        if is_cartpole else None
    probe_tensor = torch.tensor(probes, dtype=torch.float32) if probes else None
    columns = ["step", "seconds"] + [f"v_hat_{i}" for i in range(len(probes))]
    with MetricsLog(run_dir, columns) as metrics:
        result = td0(config, device=device, seed=config.seed, probes=probe_tensor,
                     on_log=metrics.log, progress=progress)
    final = result.probe_values[-1] if probes else np.zeros(0)
    rows = []
    for i, state in enumerate(probes):
        row = {"state": list(state), "v_hat": float(final[i]), "mc_value": None,
               "mc_stderr": None, "error": None, "relative_error": None}
        if mc is not None:
            row.update(mc_value=float(mc.values[i]), mc_stderr=float(mc.stderr[i]),
                       error=float(final[i] - mc.values[i]),
                       relative_error=float((final[i] - mc.values[i]) / mc.values[i]))
        rows.append(row)
    diverged = result.divergence is not None
    summary = {
        "status": "diverged" if diverged else "finished",
        "env": config.env,
        "seed": config.seed,
        "rule": config.rule,
        "steps": result.steps,
        "env_steps": result.steps,
        "seconds": result.seconds,
        "steps_per_second": result.steps_per_second,
        "diverged": diverged,
        "divergence": str(result.divergence) if diverged else None,
        "probes": rows,
        "max_abs_relative_error": (max(abs(r["relative_error"]) for r in rows)
                                   if mc is not None and rows else None),
        "mc_rollouts": mc_rollouts if mc is not None else None,
    }
    atomic_write_json(run_dir / "summary.json", summary)
    return summary, result, mc
