"""The config fields every training run has, declared once: an algorithm's config extends
``RunConfig`` (TD(0): env, seed, TensorBoard, device) or ``ControlConfig`` (a control
algorithm's: also its greedy evaluation and epsilon-greedy exploration), adding its own
fields after these. ``option(help, default=...)`` declares a field with its ``--help`` text.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from semigrad import envs
from semigrad.algos.ensemble import check_counts
from semigrad.config import MAX_SEED, ConfigError, check_range
from semigrad.devices import resolve_device


def option(text: str, **kw: Any) -> Any:
    """A config field with its ``--help`` text (``semigrad.config.add_config_arguments``)."""
    return field(metadata={"help": text}, **kw)


@dataclass(frozen=True)
class RunConfig:
    """Fields of every training run (``semigrad.trainer`` reads them); validated when built."""

    env: str = option("environment id (gymnasium:ID forces gymnasium's)", default="CartPole-v1")
    seed: int = field(default=0, metadata={"cli": False})
    tensorboard: bool = option("write TensorBoard events", default=True)
    device: str = option("torch device: auto, cpu, cuda, cuda:N", default="auto")

    def __post_init__(self) -> None:
        try:
            envs.check_env_id(self.env)
        except ValueError as err:
            raise ConfigError(str(err)) from None
        check_range("seed", self.seed, 0, MAX_SEED)
        resolve_device(self.device)


@dataclass(frozen=True)
class ControlConfig(RunConfig):
    """A control algorithm's run: greedy evaluations and epsilon-greedy exploration (epsilon
    from ``epsilon_start`` to ``epsilon_end``, ``schedules.epsilon_at``)."""

    eval_episodes: int = option("greedy episodes per evaluation", default=20)
    epsilon_start: float = option("initial epsilon", default=1.0)
    epsilon_end: float = option("final epsilon", default=0.05)

    def __post_init__(self) -> None:
        super().__post_init__()
        check_counts(self, ("eval_episodes",))
        check_range("epsilon_start", self.epsilon_start, 0, 1)
        check_range("epsilon_end", self.epsilon_end, 0, 1)


def check_start_box(cfg: Any) -> None:
    """``cfg.start_box`` (exploring starts, CartPole-v1 only) fits ``cfg.env``, or one
    ``ConfigError``."""
    try:
        envs.check_start_box(cfg.env, cfg.start_box)
    except ValueError as err:
        raise ConfigError(str(err)) from None
