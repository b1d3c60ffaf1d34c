"""Aggregate a folder of training runs: per setting, across seeds, with honest statistics.

Any folder works (a sweep, or runs made one by one): every run directory below it whose
``config.json`` says ``"command": "train"`` (DQN) or ``"sarsa"`` is a run; ``td0`` and
``baird`` runs (prediction: no return to rank) are counted and named, not summarised. Runs
whose configs are equal except for the seed form one *setting*. For each setting (Agarwal et
al., 2021):

- final score = ``final_eval_return`` (mean greedy return of the last evaluation): IQM and
  median with 95% stratified bootstrap percentile intervals;
- time to solve = training seconds until the first evaluation at or above the environment's
  reward threshold (and the env steps it took). A run that never solved within its budget
  counts as ``+inf``: a median or IQM is then still exact when enough runs solved (fewer than
  half, resp. a quarter, unsolved) and ``inf`` otherwise;
- diverged and unfinished runs are left out of the statistics and counted;
- a (setting, seed) pair found more than once (a copied folder, a re-run) counts once, with a
  warning: copies are not independent runs;
- settings of different environments are never ranked against each other (returns are on
  different scales): the ranking is per environment;
- a folder whose ``config.json`` cannot be read is listed, not silently skipped.

A ``semigrad train --seeds`` run counts as its per-seed folders (``seedN/``).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from semigrad import stats
from semigrad.run import read_json, read_metrics
from semigrad.sweep import format_value, setting_label

RUN_COMMANDS = ("train", "sarsa")  # runs with a final greedy return to rank
NOT_SUMMARISED = ("td0", "baird")  # prediction runs: no return; listed, not ranked
NOT_SETTING = ("command", "seed", "tensorboard")  # config keys that do not make a setting


@dataclass
class RunRecord:
    """One run directory as the report sees it."""

    path: Path
    config: dict[str, Any]
    status: str  # finished, diverged, interrupted, unfinished
    final: float | None = None
    solved: bool = False
    time_to_solve: float = math.inf
    steps_to_solve: float = math.inf
    threshold: float | None = None
    eval_steps: np.ndarray = field(default_factory=lambda: np.zeros(0))
    eval_returns: np.ndarray = field(default_factory=lambda: np.zeros(0))

    @property
    def env(self) -> str:
        return str(self.config.get("env", "?"))

    @property
    def setting_key(self) -> str:
        return json.dumps({k: v for k, v in self.config.items() if k not in NOT_SETTING},
                          sort_keys=True)


def read_run(path: Path) -> RunRecord:
    """A run directory's config, summary and evaluation curve."""
    config = read_json(path / "config.json")
    record = RunRecord(path, config, "unfinished")
    if (path / "summary.json").exists():
        summary = read_json(path / "summary.json")
        record.status = summary.get("status", "finished")
        record.final = summary.get("final_eval_return")
        record.solved = bool(summary.get("solved"))
        record.threshold = summary.get("reward_threshold")
        if record.solved:
            record.time_to_solve = float(summary["time_to_solve_s"])
            record.steps_to_solve = float(summary["env_steps_to_solve"])
    if (path / "metrics.csv").exists():
        rows = [r for r in read_metrics(path) if r.get("eval_return") is not None]
        record.eval_steps = np.array([r["step"] for r in rows])
        record.eval_returns = np.array([r["eval_return"] for r in rows])
    return record


def collect_runs(folder: str | os.PathLike,
                 unreadable: list[tuple[Path, str]] | None = None,
                 not_summarised: list[tuple[Path, str]] | None = None) -> list[RunRecord]:
    """Every training run directory at or below ``folder`` (hidden folders skipped), by path.

    A ``--seeds`` run's top folder is not a run: its ``seedN/`` folders are. Folders whose
    ``config.json`` or ``summary.json`` cannot be read are appended to ``unreadable`` as
    ``(path, reason)``.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such folder")
    runs = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        if "config.json" in files:
            try:
                config = read_json(Path(root) / "config.json")
                command = config.get("command") if isinstance(config, dict) else None
                if command in RUN_COMMANDS and "seeds" not in config:
                    runs.append(read_run(Path(root)))
                    dirs[:] = []  # a run's own folders hold no runs
                elif command in NOT_SUMMARISED:
                    if not_summarised is not None:
                        not_summarised.append((Path(root), command))
                    dirs[:] = []
            except (ValueError, OSError, TypeError, KeyError) as err:
                if unreadable is not None:
                    unreadable.append((Path(root), str(err).splitlines()[0][:200]))
                dirs[:] = []
    return sorted(runs, key=lambda r: str(r.path))


Interval = tuple[float, float, float]  # point, low, high


@dataclass
class SettingStats:
    """A setting's runs and their aggregate statistics (intervals are ``(point, low, high)``)."""

    label: str
    setting: dict[str, Any]
    runs: list[RunRecord]
    finished: int = 0
    diverged: int = 0
    unfinished: int = 0
    solved: int = 0
    final_iqm: Interval | None = None
    final_median: Interval | None = None
    solve_time_iqm: Interval | None = None
    solve_time_median: Interval | None = None
    solve_steps_iqm: Interval | None = None
    curve: dict[str, np.ndarray] | None = None  # steps, iqm, low, high, runs (n, T)
    duplicates: list[RunRecord] = field(default_factory=list)  # same seed again: not counted
    rank: int = 0  # within its environment

    @property
    def env(self) -> str:
        return self.runs[0].env

    def to_dict(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in (
            "label", "env", "rank", "setting", "finished", "diverged", "unfinished", "solved",
            "final_iqm", "final_median", "solve_time_iqm", "solve_time_median",
            "solve_steps_iqm")}
        out["runs"] = [str(r.path) for r in self.runs]
        out["duplicates"] = [str(r.path) for r in self.duplicates]
        if self.curve is not None:
            out["curve"] = {k: v.tolist() for k, v in self.curve.items() if k != "runs"}
        return out


def group_settings(runs: Sequence[RunRecord]) -> list[SettingStats]:
    """Runs grouped by setting (config without seed), labelled by the fields that differ."""
    groups: dict[str, list[RunRecord]] = {}
    for run in runs:
        groups.setdefault(run.setting_key, []).append(run)
    settings = [json.loads(k) for k in groups]
    varying = [k for k in settings[0] if len({format_value(s.get(k)) for s in settings}) > 1] \
        if settings else []
    out = []
    for key, setting in zip(groups, settings, strict=True):
        shown = {k: setting.get(k) for k in varying}
        label = setting_label(shown) if shown else str(setting.get("env", "all runs"))
        runs, copies, seen = [], [], set()
        for run in groups[key]:  # a (setting, seed) pair counts once
            seed = run.config.get("seed")
            (copies if seed in seen else runs).append(run)
            seen.add(seed)
        out.append(SettingStats(label, shown, runs, duplicates=copies))
    return out


def _curve(runs: Sequence[RunRecord], reps: int, confidence: float, seed: int):
    """IQM of the evaluation return at the env steps every run evaluated at, with CI bands."""
    common = None
    for r in runs:
        common = set(r.eval_steps.tolist()) if common is None else common & set(
            r.eval_steps.tolist())
    steps = np.array(sorted(common or ()))
    if steps.size == 0:
        return None
    matrix = np.stack([r.eval_returns[np.searchsorted(r.eval_steps, steps)] for r in runs])
    bands = np.array([stats.interval_estimate(matrix[:, t], stats.iqm, reps, confidence, seed)
                      for t in range(steps.size)])
    return {"steps": steps, "iqm": bands[:, 0], "low": bands[:, 1], "high": bands[:, 2],
            "runs": matrix}


def aggregate(folder: str | os.PathLike, reps: int = 2000, confidence: float = 0.95,
              seed: int = 0, unreadable: list[tuple[Path, str]] | None = None,
              not_summarised: list[tuple[Path, str]] | None = None) -> list[SettingStats]:
    """Statistics of every setting under ``folder``: grouped by environment (alphabetical),
    best final-score IQM first within each, ``rank`` counted per environment."""
    others: list[tuple[Path, str]] = []
    runs = collect_runs(folder, unreadable, others)
    if not runs:
        kinds = sorted({kind for _, kind in others})
        extra = (f"; it holds {len(others)} {'/'.join(kinds)} run(s), which report does not "
                 "summarise (prediction: no return to rank)") if others else ""
        raise ValueError(f"{folder}: no training runs found (folders with a config.json of "
                         f"semigrad {' or '.join(RUN_COMMANDS)}){extra}")
    if not_summarised is not None:
        not_summarised.extend(others)
    settings = group_settings(runs)
    for s in settings:
        done = [r for r in s.runs if r.status == "finished" and r.final is not None]
        s.finished = len(done)
        s.diverged = sum(r.status == "diverged" for r in s.runs)
        s.unfinished = len(s.runs) - s.finished - s.diverged
        s.solved = sum(r.solved for r in done)
        if not done:
            continue
        final = np.array([r.final for r in done])
        times = np.array([r.time_to_solve for r in done])
        steps = np.array([r.steps_to_solve for r in done])
        s.final_iqm = stats.interval_estimate(final, stats.iqm, reps, confidence, seed)
        s.final_median = stats.interval_estimate(final, stats.median, reps, confidence, seed)
        s.solve_time_iqm = stats.interval_estimate(times, stats.iqm, reps, confidence, seed)
        s.solve_time_median = stats.interval_estimate(times, stats.median, reps, confidence,
                                                      seed)
        s.solve_steps_iqm = stats.interval_estimate(steps, stats.iqm, reps, confidence, seed)
        s.curve = _curve(done, reps, confidence, seed)
    settings.sort(key=lambda s: (s.env, -s.final_iqm[0] if s.final_iqm else math.inf))
    for i, s in enumerate(settings):
        s.rank = 1 if i == 0 or settings[i - 1].env != s.env else settings[i - 1].rank + 1
    return settings


def _fmt(value: float, digits: int) -> str:
    return "inf" if value == math.inf else f"{value:.{digits}f}"


def _cell(interval: Interval | None, digits: int = 1) -> str:
    if interval is None:
        return "-"
    point, low, high = interval
    return f"{_fmt(point, digits)} [{_fmt(low, digits)}, {_fmt(high, digits)}]"


def markdown_table(settings: Sequence[SettingStats], confidence: float = 0.95,
                   reps: int = 2000) -> str:
    """The settings ranked by final-score IQM, as a markdown table with its notes."""
    ci = f"[{confidence:.0%} CI]"
    several = len({s.env for s in settings}) > 1
    lines = [
        f"| rank | {'env | ' if several else ''}setting | runs | final IQM {ci} | "
        f"final median {ci} | solved | "
        f"time to solve IQM {ci} (s) | time to solve median {ci} (s) | "
        f"env steps to solve IQM {ci} |",
        "|---:|" + ("---|" if several else "") + "---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for s in settings:
        extra = "".join(f" (+{n} {what})" for n, what in ((s.diverged, "diverged"),
                                                          (s.unfinished, "unfinished")) if n)
        lines.append(
            f"| {s.rank} | {s.env + ' | ' if several else ''}{s.label} | {s.finished}{extra} | "
            f"{_cell(s.final_iqm)} | "
            f"{_cell(s.final_median)} | {s.solved}/{s.finished} | {_cell(s.solve_time_iqm)} | "
            f"{_cell(s.solve_time_median)} | {_cell(s.solve_steps_iqm, 0)} |")
    fewest = min((s.finished for s in settings if s.finished), default=0)
    lines += [
        "",
        f"Final score: the mean greedy return of each run's last evaluation. IQM: the mean of "
        f"the middle runs (floor(n/4) dropped at each end; with n < 4 runs, the plain mean). "
        f"{ci[1:-1]}: percentile stratified bootstrap over seeds, {reps} resamples "
        f"(Agarwal et al., 2021). Time to solve: training seconds until the first evaluation "
        f"at or above the reward threshold; runs that never solved count as inf, so an IQM is "
        f"inf when more than a quarter of the runs never solved, a median when half or more. "
        f"Diverged and unfinished runs are left out of the statistics and counted in 'runs'."
        + (" Settings are ranked within their environment only." if several else ""),
    ]
    if fewest and fewest < 5:
        lines.append(f"\nCaution: a setting has only {fewest} finished run(s); a bootstrap "
                     "over so few seeds understates the uncertainty.")
    return "\n".join(lines)


def profiles(settings: Sequence[SettingStats], reps: int, confidence: float, seed: int,
             points: int = 101) -> dict[str, Any]:
    """Performance profiles with bands: fraction of runs with final score > tau, and fraction
    solved within t training seconds (``1 -`` the profile of the time to solve)."""
    done = {s.label: [r for r in s.runs if r.status == "finished" and r.final is not None]
            for s in settings}
    done = {k: v for k, v in done.items() if v}
    finals = np.concatenate([[r.final for r in v] for v in done.values()]) if done else []
    if not done:
        return {}
    taus = np.linspace(min(finals.min(), 0.0), finals.max(), points)
    times = [r.time_to_solve for v in done.values() for r in v if r.solved]
    ts = np.linspace(0.0, max(times) * 1.05 if times else 1.0, points)
    out: dict[str, Any] = {"taus": taus, "ts": ts, "score": {}, "solved": {}}
    for label, runs in done.items():
        out["score"][label] = stats.performance_profile_ci(
            np.array([r.final for r in runs]), taus, reps, confidence, seed)
        p, low, high = stats.performance_profile_ci(
            np.array([r.time_to_solve for r in runs]), ts, reps, confidence, seed)
        out["solved"][label] = (1 - p, 1 - high, 1 - low)
    return out


def threshold_of(settings: Sequence[SettingStats]) -> float | None:
    """The reward threshold the runs share (None when unknown or when they differ)."""
    found = {r.threshold for s in settings for r in s.runs if r.threshold is not None}
    return found.pop() if len(found) == 1 else None
