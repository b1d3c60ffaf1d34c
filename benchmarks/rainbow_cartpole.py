"""C51, QR-DQN and Rainbow on CartPole-v1: each algorithm's cartpole preset, from the env's own
starts, seeds 0-9 trained at once (seeds as a batch dimension: agent k is exactly the single
run with seed k), one torch thread, on the CPU.

Protocol (as benchmarks/dqn_cartpole.py): 20 greedy episodes every 2,500 env steps, 50k env
steps. Per seed it prints the final greedy return, the best one and the env steps of the
first evaluation >= 475; then how many of the seeds end >= 475 (the goal of issue 26: >= 9
of 10 for each algorithm).

    python benchmarks/rainbow_cartpole.py [--algo c51,qrdqn,rainbow] [--seeds 0-9]
        [--steps 50000] [--set FIELD=VALUE ...]
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

from machine import describe_machine
from semigrad import trainer
from semigrad.config import parse_seeds

THRESHOLD = 475.0


def value(text: str):
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def run(algo: str, seeds: list[int], steps: int, overrides: dict) -> dict:
    module = trainer.algorithm(algo)
    cfg = module.preset(steps=steps, tensorboard=False, device="cpu", **overrides)
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        summary = trainer.train(module, cfg, Path(tmp), seeds=seeds, progress=False)
        wall = time.perf_counter() - t
        if summary["status"] != "finished":  # Ctrl-C or SIGTERM: no result to report
            raise SystemExit(f"{algo}: the run ended {summary['status']} after "
                             f"{summary.get('env_steps', '?')} env steps; nothing measured")
        per = summary.get("per_seed") or [summary]
    finals = [p["final_eval_return"] for p in per]
    return {"algo": algo, "overrides": overrides, "seeds": seeds, "steps": steps,
            "final": finals, "best": [p["best_eval_return"] for p in per],
            "solved_at": [p["env_steps_to_solve"] for p in per],
            "ends_solved": sum(f >= THRESHOLD for f in finals), "wall_s": round(wall, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--algo", default="c51,qrdqn,rainbow")
    parser.add_argument("--seeds", default="0-9")
    parser.add_argument("--steps", type=int, default=50_000)
    parser.add_argument("--set", nargs="*", default=[], metavar="FIELD=VALUE",
                        help="config overrides on top of the preset")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(describe_machine())
    overrides = {k: value(v) for k, v in (s.split("=", 1) for s in args.set)}
    seeds = parse_seeds(args.seeds)
    for algo in args.algo.split(","):
        r = run(algo, seeds, args.steps, overrides)
        print(f"{algo} preset cartpole {overrides or ''}: {r['ends_solved']}/{len(seeds)} seeds "
              f"end >= {THRESHOLD:g} after {args.steps:,} steps; {r['wall_s']} s for all seeds")
        for s, f, b, at in zip(seeds, r["final"], r["best"], r["solved_at"], strict=True):
            print(f"  seed {s}: final {f:.1f}, best {b:.1f}, first >= 475 at {at}")
        print("json:", json.dumps(r))
        sys.stdout.flush()


if __name__ == "__main__":
    main()
