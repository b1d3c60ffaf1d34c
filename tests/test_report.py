"""semigrad report on hand-made and real run folders: grouping, unsolved runs, counts, files;
SARSA and TD(0) runs; one figure panel per environment."""

import json
import math

import numpy as np
import pytest

from chain_env import ChainEnv
from semigrad import envs, report, stats
from semigrad.cli import main
from semigrad.envs import EnvSpec
from semigrad.plots import report as figures
from semigrad.run import atomic_write_json

envs.register("TestChain-v0", lambda **kw: ChainEnv(**kw))


class SolvableChain(ChainEnv):
    """The chain with a reward threshold (0.5: reach the end), so that a run can solve it."""

    def __init__(self, **kw):
        super().__init__(**kw, env_id="TestSolvableChain-v0")
        self.spec = EnvSpec("TestSolvableChain-v0", self.length, 2, 0.5, self.max_steps, "test")


envs.register("TestSolvableChain-v0", lambda **kw: SolvableChain(**kw))

THRESHOLD = 475.0


def fake_run(path, lr, seed, final=None, solve_s=None, status="finished", evals=(),
             command="train"):
    """A run directory as `semigrad train` leaves it (only the files the report reads)."""
    path.mkdir(parents=True)
    atomic_write_json(path / "config.json", {"command": command, "env": "CartPole-v1",
                                             "seed": seed, "lr": lr, "hidden": [64, 64],
                                             "tensorboard": seed % 2 == 0})
    if status != "unfinished":
        atomic_write_json(path / "summary.json", {
            "status": status, "final_eval_return": final, "reward_threshold": THRESHOLD,
            "solved": solve_s is not None, "time_to_solve_s": solve_s,
            "env_steps_to_solve": None if solve_s is None else int(solve_s * 100)})
    lines = ["step,eval_return,loss"] + [f"{s},{v},0.1" for s, v in evals]
    lines.insert(1, "50,,0.3")  # a row without an evaluation
    (path / "metrics.csv").write_text("\n".join(lines) + "\n")


@pytest.fixture()
def runs(tmp_path):
    # setting lr=0.1: finals [500, 480, 100, 490] -> IQM mean(480, 490) = 485, median 485;
    # solve times [10, 20, -, 30] -> inf for the unsolved: IQM mean(20, 30) = 25, median 25
    a = [(500, 10.0), (480, 20.0), (100, None), (490, 30.0)]
    for seed, (final, t) in enumerate(a):
        fake_run(tmp_path / "sweep" / f"lr=0.1,seed={seed}", 0.1, seed, final, t,
                 evals=[(100, 10 * (seed + 1)), (200, final)])
    # setting lr=0.2: finals [200, 250, 150, 300] -> IQM mean(200, 250) = 225, median 225;
    # solve times [5, 7, -, -]: half never solved -> IQM and median inf
    b = [(200, 5.0), (250, 7.0), (150, None), (300, None)]
    for seed, (final, t) in enumerate(b):
        fake_run(tmp_path / "sweep" / f"lr=0.2,seed={seed}", 0.2, seed, final, t,
                 evals=[(100, 1.0), (200, final), (300, final)] if seed else [(100, 1.0),
                                                                              (200, final)])
    fake_run(tmp_path / "sweep" / "lr=0.2,seed=4", 0.2, 4, 9.0, None, status="diverged")
    fake_run(tmp_path / "sweep" / "lr=0.2,seed=5", 0.2, 5, status="unfinished")
    fake_run(tmp_path / "other" / "eval-run", 0.2, 0, 1.0, None, command="eval")  # not a run
    fake_run(tmp_path / "sweep" / ".tune" / "x", 0.2, 9, 1.0, None)                 # hidden
    return tmp_path


def test_aggregate_hand_computed(runs):
    settings = report.aggregate(runs, reps=500)
    assert [s.label for s in settings] == ["lr=0.1", "lr=0.2"]      # ranked by final IQM
    a, b = settings
    assert (a.finished, a.diverged, a.unfinished, a.solved) == (4, 0, 0, 3)
    assert (b.finished, b.diverged, b.unfinished, b.solved) == (4, 1, 1, 2)
    assert a.final_iqm[0] == 485 and a.final_median[0] == 485
    assert b.final_iqm[0] == 225 and b.final_median[0] == 225
    assert a.solve_time_iqm[0] == 25 and a.solve_time_median[0] == 25
    assert b.solve_time_iqm[0] == math.inf and b.solve_time_median[0] == math.inf
    assert a.solve_steps_iqm[0] == 2500
    for s in settings:
        for point, low, high in (s.final_iqm, s.final_median, s.solve_time_iqm):
            assert low <= point <= high
    # the interval is the bootstrap's, reproducible from semigrad.stats with the same seed
    assert a.final_iqm == stats.interval_estimate([500, 480, 100, 490], stats.iqm, 500)
    # learning curve: steps every finished run evaluated at; IQM per step
    assert a.curve["steps"].tolist() == [100, 200]
    assert a.curve["iqm"].tolist() == [25.0, 485.0]                 # mean(20, 30), mean(480, 490)
    assert b.curve["steps"].tolist() == [100, 200]                   # seed 0 stops at 200


def test_report_command_writes_table_and_figures(runs, capsys):
    folder = runs / "sweep"
    assert main(["report", str(folder), "--reps", "500"]) == 0
    out = capsys.readouterr().out
    rows = [ln for ln in out.splitlines() if ln.startswith("| 1 ") or ln.startswith("| 2 ")]
    assert rows[0].startswith("| 1 | lr=0.1 | 4 | 485.0 [") and "| 3/4 |" in rows[0]
    assert "| 4 (+1 diverged) (+1 unfinished) | 225.0 [" in rows[1] and "inf [" in rows[1]
    out_dir = folder / "report"
    assert "lr=0.1" in (out_dir / "report.md").read_text()
    summary = json.loads((out_dir / "summary.json").read_text())
    assert [s["label"] for s in summary["settings"]] == ["lr=0.1", "lr=0.2"]
    assert summary["settings"][1]["solve_time_iqm"][0] == "inf"
    for name in ("learning_curves.png", "performance_profile.png", "curves/01-lr=0.1.png",
                 "curves/02-lr=0.2.png"):
        assert (out_dir / name).stat().st_size > 10_000, name
    # a second report does not silently replace the first: --force does, and the report
    # folder is not counted as a run itself
    before = (out_dir / "report.md").read_bytes()
    assert main(["report", str(folder), "--reps", "500"]) == 2
    assert "--force replaces it" in capsys.readouterr().err
    assert (out_dir / "report.md").read_bytes() == before
    assert main(["report", str(folder), "--reps", "500", "--force"]) == 0
    assert len(report.collect_runs(folder)) == 10


def test_report_errors(tmp_path):
    with pytest.raises(ValueError, match="no training runs"):
        report.aggregate(tmp_path)
    assert main(["report", str(tmp_path / "missing")]) == 2


# settings that differ in many fields have long labels: the figures must still lay out
@pytest.mark.filterwarnings("error:Tight layout not applied")
def test_report_reads_seeds_runs_dedupes_seeds_ranks_per_env_and_lists_unreadable(tmp_path,
                                                                                 capsys):
    """A real --seeds run counts as its seed folders; a copied seed folder counts once with a
    warning; another environment's runs are ranked apart; a broken config.json is listed."""
    folder = tmp_path / "runs"
    assert main(["train", "--env", "TestChain-v0", "--seeds", "0-2", "--steps", "600",
                 "--eval-every", "300", "--learning-starts", "100", "--hidden", "8",
                 "--no-progress", "--no-tensorboard", "--device", "cpu",
                 "--run-dir", str(folder / "chain")]) == 0
    import shutil

    shutil.copytree(folder / "chain" / "seed1", folder / "copy-of-seed1")
    for seed, final in enumerate([300.0, 320.0, 340.0]):
        fake_run(folder / "cp" / f"s{seed}", 0.1, seed, final, None)
    (folder / "broken").mkdir()
    (folder / "broken" / "config.json").write_text("{not json")
    capsys.readouterr()
    assert main(["report", str(folder), "--reps", "200"]) == 0
    out, err = capsys.readouterr()
    assert "copy-of-seed1 repeats seed 1" in err and "counted once" in err
    assert "broken: unreadable, left out" in err and "Traceback" not in err
    summary = json.loads((folder / "report" / "summary.json").read_text())
    by_env = {s["env"]: s for s in summary["settings"]}
    assert set(by_env) == {"TestChain-v0", "CartPole-v1"}
    assert by_env["TestChain-v0"]["finished"] == 3 and len(by_env["TestChain-v0"]["runs"]) == 3
    assert by_env["TestChain-v0"]["duplicates"][0].endswith("copy-of-seed1")
    assert by_env["TestChain-v0"]["rank"] == 1 and by_env["CartPole-v1"]["rank"] == 1
    assert "| env |" in out and "ranked within their environment" in out
    assert summary["unreadable"][0]["path"].endswith("broken")


def sarsa_run(path, seed, alpha="0.01"):
    """A real `semigrad sarsa` run on the solvable chain (it solves it in 4,000 steps)."""
    assert main(["sarsa", "--env", "TestSolvableChain-v0", "--steps", "4000", "--alpha", alpha,
                 "--gamma", "0.9", "--log-every", "1000", "--eval-every", "1000",
                 "--eval-episodes", "5", "--seed", str(seed), "--no-progress",
                 "--no-tensorboard", "--device", "cpu", "--run-dir", str(path)]) == 0


def test_report_reads_sarsa_runs_as_dqn_runs(tmp_path, capsys):
    """SARSA runs are trainer runs: evaluated during training, with a measured time to solve,
    ranked with the same statistics as DQN's (the label is the algorithm's name when nothing
    differs). A SARSA summary of an earlier version (evaluated once, after training: no
    time_to_solve_s) is read too, its time to solve shown as not measured ('-')."""
    folder = tmp_path / "runs"
    times = []
    for seed in (0, 1):
        sarsa_run(folder / f"s{seed}", seed)
        summary = json.loads((folder / f"s{seed}" / "summary.json").read_text())
        assert summary["solved"] and summary["algo"] == "sarsa"
        times.append(summary["time_to_solve_s"])
    capsys.readouterr()
    assert main(["report", str(folder), "--reps", "200"]) == 0
    out, err = capsys.readouterr()
    assert "unreadable" not in err and "before 2026-12-05" not in out
    row = next(ln for ln in out.splitlines() if ln.startswith("| 1 "))
    assert row.startswith("| 1 | sarsa | 2 | 1.0 [1.0, 1.0] | 1.0 [1.0, 1.0] | 2/2 | ")
    saved = json.loads((folder / "report" / "summary.json").read_text())["settings"][0]
    assert (saved["solved"], saved["algorithm"]) == (2, "sarsa")
    assert saved["solve_time_iqm"][0] == pytest.approx(np.mean(times))  # IQM of 2 = mean
    assert (folder / "report" / "performance_profile.png").stat().st_size > 10_000
    old = tmp_path / "old"
    old.mkdir()
    config = json.loads((folder / "s0" / "config.json").read_text())
    config.pop("algo")
    (old / "config.json").write_text(json.dumps({**config, "command": "sarsa"}))
    (old / "summary.json").write_text(json.dumps(
        {"status": "finished", "final_eval_return": 1.0, "solved": True,
         "reward_threshold": 0.5, "env_steps": 4000}))
    capsys.readouterr()
    assert main(["report", str(old), "--reps", "200"]) == 0
    out = capsys.readouterr().out
    assert "| 1 | sarsa | 1 | 1.0 [1.0, 1.0] | 1.0 [1.0, 1.0] | 1/1 | - | - | - |" in out
    assert "before 2026-12-05 evaluated their greedy policy once" in out


def test_report_summarises_td0_runs_by_their_monte_carlo_error(tmp_path, capsys):
    """TD(0) runs get their own table: per run the RMS of (v_hat - MC) / MC over the probes of
    its summary.json, IQM over seeds; the curve is that error over training (metrics.csv)."""
    folder = tmp_path / "runs"
    for alpha in ("0.003", "0.01"):
        for seed in (0, 1):
            assert main(["td0", "--steps", "800", "--num-envs", "4", "--alpha", alpha,
                         "--log-every", "400", "--mc-rollouts", "4", "--no-plots", "--seed",
                         str(seed), "--device", "cpu",
                         "--run-dir", str(folder / f"a{alpha}-s{seed}")]) == 0
    capsys.readouterr()
    assert main(["report", str(folder), "--reps", "200"]) == 0
    out, err = capsys.readouterr()
    assert "not summarised" not in err and "TD(0): prediction error" in out
    settings = report.aggregate(folder, reps=200)
    assert sorted(s.label for s in settings) == ["alpha=0.003", "alpha=0.01"]
    for s in settings:
        per_run = []
        for run in s.runs:
            probes = json.loads((run.path / "summary.json").read_text())["probes"]
            rel = [(p["v_hat"] - p["mc_value"]) / p["mc_value"] for p in probes]
            per_run.append(math.sqrt(sum(r * r for r in rel) / len(rel)))
        assert s.kind == "prediction" and s.finished == 2
        assert s.error_relative_rms[0] == pytest.approx(np.mean(per_run))  # IQM of 2 = mean
        assert s.curve["steps"].tolist() == [400, 800]  # a metric row every log_every
        assert s.curve["iqm"][-1] == pytest.approx(s.error_relative_rms[0], rel=1e-6)
        row = next(ln for ln in out.splitlines() if f"| {s.label} | 2 |" in ln)
        assert row.startswith(f"| {s.rank} ") and f"{100 * s.error_relative_rms[0]:.1f}% [" in row
    best, second = settings
    assert best.error_relative_rms[0] <= second.error_relative_rms[0]
    assert (folder / "report" / "prediction_error.png").stat().st_size > 10_000
    assert not (folder / "report" / "learning_curves.png").exists()  # no returns to show


def test_report_figures_have_one_panel_per_env_and_labels_of_the_differing_fields(
        tmp_path, capsys, monkeypatch):
    """Two environments whose settings differ in many fields (as presets do) and, within each,
    in alpha only: each figure has one panel (or row) per environment, and its legend names
    alpha only; an environment with DQN and SARSA runs says which is which."""
    folder = tmp_path / "runs"
    common = ["--steps", "600", "--eval-every", "300", "--learning-starts", "100", "--seeds",
              "0-1", "--no-progress", "--no-tensorboard", "--device", "cpu"]
    per_env = {"TestChain-v0": ["--hidden", "8", "--batch-size", "32", "--gamma", "0.9",
                                "--n-step", "1", "--target-update-interval", "50"],
               "TestSolvableChain-v0": ["--hidden", "16", "--batch-size", "64", "--gamma",
                                        "0.95", "--n-step", "3", "--target-update-interval",
                                        "100"]}
    for env, fields in per_env.items():
        for alpha in ("0.001", "0.003"):
            assert main(["train", "--env", env, "--alpha", alpha, *fields, *common,
                         "--run-dir", str(folder / f"{env}-{alpha}")]) == 0
    sarsa_run(folder / "sarsa", 0)
    seen = []
    save = figures._save

    def record(fig, path):
        panels = [ax for ax in fig.axes if ax.get_visible()]
        seen.append((path.name, [(ax.get_title(), [t.get_text() for t in ax.get_legend().texts]
                                  if ax.get_legend() else []) for ax in panels]))
        return save(fig, path)

    monkeypatch.setattr(figures, "_save", record)
    capsys.readouterr()
    assert main(["report", str(folder), "--reps", "200"]) == 0
    out = capsys.readouterr().out
    figs = dict(seen)
    chain, solvable = ["alpha=0.001", "alpha=0.003"], ["dqn: alpha=0.001", "dqn: alpha=0.003"]
    assert [(title, sorted(legend)) for title, legend in figs["learning_curves.png"]] == [
        ("TestChain-v0", chain),
        ("TestSolvableChain-v0", sorted([*solvable, "sarsa", "solved (0.5)"]))]
    profile = figs["performance_profile.png"]
    assert [title for title, _ in profile] == [
        "TestChain-v0: performance profile", "TestChain-v0: time to solve (unsolved runs never "
        "count)", "TestSolvableChain-v0: performance profile", "TestSolvableChain-v0: time to "
        "solve (unsolved runs never count)"]
    assert sorted(profile[0][1]) == chain
    assert sorted(profile[2][1]) == sorted([*solvable, "sarsa", "solved (0.5)"])
    for label in (*chain, *solvable):
        assert f"| {label} | 2 |" in out
    assert "batch_size" not in out and "| TestSolvableChain-v0 | sarsa | 1 |" in out
    # the per-setting figures name their environment (and the algorithm: DQN and SARSA here)
    assert sorted(name[3:] for name in figs if name[:2].isdigit()) == [
        "TestChain-v0-dqn-alpha=0.001.png", "TestChain-v0-dqn-alpha=0.003.png",
        "TestSolvableChain-v0-dqn-alpha=0.001.png", "TestSolvableChain-v0-dqn-alpha=0.003.png",
        "TestSolvableChain-v0-sarsa.png"]
