"""Figures of `semigrad report`: IQM learning curves with bootstrap bands, performance profiles."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np

from semigrad.run import atomic_savefig

CI_TEXT = "95% stratified bootstrap CI"


def _threshold(ax: Any, threshold: float | None) -> None:
    if threshold is not None:
        ax.axhline(threshold, color="black", linestyle="--", linewidth=1,
                   label=f"solved ({threshold:g})")


def _fit(label: str, width: int) -> str:
    """``label`` cut to ``width`` characters, ending in "..." when cut: a setting that differs in
    many fields would push the figure's layout apart (the report's table keeps it whole)."""
    return label if len(label) <= width else label[:width - 3] + "..."


def _save(fig: Any, path: str | Path) -> Path:
    fig.tight_layout()
    out = atomic_savefig(fig, path, dpi=120)
    plt.close(fig)
    return out


def setting_curve(label: str, curve: Mapping[str, np.ndarray], path: str | Path,
                  threshold: float | None = None, ci_text: str = CI_TEXT) -> Path:
    """One setting: each seed's evaluation return (thin), their IQM (bold) and its CI band.

    ``curve``: ``steps (T,)``, ``iqm``/``low``/``high (T,)``, ``runs (n, T)``.
    """
    fig, ax = plt.subplots(figsize=(7, 4))
    steps = curve["steps"]
    for i, row in enumerate(curve["runs"]):
        ax.plot(steps, row, color="tab:gray", alpha=0.45, linewidth=0.9,
                label="single seeds" if i == 0 else None)
    ax.fill_between(steps, curve["low"], curve["high"], color="tab:blue", alpha=0.25,
                    label=ci_text)
    ax.plot(steps, curve["iqm"], color="tab:blue", linewidth=2.2, marker="o", markersize=3,
            label=f"IQM of {len(curve['runs'])} seeds")
    _threshold(ax, threshold)
    ax.set_xlabel("environment steps")
    ax.set_ylabel("greedy evaluation return")
    ax.set_title(_fit(label, 95), fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    return _save(fig, path)


def compare_curves(curves: Mapping[str, Mapping[str, np.ndarray]], path: str | Path,
                   threshold: float | None = None, ci_text: str = CI_TEXT) -> Path:
    """Every setting's IQM learning curve with its CI band, in one figure (legend: best first)."""
    fig, ax = plt.subplots(figsize=(8, 4.5))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (label, c) in enumerate(curves.items()):
        color = colors[i % len(colors)]
        ax.fill_between(c["steps"], c["low"], c["high"], color=color, alpha=0.18)
        ax.plot(c["steps"], c["iqm"], color=color, linewidth=1.8, label=_fit(label, 70))
    _threshold(ax, threshold)
    ax.set_xlabel("environment steps")
    ax.set_ylabel("greedy evaluation return (IQM over seeds)")
    ax.set_title(f"learning curves: IQM over seeds, bands = {ci_text}", fontsize=10)
    ax.grid(alpha=0.3)
    if len(curves) <= 12:
        ax.legend(loc="best", fontsize=7)
    return _save(fig, path)


def performance_profiles(prof: Mapping[str, Any], order: Sequence[str], path: str | Path,
                         threshold: float | None = None, ci_text: str = CI_TEXT) -> Path:
    """Left: fraction of runs with final score > tau. Right: fraction solved within t seconds.

    ``prof``: ``taus``, ``ts`` and, per label, ``(fraction, low, high)`` arrays under ``score``
    and ``solved`` (from ``semigrad.report.profiles``).
    """
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, label in enumerate(order):
        if label not in prof["score"]:
            continue
        color = colors[i % len(colors)]
        for ax, x, key in ((ax1, prof["taus"], "score"), (ax2, prof["ts"], "solved")):
            frac, low, high = prof[key][label]
            ax.fill_between(x, low, high, color=color, alpha=0.15, step="post")
            ax.step(x, frac, where="post", color=color, linewidth=1.6,
                    label=_fit(label, 60))
    if threshold is not None:
        ax1.axvline(threshold, color="black", linestyle="--", linewidth=1,
                    label=f"solved ({threshold:g})")
    ax1.set_xlabel(r"final score $\tau$ (greedy evaluation return)")
    ax1.set_ylabel(r"fraction of runs with score > $\tau$")
    ax1.set_title("performance profile (Agarwal et al., 2021)", fontsize=10)
    if not any(np.any(prof["solved"][label][0] > 0) for label in prof["solved"]):
        ax2.text(0.5, 0.5, "no run reached the reward threshold", transform=ax2.transAxes,
                 ha="center", va="center", color="dimgray")
    ax2.set_xlabel("training seconds t")
    ax2.set_ylabel("fraction of runs solved within t")
    ax2.set_title("time to solve (unsolved runs never count)", fontsize=10)
    for ax in (ax1, ax2):
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
    if len(order) <= 12:
        ax1.legend(loc="lower left", fontsize=7)
    fig.suptitle(f"bands: {ci_text}", fontsize=9)
    return _save(fig, path)
