"""``semigrad eval RUN_DIR``: play greedy episodes with a trained DQN (and draw a GIF)."""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from semigrad import envs, policies, trainer
from semigrad.commands._common import add_run_arguments, finish_run, start_run
from semigrad.config import count_arg, parse_path
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
  semigrad eval runs/breakout/seed0 --gif breakout.gif --gif-steps 2000

The GIF shows the env the agent trained on: gymnasium's drawing for classic control and
Box2D, the game screen for Atari, the coloured grid for MinAtar.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("train_dir", type=parse_path, metavar="RUN_DIR",
                        help="a semigrad train run")
    parser.add_argument("--episodes", type=count_arg(1, policies.MAX_PARALLEL_EPISODES),
                        default=20, help="greedy episodes, played at once (default: 20, at most "
                        f"{policies.MAX_PARALLEL_EPISODES})")
    parser.add_argument("--checkpoint", choices=("best", "last"), default="best",
                        help="which checkpoint to load (default: best)")
    parser.add_argument("--gif", type=parse_path, default=None, help="write one episode as a GIF")
    parser.add_argument("--gif-steps", type=count_arg(1), default=5_000,
                        help="cut the GIF's episode after this many steps (default: 5000)")
    add_run_arguments(parser)


def write_gif(agent: trainer.TrainedAgent, env_id: str, path: Path, seed: int,
              device: torch.device, max_steps: int) -> tuple[int, bool]:
    """Play one greedy episode of ``env_id`` (seeded ``seed``) with ``agent`` in the env it
    trained on and write it as an animated GIF, each frame drawn by that env's ``render``
    (gymnasium's renderer for classic control, the game screen for Atari, the coloured grid
    for MinAtar), at the env's own speed (at most 25 frames a second: CartPole's 50 keep every
    other frame). The episode is cut after ``max_steps`` steps. Returns (steps played,
    whether the episode ended within them)."""
    import io
    import math

    from PIL import Image

    env = envs.make(env_id, num_envs=1, device=device, seed=seed, render=True)
    stride = max(1, math.ceil(env.render_fps / 25))
    duration_ms = round(1000 * stride / env.render_fps)
    # each frame as a palette image right away: a long Atari game's RGB screens would not fit
    frames = []
    try:
        obs = env.reset()
        steps, finished = 0, False
        while True:
            if steps % stride == 0:
                frames.append(Image.fromarray(env.render(0)).convert("P",
                                                                     palette=Image.ADAPTIVE))
            if steps == max_steps:
                break
            obs, _, _, _, info = env.step(agent.act(obs))
            steps += 1
            # an episode has ended where its return is reported (an Atari life lost is
            # terminal for learning, but the game goes on)
            if not math.isnan(info["episode_return"][0].item()):
                finished = True  # obs is already the next episode's first: no frame of it
                break
    finally:
        env.close()
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:], loop=0,
                   duration=duration_ms)
    atomic_write_bytes(path, buf.getvalue())
    return steps, finished


def run(args: argparse.Namespace) -> int:
    if args.gif is not None:
        if args.gif.suffix.lower() != ".gif":
            raise ValueError(f"--gif {args.gif}: expected a file name ending in .gif")
        check_output_file(args.gif, "--gif")  # before any episode is played
    device = resolve_device(args.device)
    agent = trainer.load_agent(args.train_dir, args.checkpoint, device)
    cfg = agent.cfg
    run_dir = None
    if args.run_dir is not None:  # a record only where asked for: no stray folders in runs/
        run_dir = start_run(args, NAME, {"train_dir": str(args.train_dir), "env": cfg.env,
                                         "checkpoint": args.checkpoint,
                                         "episodes": args.episodes})
    gif = {}
    if args.gif is not None:  # first: a file that cannot be written (a full disk) fails early
        steps, finished = write_gif(agent, cfg.env, args.gif, args.seed, device, args.gif_steps)
        gif = {"gif": str(args.gif), "gif_steps": steps, "gif_episode_finished": finished}
    returns = policies.evaluate(agent.act, cfg.env, args.episodes, seed=args.seed,
                                device=device)
    summary = {"env": cfg.env, "episodes": args.episodes,
               "mean_return": returns.mean().item(),
               "std_return": returns.std(unbiased=False).item(),
               "min_return": returns.min().item(), "max_return": returns.max().item(),
               "returns": returns.tolist(), **gif}
    title = f"semigrad eval ({args.checkpoint} checkpoint)"
    shown = {k: v for k, v in summary.items() if k != "returns"}
    if run_dir is None:
        print(format_summary(title, shown))
    else:
        finish_run(run_dir, title, summary, shown=shown)
    return 0
