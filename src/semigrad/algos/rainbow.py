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
from semigrad.algos import c51, dqn, presets
from semigrad.algos.base import option


@dataclass(frozen=True)
class RainbowConfig(c51.C51Config):
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
# the rest of the protocol is C51's (its network and init, DQN's learning)
__getattr__ = trainer.extends(c51, (*dqn.PROTOCOL, "init", "make_network"))
Config = RainbowConfig
PRESETS, preset, preset_fields, preset_for_env = presets.preset_functions(
    RainbowConfig, presets.RAINBOW, presets.RAINBOW_DEFAULT)
DEFAULT_PRESET = presets.RAINBOW_DEFAULT


def train(cfg: RainbowConfig, run_dir: str | Path, **kw: Any) -> dict:
    """Train Rainbow with ``cfg`` into ``run_dir`` (``semigrad.trainer.train``)."""
    return trainer.train(sys.modules[__name__], cfg, run_dir, **kw)
