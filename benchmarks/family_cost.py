"""The cost per frame of each piece of the Rainbow family on MinAtar, against DQN, in one script.

Every row trains K agents (``--agents``) on one MinAtar game (``--game``) with the family's
MinAtar protocol (the ``rainbow`` preset's fields: an update of batch 32 every 4 frames, a
target copy every 250 updates, 3-step returns, Double targets, Adam), so that the rows differ
by the piece alone:

* ``dqn (fast path)``: DQN with the MinAtar network on the stacked fast path (hand-written
  backward, no autograd), uniform replay: semigrad's DQN;
* ``dqn (general path)``: the same on the general path (``q_backend vmap``: ``nn.Conv2d``
  under autograd), the path every piece below runs on, so the pieces' own costs read
  against it;
* ``+ prioritized``, ``+ dueling``, ``+ noisy``: DQN on the general path with that piece on;
* ``c51``, ``qrdqn``: DQN's learner with the categorical (51 atoms) or quantile (51) head;
* ``rainbow``: all of them (the ``rainbow minatar-<game>`` preset).

Each row plays ``--fill`` frames first (learning starts at 1,000), then times ``--frames``
frames of the whole loop (acting, replay, updates) in ``--repeats`` rounds interleaved across
the rows; the table shows the median round's CPU time per frame (``time.process_time``:
another job on the machine stretches wall times much more than CPU times) and the ratio to
both DQN rows. One torch thread, CPU.

    python benchmarks/family_cost.py [--game breakout] [--agents 1] [--fill 2000]
                                     [--frames 2000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from machine import describe_machine
from semigrad.algos import c51, dqn, qrdqn, rainbow

FAMILY_FIELDS = ("num_atoms", "v_min", "v_max")


def rows(game: str) -> list[tuple[str, object, object]]:
    """``(label, module, config)`` of each row: the rainbow preset with pieces off or on."""
    preset = f"minatar-{game}"
    base = {k: v for k, v in rainbow.preset_fields(preset, {}).items()
            if k not in FAMILY_FIELDS}
    plain = {**base, "noisy": False, "dueling": False, "prioritized": False,
             "epsilon_start": 1.0, "epsilon_end": 0.01, "epsilon_fraction": 0.05,
             "tensorboard": False, "device": "cpu"}
    general = {**plain, "q_backend": "vmap"}
    distributional = {"num_atoms": 51, "v_min": -100.0, "v_max": 100.0}
    return [
        ("dqn (fast path)", dqn, dqn.DQNConfig(**{**plain, "q_backend": "stacked"})),
        ("dqn (general path)", dqn, dqn.DQNConfig(**general)),
        ("+ prioritized", dqn, dqn.DQNConfig(**{**general, "prioritized": True,
                                                "priority_alpha": 0.5})),
        ("+ dueling", dqn, dqn.DQNConfig(**{**general, "dueling": True})),
        ("+ noisy", dqn, dqn.DQNConfig(**{**general, "noisy": True, "epsilon_start": 0.0,
                                          "epsilon_end": 0.0})),
        ("c51", c51, c51.C51Config(**{**general, **distributional})),
        ("qrdqn", qrdqn, qrdqn.QRDQNConfig(**{**general, "num_quantiles": 51})),
        ("rainbow", rainbow, rainbow.preset(preset, tensorboard=False, device="cpu")),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--game", default="breakout")
    parser.add_argument("--agents", type=int, default=1)
    parser.add_argument("--fill", type=int, default=2_000)
    parser.add_argument("--frames", type=int, default=2_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(describe_machine())
    cpu = torch.device("cpu")
    seeds = list(range(args.agents))
    runs = []
    for label, module, cfg in rows(args.game):
        st = module.init(cfg, seeds, cpu)
        steps = 0
        while steps < args.fill:
            steps += module.iterate(cfg, st, steps)
        runs.append([label, module, cfg, st, steps, []])
    for _ in range(args.repeats):
        for run in runs:
            _, module, cfg, st, steps, times = run
            c0, end = time.process_time(), steps + args.frames
            while steps < end:
                steps += module.iterate(cfg, st, steps)
            times.append((time.process_time() - c0) / args.frames)
            run[4] = steps
    print(f"\nMinAtar {args.game}, K = {args.agents}, {args.frames:,} frames x {args.repeats} "
          f"rounds after {args.fill:,} (median round), CPU us per frame (all K agents)")
    print("| row | us per frame | x dqn (fast path) | x dqn (general path) |")
    print("| --- | ---: | ---: | ---: |")
    med = {run[0]: statistics.median(run[5]) * 1e6 for run in runs}
    fast, general = med["dqn (fast path)"], med["dqn (general path)"]
    for label, us in med.items():
        print(f"| {label} | {us:,.0f} | {us / fast:.2f} | {us / general:.2f} |")


if __name__ == "__main__":
    main()
