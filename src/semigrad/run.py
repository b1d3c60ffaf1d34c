"""The run directory: every computing command writes one.

Layout (files appear as the command needs them)::

    RUN_DIR/config.json    the full config, written before any work starts
    RUN_DIR/metrics.csv    one row per logged step (also as TensorBoard events under tb/)
    RUN_DIR/summary.json   machine-readable results, written at the end
    RUN_DIR/*.png          figures

Every file is written atomically (a temporary file in the same folder, then ``os.replace``),
so a process killed mid-write leaves either the old file or the new one, never half of one.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import signal
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

RUNS_ROOT = Path("runs")


class CtrlC:
    """While installed, Ctrl-C (SIGINT) sets ``requested`` instead of raising
    ``KeyboardInterrupt``, so a training loop can finish its iteration, save and exit cleanly.

    ``install()`` returns the flag; ``restore()`` puts the previous handler back. Outside the
    main thread (where Python cannot set signal handlers) it does nothing but hold the flag.
    """

    def __init__(self) -> None:
        self.requested = False
        self._previous = None

    def install(self) -> CtrlC:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.getsignal(signal.SIGINT)
            signal.signal(signal.SIGINT, self._request)
        return self

    def _request(self, signum: int, frame: Any) -> None:
        self.requested = True

    def restore(self) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (temp file + fsync + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
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


def prepare_run_dir(
    run_dir: str | os.PathLike | None, command: str, seed: int | None = None
) -> Path:
    """The run directory a command writes to: ``run_dir`` (created if missing) or a new one.

    An existing ``run_dir`` that already holds a ``summary.json`` is refused, so a finished
    run is never overwritten by accident.
    """
    if run_dir is None:
        return new_run_dir(command, seed)
    path = Path(run_dir)
    if (path / "summary.json").exists():
        raise FileExistsError(
            f"--run-dir {path}: holds a finished run (summary.json); pick a new folder or delete it"
        )
    path.mkdir(parents=True, exist_ok=True)
    return path


class MetricsLog:
    """Rows of scalar metrics to ``metrics.csv`` (and optionally TensorBoard under ``tb/``).

    Columns are fixed by the first call (``columns``); a missing value is written empty.
    Each row is flushed as it is written, so a crash loses at most the row in progress;
    ``truncate_metrics`` drops rows past a checkpoint's step before a run resumes.
    """

    def __init__(
        self, run_dir: str | os.PathLike, columns: Sequence[str], tensorboard: bool = True
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

            self._tb = SummaryWriter(log_dir=str(Path(run_dir) / "tb"))

    def log(self, row: Mapping[str, Any]) -> None:
        """Append one row; ``row["step"]`` is the x-axis for TensorBoard."""
        clean = {k: ("" if v is None else _json_ready(v)) for k, v in row.items()}
        self._csv.writerow(clean)
        self._fh.flush()
        if self._tb is not None:
            step = int(row["step"])
            for key, value in row.items():
                if key != "step" and isinstance(value, (int, float)) and value is not None:
                    self._tb.add_scalar(key, value, step)

    def close(self) -> None:
        self._fh.close()
        if self._tb is not None:
            self._tb.close()

    def __enter__(self) -> MetricsLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


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
