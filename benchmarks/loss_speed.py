"""Q-learning loss speed: per-sample reference vs batched vs an inline eager formula.

The batched loss is ``td_error_loss(q_learning(q, a, r, fold_termination(gamma, terminated),
next_q))`` from ``semigrad.losses``, the per-sample one ``q_learning_loss_per_sample`` (the
seed question's loop). Times forward (online net on S, target net on S') + loss + backward for
a small MLP
(obs 8 -> 64 -> 64 -> 4 actions) at batch sizes 32, 128, 512, 2048, on CPU (one thread) and on
CUDA when present. Prints a table with the batched loss's speed-up over the per-sample loop and
its ratio to the inline formula (>= 0.9 means the checks and the function call cost < 10%).

    python benchmarks/loss_speed.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from machine import describe_machine
from semigrad.losses import (
    fold_termination,
    q_learning,
    q_learning_loss_per_sample,
    td_error_loss,
)
from semigrad.nets import QNetwork

OBS_DIM, NUM_ACTIONS, GAMMA = 8, 4, 0.99


def inline_loss(q, actions, rewards, next_q_target, terminated, gamma):
    """The same formula written inline in plain eager PyTorch (the baseline)."""
    predicted = q.gather(1, actions.unsqueeze(1)).squeeze(1)
    with torch.no_grad():
        target = rewards + gamma * (1.0 - terminated.float()) * next_q_target.max(1).values
    return F.mse_loss(predicted, target)


def batched_loss(q, actions, rewards, next_q_target, terminated, gamma):
    """semigrad's checked functions, the discount folded in the timed step as inline does."""
    discount = fold_termination(gamma, terminated)
    return td_error_loss(q_learning(q, actions, rewards, discount, next_q_target))


def per_sample_loss(q, actions, rewards, next_q_target, terminated, gamma):
    discount = fold_termination(gamma, terminated)
    return q_learning_loss_per_sample(q, actions, rewards, discount, next_q_target)


def make_batch(batch: int, device: torch.device, gen: torch.Generator):
    return (
        torch.randn(batch, OBS_DIM, generator=gen).to(device),
        torch.randint(NUM_ACTIONS, (batch,), generator=gen).to(device),
        torch.randn(batch, generator=gen).to(device),
        torch.randn(batch, OBS_DIM, generator=gen).to(device),
        (torch.rand(batch, generator=gen) < 0.1).to(device),
    )


def time_step(loss_fn, online, target, data, iters: int, device: torch.device) -> float:
    """Seconds per forward + loss + backward, the best median over the given iterations."""
    states, actions, rewards, next_states, terminated = data

    def step():
        online.zero_grad(set_to_none=True)
        with torch.no_grad():
            next_q = target(next_states)
        loss = loss_fn(online(states), actions, rewards, next_q, terminated, GAMMA)
        loss.backward()

    for _ in range(max(3, iters // 10)):
        step()
    samples = []
    for _ in range(iters):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="rounds; the best median is kept")
    args = parser.parse_args()
    torch.set_num_threads(1)
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    print(describe_machine())
    header = (f"{'device':>6} {'batch':>6} {'per-sample ms':>14} {'batched ms':>11} "
              f"{'inline ms':>10} {'speed-up':>9} {'batched/inline':>15}")
    print(header)
    print("-" * len(header))
    gen = torch.Generator().manual_seed(0)
    for device in devices:
        torch.manual_seed(0)
        online = QNetwork(OBS_DIM, NUM_ACTIONS, hidden=(64, 64)).to(device)
        target = QNetwork(OBS_DIM, NUM_ACTIONS, hidden=(64, 64)).to(device)
        for batch in (32, 128, 512, 2048):
            data = make_batch(batch, device, gen)
            loop_iters = max(3, 2000 // batch)
            best = {"loop": float("inf"), "batched": float("inf"), "inline": float("inf")}
            for _ in range(args.repeats):
                best["loop"] = min(best["loop"], time_step(
                    per_sample_loss, online, target, data, loop_iters, device))
                # interleave batched and inline so both see the same machine load
                best["batched"] = min(best["batched"], time_step(
                    batched_loss, online, target, data, 200, device))
                best["inline"] = min(best["inline"], time_step(
                    inline_loss, online, target, data, 200, device))
            print(f"{device.type:>6} {batch:>6} {best['loop'] * 1e3:>14.3f} "
                  f"{best['batched'] * 1e3:>11.3f} {best['inline'] * 1e3:>10.3f} "
                  f"{best['loop'] / best['batched']:>8.1f}x "
                  f"{best['inline'] / best['batched']:>15.2f}")
    print("speed-up = per-sample / batched;  batched/inline = inline time / batched time "
          "(>= 0.9: the batched loss is as fast as the plain formula)")


if __name__ == "__main__":
    main()
