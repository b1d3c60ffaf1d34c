"""DQN on a CUDA device: does each path run, learn, resume exactly, and how fast is it.

A check for a machine with a GPU (CI has none, so this is not in ``make test``). For the
stacked (fast) and vmap (general) Q-network backends it trains CartPole-v1 with the default
preset for ``--steps`` env steps, one seed and ``--agents`` seeds at once, and reports training
seconds, the final greedy evaluation, whether a run stopped half-way and resumed ends with the
uninterrupted run's weights (bit for bit), and whether agent k of the many-seed run equals the
single run with seed k (exactly, or the largest weight difference: CUDA's batched kernels may
round differently from its single-agent ones).

    python benchmarks/cuda_check.py [--device cuda] [--steps 5000] [--agents 4]
"""

from __future__ import annotations

import argparse
import tempfile
from dataclasses import replace
from pathlib import Path

import torch

from machine import describe_machine
from semigrad.algos import dqn


def max_difference(a: dict, b: dict) -> float:
    return max((a[n].float() - b[n].float()).abs().max().item() for n in a)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--steps", type=int, default=5_000)
    parser.add_argument("--agents", type=int, default=4)
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(describe_machine())
    warm = dqn.preset(steps=1500, eval_every=1500, tensorboard=False, device=args.device)
    for backend in ("stacked", "vmap"):  # first calls: kernels, compilation
        with tempfile.TemporaryDirectory() as tmp:
            dqn.train(replace(warm, q_backend=backend), Path(tmp), seeds=[0, 1],
                      progress=False)
    print("| backend | K | train s | final eval (median) | resume exact | agent 1 vs seed 1 |")
    print("| --- | ---: | ---: | ---: | --- | --- |")
    for backend in ("stacked", "vmap"):
        cfg = dqn.preset(steps=args.steps, eval_every=args.steps // 2, tensorboard=False,
                         device=args.device, q_backend=backend, seed=1)
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            single = dqn.train(cfg, tmp / "single", progress=False)
            dqn.train(cfg, tmp / "part", progress=False, stop_after=args.steps // 2 + 100)
            dqn.train(cfg, tmp / "part", progress=False, resume=True)
            w_full = dqn.load_agent(tmp / "single", "last").net.state_dict()
            w_part = dqn.load_agent(tmp / "part", "last").net.state_dict()
            exact = all(torch.equal(w_full[n], w_part[n]) for n in w_full)
            print(f"| {backend} | 1 | {single['train_s']:.2f} | "
                  f"{single['final_eval_return']:.1f} | {exact} | - |", flush=True)
            seeds = list(range(args.agents))
            many = dqn.train(cfg, tmp / "many", seeds=seeds, progress=False)
            w_agent = dqn.load_agent(tmp / "many" / "seed1", "last").net.state_dict()
            diff = max_difference(w_full, w_agent)
            same = "bit-identical" if diff == 0 else f"max |diff| {diff:.2e}"
            print(f"| {backend} | {args.agents} | {many['train_s']:.2f} | "
                  f"{many['final_eval_return']['median']:.1f} | - | {same} |", flush=True)


if __name__ == "__main__":
    main()
