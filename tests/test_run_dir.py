"""run.py: atomic writes, run directories, metrics; the run contract (one run per folder, lock,
exact resume after kill -9, file modes)."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from semigrad import run, trainer
from semigrad.algos import dqn
from semigrad.cli import main


def test_atomic_write_leaves_old_file_when_write_fails(tmp_path, monkeypatch):
    path = tmp_path / "summary.json"
    run.atomic_write_json(path, {"a": 1})

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        run.atomic_write_json(path, {"a": 2})
    assert json.loads(path.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]  # no temp file left


def test_non_finite_floats_survive_json(tmp_path):
    run.atomic_write_json(tmp_path / "x.json", {"v": float("inf"), "w": [float("nan")]})
    assert json.loads((tmp_path / "x.json").read_text()) == {"v": "inf", "w": ["nan"]}


def test_prepare_run_dir_refuses_finished_run(tmp_path):
    path = run.prepare_run_dir(tmp_path / "r", "grad", 0)
    run.atomic_write_json(path / "summary.json", {})
    with pytest.raises(FileExistsError, match="finished run"):
        run.prepare_run_dir(path, "grad", 0)


def test_new_run_dirs_are_distinct(tmp_path):
    a = run.new_run_dir("x", 1, root=tmp_path)
    b = run.new_run_dir("x", 1, root=tmp_path)
    assert a != b and a.is_dir() and b.is_dir()


def test_metrics_log_and_truncate(tmp_path):
    with run.MetricsLog(tmp_path, ["step", "loss", "ret"], tensorboard=False) as log:
        for step in range(5):
            log.log({"step": step, "loss": step / 2, "ret": None})
    with open(tmp_path / "metrics.csv", "a") as fh:
        fh.write("5,0.1")  # a row cut short by a crash
    run.truncate_metrics(tmp_path, 2)
    rows = run.read_metrics(tmp_path)
    assert [r["step"] for r in rows] == [0, 1, 2]
    assert rows[1]["loss"] == 0.5 and rows[1]["ret"] is None


def test_format_summary_aligns_rounds_and_shows_missing_values_as_a_dash():
    text = run.format_summary("semigrad train", {"solved": False, "time to solve": None,
                                             "final": 138.23456789})
    assert text.splitlines() == ["semigrad train", "--------------", "solved         False",
                                 "time to solve  -", "final          138.235"]


# ----------------------------------------------------------------------------- the run contract


TRAIN = [sys.executable, "-m", "semigrad", "train", "--no-progress", "--device", "cpu",
         "--hidden", "16", "--batch-size", "32", "--eval-every", "500", "--eval-episodes", "2",
         "--log-every", "250", "--learning-starts", "200"]


def _wait_for(predicate, proc, seconds=90):
    deadline = time.monotonic() + seconds
    while not predicate():
        assert proc.poll() is None, proc.stderr.read()
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def _scalars(run_dir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir / "tb"))
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)]
            for tag in acc.Tags()["scalars"] if tag not in ("wall_s", "train_s")}


def _without_time(rows):
    return [{k: v for k, v in r.items() if k not in ("wall_s", "train_s")} for r in rows]


def test_kill_9_then_resume_equals_the_uninterrupted_run(tmp_path):
    """Killed with SIGKILL at some moment after its first checkpoint and resumed, a run ends
    with the uninterrupted run's metrics.csv, TensorBoard scalars, weights and summary (time
    columns aside), and its wall time keeps growing across the resume."""
    argv = [*TRAIN, "--steps", "3000"]
    full = tmp_path / "full"
    assert subprocess.run([*argv, "--run-dir", str(full)], capture_output=True).returncode == 0
    part = tmp_path / "part"
    proc = subprocess.Popen([*argv, "--run-dir", str(part)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    ckpt = part / "checkpoint_last.pt"
    _wait_for(lambda: ckpt.exists() and len(run.read_metrics(part)) >= 3, proc)
    time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    proc.stderr.close()
    assert not (part / "summary.json").exists()
    walls = [r["wall_s"] for r in run.read_metrics(part)]
    assert main(["train", "--resume", str(part), "--no-progress"]) == 0
    rows = run.read_metrics(part)
    assert _without_time(rows) == _without_time(run.read_metrics(full))
    steps = [r["step"] for r in rows]
    assert steps == sorted(set(steps))  # no row twice, never back in steps
    kept = [r["wall_s"] for r in rows][: len(walls)]
    assert all(b >= a for a, b in zip(kept, [r["wall_s"] for r in rows][1:], strict=False))
    assert _scalars(part) == _scalars(full)
    a, b = (trainer.load_checkpoint(d / "checkpoint_last.pt") for d in (full, part))
    assert all(torch.equal(x, y) for x, y in zip(a["online"], b["online"], strict=True))
    sa, sb = (json.loads((d / "summary.json").read_text()) for d in (full, part))
    for key in ("eval_returns", "env_steps", "gradient_steps", "final_eval_return", "solved"):
        assert sa[key] == sb[key], key


def test_a_second_process_cannot_train_into_a_locked_folder(tmp_path, capsys):
    """While one process trains into a folder, another gets a clear error; once the first is
    killed (kill -9), its stale lock blocks nothing."""
    run_dir = tmp_path / "r"
    proc = subprocess.Popen([*TRAIN, "--steps", "1000000", "--run-dir", str(run_dir)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    _wait_for(lambda: (run_dir / "checkpoint_last.pt").exists(), proc)
    assert main(["train", "--resume", str(run_dir), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "another process is writing this run folder" in err and "Traceback" not in err
    with pytest.raises(FileExistsError, match="another process"):
        dqn.train(dqn.config_from_dict(json.loads((run_dir / "config.json").read_text())),
                  run_dir, resume=True, progress=False)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    proc.stderr.close()
    run.RunLock.acquire(run_dir)  # the dead process's lock is gone
    run.RunLock.release(run_dir)


def test_result_files_are_readable_by_others(tmp_path):
    """Atomic writes go through mkstemp (0600); the files end with open()'s usual mode."""
    path = run.atomic_write_json(tmp_path / "summary.json", {"a": 1})
    mask = os.umask(0)
    os.umask(mask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~mask


def test_a_full_disk_mid_run_is_one_line_and_keeps_what_was_written(tmp_path, capsys,
                                                                    monkeypatch):
    """The disk fills up at the second checkpoint: one line naming the file and the problem,
    exit 2, and the files written before (config, first checkpoint) are intact."""
    import errno

    run_dir = tmp_path / "r"
    real_save = trainer.save_checkpoint
    calls = []

    def save_then_fill_the_disk(path, r):
        calls.append(path)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        real_save(path, r)

    monkeypatch.setattr(trainer, "save_checkpoint", save_then_fill_the_disk)
    argv = ["train", "--no-progress", "--device", "cpu", "--hidden", "8", "--steps", "2000",
            "--eval-every", "500", "--eval-episodes", "2", "--learning-starts", "200",
            "--no-tensorboard", "--run-dir", str(run_dir)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "No space left on device" in err[0] and str(run_dir) in err[0]
    assert trainer.load_checkpoint(run_dir / "checkpoint_last.pt")["counters"]["env_steps"] == 500
    assert json.loads((run_dir / "config.json").read_text())["steps"] == 2000
    monkeypatch.undo()
    assert main(["train", "--resume", str(run_dir), "--no-progress"]) == 0  # and it goes on
