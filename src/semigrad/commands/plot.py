"""``semigrad plot RUN_DIR...``: learning curves of one or many runs in one figure."""

from __future__ import annotations

import argparse
from pathlib import Path

from semigrad.commands._common import add_run_arguments, finish_run, start_run
from semigrad.config import parse_path
from semigrad.run import new_run_dir, read_json, read_metrics
from semigrad.sweep import TRIALS
from semigrad.trainer import ALGORITHMS, algorithm, is_prediction

NAME = "plot"
HELP = "learning curves of one or many training runs in one figure"
ROOT = "plots"  # figures go apart from the runs that report reads


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("runs", type=parse_path, nargs="+", metavar="RUN_DIR",
                        help="`semigrad train` run directories: single runs, --seeds runs "
                             "(each seed's curve) or sweep folders (each trial's)")
    parser.add_argument("--title", default="", help="figure title")
    add_run_arguments(parser, device=False, root=ROOT)


def train_runs(path: Path) -> list[Path]:
    """The `semigrad train` run folders ``path`` stands for: itself, a --seeds run's seedK/
    folders, or a sweep's trials; one clear error for anything else."""
    config = read_json(path / "config.json") if (path / "config.json").is_file() else {}
    if (path / TRIALS).is_dir():  # a sweep: its trials that are train runs
        found = sorted(p.parent for p in (path / TRIALS).glob("*/metrics.csv"))
        runs = [p for n in found for p in train_runs(n)] if found else []
        if not runs:
            raise FileNotFoundError(f"{path}: a sweep with no training metrics yet "
                                    f"({TRIALS}/*/metrics.csv)")
        return runs
    if config.get("command") == "train" and "seeds" in config:
        runs = [path / f"seed{s}" for s in config["seeds"]
                if (path / f"seed{s}" / "metrics.csv").is_file()]
        if not runs:
            raise FileNotFoundError(f"{path}: a --seeds run with no metrics yet")
        return runs
    if not (path / "metrics.csv").exists():
        raise FileNotFoundError(f"{path}: no metrics.csv, nor a --seeds run's seedK/ folders or "
                                f"a sweep's {TRIALS}/; give a `semigrad train` run directory")
    command = config.get("command")
    if command != "train":
        what = f"a 'semigrad {command}' run" if command else "not a semigrad run (config.json " \
            "names no command)"
        raise ValueError(f"{path}: {what}; plot draws the learning curves of `semigrad train` "
                         "runs (other commands write their own figures in their folder)")
    if config.get("algo") in ALGORITHMS and is_prediction(algorithm(config["algo"])):
        raise ValueError(f"{path}: a {config['algo']} run predicts the values of a fixed "
                         "policy: no returns to plot; its own figures (probes.png, "
                         "value_slice.png) are in its folder")
    return [path]


def run(args: argparse.Namespace) -> int:
    curves = {}
    threshold = None
    for top in args.runs:
        for path in train_runs(top):
            label = path.name if path == top else f"{top.name}/{path.relative_to(top)}"
            if (path / "summary.json").exists():
                summary = read_json(path / "summary.json")
                threshold = summary.get("reward_threshold", threshold)
            curves[label] = read_metrics(path)
    if args.run_dir is None:  # figures go under plots/, not among the runs report reads
        args.run_dir = new_run_dir(NAME, root=ROOT)
    run_dir = start_run(args, NAME, {"runs": [str(p) for p in args.runs]})
    from semigrad.plots.curves import learning_curves

    png = learning_curves(curves, run_dir / "curves.png", threshold=threshold, title=args.title)
    finish_run(run_dir, "semigrad plot", {"runs": len(curves), "figure": str(png)})
    return 0
