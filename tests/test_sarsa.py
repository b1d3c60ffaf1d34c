"""Semi-gradient SARSA / Expected SARSA on the trainer: exploration, on-policy bootstrapping,
learning, the divergence bound, K seeds at once and exact resume."""

import json

import numpy as np
import pytest
import torch

from semigrad import envs, policies, trainer
from semigrad.algos import sarsa
from semigrad.algos.sarsa import SarsaConfig
from semigrad.cli import main
from semigrad.config import ConfigError
from semigrad.envs import BatchedEnv
from semigrad.policies import epsilon_greedy_from_uniforms, epsilon_greedy_probs
from semigrad.run import read_metrics
from semigrad.schedules import linear_schedule as linear_epsilon

CPU = torch.device("cpu")
SMALL = dict(num_envs=4, steps=1200, eval_every=400, eval_episodes=3, log_every=200,
             hidden=(16,), tensorboard=False, device="cpu")


def test_epsilon_greedy_frequencies_match_its_probabilities():
    q = torch.tensor([[0.0, 2.0, 1.0]]).repeat(20_000, 1).view(1, 20_000, 3)
    u = torch.rand(1, 40_000, generator=torch.Generator().manual_seed(0))
    assert torch.equal(epsilon_greedy_from_uniforms(lambda: q, 3, 0.0, u),
                       torch.ones(1, 20_000, dtype=torch.int64))
    for eps in (0.3, 1.0):
        actions = epsilon_greedy_from_uniforms(lambda: q, 3, eps, u)[0]
        freq = torch.bincount(actions, minlength=3).double() / len(actions)
        probs = epsilon_greedy_probs(q[0, :1], eps)[0].double()
        assert torch.allclose(probs.sum(), torch.tensor(1.0, dtype=torch.float64))
        assert torch.allclose(freq, probs, atol=0.015)


def test_linear_epsilon_schedule():
    assert linear_epsilon(1.0, 0.1, 100, 0) == 1.0
    assert linear_epsilon(1.0, 0.1, 100, 50) == pytest.approx(0.55)
    assert linear_epsilon(1.0, 0.1, 100, 1000) == pytest.approx(0.1)
    assert linear_epsilon(1.0, 0.1, 0, 5) == 0.1


class ActionRecorder(BatchedEnv):
    def __init__(self, env):
        self.env, self.spec, self.num_envs, self.device = env, env.spec, env.num_envs, env.device
        self.actions, self.ends = [], []

    def reset(self):
        return self.env.reset()

    def step(self, actions):
        self.actions.append(actions.clone())
        out = self.env.step(actions)
        self.ends.append((out[2].clone(), out[3].clone()))
        return out


@pytest.mark.parametrize("q_form", ["multi-head", "state-action"])
def test_sarsa_bootstraps_on_the_action_it_takes_next(monkeypatch, q_form):
    """A' in the target is the next action taken (on-policy), except after an episode ends;
    time-limit truncations bootstrap: the discount is gamma except at terminations."""
    calls = []
    real = sarsa.losses.sarsa

    def spy(q_tm1, a_tm1, r_t, discount_t, q_t, a_t, **kw):
        calls.append((a_t.clone(), discount_t.clone()))
        return real(q_tm1, a_tm1, r_t, discount_t, q_t, a_t, **kw)

    monkeypatch.setattr(sarsa.losses, "sarsa", spy)
    env = ActionRecorder(envs.make("gymnasium:CartPole-v1", num_envs=4, device="cpu", seed=0,
                                   max_episode_steps=9))
    monkeypatch.setattr(sarsa.envs, "make_agents", lambda *a, **k: env)
    config = SarsaConfig(num_envs=4, steps=4 * 60, epsilon_start=0.5, epsilon_end=0.5,
                         q_form=q_form)
    st = sarsa.init(config, [0], CPU)
    for t in range(60):
        sarsa.iterate(config, st, 4 * t)
    assert len(calls) == 60
    for t in range(59):
        next_actions, discount = calls[t]
        term, trunc = env.ends[t]
        assert torch.equal(discount, torch.where(term, 0.0, config.gamma))
        going_on = ~(term | trunc)
        assert torch.equal(next_actions[going_on], env.actions[t + 1][going_on])
    assert torch.stack([e[1] for e in env.ends]).any()  # some truncations were tested


def test_update_is_the_textbook_sgd_step_on_the_taken_action():
    """With SGD, one update moves w by alpha * mean_i delta_i grad q_hat(S_i, A_i) (autograd
    on the per-sample loss as the reference): the closed-form gradient through the stacked
    network's backward is that of 0.5 * td_error_loss."""
    cfg = SarsaConfig(num_envs=4, optimizer="sgd", alpha=0.1, hidden=(8,),
                      epsilon_start=0.3, epsilon_end=0.3)
    st = sarsa.init(cfg, [5], CPU)
    net = sarsa.make_network(cfg, st.env)
    net.load_state_dict(sarsa.agent_state_dict(st, 0, net))
    obs, actions = st.obs.clone(), st.actions.clone()
    env_copy = envs.make_agents(cfg.env, 4, [5], CPU)
    env_copy.reset()
    next_obs, reward, terminated, _, info = env_copy.step(actions)
    saved_uniforms = st.uniforms.state_dict()
    u = st.uniforms.take(16)
    st.uniforms.load_state_dict(saved_uniforms)
    with torch.no_grad():
        q_final = net(info["final_obs"])
    a_next = epsilon_greedy_from_uniforms(lambda: q_final.view(1, 4, 2), 2, 0.3,
                                          u[:, :8]).reshape(-1)
    sarsa.iterate(cfg, st, 0)
    target = reward + torch.where(terminated, 0.0, cfg.gamma) * q_final[torch.arange(4), a_next]
    loss = 0.5 * ((target - net(obs)[torch.arange(4), actions]) ** 2).mean()
    loss.backward()
    with torch.no_grad():
        for p in net.parameters():
            p -= 0.1 * p.grad
    got = sarsa.agent_state_dict(st, 0, net)
    for name, p in net.state_dict().items():
        torch.testing.assert_close(got[name], p, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("variant", [{}, {"q_form": "state-action"},
                                     {"method": "expected-sarsa"}])
def test_sarsa_beats_the_random_policy(tmp_path, variant):
    """20k transitions (8 envs), seeds 0-2 at once: the greedy policy's final evaluation,
    median over the seeds, is at least twice the random policy's (about 22 on CartPole), and
    the training episodes get longer."""
    cfg = SarsaConfig(num_envs=8, steps=20_000, tensorboard=False, device="cpu", **variant)
    summary = sarsa.train(cfg, tmp_path, seeds=[0, 1, 2], progress=False)
    assert summary["status"] == "finished" and summary["algo"] == "sarsa"
    random = policies.evaluate(lambda obs: torch.randint(2, obs.shape[:1]), "CartPole-v1", 50,
                               1, CPU).mean().item()
    assert 15 < random < 30
    assert summary["final_eval_return"]["median"] > 2 * random, summary["final_eval_return"]
    rows = [r for r in read_metrics(tmp_path / "seed0") if r["episode_return"] is not None]
    assert np.mean([r["episode_return"] for r in rows[-3:]]) > \
        np.mean([r["episode_return"] for r in rows[:3]])


def test_a_value_beyond_the_bound_stops_the_run(tmp_path):
    """r_max = 0.01 bounds every value by 1: CartPole's values pass it soon, and the one
    divergence rule (semigrad.trainer) stops the run, naming the quantity and the bound."""
    cfg = SarsaConfig(**{**SMALL, "r_max": 0.01, "steps": 4000})
    with pytest.raises(trainer.TrainingDiverged, match=r"max \|q_hat\| = .* beyond its bound "
                                                       r"1.5 x r_max / \(1 - gamma\)"):
        sarsa.train(cfg, tmp_path, progress=False)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["status"] == "diverged" and "lower --alpha" in summary["error"]


def test_a_step_size_too_large_diverges(tmp_path):
    cfg = SarsaConfig(**{**SMALL, "alpha": 0.5, "optimizer": "sgd", "steps": 20_000})
    with pytest.raises(trainer.TrainingDiverged):
        sarsa.train(cfg, tmp_path, progress=False)
    assert json.loads((tmp_path / "summary.json").read_text())["env_steps"] < 20_000


def _without_time(rows):
    return [{k: v for k, v in r.items() if k not in ("wall_s", "train_s")} for r in rows]


def _weights(path):
    return trainer.load_checkpoint(path, expected=(trainer.WEIGHTS_FORMAT,))["weights"]


@pytest.mark.parametrize("variant", [{}, {"q_form": "state-action", "method": "expected-sarsa"}])
def test_agent_k_is_the_single_run_with_seed_k(tmp_path, variant):
    cfg = SarsaConfig(**SMALL, **variant)
    sarsa.train(cfg, tmp_path / "many", seeds=[4, 1, 7], progress=False)
    sarsa.train(SarsaConfig(**SMALL, **variant, seed=1), tmp_path / "one", progress=False)
    assert _without_time(read_metrics(tmp_path / "many" / "seed1")) == \
        _without_time(read_metrics(tmp_path / "one"))
    a = _weights(tmp_path / "many" / "seed1" / "checkpoint_best.pt")
    b = _weights(tmp_path / "one" / "checkpoint_best.pt")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("seeds", [None, [0, 2]])
def test_resume_equals_uninterrupted(tmp_path, seeds):
    cfg = SarsaConfig(**SMALL, seed=3, optimizer="adam")
    full = sarsa.train(cfg, tmp_path / "full", seeds=seeds, progress=False)
    part = sarsa.train(cfg, tmp_path / "part", seeds=seeds, progress=False, stop_after=600)
    assert part["status"] == "interrupted"
    resumed = sarsa.train(cfg, tmp_path / "part", seeds=seeds, progress=False, resume=True)
    for d in ([""] if seeds is None else [f"seed{s}" for s in seeds]):
        assert _without_time(read_metrics(tmp_path / "full" / d)) == \
            _without_time(read_metrics(tmp_path / "part" / d))
    a = trainer.load_checkpoint(tmp_path / "full" / "checkpoint_last.pt")
    b = trainer.load_checkpoint(tmp_path / "part" / "checkpoint_last.pt")
    assert all(torch.equal(x, y) for x, y in zip(a["online"], b["online"], strict=True))
    assert full["final_eval_return"] == resumed["final_eval_return"]


def test_config_errors():
    with pytest.raises(ConfigError, match="epsilon_end"):
        SarsaConfig(epsilon_end=1.5)
    with pytest.raises(ConfigError, match="q_form"):
        SarsaConfig(q_form="dueling")
    with pytest.raises(ConfigError, match="eval_every"):
        SarsaConfig(eval_every=0)


def test_sarsa_command_writes_a_train_run_that_eval_and_load_agent_read(tmp_path, capsys):
    run_dir = tmp_path / "s"
    assert main(["sarsa", "--steps", "3000", "--num-envs", "4", "--q-form", "state-action",
                 "--eval-episodes", "5", "--eval-every", "1000", "--no-progress",
                 "--run-dir", str(run_dir)]) == 0
    out = capsys.readouterr().out
    assert "final / best eval return" in out
    config = json.loads((run_dir / "config.json").read_text())
    assert (config["command"], config["algo"], config["q_form"]) == ("train", "sarsa",
                                                                     "state-action")
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["env_steps"] == 3000 and len(summary["eval_returns"]) == 3
    assert {"train_s", "wall_s", "env_steps_per_s", "time_to_solve_s"} <= set(summary)
    assert (run_dir / "curve.png").stat().st_size > 1000
    agent = trainer.load_agent(run_dir)
    assert agent.q_values(torch.zeros(3, 4)).shape == (3, 2)
    assert main(["eval", str(run_dir), "--episodes", "3"]) == 0
    # `semigrad train --resume` finds the algorithm in the run: a finished run says so
    assert main(["train", "--resume", str(run_dir), "--no-progress"]) == 2
    assert "already ended" in capsys.readouterr().err
