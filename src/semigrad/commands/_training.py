"""What every training command shares (``semigrad train`` and the algorithm commands on the
trainer): ``--seed``/``--seeds``, ``--resume``, the run folder, the printed summary and the
learning curves. One code path: ``semigrad.trainer.train`` (a single run is K = 1)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from semigrad import envs, trainer
from semigrad.commands._common import add_run_arguments
from semigrad.config import config_from_args, config_from_saved, parse_path, parse_seeds, to_dict
from semigrad.run import format_summary, prepare_run_dir, read_json, read_metrics


def add_training_arguments(parser: argparse.ArgumentParser) -> None:
    """``--resume``, ``--no-progress``, ``--seed``, ``--seeds``, ``--run-dir``, ``--threads``."""
    parser.add_argument("--resume", type=parse_path, metavar="RUN_DIR", default=None,
                        help="continue the interrupted run in RUN_DIR (a single run or a "
                             "--seeds run's top directory)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_run_arguments(parser, device=False)
    parser.set_defaults(seed=None)
    parser.add_argument("--seeds", default=None, metavar="SEEDS",
                        help="train one agent per seed at once in this process, e.g. 0-31 or "
                             "0,3,5 (see docs/many_seeds.md)")


def resumed(args: argparse.Namespace, algo: ModuleType,
            command: str) -> tuple[Any, list[int] | None, Path]:
    """``--resume RUN_DIR``: the saved config and seeds (options given must not change them)."""
    run_dir = args.resume
    parent = run_dir.resolve().parent / "config.json"
    if parent.is_file() and run_dir.name in {f"seed{s}" for s in
                                             read_json(parent).get("seeds") or []}:
        raise ValueError(f"--resume {run_dir}: one seed of a --seeds run, whose agents train "
                         f"and resume together; resume the whole run: semigrad {command} "
                         f"--resume {run_dir.parent}")
    saved = read_json(run_dir / "config.json")
    if saved.get("command") != "train":
        raise ValueError(f"--resume {run_dir}: not a `semigrad train` run (command "
                         f"{saved.get('command')!r}); only training runs resume")
    if saved.get("algo", "dqn") != algo.NAME:
        raise ValueError(f"--resume {run_dir}: a {saved.get('algo', 'dqn')} run, not "
                         f"{algo.NAME}; resume it with: semigrad train --resume {run_dir}")
    seeds = saved.get("seeds")
    if seeds is None and args.seeds is not None:
        raise ValueError(f"--resume {run_dir}: a single run; leave --seeds out to resume it")
    if seeds is not None and args.seeds is not None and list(parse_seeds(args.seeds)) != seeds:
        raise ValueError(f"--seeds {args.seeds} differs from the run's seeds {seeds}; leave "
                         "--seeds out to resume")
    base = config_from_saved(algo.Config, saved)
    if args.seed is not None and (seeds is not None or args.seed != base.seed):
        raise ValueError(f"--seed {args.seed} differs from the run's "
                         f"{'seeds' if seeds else 'seed ' + str(base.seed)}; leave --seed out "
                         "to resume")
    if (run_dir / "summary.json").exists():
        done = read_json(run_dir / "summary.json")
        if done.get("status") != "interrupted":
            raise ValueError(f"--resume {run_dir}: this run already ended (summary.json says "
                             f"{done.get('status')!r})")
    cfg = config_from_args(args, algo.Config, **to_dict(base))
    return cfg, seeds, run_dir


def run_training(args: argparse.Namespace, algo: ModuleType, command: str,
                 build: Callable[[int], Any],
                 show: Callable[[Any, list[int] | None, dict, Path], int] | None = None) -> int:
    """Start (``build(seed)`` makes the config) or resume a run of ``algo``, train it, plot
    its curves and print its summary (``show(cfg, seeds, summary, run_dir) -> exit code``
    instead, for a finished run). Returns the exit code: 0, 1 (diverged), 130 (interrupted:
    resumable)."""
    if args.resume is not None:
        cfg, seeds, run_dir = resumed(args, algo, command)
        prepare_run_dir(run_dir, command, resume=True)  # writable, and locked for this process
    else:
        seeds = None if args.seeds is None else list(parse_seeds(args.seeds))
        if seeds is not None and args.seed is not None:
            raise ValueError("--seed and --seeds: give one or the other")
        cfg = build(seeds[0] if seeds else (0 if args.seed is None else args.seed))
        envs.make(cfg.env, num_envs=1, device="cpu").close()  # e.g. a continuous action space
        trainer.check_before_run(algo, cfg, len(seeds or [cfg.seed]))  # before any folder
        run_dir = prepare_run_dir(args.run_dir, command if seeds is None else f"{command}-seeds",
                                  None if seeds else cfg.seed, resumable=True)
    try:
        summary = trainer.train(algo, cfg, run_dir, seeds=seeds, resume=args.resume is not None,
                                progress=not args.no_progress)
    except trainer.TrainingDiverged as err:
        kept = ("the last good checkpoint is kept in " + str(run_dir)
                if (run_dir / "checkpoint_last.pt").exists()
                else "no checkpoint was written before it")
        print(f"semigrad {command}: training stopped: {err}\n{kept}", file=sys.stderr)
        if show is not None:
            return show(cfg, seeds, read_json(run_dir / "summary.json"), run_dir)
        return 1
    if summary["status"] == "interrupted":
        steps = summary["env_steps"] if seeds is None else summary["env_steps_per_agent"]
        print(f"interrupted at env step {steps}{'' if seeds is None else ' of each agent'}; "
              f"checkpoint saved. Continue with:\n  semigrad {command} --resume {run_dir}")
        return 130
    if show is not None:
        return show(cfg, seeds, summary, run_dir)
    curve = plot_curves(cfg, seeds, run_dir, summary["reward_threshold"])
    print(format_summary(f"semigrad {command}" + ("" if seeds is None else " --seeds"),
                         shown(cfg, seeds, summary, curve, run_dir)))
    if seeds is not None:
        for s in summary["per_seed"]:
            if s["status"] == "diverged":
                print(f"seed {s['seed']}: training stopped: {s['error']}")
        return 1 if summary["diverged_seeds"] else 0
    return 0


def shown(cfg: Any, seeds: list[int] | None, summary: dict, curve: Path,
          run_dir: Path) -> dict[str, Any]:
    """The printed summary of a single run or a --seeds run."""
    if seeds is None:
        out = {
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
        out = {
            "env": cfg.env,
            "seeds": f"{seed_text(seeds)} ({len(seeds)} agents in one process)",
            "solved": f"{summary['solved']} / {len(seeds)}",
            "final eval return": (f"mean {final['mean']:.1f}, std {final['std']:.1f}, "
                                  f"min {final['min']:.1f}, max {final['max']:.1f}")
            if final else None,
            "median env steps to solve": to_solve["median"] if to_solve else None,
        }
    out.update({
        "training s, eval s, wall s": f"{summary['train_s']:.2f}, {summary['eval_s']:.2f}, "
                                      f"{summary['wall_s']:.2f}",
        "env steps/s (training)" if seeds is None else "agent env steps/s":
            round(summary.get("env_steps_per_s") or summary.get("agent_env_steps_per_s") or 0),
        "curve" if seeds is None else "curves": str(curve),
        "run dir": str(run_dir),
    })
    return out


def seed_text(seeds: list[int]) -> str:
    if seeds == list(range(seeds[0], seeds[0] + len(seeds))) and len(seeds) > 2:
        return f"{seeds[0]}-{seeds[-1]}"
    return ",".join(map(str, seeds))


def plot_curves(cfg: Any, seeds: list[int] | None, run_dir: Path,
                threshold: float | None) -> Path:
    """curve.png of each agent; with --seeds also curves.png (every seed's evaluations)."""
    from semigrad.plots.curves import learning_curves

    title = ("greedy evaluation (solid) and training episodes (faint, from exploring starts: "
             "shorter)" if getattr(cfg, "start_box", ()) else "")
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
