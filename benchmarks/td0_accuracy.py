"""TD(0) accuracy on CartPole: semi-gradient TD(0) against Monte Carlo at every default probe.

The issue's check at full size (the test suite runs a short version at two typical probes):
the random policy, gamma 0.95, the notebook's 4-64-64-64-1 network, Adam with alpha annealed
linearly from 3e-3 to 0, 64 environments, ``--steps`` transitions, for several seeds. Monte
Carlo: 4000 rollouts per probe from the exact state (gymnasium's dynamics). Prints, per seed
and probe, v_hat, the Monte Carlo value +- its standard error and the relative error, and
whether every probe is within 10%. One torch thread.

    python benchmarks/td0_accuracy.py [--steps 4000000] [--seeds 0 1 2] [--num-envs 64]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from machine import describe_machine
from semigrad.algos.monte_carlo import DEFAULT_PROBES, cartpole_values
from semigrad.algos.td0 import TD0Config, td0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=4_000_000)
    parser.add_argument("--num-envs", type=int, default=64)
    parser.add_argument("--alpha", type=float, default=3e-3)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--tolerance", type=float, default=0.10)
    parser.add_argument("--start-box", type=float, nargs=4, default=None,
                        metavar=("X", "X_DOT", "THETA", "THETA_DOT"),
                        help="start episodes uniformly in this box (default: CartPole's +-0.05)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(describe_machine())
    probes = torch.tensor(DEFAULT_PROBES)
    mc = cartpole_values(probes, 0.95, rollouts=4000, seed=12345)
    config = TD0Config(num_envs=args.num_envs, steps=args.steps, gamma=0.95, alpha=args.alpha,
                       alpha_end=0.0, log_every=args.steps,
                       start_box=tuple(args.start_box or ()))
    print(f"{args.steps:,} transitions, {args.num_envs} envs, Adam alpha {args.alpha:g} -> 0, "
          f"gamma 0.95; starts {args.start_box or '+-0.05'}; Monte Carlo 4000 rollouts per probe\n")
    print("| seed | probe | v_hat | Monte Carlo | rel. error |")
    print("| ---: | --- | ---: | ---: | ---: |")
    worst = []
    for seed in args.seeds:
        result = td0(config, device="cpu", seed=seed, probes=probes)
        final = result.probe_values[-1]
        rel = (final - mc.values) / mc.values
        worst.append(np.abs(rel).max())
        for i, state in enumerate(DEFAULT_PROBES):
            label = ", ".join(f"{x:g}" for x in state) + (" (notebook)" if i == 0 else "")
            print(f"| {seed} | [{label}] | {final[i]:.3f} | {mc.values[i]:.3f} +- "
                  f"{mc.stderr[i]:.3f} | {100 * rel[i]:+.1f}% |", flush=True)
    ok = all(w < args.tolerance for w in worst)
    print(f"\nworst relative error per seed: {', '.join(f'{100 * w:.1f}%' for w in worst)}; "
          f"all probes within {100 * args.tolerance:g}%: {'yes' if ok else 'NO'}")


if __name__ == "__main__":
    main()
