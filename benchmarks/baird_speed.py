"""Speed of ``semigrad.algos.baird.run_baird``: updates per second, per method and form.

Threads are fixed to 1 (``torch.set_num_threads(1)``). Each measurement runs ``REPEATS`` times;
the table shows the best and the median wall time (the machine may be shared, so timings are
noisy). Ratios are against the first row, measured in the same run. ``runs`` > 1 rows train that
many independent seeds at once (a batch dimension), and count updates over all runs.

    python benchmarks/baird_speed.py [--device cpu] [--steps 2000]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch

from semigrad.algos.baird import BairdConfig, run_baird

REPEATS = 5
CASES = [  # (method, update, runs)
    ("semi-gradient", "expected", 1),
    ("tdc", "expected", 1),
    ("gtd2", "expected", 1),
    ("etd", "expected", 1),
    ("semi-gradient", "sampled", 1),
    ("tdc", "sampled", 1),
    ("etd", "sampled", 1),
    ("tdc", "sampled", 256),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", type=int, default=2000)
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} "
          f"torch thread (of {__import__('os').cpu_count()} cpus), torch {torch.__version__}, "
          f"device {args.device}; best and median of {REPEATS}")
    rows, base = [], None
    for method, update, runs in CASES:
        config = BairdConfig(method=method, update=update, steps=args.steps)
        run_baird(config, device=args.device, num_runs=runs, progress=False)  # warm-up
        times = []
        for _ in range(REPEATS):
            start = time.perf_counter()
            run_baird(config, device=args.device, num_runs=runs, progress=False)
            times.append(time.perf_counter() - start)
        rate = args.steps * runs / min(times)
        base = base or rate
        rows.append((method, update, runs, min(times), statistics.median(times), rate, rate / base))
    print(f"{'method':<14} {'update':<9} {'runs':>5} {'best s':>8} {'median s':>9} "
          f"{'updates/s':>11} {'ratio':>7}")
    for method, update, runs, best, median, rate, ratio in rows:
        print(f"{method:<14} {update:<9} {runs:>5} {best:>8.3f} {median:>9.3f} {rate:>11.0f} "
              f"{ratio:>7.2f}")


if __name__ == "__main__":
    main()
