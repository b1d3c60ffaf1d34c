"""Many seeds in one process: K DQN agents trained at once vs K single runs in a row.

For K = 1, 8, 32 agents it times ``semigrad.algos.dqn.train(cfg, dir, seeds=...)`` (one
process, seeds as a batch dimension, what ``semigrad train --seeds`` runs) against the single
run ``dqn.train(cfg, dir)`` (the same code with K = 1, what ``semigrad train --seed N`` runs)
once per seed, one run after another, and prints total agent-transitions/s and
agent-gradient-steps/s (summed over the K agents) and the speed-up. ``--backend vmap`` times
the general Q-network path (``torch.vmap`` over any ``nn.Module``, autograd) on the same MLP
instead of the stacked fast path; ``--compare-backends`` prints both in one table.

Both run the default DQN preset with ``--steps`` env steps per agent (default 5,000, of which
the first ``learning_starts`` are random play without updates), no TensorBoard, and one greedy
evaluation at the end, which is not timed: the time is the training loop's (``train_s`` of the
summaries, as ``semigrad train`` reports it). The CPU time of each whole call (set-up, training,
evaluation, files; ``time.process_time``) is shown too: on a shared machine other jobs stretch
wall times unevenly, CPU time much less.

The K single runs are not all run: they are alike (same config, other seeds), so the time of K
runs in a row is K x the median time of ``--baseline-runs`` measured single runs (seeds 0, 1,
...): for K = 8 and 32 this is an extrapolation, as the table says. One torch thread by
default (``--threads`` sets both sides' count). The machine is shared and noisy: every
measurement is repeated ``--repeats`` times, rounds interleaved (single runs, K = 1, 8, 32, then
again), and the table shows the best round (the median in brackets).

    python benchmarks/many_seeds.py [--steps 5000] [--agents 1,8,32] [--repeats 3]
                                    [--baseline-runs 3] [--device cpu] [--threads 1]
                                    [--backend stacked|vmap] [--compare-backends]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

from machine import describe_machine
from semigrad.algos import dqn

PRESET = "cartpole-explore"  # the 64x64 learner the recorded tables measure


def config(steps: int, device: str, **overrides) -> dqn.DQNConfig:
    return dqn.preset(PRESET, steps=steps, eval_every=steps, log_every=min(steps, 1000),
                      tensorboard=False, device=device, **overrides)


def time_single(cfg: dqn.DQNConfig, seed: int) -> tuple[float, float, int]:
    """Training wall seconds, whole-call CPU seconds and gradient steps of one ``dqn.train``."""
    with tempfile.TemporaryDirectory() as tmp:
        cpu = time.process_time()
        s = dqn.train(replace(cfg, seed=seed), Path(tmp), progress=False)
        cpu = time.process_time() - cpu
    return s["train_s"], cpu, s["gradient_steps"]


def time_many(cfg: dqn.DQNConfig, k: int) -> tuple[float, float, int]:
    """The same for K agents trained at once (gradient steps per agent)."""
    with tempfile.TemporaryDirectory() as tmp:
        cpu = time.process_time()
        total = dqn.train(cfg, Path(tmp), seeds=list(range(k)), progress=False)
        cpu = time.process_time() - cpu
    return total["train_s"], cpu, total["gradient_steps_per_agent"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5_000, help="env steps per agent")
    parser.add_argument("--agents", default="1,8,32", help="values of K")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--baseline-runs", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (both sides)")
    parser.add_argument("--hidden", type=int, nargs="+", default=None,
                        help="override the preset's hidden widths (e.g. 64 64)")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="override the preset's minibatch size")
    parser.add_argument("--backend", choices=("stacked", "vmap"), default="stacked",
                        help="Q-network backend of both sides (default: the fast path)")
    parser.add_argument("--compare-backends", action="store_true",
                        help="instead: the general (vmap) path against the fast (stacked) "
                             "path on the same MLP, for each K")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    agents = [int(k) for k in args.agents.split(",")]
    overrides = {"q_backend": args.backend}
    if args.hidden:
        overrides["hidden"] = tuple(args.hidden)
    if args.batch_size:
        overrides["batch_size"] = args.batch_size
    cfg = config(args.steps, args.device, **overrides)
    print(describe_machine())
    if args.compare_backends:
        compare_backends(args, agents, overrides)
        return
    print(f"device {args.device}; DQN preset {PRESET!r} (num_envs {cfg.num_envs}, "
          f"batch {cfg.batch_size}, hidden {cfg.hidden}, learning_starts "
          f"{cfg.learning_starts}), {args.steps} env steps per agent; best of {args.repeats} "
          f"interleaved rounds (median in brackets)")
    time_single(config(1500, args.device, **overrides), 0)  # warm-up: imports, first calls
    time_many(config(1500, args.device, **overrides), 2)

    single: list[tuple[float, float]] = []
    many: dict[int, list[tuple[float, float]]] = {k: [] for k in agents}
    grad_steps = {}
    for _ in range(args.repeats):
        for seed in range(args.baseline_runs):
            wall, cpu, single_grad_steps = time_single(cfg, seed)
            single.append((wall, cpu))
        for k in agents:
            wall, cpu, grad_steps[k] = time_many(cfg, k)
            many[k].append((wall, cpu))

    # a single run stands for any seed's: K runs in a row take K x a single run's time
    walls, cpus = [w for w, _ in single], [c for _, c in single]
    print(f"\nsingle-agent dqn.train, {len(single)} runs: training wall s best "
          f"{min(walls):.2f} / median {statistics.median(walls):.2f} "
          f"({args.steps / min(walls):,.0f} transitions/s, "
          f"{single_grad_steps / min(walls):,.0f} gradient steps/s); whole-call CPU s best "
          f"{min(cpus):.2f} / median {statistics.median(cpus):.2f}")
    print("\n| K | one process: train s | agent-transitions/s | agent-gradient-steps/s "
          "| K runs in a row: train s | agent-transitions/s | speed-up (wall) "
          "| speed-up (CPU s) |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    med = statistics.median
    for k in agents:
        w, c = [t for t, _ in many[k]], [t for _, t in many[k]]
        seq = k * min(walls)
        note = "" if k <= args.baseline_runs else " (extrapolated)"
        print(f"| {k} | {min(w):.2f} [{med(w):.2f}] | {k * args.steps / min(w):,.0f} "
              f"| {k * grad_steps[k] / min(w):,.0f} | {seq:.2f}{note} "
              f"| {k * args.steps / seq:,.0f} | {seq / min(w):.1f}x "
              f"[{k * med(walls) / med(w):.1f}x] "
              f"| {k * min(cpus) / min(c):.1f}x [{k * med(cpus) / med(c):.1f}x] |")
    print("\nspeed-up = time of K single runs in a row / time of one process with K agents, "
          "best vs best [median vs median].\nwall: training loop only (train_s, evaluation "
          "excluded); CPU s: this process's CPU time for the whole call (set-up, training, the "
          "final evaluation, files), which other jobs on a shared machine disturb less.")


def compare_backends(args, agents: list[int], overrides: dict) -> None:
    """The general Q-network path (vmap + autograd) against the stacked fast path, same MLP,
    same K, rounds interleaved: training seconds and the ratio."""
    cfgs = {b: config(args.steps, args.device, **{**overrides, "q_backend": b})
            for b in ("stacked", "vmap")}
    for cfg in cfgs.values():  # warm-up
        time_many(replace(cfg, steps=1500, eval_every=1500, log_every=1500), 2)
    times: dict[tuple[str, int], list[float]] = {}
    for _ in range(args.repeats):
        for k in agents:
            for b, cfg in cfgs.items():
                times.setdefault((b, k), []).append(time_many(cfg, k)[0])
    print(f"\nDQN preset with {args.steps} env steps per agent, hidden {cfgs['stacked'].hidden}, "
          f"batch {cfgs['stacked'].batch_size}; training s, best of {args.repeats} "
          "[median]\n")
    print("| K | stacked (fast path) s | vmap (general path) s | general / fast |")
    print("| ---: | ---: | ---: | ---: |")
    med = statistics.median
    for k in agents:
        fast, general = times[("stacked", k)], times[("vmap", k)]
        print(f"| {k} | {min(fast):.2f} [{med(fast):.2f}] | {min(general):.2f} "
              f"[{med(general):.2f}] | {min(general) / min(fast):.1f}x "
              f"[{med(general) / med(fast):.1f}x] |")


if __name__ == "__main__":
    main()
