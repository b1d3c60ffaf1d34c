"""Figures of TD(0) prediction and SARSA control: probe values over training against Monte
Carlo, v_hat over a 2-D slice of CartPole's state space, and the SARSA learning curve."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from semigrad.run import atomic_savefig

COLORS = plt.rcParams["axes.prop_cycle"].by_key()["color"]


def probe_curves(
    steps: Sequence[int],
    values: np.ndarray,
    labels: Sequence[str],
    path: str | Path,
    mc_values: np.ndarray | None = None,
    mc_stderr: np.ndarray | None = None,
    bound: float | None = None,
    title: str = "v_hat at the probe states",
    stopped_at: int | None = None,
) -> Path:
    """``values (T, P)`` at ``steps (T,)``, one line per probe, with the Monte Carlo value as a
    dashed line and a +-2 standard error band; ``bound`` (r_max / (1 - gamma)) dotted red.
    A symmetric-log y axis is used once the values leave the bound (a diverging run)."""
    steps = np.asarray(steps)
    values = np.asarray(values, dtype=float).reshape(len(steps), -1)
    fig, ax = plt.subplots(figsize=(8, 4.8))
    for i, label in enumerate(labels):
        color = COLORS[i % len(COLORS)]
        ax.plot(steps, values[:, i], color=color, lw=1.8, label=f"v_hat {label}")
        if mc_values is not None:
            mc = mc_values[i]
            ax.axhline(mc, color=color, ls="--", lw=1.2)
            if mc_stderr is not None:
                ax.axhspan(mc - 2 * mc_stderr[i], mc + 2 * mc_stderr[i], color=color, alpha=0.15)
    if mc_values is not None:
        ax.plot([], [], color="gray", ls="--", label="Monte Carlo v_pi (+-2 s.e.)")
    finite = values[np.isfinite(values)]
    if bound is not None and math.isfinite(bound):
        ax.axhline(bound, color="red", ls=":", lw=1.5, label=f"bound r_max/(1-gamma) = {bound:g}")
        if finite.size and np.abs(finite).max() > 2 * bound:
            ax.set_yscale("symlog", linthresh=bound)
            if finite.min() >= 0:
                ax.set_ylim(bottom=0)
    if stopped_at is not None:
        ax.axvline(stopped_at, color="red", lw=1, alpha=0.6)
        ax.annotate("diverged: stopped", (stopped_at, 0.5), xycoords=("data", "axes fraction"),
                    rotation=90, ha="right", va="center", color="red", fontsize=9)
    ax.set_xlabel("transitions (all environments)")
    ax.set_ylabel("value")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    out = atomic_savefig(fig, path, dpi=120)
    plt.close(fig)
    return out


def value_slice(
    theta: np.ndarray,
    theta_dot: np.ndarray,
    v_hat: np.ndarray,
    path: str | Path,
    mc: np.ndarray | None = None,
    theta_threshold: float | None = None,
    fixed: str = "x = 0, x_dot = 0",
    title: str = "v_hat over pole angle x angular velocity",
) -> Path:
    """Heat map of ``v_hat (len(theta_dot), len(theta))`` over a CartPole slice; with ``mc``
    (same axes, possibly a coarser grid given as ``(theta, theta_dot, values)``), a second
    panel shows the Monte Carlo values on the same colour scale."""
    panels = [("v_hat (TD(0))", theta, theta_dot, v_hat)]
    if mc is not None:
        panels.append(("Monte Carlo v_pi", *mc))
    low = min(float(np.nanmin(p[3])) for p in panels)
    high = max(float(np.nanmax(p[3])) for p in panels)
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels) + 0.8, 4.4),
                             squeeze=False, sharey=True)
    image = None
    for ax, (name, th, thd, val) in zip(axes[0], panels, strict=True):
        image = ax.pcolormesh(th, thd, val, shading="auto", cmap="viridis", vmin=low, vmax=high)
        if theta_threshold is not None:
            for sign in (-1, 1):
                ax.axvline(sign * theta_threshold, color="white", ls="--", lw=1)
        ax.set_xlabel("pole angle theta (rad)")
        ax.set_title(name)
    axes[0][0].set_ylabel("angular velocity theta_dot (rad/s)")
    fig.colorbar(image, ax=axes[0].tolist(), label="value")
    fig.suptitle(f"{title} ({fixed}; dashed: termination angle)", fontsize=10)
    out = atomic_savefig(fig, path, dpi=120)
    plt.close(fig)
    return out


def learning_curve(
    episode_steps: np.ndarray,
    episode_returns: np.ndarray,
    path: str | Path,
    random_return: float | None = None,
    final_return: float | None = None,
    title: str = "semi-gradient SARSA on CartPole",
    window: int = 50,
) -> Path:
    """Return of every training episode (dots) and its moving mean over ``window`` episodes,
    against the step at which it ended; the random policy's mean return (dashed) and the
    final greedy policy's (dotted) for reference."""
    episode_steps = np.asarray(episode_steps)
    episode_returns = np.asarray(episode_returns, dtype=float)
    fig, ax = plt.subplots(figsize=(10, 4.6))
    ax.scatter(episode_steps, episode_returns, s=4, alpha=0.25, color=COLORS[0],
               label="training episode (epsilon-greedy)")
    if len(episode_returns) >= 2:
        w = max(1, min(window, len(episode_returns) // 5 or 1))
        kernel = np.ones(w) / w
        mean = np.convolve(episode_returns, kernel, mode="valid")
        ax.plot(episode_steps[w - 1:], mean, color=COLORS[0], lw=2,
                label=f"moving mean ({w} episodes)")
    if random_return is not None:
        ax.axhline(random_return, color="gray", ls="--",
                   label=f"random policy: {random_return:.1f}")
    if final_return is not None:
        ax.axhline(final_return, color=COLORS[1], ls=":", lw=2,
                   label=f"final greedy policy: {final_return:.1f}")
    ax.set_xlabel("transitions (all environments)")
    ax.set_ylabel("episode return")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    out = atomic_savefig(fig, path, dpi=120)
    plt.close(fig)
    return out
