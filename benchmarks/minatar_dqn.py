"""DQN on MinAtar: the `minatar-<game>` presets (the MinAtar paper's protocol) trained for
``--frames`` frames on ``--seeds`` at once, against the paper's DQN scores at 5M frames.

For each game it prints each seed's greedy evaluations (``eval_episodes`` episodes every
``--eval-every`` frames), the mean of its last ``--last`` evaluations, the mean return of its
last 100 (or so: whole metric rows) training episodes, played epsilon-greedy with epsilon
0.1 as in the paper, whose curves show that measure (the like-for-like column), the training
time and speed, and the paper's DQN score (Young & Tian 2019: a 100-episode moving average
at 5M frames, mean of 30 runs, read off its learning curves: Asterix ~17, Breakout ~10,
Freeway ~50, Seaquest ~20, Space Invaders ~43; ../shared/references/dqn-anchors.md). One
torch thread.
(Not named minatar.py: run as a script, that name would shadow the minatar package.)

    python benchmarks/minatar_dqn.py [--games breakout,space-invaders] [--frames 1000000]
                                 [--seeds 0-2] [--eval-every 50000] [--device cpu]
                                 [any DQNConfig field: --n-step 3 --double ...]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

import torch

from machine import describe_machine
from semigrad.algos import dqn
from semigrad.config import add_config_arguments, config_overrides, parse_seeds
from semigrad.run import read_metrics

PAPER_DQN_5M = {"asterix": 17, "breakout": 10, "freeway": 50, "seaquest": 20,
                "space-invaders": 43}


def last_training_episodes(run_dir: Path, at_least: int = 100) -> tuple[float, int]:
    """Mean return of the last ``at_least`` (or a few more: whole metric rows) training
    episodes of a run, and how many episodes that is."""
    total, count = 0.0, 0
    for row in reversed(read_metrics(run_dir)):
        if row["episode_return"] is None or not row["episodes"]:
            continue
        total += row["episode_return"] * row["episodes"]
        count += int(row["episodes"])
        if count >= at_least:
            break
    return total / max(count, 1), count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--games", default="breakout,space-invaders")
    parser.add_argument("--frames", type=int, default=1_000_000)
    parser.add_argument("--seeds", default="0-2")
    parser.add_argument("--last", type=int, default=3, help="evaluations averaged at the end")
    parser.add_argument("--run-dir", type=Path, default=None,
                        help="keep the runs there (default: a temporary folder)")
    # any preset field can be changed (--n-step 3, --double, ...); the table says what changed
    add_config_arguments(parser, dqn.DQNConfig)
    args = parser.parse_args()
    changed = config_overrides(args, dqn.DQNConfig)
    for name, instead in (("env", "--games"), ("steps", "--frames")):
        if name in changed:
            parser.error(f"--{name} is set per game by this script: use {instead}")
    torch.set_num_threads(1)
    print(describe_machine())
    seeds = list(parse_seeds(args.seeds))
    for game in args.games.split(","):
        cfg = dqn.preset(f"minatar-{game}", **{
            "steps": args.frames, "eval_every": 50_000, "eval_episodes": 30,
            "tensorboard": False, "device": "cpu",
            "epsilon_fraction": min(1.0, 100_000 / args.frames), **changed})
        with tempfile.TemporaryDirectory() as tmp:
            folder = (args.run_dir or Path(tmp)) / game
            total = dqn.train(cfg, folder, seeds=seeds, progress=False)
            evals = {s: json.loads((folder / f"seed{s}" / "summary.json").read_text())
                     ["eval_returns"] for s in seeds}
            training = {s: last_training_episodes(folder / f"seed{s}") for s in seeds}
        print(f"\n{cfg.env}: {args.frames:,} frames, seeds {seeds} in one process, "
              f"{total['train_s']:.0f} s of training ({total['agent_env_steps_per_s']:,.0f} "
              f"agent frames/s), paper's DQN at 5M frames ~{PAPER_DQN_5M[game]}; "
              f"preset fields changed: {changed or 'none'}")
        print(f"| seed | greedy evaluations (every {cfg.eval_every:,} frames) "
              f"| mean of last {args.last} | last ~100 training episodes (epsilon "
              f"{cfg.epsilon_end:g}) |")
        print("| ---: | --- | ---: | ---: |")
        for s in seeds:
            tail = statistics.fmean(evals[s][-args.last:])
            mean, count = training[s]
            print(f"| {s} | {', '.join(f'{v:.1f}' for v in evals[s])} | {tail:.1f} "
                  f"| {mean:.1f} ({count} episodes) |")


if __name__ == "__main__":
    main()
