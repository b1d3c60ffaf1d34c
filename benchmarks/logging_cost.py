"""What metrics and records cost: each algorithm's training with its default logging against
the same training with logging all but off, in the same process.

For TD(0) (probes recorded every ``log_every`` transitions into metrics.csv and TensorBoard,
as `semigrad td0` does), SARSA (a row every ``log_every`` transitions) and DQN (a row every
``log_every`` env steps; evaluations and checkpoints are counted apart, in ``eval_s``) it times
the training loop with the default ``log_every`` and with ``log_every`` = 10^9 (one row at the
end), rounds interleaved, and prints the transitions per second of both and the cost
``1 - logged / unlogged``. One torch thread.

    python benchmarks/logging_cost.py [--repeats 5] [--num-envs 8]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from dataclasses import replace
from pathlib import Path

import torch

from machine import describe_machine
from semigrad.algos import dqn, sarsa
from semigrad.algos import td0 as td0_algo
from semigrad.algos.sarsa import SarsaConfig
from semigrad.algos.td0 import TD0Config

OFF = 10**9


def time_td0(cfg: TD0Config, folder: Path) -> float:
    """Transitions/s of `semigrad td0`'s run: probes logged to metrics.csv and TensorBoard."""
    summary = td0_algo.train(cfg, folder, progress=False)
    return summary["env_steps"] / summary["train_s"]


def time_sarsa(cfg: SarsaConfig, folder: Path) -> float:
    summary = sarsa.train(cfg, folder, progress=False)
    return summary["env_steps"] / summary["train_s"]


def time_dqn(cfg: dqn.DQNConfig, folder: Path) -> float:
    summary = dqn.train(cfg, folder, progress=False)
    return summary["env_steps"] / summary["train_s"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--num-envs", type=int, default=None,
                        help="TD(0)'s parallel envs (default: its config's)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(describe_machine())
    td0_cfg = TD0Config(device="cpu", eval_every=10**9,
                        **({} if args.num_envs is None else {"num_envs": args.num_envs}))
    cases = {
        f"td0 ({td0_cfg.num_envs} envs, {td0_cfg.steps:,} transitions, log_every "
        f"{td0_cfg.log_every})": (time_td0, td0_cfg, "log_every"),
        f"sarsa ({SarsaConfig().steps:,} transitions, log_every {SarsaConfig().log_every}, "
        "no evaluation)": (time_sarsa, SarsaConfig(eval_every=10**9, device="cpu"), "log_every"),
        f"dqn (preset, 20,000 env steps, log_every {dqn.preset().log_every}, no evaluation)":
            (time_dqn, dqn.preset(steps=20_000, eval_every=10**9, device="cpu"), "log_every"),
    }
    rates: dict[tuple[str, bool], list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, (fn, cfg, _) in cases.items():  # warm-up: imports, first calls, compilation
            fn(replace(cfg, **({"steps": 2_000} if name.startswith(("td0", "sarsa"))
                               else {})), Path(tmp) / f"warm-{name[:3]}")
        for r in range(args.repeats):
            for name, (fn, cfg, field) in cases.items():
                for logged in (True, False):
                    run = replace(cfg, **({} if logged else {field: OFF}))
                    rate = fn(run, Path(tmp) / f"{name[:3]}-{r}-{logged}")
                    rates.setdefault((name, logged), []).append(rate)
    print(f"\ntransitions/s of the training loop, median of {args.repeats} interleaved rounds\n")
    print("| algorithm | default logging | logging off | cost |")
    print("| --- | ---: | ---: | ---: |")
    for name in cases:
        on, off = (statistics.median(rates[(name, flag)]) for flag in (True, False))
        print(f"| {name} | {on:,.0f} | {off:,.0f} | {100 * (1 - on / off):.1f}% |")


if __name__ == "__main__":
    main()
