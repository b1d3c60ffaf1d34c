"""Sweeps: every seed x every hyper-parameter setting, one semigrad run per trial, on Ray Tune.

A sweep folder holds::

    SWEEP_DIR/config.json         the sweep: algorithm, preset, overrides, grid, seeds
    SWEEP_DIR/trials/NAME/        one run directory per trial, as `semigrad train` writes it
                                  (NAME is e.g. ``alpha=0.001,gamma=0.99,seed=3``)
    SWEEP_DIR/summary.json        the outcome of every trial (written when the sweep returns)
    SWEEP_DIR/.tune/              Ray Tune's own bookkeeping

Resuming relies on the trial run directories, not on Tune's experiment state: a trial whose run
directory holds a ``summary.json`` (finished or diverged) is done and never rerun; one with a
``checkpoint_last.pt`` continues from it exactly (``train(..., resume=True)``); any other starts
afresh. An invalid setting (a ``ConfigError``, e.g. ``alpha=-1``) is refused before the sweep
starts; trials that raise while running are reported with their error; the other trials go
on.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import logging
import os
import re
import shutil
import socket
import time
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from semigrad.config import ConfigError, parse_seeds, renamed_hint, to_dict
from semigrad.run import atomic_write_json, read_json

TRIALS = "trials"
DONE_STATUSES = ("finished", "diverged")  # outcomes kept on resume (diverging is a result)
OUTCOME_KEYS = ("status", "error", "final_eval_return", "solved", "time_to_solve_s",
                "env_steps", "run_dir", "host", "started_as")


# ----------------------------------------------------------------------------- algorithms


@dataclass(frozen=True)
class Algo:
    """One algorithm a sweep can run: its config class, presets and training entry point.

    ``preset_fields(name, overrides)`` gives the fields of preset ``name`` with ``overrides`` on
    top. ``train(cfg, run_dir, resume)`` writes a run directory (metrics.csv, checkpoint_last.pt,
    summary.json) and returns the summary; it raises ``diverged`` when training blows up, after
    writing a summary with status "diverged".
    """

    config_cls: type
    presets: Mapping[str, Any]
    default_preset: str
    preset_fields: Callable[[str, Mapping[str, Any]], dict[str, Any]]
    command: str  # the `semigrad COMMAND` whose run directories the trials imitate
    train: Callable[[Any, Path, bool], dict]
    diverged: type[Exception]


def _on_trainer(name: str) -> Algo:
    """An algorithm of the trainer's registry: its presets (or one, its config's defaults),
    exact resume of a stopped trial, divergence raised after the summary is written."""
    from semigrad import trainer

    algo = trainer.algorithm(name)
    presets = getattr(algo, "PRESETS", None) or {"default": algo.Config()}

    def preset_fields(preset: str, overrides: Mapping[str, Any]) -> dict[str, Any]:
        return {**to_dict(presets[preset]), **overrides}

    def train(cfg: Any, run_dir: Path, resume: bool) -> dict:
        return trainer.train(algo, cfg, run_dir, resume=resume, progress=False)

    return Algo(algo.Config, presets, getattr(algo, "DEFAULT_PRESET", "default"),
                getattr(algo, "preset_fields", preset_fields), "train", train,
                trainer.TrainingDiverged)


def _algos() -> dict[str, Callable[[], Algo]]:
    from semigrad.algos import TRAINED

    return {name: functools.partial(_on_trainer, name) for name in TRAINED}


ALGOS: dict[str, Callable[[], Algo]] = _algos()


def get_algo(name: str) -> Algo:
    if name not in ALGOS:
        raise ValueError(f"algo: {name!r} is not one of {', '.join(sorted(ALGOS))}")
    return ALGOS[name]()


# ----------------------------------------------------------------------------- values


def format_value(value: Any) -> str:
    """A short exact text for a config value: ``repr`` for floats, ``64x64`` for tuples."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (list, tuple)):
        return "x".join(format_value(v) for v in value)
    return repr(value) if isinstance(value, float) else str(value)


def setting_label(setting: Mapping[str, Any]) -> str:
    """``alpha=0.001,gamma=0.99`` for ``{"alpha": 0.001, "gamma": 0.99}``."""
    return ",".join(f"{k}={format_value(v)}" for k, v in setting.items())


def _coerce(config_cls: type, name: str, value: Any) -> Any:
    """``value`` (text from the command line, or a TOML/YAML value) as field ``name``'s type."""
    fields = {f.name: f for f in dataclasses.fields(config_cls)}
    if name not in fields or fields[name].metadata.get("cli") is False:
        import difflib

        if name == "seed":
            raise ValueError("seed: give seeds with --seeds (e.g. --seeds 0-9), not in the grid")
        close = difflib.get_close_matches(name, list(fields), n=1)
        hint = renamed_hint(name) or (f"; did you mean {close[0]!r}?" if close else "")
        raise ValueError(f"{name}: not a field of {config_cls.__name__}{hint}")
    annotation = typing.get_type_hints(config_cls)[name]
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    try:
        if origin is tuple:
            items = value.split("x") if isinstance(value, str) else value
            return tuple(_coerce_scalar(args[0], v) for v in items)
        if origin is Literal:
            return _coerce_scalar(type(args[0]), value)
        return _coerce_scalar(annotation, value)
    except (TypeError, ValueError):
        kind = getattr(annotation, "__name__", annotation)
        raise ValueError(f"{name}: cannot read {value!r} as {kind}") from None


def _coerce_scalar(kind: type, value: Any) -> Any:
    if kind is bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text not in ("true", "false", "1", "0", "yes", "no"):
            raise ValueError(value)
        return text in ("true", "1", "yes")
    if kind is int:
        number = float(value) if isinstance(value, str) else value
        if isinstance(number, bool) or not float(number).is_integer():
            raise ValueError(value)
        return int(number)
    if kind is float:
        if isinstance(value, bool):
            raise ValueError(value)
        return float(value)
    if kind is str and not isinstance(value, str):
        raise ValueError(value)
    return kind(value)


def parse_grid_item(text: str) -> tuple[str, list[str]]:
    """``"alpha=1e-3,3e-4"`` -> ``("alpha", ["1e-3", "3e-4"])`` (dashes in the name become
    ``_``)."""
    name, sep, values = text.partition("=")
    items = [v.strip() for v in values.split(",") if v.strip()]
    if not sep or not name.strip() or not items:
        raise ValueError(f"--grid: cannot read {text!r}; use NAME=V1,V2,... e.g. alpha=1e-3,3e-4")
    return name.strip().replace("-", "_"), items


# ----------------------------------------------------------------------------- the sweep


@dataclass(frozen=True)
class Trial:
    """One run of a sweep: a setting (grid values) and a seed."""

    name: str
    setting: dict[str, Any]
    seed: int
    config: dict[str, Any]  # every field of the algorithm's config, JSON-ready


@dataclass(frozen=True)
class SweepSpec:
    """What a sweep runs: ``algo`` from ``preset`` with ``overrides``, every combination of the
    ``grid`` values (in the order given) and every seed. Validated when built."""

    algo: str = "dqn"
    preset: str | None = None
    overrides: dict[str, Any] = dataclasses.field(default_factory=dict)
    grid: dict[str, list[Any]] = dataclasses.field(default_factory=dict)
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)

    def __post_init__(self) -> None:
        algo = get_algo(self.algo)
        if self.preset is None:
            object.__setattr__(self, "preset", algo.default_preset)
        if self.preset not in algo.presets:
            raise ValueError(f"preset: {self.preset!r} is not one of "
                             f"{', '.join(sorted(algo.presets))} for {self.algo}")
        object.__setattr__(self, "seeds", parse_seeds(self.seeds))
        object.__setattr__(self, "overrides", {
            k.replace("-", "_"): _coerce(algo.config_cls, k.replace("-", "_"), v)
            for k, v in self.overrides.items()})
        grid = {}
        for key, values in self.grid.items():
            name = key.replace("-", "_")
            if not isinstance(values, (list, tuple)) or not values:
                raise ValueError(f"grid: {name} needs a non-empty list of values")
            coerced = [_coerce(algo.config_cls, name, v) for v in values]
            if len({format_value(v) for v in coerced}) != len(coerced):
                raise ValueError(f"grid: {name} has repeated values {values!r}")
            grid[name] = coerced
        object.__setattr__(self, "grid", grid)

    def to_dict(self) -> dict[str, Any]:
        return {"algo": self.algo, "preset": self.preset, "overrides": self.overrides,
                "grid": self.grid, "seeds": list(self.seeds)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SweepSpec:
        unknown = set(data) - {"algo", "preset", "overrides", "grid", "seeds", "config"}
        if unknown:
            raise ValueError(f"sweep: unknown key(s) {', '.join(sorted(unknown))}; expected "
                             "algo, preset, seeds, config (or overrides), grid")
        return cls(algo=data.get("algo", "dqn"), preset=data.get("preset"),
                   overrides=dict(data.get("overrides", data.get("config", {}))),
                   grid=dict(data.get("grid", {})), seeds=data.get("seeds", (0, 1, 2, 3, 4)))

    def settings(self) -> list[dict[str, Any]]:
        """Every combination of the grid values (one empty setting without a grid)."""
        names = list(self.grid)
        return [dict(zip(names, combo, strict=True))
                for combo in itertools.product(*(self.grid[n] for n in names))]

    def trials(self) -> list[Trial]:
        """Setting-major: all seeds of the first setting, then the next setting..."""
        algo = get_algo(self.algo)
        trials = []
        for setting in self.settings():
            for seed in self.seeds:
                label = setting_label({**setting, "seed": seed})
                name = re.sub(r"[^A-Za-z0-9=,.+_-]", "-", label)
                config = algo.preset_fields(self.preset,
                                            {**self.overrides, **setting, "seed": seed})
                trials.append(Trial(name, setting, seed, _json_config(config)))
        if len({t.name for t in trials}) != len(trials):
            raise ValueError("grid: two settings give the same trial folder name")
        return trials


def _json_config(config: Mapping[str, Any]) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in config.items()}


def build_config(algo: Algo, config: Mapping[str, Any]) -> Any:
    """The algorithm's config from a JSON dict (lists back to tuples); may raise ConfigError."""
    return algo.config_cls(**{k: tuple(v) if isinstance(v, list) else v
                              for k, v in config.items()})


def load_sweep_file(path: str | os.PathLike) -> dict[str, Any]:
    """A sweep file's contents: TOML (``.toml``) or YAML (``.yaml``/``.yml``, needs pyyaml)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such sweep file")
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".toml":
        import tomllib

        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as err:
            raise ValueError(f"{path}: not valid TOML ({err})") from None
    elif path.suffix in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError:
            raise ValueError(f"{path}: reading YAML needs pyyaml (pip install pyyaml); "
                             "or write the sweep file in TOML") from None
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as err:
            raise ValueError(f"{path}: not valid YAML ({err})") from None
    else:
        raise ValueError(f"{path}: a sweep file ends in .toml, .yaml or .yml")
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a table of algo, preset, seeds, config, grid")
    return data


# ----------------------------------------------------------------------------- trials


def trial_state(run_dir: Path) -> str:
    """``"done"`` (summary.json with a final status), ``"resumable"`` (checkpoint_last.pt) or
    ``"new"``."""
    summary = run_dir / "summary.json"
    if summary.exists():
        try:
            if read_json(summary).get("status") in DONE_STATUSES:
                return "done"
        except ValueError:
            pass
    if (run_dir / "checkpoint_last.pt").exists() and (run_dir / "config.json").exists():
        return "resumable"
    return "new"


def run_trial(algo_name: str, config: Mapping[str, Any], run_dir: str | os.PathLike,
              threads: int = 1, hide_gpus: bool = False) -> dict[str, Any]:
    """Run (or continue) one trial in its run directory; return its outcome, never raise.

    ``threads``: torch CPU threads. ``hide_gpus``: a trial given no GPU by Ray must not use
    one (Ray >= 2.4x leaves CUDA_VISIBLE_DEVICES alone for 0-GPU trials), so that
    ``device="auto"`` means the CPU there.

    The outcome holds ``status`` ("finished", "diverged", "interrupted" or "failed"), the
    ``final_eval_return``, ``solved`` and ``time_to_solve_s`` of the summary, ``started_as``
    ("new", "resumable" or "done") and, for failures, ``error`` (one line).
    """
    if hide_gpus:  # before torch first looks for CUDA in this process
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
    import torch

    torch.set_num_threads(max(1, int(threads)))
    run_dir = Path(run_dir)
    outcome: dict[str, Any] = {"run_dir": str(run_dir), "host": socket.gethostname()}
    try:
        algo = get_algo(algo_name)
        cfg = build_config(algo, config)
        state = outcome["started_as"] = trial_state(run_dir)
        if state == "done":
            summary = read_json(run_dir / "summary.json")
        else:
            if state == "new" and run_dir.exists():  # a start killed before its first checkpoint
                shutil.rmtree(run_dir)
            if state == "new":
                run_dir.mkdir(parents=True)
                atomic_write_json(run_dir / "config.json",
                                  {"command": algo.command, **to_dict(cfg)})
            try:
                summary = algo.train(cfg, run_dir, state == "resumable")
            except algo.diverged:
                summary = read_json(run_dir / "summary.json")
    except Exception as err:  # reported per trial; the sweep goes on
        kind = "" if isinstance(err, (ConfigError, ValueError)) else f"{type(err).__name__}: "
        return {**outcome, "status": "failed", "error": kind + str(err).strip().splitlines()[0]}
    return {**outcome, **{k: summary[k] for k in OUTCOME_KEYS if k in summary}}


# ----------------------------------------------------------------------------- Ray


RAY_QUIET_ENV = {
    "RAY_USAGE_STATS_ENABLED": "0",   # no usage reporting
    "RAY_DEDUP_LOGS": "1",
    "RAY_AIR_NEW_OUTPUT": "0",        # Tune's legacy reporter: verbose=0 is silent
    "RAY_CHDIR_TO_TRIAL_DIR": "0",    # trials keep the working directory (run dirs are absolute)
    "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "0",
    "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S": "0",
    "RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO": "0",  # Ray's future default; run_trial hides GPUs
    "OMP_NUM_THREADS": "1",           # workers set torch threads to their CPU share anyway
}


def init_ray(address: str | None = None, num_cpus: int | None = None,
             num_gpus: int | None = None) -> bool:
    """Connect to Ray: ``address`` (``auto``, ``HOST:PORT`` or ``ray://HOST:10001``) or a new
    local instance with ``num_cpus`` (default: every CPU) and no dashboard. Returns whether this
    call started the connection (and should shut it down); an already connected session is
    reused."""
    for key, value in RAY_QUIET_ENV.items():
        os.environ.setdefault(key, value)
    try:
        import ray
    except ImportError:
        raise ValueError("semigrad sweep needs Ray Tune: pip install 'semigrad[ray]'") from None
    if ray.is_initialized():
        return False
    # Ray's token authentication stays on; only its notice about it is silenced.
    logging.getLogger("ray._private.authentication.authentication_token_setup").setLevel(
        logging.ERROR)
    # Tune's advice on Ctrl-C (Tuner.restore) does not apply: semigrad prints its own
    for name in ("ray.tune.tune", "ray.tune.analysis.experiment_analysis"):
        logging.getLogger(name).setLevel(logging.ERROR)
    common = {"log_to_driver": False, "logging_level": logging.WARNING}
    if address:
        ray.init(address=address, **common)
    else:
        ray.init(num_cpus=num_cpus or os.cpu_count() or 1, num_gpus=num_gpus,
                 include_dashboard=False, **common)
    return True


def _make_trainable():
    """The Ray Tune class trainable: one step runs a whole trial.

    A class (not a function) trainable: Tune runs function trainables in a side thread, where
    the training loop could not install its Ctrl-C handler; class trainables run in the actor's
    main thread. Actors are reused from trial to trial (``reset_config``).
    """
    from ray import tune

    class SemigradTrial(tune.Trainable):
        def setup(self, config: dict) -> None:
            self.trial = config["trial"]

        def reset_config(self, new_config: dict) -> bool:
            self.trial = new_config["trial"]
            return True

        def step(self) -> dict:
            t = self.trial
            outcome = run_trial(t["algo"], t["config"], t["run_dir"], t["threads"],
                                hide_gpus=t["gpus"] == 0)
            return {**{k: v for k, v in outcome.items() if v is not None}, "done": True}

        def save_checkpoint(self, checkpoint_dir: str) -> None:  # the run dir is the checkpoint
            return None

    return SemigradTrial


def _make_progress(names: Sequence[str], outcomes: dict[str, dict], show: bool,
                   on_outcome: Callable[[str, dict], None] | None):
    """A Tune callback that records outcomes and shows done / running / failed / best so far."""
    from ray import tune
    from tqdm import tqdm

    class Progress(tune.Callback):
        def __init__(self) -> None:
            self.bar = tqdm(total=len(names), unit="trial", desc="sweep", disable=not show,
                            dynamic_ncols=True)
            self.running: set[str] = set()
            self.best: tuple[float, str] | None = None

        def _show(self) -> None:
            failed = sum(o["status"] == "failed" for o in outcomes.values())
            best = "-" if self.best is None else f"{self.best[0]:.1f} ({self.best[1]})"
            self.bar.set_postfix_str(f"running {len(self.running)}, failed {failed}, "
                                     f"best {best}")

        def on_trial_start(self, iteration, trials, trial, **info) -> None:
            self.running.add(trial.config["trial"]["name"])
            self._show()

        def _record(self, name: str, outcome: dict) -> None:
            self.running.discard(name)
            outcomes[name] = outcome
            score = outcome.get("final_eval_return")
            if outcome["status"] == "finished" and score is not None and (
                    self.best is None or score > self.best[0]):
                self.best = (score, name)
            if outcome["status"] == "failed":
                self.bar.write(f"trial {name} failed: {outcome.get('error')}")
            self.bar.update(1)
            self._show()
            if on_outcome is not None:
                on_outcome(name, outcome)

        def on_trial_complete(self, iteration, trials, trial, **info) -> None:
            result = trial.last_result or {}
            outcome = {k: result[k] for k in OUTCOME_KEYS if k in result}
            outcome.setdefault("status", "failed")
            self._record(trial.config["trial"]["name"], outcome)

        def on_trial_error(self, iteration, trials, trial, **info) -> None:
            self._record(trial.config["trial"]["name"],
                         {"status": "failed", "error": _tune_error(trial)})

        def on_experiment_end(self, trials, **info) -> None:
            self.bar.close()

    return Progress()


def _tune_error(trial: Any) -> str:
    """The last line of a trial's Ray error (an actor that crashed, a node that died...)."""
    path = getattr(trial, "error_file", None)
    try:
        lines = [ln for ln in Path(path).read_text().splitlines() if ln.strip()]
        return lines[-1].strip() if lines else "trial failed"
    except (OSError, TypeError):
        return "trial failed (Ray reported no error text)"


def _outcomes_from_results(results: Any, outcomes: dict[str, dict]) -> None:
    """Fill in outcomes the progress callback did not see, from Tune's results.

    With a Ray Client address (``ray://``) Tune runs on the cluster, callbacks included, so the
    outcomes come back only through the results. A trial with neither a result nor an error
    (stopped by Ctrl-C) stays missing: the caller counts it as interrupted.
    """
    for res in results:
        if not res.config:  # a trial that had not started when the sweep was stopped
            continue
        name = res.config["trial"]["name"]
        if name in outcomes:
            continue
        if res.error is not None:
            lines = [ln for ln in str(res.error).splitlines() if ln.strip()]
            outcomes[name] = {"status": "failed", "error": lines[-1].strip() if lines else
                              type(res.error).__name__}
        elif res.metrics and "status" in res.metrics:
            outcomes[name] = {k: res.metrics[k] for k in OUTCOME_KEYS if k in res.metrics}


@dataclass
class SweepResult:
    """What a call to ``run_sweep`` did: per trial, its outcome (``status`` "finished",
    "diverged", "failed", "interrupted", or "skipped" for a trial done before this call)."""

    sweep_dir: Path
    outcomes: dict[str, dict[str, Any]]

    def count(self, status: str) -> int:
        return sum(o["status"] == status for o in self.outcomes.values())


def run_sweep(
    spec: SweepSpec,
    sweep_dir: str | os.PathLike,
    *,
    resume: bool = False,
    address: str | None = None,
    num_cpus: int | None = None,
    cpus_per_trial: float = 1.0,
    gpus_per_trial: float = 0.0,
    progress: bool = True,
    on_outcome: Callable[[str, dict], None] | None = None,
) -> SweepResult:
    """Run every trial of ``spec`` not yet done under ``sweep_dir`` on Ray Tune.

    ``resume=False`` creates the sweep (``sweep_dir`` must not hold one); ``resume=True``
    continues it (``spec`` must be the one it was created with). ``on_outcome(name, outcome)``
    is called in this process as each trial ends. Writes ``summary.json`` before returning.
    """
    if num_cpus is not None and num_cpus < 1:
        raise ValueError(f"num_cpus: expected >= 1 (or none: every CPU), got {num_cpus}")
    if cpus_per_trial <= 0 or gpus_per_trial < 0:
        raise ValueError(f"--cpus-per-trial must be > 0 and --gpus-per-trial >= 0, got "
                         f"{cpus_per_trial} and {gpus_per_trial}")
    sweep_dir = Path(sweep_dir).absolute()
    config_path = sweep_dir / "config.json"
    check_settings(spec)  # every grid value, before any folder is made or Ray starts
    if resume:
        saved = read_json(config_path)
        if saved.get("command") != "sweep":
            raise ValueError(f"{sweep_dir}: not a semigrad sweep folder")
        if SweepSpec.from_dict(saved["sweep"]) != spec:
            raise ValueError(f"{sweep_dir}: the sweep to resume differs from the one saved there")
    else:
        if config_path.exists():
            raise FileExistsError(f"{sweep_dir}: holds a sweep already; continue it with "
                                  f"semigrad sweep --resume {sweep_dir}")
        sweep_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_json(config_path, {"command": "sweep", "sweep": spec.to_dict()})
    trials = spec.trials()
    outcomes: dict[str, dict[str, Any]] = {}
    todo = []
    for trial in trials:
        run_dir = sweep_dir / TRIALS / trial.name
        if trial_state(run_dir) == "done":
            outcomes[trial.name] = {"status": "skipped", "run_dir": str(run_dir)}
        else:
            todo.append({"name": trial.name, "algo": spec.algo, "config": trial.config,
                         "run_dir": str(run_dir), "threads": max(1, int(cpus_per_trial)),
                         "gpus": gpus_per_trial})
    if progress:
        print(f"sweep {sweep_dir}: {len(trials)} trials ({len(spec.settings())} settings x "
              f"{len(spec.seeds)} seeds), {len(trials) - len(todo)} already done, "
              f"{len(todo)} to run")
    wall0 = time.perf_counter()
    if todo:
        _tune(todo, sweep_dir, outcomes, address, num_cpus, cpus_per_trial, gpus_per_trial,
              progress, on_outcome)
    for t in todo:  # trials Tune did not report on (Ctrl-C) or whose files we cannot see
        if t["name"] not in outcomes:
            done = trial_state(Path(t["run_dir"])) == "done"  # finished as Tune was stopping
            outcomes[t["name"]] = {"run_dir": t["run_dir"], "status": read_json(
                Path(t["run_dir"]) / "summary.json")["status"] if done else "interrupted"}
        outcome = outcomes[t["name"]]
        visible = (Path(t["run_dir"]) / "summary.json").exists()
        if outcome["status"] in DONE_STATUSES and not visible:
            outcome["warning"] = (f"ran on {outcome.get('host')}, but its run directory is not "
                                  "visible here: put the sweep folder on a filesystem shared "
                                  "by every node")
    result = SweepResult(sweep_dir, {t.name: outcomes[t.name] for t in trials})
    counts = {s: result.count(s) for s in ("finished", "diverged", "failed", "interrupted",
                                           "skipped")}
    atomic_write_json(sweep_dir / "summary.json", {
        "trials": len(trials), **counts, "wall_s": time.perf_counter() - wall0,
        "outcomes": result.outcomes,
    })
    return result


def check_settings(spec: SweepSpec) -> None:
    """Build every setting's config (one trial each): an invalid value (``alpha=-1``) is one
    ``ValueError`` naming the setting, before anything starts."""
    algo = get_algo(spec.algo)
    seen = set()
    for trial in spec.trials():
        key = trial.name.rsplit(",seed=", 1)[0]
        if key in seen:
            continue
        seen.add(key)
        try:
            build_config(algo, trial.config)
        except ValueError as err:
            raise ValueError(f"--grid: setting {key!r} is invalid: {err}") from None


def _tune(todo, sweep_dir, outcomes, address, num_cpus, cpus_per_trial, gpus_per_trial,
          progress, on_outcome) -> None:
    started = init_ray(address, num_cpus)
    import ray
    from ray import tune

    try:
        available = ray.cluster_resources()
        for kind, need in (("CPU", cpus_per_trial), ("GPU", gpus_per_trial)):
            if need > available.get(kind, 0):
                raise ValueError(f"each trial asks for {need:g} {kind}(s) but the Ray cluster has "
                                 f"{available.get(kind, 0):g}")
        tuner = tune.Tuner(
            tune.with_resources(_make_trainable(), {"cpu": cpus_per_trial,
                                                    "gpu": gpus_per_trial}),
            param_space={"trial": tune.grid_search(todo)},
            tune_config=tune.TuneConfig(
                reuse_actors=True,
                trial_name_creator=lambda t: t.config["trial"]["name"],
                trial_dirname_creator=lambda t: t.config["trial"]["name"],
            ),
            run_config=tune.RunConfig(
                name=time.strftime("run-%Y%m%d-%H%M%S"),
                storage_path=str(sweep_dir / ".tune"),
                verbose=0,
                callbacks=[_make_progress([t["name"] for t in todo], outcomes, progress,
                                          on_outcome)],
                checkpoint_config=tune.CheckpointConfig(checkpoint_at_end=False),
                failure_config=tune.FailureConfig(max_failures=0, fail_fast=False),
            ),
        )
        _outcomes_from_results(tuner.fit(), outcomes)
    finally:
        if started:
            ray.shutdown()
