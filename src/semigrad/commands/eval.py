"""``semigrad eval RUN_DIR``: play greedy episodes with a trained DQN (and draw a GIF)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import torch

from semigrad import policies
from semigrad.algos import dqn
from semigrad.commands._common import add_run_arguments, finish_run, start_run
from semigrad.devices import resolve_device
from semigrad.run import atomic_write_bytes, check_output_file, format_summary

NAME = "eval"
HELP = "play greedy episodes with a trained agent; optionally write a GIF"
DESCRIPTION = """\
Load the best (default) or last checkpoint of a `semigrad train` run, play greedy episodes in
parallel, print the mean and standard deviation of the return, and optionally write an animated
GIF of one episode. With --run-dir the results are also written there (config.json,
summary.json); without it nothing is written but the GIF.

  semigrad eval runs/train-20261121-101500-s0 --episodes 100
  semigrad eval runs/train-20261121-101500-s0 --gif cartpole.gif
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("train_dir", type=Path, metavar="RUN_DIR", help="a semigrad train run")
    parser.add_argument("--episodes", type=int, default=20, help="greedy episodes (default: 20)")
    parser.add_argument("--checkpoint", choices=("best", "last"), default="best",
                        help="which checkpoint to load (default: best)")
    parser.add_argument("--gif", type=Path, default=None, help="write one episode as a GIF")
    add_run_arguments(parser)


def write_gif(net, env_id: str, path: Path, seed: int, device: torch.device) -> int:
    """Render one greedy episode of ``env_id`` as an animated GIF; return its length."""
    import gymnasium as gym
    from PIL import Image

    # off-screen rendering: no display, no sound device (else SDL prints e.g. "error:
    # XDG_RUNTIME_DIR is invalid" on success)
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
    env = gym.make(env_id.removeprefix("gymnasium:"), render_mode="rgb_array")
    obs, _ = env.reset(seed=seed)
    frames = [env.render()]
    done = False
    while not done:
        with torch.no_grad():
            q = net(torch.as_tensor(obs, dtype=torch.float32, device=device).unsqueeze(0))
        obs, _, terminated, truncated, _ = env.step(int(q.argmax(dim=1).item()))
        done = terminated or truncated
        frames.append(env.render())
    env.close()
    images = [Image.fromarray(f) for f in frames[::2]]
    import io

    buf = io.BytesIO()
    images[0].save(buf, format="GIF", save_all=True, append_images=images[1:], duration=40,
                   loop=0)
    atomic_write_bytes(path, buf.getvalue())
    return len(frames) - 1


def run(args: argparse.Namespace) -> int:
    if args.episodes < 1:
        raise ValueError(f"--episodes: expected >= 1, got {args.episodes}")
    if args.gif is not None:
        if args.gif.suffix.lower() != ".gif":
            raise ValueError(f"--gif {args.gif}: expected a file name ending in .gif")
        check_output_file(args.gif, "--gif")  # before any episode is played
    device = resolve_device(args.device)
    agent = dqn.load_agent(args.train_dir, args.checkpoint, device)
    net, cfg = agent.net, agent.cfg
    run_dir = None
    if args.run_dir is not None:  # a record only where asked for: no stray folders in runs/
        run_dir = start_run(args, NAME, {"train_dir": str(args.train_dir), "env": cfg.env,
                                         "checkpoint": args.checkpoint,
                                         "episodes": args.episodes})
    returns = policies.evaluate(agent.act, cfg.env, args.episodes, seed=args.seed,
                                device=device)
    summary = {"env": cfg.env, "episodes": args.episodes,
               "mean_return": returns.mean().item(),
               "std_return": returns.std(unbiased=False).item(),
               "min_return": returns.min().item(), "max_return": returns.max().item(),
               "returns": returns.tolist()}
    if args.gif is not None:
        summary["gif"] = str(args.gif)
        summary["gif_episode_length"] = write_gif(net, cfg.env, args.gif, args.seed, device)
    title = f"semigrad eval ({args.checkpoint} checkpoint)"
    shown = {k: v for k, v in summary.items() if k != "returns"}
    if run_dir is None:
        print(format_summary(title, shown))
    else:
        finish_run(run_dir, title, summary, shown=shown)
    return 0
