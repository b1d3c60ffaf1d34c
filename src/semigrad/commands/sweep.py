"""``semigrad sweep ALGO``: seeds x hyper-parameter settings on Ray Tune, resumable."""

from __future__ import annotations

import argparse
import os

from semigrad import sweep
from semigrad.config import add_config_arguments, config_overrides, count_arg, parse_path
from semigrad.run import format_summary, new_run_dir, read_json

NAME = "sweep"
HELP = "run every seed x hyper-parameter setting on Ray Tune (local or a cluster); resumable"
DESCRIPTION = """\
Every combination of the --grid values, times every seed, is one trial: a normal semigrad run
with its own run directory under SWEEP_DIR/trials/ (semigrad eval/plot work on it). Trials run on
Ray Tune: a local Ray instance sized to this machine by default, or an existing cluster with
--address. A trial that fails (e.g. an invalid setting) is reported and the others go on.
Interrupted (Ctrl-C, a killed process)? `semigrad sweep --resume SWEEP_DIR` runs only the trials
not finished yet, continuing interrupted ones from their last checkpoint.
Then: `semigrad report SWEEP_DIR`.

  semigrad sweep dqn --seeds 0-9 --grid alpha=1e-3,3e-4 --grid gamma=0.99,0.999
  semigrad sweep dqn --steps 20000 --seeds 0-4 --grid n-step=1,3
  semigrad sweep --file sweep.toml            # algo, preset, seeds, [config], [grid]
  semigrad sweep dqn --file sweep.toml --seeds 0-2   # ALGO named: flags override the file
  semigrad sweep dqn --grid alpha=1e-3,3e-4 --address auto      # a running Ray cluster
  semigrad sweep --resume runs/sweep-20261121-101500

A sweep file (TOML; YAML the same with pyyaml installed):
  algo = "dqn"
  seeds = "0-9"                 # or [0, 1, 2]
  [config]                      # overrides of the preset, for every trial
  steps = 20000
  [grid]                        # every combination
  alpha = [1e-3, 3e-4]
  gamma = [0.99, 0.999]
"""


def _add_execution_arguments(parser: argparse.ArgumentParser, suppress: bool) -> None:
    """Options accepted before and after ALGO (after it, they only override when given)."""
    def default(value):
        return argparse.SUPPRESS if suppress else value

    parser.add_argument("--resume", type=parse_path, metavar="SWEEP_DIR", default=default(None),
                        help="continue the sweep in SWEEP_DIR (only unfinished trials run)")
    parser.add_argument("--file", type=parse_path, metavar="SWEEP_FILE", default=default(None),
                        help="sweep file (.toml, .yaml): algo, preset, seeds, config, grid")
    parser.add_argument("--run-dir", type=parse_path, default=default(None),
                        help="sweep folder (default: a new folder under runs/)")
    parser.add_argument("--address", default=default(None),
                        help="Ray cluster: auto, HOST:PORT or ray://HOST:10001 "
                             "(default: a new local Ray instance)")
    parser.add_argument("--num-cpus", type=count_arg(1, 1_000_000), default=default(None),
                        help=f"CPUs of the local Ray instance (default: all, {os.cpu_count()})")
    parser.add_argument("--cpus-per-trial", type=float, default=default(1.0),
                        help="CPUs reserved per trial; also its torch threads (default: 1)")
    parser.add_argument("--gpus-per-trial", type=float, default=default(0.0),
                        help="GPUs per trial, fractions share a GPU (default: 0; with a GPU "
                             "set, device=auto trains on it)")
    parser.add_argument("--no-progress", action="store_true", default=default(False),
                        help="no progress bar")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    _add_execution_arguments(parser, suppress=False)
    algos = parser.add_subparsers(dest="algo", metavar="ALGO", required=False)
    for name in sweep.ALGOS:
        algo = sweep.get_algo(name)
        p = algos.add_parser(name, help=f"sweep {name}",
                             description=f"Sweep {name}; config fields override the preset for "
                                         "every trial.")
        p.add_argument("--preset", choices=sorted(algo.presets), default=argparse.SUPPRESS,
                       help=f"starting configuration (default: {algo.default_preset})")
        p.add_argument("--seeds", default=argparse.SUPPRESS,
                       help="seeds, e.g. 0-9 or 0,3,7 (default: 0-4)")
        p.add_argument("--grid", action="append", default=argparse.SUPPRESS,
                       metavar="NAME=V1,V2",
                       help="a config field and its values; repeat for more fields "
                            "(tuples: hidden=64x64,128x128)")
        _add_execution_arguments(p, suppress=True)
        add_config_arguments(p, algo.config_cls)


def _spec(args: argparse.Namespace) -> sweep.SweepSpec:
    data = sweep.load_sweep_file(args.file) if args.file else {}
    if args.algo is not None and data.get("algo", args.algo) != args.algo:
        raise ValueError(f"ALGO {args.algo} differs from the sweep file's algo {data['algo']!r}")
    algo_name = args.algo or data.get("algo")
    if algo_name is None:
        raise ValueError(f"name the algorithm ({', '.join(sweep.ALGOS)}) or give --file "
                         "(or --resume SWEEP_DIR)")
    data = {**data, "algo": algo_name}
    if args.algo is not None:
        algo = sweep.get_algo(algo_name)
        data["config"] = {**data.get("config", {}), **config_overrides(args, algo.config_cls)}
        grid = dict(data.get("grid", {}))
        for item in getattr(args, "grid", []):
            key, values = sweep.parse_grid_item(item)
            grid[key] = values
        data["grid"] = grid
        for key in ("preset", "seeds"):
            if hasattr(args, key):
                data[key] = getattr(args, key)
    return sweep.SweepSpec.from_dict(data)


def run(args: argparse.Namespace) -> int:
    if args.resume is not None:
        if args.algo is not None or args.file is not None:
            raise ValueError("--resume continues a sweep as it was created: give no ALGO, "
                             "--file, --grid, --seeds or config fields with it")
        saved = read_json(args.resume / "config.json")
        if saved.get("command") != NAME:
            raise ValueError(f"--resume {args.resume}: not a semigrad sweep folder")
        spec = sweep.SweepSpec.from_dict(saved["sweep"])
        sweep_dir = args.resume
    else:
        spec = _spec(args)
        sweep.check_settings(spec)  # before any folder is made
        if args.run_dir is not None and (args.run_dir / "config.json").exists():
            raise FileExistsError(f"--run-dir {args.run_dir}: holds a sweep already; continue "
                                  f"it with semigrad sweep --resume {args.run_dir}")
        sweep_dir = args.run_dir or new_run_dir(NAME)
    if args.address and args.num_cpus:
        raise ValueError("--num-cpus sizes a local Ray instance; a cluster (--address) has its "
                         "own")
    result = sweep.run_sweep(
        spec, sweep_dir, resume=args.resume is not None, address=args.address,
        num_cpus=args.num_cpus, cpus_per_trial=args.cpus_per_trial,
        gpus_per_trial=args.gpus_per_trial, progress=not args.no_progress,
    )
    for name, outcome in result.outcomes.items():
        if outcome["status"] == "failed":
            print(f"failed: {name}: {outcome.get('error')}")
        if "warning" in outcome:
            print(f"warning: {name}: {outcome['warning']}")
    finished = [(o["final_eval_return"], n) for n, o in result.outcomes.items()
                if o["status"] == "finished" and o.get("final_eval_return") is not None]
    shown = {"trials": len(result.outcomes),
             **{s: result.count(s) for s in ("finished", "diverged", "failed", "interrupted")},
             "skipped (done before)": result.count("skipped")}
    if finished:
        shown["best final return (this call)"] = "{:.1f} ({})".format(*max(finished))
    shown["sweep dir"] = str(sweep_dir)
    print(format_summary("semigrad sweep", shown))
    if result.count("interrupted"):
        print(f"continue with: semigrad sweep --resume {sweep_dir}")
        return 130
    print(f"next: semigrad report {sweep_dir}")
    return 1 if result.count("failed") else 0
