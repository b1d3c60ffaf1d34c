"""``semigrad train``: any algorithm of the trainer's registry (``--algo``, default DQN) for one
seed or many at once, with tuned presets, a run directory, resume and Ctrl-C safety. One code
path: ``semigrad.trainer.train`` (a single run is K = 1)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from semigrad import envs, trainer
from semigrad.algos import dqn, presets
from semigrad.commands._training import add_training_arguments, run_training
from semigrad.config import add_config_arguments, config_overrides
from semigrad.run import read_json

NAME = "train"
HELP = "train DQN, SARSA, ... (--algo; default: DQN's tuned CartPole-v1 preset)"
DEFAULT_ALGO = "dqn"


def _presets_text(algo: ModuleType = dqn) -> str:
    """``algo``'s presets as a table of the fields that tell them apart ("-": a field it does
    not have)."""
    def field(cfg: Any, name: str, text=str) -> str:
        return text(getattr(cfg, name)) if hasattr(cfg, name) else "-"

    head = ("preset", "env", "steps", "envs", "network", "batch", "alpha", "n-step", "double",
            "loss")
    rows = [head]
    for name, cfg in algo.PRESETS.items():
        net = (f"mlp {'x'.join(map(str, cfg.hidden))}" if cfg.network == "mlp"
               else cfg.network) + (" dueling" if getattr(cfg, "dueling", False) else "")
        rows.append((name + (" *" if name == algo.DEFAULT_PRESET else ""), cfg.env,
                     f"{cfg.steps:,}", str(cfg.num_envs), net, field(cfg, "batch_size"),
                     f"{cfg.alpha:g}" + ("->0" if cfg.alpha_end == 0 else ""),
                     field(cfg, "n_step"),
                     field(cfg, "double", lambda d: "yes" if d else "no"), field(cfg, "loss")))
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = [f"{algo.NAME}'s presets (--preset NAME; without it, --env ID takes the preset tuned "
             "for ID; any field\noption overrides; * runs without --preset and --env; every "
             "field: docs/presets.md):"]
    lines += ["  " + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
              for r in rows]
    return "\n".join(lines)


DESCRIPTION = f"""\
Train an agent and write a run directory: config.json, metrics.csv, TensorBoard events (tb/),
checkpoint_last.pt (resumable), checkpoint_best.pt (best greedy evaluation), curve.png and
summary.json. Ctrl-C saves a checkpoint and exits; --resume RUN_DIR continues exactly.
--seeds trains one agent per seed at once in this process: agent k is exactly the run
`--seed k` would train, and RUN_DIR/seedK/ holds its files.

--algo picks the algorithm: {', '.join(sorted(trainer.ALGORITHMS))} (default {DEFAULT_ALGO}).
The options below are DQN's; `semigrad train --algo NAME --help` lists NAME's.

{_presets_text()}

examples:
  semigrad train                                  # CartPole-v1, tuned preset, seed 0
  semigrad train --seed 3 --alpha 5e-4 --num-envs 8
  semigrad train --env Acrobot-v1 --steps 100000
  semigrad train --algo sarsa --method expected-sarsa
  semigrad train --resume runs/train-20261121-101500-s0
  semigrad train --seeds 0-31                     # 32 agents at once
  semigrad train --resume runs/train-seeds-20261121-101500
"""


def _given(argv: Sequence[str]) -> dict[str, str]:
    """The values of ``--algo``, ``--resume``, ``--env`` and ``--preset`` in a command line."""
    values = {}
    for i, arg in enumerate(argv):
        for option in ("--algo", "--resume", "--env", "--preset"):
            if arg == option and i + 1 < len(argv):
                values[option] = argv[i + 1]
            elif arg.startswith(option + "="):
                values[option] = arg.partition("=")[2]
    return values


def env_default(argv: Sequence[str]) -> str | None:
    """The env's default algorithm (``presets.default_algorithm``) where the command line names
    ``--env ID`` and none of ``--algo``, ``--preset``, ``--resume``; else None."""
    values = _given(argv)
    if "--env" not in values or values.keys() & {"--algo", "--preset", "--resume"}:
        return None
    return presets.default_algorithm(values["--env"])


def algo_in(argv: Sequence[str]) -> str:
    """The ``--algo`` value in a command line (the parser's options depend on it); without
    one, the algorithm of the run ``--resume RUN_DIR`` names, else the env's default
    (``env_default``), else DQN. An unknown name is left for argparse's own error, an
    unreadable run for ``--resume``'s."""
    values = _given(argv)
    if "--algo" in values:
        return values["--algo"]
    if "--resume" in values:
        try:
            return str(read_json(Path(values["--resume"]) / "config.json").get("algo", "dqn"))
        except (OSError, ValueError):
            pass
    return env_default(argv) or DEFAULT_ALGO


def add_arguments(parser: argparse.ArgumentParser, argv: Sequence[str] = ()) -> None:
    name = algo_in(argv)
    name = name if name in trainer.ALGORITHMS else DEFAULT_ALGO
    parser.add_argument("--algo", choices=sorted(trainer.ALGORITHMS), default=name,
                        help=f"the algorithm (default: {DEFAULT_ALGO}; with --env ID and no "
                             "--preset, the env's: " + ", ".join(
                                 f"{env} {algo}" for env, algo in
                                 presets.DEFAULT_ALGORITHM.items())
                             + "; with --resume, the run's)")
    default = env_default(argv)
    parser.set_defaults(env_default=default)
    if getattr(algo := trainer.algorithm(name), "PRESETS", None) and name != DEFAULT_ALGO:
        parser.description = DESCRIPTION.replace(_presets_text(), _presets_text(algo)).replace(
            "The options below are DQN's", f"The options below are {name}'s")
    if default not in (None, DEFAULT_ALGO):
        parser.set_defaults(usage_hint=f"without --algo, --env {_given(argv)['--env']} trains "
                                       f"{default}, that env's default: add --algo dqn for "
                                       "DQN's options")
    add_algo_arguments(parser, algo)


def add_algo_arguments(parser: argparse.ArgumentParser, algo: ModuleType) -> None:
    """``--preset`` (where ``algo`` has presets), the training options and ``algo``'s fields."""
    presets = getattr(algo, "PRESETS", None)
    if presets:
        default = algo.DEFAULT_PRESET
        parser.add_argument("--preset", choices=sorted(presets), default=None, metavar="NAME",
                            help="starting configuration (default: the preset of --env's id "
                                 f"when there is one, else {default} without --env)")
    add_training_arguments(parser)
    if presets:
        add_config_arguments(parser, algo.Config, presets[algo.DEFAULT_PRESET],
                             f"the {algo.DEFAULT_PRESET} preset's, what runs without --preset "
                             "and --env")
    else:
        add_config_arguments(parser, algo.Config)


def build_config(args: argparse.Namespace, algo: ModuleType, seed: int, command: str) -> Any:
    """The config a command line asks for: a preset (``--preset``, or the one tuned for
    ``--env``) with the given fields on top, else the algorithm's defaults."""
    overrides = config_overrides(args, algo.Config)
    if not getattr(algo, "PRESETS", None):
        return algo.Config(seed=seed, **overrides)
    name = getattr(args, "preset", None)
    if name is None and "env" in overrides:
        name = algo.preset_for_env(overrides["env"])
    if name is not None or "env" not in overrides:
        return algo.preset(name or algo.DEFAULT_PRESET, seed=seed, **overrides)
    cfg = algo.Config(seed=seed, **overrides)
    envs.make(cfg.env, num_envs=1, device="cpu").close()  # e.g. a continuous action space
    print(f"semigrad {command}: no {algo.NAME} preset for {cfg.env}: generic defaults "
          f"({algo.Config.__name__}(); tune them, e.g. with semigrad sweep {algo.NAME})",
          file=sys.stderr)
    return cfg


def run(args: argparse.Namespace) -> int:
    algo = trainer.algorithm(args.algo)
    if getattr(args, "env_default", None) not in (None, DEFAULT_ALGO):
        print(f"semigrad train: --env {args.env} trains {args.algo}, that env's default (the "
              f"faster learner there: docs/pqn.md); --algo dqn trains DQN", file=sys.stderr)
    return run_training(args, algo, NAME, lambda seed: build_config(args, algo, seed, NAME))
