"""Aggregate statistics over runs, following Agarwal et al. (2021), "Deep Reinforcement Learning at
the Edge of the Statistical Precipice" (NeurIPS): interquartile mean (IQM), median, 95% stratified
bootstrap confidence intervals (percentile method) and performance profiles.

Scores are grouped by task: ``scores`` is a sequence of 1-D arrays, one per task (stratum), each
holding one score per run (seed); a single 1-D array is one task. A statistic sees all runs of
all tasks pooled, as in ``rliable``. The stratified bootstrap resamples runs with replacement
*within* each task, so every resample keeps each task's number of runs.

Scores may be ``+inf`` (e.g. the time to solve of a run that never solved): order statistics
(median, IQM, quantiles) stay exact as long as the infinite values fall in the trimmed part, and
are ``inf`` otherwise. ``nan`` is refused.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

Statistic = Callable[[np.ndarray], np.ndarray]


def _as_tasks(scores: np.ndarray | Sequence[float] | Sequence[np.ndarray]) -> list[np.ndarray]:
    """``scores`` as a list of non-empty 1-D float arrays, one per task."""
    if isinstance(scores, np.ndarray) and scores.ndim == 1 or (
        len(scores) > 0 and np.ndim(scores[0]) == 0
    ):
        tasks = [np.asarray(scores, dtype=float)]
    else:
        tasks = [np.asarray(t, dtype=float).reshape(-1) for t in scores]
    if not tasks or any(t.size == 0 for t in tasks):
        raise ValueError("scores: every task needs at least one run")
    if any(np.isnan(t).any() for t in tasks):
        raise ValueError("scores: nan is not a score (use +inf for 'never', or drop the run)")
    return tasks


def quantile(x: np.ndarray, q: float | np.ndarray, axis: int = -1) -> np.ndarray:
    """Linear-interpolation quantile (numpy's default, Hyndman & Fan type 7) that accepts ``inf``.

    With sorted values ``x_(0) <= ... <= x_(n-1)`` and ``h = (n - 1) q``: ``x_(floor h) + (h -
    floor h) (x_(ceil h) - x_(floor h))``; where both neighbours are equal (or ``h`` is whole) the
    neighbour itself, so ``inf`` never meets ``inf - inf``. ``q`` scalar or 1-D; the result has
    ``q``'s shape in place of ``axis``, first.
    """
    xs = np.sort(np.moveaxis(np.asarray(x, dtype=float), axis, -1), axis=-1)
    qs = np.asarray(q, dtype=float)
    if np.any((qs < 0) | (qs > 1)):
        raise ValueError(f"quantile: q must be in [0, 1], got {q!r}")
    n = xs.shape[-1]
    h = (n - 1) * qs
    lo = np.floor(h).astype(int)
    hi = np.minimum(lo + 1, n - 1)
    frac = h - lo
    x_lo = np.moveaxis(xs[..., lo], -1, 0) if qs.ndim else xs[..., lo]
    x_hi = np.moveaxis(xs[..., hi], -1, 0) if qs.ndim else xs[..., hi]
    if qs.ndim:
        frac = frac.reshape(frac.shape + (1,) * (x_lo.ndim - 1))
    with np.errstate(invalid="ignore"):
        mixed = x_lo + frac * (x_hi - x_lo)
    return np.where((frac == 0) | (x_lo == x_hi), x_lo, mixed)


def iqm(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """Interquartile mean: sort the ``n`` values, drop ``floor(n / 4)`` at each end, average the
    rest (``scipy.stats.trim_mean(x, 0.25)``, as ``rliable`` computes it). For ``n < 4`` nothing
    is dropped: the IQM is the mean."""
    xs = np.sort(np.moveaxis(np.asarray(x, dtype=float), axis, -1), axis=-1)
    n = xs.shape[-1]
    k = n // 4
    return xs[..., k:n - k].mean(axis=-1)


def median(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """The median (the 0.5 quantile; the mean of the two middle values for even ``n``)."""
    return quantile(x, 0.5, axis=axis)


def stratified_bootstrap(
    scores: np.ndarray | Sequence[float] | Sequence[np.ndarray],
    statistic: Statistic,
    reps: int = 2000,
    seed: int = 0,
) -> np.ndarray:
    """``(reps,)`` values of ``statistic`` on stratified bootstrap resamples of ``scores``.

    Each resample draws, for every task ``j`` with ``n_j`` runs, ``n_j`` runs of that task
    uniformly with replacement, pools them (``sum_j n_j`` values) and applies ``statistic``
    (a function of a ``(reps, N)`` array along its last axis).
    """
    tasks = _as_tasks(scores)
    if reps < 1:
        raise ValueError(f"reps: expected >= 1, got {reps}")
    rng = np.random.default_rng(seed)
    parts = [t[rng.integers(0, t.size, size=(reps, t.size))] for t in tasks]
    return statistic(np.concatenate(parts, axis=1))


def percentile_interval(boot: np.ndarray, confidence: float = 0.95) -> tuple[float, float]:
    """The ``(1 - confidence) / 2`` and ``(1 + confidence) / 2`` quantiles of ``boot``."""
    if not 0 < confidence < 1:
        raise ValueError(f"confidence: expected a value in (0, 1), got {confidence}")
    alpha = (1 - confidence) / 2
    low, high = quantile(np.asarray(boot, dtype=float), np.array([alpha, 1 - alpha]))
    return float(low), float(high)


def interval_estimate(
    scores: np.ndarray | Sequence[float] | Sequence[np.ndarray],
    statistic: Statistic,
    reps: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float, float]:
    """``(point, low, high)``: ``statistic`` of the pooled scores and its stratified bootstrap
    percentile interval."""
    tasks = _as_tasks(scores)
    point = float(statistic(np.concatenate(tasks)[None, :])[0])
    low, high = percentile_interval(stratified_bootstrap(tasks, statistic, reps, seed), confidence)
    return point, low, high


def performance_profile(
    scores: np.ndarray | Sequence[float] | Sequence[np.ndarray], taus: np.ndarray
) -> np.ndarray:
    """``(len(taus),)``: for each threshold tau, the fraction of runs with score ``> tau``,
    averaged over tasks (each task weighs the same whatever its number of runs)."""
    tasks = _as_tasks(scores)
    taus = np.asarray(taus, dtype=float)
    return np.mean([(t[None, :] > taus[:, None]).mean(axis=1) for t in tasks], axis=0)


def performance_profile_ci(
    scores: np.ndarray | Sequence[float] | Sequence[np.ndarray],
    taus: np.ndarray,
    reps: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(profile, low, high)``, each ``(len(taus),)``: the profile and pointwise stratified
    bootstrap percentile bands."""
    tasks = _as_tasks(scores)
    taus = np.asarray(taus, dtype=float)
    rng = np.random.default_rng(seed)
    boot = np.zeros((reps, taus.size))
    for t in tasks:  # (reps, n_j) resamples -> (reps, taus) fractions, averaged over tasks
        sample = t[rng.integers(0, t.size, size=(reps, t.size))]
        boot += (sample[:, :, None] > taus[None, None, :]).mean(axis=1) / len(tasks)
    alpha = (1 - confidence) / 2
    low, high = quantile(boot, np.array([alpha, 1 - alpha]), axis=0)
    return performance_profile(tasks, taus), low, high
