"""One run harness for every training algorithm: K seeds at once, a run directory, resume.

An algorithm (``semigrad.algos.dqn``, ...) is a module that supplies a small protocol; the
trainer owns everything else: the iteration cadence, greedy evaluation, metric rows,
checkpoints and exact resume, the lock, Ctrl-C and SIGTERM, progress, divergence, the summary
and the K agents' bookkeeping. Seeds are a batch dimension (PureJaxRL's idea): a single run is
K = 1, laid out in ``run_dir`` itself; a ``--seeds`` run puts agent k's files in
``run_dir/seed<k>/`` and the resumable state of all agents in ``run_dir``.

The protocol (module-level names of the algorithm; ``st`` is its state, ``K`` agents):

- ``NAME``, ``Config`` (a frozen dataclass with ``env``, ``seed``, ``steps``, ``eval_every``,
  ``eval_episodes``, ``log_every``, ``tensorboard``, ``device``, ``network``);
- ``METRIC_COLUMNS``: its columns of metrics.csv, after the trainer's; ``HEALTH``: the names of
  its running sums (``st.acc[:, 2:]``; a non-finite sum is the one divergence rule);
- ``memory_bytes(cfg, agents)``: what the agents' storage (a replay) will allocate, checked
  with the network's output shape before any folder is made (``check_before_run``);
- ``init(cfg, seeds, device) -> st``: ``st.env`` (the K agents' envs) and ``st.acc (K, 2 +
  len(HEALTH))`` float64 sums since the last metric row: the returns of finished training
  episodes, their count, then the algorithm's health sums;
- ``iterate(cfg, st, env_steps) -> n``: one iteration (act, learn) from ``env_steps`` env steps
  per agent; returns the env steps per agent it took;
- ``metric_values(cfg, st, sums, env_steps) -> dict``: one agent's ``METRIC_COLUMNS`` from its
  health sums (``None`` where there is nothing to report);
- ``gradient_steps(st) -> int`` (per agent), ``grad_mode(st)`` (a context for acting),
  ``q_values(st, obs (K, E, ...)) -> (K, E, A)`` (what the greedy evaluation plays);
- ``state_dict(st)`` / ``load_state_dict(cfg, st, payload, seeds, device)``: the
  algorithm's whole state for exact resume (tensors and plain values only);
- ``make_network(cfg, env) -> nn.Module`` (one agent's, what ``load_agent`` rebuilds) and
  ``agent_state_dict(st, k, template)`` / ``weights_from_state(cfg, payload, template)``.

An algorithm that extends another (C51 is DQN with another head) takes the rest of the
protocol from it with ``__getattr__ = trainer.extends(parent, names)``.
"""

from __future__ import annotations

import importlib
import math
import os
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import ModuleType
from typing import Any, Literal

import torch
from torch import nn
from tqdm import tqdm

from semigrad import envs, policies, run
from semigrad.algos import TRAINED
from semigrad.config import ConfigError, config_from_saved, parse_seeds, to_dict
from semigrad.devices import resolve_device
from semigrad.run import (
    CtrlC,
    MetricsLog,
    RunLock,
    atomic_save_torch,
    atomic_write_json,
    read_json,
    remove_unstarted_run,
    stats_over,
    truncate_metrics,
)

CHECKPOINT_FORMAT = "semigrad-train-3"  # the whole training state of K agents (resumable)
WEIGHTS_FORMAT = "semigrad-weights-3"  # one agent's network (what eval loads)
# earlier formats: refused with one line (resume), or read for their weights (load_agent)
OLD_FORMATS = ("semigrad-dqn-1", "semigrad-dqn-1-many", "semigrad-dqn-1-weights",
               "semigrad-dqn-2")
OLD_WEIGHTS_FORMAT = "semigrad-dqn-2-weights"
COLUMNS = ("step", "wall_s", "train_s", "episode_return", "episodes", "eval_return",
           "eval_std")
ALGORITHMS = TRAINED  # name -> module (the one registry, in semigrad.algos)


def is_prediction(algo: ModuleType) -> bool:
    """Whether ``algo`` predicts values of a fixed policy (``KIND = "prediction"``: TD(0)) rather
    than learning to act: then there is no greedy evaluation, no best checkpoint, no
    ``solved``; its metric rows and summary carry what it supplies instead."""
    return getattr(algo, "KIND", "control") == "prediction"


def algorithm(name: str) -> ModuleType:
    """The algorithm module registered as ``name``."""
    if name not in ALGORITHMS:
        raise ValueError(f"algo: {name!r} is not one of {', '.join(sorted(ALGORITHMS))}")
    return importlib.import_module(ALGORITHMS[name])


def extends(parent: ModuleType, names: Sequence[str]):
    """A module ``__getattr__`` (PEP 562) for an algorithm that extends ``parent``: the
    protocol ``names`` it does not define itself are ``parent``'s (``c51.iterate`` is
    ``dqn.iterate``); any other missing name is an ``AttributeError``."""
    inherited = frozenset(names)

    def __getattr__(name: str) -> Any:  # noqa: N807 (a module's __getattr__)
        if name in inherited:
            return getattr(parent, name)
        raise AttributeError(f"module has no attribute {name!r} (names taken from "
                             f"{parent.__name__}: {', '.join(sorted(inherited))})")

    return __getattr__


class TrainingDiverged(RuntimeError):
    """A health sum (a loss, a mean Q-value) became non-finite; the message names the steps
    and the quantity."""


@dataclass
class AgentRecord:
    """One agent's bookkeeping: its run directory, evaluations and health."""

    seed: int
    run_dir: Path
    evals: list[float] = field(default_factory=list)
    best_eval: float = -math.inf
    solved_at: dict | None = None
    error: str | None = None  # set when one of its health sums went non-finite
    checked: tuple[int, int] = (0, 0)  # env and gradient steps of its last finite metric row
    metrics: MetricsLog | None = None


_RECORD_FIELDS = ("evals", "best_eval", "solved_at", "error", "checked")
_COUNTERS = ("env_steps", "next_eval", "next_log", "train_s", "eval_s", "wall_s")


@dataclass
class Run:
    """The trainer's side of a training run: the algorithm, its state and the bookkeeping."""

    algo: ModuleType
    cfg: Any
    st: Any
    records: list[AgentRecord]
    single: bool
    env_steps: int = 0  # per agent
    next_eval: int = 0
    next_log: int = 0
    train_s: float = 0.0
    eval_s: float = 0.0
    wall_s: float = 0.0  # before this process (resumed runs): wall times are cumulative
    started: float = field(default_factory=time.perf_counter)  # this process's start

    def wall(self) -> float:
        """Wall seconds of the whole run, earlier processes of a resumed run included."""
        return self.wall_s + time.perf_counter() - self.started

    @property
    def columns(self) -> tuple[str, ...]:
        if hasattr(self.algo, "metric_columns"):
            return (*COLUMNS, *self.algo.metric_columns(self.cfg))
        return (*COLUMNS, *self.algo.METRIC_COLUMNS)

    @property
    def predicts(self) -> bool:
        """A prediction algorithm (TD(0)): no greedy policy to evaluate."""
        return is_prediction(self.algo)


# ----------------------------------------------------------------------------- training


def train(algo: ModuleType, cfg: Any, run_dir: str | Path, *,
          seeds: Sequence[int] | None = None, resume: bool = False, progress: bool = True,
          stop_after: int | None = None) -> dict:
    """Train ``algo`` with ``cfg`` and write the run directory; returns the summary.

    ``seeds=None``: one agent, seeded ``cfg.seed``; ``run_dir`` holds config.json,
    metrics.csv, tb/, checkpoint_last.pt (the resumable state), checkpoint_best.pt and
    summary.json. ``seeds=[...]``: one agent per seed, trained at once; ``run_dir/seedS/``
    holds what a single run with seed S writes (checkpoint_last.pt there: weights only) and
    ``run_dir`` the resumable state of all agents and the summary over seeds. A single run
    whose health goes non-finite raises ``TrainingDiverged`` (after writing summary.json);
    with several seeds the other agents go on and the summary names the diverged seeds.
    ``resume=True`` continues from ``run_dir/checkpoint_last.pt`` exactly where it stopped;
    ``stop_after`` (env steps) or Ctrl-C / SIGTERM stop early with a resumable checkpoint.
    A failure before the first checkpoint leaves no half-made run behind.
    """
    device = resolve_device(cfg.device)
    single = seeds is None
    seeds = [cfg.seed] if single else list(parse_seeds(seeds))
    run_dir = Path(run_dir)
    dirs = [run_dir] if single else [run_dir / f"seed{s}" for s in seeds]
    last_path = run_dir / "checkpoint_last.pt"
    if resume:
        if not last_path.is_file():
            raise FileNotFoundError(f"{last_path}: no checkpoint there")
    else:
        check_before_run(algo, cfg, len(seeds))  # what cannot run, before anything is made
        run_dir.mkdir(parents=True, exist_ok=True)
    locked = RunLock.acquire(run_dir)  # one process per run folder (re-entrant in-process)
    held = [] if resume else [p for d in {run_dir, *dirs} for p in (
        d / "metrics.csv", d / "checkpoint_last.pt", d / "summary.json") if p.exists()]
    if held:
        if locked:
            RunLock.release(run_dir)
        raise FileExistsError(f"{held[0].parent}: already holds a run ({held[0].name}); "
                              "continue it with --resume (resume=True) or train into a new "
                              "folder")
    try:
        return _train(algo, cfg, run_dir, seeds, single, dirs, last_path, device, resume,
                      progress, stop_after)
    except TrainingDiverged:
        raise  # its summary.json says so
    except BaseException:
        if not resume and not last_path.exists():  # no half-made run: the folder is reusable
            remove_unstarted_run(run_dir, [] if single else dirs)
        raise
    finally:
        if locked:
            RunLock.release(run_dir)


def check_network(algo: ModuleType, cfg: Any) -> None:
    """One ``ConfigError`` unless ``algo.make_network(cfg, env)`` maps a batch of ``cfg.env``'s
    observations ``(B, obs_dim)`` to Q-values ``(B, num_actions)``: a network with a wrong
    head would otherwise fail later, in the env, with actions it cannot take."""
    probe = envs.make(cfg.env, num_envs=2, device="cpu", seed=0)
    name = getattr(cfg, "network", algo.NAME)
    try:
        obs = probe.reset()
        torch.manual_seed(0)
        net = algo.make_network(cfg, probe)
        try:
            with torch.no_grad():
                q = net(obs)
        except Exception as err:  # the user's module: whatever it raises, said in one line
            raise ConfigError(f"network: {name} failed on a batch of {cfg.env} "
                              f"observations {tuple(obs.shape)} ({type(err).__name__}: "
                              f"{err})") from None
        want, what = (((obs.shape[0],), "values of shape (batch,), one per state")
                      if is_prediction(algo) else
                      ((obs.shape[0], probe.num_actions),
                       f"Q-values of shape (batch, {probe.num_actions}), one per action"))
        if not isinstance(q, torch.Tensor) or tuple(q.shape) != want:
            got = tuple(q.shape) if isinstance(q, torch.Tensor) else type(q).__name__
            raise ConfigError(f"network: {name} maps {cfg.env} observations "
                              f"{tuple(obs.shape)} to {got}; it must return {what}")
    finally:
        probe.close()


def check_before_run(algo: ModuleType, cfg: Any, agents: int) -> int:
    """``check_network``, then the bytes ``agents`` agents' storage needs
    (``algo.memory_bytes``); raises ``ConfigError`` (with the estimate) when that exceeds
    the memory the device has available. Returns the bytes."""
    check_network(algo, cfg)
    need = algo.memory_bytes(cfg, agents)
    device = resolve_device(cfg.device)
    if device.type == "cuda":
        have = torch.cuda.mem_get_info(device)[0]
        where = f"free on {device}"
    else:
        try:
            have = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            return need
        where = "of available memory"
    if need > 0.9 * have:
        lower = getattr(algo, "MEMORY_HINT", "")
        raise ConfigError(f"seeds: {agents} agents need about {need / 2**30:.1f} GiB of "
                          f"{algo.NAME}'s storage, more than the {have / 2**30:.1f} GiB "
                          f"{where}; train fewer seeds at once" + (f" or {lower}" if lower
                                                                   else ""))
    return need


def _start(algo, cfg, run_dir, seeds, single, dirs, last_path, device, resume) -> Run:
    """A new run (config.json written), or the checkpoint's (metrics cut back to it)."""
    records = [AgentRecord(s, Path(d)) for s, d in zip(seeds, dirs, strict=True)]
    if not resume:
        r = Run(algo, cfg, algo.init(cfg, seeds, device), records, single,
                next_eval=cfg.eval_every, next_log=cfg.log_every)
        _write_configs(algo, cfg, run_dir, dirs, seeds, single)
        return r
    payload = load_checkpoint(last_path, device)
    if payload.get("algo") != algo.NAME:
        raise ValueError(f"{last_path}: a {payload.get('algo')} checkpoint, not {algo.NAME}'s")
    diffs = config_differences(payload["config"], cfg)
    if diffs:
        raise ValueError("config differs from the checkpoint's: " + "; ".join(diffs))
    if list(payload["seeds"]) != list(seeds):
        raise ValueError(f"seeds: the checkpoint holds seeds {payload['seeds']}, "
                         f"got {list(seeds)}")
    st = algo.init(cfg, seeds, device)
    st = algo.load_state_dict(cfg, st, payload, seeds, device)
    st.acc.copy_(payload["acc"])
    r = Run(algo, cfg, st, records, single)
    for key, value in payload["counters"].items():
        setattr(r, key, value)
    for rec, saved in zip(records, payload["records"], strict=True):
        for f in _RECORD_FIELDS:
            setattr(rec, f, tuple(saved[f]) if f == "checked" else saved[f])
    for d in dirs:
        truncate_metrics(d, r.env_steps)
    return r


def _train(algo, cfg, run_dir, seeds, single, dirs, last_path, device, resume, progress,
           stop_after):
    r = _start(algo, cfg, run_dir, seeds, single, dirs, last_path, device, resume)
    st = r.st
    threshold = st.env.spec.reward_threshold
    template = algo.make_network(cfg, st.env)
    for rec in r.records:
        rec.metrics = MetricsLog(rec.run_dir, r.columns, tensorboard=cfg.tensorboard,
                                 purge_step=r.env_steps + 1 if resume else None)

    stop = CtrlC().install()  # Ctrl-C, SIGTERM: finish the iteration, save, exit cleanly
    bar = tqdm(total=cfg.steps, initial=r.env_steps, unit="step", disable=not progress,
               dynamic_ncols=True, desc=algo.NAME if single else f"{algo.NAME} x{len(seeds)}")
    status = "finished"
    try:
        t_train = time.perf_counter()
        while r.env_steps < cfg.steps:
            if stop.requested or (stop_after is not None and r.env_steps >= stop_after):
                status = "interrupted"
                break
            done = algo.iterate(cfg, st, r.env_steps)
            r.env_steps += done
            bar.update(done)
            if r.env_steps >= r.next_eval or r.env_steps >= cfg.steps:
                r.train_s += time.perf_counter() - t_train
                t_eval = time.perf_counter()
                rows = metric_rows(r)
                evals = _evaluate_and_save_best(r, rows, template, threshold, device)
                r.eval_s += time.perf_counter() - t_eval
                _log(r, rows)
                _save_last(r, template, last_path)
                if evals:
                    bar.set_postfix(eval=f"{statistics.median(evals):.1f}", refresh=False)
                t_train = time.perf_counter()
            elif r.env_steps >= r.next_log:
                now = time.perf_counter()
                r.train_s += now - t_train  # the row's train_s is up to date
                t_train = now
                _log(r, metric_rows(r))
        else:
            r.train_s += time.perf_counter() - t_train
        if status == "interrupted":
            r.train_s += time.perf_counter() - t_train
            metric_rows(r, row=False)  # health only: no row
            _save_last(r, template, last_path)
    except TrainingDiverged as err:
        summary = summarize(r, r.records[0], threshold, "diverged", str(err))
        atomic_write_json(run_dir / "summary.json", summary)
        raise
    finally:
        bar.close()
        stop.restore()
        st.env.close()
        for rec in r.records:
            rec.metrics.close()
    summaries = []
    for rec in r.records:
        summary = summarize(r, rec, threshold, "diverged" if rec.error else status, rec.error)
        if not single and (status == "finished" or rec.error):
            atomic_write_json(rec.run_dir / "summary.json", summary)
        summaries.append(summary)
    if single:
        if status == "finished":
            atomic_write_json(run_dir / "summary.json", summaries[0])
        return summaries[0]
    total = aggregate(cfg, seeds, summaries, dirs)
    if status == "finished":
        atomic_write_json(run_dir / "summary.json", total)
    return total


def _write_configs(algo, cfg, run_dir: Path, dirs: Sequence[Path], seeds: Sequence[int],
                   single: bool) -> None:
    """config.json of the run (and of each agent's folder), before any work."""
    head = {"command": "train", "algo": algo.NAME}
    if single:
        atomic_write_json(run_dir / "config.json", {**head, **to_dict(cfg)})
        return
    shared = {k: v for k, v in to_dict(cfg).items() if k != "seed"}
    atomic_write_json(run_dir / "config.json", {**head, "seeds": list(seeds), **shared})
    for s, d in zip(seeds, dirs, strict=True):
        atomic_write_json(d / "config.json", {**head, **to_dict(replace(cfg, seed=s))})


def metric_rows(r: Run, row: bool = True) -> list[dict | None]:
    """Each agent's metric row from the sums since the last one (one host sync), or None for
    an agent that diverged. An agent whose health sums went non-finite since its last row is
    marked diverged (the one divergence rule); a single run raises ``TrainingDiverged``."""
    acc = r.st.acc.tolist()
    if row:
        r.st.acc.zero_()
    grads = r.algo.gradient_steps(r.st)
    extra = (r.algo.agent_metrics(r.cfg, r.st) if row and hasattr(r.algo, "agent_metrics")
             else [{} for _ in r.records])
    rows: list[dict | None] = []
    for rec, (ep_sum, ep_count, *health), more in zip(r.records, acc, extra, strict=True):
        if rec.error is None:
            broke = health_broken(r.algo, r.cfg, health)
            if broke is not None:
                (env0, grad0), grad1 = rec.checked, grads
                rec.error = (f"{broke} between env steps {env0} and {r.env_steps} (gradient "
                             f"steps {grad0 + 1}-{grad1}); usual causes: "
                             + divergence_hint(r.algo, r.cfg))
                if r.single:
                    raise TrainingDiverged(rec.error)
        if rec.error is not None or not row:
            rows.append(None)
            continue
        rec.checked = (r.env_steps, grads)
        rows.append({"step": r.env_steps, "train_s": round(r.train_s, 4),
                     "episode_return": ep_sum / ep_count if ep_count else None,
                     "episodes": int(ep_count), "eval_return": None, "eval_std": None,
                     **r.algo.metric_values(r.cfg, r.st, health, r.env_steps), **more})
    return rows


def divergence_hint(algo: ModuleType, cfg: Any) -> str:
    """The usual causes of ``algo`` diverging with ``cfg`` (its ``divergence_hint(cfg)`` or
    ``DIVERGENCE_HINT``)."""
    if hasattr(algo, "divergence_hint"):
        return algo.divergence_hint(cfg)
    return getattr(algo, "DIVERGENCE_HINT", "a learning rate too high")


def health_broken(algo: ModuleType, cfg: Any, health: Sequence[float]) -> str | None:
    """The one divergence rule: what is wrong with an agent's health values since its last
    metric row (``algo.HEALTH``), or None. A value is broken when it is not finite, or when
    its magnitude passes the bound ``algo.health_bounds(cfg)`` gives it (optional: e.g. no
    action value can pass ``r_max / (1 - gamma)``)."""
    bounds = algo.health_bounds(cfg) if hasattr(algo, "health_bounds") else {}
    for what, value in zip(algo.HEALTH, health, strict=False):
        if not math.isfinite(value):
            return f"non-finite {what}"
        if what in bounds and abs(value) > bounds[what][0]:
            return f"{what} = {value:.4g}, beyond its bound {bounds[what][1]}"
    return None


@torch.no_grad()
def evaluate_agents(q_values, env_id: str, episodes: int, seeds: Sequence[int],
                    device: torch.device) -> torch.Tensor:
    """Greedy returns ``(K, episodes)`` of ``q_values (K, E, ...) -> (K, E, A)``: agent k
    plays ``episodes`` envs seeded ``seeds[k]`` (those ``policies.evaluate`` would make for
    it), one episode each, all in parallel."""
    k = len(seeds)
    env = envs.make_agents(env_id, episodes, seeds, device)
    try:
        returns = policies.first_episode_returns(
            env, lambda obs: q_values(obs.view(k, episodes, *obs.shape[1:]))
            .argmax(dim=2).reshape(-1))
    finally:
        env.close()
    return returns.view(k, episodes)


def _evaluate_and_save_best(r: Run, rows, template, threshold, device) -> list[float]:
    """Greedy evaluation of every agent still training; best weights; returns the means."""
    live = [i for i, row in enumerate(rows) if row is not None]
    if not live or r.predicts:  # a prediction: its rows hold what it measures (agent_metrics)
        r.next_eval = (r.env_steps // r.cfg.eval_every + 1) * r.cfg.eval_every
        return []
    cfg, st = r.cfg, r.st
    seeds = [policies.evaluation_seed(rec.seed, len(rec.evals)) for rec in r.records]
    with r.algo.grad_mode(st):
        returns = evaluate_agents(lambda obs: r.algo.q_values(st, obs), cfg.env,
                                  cfg.eval_episodes, seeds, device)
    means = returns.mean(dim=1).tolist()
    stds = returns.std(dim=1, unbiased=False).tolist()
    for i in live:
        rec, mean = r.records[i], means[i]
        rows[i].update(eval_return=mean, eval_std=stds[i])
        rec.evals.append(mean)
        if threshold is not None and rec.solved_at is None and mean >= threshold:
            rec.solved_at = {"env_steps": r.env_steps, "train_s": r.train_s,
                             "gradient_steps": r.algo.gradient_steps(st)}
        if mean > rec.best_eval:
            rec.best_eval = mean
            save_weights(rec.run_dir / "checkpoint_best.pt", r.algo, replace(cfg, seed=rec.seed),
                         r.algo.agent_state_dict(st, i, template), env_steps=r.env_steps,
                         eval_return=mean)
    r.next_eval = (r.env_steps // cfg.eval_every + 1) * cfg.eval_every
    return [means[i] for i in live]


def _log(r: Run, rows: list[dict | None]) -> None:
    wall = round(r.wall(), 4)
    for rec, row in zip(r.records, rows, strict=True):
        if row is not None:
            rec.metrics.log({"step": row["step"], "wall_s": wall, **row})
    r.next_log = (r.env_steps // r.cfg.log_every + 1) * r.cfg.log_every


def _save_last(r: Run, template, last_path: Path) -> None:
    """The resumable state (after the rows it covers were logged, so a resumed run logs no row
    twice) and, with several seeds, each live agent's last weights."""
    for rec in r.records:
        rec.metrics.flush()  # the rows this checkpoint covers are on disk before it is
    save_checkpoint(last_path, r)
    if not r.single:
        for i, rec in enumerate(r.records):
            if rec.error is None:
                save_weights(rec.run_dir / "checkpoint_last.pt", r.algo,
                             replace(r.cfg, seed=rec.seed),
                             r.algo.agent_state_dict(r.st, i, template), env_steps=r.env_steps)


# ----------------------------------------------------------------------------- checkpoints


def save_checkpoint(path: Path, r: Run) -> None:
    """Write the K agents' whole training state to ``path`` atomically (loads with
    ``weights_only=True``): what ``train(..., resume=True)`` continues from."""
    atomic_save_torch(path, {
        "format": CHECKPOINT_FORMAT, "algo": r.algo.NAME, "config": to_dict(r.cfg),
        "seeds": [rec.seed for rec in r.records], **r.algo.state_dict(r.st), "acc": r.st.acc,
        "counters": {**{k: getattr(r, k) for k in _COUNTERS}, "wall_s": r.wall()},
        "records": [{f: getattr(rec, f) for f in _RECORD_FIELDS} for rec in r.records],
    })


def save_weights(path: Path, algo: ModuleType, cfg: Any, state_dict: dict,
                 **extra: Any) -> None:
    """One agent's network (``load_agent`` reads it), atomically."""
    atomic_save_torch(path, {"format": WEIGHTS_FORMAT, "algo": algo.NAME,
                             "config": to_dict(cfg), "weights": state_dict, **extra})


def load_checkpoint(path: Path, device: torch.device | str = "cpu",
                    expected: Sequence[str] = (CHECKPOINT_FORMAT,)) -> dict:
    """A training checkpoint of a format in ``expected`` (``semigrad.run.load_checkpoint``)."""
    return run.load_checkpoint(path, expected, OLD_FORMATS, device, "training ")


def config_differences(saved: dict, cfg: Any) -> list[str]:
    """Fields where ``cfg`` differs from a checkpoint's config, as ``name: saved -> given``."""
    given = to_dict(cfg)
    return [f"{k}: {saved.get(k)!r} (checkpoint) vs {v!r} (given)"
            for k, v in given.items() if k != "seed" and _norm(saved.get(k)) != _norm(v)]


def _norm(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


# ----------------------------------------------------------------------------- loading an agent


class TrainedAgent:
    """A trained agent (a policy, where "agent k" elsewhere is the k-th seed of a run): its
    network and config, acting greedily.

    ``q_values(obs (B, obs_dim)) -> (B, A)``; ``act(obs) -> (B,)`` int64 greedy actions.
    One observation ``(obs_dim,)`` (as SB3's ``predict`` takes it) gives ``(A,)`` and a 0-d
    action. ``obs``: a tensor, NumPy array or list.
    """

    def __init__(self, net: nn.Module, cfg: Any, device: torch.device, meta: dict):
        self.net, self.cfg, self.device, self.meta = net.eval(), cfg, device, meta

    @torch.no_grad()
    def q_values(self, obs: torch.Tensor) -> torch.Tensor:
        obs = torch.as_tensor(obs, device=self.device)
        if obs.dim() not in (1, 2):
            raise ValueError(f"obs: expected one observation (obs_dim,) or a batch (B, obs_dim), "
                             f"got shape {tuple(obs.shape)}")
        q = self.net((obs.float() if obs.is_floating_point() else obs).reshape(
            -1, obs.shape[-1]))
        return q[0] if obs.dim() == 1 else q

    def act(self, obs: torch.Tensor) -> torch.Tensor:
        return self.q_values(obs).argmax(dim=-1)

    @torch.no_grad()
    def distribution(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The return distribution of a distributional agent (C51, QR-DQN, Rainbow):
        ``(values, probs)`` each ``(B, A, M)`` (one observation: ``(A, M)``), the atoms and
        their probabilities; ``q_values(obs)`` is ``(values * probs).sum(-1)``. The network's
        own ``distribution`` method; an agent without one raises ValueError."""
        if not callable(getattr(self.net, "distribution", None)):
            raise ValueError(f"{type(self.net).__name__} has no return distribution (a "
                             "distributional agent has: c51, qrdqn, rainbow)")
        obs = torch.as_tensor(obs, device=self.device)
        if obs.dim() not in (1, 2):
            raise ValueError(f"obs: expected one observation (obs_dim,) or a batch (B, obs_dim), "
                             f"got shape {tuple(obs.shape)}")
        values, probs = self.net.distribution(
            (obs.float() if obs.is_floating_point() else obs).reshape(-1, obs.shape[-1]))
        return (values[0], probs[0]) if obs.dim() == 1 else (values, probs)

    __call__ = act


def load_agent(run_dir: str | Path, which: Literal["best", "last"] = "best",
               device: str | torch.device = "cpu") -> TrainedAgent:
    """The agent trained in ``run_dir`` (a single run, or one ``seedN`` folder of a ``--seeds``
    run), with its best (highest greedy evaluation) or last weights."""
    run_dir = Path(run_dir)
    device = resolve_device(device)
    if which not in ("best", "last"):
        raise ValueError(f"which: expected 'best' or 'last', got {which!r}")
    saved = read_json(run_dir / "config.json")
    if saved.get("command") != "train" or "seeds" in saved:
        command = saved.get("command")
        what = ("a folder whose config.json names no semigrad command" if command is None
                else f"a 'semigrad {command}" + (" --seeds'" if "seeds" in saved else "'")
                + " run")
        raise ValueError(f"{run_dir}: {what}, not one `semigrad train` run; give a train run "
                         "directory (of a --seeds run: one of its seedN folders)")
    algo = algorithm(saved.get("algo", "dqn"))
    if is_prediction(algo):
        raise ValueError(f"{run_dir}: a {algo.NAME} run learns the values of a fixed policy; "
                         "it has no policy to load (its value network: the 'v_hat' of "
                         "checkpoint_last.pt)")
    cfg = config_from_saved(algo.Config, saved)
    path = run_dir / f"checkpoint_{which}.pt"
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such checkpoint; has the run evaluated yet?")
    payload = load_checkpoint(path, device, (WEIGHTS_FORMAT, CHECKPOINT_FORMAT,
                                             OLD_WEIGHTS_FORMAT))
    probe = envs.make(cfg.env, num_envs=1, device="cpu")
    net = algo.make_network(cfg, probe).to(device)
    probe.close()
    if payload["format"] == CHECKPOINT_FORMAT:  # a single run's full state: agent 0
        state = algo.weights_from_state(cfg, payload, net)
        meta = {"env_steps": payload["counters"]["env_steps"]}
    else:
        state = payload["weights" if payload["format"] == WEIGHTS_FORMAT else "online"]
        meta = {k: payload[k] for k in ("env_steps", "eval_return") if k in payload}
    net.load_state_dict(state)
    return TrainedAgent(net, cfg, device, meta)


# ----------------------------------------------------------------------------- summaries


def summarize(r: Run, rec: AgentRecord, threshold: float | None, status: str,
              error: str | None = None) -> dict:
    """One agent's summary (times are the whole run's)."""
    solved = rec.solved_at is not None
    later = []
    if solved:
        first = next(i for i, v in enumerate(rec.evals) if v >= threshold)
        later = rec.evals[first + 1:]
    grads = r.algo.gradient_steps(r.st)
    summary = {
        "status": status,
        "algo": r.algo.NAME,
        "env": r.cfg.env,
        "seed": rec.seed,
        "solved": solved,
        "reward_threshold": threshold,
        "time_to_solve_s": rec.solved_at["train_s"] if solved else None,
        "env_steps_to_solve": rec.solved_at["env_steps"] if solved else None,
        "gradient_steps_to_solve": rec.solved_at["gradient_steps"] if solved else None,
        "final_eval_return": rec.evals[-1] if rec.evals else None,
        "best_eval_return": rec.best_eval if rec.evals else None,
        "evals_after_solve": len(later),
        "stable_fraction": (sum(v >= threshold for v in later) / len(later)) if later else None,
        "env_steps": rec.checked[0] if rec.error else r.env_steps,
        "gradient_steps": rec.checked[1] if rec.error else grads,
        "train_s": r.train_s,
        "eval_s": r.eval_s,
        "wall_s": r.wall(),
        "env_steps_per_s": r.env_steps / r.train_s if r.train_s else None,
        "eval_returns": rec.evals,
    }
    if r.predicts:  # nothing played greedily: no returns, threshold or solving
        for key in ("solved", "reward_threshold", "time_to_solve_s", "env_steps_to_solve",
                    "gradient_steps_to_solve", "evals_after_solve", "stable_fraction"):
            summary[key] = None
    if hasattr(r.algo, "summary_extras"):
        summary.update(r.algo.summary_extras(r.cfg, r.st, r.records.index(rec)))
    if error:
        summary["error"] = error
    return summary


def aggregate(cfg: Any, seeds: list[int], summaries: list[dict], dirs: list[Path]) -> dict:
    """A ``--seeds`` run's summary: status, solve counts and statistics over seeds."""
    k = len(seeds)
    live = [s for s in summaries if s["status"] != "diverged"]
    solved = [s for s in summaries if s["solved"]]
    first = summaries[0]
    statuses = {s["status"] for s in summaries}
    return {
        "status": ("interrupted" if "interrupted" in statuses
                   else "diverged" if "diverged" in statuses else "finished"),
        "algo": first["algo"],
        "env": cfg.env,
        "seeds": seeds,
        "agents": k,
        "diverged_seeds": [s["seed"] for s in summaries if s["status"] == "diverged"],
        "solved": len(solved),
        "solved_fraction": len(solved) / k,
        "reward_threshold": first["reward_threshold"],
        "final_eval_return": stats_over([s["final_eval_return"] for s in live
                                         if s["final_eval_return"] is not None]),
        "best_eval_return": stats_over([s["best_eval_return"] for s in live
                                        if s["best_eval_return"] is not None]),
        "env_steps_to_solve": stats_over([s["env_steps_to_solve"] for s in solved]),
        "time_to_solve_s": stats_over([s["time_to_solve_s"] for s in solved]),
        "stable_fraction": stats_over([s["stable_fraction"] for s in solved
                                       if s["stable_fraction"] is not None]),
        "env_steps_per_agent": max(s["env_steps"] for s in summaries),
        "gradient_steps_per_agent": max(s["gradient_steps"] for s in summaries),
        "train_s": first["train_s"],
        "eval_s": first["eval_s"],
        "wall_s": first["wall_s"],
        "agent_env_steps_per_s": (k * max(s["env_steps"] for s in summaries) / first["train_s"]
                                  if first["train_s"] else None),
        "per_seed": [{"seed": s["seed"], "status": s["status"], "solved": s["solved"],
                      "final_eval_return": s["final_eval_return"],
                      "best_eval_return": s["best_eval_return"],
                      "env_steps_to_solve": s["env_steps_to_solve"], "run_dir": str(d),
                      **({"max_abs_relative_error": s["max_abs_relative_error"]}
                         if "max_abs_relative_error" in s else {}),
                      **({"error": s["error"]} if "error" in s else {})}
                     for s, d in zip(summaries, dirs, strict=True)],
    }
