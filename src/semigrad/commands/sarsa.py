"""``semigrad sarsa``: episodic semi-gradient SARSA / Expected SARSA control (the state-action
part of the course notebook, done right)."""

from __future__ import annotations

import argparse

from semigrad import envs
from semigrad.algos.sarsa import SarsaConfig, train
from semigrad.commands._common import add_run_arguments, finish_run, start_run
from semigrad.config import add_config_arguments, config_from_args, to_dict
from semigrad.devices import resolve_device

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
    parser.add_argument("--no-plots", action="store_true", help="skip the figure")
    add_config_arguments(parser, SarsaConfig)
    add_run_arguments(parser)


def run(args: argparse.Namespace) -> int:
    config = config_from_args(args, SarsaConfig, seed=args.seed)
    device = resolve_device(args.device)
    envs.make(config.env, num_envs=1, device="cpu").close()  # e.g. a continuous action space
    run_dir = start_run(args, NAME, to_dict(config))
    summary, result, random = train(config, run_dir, device=device, progress=True)
    if not args.no_plots:
        from semigrad.plots.td import learning_curve

        summary["figures"] = {"learning_curve": str(learning_curve(
            result.episode_steps, result.episode_returns, run_dir / "learning_curve.png",
            random_return=float(random.mean()), final_return=summary["final_eval_return"],
            title=f"semi-gradient {config.method} ({config.q_form}) on {config.env}",
        ))}
    shown = {"method": f"{config.method} ({config.q_form})", "steps": result.steps,
             "time (s)": result.seconds, "steps/s": result.steps_per_second,
             "training episodes": len(result.episode_returns),
             "greedy policy return": f"{summary['final_eval_return']:.1f} +- "
                                     f"{summary['greedy_return_std']:.1f} "
                                     f"({config.eval_episodes} episodes)",
             "random policy return": f"{summary['random_return_mean']:.1f}"}
    if summary["status"] == "diverged":
        shown["DIVERGED"] = summary["divergence"]
    finish_run(run_dir, f"semigrad sarsa ({config.method})", summary, shown)
    return 1 if summary["status"] == "diverged" else 0
