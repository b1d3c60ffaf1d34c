"""Learning curves: greedy evaluation return (and training episode return) over env steps."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib.pyplot as plt

from semigrad.run import atomic_savefig


def learning_curves(
    runs: Mapping[str, Sequence[Mapping[str, float | None]]],
    path: str | Path,
    threshold: float | None = None,
    title: str = "",
) -> Path:
    """One figure of several runs' ``metrics.csv`` rows (``{label: rows}``); save to ``path``.

    Solid lines with markers: mean greedy evaluation return. Faint lines: mean return of the
    training episodes (under exploration) between rows. A dashed line marks the env's
    reward threshold when known.
    """
    fig, ax = plt.subplots(figsize=(8, 4.5))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (label, rows) in enumerate(runs.items()):
        color = colors[i % len(colors)]
        train = [(r["step"], r["episode_return"]) for r in rows
                 if r.get("episode_return") is not None]
        evals = [(r["step"], r["eval_return"]) for r in rows if r.get("eval_return") is not None]
        if train:
            ax.plot(*zip(*train, strict=True), color=color, alpha=0.25, linewidth=1)
        if evals:
            ax.plot(*zip(*evals, strict=True), color=color, marker="o", markersize=3,
                    linewidth=1.8, label=label)
    if threshold is not None:
        ax.axhline(threshold, color="black", linestyle="--", linewidth=1,
                   label=f"solved ({threshold:g})")
    ax.set_xlabel("environment steps")
    ax.set_ylabel("return")
    ax.set_title(title or "greedy evaluation (solid) and training episodes (faint)")
    ax.grid(alpha=0.3)
    if len(runs) <= 12:
        ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    out = atomic_savefig(fig, path, dpi=120)
    plt.close(fig)
    return out
