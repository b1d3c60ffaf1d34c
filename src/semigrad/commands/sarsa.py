"""``semigrad sarsa``: episodic semi-gradient SARSA / Expected SARSA control (the state-action
part of the course notebook, done right)."""

from __future__ import annotations

import argparse

import torch

from semigrad import envs
from semigrad.algos.sarsa import GreedyPolicy, SarsaConfig, evaluate, sarsa
from semigrad.algos.td0 import UniformRandomPolicy
from semigrad.commands._common import add_run_arguments, finish_run, start_run
from semigrad.config import add_config_arguments, config_from_args, to_dict
from semigrad.devices import resolve_device
from semigrad.run import MetricsLog

NAME = "sarsa"
HELP = "episodic semi-gradient SARSA / Expected SARSA control with an epsilon-greedy policy"
DESCRIPTION = """\
Learn q_hat(s, a) with episodic semi-gradient SARSA (Sutton & Barto 10.1) or Expected SARSA:
w <- w + alpha * delta * grad q_hat(S, A, w), the target R + gamma q_hat(S', A') without
gradient, A' the epsilon-greedy action taken next, truncations bootstrapped.
Then evaluate the greedy policy against the uniform random one.

Writes config.json, metrics.csv (mean training return per log interval), summary.json and
learning_curve.png.

  semigrad sarsa
  semigrad sarsa --q-form state-action --action-encoding index   # the notebook's network
  semigrad sarsa --method expected-sarsa --steps 100000
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--eval-episodes", type=int, default=100,
                        help="episodes to evaluate the greedy and random policies (default: 100)")
    parser.add_argument("--no-plots", action="store_true", help="skip the figure")
    add_config_arguments(parser, SarsaConfig)
    add_run_arguments(parser)


def run(args: argparse.Namespace) -> int:
    config = config_from_args(args, SarsaConfig)
    if args.eval_episodes < 1:
        raise ValueError(f"--eval-episodes: need at least 1, got {args.eval_episodes}")
    device = resolve_device(args.device)
    envs.make(config.env, num_envs=1, device="cpu").close()  # e.g. a continuous action space
    run_dir = start_run(args, NAME, {**to_dict(config), "eval_episodes": args.eval_episodes,
                                     "device": str(device)})
    with MetricsLog(run_dir, ["step", "seconds", "epsilon", "episodes", "mean_return"]) as log:
        result = sarsa(config, device=device, seed=args.seed, on_log=log.log, progress=True)

    eval_seed = args.seed + 10_000  # evaluation episodes differ from the training ones
    generator = torch.Generator(device=device).manual_seed(args.seed)
    greedy = evaluate(GreedyPolicy(result.q_hat, generator), config.env, args.eval_episodes,
                      device, eval_seed)
    random = evaluate(UniformRandomPolicy(result.q_hat.num_actions, generator), config.env,
                      args.eval_episodes, device, eval_seed)
    figures = {}
    if not args.no_plots:
        from semigrad.plots.td import learning_curve

        figures["learning_curve"] = str(learning_curve(
            result.episode_steps, result.episode_returns, run_dir / "learning_curve.png",
            random_return=float(random.mean()), final_return=float(greedy.mean()),
            title=f"semi-gradient {config.method} ({config.q_form}) on {config.env}",
        ))
    diverged = result.divergence is not None
    summary = {
        "method": config.method,
        "q_form": config.q_form,
        "steps": result.steps,
        "seconds": result.seconds,
        "steps_per_second": result.steps_per_second,
        "training_episodes": len(result.episode_returns),
        "greedy_return_mean": float(greedy.mean()),
        "greedy_return_std": float(greedy.std()),
        "random_return_mean": float(random.mean()),
        "eval_episodes": args.eval_episodes,
        "diverged": diverged,
        "divergence": str(result.divergence) if diverged else None,
        "figures": figures,
    }
    shown = {"method": f"{config.method} ({config.q_form})", "steps": result.steps,
             "time (s)": result.seconds, "steps/s": result.steps_per_second,
             "training episodes": len(result.episode_returns),
             "greedy policy return": f"{greedy.mean():.1f} +- {greedy.std():.1f} "
                                     f"({args.eval_episodes} episodes)",
             "random policy return": f"{random.mean():.1f}"}
    if diverged:
        shown["DIVERGED"] = str(result.divergence)
    finish_run(run_dir, f"semigrad sarsa ({config.method})", summary, shown)
    return 1 if diverged else 0
