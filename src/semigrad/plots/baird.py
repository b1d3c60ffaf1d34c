"""Baird's counterexample in the style of Sutton & Barto's Figures 11.2, 11.5 and 11.6.

Each panel draws the eight weights over steps (sampled) or sweeps (expected), labelled at the
line ends as in the book, and sqrt(VE) / sqrt(PBE) where the book shows them (TDC and GTD2:
both; emphatic TD: sqrt(VE); semi-gradient TD: neither). Overflow never breaks a figure: values
beyond ``CLIP`` (and infinities) are drawn at +-``CLIP``, NaN is left out, and the panel says
where the weights overflowed. A panel whose values exceed ``LOG_ABOVE`` in size (a divergence,
often with oscillating signs) shows magnitudes ``|value|`` on a log scale instead, and says so.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from semigrad.run import atomic_savefig

CLIP = 1e200
LOG_ABOVE = 1e4
WEIGHT_COLOR = {"w1-w6": "#4c72b0", "w7": "#dd8452", "w8": "#55a868"}
ERROR_COLOR = {"sqrt(VE)": "#c44e52", "sqrt(PBE)": "#8172b3"}
# Which error curves the book draws for each method.
BOOK_ERRORS = {"semi-gradient": (), "tdc": ("sqrt(VE)", "sqrt(PBE)"),
               "gtd2": ("sqrt(VE)", "sqrt(PBE)"), "etd": ("sqrt(VE)",)}


def _clipped(values: np.ndarray) -> tuple[np.ndarray, bool]:
    """``values`` with +-inf and ``|v| > CLIP`` set to +-CLIP; whether anything was clipped."""
    out = np.array(values, dtype=np.float64, copy=True)
    over = np.isinf(out) | (np.abs(np.nan_to_num(out)) > CLIP)
    out[over] = np.sign(out[over]) * CLIP
    return out, bool(over.any())


def _spread_labels(ends: list[float], height: float) -> list[float]:
    """Nudge line-end label positions apart by at least ``height`` (keeps their order)."""
    order = np.argsort(ends)
    placed = np.array(ends, dtype=np.float64)
    for prev, cur in zip(order[:-1], order[1:], strict=True):
        placed[cur] = max(placed[cur], placed[prev] + height)
    return placed.tolist()


def weights_panel(ax, steps: np.ndarray, weights: np.ndarray, errors: dict[str, np.ndarray],
                  title: str, xlabel: str, overflow_step: int | None = None) -> None:
    """One book-style panel: ``weights (T+1, 8)``, ``errors`` name -> ``(T+1,)``, over ``steps``."""
    series = []
    for i in range(6):
        series.append(("w1-w6" if i == 0 else None, weights[:, i], WEIGHT_COLOR["w1-w6"], "-"))
    series.append(("w7", weights[:, 6], WEIGHT_COLOR["w7"], "-"))
    series.append(("w8", weights[:, 7], WEIGHT_COLOR["w8"], "-"))
    for name, values in errors.items():
        series.append((name, values, ERROR_COLOR[name], "--"))

    clipped = [_clipped(values) for _, values, _, _ in series]
    clipped_any = any(c for _, c in clipped)
    finite_max = max((float(np.abs(y[np.isfinite(y) & (np.abs(y) < CLIP)]).max(initial=0.0))
                      for y, _ in clipped), default=0.0)
    magnitudes = finite_max > LOG_ABOVE or clipped_any
    ends, labelled = [], []
    for (label, _, color, style), (y, _) in zip(series, clipped, strict=True):
        if magnitudes:
            y = np.abs(y)
        ax.plot(steps, y, color=color, linestyle=style, linewidth=1.6 if label else 1.0,
                alpha=1.0 if label or style == "--" else 0.55)
        good = np.flatnonzero(np.isfinite(y))
        if label and good.size:
            ends.append(float(y[good[-1]]))
            labelled.append((label, color))
    if magnitudes:
        ax.set_yscale("log")
        ax.set_ylabel("|value| (log scale)")
        positive = np.concatenate([np.abs(y)[(np.abs(y) > 0) & np.isfinite(y)] for y, _ in clipped])
        low, high = np.log10(positive.min()) - 1, np.log10(positive.max()) + 1
        ax.set_ylim(10.0**low, 10.0**high)
        logs = _spread_labels(np.log10(np.maximum(ends, 1e-300)).tolist(), 0.045 * (high - low))
        ends = [10.0**y for y in logs]
    else:
        low, high = ax.get_ylim()
        ends = _spread_labels(ends, 0.045 * (high - low))
    for (label, color), y in zip(labelled, ends, strict=True):
        ax.annotate(label, (steps[-1], y), xytext=(4, 0), textcoords="offset points",
                    va="center", color=color, fontsize=9, annotation_clip=False)
    ax.axhline(0.0, color="0.75", linewidth=0.8, zorder=0)
    ax.set_xlim(steps[0], steps[-1])
    ax.set_xlabel(xlabel)
    ax.set_title(title, fontsize=10)
    ax.spines[["top", "right"]].set_visible(False)
    if overflow_step is not None:
        ax.axvline(overflow_step, color="#c44e52", linestyle=":", linewidth=1.2)
    if overflow_step is not None or clipped_any:
        where = f"weights overflowed at step {overflow_step}; " if overflow_step else ""
        ax.text(0.98, 0.02, f"{where}\nvalues beyond ±{CLIP:.0e} clipped",
                transform=ax.transAxes, ha="right", va="bottom", fontsize=8, color="#c44e52",
                bbox={"facecolor": "white", "edgecolor": "#c44e52", "alpha": 0.85})


def draw_panels(panels: Sequence[dict], path: str | Path, suptitle: str = "",
                groups: Sequence[tuple[str, int]] = ()) -> Path:
    """Draw ``panels`` (kwargs of ``weights_panel``) side by side and save to ``path``.

    ``groups``: ``(caption, number of panels)`` pairs, written above consecutive panels
    (e.g. the book's figure numbers).
    """
    n = len(panels)
    fig, axes = plt.subplots(1, n, figsize=(4.6 * n, 4.4), squeeze=False)
    for ax, panel in zip(axes[0], panels, strict=True):
        weights_panel(ax, **panel)
    fig.tight_layout(rect=(0, 0, 0.985, 0.88 if groups else 0.93), w_pad=3.0)
    start = 0
    for caption, count in groups:
        left = axes[0, start].get_position().x0
        right = axes[0, start + count - 1].get_position().x1
        fig.text((left + right) / 2, 0.95, caption, ha="center", fontsize=12, fontweight="bold")
        fig.add_artist(plt.Line2D([left, right], [0.925, 0.925], color="0.6", linewidth=1))
        start += count
    if suptitle:
        fig.suptitle(suptitle, fontsize=12, y=1.0 if not groups else 1.05)
    out = atomic_savefig(fig, path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return out


STABILITY_TOP = 1e15
STABILITY_COLORS = ("#c44e52", "#8172b3", "#937860", "#8c8c8c", "#4c72b0", "#55a868", "#dd8452")


def _finite_rows(y: np.ndarray) -> np.ndarray:
    """``y (T+1, N)`` with every row that has a non-finite or clipped entry set to NaN."""
    y = np.asarray(y, dtype=np.float64)
    ok = (np.isfinite(y) & (np.abs(y) < CLIP)).all(1)
    return np.where(ok[:, None], y, np.nan)


def stability_figure(curves: Sequence[dict], path: str | Path, suptitle: str = "") -> Path:
    """Value error and weight norm over sweeps, one line per method, in one figure.

    Each curve: ``label``, ``steps (T+1,)``, ``sqrt_ve`` and ``norm_w`` ``(T+1, N)`` (N runs:
    the median is drawn, the band spans the runs' min and max), optional ``norm_last (T+1, N)``
    (drawn dashed: the last layer's weights). A curve whose runs overflow stops at the first
    overflow and ends in a cross; values above ``STABILITY_TOP`` are drawn at it. All axes are
    log scales (sweeps + 1, so that the first sweeps, where networks blow up or peak, show).
    """
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.8))
    for i, c in enumerate(curves):
        color = STABILITY_COLORS[i % len(STABILITY_COLORS)]
        steps = np.asarray(c["steps"])
        series = [(axes[0], c["sqrt_ve"], "-", c["label"]), (axes[1], c["norm_w"], "-", c["label"])]
        if c.get("norm_last") is not None:
            series.append((axes[1], c["norm_last"], "--", None))
        for ax, values, style, label in series:
            y = _finite_rows(values)
            good = np.flatnonzero(np.isfinite(y[:, 0]))
            if not good.size:
                continue
            y, x = y[: good[-1] + 1], steps[: good[-1] + 1]
            y = np.clip(y, 1e-12, STABILITY_TOP)  # log scale: an error of 0 sits on the floor
            x = x + 1
            ax.plot(x, np.median(y, 1), color=color, linestyle=style, linewidth=1.6,
                    label=label)
            if y.shape[1] > 1:
                ax.fill_between(x, y.min(1), y.max(1), color=color, alpha=0.15, linewidth=0)
            if good[-1] < len(steps) - 1:
                ax.plot(x[-1], np.median(y[-1]), marker="x", color=color, markersize=9)
    axes[0].set_ylabel("sqrt(VE) = RMS error against v_π = 0 (μ uniform)")
    axes[1].set_ylabel("|w| (solid: all weights; dashed: the net's last layer)")
    for ax in axes:
        ax.set_yscale("log")
        ax.set_xscale("log")
        ax.set_ylim(top=STABILITY_TOP * 10)
        ax.set_xlabel("Sweeps + 1 (expected updates; log scale)")
        ax.spines[["top", "right"]].set_visible(False)
        ax.grid(True, which="major", color="0.9", linewidth=0.8)
    axes[0].set_ylim(bottom=1e-12)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=3, fontsize=8.5, frameon=False,
               bbox_to_anchor=(0.5, -0.08))
    axes[1].text(0.99, 0.01, f"×: overflowed (inf/NaN) after this sweep; values above "
                 f"{STABILITY_TOP:.0e} drawn at it", transform=axes[1].transAxes,
                 ha="right", va="bottom", fontsize=8, color="0.35")
    if suptitle:
        fig.suptitle(suptitle, fontsize=11)
    fig.tight_layout()
    out = atomic_savefig(fig, path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return out
