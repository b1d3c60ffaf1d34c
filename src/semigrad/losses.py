"""Value-learning losses as small pure functions on tensors, in the form of rlax.

Names follow rlax (DeepMind, ``value_learning.py``) and Sutton & Barto (2nd ed.): a transition
goes from the state at time ``t-1`` to the state at time ``t``, so

* ``q_tm1 (B, A)``, ``v_tm1 (B,)``: the values being learned, at the states ``S_{t-1}``;
* ``a_tm1 (B,)`` int64: the actions taken there;
* ``r_t (B,)``: the rewards ``R_t``;
* ``discount_t (B,)``: the discount of each transition, **termination folded in**:
  ``gamma`` for a one-step transition that goes on, ``0`` for one that terminated (no
  bootstrap), and ``gamma`` again for one cut by a time limit (a truncated episode bootstraps
  from the state it was cut in); ``gamma^m``, or 0 at a termination, for an m-step return.
  ``fold_termination`` and ``n_step_returns`` make it from an environment's flags;
* ``q_t (B, A)``, ``v_t (B,)``: the bootstrap values at the next states ``S_t``.

Each learning rule returns the TD errors ``td_error (B,) = target - value`` (rlax's sign), and
one regression loss turns TD errors into the scalar to minimise (``td_error_loss``). Two rules
hold unless a caller asks otherwise:

* the target carries no gradient (``stop_target_gradients=True``: the semi-gradient methods;
  ``False`` gives the residual-gradient method, Baird 1995);
* only the taken action's output is trained: ``q_tm1`` enters through a ``gather``, so
  d loss / d q_tm1 is zero at every other action.

A zero ``discount_t`` means "no bootstrap": the target is ``r_t`` exactly for any finite
bootstrap value. As in rlax the product is computed, so a NaN or infinite bootstrap value
propagates even there: a diverged network is not hidden (and masking it would cost two more
tensor operations in every hot loop; TD(0) with one environment loses some 3% to them).

Every public function checks the shapes and dtypes of its tensors through one helper
(``_check``) and raises one ``ValueError`` that names the function, the argument and the
expected shape. The accelerators skip the checks and are tested equal to the checked functions
(bit for bit where they run the same arithmetic): the per-agent loss with its closed-form
gradient and its numba kernel (``q_loss_kernel``) at the end, and hot loops that call
``fold_termination`` and ``td_learning`` with ``check=False`` (TD(0)'s hand-written
backward). ``q_learning_loss_per_sample`` is the slow reference they are all tested against.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Literal, NamedTuple

import torch
import torch.nn.functional as F

from semigrad.compiled import load_kernel

LossKind = Literal["mse", "huber"]
LOSS_KINDS: tuple[str, ...] = ("mse", "huber")


# ----------------------------------------------------------------------------- input checks

_FLOATS = frozenset({torch.float16, torch.bfloat16, torch.float32, torch.float64})
_DTYPES: dict[str, frozenset[torch.dtype]] = {
    "float": _FLOATS,
    "bool": frozenset({torch.bool}),
    "int64": frozenset({torch.int64}),
    "action": frozenset({torch.int64}),  # and in [0, A - 1]
}
_DTYPE_NAMES = {"float": "a float", "bool": "a bool", "int64": "an int64", "action": "an int64"}


def _describe(x: torch.Tensor) -> str:
    return f"{str(x.dtype).removeprefix('torch.')} tensor of shape {tuple(x.shape)}"


def _check(fn: str, **args: tuple[object, str, str]) -> dict[str, int]:
    """The input check of every public function: ``name=(tensor, dims, dtype)`` per argument.

    ``dims`` names each dimension by a letter (``"BA"``: shape ``(B, A)``); a letter means the
    same size in every argument of the call, bound by the first argument that has it.
    ``dtype``: ``"float"`` (float16, bfloat16, float32 or float64), ``"bool"``, ``"int64"``,
    or ``"action"`` (int64 with values in ``[0, A - 1]``: this one reads the values, a host
    sync on a GPU). Returns the sizes, e.g. ``{"B": 32, "A": 4}``. Written for speed: it runs
    on every call, and in a loop of small batches its cost shows.
    """
    sizes: dict[str, int] = {}
    for name, (x, dims, dtype) in args.items():
        if not isinstance(x, torch.Tensor):
            raise ValueError(f"{fn}: `{name}` must be a torch.Tensor, got {type(x).__name__}")
        shape = x.shape
        if x.dtype not in _DTYPES[dtype] or len(shape) != len(dims):
            _reject(fn, name, x, dims, dtype, sizes)
        for letter, size in zip(dims, shape, strict=True):
            if sizes.setdefault(letter, size) != size:
                _reject(fn, name, x, dims, dtype, sizes)
        if dtype == "action" and x.numel():
            low, high = torch.aminmax(x)
            if low.item() < 0 or high.item() >= sizes["A"]:
                raise ValueError(f"{fn}: `{name}` must lie in [0, A-1]=[0, {sizes['A'] - 1}], "
                                 f"got values in [{low.item()}, {high.item()}]")
    return sizes


def _reject(fn: str, name: str, x: torch.Tensor, dims: str, dtype: str, sizes: dict) -> None:
    """``_check``'s error for a tensor of the wrong dtype, rank or size."""
    comma = "," if len(dims) == 1 else ""
    letters = ", ".join(dims) + comma
    known = ", ".join(str(sizes.get(d, d)) for d in dims) + comma
    shape = f"({letters})" + (f"=({known})" if known != letters else "")
    raise ValueError(f"{fn}: `{name}` must be {_DTYPE_NAMES[dtype]} tensor of shape {shape}, "
                     f"got {_describe(x)}")


def _check_gamma(fn: str, gamma: object) -> None:
    if isinstance(gamma, bool) or not isinstance(gamma, (int, float)) or not 0 <= gamma <= 1:
        raise ValueError(f"{fn}: `gamma` must be a float in [0, 1], got {gamma!r}")


def _check_loss(fn: str, kind: str, huber_delta: float) -> None:
    if kind not in LOSS_KINDS:
        raise ValueError(f"{fn}: `kind` must be one of {LOSS_KINDS}, got {kind!r}")
    if not huber_delta > 0:
        raise ValueError(f"{fn}: `huber_delta` must be > 0, got {huber_delta!r}")


# ----------------------------------------------------------------------------- building blocks


def _taken(q: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """``q[..., a]`` row by row: ``q (..., A)``, ``a (...)`` -> ``(...)``."""
    return q.gather(-1, a.unsqueeze(-1)).squeeze(-1)


def _target(r_t: torch.Tensor, discount_t: torch.Tensor, v_t: torch.Tensor) -> torch.Tensor:
    """``r_t + discount_t * v_t``: the one home of the bootstrapped target. One fused
    multiply-add (``addcmul``, one rounding), as ``torch.add(r, v, alpha=gamma)`` computes
    it."""
    return torch.addcmul(r_t, discount_t, v_t)


def _stop(target: torch.Tensor, stop_target_gradients: bool) -> torch.Tensor:
    """``target``, detached when it must carry no gradient. (Detaching the result rather
    than building it under ``no_grad`` costs nothing when, as usual, the bootstrap values
    carry no gradient themselves.)"""
    if stop_target_gradients and target.requires_grad:
        return target.detach()
    return target


def taken_action_values(q: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    """``q[i, actions[i]]`` for every i, via ``gather``: ``q (B, A)``, ``actions (B,)`` -> ``(B,)``
    (rlax's ``batched_index``).

    The gradient flows back only to the gathered entries: d out_i / d q[j, a] = 1 if
    ``j == i and a == actions[i]`` else 0.
    """
    _check("taken_action_values", q=(q, "BA", "float"), actions=(actions, "B", "action"))
    return _taken(q, actions)


def fold_termination(
    gamma: float | torch.Tensor,
    terminated: torch.Tensor,
    dtype: torch.dtype | None = None,
    *,
    check: bool = True,
) -> torch.Tensor:
    """``discount_t (B,) = gamma * (1 - terminated)``: the discount each transition bootstraps
    with, termination folded in.

    ``terminated (B,)`` bool; ``gamma`` a float in [0, 1] (a one-step discount; the result has
    ``dtype``, default torch's default dtype) or a ``(B,)`` float tensor of per-transition
    discounts (e.g. an n-step return's ``gamma^m``; the result has its dtype). A truncated
    transition is not terminated: it keeps ``gamma`` and bootstraps (Sutton & Barto 3.4
    defines the return of an episode that ends; a time limit is not part of the MDP, Pardo et
    al. 2018, "Time Limits in Reinforcement Learning"). ``check=False``: see ``td_learning``.
    """
    fn = "fold_termination"
    if isinstance(gamma, torch.Tensor):
        if check:
            _check(fn, terminated=(terminated, "B", "bool"), gamma=(gamma, "B", "float"))
        return gamma.masked_fill(terminated, 0.0)
    if check:
        _check(fn, terminated=(terminated, "B", "bool"))
        _check_gamma(fn, gamma)
    dtype = dtype or torch.get_default_dtype()
    return torch.where(terminated, *_zero_and(gamma, dtype, terminated.device))


@functools.lru_cache(maxsize=64)
def _zero_and(gamma: float, dtype: torch.dtype, device: torch.device):
    """``0`` and ``gamma`` as 0-dim tensors of ``dtype`` on ``device``, made once:
    ``torch.where`` on them costs half of what it costs on Python numbers, which it turns into
    tensors at every call (TD(0)'s hot loop folds every step)."""
    with torch.inference_mode(False):  # usable outside inference mode too
        return (torch.zeros((), dtype=dtype, device=device),
                torch.tensor(gamma, dtype=dtype, device=device))


class NStepReturns(NamedTuple):
    """``n_step_returns``' result: ``returns (B,)``, ``discount_t (B,)``, ``steps (B,)``."""

    returns: torch.Tensor
    discount_t: torch.Tensor
    steps: torch.Tensor


def n_step_returns(
    r_t: torch.Tensor, terminated_t: torch.Tensor, truncated_t: torch.Tensor, gamma: float
) -> NStepReturns:
    """n-step returns of B windows of n consecutive steps of one environment, in the form a
    replay needs: ``r_t``, ``terminated_t``, ``truncated_t (B, n)``, row i holding the steps
    ``t, t+1, ..., t+n-1`` after the state ``S_{t-1}`` the return starts from.

    A window stops after its first step that ends the episode (terminated or truncated):
    ``steps = m`` in ``1..n`` counts the steps it keeps, ``returns = sum_{k<m} gamma^k
    r_{t+k}`` (Sutton & Barto 7.1, eq. 7.1; multi-step targets in Rainbow, Hessel et al.
    2018), and ``discount_t = gamma^m``, or 0 when step m terminated, is what the learning
    rules take: ``target = returns + discount_t * v(S_{t+m-1})``, so a truncated window still
    bootstraps from the state it was cut in. ``steps - 1`` indexes the step whose next state
    to bootstrap from.
    """
    fn = "n_step_returns"
    _check(fn, r_t=(r_t, "BN", "float"), terminated_t=(terminated_t, "BN", "bool"),
           truncated_t=(truncated_t, "BN", "bool"))
    _check_gamma(fn, gamma)
    n = r_t.shape[1]
    done = terminated_t | truncated_t
    kept = (torch.cumsum(done, dim=1) - done.long()) == 0  # no earlier step ended the episode
    powers = gamma ** torch.arange(n, device=r_t.device).to(r_t.dtype)
    returns = (r_t * powers * kept).sum(dim=1)
    steps = kept.sum(dim=1)
    terminated = terminated_t.gather(1, (steps - 1).unsqueeze(1)).squeeze(1)
    return NStepReturns(returns, fold_termination(gamma ** steps.to(r_t.dtype), terminated),
                        steps)


def lambda_returns(
    r_t: torch.Tensor,
    discount_t: torch.Tensor,
    v_t: torch.Tensor,
    lambda_: float | torch.Tensor = 1.0,
    *,
    truncated_t: torch.Tensor | None = None,
) -> torch.Tensor:
    """lambda-returns ``G (T, B)`` of B columns of T consecutive steps, computed backward.

    ``r_t``, ``discount_t``, ``v_t (T, B)``: row t holds the step after the state ``S_{t-1}``
    whose return is wanted: its reward, its discount with termination folded in
    (``fold_termination``: ``gamma``, 0 where the step terminated, ``gamma`` where it was
    truncated) and the bootstrap value of the state it ended in (for Peng's Q(lambda),
    ``max_a q(S_t, a)``; at a truncation the true final observation's, not the next episode's
    first). ``lambda_`` a float in [0, 1] or a ``(T, B)`` float tensor (rlax's form). Then
    ``G_{T-1} = r_{T-1} + discount_{T-1} v_{T-1}`` and, backward,

        G_t = r_t + discount_t ((1 - lambda_t) v_t + lambda_t G_{t+1})

    (Sutton & Barto 12.1, eq. 12.3's recursive form; Peng & Williams 1996 for Q(lambda);
    PQN, Gallici et al. 2025, computes its targets so). A terminated step cuts the chain by
    its zero discount. A truncated step must cut it too (``G_{t+1}`` belongs to the next
    episode) while still bootstrapping from ``v_t``: pass ``truncated_t (T, B)`` bool, which
    sets ``lambda_t = 0`` there. ``lambda_ = 0`` gives the one-step targets ``r_t +
    discount_t v_t`` exactly; ``lambda_ = 1`` the discounted sum of rewards to the end of
    each episode, bootstrapped from ``v`` where the rollout or a truncation cuts it. The
    result carries no gradient of its own beyond its inputs'; detach ``v_t`` for a
    semi-gradient target.
    """
    fn = "lambda_returns"
    _check(fn, r_t=(r_t, "TB", "float"), discount_t=(discount_t, "TB", "float"),
           v_t=(v_t, "TB", "float"))
    if isinstance(lambda_, torch.Tensor):
        _check(fn, r_t=(r_t, "TB", "float"), lambda_=(lambda_, "TB", "float"))
    elif isinstance(lambda_, bool) or not isinstance(lambda_, (int, float)) \
            or not 0 <= lambda_ <= 1:
        raise ValueError(f"{fn}: `lambda_` must be a float in [0, 1] or a (T, B) tensor, "
                         f"got {lambda_!r}")
    if truncated_t is not None:
        _check(fn, r_t=(r_t, "TB", "float"), truncated_t=(truncated_t, "TB", "bool"))
        if not isinstance(lambda_, torch.Tensor):
            lambda_ = torch.full_like(r_t, lambda_)
        lambda_ = lambda_.masked_fill(truncated_t, 0.0)
    returns = torch.empty_like(r_t)
    if r_t.shape[0] == 0:
        return returns
    g = v_t[-1]
    for t in range(r_t.shape[0] - 1, -1, -1):
        lam = lambda_[t] if isinstance(lambda_, torch.Tensor) else lambda_
        # (1 - lambda) v + lambda G as torch.lerp: exactly v at lambda 0, exactly G at 1
        g = returns[t] = _target(r_t[t], discount_t[t], torch.lerp(v_t[t], g, lam))
    return returns


# ----------------------------------------------------------------------------- learning rules


def td_learning(
    v_tm1: torch.Tensor,
    r_t: torch.Tensor,
    discount_t: torch.Tensor,
    v_t: torch.Tensor,
    stop_target_gradients: bool = True,
    *,
    check: bool = True,
) -> torch.Tensor:
    """TD(0) errors ``delta = r_t + discount_t * v_t - v_tm1``; ``(B,)``.

    ``v_tm1 (B,)`` the values learned, ``r_t``, ``discount_t``, ``v_t (B,)``. Sutton & Barto
    6.1 (eq. 6.5); with ``stop_target_gradients`` the step ``w += alpha delta grad v_tm1`` is
    semi-gradient TD(0) (9.3, eq. 9.7). Without it, gradient descent on ``0.5 delta^2`` also
    moves ``v_t``: the residual-gradient algorithm (Baird 1995; Sutton & Barto 11.5), which
    converges to a different fixed point.

    ``check=False`` skips the input checks, for an accelerator's hot loop on inputs whose
    shapes it fixes itself (TD(0)'s hand-written backward, ``algos.td0.MLPSemiGradient``: with
    one environment the checks of this call and ``fold_termination``'s took some 6 us of a
    150 us transition). The arithmetic is the same.
    """
    if check:
        _check("td_learning", v_tm1=(v_tm1, "B", "float"), r_t=(r_t, "B", "float"),
               discount_t=(discount_t, "B", "float"), v_t=(v_t, "B", "float"))
    target_tm1 = _stop(_target(r_t, discount_t, v_t), stop_target_gradients)
    return target_tm1 - v_tm1


def _q_learning(q_tm1, a_tm1, r_t, discount_t, q_t_value, q_t_selector, stop):
    """Q-learning (``q_t_selector is None``) or Double Q-learning TD errors, any leading dims."""
    if q_t_selector is None:
        v_t = q_t_value.amax(dim=-1)
    else:
        v_t = _taken(q_t_value, q_t_selector.argmax(dim=-1))
    return _stop(_target(r_t, discount_t, v_t), stop) - _taken(q_tm1, a_tm1)


def _check_q(fn, q_tm1, a_tm1, r_t, discount_t, **next_values):
    """``_check`` of a Q-learning rule's arguments; ``next_values``: name=(tensor, dims, dtype)
    of the arguments at the next states."""
    _check(fn, q_tm1=(q_tm1, "BA", "float"), a_tm1=(a_tm1, "B", "action"),
           r_t=(r_t, "B", "float"), discount_t=(discount_t, "B", "float"), **next_values)


def q_learning(
    q_tm1: torch.Tensor,
    a_tm1: torch.Tensor,
    r_t: torch.Tensor,
    discount_t: torch.Tensor,
    q_t: torch.Tensor,
    stop_target_gradients: bool = True,
) -> torch.Tensor:
    """Q-learning TD errors ``r_t + discount_t * max_a q_t[a] - q_tm1[a_tm1]``; ``(B,)``.

    ``q_tm1 (B, A)``, ``a_tm1 (B,)`` int64, ``r_t``, ``discount_t (B,)``, ``q_t (B, A)`` (a
    target network's values in DQN). Watkins 1989; Sutton & Barto 6.5 (eq. 6.8); DQN, Mnih et
    al. 2015, with ``q_t`` from the target network.
    """
    _check_q("q_learning", q_tm1, a_tm1, r_t, discount_t, q_t=(q_t, "BA", "float"))
    return _q_learning(q_tm1, a_tm1, r_t, discount_t, q_t, None, stop_target_gradients)


def double_q_learning(
    q_tm1: torch.Tensor,
    a_tm1: torch.Tensor,
    r_t: torch.Tensor,
    discount_t: torch.Tensor,
    q_t_value: torch.Tensor,
    q_t_selector: torch.Tensor,
    stop_target_gradients: bool = True,
) -> torch.Tensor:
    """Double Q-learning TD errors ``r_t + discount_t * q_t_value[a*] - q_tm1[a_tm1]`` with
    ``a* = argmax_a q_t_selector[a]`` (the first maximum); ``(B,)``.

    ``q_t_value``, ``q_t_selector (B, A)``: one estimate picks the action, the other evaluates
    it, which removes Q-learning's maximisation bias (van Hasselt 2010; Sutton & Barto 6.7).
    Double DQN (van Hasselt, Guez & Silver 2016): the online network selects, the target
    network evaluates.
    """
    _check_q("double_q_learning", q_tm1, a_tm1, r_t, discount_t,
             q_t_value=(q_t_value, "BA", "float"), q_t_selector=(q_t_selector, "BA", "float"))
    return _q_learning(q_tm1, a_tm1, r_t, discount_t, q_t_value, q_t_selector,
                       stop_target_gradients)


def sarsa(
    q_tm1: torch.Tensor,
    a_tm1: torch.Tensor,
    r_t: torch.Tensor,
    discount_t: torch.Tensor,
    q_t: torch.Tensor,
    a_t: torch.Tensor,
    stop_target_gradients: bool = True,
) -> torch.Tensor:
    """SARSA TD errors ``r_t + discount_t * q_t[a_t] - q_tm1[a_tm1]``; ``(B,)``.

    ``a_t (B,)`` int64: the actions the policy takes at the next states (on-policy). Rummery &
    Niranjan 1994; Sutton & Barto 6.4 (eq. 6.7), episodic semi-gradient SARSA 10.1 (eq. 10.1).
    """
    _check_q("sarsa", q_tm1, a_tm1, r_t, discount_t, q_t=(q_t, "BA", "float"),
             a_t=(a_t, "B", "action"))
    target_tm1 = _stop(_target(r_t, discount_t, _taken(q_t, a_t)), stop_target_gradients)
    return target_tm1 - _taken(q_tm1, a_tm1)


def expected_sarsa(
    q_tm1: torch.Tensor,
    a_tm1: torch.Tensor,
    r_t: torch.Tensor,
    discount_t: torch.Tensor,
    q_t: torch.Tensor,
    probs_a_t: torch.Tensor,
    stop_target_gradients: bool = True,
) -> torch.Tensor:
    """Expected SARSA TD errors ``r_t + discount_t * sum_a pi(a|S_t) q_t[a] - q_tm1[a_tm1]``;
    ``(B,)``.

    ``probs_a_t (B, A)``: the policy's action probabilities at the next states (rows summing
    to 1). van Seijen et al. 2009; Sutton & Barto 6.6 (eq. 6.9), with function approximation
    as in 10.1.
    """
    _check_q("expected_sarsa", q_tm1, a_tm1, r_t, discount_t, q_t=(q_t, "BA", "float"),
             probs_a_t=(probs_a_t, "BA", "float"))
    target_tm1 = _stop(_target(r_t, discount_t, (probs_a_t * q_t).sum(dim=1)),
                       stop_target_gradients)
    return target_tm1 - _taken(q_tm1, a_tm1)


# ----------------------------------------------------------------------------- regression losses


def _elementwise_loss(td_error, kind, huber_delta, reduction):
    """``L(td_error)``: the squared error, or Huber's loss (Huber 1964), via torch's kernels
    (as their loss of ``td_error`` against a target of zeros)."""
    zero = _zeros(td_error.shape, td_error.dtype, td_error.device)
    if kind == "mse":
        return F.mse_loss(td_error, zero, reduction=reduction)
    return F.huber_loss(td_error, zero, delta=huber_delta, reduction=reduction)


@functools.lru_cache(maxsize=64)
def _zeros(shape: torch.Size, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """A tensor of zeros, made once per shape (never written to): cheaper than
    ``torch.zeros_like`` at every call."""
    with torch.inference_mode(False):  # usable outside inference mode too
        return torch.zeros(shape, dtype=dtype, device=device)


def td_error_loss(
    td_error: torch.Tensor, kind: LossKind = "mse", huber_delta: float = 1.0
) -> torch.Tensor:
    """The mean regression loss of TD errors ``td_error (B,)``; a scalar.

    ``mse``: ``mean_i delta_i^2``, so d loss / d delta_i = 2 delta_i / B. ``huber``: ``0.5
    delta^2`` within ``huber_delta`` of zero, ``huber_delta (|delta| - 0.5 huber_delta)``
    beyond (Huber 1964); its gradient is delta clipped to [-huber_delta, huber_delta], over B:
    DQN's error clipping (Mnih et al. 2015). With ``v = target - delta``, d loss / d v is the
    negative of these. ``0.5 * td_error_loss(delta)`` with SGD at step alpha is the textbook
    ``w += alpha mean_i delta_i grad v_i``.
    """
    fn = "td_error_loss"
    _check(fn, td_error=(td_error, "B", "float"))
    _check_loss(fn, kind, huber_delta)
    return _elementwise_loss(td_error, kind, huber_delta, "mean")


def td_error_loss_per_row(
    td_error: torch.Tensor, kind: LossKind = "mse", huber_delta: float = 1.0
) -> torch.Tensor:
    """``td_error_loss`` of each row: ``td_error (K, B)`` -> ``(K,)``.

    Row k is ``td_error_loss(td_error[k], kind)``: K independent learners (seeds trained
    together) each get the mean over their own B samples, so summing the K losses gives every
    learner exactly its own gradient.
    """
    fn = "td_error_loss_per_row"
    _check(fn, td_error=(td_error, "KB", "float"))
    _check_loss(fn, kind, huber_delta)
    return _elementwise_loss(td_error, kind, huber_delta, "none").mean(dim=1)


def td_error_loss_and_grad_per_row(
    td_error: torch.Tensor, kind: LossKind = "mse", huber_delta: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Accelerator: ``td_error_loss_per_row`` ``(K,)`` and its gradient ``d sum_k loss_k /
    d td_error (K, B)`` in closed form, without autograd (for hand-written backward passes).

    ``mse``: ``2 delta / B``; ``huber``: ``clamp(delta, -huber_delta, huber_delta) / B``
    (``td_error_loss``), scaled by ``1 / B`` as autograd does, so both agree bit for bit
    (tested). Inputs are not checked.
    """
    b = td_error.shape[1]
    if kind == "mse":
        grad = td_error.mul(2.0 / b)
    else:
        grad = td_error.clamp(-huber_delta, huber_delta).mul_(1.0 / b)
    return _elementwise_loss(td_error, kind, huber_delta, "none").mean(dim=1), grad


# ----------------------------------------------------------------------------- the reference


def q_learning_loss_per_sample(
    q_tm1: torch.Tensor,
    a_tm1: torch.Tensor,
    r_t: torch.Tensor,
    discount_t: torch.Tensor,
    q_t: torch.Tensor,
    q_t_selector: torch.Tensor | None = None,
    *,
    kind: LossKind = "mse",
    huber_delta: float = 1.0,
) -> torch.Tensor:
    """Reference for ``td_error_loss(q_learning(...))`` (``double_q_learning`` when
    ``q_t_selector`` is given): one scalar loss per sample, summed / B.

    Written as the loop of seed 000 (index the taken action, build the scalar target under
    ``no_grad``, compare two scalars), with its mistakes fixed. Slow on purpose: the batched
    functions and their accelerators are tested against it, and ``semigrad grad`` shows its
    gradient. A target known outright is the transition ``r_t = target``, ``discount_t = 0``.
    """
    fn = "q_learning_loss_per_sample"
    double = {} if q_t_selector is None else {"q_t_selector": (q_t_selector, "BA", "float")}
    _check_q(fn, q_tm1, a_tm1, r_t, discount_t, q_t=(q_t, "BA", "float"), **double)
    _check_loss(fn, kind, huber_delta)
    loss = F.mse_loss if kind == "mse" else functools.partial(F.huber_loss, delta=huber_delta)
    batch = q_tm1.shape[0]
    total = q_tm1.new_zeros(())
    for i, a in enumerate(a_tm1.tolist()):
        prediction = q_tm1[i, a]
        with torch.no_grad():
            if q_t_selector is None:
                bootstrap = q_t[i].max()
            else:
                bootstrap = q_t[i, q_t_selector[i].argmax()]
            target = r_t[i] + discount_t[i] * bootstrap
        total = total + loss(prediction, target.to(prediction.dtype))
    return total / max(batch, 1)


# ----------------------------------------------------------------------------- K learners at once


def per_agent_q_learning_loss_and_grad(
    q_tm1: torch.Tensor,
    a_tm1: torch.Tensor,
    r_t: torch.Tensor,
    discount_t: torch.Tensor,
    q_t_value: torch.Tensor,
    q_t_selector: torch.Tensor | None = None,
    kind: LossKind = "mse",
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Accelerator: K learners' (Double) Q-learning losses and their gradient, without autograd.

    ``q_tm1``, ``q_t_value``, ``q_t_selector (K, B, A)``; ``a_tm1``, ``r_t``, ``discount_t``
    flattened ``(K * B,)`` (learner k's at rows ``k B .. k B + B - 1``; ``discount_t`` in any
    float dtype: this form takes it in ``q_tm1``'s, as ``torch.add``'s ``alpha`` did, the
    compiled one in float64). Returns ``losses
    (K,)`` (learner k's ``td_error_loss(q_learning(...))``, or ``double_q_learning`` with
    ``q_t_selector``, over its own B samples), ``mean_q (K,)`` and ``grad_q (K, B, A)`` =
    ``d sum_k losses_k / d q_tm1`` in closed form (``td_error_loss_and_grad_per_row``): every
    learner gets exactly its own gradient, at its taken actions only. Inputs are not checked
    (no host sync), so actions must lie in ``0 .. A - 1``.
    """
    k, b = q_tm1.shape[:2]
    taken = a_tm1.view(k, b)
    discount_t = discount_t.view(k, b).to(q_tm1.dtype)
    td_error = _q_learning(q_tm1, taken, r_t.view(k, b), discount_t, q_t_value, q_t_selector,
                           True)
    losses, grad = td_error_loss_and_grad_per_row(td_error, kind)
    # d / d q_tm1[a] = -(d / d td_error): the value enters the TD error with a minus sign
    grad_q = torch.zeros_like(q_tm1).scatter_(2, taken.unsqueeze(2), grad.neg_().unsqueeze(2))
    return losses, q_tm1.mean(dim=(1, 2)), grad_q


def per_agent_weighted_q_learning_loss_and_grad(
    q_tm1: torch.Tensor,
    a_tm1: torch.Tensor,
    r_t: torch.Tensor,
    discount_t: torch.Tensor,
    q_t_value: torch.Tensor,
    q_t_selector: torch.Tensor | None = None,
    kind: LossKind = "mse",
    weights: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Accelerator: ``per_agent_q_learning_loss_and_grad`` with importance weights, and the
    absolute TD errors prioritized replay needs (Schaul et al. 2016, Algorithm 1).

    ``weights (K * B,)``: each transition's importance weight (None: all 1). Learner k's loss
    is ``mean_i w_i L(delta_i)`` over its own B samples, so ``d loss_k / d q_tm1[k, i, a_i] =
    -w_i L'(delta_i) / B`` (closed form; tested against autograd of the weighted loss).
    Returns ``losses (K,)``, ``mean_q (K,)``, ``grad_q (K, B, A)`` and ``td_abs (K * B,)``
    ``|delta|``, the new priorities' errors. Inputs are not checked (no host sync).
    """
    k, b = q_tm1.shape[:2]
    taken = a_tm1.view(k, b)
    discount_t = discount_t.view(k, b).to(q_tm1.dtype)
    td_error = _q_learning(q_tm1, taken, r_t.view(k, b), discount_t, q_t_value, q_t_selector,
                           True)
    per_sample = _elementwise_loss(td_error, kind, 1.0, "none")
    grad = td_error.mul(2.0 / b) if kind == "mse" else td_error.clamp(-1.0, 1.0).mul_(1.0 / b)
    if weights is not None:
        w = weights.view(k, b).to(q_tm1.dtype)
        per_sample = per_sample * w
        grad = grad * w
    grad_q = torch.zeros_like(q_tm1).scatter_(2, taken.unsqueeze(2), grad.neg_().unsqueeze(2))
    return per_sample.mean(dim=1), q_tm1.mean(dim=(1, 2)), grad_q, td_error.abs().reshape(-1)


def per_agent_regression_loss_and_grad(
    q_tm1: torch.Tensor,
    a_tm1: torch.Tensor,
    target_tm1: torch.Tensor,
    kind: LossKind = "mse",
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Accelerator: K learners' losses of the taken actions' values against targets computed
    beforehand (lambda-returns, ``lambda_returns``), and their gradient, without autograd.

    ``q_tm1 (K, B, A)``, ``a_tm1 (K, B)`` int64, ``target_tm1 (K, B)`` (no gradient). Returns
    ``losses (K,)`` (learner k's ``td_error_loss(target_tm1[k] - q_tm1[k, a_tm1[k]])``),
    ``mean_q (K,)`` and ``grad_q (K, B, A)`` = ``d sum_k losses_k / d q_tm1`` in closed form
    (``td_error_loss_and_grad_per_row``), nonzero at the taken actions only. Inputs are not
    checked (no host sync), so actions must lie in ``0 .. A - 1``.
    """
    td_error = target_tm1 - _taken(q_tm1, a_tm1)
    losses, grad = td_error_loss_and_grad_per_row(td_error, kind)
    # d / d q_tm1[a] = -(d / d td_error): the value enters the TD error with a minus sign
    grad_q = torch.zeros_like(q_tm1).scatter_(2, a_tm1.unsqueeze(2), grad.neg_().unsqueeze(2))
    return losses, q_tm1.mean(dim=(1, 2)), grad_q


def _q_loss_kernel():
    """The compiled form of ``per_agent_q_learning_loss_and_grad`` (needs numba)."""
    import semigrad.q_loss_kernel as q_loss_kernel

    return q_loss_kernel.q_loss_and_grad


def _q_loss_loop(kernel, q_tm1, a_tm1, r_t, discount_t, q_t_value, q_t_selector=None,
                 kind="mse"):
    """``per_agent_q_learning_loss_and_grad`` by ``q_loss_kernel.q_loss_and_grad``, on the
    tensors' memory (CPU)."""
    k = q_tm1.shape[0]
    grad_q = torch.empty_like(q_tm1)  # q_tm1's strides
    losses, mean_q = torch.empty(k, dtype=q_tm1.dtype), torch.empty(k, dtype=q_tm1.dtype)
    bad = kernel(
        q_tm1.numpy(), q_t_value.numpy(),
        (q_t_value if q_t_selector is None else q_t_selector).numpy(),
        q_t_selector is not None, a_tm1.numpy(), r_t.numpy(), discount_t.numpy(),
        1.0 if kind == "huber" else 0.0, grad_q.numpy(), losses.numpy(), mean_q.numpy())
    if bad >= 0:
        raise ValueError(f"per_agent_q_learning: action {a_tm1[bad].item()} at row {bad} is "
                         f"not in 0..{q_tm1.shape[2] - 1}")
    return losses, mean_q, grad_q


def per_agent_q_learning(device: torch.device, compiled: bool | None = None
                         ) -> Callable[..., tuple[torch.Tensor, ...]]:
    """``per_agent_q_learning_loss_and_grad`` in its fastest form for ``device``: on the CPU
    one compiled loop (``semigrad.q_loss_kernel``; the same numbers to float32 rounding,
    tested), else the tensor form. ``compiled`` as in ``semigrad.compiled.load_kernel``."""
    kernel = load_kernel(_q_loss_kernel, compiled, "the compiled per-agent Q-learning loss",
                         device.type == "cpu", f"on the CPU, got {device}", stacklevel=4)
    if kernel is None:
        return per_agent_q_learning_loss_and_grad
    return lambda *args, **kw: _q_loss_loop(kernel, *args, **kw)


# ----------------------------------------------------------------------------- distributional


def _check_kappa(fn: str, kappa: object) -> None:
    if isinstance(kappa, bool) or not isinstance(kappa, (int, float)) or not kappa >= 0:
        raise ValueError(f"{fn}: `kappa` must be a float >= 0, got {kappa!r}")


def _greedy(means_t: torch.Tensor, q_t_selector: torch.Tensor | None) -> torch.Tensor:
    """The greedy actions at the next states, ``(B,)``: of ``q_t_selector`` (Double) when
    given, else of the target's own means ``means_t (B, A)`` (the first maximum)."""
    return (means_t if q_t_selector is None else q_t_selector).argmax(dim=-1)


def categorical_projection(z_t: torch.Tensor, probs_t: torch.Tensor,
                           z: torch.Tensor) -> torch.Tensor:
    """The distribution with atoms ``z_t (B, M')`` and probabilities ``probs_t (B, M')``
    projected onto the fixed, evenly spaced support ``z (M,)`` (``M >= 2``); ``(B, M)``.

    Bellemare, Dabney & Munos 2017 ("A Distributional Perspective on Reinforcement
    Learning"), Algorithm 1 and eq. 7: each atom is clipped to ``[z_0, z_{M-1}]`` and its
    probability split between the two support atoms around it in proportion to closeness,
    ``m_i = sum_j clamp(1 - |clip(z_t[j]) - z_i| / dz, 0, 1) probs_t[j]`` with ``dz = z_1 -
    z_0``. (Algorithm 1 as printed drops an atom that lands exactly on a support atom, where
    floor and ceil agree; this form keeps it whole there.) Differentiable in ``probs_t``.
    """
    _check("categorical_projection", z_t=(z_t, "BN", "float"), probs_t=(probs_t, "BN", "float"),
           z=(z, "M", "float"))
    return _project(z_t, probs_t, z)


def _project(z_t, probs_t, z):
    # each clipped atom at fractional position b = (atom - z_0) / dz in the support gives
    # probs_t (1 - frac) to atom floor(b) and probs_t frac to the next one: the closeness form
    # above in O(B M') instead of O(B M M') (the two support atoms around it are the only ones
    # within dz)
    m = z.shape[0]
    v_min, v_max = z[0], z[-1]
    atoms = torch.minimum(torch.maximum(z_t, v_min), v_max)  # (B, M')
    # the ends exactly: an atom clipped to v_max is at m - 1, not a rounding below it
    b = ((atoms - v_min) / (v_max - v_min) * (m - 1)).clamp_(0, m - 1)
    low = b.floor().clamp_(max=m - 2)
    frac = b - low
    low = low.long()
    out = torch.zeros(*probs_t.shape[:-1], m, dtype=torch.promote_types(probs_t.dtype, b.dtype),
                      device=probs_t.device)
    out = out.scatter_add(-1, low, probs_t * (1 - frac))
    return out.scatter_add(-1, low + 1, probs_t * frac)


def _project_dense(z_t, probs_t, z):
    """``categorical_projection`` as its formula reads (O(B M M')), for tests."""
    v_min, v_max, dz = z[0], z[-1], z[1] - z[0]
    atoms = torch.minimum(torch.maximum(z_t, v_min), v_max)  # (B, M')
    closeness = (1 - (atoms.unsqueeze(-2) - z.unsqueeze(-1)).abs() / dz).clamp_(min=0)  # (B,M,M')
    return (closeness * probs_t.unsqueeze(-2)).sum(dim=-1)


def categorical_q_learning(
    logits_tm1: torch.Tensor,
    a_tm1: torch.Tensor,
    r_t: torch.Tensor,
    discount_t: torch.Tensor,
    logits_t: torch.Tensor,
    z: torch.Tensor,
    q_t_selector: torch.Tensor | None = None,
    stop_target_gradients: bool = True,
) -> torch.Tensor:
    """C51's loss (Bellemare, Dabney & Munos 2017, Algorithm 1): the cross-entropy between the
    projected target distribution and the taken action's; ``(B,)`` (average it for the
    minibatch's loss).

    ``logits_tm1``, ``logits_t (B, A, M)``: logits of each action's distribution over the
    fixed, evenly spaced support ``z (M,)`` (the learned network's at ``S_{t-1}``, the target
    network's at ``S_t``); ``a_tm1 (B,)``, ``r_t``, ``discount_t (B,)`` as in ``q_learning``
    (termination folded in: a terminated transition's target collapses onto ``r_t``, a
    truncated one bootstraps). The next action ``a*`` maximises the means ``sum_i p_i z_i``
    of ``logits_t``, or ``q_t_selector (B, A)`` when given (Double: the online network's
    means, as in Rainbow, Hessel et al. 2018). The target, the projection of atoms ``r_t +
    discount_t z`` with probabilities ``softmax(logits_t[a*])`` (``categorical_projection``),
    carries no gradient; the loss ``-sum_i m_i log softmax(logits_tm1[a_tm1])_i`` reaches only
    the taken action's logits.
    """
    fn = "categorical_q_learning"
    selector = {} if q_t_selector is None else {"q_t_selector": (q_t_selector, "BA", "float")}
    _check(fn, logits_tm1=(logits_tm1, "BAM", "float"), a_tm1=(a_tm1, "B", "action"),
           r_t=(r_t, "B", "float"), discount_t=(discount_t, "B", "float"),
           logits_t=(logits_t, "BAM", "float"), z=(z, "M", "float"), **selector)
    with torch.set_grad_enabled(torch.is_grad_enabled() and not stop_target_gradients):
        probs_t = torch.softmax(logits_t, dim=-1)
        a_t = _greedy((probs_t * z).sum(dim=-1), q_t_selector)
        p_t = probs_t.gather(1, a_t.view(-1, 1, 1).expand(-1, 1, z.shape[0])).squeeze(1)
        z_t = torch.addcmul(r_t.unsqueeze(1), discount_t.unsqueeze(1), z.unsqueeze(0))
        target = _project(z_t, p_t, z)
    log_p = torch.log_softmax(_taken_dist(logits_tm1, a_tm1), dim=-1)
    return -(target * log_p).sum(dim=-1)


def _taken_dist(x: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """``x[i, a[i], :]``: ``x (B, A, M)``, ``a (B,)`` -> ``(B, M)``, via ``gather``."""
    return x.gather(1, a.view(-1, 1, 1).expand(-1, 1, x.shape[2])).squeeze(1)


def quantile_midpoints(num_quantiles: int, device: torch.device | str | None = None,
                       dtype: torch.dtype | None = None) -> torch.Tensor:
    """``tau_hat_i = (2 i + 1) / (2 M)``, ``(M,)``: the quantile levels QR-DQN's M outputs
    estimate (Dabney et al. 2018, Lemma 2: the midpoints of ``[i/M, (i+1)/M]``)."""
    return (2 * torch.arange(num_quantiles, device=device, dtype=dtype or torch.get_default_dtype())
            + 1) / (2 * num_quantiles)


def quantile_q_learning(
    quantiles_tm1: torch.Tensor,
    a_tm1: torch.Tensor,
    r_t: torch.Tensor,
    discount_t: torch.Tensor,
    quantiles_t: torch.Tensor,
    q_t_selector: torch.Tensor | None = None,
    kappa: float = 1.0,
    stop_target_gradients: bool = True,
) -> torch.Tensor:
    """QR-DQN's loss (Dabney, Rowland, Bellemare & Munos 2018, "Distributional Reinforcement
    Learning with Quantile Regression", eq. 10 and Algorithm 1): the quantile Huber loss of
    the taken action's quantiles against the target's; ``(B,)``.

    ``quantiles_tm1``, ``quantiles_t (B, A, M)``: each action's M quantile values at levels
    ``tau_hat_i = (2i + 1) / 2M`` (``quantile_midpoints``), the learned network's at ``S_{t-1}``
    and the target network's at ``S_t``; ``a_tm1``, ``r_t``, ``discount_t (B,)`` as in
    ``q_learning`` (a terminated transition's target is ``r_t`` at every quantile). ``a*``
    maximises the means of ``quantiles_t`` (or ``q_t_selector (B, A)``: Double). With
    targets ``T_j = r_t + discount_t theta_j(S_t, a*)`` (no gradient) and ``u_ij = T_j -
    theta_i(S_{t-1}, a_tm1)``, the loss is ``sum_i mean_j |tau_hat_i - 1{u_ij < 0}|
    L_kappa(u_ij)``, ``L_kappa`` Huber's loss with threshold ``kappa`` (``0.5 u^2`` within
    kappa, ``kappa (|u| - 0.5 kappa)`` beyond); ``kappa = 0`` is the plain quantile loss
    ``|u| |tau_hat - 1{u < 0}|`` (the paper's QR-DQN-0; it used kappa = 1).
    """
    u, weight = _quantile_errors("quantile_q_learning", quantiles_tm1, a_tm1, r_t, discount_t,
                                 quantiles_t, q_t_selector, kappa, stop_target_gradients)
    if kappa == 0:
        loss = u.abs()
    else:
        loss = F.huber_loss(u, _zeros(u.shape, u.dtype, u.device), reduction="none", delta=kappa)
    return (weight * loss).mean(dim=2).sum(dim=1)


def quantile_q_learning_and_grad(
    quantiles_tm1: torch.Tensor,
    a_tm1: torch.Tensor,
    r_t: torch.Tensor,
    discount_t: torch.Tensor,
    quantiles_t: torch.Tensor,
    q_t_selector: torch.Tensor | None = None,
    kappa: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``quantile_q_learning``'s loss ``(B,)`` and its gradient with respect to
    ``quantiles_tm1``, ``(B, A, M)``, in closed form (no autograd tape; the target carries no
    gradient). Sample b's loss depends on its taken action's quantiles only, where
    ``d loss_b / d theta_i = -mean_j |tau_hat_i - 1{u_ij < 0}| psi(u_ij)``, ``psi`` the
    derivative of Huber's loss, ``clamp(u, -kappa, kappa)`` (``sign(u)`` for ``kappa = 0``);
    the weight's jump at ``u = 0`` has no derivative (as autograd takes it)."""
    u, weight = _quantile_errors("quantile_q_learning_and_grad", quantiles_tm1, a_tm1, r_t,
                                 discount_t, quantiles_t, q_t_selector, kappa, True)
    # Huber's loss is psi(u) (u - psi(u) / 2) (0.5 u^2 within kappa, kappa (|u| - kappa / 2)
    # beyond), |u| = psi(u) u for kappa = 0: one (B, M, N) product serves loss and gradient
    slope = u.sign() if kappa == 0 else u.clamp(-kappa, kappa)
    weighted = weight.mul_(slope)  # |tau_hat_i - 1{u_ij < 0}| psi(u_ij)
    if kappa != 0:
        u = slope.mul_(-0.5).add_(u)
    n = u.shape[2]
    loss = torch.linalg.vecdot(weighted.flatten(1), u.flatten(1)).div_(n)
    grad = torch.zeros_like(quantiles_tm1)
    grad.scatter_(1, a_tm1.view(-1, 1, 1).expand(-1, 1, grad.shape[2]),
                  weighted.sum(dim=2).div_(-n).unsqueeze(1))
    return loss, grad


def _quantile_errors(fn, quantiles_tm1, a_tm1, r_t, discount_t, quantiles_t, q_t_selector,
                     kappa, stop_target_gradients) -> tuple[torch.Tensor, torch.Tensor]:
    """``u_ij = T_j - theta_i`` ``(B, M, N)`` and the quantile weights ``|tau_hat_i - 1{u_ij <
    0}|`` of ``quantile_q_learning``, after checking its arguments (errors name ``fn``)."""
    selector = {} if q_t_selector is None else {"q_t_selector": (q_t_selector, "BA", "float")}
    _check(fn, quantiles_tm1=(quantiles_tm1, "BAM", "float"), a_tm1=(a_tm1, "B", "action"),
           r_t=(r_t, "B", "float"), discount_t=(discount_t, "B", "float"),
           quantiles_t=(quantiles_t, "BAN", "float"), **selector)
    _check_kappa(fn, kappa)
    with torch.set_grad_enabled(torch.is_grad_enabled() and not stop_target_gradients):
        a_t = _greedy(quantiles_t.mean(dim=-1), q_t_selector)
        target = torch.addcmul(r_t.unsqueeze(1), discount_t.unsqueeze(1),
                               _taken_dist(quantiles_t, a_t))  # (B, N)
    theta = _taken_dist(quantiles_tm1, a_tm1)  # (B, M)
    u = target.unsqueeze(1) - theta.unsqueeze(2)  # (B, M, N): u_ij = T_j - theta_i
    tau = quantile_midpoints(theta.shape[1], theta.device, theta.dtype).view(1, -1, 1)
    return u, (tau - (u < 0).to(u.dtype)).abs()
