"""DQN on Atari: frames per second of the whole training loop (env, replay, learner) and the
replay's memory, for the `atari` preset (Nature DQN hyper-parameters) on one game.

It trains ``--steps`` agent steps (4 frames each) of ``ALE/<game>-v5`` with the preset, but
with ``--learning-starts`` steps of random play first (the preset's 50,000 would leave a short
run without learning), times the training loop (``train_s``: evaluation excluded), evaluates
greedily at the end, and prints frames/s before and after learning starts, the final score,
and the replay's bytes: as allocated for this run, and for a million transitions (the Nature
replay) against storing ``obs`` and ``next_obs`` stacks as uint8 (2 x 4 x 84 x 84 bytes per
transition). One torch thread on the CPU.

    python benchmarks/atari.py [--game Pong] [--steps 20000] [--learning-starts 5000]
                               [--device cpu] [--seeds 0]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch

from machine import describe_machine
from semigrad.algos import dqn
from semigrad.buffers import FrameStackReplay
from semigrad.config import parse_seeds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--game", default="Pong")
    parser.add_argument("--steps", type=int, default=20_000, help="agent steps (4 frames each)")
    parser.add_argument("--learning-starts", type=int, default=5_000)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seeds", default="0", help="seeds trained at once, e.g. 0-3")
    parser.add_argument("--eval-episodes", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(describe_machine())
    seeds = list(parse_seeds(args.seeds))
    cfg = dqn.preset("atari", env=f"ALE/{args.game}-v5", steps=args.steps,
                     learning_starts=args.learning_starts, eval_every=args.steps,
                     eval_episodes=args.eval_episodes, log_every=max(1000, args.steps // 20),
                     buffer_size=min(1_000_000, args.steps), tensorboard=False,
                     device=args.device)
    print(f"{cfg.env}, preset 'atari' with steps {args.steps}, learning_starts "
          f"{args.learning_starts}, device {args.device}, seeds {seeds}")
    with tempfile.TemporaryDirectory() as tmp:
        total = dqn.train(cfg, Path(tmp), seeds=seeds, progress=False)
        from semigrad.run import read_metrics

        rows = read_metrics(Path(tmp) / f"seed{seeds[0]}")
    k = len(seeds)
    frames = 4 * total["env_steps_per_agent"] * k
    print(f"\nwhole loop: {frames / total['train_s']:,.0f} frames/s over {k} agent(s) "
          f"({total['train_s']:.1f} s of training for {frames:,} frames)")
    # frames/s before and after learning starts, from the metric rows' wall seconds (the only
    # evaluation is at the end, after the last row used here)
    before = [r for r in rows if r["step"] <= args.learning_starts]
    after = [r for r in rows if args.learning_starts < r["step"] < args.steps]
    if len(before) > 1 and after:
        t0, s0 = before[-1]["wall_s"] - before[0]["wall_s"], before[-1]["step"] - before[0]["step"]
        t1, s1 = after[-1]["wall_s"] - before[-1]["wall_s"], after[-1]["step"]
        s1 -= before[-1]["step"]
        print(f"  random play: {4 * k * s0 / t0:,.0f} frames/s; learning (an update every "
              f"{cfg.train_freq} steps): {4 * k * s1 / t1:,.0f} frames/s")
    finals = [s["final_eval_return"] for s in total["per_seed"]]
    print(f"final greedy score(s): {finals} ({args.eval_episodes} episode(s) each)")
    replay = FrameStackReplay(1_000_000, (4, 84, 84), max_episode_steps=27_000)
    stacked = 2 * 4 * 84 * 84 * 1_000_000
    print(f"replay of 1M transitions: {replay.nbytes() / 1e9:.2f} GB (frames once) against "
          f"{stacked / 1e9:.1f} GB for obs and next_obs stacks as uint8 "
          f"({stacked / replay.nbytes():.1f}x); a checkpoint holds the filled part only")


if __name__ == "__main__":
    main()
