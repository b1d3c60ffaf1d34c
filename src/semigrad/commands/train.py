"""``semigrad train``: DQN for one seed or many at once, with a tuned default, a run directory,
resume and Ctrl-C safety. One code path: ``semigrad.trainer.train`` (a single run is K = 1)."""

from __future__ import annotations

import argparse
import sys

from semigrad import envs
from semigrad.algos import dqn
from semigrad.commands._training import add_training_arguments, run_training
from semigrad.config import add_config_arguments, config_overrides

NAME = "train"
HELP = "train DQN (default: the tuned CartPole-v1 preset)"


def _presets_text() -> str:
    """The presets as a table of the fields that tell them apart."""
    head = ("preset", "env", "steps", "envs", "network", "batch", "alpha", "n-step", "double",
            "loss")
    rows = [head]
    for name, cfg in dqn.PRESETS.items():
        net = (f"mlp {'x'.join(map(str, cfg.hidden))}" if cfg.network == "mlp"
               else cfg.network) + (" dueling" if cfg.dueling else "")
        rows.append((name + (" *" if name == dqn.DEFAULT_PRESET else ""), cfg.env,
                     f"{cfg.steps:,}", str(cfg.num_envs), net, str(cfg.batch_size),
                     f"{cfg.alpha:g}" + ("->0" if cfg.alpha_end == 0 else ""), str(cfg.n_step),
                     "yes" if cfg.double else "no", cfg.loss))
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = ["presets (--preset NAME; without it, --env ID takes the preset tuned for ID; any "
             "field option\noverrides; * runs without --preset and --env; every field: "
             "docs/presets.md):"]
    lines += ["  " + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
              for r in rows]
    return "\n".join(lines)


DESCRIPTION = f"""\
Train a Deep Q-Network and write a run directory: config.json, metrics.csv, TensorBoard events
(tb/), checkpoint_last.pt (resumable), checkpoint_best.pt (best greedy evaluation), curve.png
and summary.json. Ctrl-C saves a checkpoint and exits; --resume RUN_DIR continues exactly.
--seeds trains one agent per seed at once in this process: agent k is exactly the run
`--seed k` would train, and RUN_DIR/seedK/ holds its files.

{_presets_text()}

examples:
  semigrad train                                  # CartPole-v1, tuned preset, seed 0
  semigrad train --seed 3 --alpha 5e-4 --num-envs 8
  semigrad train --env Acrobot-v1 --steps 100000
  semigrad train --resume runs/train-20261121-101500-s0
  semigrad train --seeds 0-31                     # 32 agents at once
  semigrad train --resume runs/train-seeds-20261121-101500
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", choices=sorted(dqn.PRESETS), default=None, metavar="NAME",
                        help="starting configuration (default: the preset of --env's id when "
                             f"there is one, else {dqn.DEFAULT_PRESET} without --env)")
    add_training_arguments(parser)
    add_config_arguments(parser, dqn.DQNConfig, dqn.PRESETS[dqn.DEFAULT_PRESET],
                         f"the {dqn.DEFAULT_PRESET} preset's, what runs without --preset "
                         "and --env")


def run(args: argparse.Namespace) -> int:
    def build(seed: int) -> dqn.DQNConfig:
        overrides = config_overrides(args, dqn.DQNConfig)
        name = args.preset
        if name is None and "env" in overrides:
            name = dqn.preset_for_env(overrides["env"])
        if name is not None or "env" not in overrides:
            return dqn.preset(name or dqn.DEFAULT_PRESET, seed=seed, **overrides)
        cfg = dqn.DQNConfig(seed=seed, **overrides)
        envs.make(cfg.env, num_envs=1, device="cpu").close()  # e.g. a continuous action space
        print(f"semigrad train: no preset for {cfg.env}: generic defaults (DQNConfig(); "
              "tune them, e.g. with semigrad sweep dqn)", file=sys.stderr)
        return cfg

    return run_training(args, dqn, NAME, build)
