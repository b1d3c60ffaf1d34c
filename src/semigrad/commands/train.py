"""``semigrad train``: DQN with a tuned default, a run directory, resume and Ctrl-C safety."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from semigrad import envs
from semigrad.algos import dqn
from semigrad.commands._common import add_run_arguments, start_run
from semigrad.config import add_config_arguments, config_from_args, config_overrides, to_dict
from semigrad.run import format_summary, read_json, read_metrics

NAME = "train"
HELP = "train DQN (default: the tuned CartPole-v1 preset)"


def _presets_text() -> str:
    lines = ["presets (--preset NAME; any field below overrides it):"]
    for name, cfg in dqn.PRESETS.items():
        default = to_dict(dqn.DQNConfig())
        changed = {k: v for k, v in to_dict(cfg).items() if v != default[k]}
        lines.append(f"  {name:<12} env={cfg.env}, total_steps={cfg.total_steps}, "
                     f"num_envs={cfg.num_envs}, lr={cfg.lr:g}, batch_size={cfg.batch_size}"
                     + (f", {changed}" if changed else ""))
    return "\n".join(lines)


DESCRIPTION = f"""\
Train a Deep Q-Network and write a run directory: config.json, metrics.csv, TensorBoard events
(tb/), checkpoint_last.pt (resumable), checkpoint_best.pt (best greedy evaluation), curve.png
and summary.json. Ctrl-C saves a checkpoint and exits; --resume RUN_DIR continues exactly.

{_presets_text()}

examples:
  semigrad train                                  # CartPole-v1, tuned preset, seed 0
  semigrad train --seed 3 --lr 5e-4 --num-envs 8
  semigrad train --env Acrobot-v1 --total-steps 100000
  semigrad train --resume runs/train-20261121-101500-s0
  semigrad train --seeds 0-31                     # 32 agents at once
  semigrad train --resume runs/train-seeds-20261121-101500
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", choices=sorted(dqn.PRESETS), default=dqn.DEFAULT_PRESET,
                        help="starting configuration (default: %(default)s)")
    parser.add_argument("--resume", type=Path, metavar="RUN_DIR", default=None,
                        help="continue the interrupted run in RUN_DIR (a single run or a "
                             "--seeds run's top directory)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_run_arguments(parser, device=False)
    parser.set_defaults(seed=None)
    parser.add_argument("--seeds", default=None, metavar="SEEDS",
                        help="train one agent per seed at once in this process, e.g. 0-31 or "
                             "0,3,5 (see docs/many_seeds.md)")
    add_config_arguments(parser, dqn.DQNConfig)


def run(args: argparse.Namespace) -> int:
    saved = None if args.resume is None else read_json(args.resume / "config.json")
    if args.seeds is not None or (saved is not None and "seeds" in saved):  # many agents at once
        from semigrad.commands._many_seeds import run_many
        return run_many(args)
    if saved is not None:
        base = {k: tuple(v) if isinstance(v, list) else v
                for k, v in saved.items() if k != "command"}
        if args.seed is not None and args.seed != base.get("seed"):
            raise ValueError(f"--seed {args.seed} differs from the checkpoint's seed "
                             f"{base.get('seed')}; leave --seed out to resume")
        cfg = config_from_args(args, dqn.DQNConfig, **base)
        run_dir = args.resume
        if (run_dir / "summary.json").exists():
            raise ValueError(f"--resume {run_dir}: this run already finished (summary.json)")
        args.seed = cfg.seed
    else:
        args.seed = 0 if args.seed is None else args.seed
        overrides = {"seed": args.seed, **config_overrides(args, dqn.DQNConfig)}
        cfg = dqn.DQNConfig(**dqn.preset_fields(args.preset, overrides))
        envs.make(cfg.env, num_envs=1, device="cpu").close()  # e.g. a continuous action space
        run_dir = start_run(args, NAME, to_dict(cfg))

    try:
        summary = dqn.train(cfg, run_dir, resume=args.resume is not None,
                            progress=not args.no_progress)
    except dqn.TrainingDiverged as err:
        print(f"semigrad train: training stopped: {err}\n"
              f"the last good checkpoint is kept in {run_dir}", file=sys.stderr)
        return 1
    from semigrad.plots.curves import learning_curves

    title = ("greedy evaluation (solid) and training episodes (faint, from exploring starts: "
             "shorter)" if cfg.start_box else "")
    curve = learning_curves({f"{cfg.env} seed {cfg.seed}": read_metrics(run_dir)},
                            run_dir / "curve.png", threshold=summary["reward_threshold"],
                            title=title)
    if summary["status"] == "interrupted":
        print(f"interrupted at env step {summary['env_steps']}; checkpoint saved. Continue with:\n"
              f"  semigrad train --resume {run_dir}")
        return 130
    shown = {
        "env": cfg.env,
        "solved": summary["solved"],
        "time to solve (training s)": summary["time_to_solve_s"],
        "env steps to solve": summary["env_steps_to_solve"],
        "final / best eval return": f"{summary['final_eval_return']:.1f} / "
                                    f"{summary['best_eval_return']:.1f}",
        "stable after solving": summary["stable_fraction"],
        "env steps, gradient steps": f"{summary['env_steps']}, {summary['gradient_steps']}",
        "training s, eval s, wall s": f"{summary['train_s']:.2f}, {summary['eval_s']:.2f}, "
                                      f"{summary['wall_s']:.2f}",
        "env steps/s (training)": round(summary["env_steps_per_s"] or 0),
        "curve": str(curve),
        "run dir": str(run_dir),
    }
    print(format_summary("semigrad train", shown))  # train() wrote summary.json
    return 0
