"""Many seeds in one process: K DQN agents trained at once vs K single runs in a row.

For K = 1, 8, 32 agents it times ``semigrad.algos.dqn.train(cfg, dir, seeds=...)`` (one
process, seeds as a batch dimension, what ``semigrad train --seeds`` runs) against the single
run ``dqn.train(cfg, dir)`` (the same code with K = 1, what ``semigrad train --seed N`` runs)
once per seed, one run after another, and prints the cost per agent env step and per agent
gradient step, total agent-transitions/s and the speed-up. ``--backend vmap`` times the
general Q-network path (``torch.vmap`` over any ``nn.Module``, autograd) on the same MLP
instead of the stacked fast path; ``--compare-backends`` prints both in one table.

Both run the DQN preset ``--preset`` (default ``cartpole``, the default preset: 128x128,
batch 256, 2 gradient steps per iteration of 4 env steps, Double DQN; ``cartpole-explore`` is
the 64x64 learner the tables before 2026-12-05 measured) with ``--steps`` env steps per agent
(default 5,000, of which the first ``learning_starts`` are random play without updates), no
TensorBoard, and one greedy evaluation at the end (one episode per agent), which is not timed:
the wall time is the training loop's (``train_s`` of the summaries, as ``semigrad train``
reports it). The CPU time of each whole call (set-up, training, the evaluation, files;
``time.process_time``) is shown too: on a shared machine other jobs stretch wall times
unevenly, CPU time much less, so the costs per agent step and the GFLOP/s are given both ways
(wall / CPU).

The arithmetic: the network's multiply-adds per gradient step of one agent (the forward passes
of the online network on s and, with Double DQN, on s', of the target network on s', and the
backward pass: every layer's weight gradient, every layer's but the first input gradient),
the rate the training loop runs them at for each K (GFLOP/s, counting those alone), and the
rate of one batched matmul of the widest hidden layer's shape, ``(K, batch, h) x (K, h, h)``,
on this machine (best of a few, interleaved with the rounds). The single run's CPU time per
gradient step against that matmul's time for the same multiply-adds bounds the speed-up: K
agents that did nothing but their multiply-adds at that rate would reach it.

The K single runs are not all run: they are alike (same config, other seeds), so the time of K
runs in a row is K x the median time of ``--baseline-runs`` measured single runs (seeds 0, 1,
...): for K = 8 and 32 this is an extrapolation, as the table says. One torch thread by
default (``--threads`` sets both sides' count). The machine is shared and noisy: every
measurement is repeated ``--repeats`` times, rounds interleaved (single runs, K = 1, 8, 32, then
again), and the table shows the best round (the median in brackets).

    python benchmarks/many_seeds.py [--preset cartpole] [--steps 5000] [--agents 1,8,32]
                                    [--repeats 3] [--baseline-runs 3] [--device cpu]
                                    [--threads 1] [--backend stacked|vmap] [--compare-backends]
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
from semigrad import envs
from semigrad.algos import dqn


def config(preset: str, steps: int, device: str, **overrides) -> dqn.DQNConfig:
    return dqn.preset(preset, steps=steps, eval_every=steps, log_every=min(steps, 1000),
                      eval_episodes=1, tensorboard=False, device=device, **overrides)


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


def network_flops(cfg: dqn.DQNConfig) -> float:
    """Floating-point operations (2 per multiply-add) of one agent's gradient step, for the
    MLP of ``cfg`` (``hidden``, ``dueling``, ``double``, ``batch_size``) on ``cfg.env``."""
    env = envs.make(cfg.env, 1, device="cpu")
    widths = [env.obs_dim, *cfg.hidden, env.num_actions + (1 if cfg.dueling else 0)]
    env.close()
    layers = [a * b for a, b in zip(widths, widths[1:], strict=False)]
    forwards = 3 if cfg.double else 2
    backward = sum(layers) + sum(layers[1:])  # weight gradients; input gradients but the first
    return 2.0 * cfg.batch_size * (forwards * sum(layers) + backward)


def matmul_rate(k: int, rows: int, width: int, calls: int = 20) -> float:
    """GFLOP/s of ``torch.bmm`` on ``(k, rows, width) x (k, width, width)`` float32 (wall
    time of ``calls`` calls after one warm-up)."""
    a, b = torch.randn(k, rows, width), torch.randn(k, width, width)
    torch.bmm(a, b)
    start = time.perf_counter()
    for _ in range(calls):
        torch.bmm(a, b)
    return 2.0 * k * rows * width * width * calls / (time.perf_counter() - start) / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default=dqn.DEFAULT_PRESET,
                        help=f"DQN preset (default {dqn.DEFAULT_PRESET!r})")
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
    cfg = config(args.preset, args.steps, args.device, **overrides)
    print(describe_machine())
    if args.compare_backends:
        compare_backends(args, agents, overrides)
        return
    print(f"device {args.device}; DQN preset {args.preset!r} (num_envs {cfg.num_envs}, "
          f"batch {cfg.batch_size}, hidden {cfg.hidden}, {cfg.gradient_steps} gradient step(s) "
          f"per {cfg.train_freq} iteration(s), double {cfg.double}, learning_starts "
          f"{cfg.learning_starts}), {args.steps} env steps per agent; best of {args.repeats} "
          f"interleaved rounds (median in brackets)")
    warm = config(args.preset, 1500, args.device, **overrides)
    time_single(replace(warm, learning_starts=min(warm.learning_starts, 500)), 0)  # imports,
    time_many(replace(warm, learning_starts=min(warm.learning_starts, 500)), 2)  # first calls

    single: list[tuple[float, float]] = []
    many: dict[int, list[tuple[float, float]]] = {k: [] for k in agents}
    grad_steps = {}
    widest = max(cfg.hidden)
    rates: dict[int, list[float]] = {k: [] for k in agents}
    for _ in range(args.repeats):
        for seed in range(args.baseline_runs):
            wall, cpu, single_grad_steps = time_single(cfg, seed)
            single.append((wall, cpu))
        for k in agents:
            wall, cpu, grad_steps[k] = time_many(cfg, k)
            many[k].append((wall, cpu))
            if args.device == "cpu":
                rates[k].append(matmul_rate(k, cfg.batch_size, widest))

    # a single run stands for any seed's: K runs in a row take K x a single run's time
    walls, cpus = [w for w, _ in single], [c for _, c in single]
    med = statistics.median
    print(f"\nsingle-agent dqn.train, {len(single)} runs: training wall s best "
          f"{min(walls):.2f} / median {med(walls):.2f} "
          f"({args.steps / min(walls):,.0f} transitions/s, "
          f"{single_grad_steps / min(walls):,.0f} gradient steps/s); whole-call CPU s best "
          f"{min(cpus):.2f} / median {med(cpus):.2f}")
    flops = network_flops(cfg)
    print("\n| K | one process: train s | CPU s | us per agent env step (wall / CPU) "
          "| ms per agent gradient step (wall / CPU) | network GFLOP/s (wall / CPU) "
          "| K runs in a row: train s | speed-up (wall) | speed-up (CPU s) |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for k in agents:
        w, c = [t for t, _ in many[k]], [t for _, t in many[k]]
        seq = k * min(walls)
        note = "" if k <= args.baseline_runs else " (extrapolated)"
        work = flops * k * grad_steps[k] / 1e9
        print(f"| {k} | {min(w):.2f} [{med(w):.2f}] | {min(c):.2f} [{med(c):.2f}] "
              f"| {1e6 * min(w) / (k * args.steps):.0f} / {1e6 * min(c) / (k * args.steps):.0f} "
              f"| {1e3 * min(w) / (k * grad_steps[k]):.3f} / "
              f"{1e3 * min(c) / (k * grad_steps[k]):.3f} "
              f"| {work / min(w):.0f} / {work / min(c):.0f} | {seq:.2f}{note} "
              f"| {seq / min(w):.2f}x [{k * med(walls) / med(w):.2f}x] "
              f"| {k * min(cpus) / min(c):.2f}x [{k * med(cpus) / med(c):.2f}x] |")
    print("\nspeed-up = time of K single runs in a row / time of one process with K agents, "
          "best vs best [median vs median].\nwall: training loop only (train_s, evaluation "
          "excluded); CPU s: this process's CPU time for the whole call (set-up, training, the "
          "final evaluation, files), which other jobs on a shared machine disturb less.\n"
          "per agent env step / gradient step: the time (acting, replay, updates; best run) "
          "over all agents' env steps / gradient steps.")
    print(f"\narithmetic: {flops / 1e6:.1f} MFLOP per agent gradient step (network "
          f"multiply-adds x 2: {3 if cfg.double else 2} forward passes and one backward pass "
          f"of {cfg.batch_size} rows); the single run runs them at "
          f"{flops * single_grad_steps / min(walls) / 1e9:.0f} / "
          f"{flops * single_grad_steps / min(cpus) / 1e9:.0f} GFLOP/s (wall / CPU)")
    if args.device == "cpu":
        single_step = min(cpus) / single_grad_steps
        for k in agents:
            rate = max(rates[k])
            print(f"torch.bmm ({k}, {cfg.batch_size}, {widest}) x ({k}, {widest}, {widest}): "
                  f"{rate:.0f} GFLOP/s (best of {len(rates[k])}); K agents doing nothing but "
                  f"their multiply-adds at that rate: {single_step * rate * 1e9 / flops:.2f}x "
                  f"the single run (its CPU s)")


def compare_backends(args, agents: list[int], overrides: dict) -> None:
    """The general Q-network path (vmap + autograd) against the stacked fast path, same MLP,
    same K, rounds interleaved: training seconds and the ratio."""
    cfgs = {b: config(args.preset, args.steps, args.device, **{**overrides, "q_backend": b})
            for b in ("stacked", "vmap")}
    for cfg in cfgs.values():  # warm-up
        time_many(replace(cfg, steps=1500, eval_every=1500, log_every=1500,
                          learning_starts=min(cfg.learning_starts, 500)), 2)
    times: dict[tuple[str, int], list[float]] = {}
    for _ in range(args.repeats):
        for k in agents:
            for b, cfg in cfgs.items():
                times.setdefault((b, k), []).append(time_many(cfg, k)[0])
    print(f"\nDQN preset {args.preset!r} with {args.steps} env steps per agent, hidden "
          f"{cfgs['stacked'].hidden}, batch {cfgs['stacked'].batch_size}; training s, best of "
          f"{args.repeats} [median]\n")
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
