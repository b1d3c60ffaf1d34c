"""Baird's counterexample as an experiment: linear off-policy TD (semi-gradient TD(0), TDC, GTD2,
emphatic TD) and semi-gradient off-policy TD(0) on a small network with LayerNorm (PQN's fix).

Sutton & Barto 2nd ed.: semi-gradient off-policy TD(0) (11.1, eq. 11.2), TDC / GTD(0) and GTD2
(11.7), emphatic TD(0) (11.8, eq. 11.25-11.26 with lambda = 0). Linear ``v_hat(s) = w . x(s)``,
``w (N, d)`` a batch of N independent runs, ``rho = pi(A|S) / b(A|S)``, and
``delta = R + gamma v_hat(S') - v_hat(S)`` (no bootstrap past a terminal state):

    semi-gradient TD  w += alpha rho delta x
    TDC               w += alpha rho (delta x - gamma x' (x . v)),   v += beta rho (delta - x . v) x
    GTD2              w += alpha rho (x - gamma x') (x . v),         v += beta rho (delta - x . v) x
    emphatic TD       w += alpha M rho delta x,   M_t = gamma rho_{t-1} M_{t-1} + I_t  (followon)

Each comes in two forms. **sampled**: one behaviour transition per step. **expected**: the same
increment averaged over ``S ~ mu``, ``A ~ b``, ``S' ~ p`` (the book's right-hand panels, eq.
11.9), in matrix form with ``X (S, d)``, ``D = diag(mu)``, ``P_pi`` and the Bellman error
``delta_bar = r_pi + gamma P_pi X w - X w``:

    semi-gradient TD  w += alpha X^T D delta_bar
    TDC               w += alpha (X^T D delta_bar - gamma X^T P_pi^T D X v)
                      v += beta X^T D (delta_bar - X v)
    GTD2              w += alpha X^T (I - gamma P_pi^T) D X v,   v as TDC
    emphatic TD       w += alpha X^T F delta_bar,   F = diag(f_t),
                      f_t = mu * i + gamma P_pi^T f_{t-1}

(``E[rho x' x^T] = X^T P_pi^T D X`` because ``b rho = pi``.) ``f_t(s) = E[M_t 1{S_t = s}]``: the
followon trace's expectation at step t of a behaviour trajectory started from ``mu`` with
``f_{-1} = 0``; it tends to ``(I - gamma P_pi^T)^-1 (mu * i)``. In one-step episodes (the notebook
variant) ``M_t = I_t`` and ``f_t = mu * i``. Both TDC vectors are updated synchronously, from the
old ``(w, v)``.

**PQN's fix** (Gallici et al., "Simplifying Deep Temporal Difference Learning", ICLR 2025:
LayerNorm, with L2 on the last layer in their analysis, keeps off-policy semi-gradient TD
stable) runs the same expected semi-gradient update on a network ``v_hat(s) = f_theta(x(s))``
whose input is the book's feature vector ``x(s)`` (``BairdNetConfig``, ``run_baird_net``)::

    theta += alpha sum_s mu(s) delta_bar(s) grad v_hat(s)  -  alpha eta [last layer's weights]

``delta_bar = r_pi + gamma P_pi v_hat - v_hat`` with the target held fixed (no gradient through
``v_hat(S')``): the expectation of ``rho delta grad v_hat(S)`` over ``S ~ mu, A ~ b, S' ~ p``, the
network's analogue of ``X^T D delta_bar``. It is the negative gradient of
``semi_gradient_objective`` (the target detached) plus ``eta/2 |W_last|^2``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import torch
from tqdm.auto import trange

from semigrad.config import ConfigError, check_choice, check_range
from semigrad.devices import resolve_device
from semigrad.envs.baird import VARIANTS, BairdEnv, BairdProblem, make_baird
from semigrad.losses import fold_termination, td_learning

METHODS = ("semi-gradient", "tdc", "gtd2", "etd")
UPDATES = ("sampled", "expected")
# Book step sizes: Figure 11.2 (alpha 0.01), Figure 11.5 (alpha 0.005, beta 0.05), Figure 11.6
# (alpha 0.03). GTD2 has no figure in the book; it gets TDC's step sizes.
BOOK_ALPHA = {"semi-gradient": 0.01, "tdc": 0.005, "gtd2": 0.005, "etd": 0.03}
BOOK_BETA = 0.05
NOTEBOOK_ALPHA = 0.8  # the course notebook's alpha for its TD update (seed 001)
METHOD_NAMES = {"semi-gradient": "semi-gradient off-policy TD(0)", "tdc": "TDC",
                "gtd2": "GTD2", "etd": "emphatic TD(0)"}


@dataclass(frozen=True)
class BairdConfig:
    """One run on Baird's counterexample. ``None`` step sizes / gamma take the book's values."""

    method: Literal["semi-gradient", "tdc", "gtd2", "etd"] = field(
        default="semi-gradient", metadata={"help": "learning rule"})
    update: Literal["sampled", "expected"] = field(
        default="expected", metadata={"help": "one sampled transition per step, or the "
                                              "expected update over the behaviour distribution"})
    variant: Literal["book", "notebook"] = field(
        default="book", metadata={"help": "the book's MDP (S&B Figure 11.1) or the course "
                                          "notebook's (seed 001)"})
    steps: int = field(default=1000, metadata={"help": "number of updates (steps or sweeps)"})
    alpha: float | None = field(default=None, metadata={
        "help": "step size of w; default: the book's figure for the method (notebook: 0.8 "
                "for semi-gradient TD)"})
    beta: float | None = field(default=None, metadata={
        "help": "step size of TDC/GTD2's secondary weights v; default 0.05"})
    gamma: float | None = field(default=None, metadata={
        "help": "discount; default 0.99 (book) or 0.95 (notebook)"})
    interest: float = field(default=1.0, metadata={"help": "emphatic TD's interest I_t"})

    def __post_init__(self) -> None:
        check_choice("method", self.method, METHODS)
        check_choice("update", self.update, UPDATES)
        check_choice("variant", self.variant, VARIANTS)
        if isinstance(self.steps, bool) or not isinstance(self.steps, int):
            raise ConfigError(f"steps: expected an integer, got {self.steps!r}")
        check_range("steps", self.steps, 1, 10_000_000)
        if self.alpha is None:
            notebook_td = self.variant == "notebook" and self.method == "semi-gradient"
            object.__setattr__(self, "alpha", NOTEBOOK_ALPHA if notebook_td
                               else BOOK_ALPHA[self.method])
        if self.beta is None:
            object.__setattr__(self, "beta", BOOK_BETA)
        if self.gamma is None:
            object.__setattr__(self, "gamma", 0.95 if self.variant == "notebook" else 0.99)
        check_range("alpha", self.alpha, 0, None, low_open=True)
        check_range("beta", self.beta, 0, None, low_open=True)
        check_range("gamma", self.gamma, 0, 1, high_open=True)
        check_range("interest", self.interest, 0, None)


@dataclass(frozen=True)
class Transition:
    """A batch of N behaviour transitions: ``x, x_next (N, d)``; ``reward, rho, emphasis (N,)``;
    ``terminated (N,)`` bool. ``emphasis`` is ETD's ``M_t`` (ignored by the other methods)."""

    x: torch.Tensor
    x_next: torch.Tensor
    reward: torch.Tensor
    terminated: torch.Tensor
    rho: torch.Tensor
    emphasis: torch.Tensor


def sampled_increments(method: str, w: torch.Tensor, v: torch.Tensor, tr: Transition,
                       gamma: float, alpha: float, beta: float
                       ) -> tuple[torch.Tensor, torch.Tensor]:
    """``(dw, dv)`` ``(N, d)`` of one sampled update (module docstring; S&B 11.1, 11.7, 11.8)."""
    x, rho = tr.x, tr.rho[:, None]
    v_hat, v_next = (x * w).sum(1), (tr.x_next * w).sum(1)
    discount = fold_termination(gamma, tr.terminated, x.dtype)
    delta = td_learning(v_hat, tr.reward, discount, v_next)[:, None]
    if method == "semi-gradient":
        return alpha * rho * delta * x, torch.zeros_like(v)
    if method == "etd":
        return alpha * tr.emphasis[:, None] * rho * delta * x, torch.zeros_like(v)
    discount = discount[:, None]
    xv = (x * v).sum(1, keepdim=True)
    dv = beta * rho * (delta - xv) * x
    if method == "tdc":
        return alpha * rho * (delta * x - discount * tr.x_next * xv), dv
    if method == "gtd2":
        return alpha * rho * (x - discount * tr.x_next) * xv, dv
    raise ValueError(f"method: {method!r} is not one of {', '.join(map(repr, METHODS))}")


def expected_followon(problem: BairdProblem, f: torch.Tensor, interest: float,
                      mu: torch.Tensor | None = None) -> torch.Tensor:
    """``f_t = mu * i + gamma P_pi^T f_{t-1}`` ``(S,)``; ``f_t(s) = E[M_t 1{S_t = s}]``.

    One-step episodes (``problem.restart``) carry no followon: ``f_t = mu * i``.
    """
    mu = problem.mu if mu is None else mu
    carry = 0.0 if problem.restart else problem.gamma
    return mu * interest + carry * f @ problem.target_transition_matrix()


def expected_increments(problem: BairdProblem, method: str, w: torch.Tensor, v: torch.Tensor,
                        alpha: float, beta: float, mu: torch.Tensor | None = None,
                        followon: torch.Tensor | None = None
                        ) -> tuple[torch.Tensor, torch.Tensor]:
    """``(dw, dv)`` ``(N, d)`` of the expected update over ``S ~ mu, A ~ b, S' ~ p``.

    ``w, v (N, d)``; ``mu (S,)`` defaults to the behaviour state distribution; ``followon (S,)``
    is ETD's ``f_t`` (``expected_followon``). Formulas in the module docstring.
    """
    mu = problem.mu if mu is None else mu
    x, p_pi, gamma = problem.features, problem.target_transition_matrix(), problem.gamma
    delta_bar = problem.bellman_error(w)  # (N, S)
    if method == "semi-gradient":
        return alpha * (mu * delta_bar) @ x, torch.zeros_like(v)
    if method == "etd":
        if followon is None:
            raise ValueError("expected_increments: emphatic TD needs `followon` f_t (S,)")
        return alpha * (followon * delta_bar) @ x, torch.zeros_like(v)
    xv = v @ x.T  # (N, S)
    dv = beta * (mu * (delta_bar - xv)) @ x
    correction = gamma * (mu * xv) @ p_pi @ x  # rows of gamma X^T P_pi^T D X v
    if method == "tdc":
        return alpha * ((mu * delta_bar) @ x - correction), dv
    if method == "gtd2":
        return alpha * ((mu * xv) @ x - correction), dv
    raise ValueError(f"method: {method!r} is not one of {', '.join(map(repr, METHODS))}")


@dataclass
class BairdTrajectory:
    """A run's history on the host: ``weights (T+1, N, d)``, ``sqrt_ve``, ``sqrt_pbe (T+1, N)``;
    row 0 holds the start weights."""

    config: BairdConfig
    problem: BairdProblem
    weights: torch.Tensor
    sqrt_ve: torch.Tensor
    sqrt_pbe: torch.Tensor


def run_baird(config: BairdConfig, seed: int = 0, device: str | torch.device | None = None,
              num_runs: int = 1, mu: torch.Tensor | None = None,
              progress: bool = True) -> BairdTrajectory:
    """Run ``config.steps`` updates from the book's start weights; ``num_runs`` independent runs.

    Sampled runs draw actions from a ``torch.Generator`` seeded with ``seed`` and transitions
    from the environment seeded with ``seed + 1``. ``mu (S,)`` replaces the state distribution
    of an expected update (e.g. ``problem.on_policy_distribution()``); VE and PBE are always
    measured under the behaviour distribution. Overflow is not an error: weights become
    inf / NaN and ``summarize`` reports the divergence.
    """
    device = resolve_device(device)
    problem = make_baird(config.variant, device, config.gamma)
    if mu is not None and config.update != "expected":
        raise ValueError("mu: a state distribution can only replace the expected update's")
    w = problem.start_weights.expand(num_runs, -1).clone()
    v = torch.zeros_like(w)
    history = torch.empty(config.steps + 1, num_runs, problem.num_features,
                          dtype=w.dtype, device=device)
    history[0] = w
    desc = f"{config.method} ({config.update})"
    steps = trange(config.steps, desc=desc, disable=None if progress else True, leave=False)
    if config.update == "expected":
        f = torch.zeros(problem.num_states, dtype=w.dtype, device=device)
        for t in steps:
            if config.method == "etd":
                f = expected_followon(problem, f, config.interest, mu)
            dw, dv = expected_increments(problem, config.method, w, v, config.alpha,
                                         config.beta, mu, f)
            w, v = w + dw, v + dv
            history[t + 1] = w
    else:
        env = BairdEnv(problem, num_runs, device=device, seed=seed + 1)
        actions_gen = torch.Generator(device=device).manual_seed(seed)
        ratios = problem.importance_ratios()
        x = env.reset()
        carry = torch.zeros(num_runs, dtype=w.dtype, device=device)  # gamma rho_{t-1} M_{t-1}
        for t in steps:
            s = env.state
            a = torch.multinomial(problem.behaviour[s], 1, generator=actions_gen).squeeze(1)
            rho = ratios[s, a]
            emphasis = carry + config.interest
            x_new, reward, terminated, truncated, info = env.step(a)
            tr = Transition(x, info["final_obs"], reward, terminated, rho, emphasis)
            dw, dv = sampled_increments(config.method, w, v, tr, problem.gamma,
                                        config.alpha, config.beta)
            w, v = w + dw, v + dv
            carry = torch.where(terminated | truncated, 0.0, problem.gamma * rho * emphasis)
            x = x_new
            history[t + 1] = w
    sqrt_ve = problem.sqrt_value_error(history)
    sqrt_pbe = problem.sqrt_projected_bellman_error(history)
    return BairdTrajectory(config, problem, history.cpu(), sqrt_ve.cpu(), sqrt_pbe.cpu())


def log_norm(w: torch.Tensor) -> torch.Tensor:
    """``log |w|`` over the last dim, ``(..., d)`` -> ``(...,)``, without overflow in squares."""
    scale = w.abs().amax(-1, keepdim=True).clamp_min(torch.finfo(w.dtype).tiny)
    return torch.linalg.vector_norm(w / scale, dim=-1).log() + scale.squeeze(-1).log()


UNSTABLE_FACTOR = 10  # |w| or sqrt(VE) this many times its start: no longer "bounded"


def summarize(traj: BairdTrajectory, run: int = 0) -> dict:
    """Verdict of one run: ``diverged`` / ``converged`` / ``bounded``, with its numbers.

    ``diverged``: the weights overflowed, or ``|w|`` ended above twice its start and grows
    exponentially: its log grew over the third quarter of the run and, at least half as fast,
    over the last quarter (the growth rate over the second half is reported as the number of
    steps ``|w|`` takes to double). ``converged``: ``w`` moved less than 1e-6 of
    ``max(|w|, 1)`` per step over the last tenth. ``unstable``: neither, but ``|w|`` or
    sqrt(VE) rose above ``UNSTABLE_FACTOR`` times its start at some step (no exponential
    trend, but swings a fixed point does not make: sampled emphatic TD's heavy-tailed
    follow-on trace, Sutton & Barto 11.8). ``bounded``: none of these. All values are the last
    finite ones; ``peak_norm_w`` and ``peak_sqrt_ve`` are the largest over the run.
    """
    w = traj.weights[:, run]
    logs = log_norm(w)
    finite = torch.isfinite(w).all(1) & torch.isfinite(logs)
    finite &= torch.isfinite(traj.sqrt_ve[:, run]) & torch.isfinite(traj.sqrt_pbe[:, run])
    bad = (~finite).nonzero()
    overflow = int(bad[0, 0]) if len(bad) else None
    last = overflow - 1 if overflow is not None else len(w) - 1
    tail = max(last // 10, 1)
    drift = float(log_norm(w[last] - w[max(last - tail, 0)])) - math.log(tail)
    still = drift <= math.log(1e-6) + max(float(logs[last]), 0.0)
    return {
        **_verdict(logs, traj.sqrt_ve[:, run], last, overflow, still),
        "weights": w[last].tolist(),
        "w8": float(w[last, 7]),
        "sqrt_pbe": float(traj.sqrt_pbe[last, run]),
    }


def _verdict(logs: torch.Tensor, sqrt_ve: torch.Tensor, last: int, overflow: int | None,
             still: bool) -> dict:
    """The status rule of ``summarize`` on a run's ``log |w|`` and ``sqrt(VE)`` ``(T+1,)``:
    ``last`` its last finite step, ``still`` whether it moved less than the converged bound."""
    half = last // 2
    rate = float(logs[last] - logs[half]) / max(last - half, 1)  # d log|w| / d step
    quarter = half + (last - half) // 2
    third_q, fourth_q = float(logs[quarter] - logs[half]), float(logs[last] - logs[quarter])
    grew = logs[last] > logs[0] + math.log(2) and third_q > 0 and fourth_q >= 0.5 * third_q
    ve = sqrt_ve[: last + 1]
    peak_log, peak_ve = float(logs[: last + 1].max()), float(ve.max())
    if overflow is not None or grew:
        status = "diverged"
    elif still:
        status = "converged"
    elif (peak_log > float(logs[0]) + math.log(UNSTABLE_FACTOR)
          or peak_ve > UNSTABLE_FACTOR * max(float(ve[0]), 1e-12)):
        status = "unstable"
    else:
        status = "bounded"
    return {
        "status": status,
        "last_finite_step": last,
        "overflow_step": overflow,
        "log10_norm_w": float(logs[last]) / math.log(10),
        "growth_per_step": math.exp(rate),
        "doubling_steps": math.log(2) / rate if rate > 0 else None,
        "sqrt_ve": float(sqrt_ve[last]),
        "peak_norm_w": math.exp(peak_log),
        "peak_sqrt_ve": peak_ve,
    }


def verdict_line(summary: dict, config: BairdConfig) -> str:
    """One line for the terminal, e.g. ``...: diverged: |w| doubles every 240 sweeps ...``."""
    name = f"{METHOD_NAMES[config.method]} ({config.update}, {config.variant})"
    unit = "sweeps" if config.update == "expected" else "steps"
    if summary["status"] == "diverged":
        when = (f"overflowed at step {summary['overflow_step']}, "
                if summary["overflow_step"] is not None else "")
        return (f"{name}: diverged: {when}|w| doubles every {summary['doubling_steps']:.3g} "
                f"{unit} (x{summary['growth_per_step']:.6g} per {unit[:-1]}), |w| = "
                f"{10 ** summary['log10_norm_w']:.4g} at step {summary['last_finite_step']}, "
                f"w8 = {summary['w8']:.4g}")
    if summary["status"] == "unstable":
        return (f"{name}: unstable: no exponential growth, but |w| reached "
                f"{summary['peak_norm_w']:.4g} and sqrt(VE) {summary['peak_sqrt_ve']:.4g} "
                f"(more than {UNSTABLE_FACTOR}x their start); after "
                f"{summary['last_finite_step']} {unit} sqrt(VE) = {summary['sqrt_ve']:.4g}, "
                f"w8 = {summary['w8']:.4g}")
    return (f"{name}: {summary['status']}: after {summary['last_finite_step']} {unit} "
            f"sqrt(VE) = {summary['sqrt_ve']:.4g}, sqrt(PBE) = {summary['sqrt_pbe']:.4g}, "
            f"w8 = {summary['w8']:.4g}")


# ----------------------------------------------------------------------------- PQN's fix

NET_INPUTS = ("features", "one-hot")


def paper_l2(gamma: float) -> float:
    """``eta = (gamma / 2)^2``: the size of L2 on the last layer that Gallici et al.'s analysis of a
    LayerNorm critic asks for (as we read their bound), 0.245 at gamma = 0.99."""
    return (gamma / 2) ** 2


@dataclass(frozen=True)
class BairdNetConfig:
    """Expected semi-gradient off-policy TD(0) on Baird's MDP with an MLP ``v_hat(s) =
    f_theta(input(s))`` (``semigrad.nets.MLP``, ReLU; LayerNorm before each hidden activation).

    ``inputs``: ``"features"`` feeds the book's feature vector ``x(s)`` (8 numbers; the
    counterexample is about these features), ``"one-hot"`` the state's one-hot code. ``l2`` is
    ``eta``: weight decay on the last layer's weights only (not its bias, not the torso).
    """

    layer_norm: bool = True
    l2: float = 0.0
    hidden: tuple[int, ...] = (32,)
    alpha: float = 0.01
    steps: int = 5000
    gamma: float = 0.99
    inputs: Literal["features", "one-hot"] = "features"

    def __post_init__(self) -> None:
        check_choice("inputs", self.inputs, NET_INPUTS)
        if isinstance(self.steps, bool) or not isinstance(self.steps, int):
            raise ConfigError(f"steps: expected an integer, got {self.steps!r}")
        check_range("steps", self.steps, 1, 10_000_000)
        check_range("alpha", self.alpha, 0, None, low_open=True)
        check_range("l2", self.l2, 0, None)
        check_range("gamma", self.gamma, 0, 1, high_open=True)
        if not self.hidden or any(h < 1 for h in self.hidden):
            raise ConfigError(f"hidden: expected one or more widths >= 1, got {self.hidden!r}")

    @property
    def name(self) -> str:
        net = "LayerNorm MLP" if self.layer_norm else "MLP (no LayerNorm)"
        return net + (f" + L2 {self.l2:.3g}" if self.l2 else "")


def net_inputs(problem: BairdProblem, inputs: str) -> torch.Tensor:
    """The network's input for every state, ``(S, in_dim)``: ``x(s)`` or one-hot ``e_s``."""
    if inputs == "features":
        return problem.features
    return torch.eye(problem.num_states, dtype=problem.features.dtype, device=problem.device)


def make_value_net(config: BairdNetConfig, problem: BairdProblem, seed: int) -> torch.nn.Module:
    """The network of run ``seed``: PyTorch's default init from ``torch.manual_seed(seed)``
    (the global generator is left as it was), in float64, then its last layer set by
    minimum-norm least squares so that ``v_hat(s) = x(s) . w_0`` in every state: every method
    starts from the book's start values (3 in the upper states, 12 in the lower one)."""
    from semigrad.nets import MLP

    x = net_inputs(problem, config.inputs)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = MLP(x.shape[1], 1, config.hidden, "relu", config.layer_norm)
    net = net.to(device=problem.device, dtype=torch.float64)
    with torch.no_grad():
        phi = net.net[:-1](x)  # (S, k) the last layer's input
        design = torch.cat([phi, torch.ones_like(phi[:, :1])], 1)
        solution = torch.linalg.pinv(design) @ problem.values(problem.start_weights)
        net.net[-1].weight.copy_(solution[None, :-1])
        net.net[-1].bias.copy_(solution[-1:])
    return net


def semi_gradient_objective(v: torch.Tensor, problem: BairdProblem,
                            mu: torch.Tensor | None = None) -> torch.Tensor:
    """``1/2 sum_s mu(s) (sg[r_pi + gamma P_pi v](s) - v(s))^2``: ``v (..., S)`` -> ``(...,)``.

    ``sg`` (the target) is detached, so ``-d/d theta`` of this is ``sum_s mu(s) delta_bar(s)
    grad v_hat(s)``, the expected semi-gradient off-policy TD(0) update ``E_b[rho delta grad
    v_hat(S)]`` (``b rho = pi``); it is not a loss whose minimum TD finds (S&B 11.5).
    """
    mu = problem.mu if mu is None else mu
    target = (problem.target_rewards() + problem.gamma * v @ problem.target_transition_matrix().T)
    return 0.5 * (mu * (target.detach() - v) ** 2).sum(-1)


def expected_net_increments(net: torch.nn.Module, params: dict[str, torch.Tensor],
                            inputs: torch.Tensor, problem: BairdProblem, alpha: float,
                            l2: float) -> dict[str, torch.Tensor]:
    """``d theta`` of one expected semi-gradient TD(0) update of ``net`` at ``params`` (one run;
    ``torch.func.vmap`` it over runs): ``-alpha grad(semi_gradient_objective + l2/2 |W_last|^2)``.
    ``inputs (S, in_dim)``; the last layer's weights are the last parameter named ``*.weight``."""
    last = [k for k in params if k.endswith(".weight")][-1]

    def objective(p: dict[str, torch.Tensor]) -> torch.Tensor:
        v = torch.func.functional_call(net, p, (inputs,)).squeeze(-1)
        return semi_gradient_objective(v, problem) + 0.5 * l2 * (p[last] ** 2).sum()

    grads = torch.func.grad(objective)(params)
    return {k: -alpha * g for k, g in grads.items()}


@dataclass
class BairdNetTrajectory:
    """A network run's history on the host: ``values (T+1, N, S)`` (v_hat in every state),
    ``norm_w``, ``norm_last``, ``sqrt_ve (T+1, N)`` (|theta| of all parameters, |W_last| of the
    last layer's weights, sqrt(VE) under the behaviour distribution); row 0 holds the start."""

    config: BairdNetConfig
    problem: BairdProblem
    values: torch.Tensor
    norm_w: torch.Tensor
    norm_last: torch.Tensor
    sqrt_ve: torch.Tensor


def run_baird_net(config: BairdNetConfig, seed: int = 0, device: str | torch.device | None = None,
                  num_runs: int = 1, progress: bool = True) -> BairdNetTrajectory:
    """``config.steps`` expected updates of ``num_runs`` networks at once (run k's network is
    ``make_value_net(config, problem, seed + k)``), vmapped over runs. Overflow is not an error:
    parameters become inf / NaN and ``summarize_net`` reports the divergence."""
    device = resolve_device(device)
    problem = make_baird("book", device, config.gamma)
    x = net_inputs(problem, config.inputs)
    nets = [make_value_net(config, problem, seed + k) for k in range(num_runs)]
    params = {k: torch.stack([dict(n.named_parameters())[k].detach() for n in nets])
              for k, _ in nets[0].named_parameters()}
    last = [k for k in params if k.endswith(".weight")][-1]
    template = nets[0]

    def values(p):
        return torch.func.functional_call(template, p, (x,)).squeeze(-1)

    increments = torch.func.vmap(
        lambda p: expected_net_increments(template, p, x, problem, config.alpha, config.l2))
    all_values = torch.func.vmap(values)
    t_len = config.steps + 1
    hist_v = torch.empty(t_len, num_runs, problem.num_states, dtype=torch.float64, device=device)
    hist_n = torch.empty(t_len, num_runs, dtype=torch.float64, device=device)
    hist_l = torch.empty_like(hist_n)

    def record(t: int) -> None:
        with torch.no_grad():
            hist_v[t] = all_values(params)
            flat = torch.cat([p.flatten(1) for p in params.values()], 1)
            hist_n[t] = log_norm(flat).exp()
            hist_l[t] = log_norm(params[last].flatten(1)).exp()

    record(0)
    desc = config.name
    for t in trange(config.steps, desc=desc, disable=None if progress else True, leave=False):
        d = increments(params)
        params = {k: params[k] + d[k] for k in params}
        record(t + 1)
    sqrt_ve = mu_norm_values(problem, hist_v)
    return BairdNetTrajectory(config, problem, hist_v.cpu(), hist_n.cpu(), hist_l.cpu(),
                              sqrt_ve.cpu())


def mu_norm_values(problem: BairdProblem, v: torch.Tensor) -> torch.Tensor:
    """``sqrt(VE)`` of values ``v (..., S)`` under the behaviour distribution -> ``(...,)``."""
    from semigrad.envs.baird import mu_norm

    return mu_norm(v - problem.true_values(), problem.mu)


def summarize_net(traj: BairdNetTrajectory, run: int = 0) -> dict:
    """``summarize``'s verdict for a network run, on ``|theta|`` and sqrt(VE); ``converged``:
    the values (not the parameters: LayerNorm leaves directions that change no value) moved
    less than 1e-6 of ``max(max_s |v_hat(s)|, 1)`` per sweep over the last tenth."""
    v, norms = traj.values[:, run], traj.norm_w[:, run]
    logs = norms.log()
    finite = torch.isfinite(v).all(1) & torch.isfinite(logs) & torch.isfinite(traj.sqrt_ve[:, run])
    bad = (~finite).nonzero()
    overflow = int(bad[0, 0]) if len(bad) else None
    last = overflow - 1 if overflow is not None else len(v) - 1
    tail = max(last // 10, 1)
    moved = float((v[last] - v[max(last - tail, 0)]).abs().max()) / tail
    still = moved <= 1e-6 * max(float(v[last].abs().max()), 1.0)
    return {
        **_verdict(logs, traj.sqrt_ve[:, run], last, overflow, still),
        "values": v[last].tolist(),
        "norm_last": float(traj.norm_last[last, run]),
        "start_norm_w": float(norms[0]),
    }
