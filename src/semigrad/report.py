"""Aggregate a folder of runs: per setting, across seeds, with honest statistics.

Any folder works (a sweep, or runs made one by one): every run directory below it whose
``config.json`` says ``"command"``:

- ``"train"`` (DQN, SARSA, ...: its ``"algo"``) or ``"sarsa"`` (SARSA runs of earlier
  versions): a *control* run, ranked by its final greedy return;
- ``"td0"``: a *prediction* run, ranked by its error against the Monte Carlo values at the
  probe states (its own table: a value error is not a return);
- ``"baird"``: counted and named, not summarised.

Runs whose configs are equal except for the seed form one *setting*. For each control setting
(Agarwal et al., 2021):

- final score = ``final_eval_return`` (mean greedy return of the last evaluation): IQM and
  median with 95% stratified bootstrap percentile intervals;
- time to solve = training seconds until the first evaluation at or above the environment's
  reward threshold (and the env steps it took). A run that never solved within its budget
  counts as ``+inf``: a median or IQM is then still exact when enough runs solved (fewer than
  half, resp. a quarter, unsolved) and ``inf`` otherwise. SARSA runs of earlier versions
  evaluated their greedy policy once, after training: solved when that return reached the
  threshold, their time to solve not measured (``None``).

For each TD(0) setting: per run, the RMS over the probe states of ``v_hat - mc_value`` and of
the relative error ``(v_hat - mc_value) / mc_value``, and the largest relative error; their IQM
over seeds with intervals, and the RMS Monte Carlo standard error (the noise floor of the
comparison). The curve is the RMS relative error of ``v_hat`` (metrics.csv) over training.

For both kinds:

- diverged and unfinished runs are left out of the statistics and counted;
- a (setting, seed) pair found more than once (a copied folder, a re-run) counts once, with a
  warning: copies are not independent runs;
- settings are ranked within their environment only (returns are on different scales);
- a setting's label is the config fields that differ between the settings of its environment
  and algorithm (the algorithm's name when none differ; prefixed with it when the environment
  has runs of several algorithms);
- a folder whose ``config.json`` or ``summary.json`` cannot be read is listed, not silently
  skipped.

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

CONTROL = ("train", "sarsa")  # runs with a final greedy return to rank
PREDICTION = ("td0",)  # algorithms with v_hat against Monte Carlo values to rank
RUN_COMMANDS = CONTROL + PREDICTION
NOT_SUMMARISED = ("baird",)  # listed, not ranked
ALGORITHM = {"train": "dqn", "sarsa": "sarsa", "td0": "td0"}  # short names, for labels
NOT_SETTING = ("seed", "tensorboard")  # config keys that do not make a setting
NOT_LABEL = ("command", "algo", "env")  # the same within a label's group: never shown in it


@dataclass
class RunRecord:
    """One run directory as the report sees it.

    Control runs fill ``final``, ``solved``, ``time_to_solve``/``steps_to_solve`` (``inf``: never
    solved; ``None``: not measured) and a curve of the greedy evaluation return; prediction runs
    fill ``errors`` (``rms_error``, ``rms_relative_error``, ``max_abs_relative_error``,
    ``mc_stderr``; ``None`` without Monte Carlo values) and a curve of the RMS relative error.
    """

    path: Path
    config: dict[str, Any]
    status: str  # finished, diverged, interrupted, unfinished
    final: float | None = None
    solved: bool = False
    time_to_solve: float | None = math.inf
    steps_to_solve: float | None = math.inf
    threshold: float | None = None
    errors: dict[str, float] | None = None
    curve_steps: np.ndarray = field(default_factory=lambda: np.zeros(0))
    curve_values: np.ndarray = field(default_factory=lambda: np.zeros(0))

    @property
    def env(self) -> str:
        return str(self.config.get("env", "?"))

    @property
    def command(self) -> str:
        return str(self.config.get("command"))

    @property
    def kind(self) -> str:
        return "prediction" if self.algorithm in PREDICTION else "control"

    @property
    def algorithm(self) -> str:
        """``config.json``'s ``algo`` (trainer runs), else the command's algorithm."""
        return str(self.config.get("algo") or ALGORITHM.get(self.command, self.command))

    @property
    def setting_key(self) -> str:
        return json.dumps({k: v for k, v in self.config.items() if k not in NOT_SETTING},
                          sort_keys=True)


def _number(value: Any) -> float | None:
    return None if value is None else float(value)


def _read_control(record: RunRecord, summary: dict[str, Any] | None) -> None:
    if summary is not None:
        record.status = summary.get("status", "finished")
        record.final = _number(summary.get("final_eval_return"))
        record.solved = bool(summary.get("solved"))
        record.threshold = _number(summary.get("reward_threshold"))
        if "time_to_solve_s" not in summary:  # evaluated once, after training (older SARSA)
            record.time_to_solve = record.steps_to_solve = None
        elif record.solved:
            record.time_to_solve = _number(summary["time_to_solve_s"])
            record.steps_to_solve = _number(summary.get("env_steps_to_solve"))
    if (record.path / "metrics.csv").exists():
        rows = [r for r in read_metrics(record.path) if r.get("eval_return") is not None]
        record.curve_steps = np.array([r["step"] for r in rows])
        record.curve_values = np.array([r["eval_return"] for r in rows])


def _read_prediction(record: RunRecord, summary: dict[str, Any] | None) -> None:
    if summary is None:
        return
    record.status = summary.get("status", "finished")
    probes = summary.get("probes") or []
    if not probes or any(p.get("mc_value") is None for p in probes):
        return  # no Monte Carlo values to compare with (an env other than CartPole-v1)
    v_hat = np.array([float(p["v_hat"]) for p in probes])
    mc = np.array([float(p["mc_value"]) for p in probes])
    stderr = np.array([float(p["mc_stderr"]) for p in probes])
    error = v_hat - mc
    relative = error / mc
    record.errors = {"rms_error": float(np.sqrt(np.mean(error ** 2))),
                     "rms_relative_error": float(np.sqrt(np.mean(relative ** 2))),
                     "max_abs_relative_error": float(np.max(np.abs(relative))),
                     "mc_stderr": float(np.sqrt(np.mean(stderr ** 2)))}
    if (record.path / "metrics.csv").exists():
        columns = [f"v_hat_{i}" for i in range(len(probes))]
        rows = [r for r in read_metrics(record.path)
                if all(r.get(c) is not None for c in columns)]
        if rows:
            values = np.array([[r[c] for c in columns] for r in rows])
            record.curve_steps = np.array([r["step"] for r in rows])
            record.curve_values = np.sqrt(np.mean(((values - mc) / mc) ** 2, axis=1))


def read_run(path: Path) -> RunRecord:
    """A run directory's config, summary and curve (see ``RunRecord``)."""
    config = read_json(path / "config.json")
    record = RunRecord(path, config, "unfinished")
    summary = read_json(path / "summary.json") if (path / "summary.json").exists() else None
    try:
        if summary is not None and not isinstance(summary, dict):
            raise TypeError("not a JSON object")
        (_read_prediction if record.kind == "prediction" else _read_control)(record, summary)
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        what = f"no field {err}" if isinstance(err, KeyError) else str(err)
        raise ValueError(f"{path / 'summary.json'} or metrics.csv: unexpected content ({what}); "
                         f"rerun it with semigrad {record.command}") from err
    return record


def collect_runs(folder: str | os.PathLike,
                 unreadable: list[tuple[Path, str]] | None = None,
                 not_summarised: list[tuple[Path, str]] | None = None) -> list[RunRecord]:
    """Every run directory that report summarises at or below ``folder`` (hidden folders
    skipped), by path.

    A ``--seeds`` run's top folder is not a run: its ``seedN/`` folders are. Folders whose
    ``config.json`` or ``summary.json`` cannot be read are appended to ``unreadable`` as
    ``(path, reason)``; runs of a command report does not summarise, to ``not_summarised`` as
    ``(path, command)``.
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
            except (ValueError, OSError, TypeError, KeyError, AttributeError) as err:
                if unreadable is not None:
                    unreadable.append((Path(root), str(err).splitlines()[0][:300]))
                dirs[:] = []
    return sorted(runs, key=lambda r: str(r.path))


Interval = tuple[float, float, float]  # point, low, high


@dataclass
class SettingStats:
    """A setting's runs and their aggregate statistics (intervals are ``(point, low, high)``).

    Control settings fill ``final_*`` and ``solve_*`` (``None`` when no finished run, or when
    the time to solve is not measured); prediction settings fill ``error_*`` and ``mc_stderr``.
    ``curve``: ``steps``, ``iqm``, ``low``, ``high`` and ``runs (n, T)`` of the greedy
    evaluation return (control) or of the RMS relative error (prediction).
    """

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
    error_rms: Interval | None = None
    error_relative_rms: Interval | None = None
    error_relative_max: Interval | None = None
    mc_stderr: float | None = None
    curve: dict[str, np.ndarray] | None = None
    duplicates: list[RunRecord] = field(default_factory=list)  # same seed again: not counted
    rank: int = 0  # within its environment and kind

    @property
    def env(self) -> str:
        return self.runs[0].env

    @property
    def kind(self) -> str:
        return self.runs[0].kind

    @property
    def algorithm(self) -> str:
        return self.runs[0].algorithm

    def done(self) -> list[RunRecord]:
        """The finished runs, the ones the statistics are over."""
        if self.kind == "prediction":
            return [r for r in self.runs if r.status == "finished"]
        return [r for r in self.runs if r.status == "finished" and r.final is not None]

    def to_dict(self) -> dict[str, Any]:
        keys = ("label", "env", "kind", "algorithm", "rank", "setting", "finished", "diverged",
                "unfinished")
        keys += (("error_rms", "error_relative_rms", "error_relative_max", "mc_stderr")
                 if self.kind == "prediction" else
                 ("solved", "final_iqm", "final_median", "solve_time_iqm", "solve_time_median",
                  "solve_steps_iqm"))
        out = {k: getattr(self, k) for k in keys}
        out["runs"] = [str(r.path) for r in self.runs]
        out["duplicates"] = [str(r.path) for r in self.duplicates]
        if self.curve is not None:
            out["curve"] = {k: v.tolist() for k, v in self.curve.items() if k != "runs"}
        return out


def group_settings(runs: Sequence[RunRecord]) -> list[SettingStats]:
    """Runs grouped by setting (config without seed). A label is the config fields that differ
    between the settings of its environment and algorithm, prefixed with the algorithm's name
    when its environment has runs of several in the same table (DQN and SARSA); the
    algorithm's name when none differ."""
    groups: dict[str, list[RunRecord]] = {}
    for run in runs:
        groups.setdefault(run.setting_key, []).append(run)
    family: dict[tuple[str, str, str], list[str]] = {}  # (env, kind, algorithm) -> settings
    for key, members in groups.items():
        family.setdefault((members[0].env, members[0].kind, members[0].algorithm),
                          []).append(key)
    algorithms_of: dict[tuple[str, str], set[str]] = {}  # (env, kind) -> algorithms
    for env, kind, name in family:
        algorithms_of.setdefault((env, kind), set()).add(name)
    shown_of: dict[str, dict[str, Any]] = {}
    label_of: dict[str, str] = {}
    for (env, kind, name), keys in family.items():
        configs = [json.loads(k) for k in keys]
        fields = list(dict.fromkeys(f for c in configs for f in c if f not in NOT_LABEL))
        varying = [f for f in fields if len({format_value(c.get(f)) for c in configs}) > 1]
        for key, config in zip(keys, configs, strict=True):
            shown = shown_of[key] = {f: config.get(f) for f in varying}
            label = setting_label(shown) if shown else name
            several = len(algorithms_of[env, kind]) > 1
            label_of[key] = f"{name}: {label}" if shown and several else label
    out = []
    for key, members in groups.items():
        kept, copies, seen = [], [], set()
        for run in members:  # a (setting, seed) pair counts once
            seed = run.config.get("seed")
            (copies if seed in seen else kept).append(run)
            seen.add(seed)
        out.append(SettingStats(label_of[key], shown_of[key], kept, duplicates=copies))
    return out


def _curve(runs: Sequence[RunRecord], reps: int, confidence: float, seed: int):
    """IQM of the runs' curves at the env steps every run logged, with CI bands."""
    common = None
    for r in runs:
        common = set(r.curve_steps.tolist()) if common is None else common & set(
            r.curve_steps.tolist())
    steps = np.array(sorted(common or ()))
    if steps.size == 0:
        return None
    matrix = np.stack([r.curve_values[np.searchsorted(r.curve_steps, steps)] for r in runs])
    bands = np.array([stats.interval_estimate(matrix[:, t], stats.iqm, reps, confidence, seed)
                      for t in range(steps.size)])
    return {"steps": steps, "iqm": bands[:, 0], "low": bands[:, 1], "high": bands[:, 2],
            "runs": matrix}


def _control_stats(s: SettingStats, done: list[RunRecord], reps: int, confidence: float,
                   seed: int) -> None:
    s.solved = sum(r.solved for r in done)
    final = np.array([r.final for r in done])
    s.final_iqm = stats.interval_estimate(final, stats.iqm, reps, confidence, seed)
    s.final_median = stats.interval_estimate(final, stats.median, reps, confidence, seed)
    if all(r.time_to_solve is not None for r in done):
        times = np.array([r.time_to_solve for r in done])
        s.solve_time_iqm = stats.interval_estimate(times, stats.iqm, reps, confidence, seed)
        s.solve_time_median = stats.interval_estimate(times, stats.median, reps, confidence,
                                                      seed)
    if all(r.steps_to_solve is not None for r in done):
        steps = np.array([r.steps_to_solve for r in done])
        s.solve_steps_iqm = stats.interval_estimate(steps, stats.iqm, reps, confidence, seed)


def _prediction_stats(s: SettingStats, done: list[RunRecord], reps: int, confidence: float,
                      seed: int) -> None:
    if not all(r.errors is not None for r in done):
        return
    for name, key in (("error_rms", "rms_error"), ("error_relative_rms", "rms_relative_error"),
                      ("error_relative_max", "max_abs_relative_error")):
        values = np.array([r.errors[key] for r in done])
        setattr(s, name, stats.interval_estimate(values, stats.iqm, reps, confidence, seed))
    s.mc_stderr = float(np.sqrt(np.mean([r.errors["mc_stderr"] ** 2 for r in done])))


def _rank_key(s: SettingStats) -> tuple:
    if s.kind == "prediction":
        score = s.error_relative_rms[0] if s.error_relative_rms else math.inf
    else:
        score = -s.final_iqm[0] if s.final_iqm else math.inf
    return (s.kind != "control", s.env, score)


def aggregate(folder: str | os.PathLike, reps: int = 2000, confidence: float = 0.95,
              seed: int = 0, unreadable: list[tuple[Path, str]] | None = None,
              not_summarised: list[tuple[Path, str]] | None = None) -> list[SettingStats]:
    """Statistics of every setting under ``folder``: control settings first, then prediction
    ones; within each, grouped by environment (alphabetical), best first (highest final-score
    IQM; lowest RMS relative error IQM), ``rank`` counted per kind and environment."""
    others: list[tuple[Path, str]] = []
    runs = collect_runs(folder, unreadable, others)
    if not runs:
        kinds = sorted({kind for _, kind in others})
        extra = (f"; it holds {len(others)} {'/'.join(kinds)} run(s), which report does not "
                 "summarise") if others else ""
        raise ValueError(f"{folder}: no training runs found (folders with a config.json of "
                         f"semigrad {', '.join(RUN_COMMANDS[:-1])} or {RUN_COMMANDS[-1]})"
                         f"{extra}")
    if not_summarised is not None:
        not_summarised.extend(others)
    settings = group_settings(runs)
    for s in settings:
        done = s.done()
        s.finished = len(done)
        s.diverged = sum(r.status == "diverged" for r in s.runs)
        s.unfinished = len(s.runs) - s.finished - s.diverged
        if not done:
            continue
        (_prediction_stats if s.kind == "prediction" else _control_stats)(
            s, done, reps, confidence, seed)
        s.curve = _curve(done, reps, confidence, seed)
    settings.sort(key=_rank_key)
    for i, s in enumerate(settings):
        first = i == 0 or _rank_key(settings[i - 1])[:2] != _rank_key(s)[:2]
        s.rank = 1 if first else settings[i - 1].rank + 1
    return settings


def _fmt(value: float, digits: int, percent: bool = False) -> str:
    if value == math.inf:
        return "inf"
    return f"{100 * value:.{digits}f}%" if percent else f"{value:.{digits}f}"


def _cell(interval: Interval | None, digits: int = 1, percent: bool = False) -> str:
    if interval is None:
        return "-"
    point, low, high = (_fmt(v, digits, percent) for v in interval)
    return f"{point} [{low}, {high}]"


def _runs_cell(s: SettingStats) -> str:
    extra = "".join(f" (+{n} {what})" for n, what in ((s.diverged, "diverged"),
                                                      (s.unfinished, "unfinished")) if n)
    return f"{s.finished}{extra}"


def _control_table(settings: Sequence[SettingStats], ci: str, reps: int) -> list[str]:
    several = len({s.env for s in settings}) > 1
    lines = [
        f"| rank | {'env | ' if several else ''}setting | runs | final IQM {ci} | "
        f"final median {ci} | solved | "
        f"time to solve IQM {ci} (s) | time to solve median {ci} (s) | "
        f"env steps to solve IQM {ci} |",
        "|---:|" + ("---|" if several else "") + "---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for s in settings:
        lines.append(
            f"| {s.rank} | {s.env + ' | ' if several else ''}{s.label} | {_runs_cell(s)} | "
            f"{_cell(s.final_iqm)} | "
            f"{_cell(s.final_median)} | {s.solved}/{s.finished} | {_cell(s.solve_time_iqm)} | "
            f"{_cell(s.solve_time_median)} | {_cell(s.solve_steps_iqm, 0)} |")
    once = sorted({s.algorithm.upper() for s in settings
                   if s.finished and s.solve_time_iqm is None})
    lines += [
        "",
        f"Final score: the mean greedy return of each run's last evaluation. IQM: the mean of "
        f"the middle runs (floor(n/4) dropped at each end; with n < 4 runs, the plain mean). "
        f"{ci[1:-1]}: percentile stratified bootstrap over seeds, {reps} resamples "
        f"(Agarwal et al., 2021). Time to solve: training seconds until the first evaluation "
        f"at or above the reward threshold; runs that never solved count as inf, so an IQM is "
        f"inf when more than a quarter of the runs never solved, a median when half or more. "
        f"Diverged and unfinished runs are left out of the statistics and counted in 'runs'."
        + (" Settings are ranked within their environment only." if several else "")
        + (f" {' and '.join(once)} runs of semigrad before 2026-12-05 evaluated their greedy "
           f"policy once, after training: 'solved' is that return at or above the threshold, "
           f"and the time to solve is not measured ('-')." if once else ""),
    ]
    return lines


def _prediction_table(settings: Sequence[SettingStats], ci: str, reps: int) -> list[str]:
    several = len({s.env for s in settings}) > 1
    lines = [
        f"| rank | {'env | ' if several else ''}setting | runs | RMS relative error IQM {ci} | "
        f"max relative error IQM {ci} | RMS error IQM {ci} | MC standard error |",
        "|---:|" + ("---|" if several else "") + "---|---:|---:|---:|---:|---:|",
    ]
    for s in settings:
        lines.append(
            f"| {s.rank} | {s.env + ' | ' if several else ''}{s.label} | {_runs_cell(s)} | "
            f"{_cell(s.error_relative_rms, 1, True)} | {_cell(s.error_relative_max, 1, True)} | "
            f"{_cell(s.error_rms, 3)} | "
            f"{'-' if s.mc_stderr is None else f'{s.mc_stderr:.3f}'} |")
    lines += [
        "",
        f"Prediction error of v_hat at each run's probe states against their Monte Carlo "
        f"values (the true v_pi, up to the Monte Carlo standard error, RMS over probes and "
        f"runs): per run, the RMS over the probes of (v_hat - MC) / MC, the largest "
        f"|v_hat - MC| / MC, and the RMS of v_hat - MC; lower is better. IQM over seeds, "
        f"{ci[1:-1]}: percentile stratified bootstrap, {reps} resamples. '-': no Monte Carlo "
        f"values (they are computed on CartPole-v1 only). Diverged and unfinished runs are "
        f"left out of the statistics and counted in 'runs'."
        + (" Settings are ranked within their environment only." if several else ""),
    ]
    return lines


def markdown_table(settings: Sequence[SettingStats], confidence: float = 0.95,
                   reps: int = 2000) -> str:
    """The control settings ranked by final-score IQM, then the prediction (TD(0)) settings
    ranked by RMS relative error, as markdown tables with their notes."""
    ci = f"[{confidence:.0%} CI]"
    control = [s for s in settings if s.kind == "control"]
    prediction = [s for s in settings if s.kind == "prediction"]
    lines: list[str] = []
    if control:
        names = "/".join(sorted({s.algorithm.upper() for s in control}))
        lines += [f"## {names}: final greedy return", "", *_control_table(control, ci, reps)]
    if prediction:
        lines += ([""] if lines else []) + [
            "## TD(0): prediction error against Monte Carlo", "",
            *_prediction_table(prediction, ci, reps)]
    fewest = min((s.finished for s in settings if s.finished), default=0)
    if fewest and fewest < 5:
        lines.append(f"\nCaution: a setting has only {fewest} finished run(s); a bootstrap "
                     "over so few seeds understates the uncertainty.")
    return "\n".join(lines)


def by_env(settings: Sequence[SettingStats]) -> dict[str, list[SettingStats]]:
    """``settings`` grouped by environment, in their order."""
    out: dict[str, list[SettingStats]] = {}
    for s in settings:
        out.setdefault(s.env, []).append(s)
    return out


def profiles(settings: Sequence[SettingStats], reps: int, confidence: float, seed: int,
             points: int = 101) -> dict[str, dict[str, Any]]:
    """Per environment, performance profiles of its control settings with bands: ``score``,
    the fraction of runs with final score > tau (at ``taus``), and ``solved``, the fraction
    solved within t training seconds (at ``ts``; ``1 -`` the profile of the time to solve;
    settings whose time to solve is not measured are absent). Keys: setting labels, best
    first."""
    out: dict[str, dict[str, Any]] = {}
    for env, group in by_env([s for s in settings if s.kind == "control"]).items():
        done = {s.label: s.done() for s in group if s.done()}
        if not done:
            continue
        finals = np.array([r.final for v in done.values() for r in v])
        low = min(finals.min(), 0.0)
        high = max(finals.max(), thresholds(group).get(env, -math.inf))
        taus = np.linspace(low, high if high > low else low + 1.0, points)
        timed = {s.label: done[s.label] for s in group
                 if s.label in done and s.solve_time_iqm is not None}
        times = [r.time_to_solve for v in timed.values() for r in v if r.solved]
        ts = np.linspace(0.0, max(times) * 1.05 if times else 1.0, points)
        prof: dict[str, Any] = {"taus": taus, "ts": ts, "score": {}, "solved": {}}
        for label, runs in done.items():
            prof["score"][label] = stats.performance_profile_ci(
                np.array([r.final for r in runs]), taus, reps, confidence, seed)
        for label, runs in timed.items():
            p, low, high = stats.performance_profile_ci(
                np.array([r.time_to_solve for r in runs]), ts, reps, confidence, seed)
            prof["solved"][label] = (1 - p, 1 - high, 1 - low)
        out[env] = prof
    return out


def thresholds(settings: Sequence[SettingStats]) -> dict[str, float]:
    """Per environment, the reward threshold its runs share (absent when unknown or when its
    runs disagree)."""
    found: dict[str, set[float]] = {}
    for s in settings:
        for r in s.runs:
            if r.threshold is not None:
                found.setdefault(s.env, set()).add(r.threshold)
    return {env: values.pop() for env, values in found.items() if len(values) == 1}
