"""``semigrad report DIR``: per-setting statistics across seeds, learning curves, profiles."""

from __future__ import annotations

import argparse
import re
import sys

from semigrad.commands._common import add_run_arguments, finish_run, start_run
from semigrad.config import count_arg, parse_path
from semigrad.run import atomic_write_text, read_json

NAME = "report"
HELP = "aggregate a folder of runs (a sweep or not): IQM, median, bootstrap CIs, figures"
DESCRIPTION = """\
Find every run below DIR (`semigrad train`, `sarsa` and `td0` runs, in a sweep or not), group
the runs whose configs differ only in the seed into settings, and summarise each setting over
its seeds with interquartile means (IQM) and stratified bootstrap confidence intervals (Agarwal
et al., 2021, "Deep RL at the Edge of the Statistical Precipice"):
- DQN, SARSA, ... (`semigrad train` runs): the final greedy return (IQM, median) and the
  time to solve (IQM, median); runs that never solved count as +inf.
- TD(0): its own table, the error of v_hat against the Monte Carlo values at the probe states
  (RMS relative, largest relative, RMS), lower is better.
Writes report.md (the tables, ranked within each environment, also printed), summary.json
(every number), learning_curves.png and performance_profile.png (one panel per environment;
legends name the config fields that differ), prediction_error.png (TD(0): the error over
training), curves/*.png (one per setting, single seeds shown).
Diverged and unfinished runs are left out and counted. A seed found twice in one setting counts
once (with a warning); unreadable folders are listed. A `--seeds` run counts as its seedN/
folders. An earlier report is replaced only with --force.

  semigrad report runs/sweep-20261121-101500
  semigrad report runs/ --reps 10000 --run-dir my-report
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("folder", type=parse_path, metavar="DIR",
                        help="folder holding run directories")
    parser.add_argument("--reps", type=count_arg(100, 100_000), default=2000,
                        help="bootstrap resamples (default: 2000)")
    parser.add_argument("--confidence", type=float, default=0.95,
                        help="confidence level of the intervals (default: 0.95)")
    parser.add_argument("--force", action="store_true",
                        help="replace an earlier report in the output folder")
    add_run_arguments(parser, device=False)
    parser.set_defaults(run_dir=None)


def run(args: argparse.Namespace) -> int:
    from semigrad import report

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
    thresholds = report.thresholds(settings)
    several_envs = len({s.env for s in settings}) > 1
    several_algos = len({s.algorithm for s in settings}) > 1
    pngs = []
    for kind, name, extra in (("control", "learning_curves.png", {}),
                              ("prediction", "prediction_error.png",
                               {"ylabel": "RMS relative error of v_hat vs MC", "percent": True,
                                "title": "TD(0) prediction error: IQM over seeds"})):
        panels = {env: {s.label: s.curve for s in group if s.curve is not None}
                  for env, group in report.by_env([s for s in settings if s.kind == kind]).items()}
        panels = {env: curves for env, curves in panels.items() if curves}
        if panels:
            pngs.append(figures.compare_curves(
                panels, run_dir / name, thresholds if kind == "control" else None, ci_text,
                **extra))
    for i, s in enumerate(settings, 1):
        if s.curve is None:
            continue
        named = s.label == s.algorithm or s.label.startswith(f"{s.algorithm}: ")
        title = (f"{s.env}: " if several_envs else "") + (
            f"{s.algorithm}: " if several_algos and not named else "") + s.label
        slug = re.sub(r"[^A-Za-z0-9=,.+_-]", "-", title.replace(": ", "-"))[:120]
        extra = ({"ylabel": "RMS relative error of v_hat vs MC", "percent": True}
                 if s.kind == "prediction" else {})
        pngs.append(figures.setting_curve(title, s.curve,
                                          run_dir / "curves" / f"{i:02d}-{slug}.png",
                                          thresholds.get(s.env) if s.kind == "control"
                                          else None, ci_text, **extra))
    prof = report.profiles(settings, args.reps, args.confidence, args.seed)
    if prof:
        pngs.append(figures.performance_profiles(
            prof, run_dir / "performance_profile.png", thresholds, ci_text,
            no_times="evaluated once, after training:\nno time to solve"))
    print(table)
    for s in settings:
        for copy in s.duplicates:
            print(f"warning: {copy.path} repeats seed {copy.config.get('seed')} of setting "
                  f"{s.label!r} ({s.runs[0].path}); counted once", file=sys.stderr)
    if others:
        kinds = sorted({kind for _, kind in others})
        print(f"note: {len(others)} {'/'.join(kinds)} run(s) not summarised (report reads "
              f"{', '.join(report.RUN_COMMANDS)} runs)", file=sys.stderr)
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
