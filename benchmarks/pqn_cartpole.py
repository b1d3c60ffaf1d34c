"""PQN on CartPole-v1: semigrad's PQN preset, seed by seed, and optionally the DQN preset in the
same process for comparison.

One run at a time, one torch thread, the env's own starts, the trainer's evaluation protocol
(20 greedy episodes on separate envs every ``eval_every`` env steps, evaluation time excluded
from the training time). Per seed and as medians it prints: solved or not, training seconds and
env steps to the first evaluation with mean return >= 475, final and best greedy return, and
'stable' (the share of evaluations after the first solve that are >= 475). ``--together`` also
trains all the seeds at once (K agents in one process) and prints the same table.

    python benchmarks/pqn_cartpole.py [--seeds 0-9] [--with-dqn] [--with-sb3] [--together]

SB3 is the optional `bench` extra: pip install -c constraints.txt -e '.[bench]'.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

import dqn_cartpole
from machine import describe_machine
from sb3_protocol import fmt, parse_seeds, stability
from semigrad import trainer
from semigrad.algos import dqn, pqn
from semigrad.config import to_dict

THRESHOLD = 475.0


def _row(s: dict) -> dict:
    return {"solved": s["solved"], "time_to_solve_s": s["time_to_solve_s"],
            "env_steps_to_solve": s["env_steps_to_solve"], "final": s["final_eval_return"],
            "best": s["best_eval_return"], "stable": stability(s["eval_returns"], THRESHOLD),
            "train_s": s["train_s"], "env_steps": s["env_steps"]}


def run_one(algo, cfg) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        return _row(trainer.train(algo, cfg, Path(tmp), progress=False))


def run_together(cfg, seeds: list[int]) -> tuple[dict[int, dict], float]:
    """All ``seeds`` as K agents of one run: each agent's row (its time to solve is the
    whole run's training time at that point) and the run's training seconds."""
    with tempfile.TemporaryDirectory() as tmp:
        total = trainer.train(pqn, cfg, Path(tmp), seeds=seeds, progress=False)
        rows = {}
        for s in seeds:
            summary = trainer.read_json(Path(tmp) / f"seed{s}" / "summary.json")
            rows[s] = _row(summary)
    return rows, total["train_s"]


def table(name: str, rows: dict[int, dict]) -> dict:
    """dqn_cartpole's table (the same columns and medians), plus the median training time."""
    med = dqn_cartpole.table(name, rows)
    med["median_train_s"] = statistics.median([r["train_s"] for r in rows.values()])
    print(f"median training {med['median_train_s']:.1f} s", flush=True)
    return med


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0-9")
    parser.add_argument("--preset", default=pqn.DEFAULT_PRESET, choices=sorted(pqn.PRESETS))
    parser.add_argument("--device", default="cpu", help="torch device (default: cpu)")
    parser.add_argument("--with-dqn", action="store_true",
                        help="also train semigrad's DQN CartPole preset on the same seeds")
    parser.add_argument("--with-sb3", action="store_true",
                        help="also train Stable-Baselines3's DQN with the RL Zoo's CartPole "
                             "settings on the same seeds (benchmarks/dqn_cartpole.py's "
                             "protocol: its 20 greedy episodes every 2,500 env steps)")
    parser.add_argument("--together", action="store_true",
                        help="also train all seeds at once (K agents, one process)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(describe_machine())
    seeds = parse_seeds(args.seeds)
    base = dict(tensorboard=False, device=args.device)
    print(f"pqn preset {args.preset!r}: {to_dict(pqn.PRESETS[args.preset])}")
    t0 = time.perf_counter()
    ours, peer = {}, {}
    for s in seeds:  # with SB3: its run of each seed right after ours (the same machine load)
        ours[s] = run_one(pqn, pqn.preset(args.preset, seed=s, **base))
        if args.with_sb3:
            peer[s] = dqn_cartpole.run_sb3(s)
            print(f"seed {s}: PQN {fmt(ours[s]['time_to_solve_s'], '.2f')} s, SB3 "
                  f"{fmt(peer[s]['time_to_solve_s'], '.2f')} s to solve", flush=True)
    med = table(f"semigrad PQN (preset {args.preset}), one seed at a time", ours)
    print(f"(wall {time.perf_counter() - t0:.1f} s for {len(seeds)} runs"
          + (" and SB3's)" if args.with_sb3 else ")"))
    if args.together:
        rows, train_s = run_together(pqn.preset(args.preset, **base), seeds)
        table(f"semigrad PQN, the {len(seeds)} seeds at once (times: the whole run's)", rows)
        print(f"training {train_s:.1f} s for {len(seeds)} agents")
    if args.with_dqn:
        ref = table("semigrad DQN (preset cartpole), one seed at a time",
                    {s: run_one(dqn, dqn.preset("cartpole", seed=s, **base)) for s in seeds})
        if med["median_time_to_solve_s"] and ref["median_time_to_solve_s"]:
            print(f"\nmedian time to solve: DQN / PQN = "
                  f"{ref['median_time_to_solve_s'] / med['median_time_to_solve_s']:.1f}x")
    if args.with_sb3:
        ref = table("Stable-Baselines3 DQN, RL Zoo settings, one seed at a time", peer)
        if med["median_time_to_solve_s"] and ref["median_time_to_solve_s"]:
            print(f"\nmedian time to solve: SB3 / PQN = "
                  f"{ref['median_time_to_solve_s'] / med['median_time_to_solve_s']:.1f}x")


if __name__ == "__main__":
    main()
