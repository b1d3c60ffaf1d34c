"""Environment steps per second: semigrad's torch CartPole-v1 against gymnasium's.

For N = 1, 16, 256, 4096 parallel environments, times random-action steps (actions drawn before
the timed region) of

- ``gym loop``: gymnasium's ``CartPole-v1`` (``gymnasium.make``), N single envs stepped in a
  Python loop, each reset when its episode ends (the classic baseline);
- ``gym vector``: gymnasium's own NumPy-vectorised CartPole,
  ``gymnasium.make_vec("CartPole-v1", num_envs=N, vectorization_mode="vector_entry_point")``;
- ``semigrad``: ``semigrad.envs.cartpole.TorchCartPole`` on the CPU (float64 state, float32
  observations, same-step reset with ``final_obs`` and episode statistics) in its default CPU
  form (one compiled loop, ``cartpole_kernel``), ``ops``: the same env as tensor operations
  (``compiled=False``, the form CUDA runs), and on CUDA when present.

One torch thread (``torch.set_num_threads(1)``). The machine is shared, so every measurement is
repeated ``--repeats`` times, the three implementations interleaved, and the median is shown.

    python benchmarks/env_speed.py [--repeats 5] [--seconds 0.2]
"""

from __future__ import annotations

import argparse
import statistics
import time

import gymnasium as gym
import numpy as np
import torch

from machine import describe_machine
from semigrad.envs.cartpole import TorchCartPole

SIZES = (1, 16, 256, 4096)


def steps_for(num_envs: int, seconds: float, rate_guess: float) -> int:
    """Number of batched steps that take about ``seconds`` at ``rate_guess`` env steps/s."""
    return max(20, int(seconds * rate_guess / num_envs))


def time_gym_loop(num_envs: int, steps: int, rng: np.random.Generator) -> float:
    envs = [gym.make("CartPole-v1") for _ in range(num_envs)]
    for i, env in enumerate(envs):
        env.reset(seed=i)
    actions = rng.integers(0, 2, (steps, num_envs)).tolist()
    start = time.perf_counter()
    for row in actions:
        for env, action in zip(envs, row, strict=True):
            _, _, terminated, truncated, _ = env.step(action)
            if terminated or truncated:
                env.reset()
    elapsed = time.perf_counter() - start
    for env in envs:
        env.close()
    return steps * num_envs / elapsed


def time_gym_vector(num_envs: int, steps: int, rng: np.random.Generator) -> float:
    env = gym.make_vec("CartPole-v1", num_envs=num_envs, vectorization_mode="vector_entry_point")
    env.reset(seed=0)
    actions = rng.integers(0, 2, (steps, num_envs))
    start = time.perf_counter()
    for row in actions:
        env.step(row)
    elapsed = time.perf_counter() - start
    env.close()
    return steps * num_envs / elapsed


def time_semigrad(num_envs: int, steps: int, device: torch.device,
                  compiled: bool | None = None) -> float:
    env = TorchCartPole(num_envs, device=device, seed=0, compiled=compiled)
    env.reset()
    actions = torch.randint(0, 2, (steps, num_envs), device=device)
    for row in actions[:10]:  # warm-up
        env.step(row)
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for row in actions:
        env.step(row)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return steps * num_envs / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="rounds; the median is shown")
    parser.add_argument("--seconds", type=float, default=0.2, help="about this long per timing")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    cuda = torch.cuda.is_available()
    print(describe_machine())
    print(f"env steps/s, median of {args.repeats} interleaved rounds; 1 torch thread")
    header = (f"{'N':>5} {'gym loop':>10} {'gym vector':>11} {'semigrad cpu':>13} "
              f"{'vs loop':>8} {'vs vector':>10} {'ops cpu':>9} {'ops vs vector':>14}"
              + (f" {'semigrad cuda':>14}" if cuda else ""))
    print(header)
    print("-" * len(header))
    for num_envs in SIZES:
        rates: dict[str, list[float]] = {"loop": [], "vector": [], "cpu": [], "ops": [],
                                         "cuda": []}
        for _ in range(args.repeats):
            rates["loop"].append(time_gym_loop(
                num_envs, steps_for(num_envs, args.seconds, 1e5), rng))
            rates["vector"].append(time_gym_vector(
                num_envs, steps_for(num_envs, args.seconds, 2e4 * num_envs), rng))
            rates["cpu"].append(time_semigrad(
                num_envs, steps_for(num_envs, args.seconds, 4e4 * num_envs), torch.device("cpu")))
            rates["ops"].append(time_semigrad(
                num_envs, steps_for(num_envs, args.seconds, 1e4 * num_envs), torch.device("cpu"),
                compiled=False))
            if cuda:
                rates["cuda"].append(time_semigrad(
                    num_envs, steps_for(num_envs, args.seconds, 1e4 * num_envs),
                    torch.device("cuda")))
        med = {key: statistics.median(values) for key, values in rates.items() if values}
        line = (f"{num_envs:>5} {med['loop']:>10.3g} {med['vector']:>11.3g} {med['cpu']:>13.3g} "
                f"{med['cpu'] / med['loop']:>7.1f}x {med['cpu'] / med['vector']:>9.2f}x "
                f"{med['ops']:>9.3g} {med['ops'] / med['vector']:>13.2f}x")
        if cuda:
            line += f" {med['cuda']:>14.3g}"
        print(line)
    print("vs loop / vs vector: semigrad cpu steps/s over gymnasium's single-env loop / "
          "gymnasium's vectorised CartPole (goals: >= 20x at N = 256, >= 2x at N = 4096); "
          "ops: the same env as tensor operations (compiled=False)")


if __name__ == "__main__":
    main()
