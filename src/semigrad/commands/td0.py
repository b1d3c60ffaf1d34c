"""``semigrad td0``: semi-gradient TD(0) prediction of the random policy, checked against Monte
Carlo ground truth at probe states (the course notebook's exercise, done right)."""

from __future__ import annotations

import argparse

import numpy as np
import torch

from semigrad.algos.guard import value_bound
from semigrad.algos.monte_carlo import NOTEBOOK_PROBE, cartpole_values
from semigrad.algos.td0 import CARTPOLE, TD0Config, train
from semigrad.commands._common import add_run_arguments, finish_run, start_run
from semigrad.config import add_config_arguments, config_from_args, count_arg, to_dict
from semigrad.devices import resolve_device

NAME = "td0"
HELP = "semi-gradient TD(0) prediction of v_pi, with Monte Carlo ground truth at probe states"
DESCRIPTION = """\
Learn v_pi of the uniform random policy on CartPole with semi-gradient TD(0)
(Sutton & Barto 9.3): w <- w + alpha * delta * grad v_hat(S, w), the target without gradient,
time-limit truncations bootstrapped. Monte Carlo rollouts from the exact probe states give
the true values (with standard errors) to compare with.

Writes config.json, metrics.csv (v_hat at each probe over training), summary.json (each probe
with v_hat, mc_value, mc_stderr), probes.png and value_slice.png.

  semigrad td0                                   # the defaults: 8 envs, 100k transitions
  semigrad td0 --probe 0,0.5,0.02,-0.3 --gamma 0.9
  semigrad td0 --optimizer sgd --alpha 0.05 --num-envs 64 --steps 500000
  semigrad td0 --rule notebook --num-envs 1      # the notebook's update: watch it blow up
  semigrad td0 --num-envs 64 --steps 600000 --start-box 2.4 2.5 0.2 2.5
                                                 # exploring starts: every probe within 10%
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
    parser.add_argument("--mc-rollouts", type=count_arg(2, 1_000_000), default=2000,
                        help="Monte Carlo rollouts per probe state (default: 2000)")
    parser.add_argument("--no-plots", action="store_true", help="skip the figures")
    add_config_arguments(parser, TD0Config)
    add_run_arguments(parser)


def run(args: argparse.Namespace) -> int:
    config = config_from_args(args, TD0Config, seed=args.seed)
    device = resolve_device(args.device)
    is_cartpole = config.env.removeprefix("gymnasium:") == CARTPOLE
    width = 4 if is_cartpole else len(args.probe[0]) if args.probe else 0
    for probe in args.probe:
        if len(probe) != width:
            raise ValueError(f"--probe: every probe needs {width} numbers, got {list(probe)}")
    run_dir = start_run(args, NAME, to_dict(config))
    summary, result, mc = train(config, run_dir, probes=args.probe, mc_rollouts=args.mc_rollouts,
                                device=device, progress=True)
    rows = summary["probes"]
    probes = [tuple(r["state"]) for r in rows]
    final = np.array([r["v_hat"] for r in rows])

    figures = {}
    if not args.no_plots and probes:
        from semigrad.plots.td import probe_curves

        labels = [str(list(p)) + (" (notebook)" if tuple(p) == NOTEBOOK_PROBE else "")
                  for p in probes]
        figures["probes"] = str(probe_curves(
            result.log_steps, result.probe_values, labels, run_dir / "probes.png",
            None if mc is None else mc.values, None if mc is None else mc.stderr,
            bound=value_bound(config.r_max, config.gamma),
            title=f"TD(0) {config.rule}, gamma={config.gamma}: v_hat vs Monte Carlo",
            stopped_at=result.steps if result.divergence else None,
        ))
    diverged = result.divergence is not None
    if not args.no_plots and is_cartpole and not diverged:
        figures["value_slice"] = str(plot_slice(result.v_hat, config.gamma, run_dir, device,
                                                args.seed))
    summary["figures"] = figures
    shown = {"rule": config.rule, "steps": result.steps, "time (s)": result.seconds,
             "steps/s": result.steps_per_second}
    for i, row in enumerate(rows):
        text = f"v_hat {row['v_hat']:.3f}"
        if row["mc_value"] is not None:
            text += (f"  MC {row['mc_value']:.3f} +- {row['mc_stderr']:.3f}"
                     f"  error {100 * row['relative_error']:+.1f}%")
        shown[f"probe {i} {row['state']}"] = text
    if diverged:
        shown["DIVERGED"] = str(result.divergence)
    finish_run(run_dir, f"semigrad td0 ({config.rule})", summary, shown)
    if config.rule == "notebook":
        bound = value_bound(config.r_max, config.gamma)
        if diverged or (len(final) and np.abs(final).max() > bound):
            truth = "" if mc is None else f", whose true value is about {mc.values[0]:.1f}"
            print(f"\nThis is the course notebook's blow-up (it printed 13388 for the probe "
                  f"{list(NOTEBOOK_PROBE)}{truth}; no value can exceed {bound:g}): its 'loss' "
                  "is linear in delta and lets gradient through v_hat(S'). Run without "
                  "--rule notebook for semi-gradient TD(0).")
        else:
            print(f"\nThe notebook's rule stayed within the bound {bound:g} in "
                  f"{result.steps:,} steps; it keeps climbing: give it more --steps.")
        return 0
    far = [r["state"] for r in rows if r["relative_error"] is not None
           and abs(r["relative_error"]) > 0.10]
    if far and not config.start_box and config.env == CARTPOLE and not diverged:
        print(f"\n{len(far)} probe(s) are more than 10% off Monte Carlo, e.g. {far[0]}: states "
              "the random policy seldom visits, where v_hat is extrapolated. Exploring starts "
              "train it there too: --start-box 2.4 2.5 0.2 2.5 (and more --steps).")
    return 1 if diverged else 0


def plot_slice(v_hat, gamma: float, run_dir, device, seed: int, points: int = 61,
               mc_points: int = 13, rollouts: int = 300):
    """v_hat (fine grid) and Monte Carlo (coarse grid) over theta x theta_dot, x = x_dot = 0."""
    from semigrad.plots.td import value_slice

    theta = np.linspace(-0.25, 0.25, points)
    theta_dot = np.linspace(-2.0, 2.0, points)
    grid = np.stack(np.meshgrid(theta, theta_dot), axis=-1).reshape(-1, 2)
    states = np.zeros((len(grid), 4), dtype=np.float32)
    states[:, 2:] = grid
    with torch.no_grad():
        values = v_hat(torch.from_numpy(states).to(device)).cpu().numpy()
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
