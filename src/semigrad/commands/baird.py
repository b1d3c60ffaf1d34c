"""``semigrad baird``: Baird's counterexample and the gradient-TD methods that fix it.

Sutton & Barto 2nd ed., sections 11.2 (Figures 11.1, 11.2), 11.7 (Figure 11.5), 11.8 (11.6).
"""

from __future__ import annotations

import argparse
import csv
import io
from pathlib import Path

import numpy as np

from semigrad.algos.baird import (
    METHOD_NAMES,
    BairdConfig,
    BairdNetConfig,
    BairdTrajectory,
    log_norm,
    paper_l2,
    run_baird,
    run_baird_net,
    summarize,
    summarize_net,
    verdict_line,
)
from semigrad.commands._common import add_run_arguments, finish_run, start_run
from semigrad.config import add_config_arguments, config_from_args, config_overrides, to_dict
from semigrad.devices import resolve_device
from semigrad.run import atomic_write_text

NAME = "baird"
HELP = "Baird's counterexample: off-policy semi-gradient TD diverges; TDC, GTD2, emphatic TD not"
DESCRIPTION = """\
Run one learning rule on Baird's counterexample (Sutton & Barto, 2nd ed., Figure 11.1) from
the book's start weights w = (1,1,1,1,1,1,10,1), and write the weight trajectory
(weights.csv: step, w1..w8, sqrt_ve, sqrt_pbe), a figure in the style of the book (baird.png)
and a one-line verdict: diverged (and how fast |w| grows), unstable (its peaks), converged or
bounded (final sqrt(VE), sqrt(PBE)). Step sizes default to the book's figures.

  semigrad baird                                   # Figure 11.2 right: semi-gradient DP diverges
  semigrad baird --method tdc --update sampled     # Figure 11.5 left
  semigrad baird --method etd                      # Figure 11.6: expected emphatic TD
  semigrad baird --variant notebook --update sampled   # the course notebook's variant; see w8
  semigrad baird --all                             # Figures 11.2, 11.5, 11.6 side by side
  semigrad baird --compare                         # beside PQN's fix: a LayerNorm net, +- L2

--compare runs expected semi-gradient TD, TDC and emphatic TD on the book's features next to
expected semi-gradient off-policy TD on a small MLP fed the same features (without LayerNorm,
with LayerNorm, with LayerNorm and L2 on its last layer: Gallici et al., ICLR 2025), and draws
each method's sqrt(VE) and weight norm over sweeps in one figure (compare.png, compare.csv).
"""

FIGURE = "baird.png"
# The panels of the book's Figures 11.2, 11.5 and 11.6, in order.
BOOK_PANELS = (
    ("Figure 11.2", (("semi-gradient", "sampled"), ("semi-gradient", "expected"))),
    ("Figure 11.5", (("tdc", "sampled"), ("tdc", "expected"))),
    ("Figure 11.6", (("etd", "expected"),)),
)
PANEL_TITLES = {
    ("semi-gradient", "sampled"): "Semi-gradient off-policy TD",
    ("semi-gradient", "expected"): "Semi-gradient DP (expected)",
    ("tdc", "sampled"): "TDC", ("tdc", "expected"): "Expected TDC",
    ("gtd2", "sampled"): "GTD2", ("gtd2", "expected"): "Expected GTD2",
    ("etd", "sampled"): "Emphatic TD", ("etd", "expected"): "Expected emphatic TD",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser, BairdConfig)
    parser.add_argument("--all", action="store_true",
                        help="draw the book's Figures 11.2, 11.5 and 11.6 side by side "
                             "(only --steps may be changed)")
    parser.add_argument("--compare", action="store_true",
                        help="linear semi-gradient TD, TDC, emphatic TD beside semi-gradient TD "
                             "on an MLP without/with LayerNorm and with LayerNorm + L2 on its "
                             "last layer, expected updates, one figure (default --steps 5000)")
    parser.add_argument("--net-runs", type=int, default=5,
                        help="with --compare: networks per variant, seeds --seed .. --seed + "
                             "N - 1 (default 5)")
    parser.add_argument("--l2", type=float, default=None,
                        help="with --compare: L2 on the last layer's weights (default (gamma/2)^2 "
                             "= 0.245)")
    add_run_arguments(parser)


COMPARE_LINEAR = ("semi-gradient", "tdc", "etd")
COMPARE_STEPS = 5000


def compare_configs(steps: int, l2: float | None) -> tuple[list[BairdConfig],
                                                           list[BairdNetConfig]]:
    """The runs of ``--compare``: the book's linear methods and three networks, all expected."""
    linear = [BairdConfig(method=m, steps=steps) for m in COMPARE_LINEAR]
    l2 = paper_l2(linear[0].gamma) if l2 is None else l2
    nets = [BairdNetConfig(layer_norm=False, steps=steps), BairdNetConfig(steps=steps),
            BairdNetConfig(l2=l2, steps=steps)]
    return linear, nets


def run_compare(args: argparse.Namespace, device) -> int:
    from semigrad.plots.baird import stability_figure

    extra = sorted(set(config_overrides(args, BairdConfig)) - {"steps"})
    if extra:
        raise ValueError(f"--compare runs the book's settings; drop "
                         f"{', '.join('--' + k.replace('_', '-') for k in extra)}")
    if args.net_runs < 1:
        raise ValueError(f"--net-runs: expected >= 1, got {args.net_runs}")
    linear, nets = compare_configs(getattr(args, "steps", COMPARE_STEPS), args.l2)
    run_dir = start_run(args, NAME, {"compare": True, "device": str(device),
                                     "linear": [to_dict(c) for c in linear],
                                     "nets": [to_dict(c) for c in nets],
                                     "net_runs": args.net_runs})
    curves, results, rows = [], {}, []
    for c in linear:
        traj = run_baird(c, seed=args.seed, device=device)
        label = f"linear {METHOD_NAMES[c.method]} (book features)"
        norms = log_norm(traj.weights).exp()
        curves.append({"label": label, "steps": np.arange(c.steps + 1),
                       "sqrt_ve": traj.sqrt_ve.numpy(), "norm_w": norms.numpy()})
        summary = summarize(traj)
        results[label] = {**to_dict(c), "runs": [summary]}
        rows += [(label, 0, t, float(traj.sqrt_ve[t, 0]), float(norms[t, 0]), "")
                 for t in range(c.steps + 1)]
        print(f"{label}: {summary['status']}, sqrt(VE) {summary['sqrt_ve']:.4g}")
    for c in nets:
        traj = run_baird_net(c, seed=args.seed, device=device, num_runs=args.net_runs)
        label = f"{c.name}, {'x'.join(map(str, c.hidden))} ReLU, on x(s)"
        curves.append({"label": label, "steps": np.arange(c.steps + 1),
                       "sqrt_ve": traj.sqrt_ve.numpy(), "norm_w": traj.norm_w.numpy(),
                       "norm_last": traj.norm_last.numpy()})
        runs = [summarize_net(traj, k) for k in range(args.net_runs)]
        results[label] = {**to_dict(c), "seeds": [args.seed + k for k in range(args.net_runs)],
                          "runs": runs}
        for k in range(args.net_runs):
            rows += [(label, args.seed + k, t, float(traj.sqrt_ve[t, k]),
                      float(traj.norm_w[t, k]), float(traj.norm_last[t, k]))
                     for t in range(c.steps + 1)]
        statuses = ", ".join(r["status"] for r in runs)
        ves = ", ".join(f"{r['sqrt_ve']:.3g}" for r in runs)
        print(f"{label}: {statuses}; sqrt(VE) {ves}; peak sqrt(VE) "
              f"{max(r['peak_sqrt_ve'] for r in runs):.4g}")
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["method", "seed", "step", "sqrt_ve", "norm_w", "norm_last"])
    writer.writerows(rows)
    csv_path = atomic_write_text(run_dir / "compare.csv", out.getvalue())
    figure = stability_figure(
        curves, run_dir / "compare.png",
        suptitle="Baird's counterexample, expected off-policy updates from the book's start "
                 f"values: linear methods and semi-gradient TD on a network (median, min-max "
                 f"of {args.net_runs} seeds)")
    summary = {"methods": results, "figure": str(figure), "compare_csv": str(csv_path)}
    shown = {label: ", ".join(r["status"] for r in r_["runs"]) for label, r_ in results.items()}
    finish_run(run_dir, "semigrad baird --compare", summary, shown={**shown,
                                                                     "figure": str(figure)})
    return 0


def write_weights_csv(path: Path, traj: BairdTrajectory, run: int = 0) -> Path:
    """``step, w1..w8, sqrt_ve, sqrt_pbe``, one row per step (row 0: the start weights)."""
    w = traj.weights[:, run].numpy()
    table = np.column_stack([np.arange(len(w)), w, traj.sqrt_ve[:, run].numpy(),
                             traj.sqrt_pbe[:, run].numpy()])
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["step", *(f"w{i + 1}" for i in range(w.shape[1])), "sqrt_ve", "sqrt_pbe"])
    for row in table.tolist():
        writer.writerow([int(row[0]), *row[1:]])
    return atomic_write_text(path, out.getvalue())


def panel(traj: BairdTrajectory, summary: dict) -> dict:
    """Keyword arguments of ``plots.baird.weights_panel`` for one run."""
    from semigrad.plots.baird import BOOK_ERRORS

    c = traj.config
    columns = {"sqrt(VE)": traj.sqrt_ve[:, 0].numpy(), "sqrt(PBE)": traj.sqrt_pbe[:, 0].numpy()}
    sizes = f"α={c.alpha:g}" + (f", β={c.beta:g}" if c.method in ("tdc", "gtd2") else "")
    prefix = "Notebook variant: " if c.variant == "notebook" else ""
    title = f"{prefix}{PANEL_TITLES[(c.method, c.update)]}\n{sizes}, γ={c.gamma:g}"
    if c.variant == "notebook":
        title += f", final w8={summary['w8']:.3g}"
    return {
        "steps": np.arange(len(traj.weights)),
        "weights": traj.weights[:, 0].numpy(),
        "errors": {name: columns[name] for name in BOOK_ERRORS[c.method]},
        "title": title,
        "xlabel": "Sweeps" if c.update == "expected" else "Steps",
        "overflow_step": summary["overflow_step"],
    }


def _one_run(config: BairdConfig, args: argparse.Namespace, device, run_dir: Path,
             csv_name: str) -> tuple[BairdTrajectory, dict]:
    traj = run_baird(config, seed=args.seed, device=device)
    summary = summarize(traj)
    csv_path = write_weights_csv(run_dir / csv_name, traj)
    return traj, {**to_dict(config), **summary, "verdict": verdict_line(summary, config),
                  "weights_csv": str(csv_path)}


def run(args: argparse.Namespace) -> int:
    from semigrad.plots.baird import draw_panels

    device = resolve_device(args.device)
    if args.compare:
        if args.all:
            raise ValueError("--compare and --all draw different figures; pick one")
        return run_compare(args, device)
    if args.all:
        extra = sorted(set(config_overrides(args, BairdConfig)) - {"steps"})
        if extra:
            raise ValueError(f"--all draws the book's figures with the book's settings; drop "
                             f"{', '.join('--' + k.replace('_', '-') for k in extra)}")
        steps = {"steps": args.steps} if "steps" in vars(args) else {}
        configs = [BairdConfig(method=m, update=u, **steps)
                   for _, pairs in BOOK_PANELS for m, u in pairs]
    else:
        configs = [config_from_args(args, BairdConfig)]
    run_dir = start_run(args, NAME, {"runs": [to_dict(c) for c in configs],
                                     "device": str(device), "all": args.all})

    results, panels = {}, []
    for c in configs:
        csv_name = f"weights_{c.method}_{c.update}.csv" if args.all else "weights.csv"
        traj, result = _one_run(c, args, device, run_dir, csv_name)
        results[f"{c.method}/{c.update}"] = result
        panels.append(panel(traj, result))
        print(result["verdict"])

    groups = [(caption, len(pairs)) for caption, pairs in BOOK_PANELS] if args.all else ()
    suptitle = ("Baird's counterexample (Sutton & Barto, 2nd ed.)" if args.all
                else f"Baird's counterexample: {next(iter(results.values()))['status']}")
    figure = draw_panels(panels, run_dir / FIGURE, suptitle=suptitle, groups=groups)

    if args.all:
        summary = {"panels": results, "figure": str(figure)}
        shown = {key: r["status"] for key, r in results.items()}
    else:
        (summary,) = results.values()
        summary = {**summary, "figure": str(figure)}
        shown = {"method": METHOD_NAMES[configs[0].method], "update": configs[0].update,
                 "variant": configs[0].variant, "status": summary["status"],
                 "sqrt(VE)": summary["sqrt_ve"], "sqrt(PBE)": summary["sqrt_pbe"],
                 "w8": summary["w8"], "figure": str(figure)}
    finish_run(run_dir, "semigrad baird", summary, shown=shown)
    return 0

