"""What every computing subcommand shares: ``--seed``, ``--run-dir``, ``--device`` and the
run-directory contract (config.json before the work, summary.json and a printed summary after).
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from semigrad.config import MAX_SEED, count_arg, parse_int, parse_path
from semigrad.run import atomic_write_json, format_summary, prepare_run_dir


def add_run_arguments(
    parser: argparse.ArgumentParser, *, default_seed: int = 0, device: bool = True,
    root: str = "runs",
) -> None:
    """Add ``--seed``, ``--run-dir``, ``--threads`` and (optionally) ``--device``."""
    parser.add_argument("--seed", type=parse_int, default=default_seed,
                        help=f"random seed fixing everything random (default: {default_seed})")
    parser.add_argument("--run-dir", type=parse_path, default=None,
                        help=f"output folder (default: a new folder under {root}/)")
    parser.add_argument("--threads", type=count_arg(1, 4096), default=1,
                        help="torch CPU threads (default: 1, the fastest for semigrad's small "
                             "networks; more only contend on a busy machine)")
    if device:
        parser.add_argument("--device", default="auto",
                            help="torch device: auto (CUDA when available), cpu, cuda, cuda:N")


def start_run(args: argparse.Namespace, command: str, config: Mapping[str, Any]) -> Path:
    """Create the run directory and write ``config.json`` (command, seed and ``config``)."""
    if not 0 <= args.seed <= MAX_SEED:
        raise ValueError(f"--seed: expected an integer in 0..{MAX_SEED}, got {args.seed}")
    run_dir = prepare_run_dir(args.run_dir, command, args.seed)
    atomic_write_json(run_dir / "config.json", {"command": command, "seed": args.seed, **config})
    return run_dir


def finish_run(run_dir: Path, title: str, summary: Mapping[str, Any],
               shown: Mapping[str, Any] | None = None) -> None:
    """Write ``summary.json`` and print ``shown`` (default: ``summary``) as a short block."""
    atomic_write_json(run_dir / "summary.json", summary)
    print(format_summary(title, {**(shown if shown is not None else summary),
                                 "run dir": str(run_dir)}))
