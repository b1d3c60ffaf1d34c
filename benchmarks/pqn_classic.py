"""PQN on Acrobot-v1, LunarLander-v3 and MountainCar-v0: each env's config, the seeds as K
agents of one run (``pqn.train(cfg, dir, seeds=[...])``: agent k is exactly the single run
with seed k), one torch thread, the env's own starts.

The trainer evaluates every ``eval_every`` env steps (20 greedy episodes on separate envs;
evaluation time is excluded from the training time). Per seed and as medians it prints:
whether some evaluation reached the goal's threshold (Acrobot -80, LunarLander 200,
MountainCar -110), whether the final evaluation is >= it, and the env steps and training
seconds (of the whole K-agent run) at the first evaluation >= it.

    python benchmarks/pqn_classic.py [--envs Acrobot-v1,LunarLander-v3,MountainCar-v0]
        [--seeds 0-9] [--set steps=200000 --set q_lambda=0.9 ...]

The configs below are candidates for ``semigrad.algos.presets.PQN``; what was tried to choose
them is in docs/pqn.md ("Classic control").
"""

from __future__ import annotations

import argparse
import ast
import csv
import statistics
import tempfile
import time
from pathlib import Path

import torch

from machine import describe_machine
from sb3_protocol import fmt, parse_seeds
from semigrad import trainer
from semigrad.algos import pqn
from semigrad.config import to_dict

# env -> (the goal's threshold on the final greedy evaluation, its PQN preset's fields: the
# configs this script found, now presets.PQN's "acrobot", "lunarlander" and "mountaincar")
CONFIGS: dict[str, tuple[float, dict]] = {
    env: (threshold, to_dict(pqn.PRESETS[name]))
    for env, threshold, name in (("Acrobot-v1", -80.0, "acrobot"),
                                 ("LunarLander-v3", 200.0, "lunarlander"),
                                 ("MountainCar-v0", -110.0, "mountaincar"))}


def _value(text: str):
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def seed_rows(run_dir: Path, seeds: list[int], threshold: float) -> dict[int, dict]:
    """Per seed, from its metrics.csv: the evaluations, the first one >= ``threshold`` (env
    steps and the run's training seconds then) and the final one."""
    rows = {}
    for s in seeds:
        with open(run_dir / f"seed{s}" / "metrics.csv", newline="", encoding="utf-8") as fh:
            evals = [(int(r["step"]), float(r["train_s"]), float(r["eval_return"]))
                     for r in csv.DictReader(fh) if r["eval_return"]]
        first = next((e for e in evals if e[2] >= threshold), None)
        rows[s] = {"reached": first is not None, "steps": first[0] if first else None,
                   "time_s": first[1] if first else None, "final": evals[-1][2],
                   "best": max(e[2] for e in evals), "evals": [e[2] for e in evals]}
    return rows


def run_env(env: str, seeds: list[int], overrides: dict, device: str) -> dict:
    threshold, fields = CONFIGS[env]
    cfg = pqn.PQNConfig(**{**fields, **overrides, "tensorboard": False, "device": device})
    print(f"\n{env} (threshold {threshold:g}): {fields}"
          + (f"\n  with {overrides}" if overrides else ""), flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        total = trainer.train(pqn, cfg, Path(tmp), seeds=seeds, progress=False)
        wall = time.perf_counter() - t0
        rows = seed_rows(Path(tmp), seeds, threshold)
    print(f"{'seed':>4} {'reached':>7} {'t_reach s':>9} {'steps':>8} {'final':>8} {'best':>8}")
    for s, r in rows.items():
        print(f"{s:>4} {str(r['reached']):>7} {fmt(r['time_s'], '9.2f')} "
              f"{fmt(r['steps'], '8d')} {r['final']:8.1f} {r['best']:8.1f}")
    reached = [r for r in rows.values() if r["reached"]]
    out = {
        "env": env, "reached": len(reached), "k": len(rows),
        "final_ok": sum(r["final"] >= threshold for r in rows.values()),
        "median_time_s": statistics.median([r["time_s"] for r in reached]) if reached else None,
        "median_steps": statistics.median([r["steps"] for r in reached]) if reached else None,
        "train_s": total["train_s"], "wall_s": wall,
        "finals": [round(r["final"], 1) for r in rows.values()],
    }
    print(f"{env}: reached {threshold:g} {out['reached']}/{out['k']}, final >= {threshold:g} "
          f"{out['final_ok']}/{out['k']}, median time to it {fmt(out['median_time_s'], '.1f')} s "
          f"(of the K = {len(rows)} run), median env steps {fmt(out['median_steps'], '.0f')}, "
          f"training {out['train_s']:.1f} s, wall {wall:.1f} s", flush=True)
    print(f"finals: {out['finals']}", flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", default=",".join(CONFIGS))
    parser.add_argument("--seeds", default="0-9")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="override a PQNConfig field of every env's config")
    parser.add_argument("--device", default="cpu", help="torch device (default: cpu)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(describe_machine())
    overrides = {k: _value(v) for k, v in (item.split("=", 1) for item in args.set)}
    seeds = parse_seeds(args.seeds)
    results = [run_env(env, seeds, overrides, args.device) for env in args.envs.split(",")]
    print("\n| env | reached | final >= threshold | median time to it (K-run) | median env "
          "steps to it | training s |")
    print("| --- | --- | --- | --- | --- | --- |")
    for o in results:
        print(f"| {o['env']} | {o['reached']}/{o['k']} | {o['final_ok']}/{o['k']} | "
              f"{fmt(o['median_time_s'], '.1f')} s | {fmt(o['median_steps'], '.0f')} | "
              f"{o['train_s']:.1f} |")


if __name__ == "__main__":
    main()
