"""``semigrad td0``: semi-gradient TD(0) prediction of the random policy, checked against Monte
Carlo ground truth at probe states (the course notebook's exercise, done right)."""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from semigrad import trainer
from semigrad.algos import td0
from semigrad.algos.monte_carlo import NOTEBOOK_PROBE, cartpole_values
from semigrad.commands._training import run_training, seed_text
from semigrad.commands.train import add_algo_arguments, build_config
from semigrad.run import format_summary, read_metrics

NAME = "td0"
HELP = "semi-gradient TD(0) prediction of v_pi, with Monte Carlo ground truth at probe states"
DESCRIPTION = """\
Learn v_pi of the uniform random policy on CartPole with semi-gradient TD(0)
(Sutton & Barto 9.3): w <- w + alpha * delta * grad v_hat(S, w), the target without gradient,
time-limit truncations bootstrapped. Monte Carlo rollouts from the exact probe states give
the true values (with standard errors) to compare with.

A `semigrad train --algo td0` run: config.json, metrics.csv (v_hat at each probe over
training), checkpoints (Ctrl-C, then --resume RUN_DIR continues exactly), summary.json (each
probe with v_hat, mc_value, mc_stderr), probes.png and value_slice.png; --seeds learns one
value function per seed at once.

  semigrad td0                                   # the defaults: 8 envs, 100k transitions
  semigrad td0 --probe 0,0.5,0.02,-0.3 --gamma 0.9
  semigrad td0 --optimizer sgd --alpha 0.05 --num-envs 64 --steps 500000
  semigrad td0 --rule notebook --num-envs 1      # the notebook's update: watch it blow up
  semigrad td0 --num-envs 64 --steps 600000 --start-box 2.4 2.5 0.2 2.5
                                                 # exploring starts: every probe within 10%
  semigrad td0 --seeds 0-9
"""

THETA_THRESHOLD = 12 * 2 * np.pi / 360


def parse_probe(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError:
        values = ()
    if not values or not all(np.isfinite(values)):
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}")
    return values


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--probe", action="append", type=parse_probe, default=[],
                        metavar="X,X_DOT,THETA,THETA_DOT",
                        help="an extra probe state (repeatable); the defaults include the "
                             f"notebook's {list(NOTEBOOK_PROBE)}")
    parser.add_argument("--no-plots", action="store_true", help="skip the figures")
    add_algo_arguments(parser, td0)


def run(args: argparse.Namespace) -> int:
    def build(seed: int) -> td0.TD0Config:
        cfg = build_config(args, td0, seed, NAME)
        widths = {len(p) for p in args.probe}
        if len(widths) > 1:
            raise ValueError(f"--probe: every probe needs the same count of numbers, got "
                             f"{sorted(widths)}")
        cfg = replace(cfg, probes=tuple(x for p in args.probe for x in p))
        cfg.probe_states()  # a probe of the wrong width: one error before any work
        return cfg

    return run_training(args, td0, NAME, build,
                        show=lambda cfg, seeds, summary, run_dir: show(args, cfg, seeds,
                                                                       summary, run_dir))


def show(args: argparse.Namespace, cfg: td0.TD0Config, seeds: list[int] | None,
         summary: dict[str, Any], run_dir: Path) -> int:
    """Figures and the printed summary of a finished (or diverged) TD(0) run."""
    if seeds is not None:
        per_seed = {f"seed {s['seed']}": (s["status"] if s["status"] != "finished" else
                                          "largest probe error "
                                          + _percent(s.get("max_abs_relative_error")))
                    for s in summary["per_seed"]}
        print(format_summary("semigrad td0 --seeds", {
            "rule": cfg.rule, "seeds": f"{seed_text(seeds)} ({len(seeds)} in one process)",
            **per_seed, "training s, wall s": f"{summary['train_s']:.2f}, "
                                             f"{summary['wall_s']:.2f}",
            "run dir": str(run_dir)}))
        return 1 if summary["diverged_seeds"] else 0
    rows = summary["probes"]
    diverged = summary["status"] == "diverged"
    if not args.no_plots and rows:
        summary["figures"] = figures(cfg, rows, run_dir, diverged, summary["env_steps"])
    shown = {"rule": cfg.rule, "env steps": summary["env_steps"],
             "training s": summary["train_s"], "env steps/s": summary["env_steps_per_s"]}
    for i, row in enumerate(rows):
        text = f"v_hat {row['v_hat']:.3f}" if row["v_hat"] is not None else "v_hat not finite"
        if row["mc_value"] is not None:
            text += (f"  MC {row['mc_value']:.3f} +- {row['mc_stderr']:.3f}"
                     f"  error {100 * row['relative_error']:+.1f}%")
        shown[f"probe {i} {row['state']}"] = text
    if diverged:
        shown["DIVERGED"] = summary["error"]
    print(format_summary(f"semigrad td0 ({cfg.rule})", {**shown, "run dir": str(run_dir)}))
    bound = td0.value_bound(cfg.r_max, cfg.gamma)
    if cfg.rule == "notebook":
        if diverged:
            mc = rows[0]["mc_value"] if rows else None
            truth = "" if mc is None else f", whose true value is about {mc:.1f}"
            print(f"\nThis is the course notebook's blow-up (it printed 13388 for the probe "
                  f"{list(NOTEBOOK_PROBE)}{truth}; no value can exceed {bound:g}): its 'loss' "
                  "is linear in delta and lets gradient through v_hat(S'). Run without "
                  "--rule notebook for semi-gradient TD(0).")
        else:
            print(f"\nThe notebook's rule stayed within the bound {bound:g} in "
                  f"{summary['env_steps']:,} steps; it keeps climbing: give it more --steps.")
        return 0
    far = [r["state"] for r in rows if r["relative_error"] is not None
           and abs(r["relative_error"]) > 0.10]
    if far and not cfg.start_box and cfg.env == td0.CARTPOLE and not diverged:
        print(f"\n{len(far)} probe(s) are more than 10% off Monte Carlo, e.g. {far[0]}: states "
              "the random policy seldom visits, where v_hat is extrapolated. Exploring starts "
              "train it there too: --start-box 2.4 2.5 0.2 2.5 (and more --steps).")
    return 1 if diverged else 0


def _percent(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def figures(cfg: td0.TD0Config, rows: list[dict], run_dir: Path, diverged: bool,
            steps: int) -> dict[str, str]:
    from semigrad.plots.td import probe_curves

    states = [tuple(r["state"]) for r in rows]
    metrics = [m for m in read_metrics(run_dir) if m.get("v_hat_0") is not None]
    values = np.array([[m[f"v_hat_{i}"] for i in range(len(rows))] for m in metrics])
    mc = ([r["mc_value"] for r in rows] if all(r["mc_value"] is not None for r in rows)
          else None)
    labels = [str(list(p)) + (" (notebook)" if p == NOTEBOOK_PROBE else "") for p in states]
    if not metrics:  # diverged before its first metric row
        return {}
    out = {"probes": str(probe_curves(
        [m["step"] for m in metrics], values.reshape(len(metrics), len(rows)), labels,
        run_dir / "probes.png", None if mc is None else np.array(mc),
        None if mc is None else np.array([r["mc_stderr"] for r in rows]),
        bound=td0.value_bound(cfg.r_max, cfg.gamma),
        title=f"TD(0) {cfg.rule}, gamma={cfg.gamma}: v_hat vs Monte Carlo",
        stopped_at=steps if diverged else None))}
    if td0.is_cartpole(cfg.env) and not diverged:
        payload = trainer.load_checkpoint(run_dir / "checkpoint_last.pt")
        v_hat = td0.make_network(cfg, _Spec(4))
        v_hat.load_state_dict(payload["v_hat"][0])
        out["value_slice"] = str(plot_slice(v_hat, cfg.gamma, run_dir, cfg.seed))
    return out


class _Spec:
    """What ``td0.make_network`` reads of an env."""

    def __init__(self, obs_dim: int) -> None:
        self.obs_dim = obs_dim


def plot_slice(v_hat, gamma: float, run_dir, seed: int, points: int = 61,
               mc_points: int = 13, rollouts: int = 300):
    """v_hat (fine grid) and Monte Carlo (coarse grid) over theta x theta_dot, x = x_dot = 0."""
    from semigrad.plots.td import value_slice

    theta = np.linspace(-0.25, 0.25, points)
    theta_dot = np.linspace(-2.0, 2.0, points)
    grid = np.stack(np.meshgrid(theta, theta_dot), axis=-1).reshape(-1, 2)
    states = np.zeros((len(grid), 4), dtype=np.float32)
    states[:, 2:] = grid
    with torch.no_grad():
        values = v_hat(torch.from_numpy(states)).cpu().numpy()
    mc_theta = np.linspace(-0.2, 0.2, mc_points)
    mc_theta_dot = np.linspace(-2.0, 2.0, mc_points)
    mc_grid = np.stack(np.meshgrid(mc_theta, mc_theta_dot), axis=-1).reshape(-1, 2)
    mc_states = np.zeros((len(mc_grid), 4))
    mc_states[:, 2:] = mc_grid
    mc = cartpole_values(mc_states, gamma, rollouts, seed=seed + 1)
    return value_slice(theta, theta_dot, values.reshape(points, points),
                       run_dir / "value_slice.png",
                       mc=(mc_theta, mc_theta_dot, mc.values.reshape(mc_points, mc_points)),
                       theta_threshold=THETA_THRESHOLD)
