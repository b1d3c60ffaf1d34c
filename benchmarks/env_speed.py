"""Environment steps per second: semigrad's torch CartPole-v1, Acrobot-v1 and MountainCar-v0
against gymnasium's.

For each env (``--envs``) and N = 1, 16, 256, 4096 parallel environments, times random-action
steps (actions drawn before the timed region) of

- ``gym loop``: gymnasium's env (``gymnasium.make``), N single envs stepped in a Python loop,
  each reset when its episode ends (the classic baseline);
- ``gym vector``: gymnasium's own vector env for it: its NumPy-vectorised implementation where
  it has one (``gymnasium.make_vec(env_id, num_envs=N, vectorization_mode="vector_entry_point")``,
  CartPole-v1 only in gymnasium 1.x), else ``gymnasium.vector.SyncVectorEnv``
  (``vectorization_mode="sync"``: N single envs stepped in a Python loop inside the vector env;
  Acrobot-v1 and MountainCar-v0 have no vector entry point); the header of each table says which;
- ``semigrad``: ``TorchCartPole`` / ``TorchAcrobot`` / ``TorchMountainCar`` on the CPU (float64
  state, float32 observations, same-step reset with ``final_obs`` and episode statistics) in
  their default CPU form (one compiled loop, ``*_kernel.py``), ``ops``: the same env as tensor
  operations (``compiled=False``, the form CUDA runs), and on CUDA when present.

One torch thread (``torch.set_num_threads(1)``). The machine is shared, so every measurement is
repeated ``--repeats`` times, the implementations interleaved, and the median is shown.

    python benchmarks/env_speed.py [--envs CartPole-v1,Acrobot-v1,MountainCar-v0]
                                   [--repeats 5] [--seconds 0.2]
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import dataclass

import gymnasium as gym
import numpy as np
import torch

from machine import describe_machine
from semigrad.envs.acrobot import TorchAcrobot
from semigrad.envs.base import BatchedEnv
from semigrad.envs.cartpole import TorchCartPole
from semigrad.envs.mountain_car import TorchMountainCar

SIZES = (1, 16, 256, 4096)


@dataclass(frozen=True)
class Bench:
    """An env to time: semigrad's class, and rough costs (seconds per batched step, seconds per
    env step) of each implementation, only to choose how many steps take about ``--seconds``."""

    env_class: type[BatchedEnv]
    num_actions: int
    costs: dict[str, tuple[float, float]]


BENCHES = {
    "CartPole-v1": Bench(TorchCartPole, 2, {
        "loop": (0.0, 10e-6), "vector": (50e-6, 0.05e-6), "cpu": (20e-6, 0.01e-6),
        "ops": (100e-6, 0.02e-6), "cuda": (100e-6, 0.0)}),
    "Acrobot-v1": Bench(TorchAcrobot, 3, {
        "loop": (0.0, 50e-6), "vector": (0.0, 40e-6), "cpu": (7e-6, 0.15e-6),
        "ops": (400e-6, 0.13e-6), "cuda": (1500e-6, 0.0)}),
    "MountainCar-v0": Bench(TorchMountainCar, 3, {
        "loop": (0.0, 8e-6), "vector": (0.0, 9e-6), "cpu": (6e-6, 0.013e-6),
        "ops": (50e-6, 0.015e-6), "cuda": (150e-6, 0.0)}),
}


def steps_for(num_envs: int, seconds: float, cost: tuple[float, float]) -> int:
    """Number of batched steps that take about ``seconds`` at ``cost`` = (seconds per batched
    step, seconds per env step)."""
    per_step, per_env = cost
    return max(20, int(seconds / (per_step + per_env * num_envs)))


def vector_mode(env_id: str) -> str:
    """gymnasium's own vectorised implementation where it has one, else SyncVectorEnv."""
    return "vector_entry_point" if gym.spec(env_id).vector_entry_point else "sync"


def time_gym_loop(env_id: str, num_envs: int, steps: int, num_actions: int,
                  rng: np.random.Generator) -> float:
    envs = [gym.make(env_id) for _ in range(num_envs)]
    for i, env in enumerate(envs):
        env.reset(seed=i)
    actions = rng.integers(0, num_actions, (steps, num_envs)).tolist()
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


def time_gym_vector(env_id: str, num_envs: int, steps: int, num_actions: int,
                    rng: np.random.Generator) -> float:
    env = gym.make_vec(env_id, num_envs=num_envs, vectorization_mode=vector_mode(env_id))
    env.reset(seed=0)
    actions = rng.integers(0, num_actions, (steps, num_envs))
    start = time.perf_counter()
    for row in actions:
        env.step(row)
    elapsed = time.perf_counter() - start
    env.close()
    return steps * num_envs / elapsed


def time_semigrad(bench: Bench, num_envs: int, steps: int, device: torch.device,
                  compiled: bool | None = None) -> float:
    env = bench.env_class(num_envs, device=device, seed=0, compiled=compiled)
    env.reset()
    actions = torch.randint(0, bench.num_actions, (steps, num_envs), device=device)
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


def run_env(env_id: str, repeats: int, seconds: float, rng: np.random.Generator,
            cuda: bool) -> None:
    bench = BENCHES[env_id]
    mode = vector_mode(env_id)
    vector = ("gymnasium's NumPy-vectorised env (vector_entry_point)" if mode != "sync" else
              "gymnasium.vector.SyncVectorEnv (gymnasium has no vectorised "
              f"{env_id.split('-')[0]}: a Python loop over N envs)")
    print(f"\n{env_id}: gym vector = {vector}")
    header = (f"{'N':>5} {'gym loop':>10} {'gym vector':>11} {'semigrad cpu':>13} "
              f"{'vs loop':>8} {'vs vector':>10} {'ops cpu':>9} {'ops vs vector':>14}"
              + (f" {'semigrad cuda':>14}" if cuda else ""))
    print(header)
    print("-" * len(header))
    cpu_device = torch.device("cpu")
    for num_envs in SIZES:
        rates: dict[str, list[float]] = {"loop": [], "vector": [], "cpu": [], "ops": [],
                                         "cuda": []}

        def steps(kind: str, n: int = num_envs) -> int:
            return steps_for(n, seconds, bench.costs[kind])

        for _ in range(repeats):
            rates["loop"].append(time_gym_loop(env_id, num_envs, steps("loop"),
                                               bench.num_actions, rng))
            rates["vector"].append(time_gym_vector(env_id, num_envs, steps("vector"),
                                                   bench.num_actions, rng))
            rates["cpu"].append(time_semigrad(bench, num_envs, steps("cpu"), cpu_device))
            rates["ops"].append(time_semigrad(bench, num_envs, steps("ops"), cpu_device,
                                              compiled=False))
            if cuda:
                rates["cuda"].append(time_semigrad(bench, num_envs, steps("cuda"),
                                                   torch.device("cuda")))
        med = {key: statistics.median(values) for key, values in rates.items() if values}
        line = (f"{num_envs:>5} {med['loop']:>10.3g} {med['vector']:>11.3g} {med['cpu']:>13.3g} "
                f"{med['cpu'] / med['loop']:>7.1f}x {med['cpu'] / med['vector']:>9.2f}x "
                f"{med['ops']:>9.3g} {med['ops'] / med['vector']:>13.2f}x")
        if cuda:
            line += f" {med['cuda']:>14.3g}"
        print(line, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", default=",".join(BENCHES),
                        help=f"comma-separated env ids among {', '.join(BENCHES)} (default: all)")
    parser.add_argument("--repeats", type=int, default=5, help="rounds; the median is shown")
    parser.add_argument("--seconds", type=float, default=0.2, help="about this long per timing")
    args = parser.parse_args()
    env_ids = [name.strip() for name in args.envs.split(",") if name.strip()]
    unknown = [name for name in env_ids if name not in BENCHES]
    if unknown or not env_ids:
        parser.error(f"--envs: expected ids among {', '.join(BENCHES)}, got {args.envs!r}")
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    cuda = torch.cuda.is_available()
    print(describe_machine())
    print(f"env steps/s, median of {args.repeats} interleaved rounds; 1 torch thread")
    for env_id in env_ids:
        run_env(env_id, args.repeats, args.seconds, rng, cuda)
    print("\nvs loop / vs vector: semigrad cpu steps/s over gymnasium's single-env loop / "
          "gymnasium's vector env (goals: >= 20x at N = 256, >= 2x at N = 4096); ops: the same "
          "env as tensor operations (compiled=False)")


if __name__ == "__main__":
    main()
