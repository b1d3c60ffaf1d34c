"""semigrad sweep: trial expansion, sweep files, and real sweeps on one shared local Ray session
(2 CPUs): run dirs, a failing setting, resume after a simulated and after a real kill."""

import json
import shutil
import signal
import subprocess
import sys
import time

import pytest

from semigrad import sweep
from semigrad.algos import dqn
from semigrad.cli import main
from semigrad.config import to_dict
from semigrad.run import atomic_write_json, read_metrics

TINY = {"steps": 300, "num_envs": 4, "buffer_size": 500, "batch_size": 16,
        "learning_starts": 64, "eval_every": 100, "eval_episodes": 2, "log_every": 100,
        "hidden": [8], "target_update_interval": 50, "tensorboard": False, "device": "cpu"}


def tiny_flags(**changes):
    flags = []
    for key, value in {**TINY, **changes}.items():
        flag = "--" + key.replace("_", "-")
        if isinstance(value, bool):
            flags.append(flag if value else "--no-" + flag[2:])
        else:
            flags += [flag, *(map(str, value) if isinstance(value, list) else [str(value)])]
    return flags


# ----------------------------------------------------------------------------- expansion


def test_parse_seeds_and_grid_items():
    assert sweep.parse_seeds("0-2,5") == (0, 1, 2, 5)
    assert sweep.parse_seeds([4, 2]) == (4, 2)
    for bad in ("3-1", "a", "1,1", "-1", ""):
        with pytest.raises(ValueError, match="--seeds"):
            sweep.parse_seeds(bad)
    assert sweep.parse_grid_item("learning-starts=1, 2") == ("learning_starts", ["1", "2"])
    for bad in ("alpha", "lr=", "=1"):
        with pytest.raises(ValueError, match="--grid"):
            sweep.parse_grid_item(bad)


def test_trials_are_every_setting_times_every_seed():
    spec = sweep.SweepSpec(overrides={"steps": "2000"},
                           grid={"alpha": ["1e-3", "3e-4"], "hidden": ["32x32", "64"]},
                           seeds="0-1")
    trials = spec.trials()
    assert len(trials) == 8 and len(spec.settings()) == 4
    assert [t.name for t in trials[:3]] == ["alpha=0.001,hidden=32x32,seed=0",
                                           "alpha=0.001,hidden=32x32,seed=1",
                                           "alpha=0.001,hidden=64,seed=0"]
    config = trials[2].config
    assert config["alpha"] == 0.001 and config["hidden"] == [64] and config["seed"] == 0
    assert config["steps"] == 2000
    # every other field is the preset's, and every trial builds a valid config
    assert config["gamma"] == dqn.PRESETS[dqn.DEFAULT_PRESET].gamma
    assert sweep.build_config(sweep.get_algo("dqn"), config).hidden == (64,)
    assert sweep.SweepSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"grid": {"alpah": [1]}}, "did you mean 'alpha'"),
    ({"grid": {"seed": [1, 2]}}, "--seeds"),
    ({"grid": {"alpha": ["1e-3", "0.001"]}}, "repeated values"),
    ({"grid": {"alpha": []}}, "non-empty list"),
    ({"grid": {"alpha": ["abc"]}}, "cannot read 'abc'"),
    ({"grid": {"double": ["maybe"]}}, "cannot read 'maybe'"),
    ({"overrides": {"steps": 1.5}}, "cannot read 1.5"),
    ({"preset": "nope"}, "preset"),
    ({"algo": "ppo"}, "algo"),
])
def test_bad_sweeps_fail_before_anything_runs(kwargs, message):
    with pytest.raises(ValueError, match=message):
        sweep.SweepSpec(**kwargs)


def test_sweep_files_toml_and_yaml(tmp_path, monkeypatch):
    toml = tmp_path / "s.toml"
    toml.write_text('algo = "dqn"\nseeds = "0-2"\n[config]\nsteps = 2000\n'
                    '[grid]\nalpha = [1e-3, 3e-4]\nhidden = [[32, 32], [64]]\n')
    yaml = tmp_path / "s.yaml"
    yaml.write_text("algo: dqn\nseeds: [0, 1, 2]\nconfig:\n  steps: 2000\n"
                    "grid:\n  alpha: [0.001, 0.0003]\n  hidden: [[32, 32], [64]]\n")
    from_toml = sweep.SweepSpec.from_dict(sweep.load_sweep_file(toml))
    assert from_toml == sweep.SweepSpec.from_dict(sweep.load_sweep_file(yaml))
    assert from_toml.grid["hidden"] == [(32, 32), (64,)] and from_toml.seeds == (0, 1, 2)
    monkeypatch.setitem(sys.modules, "yaml", None)  # as if pyyaml were not installed
    with pytest.raises(ValueError, match="pyyaml"):
        sweep.load_sweep_file(yaml)
    (tmp_path / "bad.toml").write_text("grid = [")
    with pytest.raises(ValueError, match="not valid TOML"):
        sweep.load_sweep_file(tmp_path / "bad.toml")
    (tmp_path / "extra.toml").write_text('algo = "dqn"\nseed = 3\n')
    with pytest.raises(ValueError, match="unknown key"):
        sweep.SweepSpec.from_dict(sweep.load_sweep_file(tmp_path / "extra.toml"))


def test_command_line_errors_come_before_ray(tmp_path, capsys):
    assert main(["sweep", "dqn", "--grid", "alpah=1", "--run-dir", str(tmp_path / "a")]) == 2
    assert "did you mean 'alpha'" in capsys.readouterr().err
    assert main(["sweep"]) == 2
    assert "name the algorithm" in capsys.readouterr().err
    assert main(["sweep", "--resume", str(tmp_path / "nothing")]) == 2
    assert not (tmp_path / "a").exists()


def test_run_trial_reports_errors_and_never_redoes_a_finished_run(tmp_path):
    out = sweep.run_trial("dqn", {**TINY, "env": "Pendulum-v1"}, tmp_path / "p")
    assert out["status"] == "failed" and "discrete action space" in out["error"]
    out = sweep.run_trial("dqn", {**TINY, "gamma": 2.0}, tmp_path / "g")
    assert out == {**out, "status": "failed", "error": "gamma: 2.0 is outside the allowed range "
                                                       "[0, 1]"}
    done = tmp_path / "done"
    done.mkdir()
    atomic_write_json(done / "summary.json", {"status": "finished", "final_eval_return": 7.0})
    before = (done / "summary.json").stat().st_mtime_ns
    out = sweep.run_trial("dqn", TINY, done)
    assert out["started_as"] == "done" and out["final_eval_return"] == 7.0
    assert (done / "summary.json").stat().st_mtime_ns == before


# ----------------------------------------------------------------------------- on Ray


@pytest.fixture(scope="module")
def ray_address():
    """One local Ray session (2 CPUs) for every test here: Ray takes seconds to start."""
    assert sweep.init_ray(num_cpus=2)
    import ray

    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


@pytest.fixture(scope="module")
def small_sweep(ray_address, tmp_path_factory):
    """2 settings x 2 seeds."""
    spec = sweep.SweepSpec(overrides=TINY, grid={"alpha": [1e-3, 3e-3]}, seeds="0-1")
    folder = tmp_path_factory.mktemp("sweep") / "s"
    seen = []
    result = sweep.run_sweep(spec, folder, progress=False,
                             on_outcome=lambda name, o: seen.append(name))
    return spec, folder, result, seen


def test_sweep_runs_every_trial_in_its_own_run_dir(small_sweep, tmp_path):
    spec, folder, result, seen = small_sweep
    assert sorted(seen) == sorted(t.name for t in spec.trials())
    statuses = {n: o["status"] for n, o in result.outcomes.items()}
    assert statuses == {"alpha=0.001,seed=0": "finished", "alpha=0.001,seed=1": "finished",
                        "alpha=0.003,seed=0": "finished", "alpha=0.003,seed=1": "finished"}
    dirs = sorted(p.name for p in (folder / sweep.TRIALS).iterdir())
    assert dirs == ["alpha=0.001,seed=0", "alpha=0.001,seed=1", "alpha=0.003,seed=0",
                    "alpha=0.003,seed=1"]
    for name in dirs:
        run_dir = folder / sweep.TRIALS / name
        config = json.loads((run_dir / "config.json").read_text())
        summary = json.loads((run_dir / "summary.json").read_text())
        assert config["command"] == "train" and f"alpha={config['alpha']!r},seed={config['seed']}" \
            == name and config["hidden"] == [8]
        assert summary["status"] == "finished" and summary["env_steps"] == 300
        assert summary["final_eval_return"] == result.outcomes[name]["final_eval_return"]
    saved = json.loads((folder / "summary.json").read_text())
    assert (saved["finished"], saved["failed"], saved["skipped"]) == (4, 0, 0)
    # the trials are ordinary runs: semigrad eval works on them, and report aggregates them
    trial = folder / sweep.TRIALS / "alpha=0.001,seed=0"
    assert main(["eval", str(trial), "--episodes", "2", "--device", "cpu",
                 "--run-dir", str(tmp_path / "eval")]) == 0
    assert main(["report", str(folder), "--reps", "200"]) == 0
    table = (folder / "report" / "report.md").read_text()
    assert "| alpha=0.001 | 2 |" in table and "| alpha=0.003 | 2 |" in table


def test_resume_reruns_only_unfinished_trials(small_sweep, tmp_path):
    spec, original, _, _ = small_sweep
    folder = tmp_path / "copy"
    shutil.copytree(original, folder)
    trials = folder / sweep.TRIALS
    # killed part-way: one trial stopped at env step 200 (checkpoint), one never started
    shutil.rmtree(trials / "alpha=0.003,seed=1")
    trial = next(t for t in spec.trials() if t.name == "alpha=0.003,seed=1")
    cfg = sweep.build_config(sweep.get_algo("dqn"), trial.config)
    (trials / trial.name).mkdir()
    atomic_write_json(trials / trial.name / "config.json", {"command": "train", **to_dict(cfg)})
    assert dqn.train(cfg, trials / "alpha=0.003,seed=1", progress=False,
                     stop_after=200)["status"] == "interrupted"
    shutil.rmtree(trials / "alpha=0.003,seed=0")
    untouched = {n: (trials / n / "summary.json").stat().st_mtime_ns
                 for n in ("alpha=0.001,seed=0", "alpha=0.001,seed=1")}

    result = sweep.run_sweep(spec, folder, resume=True, progress=False)
    out = result.outcomes
    assert [out[n]["status"] for n in untouched] == ["skipped", "skipped"]
    assert out["alpha=0.003,seed=1"]["started_as"] == "resumable"
    assert out["alpha=0.003,seed=0"]["started_as"] == "new"
    for name, mtime in untouched.items():
        assert (trials / name / "summary.json").stat().st_mtime_ns == mtime
    for name in ("alpha=0.003,seed=0", "alpha=0.003,seed=1"):  # same results as uninterrupted
        new = json.loads((trials / name / "summary.json").read_text())
        old = json.loads((original / sweep.TRIALS / name / "summary.json").read_text())
        assert new["status"] == "finished" and new["eval_returns"] == old["eval_returns"]
    steps = [r["step"] for r in read_metrics(trials / "alpha=0.003,seed=1")]
    assert steps == sorted(set(steps))  # no rows logged twice
    with pytest.raises(ValueError, match="differs"):
        sweep.run_sweep(sweep.SweepSpec(overrides=TINY, seeds="0-2"), folder, resume=True)
    with pytest.raises(FileExistsError, match="--resume"):
        sweep.run_sweep(spec, folder)


def test_sweep_killed_mid_way_resumes(ray_address, tmp_path):
    """A real `semigrad sweep` process on the shared Ray session, killed with SIGKILL once the
    short trials are done and before the long ones are; the resume skips the short ones."""
    folder = tmp_path / "killed"
    cmd = [sys.executable, "-m", "semigrad", "sweep", "dqn", *tiny_flags(), "--seeds", "0-1",
           "--grid", "steps=300,8000", "--address", ray_address, "--run-dir", str(folder),
           "--no-progress"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    short = [folder / sweep.TRIALS / f"steps=300,seed={s}" / "summary.json" for s in (0, 1)]
    long = [folder / sweep.TRIALS / f"steps=8000,seed={s}" / "summary.json"
            for s in (0, 1)]
    deadline = time.monotonic() + 240  # a safety net, generous for loaded machines
    while not all(p.exists() for p in short):
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        assert time.monotonic() < deadline, "the short trials did not finish in 240 s"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    proc.stderr.close()
    assert not any(p.exists() for p in long)  # killed before the long trials finished
    mtimes = [p.stat().st_mtime_ns for p in short]

    spec = sweep.SweepSpec.from_dict(json.loads((folder / "config.json").read_text())["sweep"])
    result = sweep.run_sweep(spec, folder, resume=True, progress=False)
    statuses = {n: o["status"] for n, o in result.outcomes.items()}
    assert statuses == {"steps=300,seed=0": "skipped", "steps=300,seed=1": "skipped",
                        "steps=8000,seed=0": "finished",
                        "steps=8000,seed=1": "finished"}
    assert [p.stat().st_mtime_ns for p in short] == mtimes
    assert all(json.loads(p.read_text())["env_steps"] == 8000 for p in long)


def test_outcomes_come_back_through_tune_results_too():
    """With ray:// Tune and its callbacks run on the cluster: outcomes come from the results."""
    class Result:
        def __init__(self, name, metrics=None, error=None):
            self.config, self.metrics, self.error = {"trial": {"name": name}}, metrics, error

    outcomes = {"a": {"status": "finished", "final_eval_return": 1.0}}
    sweep._outcomes_from_results([
        Result("a", {"status": "finished", "final_eval_return": 99.0}),
        Result("b", {"status": "finished", "final_eval_return": 2.0, "trial_id": "x"}),
        Result("c", error=RuntimeError("Traceback...\n  line\nActorDiedError: node died")),
        Result("d", {}),  # stopped by Ctrl-C: no result, no error
        type("NotStarted", (), {"config": None, "metrics": {}, "error": None})(),
    ], outcomes)
    assert outcomes == {"a": {"status": "finished", "final_eval_return": 1.0},
                        "b": {"status": "finished", "final_eval_return": 2.0},
                        "c": {"status": "failed", "error": "ActorDiedError: node died"}}


def test_an_invalid_grid_value_is_refused_before_anything_starts(tmp_path, capsys):
    spec = sweep.SweepSpec(overrides=TINY, grid={"alpha": [1e-3, -1.0]}, seeds="0-1")
    with pytest.raises(ValueError, match=r"--grid: setting 'alpha=-1.0' is invalid: alpha: -1.0 "
                                         r"is outside the allowed range"):
        sweep.run_sweep(spec, tmp_path / "s", progress=False)
    assert not (tmp_path / "s").exists()
    argv = ["sweep", "dqn", "--grid", "alpha=1e-3,-1", "--run-dir", str(tmp_path / "c")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "setting 'alpha=-1.0' is invalid" in err and "Traceback" not in err
    assert not (tmp_path / "c").exists()


def test_sarsa_and_td0_sweep_and_report_like_dqn(ray_address, tmp_path, capsys):
    """The algorithm registry: `semigrad sweep sarsa` and `semigrad sweep td0` run their trials,
    each a run directory of its command (SARSA's a `semigrad train --algo sarsa` run), and
    `semigrad report` ranks the SARSA runs and the td0 runs, each in its own table."""
    folder = tmp_path / "s"
    argv = ["sweep", "sarsa", "--steps", "400", "--num-envs", "2", "--eval-episodes", "2",
            "--log-every", "200", "--seeds", "0-1", "--grid", "alpha=1e-3,3e-3",
            "--address", ray_address, "--run-dir", str(folder), "--no-progress"]
    assert main(argv) == 0
    trials = sorted(p.name for p in (folder / sweep.TRIALS).iterdir())
    assert trials == ["alpha=0.001,seed=0", "alpha=0.001,seed=1", "alpha=0.003,seed=0",
                      "alpha=0.003,seed=1"]
    for name in trials:
        config = json.loads((folder / sweep.TRIALS / name / "config.json").read_text())
        summary = json.loads((folder / sweep.TRIALS / name / "summary.json").read_text())
        assert (config["command"], config["algo"], summary["status"]) == ("train", "sarsa",
                                                                          "finished")
        assert summary["env_steps"] == 400 and summary["final_eval_return"] > 0
    td0_sweep = folder / "td0-sweep"
    assert main(["sweep", "td0", "--steps", "400", "--num-envs", "2", "--seeds", "0",
                 "--grid", "gamma=0.9,0.95", "--address", ray_address, "--run-dir",
                 str(td0_sweep), "--no-progress"]) == 0
    for gamma in (0.9, 0.95):
        summary = json.loads((td0_sweep / sweep.TRIALS / f"gamma={gamma},seed=0" /
                              "summary.json").read_text())
        assert summary["status"] == "finished" and summary["probes"][0]["mc_value"] > 0
    capsys.readouterr()
    assert main(["report", str(folder), "--reps", "200"]) == 0
    out, err = capsys.readouterr()
    assert "| alpha=0.001 | 2 |" in out and "| alpha=0.003 | 2 |" in out
    assert "TD(0): prediction error" in out  # its own table, from the Monte Carlo errors
    assert "| gamma=0.9 | 1 |" in out and "| gamma=0.95 | 1 |" in out
