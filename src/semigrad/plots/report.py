"""Figures of `semigrad report`: IQM learning curves with bootstrap bands and performance
profiles, one panel per environment (returns of different environments share no scale)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import PercentFormatter

from semigrad.run import atomic_savefig

CI_TEXT = "95% stratified bootstrap CI"
RETURN = "greedy evaluation return"
LEGEND_MAX = 12  # more settings than this in one panel: no legend (the table names them)


def _threshold(ax: Any, threshold: float | None) -> None:
    if threshold is not None:
        ax.axhline(threshold, color="black", linestyle="--", linewidth=1,
                   label=f"solved ({threshold:g})")


def _fit(label: str, width: int) -> str:
    """``label`` cut to ``width`` characters, ending in "..." when cut: a setting that differs in
    many fields would push the figure's layout apart (the report's table keeps it whole)."""
    return label if len(label) <= width else label[:width - 3] + "..."


def _save(fig: Any, path: str | Path) -> Path:
    if fig.get_layout_engine() is None:  # the panel grids lay out with their suptitle
        fig.tight_layout()
    out = atomic_savefig(fig, path, dpi=120)
    plt.close(fig)
    return out


def _grid(n: int, width: float, height: float, columns: int = 3) -> tuple[Any, list[Any]]:
    """A figure of ``n`` panels, at most ``columns`` a row; unused panels hidden."""
    cols = min(n, columns)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False,
                             layout="constrained")
    flat = list(axes.flat)
    for ax in flat[n:]:
        ax.set_visible(False)
    return fig, flat[:n]


def setting_curve(label: str, curve: Mapping[str, np.ndarray], path: str | Path,
                  threshold: float | None = None, ci_text: str = CI_TEXT,
                  ylabel: str = RETURN, percent: bool = False) -> Path:
    """One setting: each seed's curve (thin), their IQM (bold) and its CI band.

    ``curve``: ``steps (T,)``, ``iqm``/``low``/``high (T,)``, ``runs (n, T)``; ``percent``:
    values are fractions, shown as percentages.
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
    if percent:
        ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set_xlabel("environment steps")
    ax.set_ylabel(ylabel)
    ax.set_title(_fit(label, 95), fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    return _save(fig, path)


def compare_curves(panels: Mapping[str, Mapping[str, Mapping[str, np.ndarray]]],
                   path: str | Path, thresholds: Mapping[str, float] | None = None,
                   ci_text: str = CI_TEXT, ylabel: str = RETURN, percent: bool = False,
                   title: str = "learning curves: IQM over seeds") -> Path:
    """One panel per environment (``panels``: env -> label -> curve): every setting's IQM
    curve with its CI band, legend in the given order (best first)."""
    fig, axes = _grid(len(panels), 5.6, 3.9)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, (env, curves) in zip(axes, panels.items(), strict=True):
        for i, (label, c) in enumerate(curves.items()):
            color = colors[i % len(colors)]
            ax.fill_between(c["steps"], c["low"], c["high"], color=color, alpha=0.18)
            ax.plot(c["steps"], c["iqm"], color=color, linewidth=1.8, label=_fit(label, 45))
        _threshold(ax, (thresholds or {}).get(env))
        if percent:
            ax.yaxis.set_major_formatter(PercentFormatter(1.0))
        ax.set_title(env, fontsize=10)
        ax.set_xlabel("environment steps")
        ax.set_ylabel(ylabel, fontsize=9)
        ax.grid(alpha=0.3)
        if len(curves) <= LEGEND_MAX:
            ax.legend(loc="best", fontsize=7)
    fig.suptitle(f"{title}, bands = {ci_text}", fontsize=10)
    return _save(fig, path)


def performance_profiles(profiles: Mapping[str, Mapping[str, Any]], path: str | Path,
                         thresholds: Mapping[str, float] | None = None,
                         ci_text: str = CI_TEXT, no_times: str = "") -> Path:
    """A row per environment (``profiles``: env -> profile, from
    ``semigrad.report.profiles``, its settings best first). Left: fraction of runs with final
    score > tau. Right: fraction solved within t seconds; ``no_times``: what the right panel
    says when no setting of the environment measured a time to solve."""
    rows = len(profiles)
    fig, axes = plt.subplots(rows, 2, figsize=(11, 3.9 * rows), squeeze=False,
                             layout="constrained")
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for (ax1, ax2), (env, prof) in zip(axes, profiles.items(), strict=True):
        labels = list(prof["score"])
        for i, label in enumerate(labels):
            color = colors[i % len(colors)]
            for ax, x, key in ((ax1, prof["taus"], "score"), (ax2, prof["ts"], "solved")):
                if label not in prof[key]:
                    continue
                frac, low, high = prof[key][label]
                ax.fill_between(x, low, high, color=color, alpha=0.15, step="post")
                ax.step(x, frac, where="post", color=color, linewidth=1.6,
                        label=_fit(label, 45))
        threshold = (thresholds or {}).get(env)
        if threshold is not None:
            ax1.axvline(threshold, color="black", linestyle="--", linewidth=1,
                        label=f"solved ({threshold:g})")
        ax1.set_xlabel(r"final score $\tau$ (greedy evaluation return)")
        ax1.set_ylabel(r"fraction of runs with score > $\tau$")
        ax1.set_title(f"{env}: performance profile", fontsize=10)
        if not prof["solved"]:
            ax2.text(0.5, 0.5, no_times or "no time to solve measured", transform=ax2.transAxes,
                     ha="center", va="center", color="dimgray", wrap=True)
        elif not any(np.any(p[0] > 0) for p in prof["solved"].values()):
            ax2.text(0.5, 0.5, "no run reached the reward threshold", transform=ax2.transAxes,
                     ha="center", va="center", color="dimgray")
        ax2.set_xlabel("training seconds t")
        ax2.set_ylabel("fraction of runs solved within t")
        ax2.set_title(f"{env}: time to solve (unsolved runs never count)", fontsize=10)
        for ax in (ax1, ax2):
            ax.set_ylim(-0.02, 1.02)
            ax.grid(alpha=0.3)
        if len(labels) <= LEGEND_MAX:
            ax1.legend(loc="lower left", fontsize=7)
    fig.suptitle(f"performance profiles (Agarwal et al., 2021), bands: {ci_text}", fontsize=9)
    return _save(fig, path)
