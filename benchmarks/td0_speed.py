"""TD(0) speed: the course notebook's loop against semigrad's TD(0), in transitions per second.

The baseline is the notebook's loop re-implemented faithfully (seed 001, "Value function
approximation - Semi gradient"): one gymnasium CartPole-v1, its 4-64-64-64-1 network, Adam with
lr 1e-4, two forward passes per step on tensors built from NumPy, the notebook's "loss"
``alpha * (R + gamma v(S') - v(S))``, backward, step. semigrad's rows run ``semigrad.algos.td0``
(the semi-gradient rule, same network and optimizer) with 1 and 64 environments, on the same
number of transitions; variants show what the hand-written backprop (``fast_path``) and the
torch-native environment contribute.

One torch thread (``torch.set_num_threads(1)``). The machine is shared and noisy: each row is
the median of ``--repeats`` runs.

    python benchmarks/td0_speed.py [--transitions 20000] [--repeats 3] [--device cpu]
"""

from __future__ import annotations

import argparse
import statistics
import time

import gymnasium as gym
import torch
import torch.nn.functional as F
from torch import nn

from machine import describe_machine
from semigrad.algos.td0 import TD0Config, td0


class NotebookValueFunction(nn.Module):
    """The notebook's network, as written there."""

    def __init__(self, input_size, hidden_dim):
        super().__init__()
        self.linear1 = nn.Linear(input_size, hidden_dim)
        self.linear2 = nn.Linear(hidden_dim, hidden_dim)
        self.linear3 = nn.Linear(hidden_dim, hidden_dim)
        self.linear4 = nn.Linear(hidden_dim, 1)

    def forward(self, data):
        x = F.relu(self.linear1(data))
        x = F.relu(self.linear2(x))
        x = F.relu(self.linear3(x))
        return self.linear4(x)


def notebook_loop(transitions: int, device: str, seed: int) -> float:
    """The notebook's cell, step for step; returns transitions per second."""
    env = gym.make("CartPole-v1")
    state, info = env.reset(seed=seed)
    env.action_space.seed(seed)
    torch.manual_seed(seed)
    model = NotebookValueFunction(4, 64).to(device)
    optim = torch.optim.Adam(params=model.parameters(), lr=1e-4)
    alpha, gamma = 0.8, 0.95
    start = time.perf_counter()
    for _ in range(transitions):
        action = env.action_space.sample()
        next_state, reward, terminated, truncated, info = env.step(action)
        optim.zero_grad()
        output = model(torch.tensor(state).to(device))
        loss = alpha * (reward + gamma * model(torch.tensor(next_state).to(device)) - output)
        loss.backward()
        optim.step()
        if terminated or truncated:
            state, info = env.reset()
        else:
            state = next_state
    seconds = time.perf_counter() - start
    env.close()
    return transitions / seconds


def semigrad_td0(transitions: int, device: str, seed: int, **overrides) -> float:
    """semigrad's TD(0) on ``transitions`` transitions; returns transitions per second."""
    settings = {"hidden": (64, 64, 64), "optimizer": "adam", "alpha": 1e-4, "alpha_end": 1e-4,
                "log_every": 10**9, **overrides}
    config = TD0Config(steps=transitions, **settings)
    result = td0(config, device=device, seed=seed)
    if result.divergence is not None or result.steps < transitions:
        raise RuntimeError(f"{overrides}: {result.divergence}")
    return result.steps_per_second


ROWS = [
    # label, num_envs, overrides, goal (x the notebook loop)
    ("semigrad, 1 env, Adam", 1, {}, 5),
    ("semigrad, 1 env, SGD (textbook step)", 1, {"optimizer": "sgd", "alpha": 1e-3,
                                                 "alpha_end": 1e-3}, 5),
    ("semigrad, 1 env, Adam, autograd (fast_path off)", 1, {"fast_path": False}, None),
    ("semigrad, 1 env, Adam, gymnasium env", 1, {"env": "gymnasium:CartPole-v1"}, None),
    ("semigrad, 64 envs, Adam", 64, {}, 200),
    ("semigrad, 64 envs, SGD (textbook step)", 64, {"optimizer": "sgd", "alpha": 1e-3,
                                                    "alpha_end": 1e-3}, 200),
    ("semigrad, 64 envs, Adam, autograd (fast_path off)", 64, {"fast_path": False}, None),
    ("semigrad, 64 envs, Adam, gymnasium env", 64, {"env": "gymnasium:CartPole-v1"}, None),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transitions", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(describe_machine())
    print(f"{args.transitions:,} transitions per run, median of {args.repeats} runs, "
          f"device {args.device}, 1 torch thread\n")

    # Rounds interleave all rows, so that a burst of load from other jobs hits every row alike.
    baseline_rates: list[float] = []
    rates: list[list[float]] = [[] for _ in ROWS]
    for round_ in range(args.repeats):
        baseline_rates.append(notebook_loop(args.transitions, args.device, round_))
        for i, (_, num_envs, overrides, _) in enumerate(ROWS):
            rates[i].append(semigrad_td0(args.transitions, args.device, round_,
                                         num_envs=num_envs, **overrides))
        print(f"round {round_ + 1}/{args.repeats} done", flush=True)
    baseline = statistics.median(baseline_rates)
    print("\n| run | transitions/s | x notebook | goal |")
    print("| --- | ---: | ---: | ---: |")
    print(f"| notebook loop (baseline), 1 env, Adam | {baseline:,.0f} | 1.0x | |")
    for (label, _, _, goal), row_rates in zip(ROWS, rates, strict=True):
        rate = statistics.median(row_rates)
        goal_text = "" if goal is None else (f">= {goal}x " + ("met" if rate / baseline >= goal
                                                              else "NOT met"))
        print(f"| {label} | {rate:,.0f} | {rate / baseline:.1f}x | {goal_text} |")


if __name__ == "__main__":
    main()
