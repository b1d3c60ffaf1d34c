"""The run directory: every computing command writes one.

Layout (files appear as the command needs them)::

    RUN_DIR/config.json    the full config, written before any work starts
    RUN_DIR/metrics.csv    one row per logged step (also as TensorBoard events under tb/)
    RUN_DIR/summary.json   machine-readable results, written at the end
    RUN_DIR/*.png          figures

Every file is written atomically (a temporary file in the same folder, then ``os.replace``),
so a process killed mid-write leaves either the old file or the new one, never half of one.

The rules every command's run directory follows (``prepare_run_dir``):

- a folder holds one run: a folder that already holds a run's files is only continued by a
  resume; anything else is refused with a message naming a new folder (and ``--resume``
  where the command has one);
- a process that writes into a folder holds an exclusive lock on it (``RunLock``, released
  when the process ends, also when it is killed), so a second process gets a clear error;
- the folder is checked for writing before any work starts, and a write error (a full disk)
  names the file;
- files are created with the usual permissions (``0666`` minus the umask), not ``0600``.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import io
import json
import math
import os
import signal
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

RUNS_ROOT = Path("runs")


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)  # Ctrl-C, and what schedulers (Slurm) send


class CtrlC:
    """While installed, Ctrl-C (SIGINT) and SIGTERM set ``requested`` instead of ending the
    process, so a training loop can finish its iteration, save and exit cleanly.

    ``install()`` returns the flag; ``restore()`` puts the previous handlers back. Outside the
    main thread (where Python cannot set signal handlers) it does nothing but hold the flag.
    """

    def __init__(self) -> None:
        self.requested = False
        self._previous: dict[int, Any] = {}

    def install(self) -> CtrlC:
        if threading.current_thread() is threading.main_thread():
            for signum in STOP_SIGNALS:
                self._previous[signum] = signal.getsignal(signum)
                signal.signal(signum, self._request)
        return self

    def _request(self, signum: int, frame: Any) -> None:
        self.requested = True

    def restore(self) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        self._previous = {}


class SigtermAsCtrlC:
    """A context in which SIGTERM raises ``KeyboardInterrupt`` as Ctrl-C does, so work that
    handles Ctrl-C (a checkpoint, a clean message) handles a scheduler's stop the same way."""

    def __enter__(self) -> SigtermAsCtrlC:
        self._previous = None
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.getsignal(signal.SIGTERM)
            signal.signal(signal.SIGTERM, signal.default_int_handler)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_umask()  # what open() would create; mkstemp makes 0600


@contextlib.contextmanager
def naming(path: Path) -> Iterator[None]:
    """An ``OSError`` raised inside (disk full, say) names ``path`` when it names no file."""
    try:
        yield
    except OSError as err:
        if err.filename is not None:
            raise
        raise OSError(err.errno, f"cannot write {path.name} ({err.strerror})",
                      str(path)) from err


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (temp file + fsync + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, _FILE_MODE)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as err:  # disk full, quota, ...: the error names the file it was writing
        Path(tmp).unlink(missing_ok=True)
        with naming(path):
            raise err from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def _json_ready(value: Any) -> Any:
    """Make ``value`` JSON-safe: non-finite floats become strings ("inf", "nan")."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # numpy / torch scalars
        return _json_ready(value.item())
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return value


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as indented JSON to ``path`` atomically."""
    return atomic_write_text(path, json.dumps(_json_ready(obj), indent=2, sort_keys=False) + "\n")


def atomic_savefig(fig: Any, path: str | os.PathLike, **kwargs: Any) -> Path:
    """Save a matplotlib figure atomically (format from the suffix)."""
    path = Path(path)
    buf = io.BytesIO()
    fig.savefig(buf, format=path.suffix.lstrip(".") or "png", **kwargs)
    return atomic_write_bytes(path, buf.getvalue())


def read_json(path: str | os.PathLike) -> Any:
    """Read a JSON file, with an error that names the file when it is missing or broken."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise FileNotFoundError(f"{path}: no such file; is this a semigrad run directory?") from err
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err.msg} at line {err.lineno})") from err


def new_run_dir(command: str, seed: int | None = None, root: str | os.PathLike = RUNS_ROOT) -> Path:
    """Create and return a fresh folder ``root/<command>-<date>-<time>[-s<seed>][-n]``."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = f"{command}-{stamp}" + ("" if seed is None else f"-s{seed}")
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    for n in range(1000):
        path = root / (base if n == 0 else f"{base}-{n}")
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
    raise RuntimeError(f"could not create a new run directory under {root}")


RUN_FILES = ("summary.json", "checkpoint_last.pt", "metrics.csv", "config.json")


def holds_run(path: Path) -> str | None:
    """The name of the first run file in folder ``path`` (None: no run there)."""
    return next((name for name in RUN_FILES if (path / name).exists()), None)


def remove_unstarted_run(run_dir: Path, agent_dirs: Sequence[Path] = ()) -> None:
    """Remove what a run wrote before it failed at its start (no checkpoint yet): its
    ``RUN_FILES`` and ``tb/`` in ``run_dir`` and in each of ``agent_dirs`` (the folders it
    made for its agents, removed when left empty but for ``.lock``), so the next run into
    ``run_dir`` starts cleanly instead of meeting a run it can neither reuse nor resume."""
    import shutil

    for folder in (run_dir, *agent_dirs):
        for name in RUN_FILES:
            (folder / name).unlink(missing_ok=True)
        shutil.rmtree(folder / "tb", ignore_errors=True)
    for folder in agent_dirs:
        if folder.is_dir() and {p.name for p in folder.iterdir()} <= {".lock"}:
            shutil.rmtree(folder, ignore_errors=True)


def prepare_run_dir(
    run_dir: str | os.PathLike | None, command: str, seed: int | None = None,
    resume: bool = False, resumable: bool = False,
) -> Path:
    """The run directory a command writes to: ``run_dir`` (created if missing) or a new one,
    checked for writing and locked for this process (``RunLock``).

    A ``run_dir`` that already holds a run (a finished one, or an interrupted one: any of
    ``RUN_FILES``) is refused unless ``resume``, so two runs never mix in one folder; the error
    suggests ``--resume`` where the command has one (``resumable``). A path
    that is a file, or a folder that cannot be written, is one clear error.
    """
    path = new_run_dir(command, seed) if run_dir is None else Path(run_dir)
    if path.exists() and not path.is_dir():
        raise NotADirectoryError(f"--run-dir {path}: is a file, not a folder; give a folder")
    if run_dir is not None and not resume:
        held = holds_run(path)
        if held:
            what = ("a finished run (summary.json)" if held == "summary.json"
                    else f"a run ({held})")
            fix = ("continue an interrupted run with --resume, or pick a new folder"
                   if resumable else "pick a new folder (or remove this one)")
            raise FileExistsError(f"--run-dir {path}: already holds {what}; {fix}")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OSError(err.errno, f"cannot create the run folder ({err.strerror})",
                      str(path)) from None
    check_writable(path)
    RunLock.acquire(path)
    return path


def check_writable(folder: Path) -> None:
    """Raise ``OSError`` naming ``folder`` unless a file can be created in it."""
    try:
        fd, tmp = tempfile.mkstemp(prefix=".write-check.", dir=folder)
        os.close(fd)
        os.unlink(tmp)
    except OSError as err:
        raise OSError(err.errno, f"cannot write there ({err.strerror})", str(folder)) from None


def check_output_file(path: str | os.PathLike, flag: str) -> Path:
    """Check, before any work, that a file can be written at ``path`` (given with ``flag``):
    not a folder, its folder exists or can be made, and is writable. One clear error else."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{flag} {path}: is a folder; give a file name, e.g. "
                                f"{path / 'out'}{path.suffix or ''}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OSError(err.errno, f"{flag}: cannot create the folder ({err.strerror})",
                      str(path.parent)) from None
    check_writable(path.parent)
    return path


class RunLock:
    """An exclusive lock on a run folder for this process (``fcntl.flock`` on ``.lock``).

    The operating system releases it when the process ends, killed or not, so a folder left by
    a killed run is never blocked. Acquiring a folder this process already holds is a no-op.
    """

    _held: dict[Path, int] = {}

    @classmethod
    def acquire(cls, folder: str | os.PathLike) -> bool:
        """Lock ``folder``; True if this call took the lock, False if it was held already."""
        import fcntl

        key = Path(folder).resolve()
        if key in cls._held:
            return False
        fd = os.open(key / ".lock", os.O_RDWR | os.O_CREAT, _FILE_MODE)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            os.close(fd)
            if err.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise FileExistsError(f"{folder}: another process is writing this run folder "
                                      "right now; wait for it to end, or pick a new folder") \
                    from None
            raise
        cls._held[key] = fd
        return True

    @classmethod
    def release(cls, folder: str | os.PathLike) -> None:
        fd = cls._held.pop(Path(folder).resolve(), None)
        if fd is not None:
            os.close(fd)  # closing the descriptor releases the flock


class MetricsLog:
    """Rows of scalar metrics to ``metrics.csv`` (and optionally TensorBoard under ``tb/``;
    ``purge_step``: a resumed run's first step, see ``SummaryWriter``).

    Columns are fixed by the first call (``columns``); a missing value is written empty.
    Each row is flushed as it is written, so a crash loses at most the row in progress;
    ``truncate_metrics`` drops rows past a checkpoint's step before a run resumes.
    """

    def __init__(
        self, run_dir: str | os.PathLike, columns: Sequence[str], tensorboard: bool = True,
        purge_step: int | None = None,
    ) -> None:
        Path(run_dir).mkdir(parents=True, exist_ok=True)
        self.path = Path(run_dir) / "metrics.csv"
        self.columns = list(columns)
        if "step" not in self.columns:
            raise ValueError("MetricsLog: columns must include 'step'")
        new = not self.path.exists() or self.path.stat().st_size == 0
        self._fh = open(self.path, "a", newline="", encoding="utf-8")  # noqa: SIM115
        self._csv = csv.DictWriter(self._fh, fieldnames=self.columns, extrasaction="raise")
        if new:
            self._csv.writeheader()
            self._fh.flush()
        self._tb = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            # a resumed run: TensorBoard drops the events an earlier process logged past its
            # checkpoint (purge_step), so the scalars equal the uninterrupted run's
            if purge_step is not None:
                _after_earlier_event_files(Path(run_dir) / "tb")
            self._tb = SummaryWriter(log_dir=str(Path(run_dir) / "tb"), purge_step=purge_step)

    def log(self, row: Mapping[str, Any]) -> None:
        """Append one row; ``row["step"]`` is the x-axis for TensorBoard."""
        clean = {k: ("" if v is None else _json_ready(v)) for k, v in row.items()}
        with naming(self.path):
            self._csv.writerow(clean)
            self._fh.flush()
        if self._tb is not None:  # one event per row (add_scalar per value costs ~30 us each)
            from tensorboard.compat.proto.summary_pb2 import Summary

            values = [Summary.Value(tag=key, simple_value=float(value))
                      for key, value in row.items()
                      if key != "step" and isinstance(value, (int, float))
                      and not isinstance(value, bool)]
            if values:
                self._tb._get_file_writer().add_summary(Summary(value=values), int(row["step"]))

    def flush(self) -> None:
        """Put every row logged so far on disk, TensorBoard's queued events included (call it
        before a checkpoint, so the checkpoint never covers rows a kill could lose)."""
        with naming(self.path):
            self._fh.flush()
        if self._tb is not None:
            self._tb.flush()

    def close(self) -> None:
        self._fh.close()
        if self._tb is not None:
            self._tb.close()

    def __enter__(self) -> MetricsLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _after_earlier_event_files(tb_dir: Path) -> None:
    """Wait (at most a second) until a new TensorBoard event file will sort after the earlier
    ones: its name starts with the current second, and TensorBoard reads the files in name
    order, so a resumed run's file written in the same second as the killed run's could come
    first and its purge would then drop the earlier run's rows."""
    stamps = []
    for f in tb_dir.glob("events.out.tfevents.*"):
        try:
            stamps.append(int(f.name.split(".")[3]))
        except (IndexError, ValueError):
            continue
    if stamps:
        wait = max(stamps) + 1 - time.time()
        if wait > 0:
            time.sleep(wait)


def read_metrics(path: str | os.PathLike) -> list[dict[str, float | None]]:
    """Rows of a ``metrics.csv`` as dicts of floats (``None`` for empty cells)."""
    path = Path(path)
    if path.is_dir():
        path = path / "metrics.csv"
    with open(path, newline="", encoding="utf-8") as fh:
        return [
            {k: (float(v) if v not in ("", None) else None) for k, v in row.items()}
            for row in csv.DictReader(fh)
        ]


def truncate_metrics(path: str | os.PathLike, last_step: int) -> None:
    """Keep only the rows of ``metrics.csv`` with ``step <= last_step`` (atomic rewrite).

    A resumed run calls this so that rows logged after its checkpoint, which it will log
    again, do not appear twice. A half-written last line (a crash mid-row) is dropped too.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "metrics.csv"
    if not path.exists():
        return
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        columns = reader.fieldnames or []
        kept = []
        for row in reader:
            try:
                if None in row.values() or float(row["step"]) > last_step:
                    continue
            except (TypeError, ValueError):
                continue
            kept.append(row)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns)
    writer.writeheader()
    writer.writerows(kept)
    atomic_write_text(path, out.getvalue())


def format_summary(title: str, items: Mapping[str, Any]) -> str:
    """A short aligned block of ``key: value`` lines under ``title``, for the terminal
    (floats to 6 significant digits, None as "-")."""
    width = max((len(k) for k in items), default=0)
    lines = [title, "-" * len(title)]
    for key, value in items.items():
        if isinstance(value, float):
            value = f"{value:.6g}"
        elif value is None:
            value = "-"
        lines.append(f"{key:<{width}}  {value}")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- checkpoints


def atomic_save_torch(path: str | os.PathLike, payload: Any) -> Path:
    """``torch.save(payload)`` to ``path`` atomically; ``payload`` holds only tensors and plain
    Python values, so it loads with ``weights_only=True``."""
    import torch

    buf = io.BytesIO()
    torch.save(payload, buf)
    return atomic_write_bytes(path, buf.getvalue())


def load_checkpoint(path: str | os.PathLike, expected: Sequence[str],
                    old: Sequence[str] = (), device: Any = "cpu", what: str = "") -> dict:
    """Read a checkpoint whose ``format`` is one of ``expected``, with ``weights_only=True``
    (never unpickling arbitrary objects). A missing file, a damaged or foreign one (torch's
    advice to load unsafely is not repeated), another format or one of the ``old`` formats of
    an earlier semigrad: one clear error naming the path; the file is left as it is."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no checkpoint there")
    try:
        payload = torch.load(path, map_location=device, weights_only=True)
    except Exception as err:  # torch raises several types for damaged files
        raise ValueError(f"{path}: not a readable semigrad checkpoint (damaged, truncated or "
                         f"another kind of file: {type(err).__name__}); the file was left as "
                         "it is") from None
    fmt = payload.get("format") if isinstance(payload, dict) else None
    if fmt in old:
        raise ValueError(f"{path}: written by an earlier semigrad (checkpoint format {fmt}); "
                         f"this version reads {' or '.join(expected)}: train again with this "
                         "version")
    if fmt not in expected:
        raise ValueError(f"{path}: not a semigrad {what}checkpoint of format "
                         f"{' or '.join(expected)} (format {fmt or '?'})")
    return payload


# ----------------------------------------------------------------------------- summaries


def stats_over(values: Sequence[float]) -> dict | None:
    """``{mean, std, min, median, max}`` of ``values`` (None when empty): a summary over
    seeds."""
    import statistics

    values = list(values)
    if not values:
        return None
    return {"mean": statistics.fmean(values), "std": statistics.pstdev(values),
            "min": min(values), "median": statistics.median(values), "max": max(values)}
