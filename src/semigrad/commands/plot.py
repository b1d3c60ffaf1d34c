"""``semigrad plot RUN_DIR...``: learning curves of one or many runs in one figure."""

from __future__ import annotations

import argparse

from semigrad.commands._common import add_run_arguments, finish_run, start_run
from semigrad.config import parse_path
from semigrad.run import new_run_dir, read_json, read_metrics

NAME = "plot"
HELP = "learning curves of one or many training runs in one figure"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("runs", type=parse_path, nargs="+", metavar="RUN_DIR",
                        help="run directories holding metrics.csv")
    parser.add_argument("--title", default="", help="figure title")
    add_run_arguments(parser, device=False)


def run(args: argparse.Namespace) -> int:
    curves = {}
    threshold = None
    for path in args.runs:
        if not (path / "metrics.csv").exists():
            raise FileNotFoundError(f"{path}: no metrics.csv; is this a semigrad train run?")
        command = read_json(path / "config.json").get("command") \
            if (path / "config.json").exists() else None
        if command != "train":
            raise ValueError(f"{path}: a 'semigrad {command}' run; plot draws the learning "
                             "curves of `semigrad train` runs (this run's own figures are in "
                             "its folder)")
        label = path.name
        if (path / "summary.json").exists():
            summary = read_json(path / "summary.json")
            threshold = summary.get("reward_threshold", threshold)
        curves[label] = read_metrics(path)
    if args.run_dir is None:  # figures go under plots/, not among the runs report reads
        args.run_dir = new_run_dir(NAME, root="plots")
    run_dir = start_run(args, NAME, {"runs": [str(p) for p in args.runs]})
    from semigrad.plots.curves import learning_curves

    png = learning_curves(curves, run_dir / "curves.png", threshold=threshold, title=args.title)
    finish_run(run_dir, "semigrad plot", {"runs": len(curves), "figure": str(png)})
    return 0
