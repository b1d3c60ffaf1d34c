"""``semigrad sarsa``: episodic semi-gradient SARSA / Expected SARSA control (the state-action
part of the course notebook, done right): ``semigrad train --algo sarsa`` under its own name."""

from __future__ import annotations

import argparse

from semigrad.algos import sarsa
from semigrad.commands._training import run_training
from semigrad.commands.train import add_algo_arguments, build_config

NAME = "sarsa"
HELP = "episodic semi-gradient SARSA / Expected SARSA control with an epsilon-greedy policy"
DESCRIPTION = """\
Learn q_hat(s, a) with episodic semi-gradient SARSA (Sutton & Barto 10.1) or Expected SARSA:
w <- w + alpha * delta * grad q_hat(S, A, w), the target R + gamma q_hat(S', A') without
gradient, A' the epsilon-greedy action taken next, truncations bootstrapped. The same run as
`semigrad train --algo sarsa`: greedy evaluations during training, config.json, metrics.csv,
TensorBoard events, checkpoints (Ctrl-C, then --resume RUN_DIR continues exactly), curve.png
and summary.json; --seeds trains one agent per seed at once.

  semigrad sarsa
  semigrad sarsa --q-form state-action --action-encoding index   # the notebook's network
  semigrad sarsa --method expected-sarsa --steps 100000
  semigrad sarsa --seeds 0-9
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_algo_arguments(parser, sarsa)


def run(args: argparse.Namespace) -> int:
    return run_training(args, sarsa, NAME, lambda seed: build_config(args, sarsa, seed, NAME))
