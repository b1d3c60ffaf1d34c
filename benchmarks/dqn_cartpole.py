"""DQN on CartPole-v1: semigrad's default preset vs Stable-Baselines3 with the RL Zoo's tuning.

Both train on the same seeds, one run at a time, one torch thread, under the same evaluation
protocol: 20 greedy episodes on separate environments every 2,500 env steps, evaluation time
excluded from the training time. Per seed and as medians it prints: solved or not, training
seconds and env steps to the first evaluation with mean return >= 475, final and best greedy
return, and 'stable' (the share of evaluations after the first solve that are >= 475).

    python benchmarks/dqn_cartpole.py [--seeds 0-9] [--skip-sb3] [--sb3-seeds 0-4]

SB3 is the optional `bench` extra: pip install -c constraints.txt -e '.[bench]'.
RL Zoo hyper-parameters (rl-baselines3-zoo, hyperparams/dqn.yml, CartPole-v1): lr 2.3e-3,
batch 64, buffer 100k, learning_starts 1000, gamma 0.99, target_update_interval 10,
train_freq 256, gradient_steps 128, exploration_fraction 0.16, final eps 0.04,
net [256, 256], 50k steps.
"""

from __future__ import annotations

import argparse
import math
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

import sb3_protocol
from machine import describe_machine
from sb3_protocol import fmt, parse_seeds
from semigrad.algos import dqn
from semigrad.config import to_dict
from semigrad.run import read_metrics

THRESHOLD = 475.0
DEVICE = "cpu"  # --device
PRESET = dqn.DEFAULT_PRESET  # --preset
EVAL_EVERY, EVAL_EPISODES, TOTAL_STEPS = 2_500, 20, 50_000


def stability(evals: list[float]) -> float | None:
    return sb3_protocol.stability(evals, THRESHOLD)


def run_semigrad(seed: int) -> dict:
    cfg = dqn.preset(PRESET, seed=seed, tensorboard=False, device=DEVICE)
    with tempfile.TemporaryDirectory() as tmp:
        s = dqn.train(cfg, Path(tmp), progress=False)
    return {"solved": s["solved"], "time_to_solve_s": s["time_to_solve_s"],
            "env_steps_to_solve": s["env_steps_to_solve"], "final": s["final_eval_return"],
            "best": s["best_eval_return"], "stable": stability(s["eval_returns"]),
            "train_s": s["train_s"], "wall_s": s["wall_s"]}


def run_sb3(seed: int) -> dict:
    """SB3 with the RL Zoo's CartPole-v1 hyper-parameters, the same protocol."""
    return sb3_protocol.run_sb3(
        "CartPole-v1", seed, TOTAL_STEPS, EVAL_EVERY, THRESHOLD,
        dict(learning_rate=2.3e-3, batch_size=64, buffer_size=100_000, learning_starts=1000,
             gamma=0.99, target_update_interval=10, train_freq=256, gradient_steps=128,
             exploration_fraction=0.16, exploration_final_eps=0.04, net_arch=[256, 256]),
        EVAL_EPISODES)


def table(name: str, rows: dict[int, dict]) -> dict:
    print(f"\n{name}")
    print(f"{'seed':>4} {'solved':>6} {'t_solve s':>9} {'steps':>7} {'final':>6} {'best':>6} "
          f"{'stable':>6} {'train s':>7}")
    for seed, r in rows.items():
        print(f"{seed:>4} {str(r['solved']):>6} {fmt(r['time_to_solve_s'], '9.2f')} "
              f"{fmt(r['env_steps_to_solve'], '7d')} {r['final']:6.1f} {r['best']:6.1f} "
              f"{fmt(r['stable'], '6.2f')} {r['train_s']:7.1f}")
    solved = [r for r in rows.values() if r["solved"]]
    med = {
        "solved": f"{len(solved)}/{len(rows)}",
        "final_ge_475": f"{sum(r['final'] >= THRESHOLD for r in rows.values())}/{len(rows)}",
        "median_time_to_solve_s": statistics.median([r["time_to_solve_s"] for r in solved])
        if solved else None,
        "median_env_steps_to_solve": statistics.median([r["env_steps_to_solve"] for r in solved])
        if solved else None,
    }
    print(f"solved {med['solved']}, final >= 475 on {med['final_ge_475']}, median time to "
          f"solve {fmt(med['median_time_to_solve_s'], '.2f')} s, median env steps to solve "
          f"{fmt(med['median_env_steps_to_solve'], '.0f')}")
    return med


def cli_wall_time(seed: int) -> tuple[float, float | None]:
    """`semigrad train --seed N` (default preset): seconds from process start to exit, and from
    process start to the first evaluation >= 475 (None if none).

    The second is the time the run directory's config.json was written (just before training
    starts) plus the metrics row's ``wall_s`` (training and evaluations) at that evaluation.
    """
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "run"
        t0 = time.time()
        subprocess.run([sys.executable, "-m", "semigrad", "train", "--seed", str(seed),
                        "--preset", PRESET, "--run-dir", str(run_dir), "--no-progress"],
                       check=True, capture_output=True)
        total = time.time() - t0
        started = (run_dir / "config.json").stat().st_mtime - t0
        solved = [row["wall_s"] for row in read_metrics(run_dir)
                  if row["eval_return"] is not None and row["eval_return"] >= 475]
        return total, (started + solved[0]) if solved else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0-9")
    parser.add_argument("--sb3-seeds", default=None, help="default: the same as --seeds")
    parser.add_argument("--skip-sb3", action="store_true")
    parser.add_argument("--cli-seeds", default="0-4",
                        help="seeds of the whole-process `semigrad train` runs (default: 0-4)")
    parser.add_argument("--device", default="cpu", help="semigrad's torch device (default: cpu)")
    parser.add_argument("--preset", default=dqn.DEFAULT_PRESET, choices=sorted(dqn.PRESETS),
                        help="semigrad's preset (default: %(default)s, CartPole-v1's own starts;"
                             " cartpole-explore: exploring starts, not the peers' work)")
    args = parser.parse_args()
    global DEVICE, PRESET
    DEVICE, PRESET = args.device, args.preset
    torch.set_num_threads(1)
    print(describe_machine())
    print(f"semigrad preset {PRESET!r}: {to_dict(dqn.PRESETS[PRESET])}")
    ours = {s: run_semigrad(s) for s in parse_seeds(args.seeds)}
    med = table("semigrad DQN (default preset)", ours)
    steps = dqn.PRESETS[PRESET].steps
    print(f"\n`semigrad train --seed N` as a whole process ({steps:,} steps, start-up, "
          "evaluations and files included)\nseed  start to solved s  start to exit s")
    to_solve = []
    for seed in parse_seeds(args.cli_seeds):
        total, solved = cli_wall_time(seed)
        to_solve.append(math.inf if solved is None else solved)
        print(f"{seed:4d}  {fmt(solved, '.1f'):>17}  {total:15.1f}", flush=True)
    if to_solve:
        print(f"median process start to solved: {statistics.median(to_solve):.1f} s")
    if args.skip_sb3:
        return
    sb3 = {s: run_sb3(s) for s in parse_seeds(args.sb3_seeds or args.seeds)}
    ref = table("Stable-Baselines3 DQN, RL Zoo hyper-parameters", sb3)
    if med["median_time_to_solve_s"] and ref["median_time_to_solve_s"]:
        print(f"\nmedian time to solve: SB3 / semigrad = "
              f"{ref['median_time_to_solve_s'] / med['median_time_to_solve_s']:.1f}x")


if __name__ == "__main__":
    main()
