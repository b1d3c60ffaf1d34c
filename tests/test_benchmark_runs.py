"""benchmarks/minatar_dqn.py's run folders: a run longer than one sitting goes on with the same
command (an interrupted run is continued, a finished one read back), another run in the folder
is one error naming what differs."""

import json
from pathlib import Path

import pytest

from semigrad import trainer
from semigrad.algos import dqn

TINY = dict(env="CartPole-v1", steps=600, num_envs=2, buffer_size=500, batch_size=16,
            learning_starts=100, eval_every=300, eval_episodes=2, log_every=100,
            tensorboard=False, device="cpu")


@pytest.fixture()
def minatar_dqn(monkeypatch):
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import minatar_dqn

    return minatar_dqn


def test_an_interrupted_run_is_continued_and_a_finished_one_read_back(tmp_path, minatar_dqn,
                                                                      capsys):
    cfg = dqn.preset("cartpole", **TINY)
    whole = trainer.train(dqn, cfg, tmp_path / "whole", seeds=[0, 1], progress=False)
    first = trainer.train(dqn, cfg, tmp_path / "game", seeds=[0, 1], progress=False,
                          stop_after=300)
    assert first["status"] == "interrupted"
    done = minatar_dqn.train_or_continue(dqn, cfg, tmp_path / "game", [0, 1])
    assert "continuing the run there" in capsys.readouterr().out
    assert done["status"] == "finished"
    for s in (0, 1):  # the continued run is the uninterrupted one (exact resume)
        a, b = (json.loads((tmp_path / d / f"seed{s}" / "summary.json").read_text())
                for d in ("whole", "game"))
        assert a["eval_returns"] == b["eval_returns"] and whole["status"] == "finished"
    again = minatar_dqn.train_or_continue(dqn, cfg, tmp_path / "game", [0, 1])
    assert "finished earlier; read back" in capsys.readouterr().out
    assert again == done


def test_another_run_in_the_folder_is_one_error_naming_what_differs(tmp_path, minatar_dqn):
    cfg = dqn.preset("cartpole", **TINY)
    trainer.train(dqn, cfg, tmp_path / "game", seeds=[0], progress=False, stop_after=200)
    other = dqn.preset("cartpole", **{**TINY, "batch_size": 32})
    with pytest.raises(SystemExit, match=r"fields that differ: \['batch_size'\]"):
        minatar_dqn.train_or_continue(dqn, other, tmp_path / "game", [0])
    with pytest.raises(SystemExit, match=r"seeds \[0\]"):
        minatar_dqn.train_or_continue(dqn, cfg, tmp_path / "game", [0, 1])
