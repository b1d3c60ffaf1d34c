"""``semigrad report DIR``: per-setting statistics across seeds, learning curves, profiles."""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from semigrad.commands._common import add_run_arguments, finish_run, start_run
from semigrad.run import atomic_write_text, read_json

NAME = "report"
HELP = "aggregate a folder of runs (a sweep or not): IQM, median, bootstrap CIs, figures"
DESCRIPTION = """\
Find every `semigrad train` run below DIR, group the runs whose configs differ only in the seed
into settings, and for each setting compute the interquartile mean (IQM) and median of the final
score and of the time to solve, with stratified bootstrap confidence intervals (Agarwal et al.,
2021, "Deep RL at the Edge of the Statistical Precipice"). Writes report.md (a table ranked by
IQM, also printed), summary.json (every number), learning_curves.png (IQM per setting with CI
bands), curves/*.png (one per setting, single seeds shown), performance_profile.png.
Runs that never solved count as +inf time to solve; diverged and unfinished runs are left out
and counted. A seed found twice in one setting counts once (with a warning); settings of
different environments are ranked separately; unreadable folders are listed. A `--seeds` run
counts as its seedN/ folders. An earlier report is replaced only with --force.

  semigrad report runs/sweep-20261121-101500
  semigrad report runs/ --reps 10000 --run-dir my-report
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("folder", type=Path, metavar="DIR", help="folder holding run directories")
    parser.add_argument("--reps", type=int, default=2000,
                        help="bootstrap resamples (default: 2000)")
    parser.add_argument("--confidence", type=float, default=0.95,
                        help="confidence level of the intervals (default: 0.95)")
    parser.add_argument("--force", action="store_true",
                        help="replace an earlier report in the output folder")
    add_run_arguments(parser, device=False)
    parser.set_defaults(run_dir=None)


def run(args: argparse.Namespace) -> int:
    from semigrad import report

    if args.reps < 100:
        raise ValueError(f"--reps: expected >= 100, got {args.reps}")
    if not 0.5 <= args.confidence < 1:
        raise ValueError(f"--confidence: expected a value in [0.5, 1), got {args.confidence}")
    if args.run_dir is None:
        args.run_dir = args.folder / "report"
    old = args.run_dir / "config.json"
    if old.exists():
        if not args.force:
            raise FileExistsError(f"--run-dir {args.run_dir}: holds a report already; "
                                  "--force replaces it, --run-dir writes elsewhere")
        if read_json(old).get("command") != NAME:
            raise FileExistsError(f"--run-dir {args.run_dir}: holds a "
                                  f"'{read_json(old).get('command')}' run, not a report; "
                                  "--force replaces reports only")
    unreadable: list = []
    others: list = []
    settings = report.aggregate(args.folder, args.reps, args.confidence, args.seed, unreadable,
                                others)
    if old.exists():  # --force on a report: the old one goes only once the new one is ready
        import shutil

        shutil.rmtree(args.run_dir)
    run_dir = start_run(args, NAME, {"folder": str(args.folder), "reps": args.reps,
                                     "confidence": args.confidence})
    table = report.markdown_table(settings, args.confidence, args.reps)
    atomic_write_text(run_dir / "report.md", f"# semigrad report: {args.folder}\n\n{table}\n")

    from semigrad.plots import report as figures

    ci_text = f"{args.confidence:.0%} stratified bootstrap CI"
    threshold = report.threshold_of(settings)
    curves = {s.label: s.curve for s in settings if s.curve is not None}
    pngs = []
    if curves:
        pngs.append(figures.compare_curves(curves, run_dir / "learning_curves.png", threshold,
                                           ci_text))
        for i, s in enumerate(settings, 1):
            if s.curve is not None:
                slug = re.sub(r"[^A-Za-z0-9=,.+_-]", "-", s.label)[:120]
                pngs.append(figures.setting_curve(s.label, s.curve,
                                                  run_dir / "curves" / f"{i:02d}-{slug}.png",
                                                  threshold, ci_text))
    prof = report.profiles(settings, args.reps, args.confidence, args.seed)
    if prof:
        pngs.append(figures.performance_profiles(prof, [s.label for s in settings],
                                                 run_dir / "performance_profile.png", threshold,
                                                 ci_text))
    print(table)
    for s in settings:
        for copy in s.duplicates:
            print(f"warning: {copy.path} repeats seed {copy.config.get('seed')} of setting "
                  f"{s.label!r} ({s.runs[0].path}); counted once", file=sys.stderr)
    if others:
        kinds = sorted({kind for _, kind in others})
        print(f"note: {len(others)} {'/'.join(kinds)} run(s) not summarised (prediction runs: "
              "no return to rank)", file=sys.stderr)
    for path, reason in unreadable:
        print(f"warning: {path}: unreadable, left out ({reason})", file=sys.stderr)
    finish_run(run_dir, "semigrad report",
               {"folder": str(args.folder), "settings": [s.to_dict() for s in settings],
                "unreadable": [{"path": str(p), "reason": r} for p, r in unreadable],
                "figures": [str(p) for p in pngs]},
               shown={"settings": len(settings),
                      "runs": sum(len(s.runs) for s in settings),
                      "table": str(run_dir / "report.md"), "figures": len(pngs)})
    return 0
