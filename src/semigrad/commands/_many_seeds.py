"""``semigrad train --seeds 0-31``: one DQN agent per seed, all trained at once in one process.

The run directory holds one sub-directory per seed (``seed0/``, ``seed1/``...) with the files of
a single ``semigrad train`` run (config.json, metrics.csv, tb/, checkpoint_best.pt,
checkpoint_last.pt, curve.png, summary.json; ``semigrad eval RUN_DIR/seed3`` works on them),
plus, at the top, config.json, curves.png (every seed's learning curve), summary.json (the
aggregate over seeds) and checkpoint_last.pt (all agents' training state: ``semigrad train
--resume RUN_DIR`` continues an interrupted run exactly). See ``semigrad.algos.dqn_many`` and
docs/many_seeds.md.
"""

from __future__ import annotations

import argparse
import statistics
from dataclasses import replace
from pathlib import Path

from semigrad import envs
from semigrad.algos import dqn, dqn_many
from semigrad.config import config_from_args, config_overrides, to_dict
from semigrad.plots.curves import learning_curves
from semigrad.run import (
    atomic_write_json,
    format_summary,
    prepare_run_dir,
    read_json,
    read_metrics,
)

CHECKPOINT = "checkpoint_last.pt"  # the K agents' whole state, in the parent directory


def parse_seeds(text: str) -> list[int]:
    """``"0-31"``, ``"0,3,5"`` or both (``"0-3,8"``) -> the seeds in the order given."""
    seeds: list[int] = []
    try:
        for part in text.split(","):
            low, dash, high = part.strip().partition("-")
            seeds += range(int(low), int(high) + 1) if dash else [int(low)]
    except ValueError:
        raise ValueError(f"--seeds: expected e.g. 0-31 or 0,3,5 (non-negative integers), "
                         f"got {text!r}") from None
    if not seeds:
        raise ValueError(f"--seeds: {text!r} holds no seed (a range is written low-high)")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"--seeds: {text!r} names a seed twice")
    return seeds


def _stats(values: list[float]) -> dict | None:
    if not values:
        return None
    return {"mean": statistics.fmean(values), "std": statistics.pstdev(values),
            "min": min(values), "median": statistics.median(values), "max": max(values)}


def aggregate(cfg: dqn.DQNConfig, seeds: list[int], summaries: list[dict],
              dirs: list[Path]) -> dict:
    """The parent directory's summary: status, solve counts and statistics over seeds."""
    k = len(seeds)
    statuses = [s["status"] for s in summaries]
    finished = [s for s in summaries if s["status"] != "diverged"]
    solved = [s for s in summaries if s["solved"]]
    first = summaries[0]
    return {
        "status": ("diverged" if "diverged" in statuses else first["status"]),
        "env": cfg.env,
        "seeds": seeds,
        "agents": k,
        "diverged_seeds": [s["seed"] for s in summaries if s["status"] == "diverged"],
        "solved": len(solved),
        "solved_fraction": len(solved) / k,
        "reward_threshold": first["reward_threshold"],
        "final_eval_return": _stats([s["final_eval_return"] for s in finished
                                     if s["final_eval_return"] is not None]),
        "best_eval_return": _stats([s["best_eval_return"] for s in finished
                                    if s["best_eval_return"] is not None]),
        "env_steps_to_solve": _stats([s["env_steps_to_solve"] for s in solved]),
        "time_to_solve_s": _stats([s["time_to_solve_s"] for s in solved]),
        "stable_fraction": _stats([s["stable_fraction"] for s in solved
                                   if s["stable_fraction"] is not None]),
        "env_steps_per_agent": max(s["env_steps"] for s in summaries),
        "gradient_steps_per_agent": max(s["gradient_steps"] for s in summaries),
        "train_s": first["train_s"],
        "eval_s": first["eval_s"],
        "wall_s": first["wall_s"],
        "agent_env_steps_per_s": (k * max(s["env_steps"] for s in summaries) / first["train_s"]
                                  if first["train_s"] else None),
        "agent_gradient_steps_per_s": (k * max(s["gradient_steps"] for s in summaries)
                                       / first["train_s"] if first["train_s"] else None),
        "per_seed": [{"seed": s["seed"], "status": s["status"], "solved": s["solved"],
                      "final_eval_return": s["final_eval_return"],
                      "best_eval_return": s["best_eval_return"],
                      "env_steps_to_solve": s["env_steps_to_solve"], "run_dir": str(d)}
                     for s, d in zip(summaries, dirs, strict=True)],
    }


def _resumed_config(args: argparse.Namespace) -> tuple[dqn.DQNConfig, list[int], Path]:
    """``--resume PARENT``: the saved config and seeds (options given must not change them)."""
    parent = args.resume
    saved = read_json(parent / "config.json")
    seeds = saved.get("seeds")
    if seeds is None:
        raise ValueError(f"--resume {parent}: not a many-seed run (its config.json lists no "
                         "seeds); leave --seeds out to resume a single run")
    if args.seeds is not None and parse_seeds(args.seeds) != seeds:
        raise ValueError(f"--seeds {args.seeds} differs from the run's seeds {seeds}; leave "
                         "--seeds out to resume")
    if args.seed is not None:
        raise ValueError("--seed: a many-seed run is resumed as a whole; leave --seed out")
    summary = parent / "summary.json"
    if summary.exists():  # resumable while some agent was interrupted (others may have diverged)
        done = read_json(summary)
        if "interrupted" not in [done.get("status")] + [s.get("status")
                                                          for s in done.get("per_seed", [])]:
            raise ValueError(f"--resume {parent}: this run already finished (summary.json)")
    base = {k: tuple(v) if isinstance(v, list) else v
            for k, v in saved.items() if k not in ("command", "seeds")}
    return config_from_args(args, dqn.DQNConfig, seed=seeds[0], **base), seeds, parent


def run_many(args: argparse.Namespace) -> int:
    """``semigrad train`` with ``--seeds`` (or ``--resume`` of such a run): build the config,
    train, write and print."""
    if args.resume is not None:
        cfg, seeds, parent = _resumed_config(args)
        dirs = [parent / f"seed{s}" for s in seeds]
    else:
        seeds = parse_seeds(args.seeds)
        if args.seed is not None:
            raise ValueError("--seed and --seeds: give one or the other")
        overrides = {"seed": seeds[0], **config_overrides(args, dqn.DQNConfig)}
        cfg = dqn.DQNConfig(**dqn.preset_fields(args.preset, overrides))
        dqn_many.check_supported(cfg, seeds)
        envs.make(cfg.env, num_envs=1, device="cpu").close()  # e.g. a continuous action space
        parent = prepare_run_dir(args.run_dir, "train-seeds")
        shared = {k: v for k, v in to_dict(cfg).items() if k != "seed"}
        atomic_write_json(parent / "config.json", {"command": "train", "seeds": seeds, **shared})
        dirs = [parent / f"seed{s}" for s in seeds]
        for s, d in zip(seeds, dirs, strict=True):
            atomic_write_json(d / "config.json",
                              {"command": "train", **to_dict(replace(cfg, seed=s))})

    summaries = dqn_many.train_many(cfg, seeds, dirs, progress=not args.no_progress,
                                    checkpoint=parent / CHECKPOINT,
                                    resume=args.resume is not None)
    threshold = summaries[0]["reward_threshold"]
    curves = {}
    for s, d in zip(seeds, dirs, strict=True):
        curves[f"seed {s}"] = read_metrics(d)
        learning_curves({f"{cfg.env} seed {s}": curves[f"seed {s}"]}, d / "curve.png",
                        threshold=threshold)
    # all seeds in one figure: greedy evaluations only (each seed's curve.png has both)
    evals = {label: [{**r, "episode_return": None} for r in rows] for label, rows in curves.items()}
    plot = learning_curves(evals, parent / "curves.png", threshold=threshold,
                           title=f"{cfg.env}: greedy evaluation of {len(seeds)} seeds "
                                 "trained at once")
    summary = aggregate(cfg, seeds, summaries, dirs)
    atomic_write_json(parent / "summary.json", summary)

    final = summary["final_eval_return"]
    to_solve = summary["env_steps_to_solve"]
    shown = {
        "env": cfg.env,
        "seeds": f"{args.seeds} ({len(seeds)} agents in one process)",
        "solved": f"{summary['solved']} / {len(seeds)}",
        "final eval return": (f"mean {final['mean']:.1f}, std {final['std']:.1f}, "
                              f"min {final['min']:.1f}, max {final['max']:.1f}") if final else None,
        "median env steps to solve": to_solve["median"] if to_solve else None,
        "training s, eval s, wall s": f"{summary['train_s']:.2f}, {summary['eval_s']:.2f}, "
                                      f"{summary['wall_s']:.2f}",
        "agent env steps/s": round(summary["agent_env_steps_per_s"] or 0),
        "curves": str(plot),
        "run dir": str(parent),
    }
    print(format_summary("semigrad train --seeds", shown))
    for s in summaries:
        if s["status"] == "diverged":
            print(f"seed {s['seed']}: training stopped: {s['error']}")
    if summary["status"] == "interrupted":
        print(f"interrupted at env step {summary['env_steps_per_agent']} of each agent; "
              f"checkpoint saved. Continue with:\n  semigrad train --resume {parent}")
        return 130
    return 1 if summary["diverged_seeds"] else 0
