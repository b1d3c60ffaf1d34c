"""``semigrad train``: DQN for one seed or many at once, with a tuned default, a run directory,
resume and Ctrl-C safety. One code path: ``semigrad.trainer.train`` (a single run is K = 1)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from semigrad import envs, trainer
from semigrad.algos import dqn
from semigrad.commands._common import add_run_arguments
from semigrad.config import (
    add_config_arguments,
    config_from_args,
    config_overrides,
    parse_path,
    parse_seeds,
    to_dict,
)
from semigrad.run import format_summary, prepare_run_dir, read_json, read_metrics

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
    parser.add_argument("--resume", type=parse_path, metavar="RUN_DIR", default=None,
                        help="continue the interrupted run in RUN_DIR (a single run or a "
                             "--seeds run's top directory)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_run_arguments(parser, device=False)
    parser.set_defaults(seed=None)
    parser.add_argument("--seeds", default=None, metavar="SEEDS",
                        help="train one agent per seed at once in this process, e.g. 0-31 or "
                             "0,3,5 (see docs/many_seeds.md)")
    add_config_arguments(parser, dqn.DQNConfig, dqn.PRESETS[dqn.DEFAULT_PRESET],
                         f"the {dqn.DEFAULT_PRESET} preset's, what runs without --preset "
                         "and --env")


def _resumed(args: argparse.Namespace) -> tuple[dqn.DQNConfig, list[int] | None, Path]:
    """``--resume RUN_DIR``: the saved config and seeds (options given must not change them)."""
    run_dir = args.resume
    parent = run_dir.resolve().parent / "config.json"
    if parent.is_file() and run_dir.name in {f"seed{s}" for s in
                                             read_json(parent).get("seeds") or []}:
        raise ValueError(f"--resume {run_dir}: one seed of a --seeds run, whose agents train "
                         f"and resume together; resume the whole run: semigrad train --resume "
                         f"{run_dir.parent}")
    saved = read_json(run_dir / "config.json")
    if saved.get("command") != "train":
        raise ValueError(f"--resume {run_dir}: not a `semigrad train` run (command "
                         f"{saved.get('command')!r})")
    seeds = saved.get("seeds")
    if seeds is None and args.seeds is not None:
        raise ValueError(f"--resume {run_dir}: a single run; leave --seeds out to resume it")
    if seeds is not None and args.seeds is not None and list(parse_seeds(args.seeds)) != seeds:
        raise ValueError(f"--seeds {args.seeds} differs from the run's seeds {seeds}; leave "
                         "--seeds out to resume")
    base = dqn.config_from_dict(saved)
    if args.seed is not None and (seeds is not None or args.seed != base.seed):
        raise ValueError(f"--seed {args.seed} differs from the run's "
                         f"{'seeds' if seeds else 'seed ' + str(base.seed)}; leave --seed out "
                         "to resume")
    if (run_dir / "summary.json").exists():
        done = read_json(run_dir / "summary.json")
        if done.get("status") != "interrupted":
            raise ValueError(f"--resume {run_dir}: this run already ended (summary.json says "
                             f"{done.get('status')!r})")
    cfg = config_from_args(args, dqn.DQNConfig, **to_dict(base))
    return cfg, seeds, run_dir


def run(args: argparse.Namespace) -> int:
    if args.resume is not None:
        cfg, seeds, run_dir = _resumed(args)
        prepare_run_dir(run_dir, NAME, resume=True)  # writable, and locked for this process
    else:
        seeds = None if args.seeds is None else list(parse_seeds(args.seeds))
        if seeds is not None and args.seed is not None:
            raise ValueError("--seed and --seeds: give one or the other")
        seed = seeds[0] if seeds else (0 if args.seed is None else args.seed)
        overrides = config_overrides(args, dqn.DQNConfig)
        name = args.preset
        if name is None and "env" in overrides:
            name = dqn.preset_for_env(overrides["env"])
        if name is None and "env" in overrides:
            cfg = dqn.DQNConfig(seed=seed, **overrides)
        else:
            cfg = dqn.preset(name or dqn.DEFAULT_PRESET, seed=seed, **overrides)
        envs.make(cfg.env, num_envs=1, device="cpu").close()  # e.g. a continuous action space
        if name is None and "env" in overrides:  # said once the config and env are valid
            print(f"semigrad train: no preset for {cfg.env}: generic defaults (DQNConfig(); "
                  "tune them, e.g. with semigrad sweep dqn)", file=sys.stderr)
        trainer.check_before_run(dqn, cfg, len(seeds or [cfg.seed]))  # before any folder
        run_dir = prepare_run_dir(args.run_dir, "train" if seeds is None else "train-seeds",
                                  None if seeds else cfg.seed, resumable=True)

    try:
        summary = dqn.train(cfg, run_dir, seeds=seeds, resume=args.resume is not None,
                            progress=not args.no_progress)
    except trainer.TrainingDiverged as err:
        kept = ("the last good checkpoint is kept in " + str(run_dir)
                if (run_dir / "checkpoint_last.pt").exists()
                else "no checkpoint was written before it")
        print(f"semigrad train: training stopped: {err}\n{kept}", file=sys.stderr)
        return 1
    curve = _plot(cfg, seeds, run_dir, summary["reward_threshold"])
    if summary["status"] == "interrupted":
        steps = summary["env_steps"] if seeds is None else summary["env_steps_per_agent"]
        print(f"interrupted at env step {steps}{'' if seeds is None else ' of each agent'}; "
              f"checkpoint saved. Continue with:\n  semigrad train --resume {run_dir}")
        return 130
    if seeds is None:
        shown = {
            "env": cfg.env,
            "solved": summary["solved"],
            "time to solve (training s)": summary["time_to_solve_s"],
            "env steps to solve": summary["env_steps_to_solve"],
            "final / best eval return": f"{summary['final_eval_return']:.1f} / "
                                        f"{summary['best_eval_return']:.1f}",
            "stable after solving": summary["stable_fraction"],
            "env steps, gradient steps": f"{summary['env_steps']}, "
                                         f"{summary['gradient_steps']}",
        }
    else:
        final = summary["final_eval_return"]
        to_solve = summary["env_steps_to_solve"]
        shown = {
            "env": cfg.env,
            "seeds": f"{_seed_text(seeds)} ({len(seeds)} agents in one process)",
            "solved": f"{summary['solved']} / {len(seeds)}",
            "final eval return": (f"mean {final['mean']:.1f}, std {final['std']:.1f}, "
                                  f"min {final['min']:.1f}, max {final['max']:.1f}")
            if final else None,
            "median env steps to solve": to_solve["median"] if to_solve else None,
        }
    shown.update({
        "training s, eval s, wall s": f"{summary['train_s']:.2f}, {summary['eval_s']:.2f}, "
                                      f"{summary['wall_s']:.2f}",
        "env steps/s (training)" if seeds is None else "agent env steps/s":
            round(summary.get("env_steps_per_s") or summary.get("agent_env_steps_per_s") or 0),
        "curve" if seeds is None else "curves": str(curve),
        "run dir": str(run_dir),
    })
    print(format_summary("semigrad train" + ("" if seeds is None else " --seeds"), shown))
    if seeds is not None:
        for s in summary["per_seed"]:
            if s["status"] == "diverged":
                print(f"seed {s['seed']}: training stopped: {s['error']}")
        return 1 if summary["diverged_seeds"] else 0
    return 0


def _seed_text(seeds: list[int]) -> str:
    if seeds == list(range(seeds[0], seeds[0] + len(seeds))) and len(seeds) > 2:
        return f"{seeds[0]}-{seeds[-1]}"
    return ",".join(map(str, seeds))


def _plot(cfg: dqn.DQNConfig, seeds: list[int] | None, run_dir: Path,
          threshold: float | None) -> Path:
    """curve.png of each agent; with --seeds also curves.png (every seed's evaluations)."""
    from semigrad.plots.curves import learning_curves

    title = ("greedy evaluation (solid) and training episodes (faint, from exploring starts: "
             "shorter)" if cfg.start_box else "")
    if seeds is None:
        return learning_curves({f"{cfg.env} seed {cfg.seed}": read_metrics(run_dir)},
                               run_dir / "curve.png", threshold=threshold, title=title)
    curves = {}
    for s in seeds:
        d = run_dir / f"seed{s}"
        curves[f"seed {s}"] = read_metrics(d)
        learning_curves({f"{cfg.env} seed {s}": curves[f"seed {s}"]}, d / "curve.png",
                        threshold=threshold, title=title)
    evals = {label: [{**r, "episode_return": None} for r in rows] for label, rows in curves.items()}
    return learning_curves(evals, run_dir / "curves.png", threshold=threshold,
                           title=f"{cfg.env}: greedy evaluation of {len(seeds)} seeds "
                                 "trained at once")
