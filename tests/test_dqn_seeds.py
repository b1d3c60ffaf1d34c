"""DQN with seeds as a batch dimension: each agent is exactly a DQN agent of its own, agent k of
a --seeds run is the single run with seed k, and no agent can see another (bit-identical
results when another agent's seed or data change)."""

import copy
import json
from dataclasses import replace

import pytest
import torch

from chain_env import ChainEnv, optimal_q
from semigrad import envs, policies, trainer
from semigrad.algos import dqn
from semigrad.algos.dqn import DQNConfig, learn, train
from semigrad.buffers import AgentReplay, Batch, ReplayBuffer
from semigrad.cli import main
from semigrad.config import parse_seeds
from semigrad.envs.cartpole import AgentsCartPole, TorchCartPole
from semigrad.losses import (
    double_q_learning,
    fold_termination,
    per_agent_q_learning_loss_and_grad,
    q_learning,
    td_error_loss,
)
from semigrad.nets import QNetwork, StackedMLP
from semigrad.optim import optimizer_step
from semigrad.run import read_metrics
from semigrad.seeding import AgentUniforms, agent_generators

envs.register("TestChain-v0", lambda **kw: ChainEnv(**kw))
# NaN rewards for the agent seeded 5 only: "changing agent j's data"
envs.register("TestChainNaNSeed5-v0",
              lambda seed=None, **kw: ChainEnv(nan_after=100 if seed == 5 else None,
                                               env_id="TestChainNaNSeed5-v0", **kw))


class _Stateless(ChainEnv):
    def state_dict(self):
        return None  # as an env that cannot save its state


envs.register("TestChainStatelessMany-v0",
              lambda **kw: _Stateless(env_id="TestChainStatelessMany-v0", **kw))

CHAIN = dict(env="TestChain-v0", steps=4000, num_envs=4, buffer_size=4000, batch_size=32,
             n_step=1, gradient_steps=1, alpha=3e-3, gamma=0.9, hidden=(32,), loss="mse",
             learning_starts=200,
             target_update_interval=50, epsilon_fraction=0.5, eval_every=1000, eval_episodes=4,
             log_every=250, tensorboard=False, device="cpu")
CPU = torch.device("cpu")


def _weights(run_dir):
    return dqn.load_agent(run_dir, "last").net.state_dict()


def init_many(cfg, seeds, device=CPU):
    return dqn.init(cfg, seeds, device)


def _without_time(rows):
    return [{k: v for k, v in r.items() if k not in ("wall_s", "train_s")} for r in rows]


# ----------------------------------------------------------------------------- pieces


def test_agent_uniforms_rows_are_each_generators_own_stream():
    seeds = [4, 9, 2]
    pool = AgentUniforms(agent_generators(seeds, CPU), chunk=7, low=-0.5, high=2.0)
    got = torch.cat([pool.take(m) for m in (3, 5, 1, 12, 2, 7)], dim=1)  # refills, m > chunk
    for k, s in enumerate(seeds):
        expected = torch.empty(30, dtype=torch.float64).uniform_(
            -0.5, 2.0, generator=torch.Generator().manual_seed(s))
        assert torch.equal(got[k], expected)


@pytest.mark.parametrize("box", [None, (2.4, 2.5, 0.2, 2.5)])
def test_agents_cartpole_is_k_single_cartpoles_with_their_seeds(box):
    """Agent k's envs start from exactly the states TorchCartPole(N, seed_k) draws (also with
    exploring starts)."""
    seeds, n = [3, 7, 11], 5
    many = AgentsCartPole(n, agent_generators(seeds, CPU), CPU, start_box=box)
    singles = [TorchCartPole(n, device="cpu", seed=s, start_box=box) for s in seeds]
    obs = many.reset().view(3, n, 4)
    for k, env in enumerate(singles):
        assert torch.equal(obs[k], env.reset())
    gen = torch.Generator().manual_seed(0)
    episodes = 0
    for _ in range(600):  # about 30 episodes per env under random actions
        actions = torch.randint(2, (3 * n,), generator=gen)
        out = many.step(actions)
        for k, env in enumerate(singles):
            ref = env.step(actions[k * n:(k + 1) * n])
            rows = slice(k * n, (k + 1) * n)
            for a, b in zip(out[:4], ref[:4], strict=True):
                assert torch.equal(a[rows], b)
            for key in ("final_obs", "episode_return", "episode_length"):
                got, expected = out[4][key][rows], ref[4][key]
                assert torch.equal(got.isnan(), expected.isnan())
                assert torch.equal(got.nan_to_num(), expected.nan_to_num())
        episodes += int((out[2] | out[3]).sum())
    assert episodes > 300


def test_stacked_mlp_matches_each_q_network_forward_and_backward():
    torch.manual_seed(0)
    nets = [QNetwork(4, 3, hidden=(16, 8)).double() for _ in range(3)]
    stacked = StackedMLP.stack(nets, CPU)
    x = torch.randn(3, 10, 4, dtype=torch.float64)
    grad_out = torch.randn(3, 10, 3, dtype=torch.float64)
    out, inputs = stacked.forward(x)
    stacked.backward(inputs, grad_out)
    template = QNetwork(4, 3, hidden=(16, 8)).double()
    for k, net in enumerate(nets):
        ref = net(x[k])
        assert torch.allclose(out[k], ref, rtol=0, atol=1e-12)
        ref.backward(grad_out[k])
        loaded = copy.deepcopy(template)
        loaded.load_state_dict(stacked.agent_state_dict(k, template))  # QNetwork's names and layout
        for (name, p), q in zip(net.named_parameters(), loaded.parameters(), strict=True):
            assert torch.equal(p, q), name
        grads = stacked.agent_state_dict(k, template)  # the same mapping, applied to the gradients
        for i, (name, p) in enumerate(net.named_parameters()):
            g = stacked.params[i].grad[k]
            g = g.T if g.dim() == 2 and "weight" in name else g.reshape(-1)
            assert grads[name].shape == p.shape
            assert torch.allclose(g, p.grad, rtol=0, atol=1e-12), name


def test_dqn_without_numba_uses_tensor_operations(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "semigrad.q_loss_kernel", None)  # import fails
    with pytest.warns(RuntimeWarning, match="per-agent Q-learning loss is unavailable"):
        st = init_many(DQNConfig(**CHAIN), [0, 1], CPU)
    assert st.loss_fn is per_agent_q_learning_loss_and_grad
    monkeypatch.undo()
    assert init_many(DQNConfig(**CHAIN), [0, 1], CPU).loss_fn is not \
        per_agent_q_learning_loss_and_grad


def test_initial_weights_are_each_seeds_network():
    cfg = DQNConfig(**CHAIN)
    st = init_many(cfg, [0, 7], CPU)
    template = dqn.make_q_network(cfg, 5, 2)
    for k, s in enumerate([0, 7]):
        torch.manual_seed(s)
        single = dqn.make_q_network(cfg, 5, 2).state_dict()
        for name, value in st.online.agent_state_dict(k, template).items():
            assert torch.equal(value, single[name]), (s, name)


def _filled(capacity, num_envs, agents, adds, seed):
    """AgentReplay and one ReplayBuffer per agent holding the same transitions."""
    gen = torch.Generator().manual_seed(seed)
    replay = AgentReplay(agents, capacity, num_envs, 3, CPU)
    singles = [ReplayBuffer(capacity, 3, num_envs=num_envs) for _ in range(agents)]
    for _ in range(adds):
        m = agents * num_envs
        fields = (torch.randn(m, 3, generator=gen), torch.randint(2, (m,), generator=gen),
                  torch.randn(m, generator=gen), torch.randn(m, 3, generator=gen),
                  torch.rand(m, generator=gen) < 0.15, torch.rand(m, generator=gen) < 0.1)
        replay.add(*fields)
        for k, buf in enumerate(singles):
            buf.add(*(f[k * num_envs:(k + 1) * num_envs] for f in fields))
    return replay, singles


@pytest.mark.parametrize(("adds", "n"), [(5, 1), (5, 3), (17, 1), (17, 4)])  # 17: wrapped
def test_sampling_is_replay_buffer_sampling_of_each_agents_own_buffer(adds, n):
    """Same start slots -> the same (n-step) transitions as ReplayBuffer.sample(_n_step)."""
    agents, num_envs, capacity, b, gamma = 3, 2, 24, 40, 0.9
    replay, singles = _filled(capacity, num_envs, agents, adds, seed=adds + n)
    valid = singles[0].size - (n - 1) * num_envs
    u, refs = [], []
    for k, buf in enumerate(singles):
        starts = torch.randint(valid, (b,), generator=torch.Generator().manual_seed(k))
        u.append((starts.double() + 0.5) / valid)  # uniforms that floor to those starts
        gen = torch.Generator().manual_seed(k)
        refs.append(buf.sample(b, gen) if n == 1 else buf.sample_n_step(b, n, gamma, gen))
    u = torch.stack(u)
    got = replay.sample(u) if n == 1 else replay.sample_n_step(n, gamma, u)
    for name in ("obs", "actions", "rewards", "next_obs", "terminated", "truncated", "discounts"):
        expected = [getattr(r, name) for r in refs]
        if expected[0] is None:
            assert getattr(got, name) is None
            continue
        assert torch.equal(getattr(got, name), torch.cat(expected)), name


@pytest.mark.parametrize("options", [
    dict(double=True, loss="huber", max_grad_norm=0.5, target_update="hard",
         target_update_interval=2),
    dict(double=False, loss="mse", max_grad_norm=0.0, target_update="polyak", tau=0.3),
    dict(double=True, loss="mse", max_grad_norm=1e-3, target_update="polyak", tau=0.5,
         n_step=3),
    dict(double=True, loss="huber", max_grad_norm=0.5, target_update="hard",
         target_update_interval=3, dueling=True),
])
def test_learning_step_is_each_agents_own_dqn_step(options):
    """K agents' steps = the textbook per-agent step (QNetwork or DuelingQNetwork, td_error_loss
    of (double_)q_learning,
    clip_grad_norm_, Adam, target update) run agent by agent, in float64."""
    cfg = DQNConfig(**{**CHAIN, "hidden": (16, 8), **options})
    k, b, steps = 3, 24, 5
    st = init_many(cfg, [0, 1, 2], CPU)
    st.online = StackedMLP([p.double() for p in st.online.params], st.online.dueling)
    st.target = st.online.clone()
    st.optimizer = torch.optim.Adam(st.online.params, lr=cfg.alpha, fused=True)
    st.optimizer_step = optimizer_step(st.optimizer, st.online.params)
    template = dqn.make_q_network(cfg, 5, 2).double()
    nets = []
    for i in range(k):
        nets.append(copy.deepcopy(template))
        nets[-1].load_state_dict(st.online.agent_state_dict(i, template))
    targets = [copy.deepcopy(net) for net in nets]
    optims = [torch.optim.Adam(net.parameters(), lr=cfg.alpha) for net in nets]
    gen = torch.Generator().manual_seed(1)
    for _ in range(steps):
        m = k * b
        batch = Batch(torch.randn(m, 5, generator=gen, dtype=torch.float64),
                      torch.randint(2, (m,), generator=gen),
                      torch.randn(m, generator=gen, dtype=torch.float64),
                      torch.randn(m, 5, generator=gen, dtype=torch.float64),
                      torch.rand(m, generator=gen) < 0.2, torch.rand(m, generator=gen) < 0.1)
        gamma = (cfg.gamma ** torch.randint(1, 4, (m,), generator=gen).double()
                 if cfg.n_step > 1 else cfg.gamma)
        discount_t = fold_termination(gamma, batch.terminated, torch.float64)
        learn(cfg, st, batch, discount_t)
        for i, (net, target, opt) in enumerate(zip(nets, targets, optims, strict=True)):
            rows = slice(i * b, (i + 1) * b)
            q = net(batch.obs[rows])
            with torch.no_grad():
                next_target = target(batch.next_obs[rows])
                next_online = net(batch.next_obs[rows]) if cfg.double else None
            args = (q, batch.actions[rows], batch.rewards[rows], discount_t[rows], next_target)
            td = (q_learning(*args) if next_online is None
                  else double_q_learning(*args, next_online))
            loss = td_error_loss(td, cfg.loss)
            opt.zero_grad()
            loss.backward()
            if cfg.max_grad_norm > 0:
                torch.nn.utils.clip_grad_norm_(net.parameters(), cfg.max_grad_norm)
            opt.step()
            with torch.no_grad():
                if cfg.target_update == "polyak":
                    for t, p in zip(target.parameters(), net.parameters(), strict=True):
                        t.lerp_(p, cfg.tau)
                elif st.gradient_steps % cfg.target_update_interval == 0:
                    target.load_state_dict(net.state_dict())
    for i, (net, target) in enumerate(zip(nets, targets, strict=True)):
        for stacked, single in ((st.online, net), (st.target, target)):
            got = stacked.agent_state_dict(i, template)
            for name, p in single.named_parameters():
                assert torch.allclose(got[name], p, rtol=0, atol=1e-12), (i, name)
    assert st.acc[:, 2:4].isfinite().all()


def test_evaluation_is_policies_evaluate_for_each_agent():
    seeds = [10, 20, 30]
    st = init_many(DQNConfig(env="CartPole-v1", hidden=(16,), device="cpu"), seeds, CPU)
    template = dqn.make_q_network(DQNConfig(hidden=(16,)), 4, 2)
    returns = trainer.evaluate_agents(st.online, "CartPole-v1", 6, [s + 1 for s in seeds], CPU)
    for k, s in enumerate(seeds):
        net = copy.deepcopy(template)
        net.load_state_dict(st.online.agent_state_dict(k, template))
        ref = policies.evaluate(policies.greedy(net), "CartPole-v1", 6, seed=s + 1,
                                device=CPU)
        assert torch.equal(returns[k], ref)


# ----------------------------------------------------------------------------- independence


def _agents(parent, seeds):
    """Each agent's summary from its folder of a --seeds run."""
    return [json.loads((parent / f"seed{s}" / "summary.json").read_text()) for s in seeds]


@pytest.mark.parametrize("env_id", ["CartPole-v1", "TestChain-v0"])
def test_changing_one_agents_seed_leaves_the_others_bit_identical(tmp_path, env_id):
    cfg = DQNConfig(**{**CHAIN, "env": env_id, "steps": 1200, "eval_every": 600,
                       "hidden": (16,), "learning_starts": 100, "n_step": 2})
    for name, seeds in (("a", [0, 1, 2]), ("b", [0, 9, 2])):
        train(cfg, tmp_path / name, seeds=seeds, progress=False)
    for s in (0, 2):
        a, b = (_weights(tmp_path / name / f"seed{s}") for name in "ab")
        assert all(torch.equal(a[n], b[n]) for n in a)
        assert _without_time(read_metrics(tmp_path / "a" / f"seed{s}")) == \
            _without_time(read_metrics(tmp_path / "b" / f"seed{s}"))
    a, b = _weights(tmp_path / "a" / "seed1"), _weights(tmp_path / "b" / "seed9")
    assert not all(torch.equal(a[n], b[n]) for n in a)


def test_one_agent_diverging_leaves_the_others_bit_identical(tmp_path):
    """Agent seeded 5 gets NaN rewards: it stops, reported as diverged; the others do not
    notice (bit-identical to a run where its data are fine)."""
    cfg = DQNConfig(**{**CHAIN, "steps": 1000, "eval_every": 500, "hidden": (16,),
                       "learning_starts": 100})
    seeds = [0, 5, 1]
    total = train(replace(cfg, env="TestChainNaNSeed5-v0"), tmp_path / "bad", seeds=seeds,
                  progress=False)
    train(cfg, tmp_path / "good", seeds=seeds, progress=False)
    bad, good = _agents(tmp_path / "bad", seeds), _agents(tmp_path / "good", seeds)
    assert [s["status"] for s in bad] == ["finished", "diverged", "finished"]
    assert total["status"] == "diverged" and total["diverged_seeds"] == [5]
    assert "non-finite loss" in bad[1]["error"] and bad[1]["env_steps"] <= 500
    assert total["per_seed"][1]["error"] == bad[1]["error"]
    for i, s in ((0, 0), (2, 1)):
        a, b = _weights(tmp_path / "bad" / f"seed{s}"), _weights(tmp_path / "good" / f"seed{s}")
        assert all(torch.equal(a[n], b[n]) for n in a)
        assert bad[i]["eval_returns"] == good[i]["eval_returns"]


def test_stop_after_interrupts_every_agent_and_keeps_its_files(tmp_path):
    cfg = DQNConfig(**{**CHAIN, "steps": 1200, "eval_every": 400, "hidden": (16,)})
    total = train(cfg, tmp_path, seeds=[1, 2], progress=False, stop_after=600)
    assert total["status"] == "interrupted" and total["env_steps_per_agent"] == 600
    assert not (tmp_path / "summary.json").exists()  # resumable
    for s in (1, 2):
        assert not (tmp_path / f"seed{s}" / "summary.json").exists()
        assert dqn.load_agent(tmp_path / f"seed{s}", "last").meta["env_steps"] == 600
        assert read_metrics(tmp_path / f"seed{s}")[-1]["step"] == 500


@pytest.mark.parametrize("env_id, box", [("TestChain-v0", ()), ("CartPole-v1", (1, 1, 0.1, 1)),
                                         ("gymnasium:CartPole-v1", ())])
def test_resume_equals_uninterrupted(tmp_path, env_id, box):
    """Stopped mid-way between evaluations and resumed, K agents end bit-identical to an
    uninterrupted run: weights, target networks, metrics rows, evaluations."""
    cfg = DQNConfig(**{**CHAIN, "env": env_id, "steps": 1200, "eval_every": 400,
                       "hidden": (16,), "eval_episodes": 2, "start_box": box,
                       "n_step": 3, "double": True})
    seeds = [3, 1]
    full = train(cfg, tmp_path / "full", seeds=seeds, progress=False)
    part = train(cfg, tmp_path / "part", seeds=seeds, progress=False, stop_after=600)
    assert part["status"] == "interrupted"
    resumed = train(cfg, tmp_path / "part", seeds=seeds, progress=False, resume=True)
    assert full["per_seed"] == [{**p, "run_dir": p["run_dir"].replace("part", "full")}
                                for p in resumed["per_seed"]]
    for a, b, s in zip(_agents(tmp_path / "full", seeds), _agents(tmp_path / "part", seeds),
                       seeds, strict=True):
        for key in ("status", "eval_returns", "gradient_steps", "env_steps",
                    "final_eval_return", "solved"):
            assert a[key] == b[key], key
        d_full, d_part = tmp_path / "full" / f"seed{s}", tmp_path / "part" / f"seed{s}"
        assert _without_time(read_metrics(d_full)) == _without_time(read_metrics(d_part))
        assert all(torch.equal(x, y) for x, y in zip(_weights(d_full).values(),
                                                      _weights(d_part).values(), strict=True))
    a, b = (trainer.load_checkpoint(tmp_path / n / "checkpoint_last.pt") for n in ("full", "part"))
    for key in ("online", "target"):
        assert all(torch.equal(x, y) for x, y in zip(a[key], b[key], strict=True))


def test_env_without_saved_state_resumes_with_new_episodes_and_a_warning(tmp_path):
    cfg = DQNConfig(**{**CHAIN, "env": "TestChainStatelessMany-v0", "steps": 1200,
                       "eval_every": 400, "hidden": (16,)})
    train(cfg, tmp_path, seeds=[1, 2], progress=False, stop_after=600)
    assert trainer.load_checkpoint(tmp_path / "checkpoint_last.pt")["env"] is None
    with pytest.warns(UserWarning, match="cannot save its state"):
        done = train(cfg, tmp_path, seeds=[1, 2], progress=False, resume=True)
    assert [d["status"] for d in done["per_seed"]] == ["finished"] * 2
    assert [len(d["eval_returns"]) for d in _agents(tmp_path, [1, 2])] == [3] * 2


def test_resume_refuses_another_config_or_seeds(tmp_path):
    cfg = DQNConfig(**{**CHAIN, "steps": 800, "eval_every": 400, "hidden": (16,)})
    train(cfg, tmp_path, seeds=[1, 2], progress=False, stop_after=400)
    with pytest.raises(ValueError, match=r"alpha: 0.003 \(checkpoint\) vs 0.001 \(given\)"):
        train(replace(cfg, alpha=1e-3), tmp_path, seeds=[1, 2], progress=False, resume=True)
    with pytest.raises(ValueError, match=r"the checkpoint holds seeds \[1, 2\], got \[2, 1\]"):
        train(cfg, tmp_path, seeds=[2, 1], progress=False, resume=True)
    with pytest.raises(FileNotFoundError, match="no checkpoint there"):
        train(cfg, tmp_path / "none", seeds=[1, 2], progress=False, resume=True)
    with pytest.raises(FileExistsError, match="already holds a run.*--resume"):
        train(cfg, tmp_path, seeds=[1, 2], progress=False)  # not silently mixed


# ----------------------------------------------------------------------------- learning


def test_every_agent_converges_to_the_optimum_on_chain(tmp_path):
    """The single-agent DQN test, for four agents trained at once (tests/test_dqn.py)."""
    seeds = [0, 1, 2, 3]
    cfg = DQNConfig(**CHAIN)
    train(cfg, tmp_path, seeds=seeds, progress=False)
    q_star = optimal_q(5, 0.9)
    for s, summary in zip(seeds, _agents(tmp_path, seeds), strict=True):
        agent = dqn.load_agent(tmp_path / f"seed{s}", "last")
        q = agent.q_values(torch.eye(5)[:4]).double()
        assert torch.equal(agent.act(torch.eye(5)[:4]), torch.ones(4, dtype=torch.int64))
        assert (q - q_star).abs().max().item() < 0.05
        assert summary["final_eval_return"] == 1.0 and summary["status"] == "finished"


# ----------------------------------------------------------------------------- command


def test_parse_seeds():
    assert parse_seeds("0-3") == (0, 1, 2, 3)
    assert parse_seeds("0,3,5") == (0, 3, 5)
    assert parse_seeds("7, 0-2") == (7, 0, 1, 2)
    for bad, message in (("3-1", "empty range"), ("a", "cannot read"),
                         ("1,1", "repeated seed"), ("-2", "cannot read"),
                         ("0-100000", "at most 100000"),
                         ("99999999999999999999", "expected integers in 0..")):
        with pytest.raises(ValueError, match=message):
            parse_seeds(bad)


def test_train_seeds_command_writes_per_seed_runs_and_aggregate(tmp_path, capsys):
    run_dir = tmp_path / "many"
    assert main(["train", "--seeds", "3,5", "--steps", "800", "--eval-every", "400",
                 "--eval-episodes", "3", "--learning-starts", "200", "--hidden", "16",
                 "--run-dir", str(run_dir), "--no-progress", "--device", "cpu",
                 "--no-tensorboard"]) == 0
    out = capsys.readouterr().out
    assert "semigrad train --seeds" in out and "2 agents" in out
    for name in ("config.json", "summary.json", "curves.png", "checkpoint_last.pt"):
        assert (run_dir / name).exists(), name
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["seeds"] == [3, 5] and summary["agents"] == 2
    for s in (3, 5):
        d = run_dir / f"seed{s}"
        for name in ("config.json", "metrics.csv", "checkpoint_last.pt", "checkpoint_best.pt",
                     "curve.png", "summary.json"):
            assert (d / name).exists(), (s, name)
        assert json.loads((d / "config.json").read_text())["seed"] == s
        per_seed = json.loads((d / "summary.json").read_text())
        assert per_seed["env_steps"] == 800 and per_seed["seed"] == s
        assert main(["eval", str(d), "--episodes", "2", "--run-dir", str(tmp_path / f"e{s}"),
                     "--device", "cpu"]) == 0
    assert (run_dir / "curves.png").stat().st_size > 10_000


@pytest.mark.parametrize(("argv", "message"), [
    (["--seeds", "0-1", "--seed", "3"], "--seed and --seeds"),
    (["--seeds", "0-1", "--resume", "x"], "no such file; is this a semigrad run directory?"),
    (["--seeds", "2-1"], "empty range"),
    (["--seeds", "0-1", "--gamma", "2"], "gamma: 2.0 is outside the allowed range [0, 1]"),
])
def test_train_seeds_bad_inputs_are_one_line_errors(tmp_path, capsys, argv, message):
    run_dir = tmp_path / "r"
    assert main(["train", "--run-dir", str(run_dir), "--no-progress", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not run_dir.exists()


def test_train_seeds_command_resumes_an_interrupted_run(tmp_path, capsys, monkeypatch):
    """Interrupted (as by Ctrl-C) and resumed with ``semigrad train --resume PARENT``, a
    many-seed run ends where an uninterrupted one does; a finished run is not resumed."""
    argv = ["--seeds", "3,5", "--steps", "800", "--eval-every", "400",
            "--eval-episodes", "3", "--learning-starts", "200", "--hidden", "16",
            "--no-progress", "--device", "cpu", "--no-tensorboard"]
    full, part = tmp_path / "full", tmp_path / "part"
    assert main(["train", *argv, "--run-dir", str(full)]) == 0
    real_train = trainer.train
    monkeypatch.setattr(trainer, "train", lambda *a, **kw: real_train(*a, **kw, stop_after=600))
    assert main(["train", *argv, "--run-dir", str(part)]) == 130
    assert f"semigrad train --resume {part}" in capsys.readouterr().out
    monkeypatch.undo()
    assert main(["train", "--resume", str(part), "--no-progress"]) == 0
    a, b = (json.loads((d / "summary.json").read_text()) for d in (full, part))
    assert b["status"] == "finished" and b["env_steps_per_agent"] == 800
    assert [s["final_eval_return"] for s in a["per_seed"]] == \
        [s["final_eval_return"] for s in b["per_seed"]]
    for s in (3, 5):
        assert all(torch.equal(x, y) for x, y in zip(_weights(full / f"seed{s}").values(),
                                                      _weights(part / f"seed{s}").values(),
                                                      strict=True))
    capsys.readouterr()
    assert main(["train", "--resume", str(part), "--no-progress"]) == 2
    assert "this run already ended" in capsys.readouterr().err
    assert main(["train", "--resume", str(part), "--seeds", "3,6", "--no-progress"]) == 2
    assert "differs from the run's seeds [3, 5]" in capsys.readouterr().err
