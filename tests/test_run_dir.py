"""run.py: atomic writes, run directories, metrics."""

import json
import os

import pytest

from semigrad import run


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
