"""Rainbow (Hessel, Modayil, van Hasselt, Schaul, Ostrovski, Dabney, Horgan, Piot, Azar &
Silver 2018, "Rainbow: Combining Improvements in Deep Reinforcement Learning"): DQN with
Double targets, a dueling network, n-step returns, prioritized replay, C51's categorical
return distribution and noisy nets instead of epsilon-greedy exploration.

Each piece is one of DQN's options or C51's head (``semigrad.algos.c51``); this file only
sets them on by default (``RainbowConfig``: ``noisy``, ``dueling``, ``prioritized`` with the
paper's alpha 0.5 and beta 0.4 -> 1, ``n_step`` 3, ``double``, epsilon 0) and names the
combination for ``semigrad train --algo rainbow``.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from semigrad import trainer
from semigrad.algos import presets
from semigrad.algos.base import option
from semigrad.algos.c51 import (  # noqa: F401 (the trainer's protocol, C51's)
    DIVERGENCE_HINT,
    HEALTH,
    METRIC_COLUMNS,
    C51Config,
    agent_state_dict,
    grad_mode,
    gradient_steps,
    init,
    iterate,
    load_state_dict,
    make_network,
    memory_bytes,
    metric_values,
    q_values,
    state_dict,
    weights_from_state,
)


@dataclass(frozen=True)
class RainbowConfig(C51Config):
    """C51's fields with Rainbow's pieces on (each can be turned off)."""

    noisy: bool = option("noisy nets (Fortunato et al. 2018) instead of epsilon-greedy",
                         default=True)
    dueling: bool = option("dueling head", default=True)
    prioritized: bool = option("prioritized replay", default=True)
    priority_alpha: float = option("prioritized replay: the priority exponent alpha",
                                   default=0.5)
    n_step: int = option("n-step returns", default=3)
    epsilon_start: float = option("initial epsilon (noisy nets explore)", default=0.0)
    epsilon_end: float = option("final epsilon", default=0.0)


NAME = "rainbow"
Config = RainbowConfig
PRESETS, preset, preset_fields, preset_for_env = presets.preset_functions(
    RainbowConfig, presets.RAINBOW, presets.RAINBOW_DEFAULT)
DEFAULT_PRESET = presets.RAINBOW_DEFAULT


def train(cfg: RainbowConfig, run_dir: str | Path, **kw: Any) -> dict:
    """Train Rainbow with ``cfg`` into ``run_dir`` (``semigrad.trainer.train``)."""
    return trainer.train(sys.modules[__name__], cfg, run_dir, **kw)
