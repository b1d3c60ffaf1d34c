"""Where the gradient of a Q-learning loss goes: a heat map of d loss / d q over ``(B, A)``."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import Rectangle

from semigrad.run import atomic_savefig


def gradient_heatmap(
    q: np.ndarray, grad: np.ndarray, actions: np.ndarray, path: str | Path, title: str = ""
) -> Path:
    """Draw ``grad (B, A)`` as a diverging heat map, taken actions outlined; save to ``path``.

    Each cell shows the gradient and, below it, the Q value; the cells ``(i, actions[i])`` get
    a yellow frame (the seed's hand-drawn yellow cells).
    """
    batch, num_actions = grad.shape
    bound = float(np.abs(grad).max()) or 1.0
    fig, ax = plt.subplots(figsize=(1.3 * num_actions + 2.5, 0.55 * batch + 1.8))
    im = ax.imshow(grad, cmap="RdBu_r", vmin=-bound, vmax=bound, aspect="auto")
    for i in range(batch):
        for a in range(num_actions):
            taken = a == actions[i]
            ax.text(a, i, f"{grad[i, a]:+.3g}\nq={q[i, a]:.3g}", ha="center", va="center",
                    fontsize=8, fontweight="bold" if taken else "normal",
                    color="white" if abs(grad[i, a]) > 0.6 * bound else "black")
        ax.add_patch(Rectangle((actions[i] - 0.5, i - 0.5), 1, 1, fill=False,
                               edgecolor="gold", linewidth=3))
    ax.set_xticks(range(num_actions), [f"a={a}" for a in range(num_actions)])
    ax.set_yticks(range(batch), [f"sample {i}" for i in range(batch)])
    ax.set_xlabel("action (output of the network)")
    ax.set_title(title or "d loss / d q  (taken actions framed)")
    fig.colorbar(im, ax=ax, label="gradient")
    fig.tight_layout()
    out = atomic_savefig(fig, path, dpi=120)
    plt.close(fig)
    return out
