"""DQN (or PQN, C51, QR-DQN, Rainbow: ``--algo NAME``) on MinAtar: the `minatar-<game>`
presets (DQN's: the MinAtar paper's protocol; Breakout's with 3-step Double DQN targets,
`--n-step 1 --no-double` for the paper's own learner; PQN's: purejaxql's MinAtar
configuration; the Rainbow family's: Revisiting Rainbow's, docs/rainbow.md) trained for
``--frames`` frames on ``--seeds`` at once, against the paper's DQN at 1M and 5M frames.

For each game it prints each seed's greedy evaluations (``eval_episodes`` episodes every
``--eval-every`` frames), the mean of its last ``--last`` evaluations, the mean return of its
last 100 (or so: whole metric rows) training episodes, played by the training policy
(DQN: epsilon-greedy with epsilon 0.1 as in the paper; Rainbow: its noise, epsilon 0), whose
curves show that measure (the like-for-like column), the training
time and speed, and the paper's DQN score (Young & Tian 2019: a 100-episode moving average
at 5M frames, mean of 30 runs, read off its learning curves: Asterix ~17, Breakout ~10,
Freeway ~50, Seaquest ~20, Space Invaders ~43; ../shared/references/dqn-anchors.md; and
at 1M frames, from the same curves: ~7, ~9, ~48, ~1 and ~33, ``PAPER_DQN_1M``). One torch
thread.
With ``--run-dir``, a game folder that already holds this run (same config and seeds) is
continued where it stopped, or read back if finished: a run longer than one sitting is
stopped with Ctrl-C / SIGTERM (or lost to a kill) and goes on with the same command.
(Not named minatar.py: run as a script, that name would shadow the minatar package.)

    python benchmarks/minatar_dqn.py [--algo dqn|pqn|c51|qrdqn|rainbow]
                                 [--games breakout,space-invaders]
                                 [--frames 1000000]
                                 [--seeds 0-2] [--eval-every 50000] [--device cpu]
                                 [any DQNConfig field: --n-step 3 --double ...]
                                 [--run-dir DIR [--figure curves.png [--no-train]]]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

import torch

from machine import describe_machine
from semigrad import trainer
from semigrad.config import (
    add_config_arguments,
    config_from_saved,
    config_overrides,
    parse_seeds,
    to_dict,
)
from semigrad.run import read_json, read_metrics

PAPER_DQN_5M = {"asterix": 17, "breakout": 10, "freeway": 50, "seaquest": 20,
                "space-invaders": 43}
# The paper's DQN curves over the first 1M frames (100-episode moving average, mean of 30
# runs), digitised from kenjyoung/MinAtar img/learning_curves.gif @4241f24 every 0.1M frames
# (the median height of the DQN colour's pixels in each column, through the axis ticks; the
# same reading gives 19.9, 10.1, 16.6, 50.2 and 43.9 at 4.9M, the ~values above). Asterix
# at 0.1M is hidden under the other curves. Frames (millions) -> return.
PAPER_DQN_1M = {
    "asterix": {0.2: 0.8, 0.3: 0.9, 0.4: 0.9, 0.5: 1.0, 0.6: 1.2, 0.7: 1.6, 0.8: 2.6,
                0.9: 4.2, 1.0: 7.0},
    "breakout": {0.1: 4.3, 0.2: 6.1, 0.3: 7.3, 0.4: 8.1, 0.5: 8.3, 0.6: 8.5, 0.7: 8.7,
                 0.8: 8.8, 0.9: 8.8, 1.0: 9.2},
    "freeway": {0.1: 5.6, 0.2: 5.6, 0.3: 10.5, 0.4: 22.6, 0.5: 33.8, 0.6: 40.5, 0.7: 44.2,
                0.8: 46.0, 0.9: 46.9, 1.0: 47.7},
    "seaquest": {0.1: 0.5, 0.2: 0.7, 0.3: 0.8, 0.4: 0.8, 0.5: 0.8, 0.6: 0.9, 0.7: 0.9,
                 0.8: 1.0, 0.9: 1.0, 1.0: 1.0},
    "space-invaders": {0.1: 15.4, 0.2: 21.1, 0.3: 22.9, 0.4: 25.8, 0.5: 27.9, 0.6: 27.9,
                       0.7: 28.1, 0.8: 29.0, 0.9: 31.0, 1.0: 33.0},
}


def training_curve(run_dir: Path, at_least: int = 100) -> list[tuple[int, float, int]]:
    """At each metric row of a run: ``(frame, mean return of the last at_least (or a few more:
    whole metric rows) training episodes, how many episodes that is)`` (the paper's curves)."""
    rows = [r for r in read_metrics(run_dir) if r["episode_return"] is not None
            and r["episodes"]]
    curve = []
    for end in range(len(rows)):
        total, count = 0.0, 0
        for row in reversed(rows[:end + 1]):
            total += row["episode_return"] * row["episodes"]
            count += int(row["episodes"])
            if count >= at_least:
                break
        curve.append((int(rows[end]["step"]), total / count, count))
    return curve


def seed_dirs(folder: Path) -> dict[int, Path]:
    """The seed folders of a ``--run-dir`` game folder."""
    return {int(d.name.removeprefix("seed")): d for d in sorted(folder.glob("seed*"))
            if (d / "metrics.csv").exists()}


def draw_curves(run_dir: Path, games: list[str], path: Path) -> Path:
    """One panel per game found under ``run_dir``: each seed's 100-episode training average
    (the paper's measure, played by the training policy: DQN's epsilon-greedy, Rainbow's
    noise; solid) and greedy evaluations (dots), the paper's DQN curve over its first 1M
    frames (dashed) and its score at 5M frames (dotted)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    from semigrad.run import atomic_savefig

    found = [g for g in games if seed_dirs(run_dir / g)]
    if not found:
        raise SystemExit(f"--figure: no runs of {', '.join(games)} under {run_dir}")
    games = found
    fig, axes = plt.subplots(1, len(games), figsize=(3.4 * len(games) + 0.4, 3.6),
                             squeeze=False)
    seeds_seen: dict[int, str] = {}
    for ax, game in zip(axes[0], games, strict=True):
        for seed, d in seed_dirs(run_dir / game).items():
            color = seeds_seen.setdefault(seed, f"C{len(seeds_seen)}")
            curve = training_curve(d)
            ax.plot([c[0] / 1e6 for c in curve], [c[1] for c in curve], color=color,
                    linewidth=1.3)
            evals = [(r["step"], r["eval_return"]) for r in read_metrics(d)
                     if r["eval_return"] is not None]
            ax.plot([e[0] / 1e6 for e in evals], [e[1] for e in evals], "o", color=color,
                    markersize=3, alpha=0.6)
        paper = PAPER_DQN_1M[game]
        ax.plot(list(paper), list(paper.values()), color="black", linestyle="--",
                linewidth=1.2)
        ax.axhline(PAPER_DQN_5M[game], color="black", linestyle=":", linewidth=1)
        ax.set_title(game, fontsize=10)
        ax.set_xlabel("frames (millions)")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("return")
    handles = [Line2D([], [], color=c, linewidth=4, label=f"seed {s}")
               for s, c in seeds_seen.items()]
    handles += [Line2D([], [], color="gray", label="last 100 training episodes (paper's measure)"),
                Line2D([], [], color="gray", marker="o", linestyle="", label="greedy evaluation"),
                Line2D([], [], color="black", linestyle="--",
                       label="paper's DQN, first 1M frames (Young & Tian 2019)"),
                Line2D([], [], color="black", linestyle=":", label="paper's DQN at 5M frames")]
    fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 3), fontsize=7,
               frameon=False)
    fig.tight_layout(rect=(0, 0.14, 1, 1))
    out = atomic_savefig(fig, path, dpi=110)
    plt.close(fig)
    return out


def train_or_continue(algo, cfg, folder: Path, seeds: list[int]) -> dict:
    """Train ``seeds`` with ``cfg`` into ``folder``; a run already there with the same config
    and seeds is continued where it stopped (an interrupted run, killed or not) or, finished,
    read back, so a run longer than one sitting goes on with the same command."""
    if not (folder / "config.json").is_file():
        return trainer.train(algo, cfg, folder, seeds=seeds, progress=False)
    saved = read_json(folder / "config.json")
    was, now = to_dict(config_from_saved(algo.Config, saved)), to_dict(cfg)
    if (saved.get("algo"), saved.get("seeds")) != (algo.NAME, seeds) or was != now:
        differ = sorted(k for k, v in now.items() if was[k] != v)
        raise SystemExit(f"{folder}: holds another run ({saved.get('algo')}, seeds "
                         f"{saved.get('seeds')}, fields that differ: {differ or 'none'}); "
                         "give another --run-dir")
    summary = read_json(folder / "summary.json") if (folder / "summary.json").is_file() else {}
    if summary.get("status") == "finished":
        print(f"{folder}: finished earlier; read back")
        return summary
    print(f"{folder}: continuing the run there")
    return trainer.train(algo, cfg, folder, seeds=seeds, resume=True, progress=False)


def main() -> None:
    first = argparse.ArgumentParser(add_help=False)
    first.add_argument("--algo", choices=("dqn", "pqn", "c51", "qrdqn", "rainbow"), default="dqn")
    algo = trainer.algorithm(first.parse_known_args()[0].algo)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], parents=[first])
    parser.add_argument("--games", default="breakout,space-invaders")
    parser.add_argument("--frames", type=int, default=1_000_000)
    parser.add_argument("--seeds", default="0-2")
    parser.add_argument("--last", type=int, default=3, help="evaluations averaged at the end")
    parser.add_argument("--run-dir", type=Path, default=None,
                        help="keep the runs there (default: a temporary folder)")
    parser.add_argument("--figure", type=Path, default=None,
                        help="draw the curves of the --games found under --run-dir to this "
                             "image, after training")
    parser.add_argument("--no-train", action="store_true",
                        help="train nothing: with --figure, draw runs already in --run-dir")
    # any preset field can be changed (--n-step 3, --double, ...); the table says what changed
    add_config_arguments(parser, algo.Config)
    args = parser.parse_args()
    changed = config_overrides(args, algo.Config)
    for name, instead in (("env", "--games"), ("steps", "--frames")):
        if name in changed:
            parser.error(f"--{name} is set per game by this script: use {instead}")
    games = args.games.split(",")
    unknown = sorted(set(games) - set(PAPER_DQN_5M))
    if unknown:
        parser.error(f"--games: {', '.join(unknown)} unknown; choose from "
                     f"{', '.join(PAPER_DQN_5M)}")
    if args.figure and args.run_dir is None:
        parser.error("--figure draws runs kept with --run-dir: give --run-dir DIR")
    if args.no_train:
        if args.figure is None:
            parser.error("--no-train only draws: give --figure PATH")
        print(f"wrote {draw_curves(args.run_dir, games, args.figure)}")
        return
    torch.set_num_threads(1)
    print(describe_machine())
    seeds = list(parse_seeds(args.seeds))
    for game in games:
        cfg = algo.preset(f"minatar-{game}", **{
            "steps": args.frames, "eval_every": 50_000, "eval_episodes": 30,
            "tensorboard": False, "device": "cpu", **changed})
        with tempfile.TemporaryDirectory() as tmp:
            folder = (args.run_dir or Path(tmp)) / game
            total = train_or_continue(algo, cfg, folder, seeds)
            if total["status"] != "finished":  # Ctrl-C or SIGTERM: resumable, not a result
                raise SystemExit(f"{game}: the run ended {total['status']}; nothing measured "
                                 "(the same command with the same --run-dir continues it)")
            evals = {s: json.loads((folder / f"seed{s}" / "summary.json").read_text())
                     ["eval_returns"] for s in seeds}
            training = {s: training_curve(folder / f"seed{s}")[-1][1:] for s in seeds}
        preset = algo.PRESETS[f"minatar-{game}"]
        differ = {k: v for k, v in changed.items() if getattr(preset, k) != v}
        print(f"\n{algo.NAME} {cfg.env}: {args.frames:,} frames, seeds {seeds} in one process, "
              f"{total['train_s']:.0f} s of training ({total['agent_env_steps_per_s']:,.0f} "
              f"agent frames/s), paper's DQN ~{PAPER_DQN_1M[game][1.0]} at 1M frames, "
              f"~{PAPER_DQN_5M[game]} at 5M; "
              f"fields that differ from the preset: {differ or 'none'}")
        print(f"| seed | greedy evaluations (every {cfg.eval_every:,} frames) "
              f"| mean of last {args.last} | last ~100 training episodes (epsilon "
              f"{cfg.epsilon_end:g}) |")
        print("| ---: | --- | ---: | ---: |")
        for s in seeds:
            tail = statistics.fmean(evals[s][-args.last:])
            mean, count = training[s]
            print(f"| {s} | {', '.join(f'{v:.1f}' for v in evals[s])} | {tail:.1f} "
                  f"| {mean:.1f} ({count} episodes) |")
    if args.figure:
        print(f"wrote {draw_curves(args.run_dir, games, args.figure)}")


if __name__ == "__main__":
    main()
