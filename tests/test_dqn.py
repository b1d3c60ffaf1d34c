"""DQN: converges on a tiny MDP, resumes exactly, refuses bad input, guards divergence."""

import importlib.util
import json
import signal
import subprocess
import sys
import time
from dataclasses import replace

import pytest
import torch

from backends import learn_on_both_backends
from chain_env import ChainEnv, optimal_q
from semigrad import envs
from semigrad.algos import dqn
from semigrad.algos.dqn import (
    CARTPOLE_START_BOX,
    DQNConfig,
    preset_fields,
    train,
)
from semigrad.cli import main
from semigrad.config import ConfigError, to_dict
from semigrad.run import read_metrics
from semigrad.schedules import epsilon_at
from semigrad.trainer import TrainingDiverged, load_checkpoint

envs.register("TestChain-v0", lambda **kw: ChainEnv(**kw))
envs.register("TestChainNaN-v0", lambda **kw: ChainEnv(nan_after=400, env_id="TestChainNaN-v0",
                                                       **kw))

CHAIN = dict(env="TestChain-v0", steps=4000, num_envs=4, buffer_size=4000, batch_size=32,
             n_step=1, gradient_steps=1,
             alpha=3e-3, gamma=0.9, hidden=(32,), loss="mse", learning_starts=200,
             target_update_interval=50, epsilon_fraction=0.5, eval_every=1000, eval_episodes=4,
             log_every=250, tensorboard=False, device="cpu")


def test_greedy_policy_and_values_converge_to_optimum_on_chain(tmp_path):
    cfg = DQNConfig(seed=0, **CHAIN)
    summary = train(cfg, tmp_path, progress=False)
    q = dqn.load_agent(tmp_path, "last").q_values(torch.eye(5)[:4]).double()
    q_star = optimal_q(5, 0.9)
    assert torch.equal(q.argmax(dim=1), torch.ones(4, dtype=torch.int64))  # always right
    assert (q - q_star).abs().max().item() < 0.05
    assert summary["final_eval_return"] == 1.0


def _without_time(rows):
    return [{k: v for k, v in r.items() if k not in ("wall_s", "train_s")} for r in rows]


@pytest.mark.parametrize("env_id, box", [("TestChain-v0", ()), ("gymnasium:CartPole-v1", ()),
                                         ("CartPole-v1", ()), ("CartPole-v1", (1, 1, 0.1, 1))])
def test_resume_equals_uninterrupted(tmp_path, env_id, box):
    cfg = DQNConfig(seed=3, **{**CHAIN, "env": env_id, "steps": 1200, "eval_every": 400,
                               "hidden": (16,), "eval_episodes": 2, "start_box": box})
    full = train(cfg, tmp_path / "full", progress=False)
    part = train(cfg, tmp_path / "part", progress=False, stop_after=600)  # mid-interval
    assert part["status"] == "interrupted" and part["env_steps"] == 600
    assert not (tmp_path / "part" / "summary.json").exists()
    resumed = train(cfg, tmp_path / "part", progress=False, resume=True)
    assert _without_time(read_metrics(tmp_path / "full")) == \
        _without_time(read_metrics(tmp_path / "part"))
    for key in ("eval_returns", "gradient_steps", "env_steps", "final_eval_return"):
        assert full[key] == resumed[key]
    a = load_checkpoint(tmp_path / "full" / "checkpoint_last.pt")
    b = load_checkpoint(tmp_path / "part" / "checkpoint_last.pt")
    for key in ("online", "target"):
        assert all(torch.equal(x, y) for x, y in zip(a[key], b[key], strict=True))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (dict(gamma=1.5), "gamma: 1.5 is outside the allowed range [0, 1]"),
        (dict(alpha=-1.0), "alpha: -1.0 is outside the allowed range (0, 1000]"),
        (dict(alpha=float("inf")), "alpha: expected a finite number, got inf"),
        (dict(buffer_size=10), "buffer_size: 10 is too small"),
        (dict(env="CartPole-v9"), "did you mean 'CartPole-v1'"),
        (dict(batch_size=0), "batch_size: 0 is outside the allowed range [1, 1e+12]"),
        (dict(loss="l1"), "loss: 'l1' is not one of"),
        (dict(hidden=()), "hidden: expected one or more widths"),
        (dict(env="gymnasium:CartPole-v1", start_box=(1, 1, 0.1, 1)), "CartPole-v1 (semigrad"),
        (dict(start_box=(1, 1, 1, 1)), "12 degrees"),
    ],
)
def test_bad_config_values(overrides, message):
    with pytest.raises(ConfigError) as info:
        DQNConfig(**overrides)
    assert message in str(info.value)


def test_exploring_starts_are_for_training_only_and_belong_to_the_preset_env(tmp_path,
                                                                            monkeypatch):
    """The preset's start box spreads the training envs' starts; the greedy evaluations run
    on the env's own starts; another env drops the preset's box unless one is given."""
    cfg = DQNConfig(**preset_fields("cartpole-explore", {"steps": 600, "eval_every": 300,
                                                 "eval_episodes": 3, "learning_starts": 100,
                                                 "hidden": (8,), "batch_size": 16,
                                                 "tensorboard": False}))
    assert cfg.start_box == CARTPOLE_START_BOX
    made, make = [], envs.make_agents

    def recording_make(env_id, num_envs, seeds, device, start_box=None):
        env = make(env_id, num_envs, seeds, device, start_box=start_box)
        made.append((num_envs, start_box, env.reset()))
        return env

    monkeypatch.setattr(envs, "make_agents", recording_make)
    train(cfg, tmp_path / "r", progress=False)
    training = [m for m in made if m[0] == cfg.num_envs]
    evaluations = [m for m in made if m[0] == cfg.eval_episodes]
    assert len(training) == 1 and len(evaluations) == 2
    assert training[0][1] == CARTPOLE_START_BOX and training[0][2].abs().amax() > 0.5
    for _, box, starts in evaluations:
        assert not box and starts.abs().amax() < 0.05  # CartPole-v1's own initial states
    assert preset_fields("cartpole-explore", {"env": "Acrobot-v1"})["start_box"] == ()
    assert preset_fields("cartpole-explore",
                         {"env": "CartPole-v1"})["start_box"] == CARTPOLE_START_BOX
    assert preset_fields("cartpole-explore", {"start_box": ()})["start_box"] == ()
    assert dqn.preset().start_box == ()  # the default trains from CartPole-v1's own starts


def test_cli_start_box_alone_turns_exploring_starts_off(tmp_path, capsys):
    flags = ["--steps", "200", "--eval-every", "200", "--eval-episodes", "2",
             "--learning-starts", "100", "--no-progress", "--no-tensorboard",
             "--preset", "cartpole-explore"]
    assert main(["train", "--run-dir", str(tmp_path / "own"), "--start-box", *flags]) == 0
    assert main(["train", "--run-dir", str(tmp_path / "preset"), *flags]) == 0
    capsys.readouterr()
    own = json.loads((tmp_path / "own" / "config.json").read_text())
    preset = json.loads((tmp_path / "preset" / "config.json").read_text())
    assert own["start_box"] == [] and preset["start_box"] == list(CARTPOLE_START_BOX)


def test_cli_bad_inputs_are_one_line_errors(tmp_path, capsys):
    cases = [
        (["--env", "Pendulum-v1"], "discrete action space"),
        (["--env", "CartPol-v1"], "did you mean 'CartPole-v1'"),
        (["--gamma", "2"], "gamma: 2.0 is outside the allowed range [0, 1]"),
    ]
    for i, (argv, message) in enumerate(cases):
        code = main(["train", "--run-dir", str(tmp_path / f"r{i}"), "--no-progress", *argv])
        err = capsys.readouterr().err
        assert code == 2 and message in err and "Traceback" not in err
        assert not (tmp_path / f"r{i}").exists()  # refused before any work


def test_resume_with_different_config_is_refused(tmp_path, capsys):
    run_dir = tmp_path / "r"
    argv = ["train", "--env", "TestChain-v0", "--steps", "1200", "--eval-every", "500",
            "--eval-episodes", "2", "--learning-starts", "100", "--hidden", "16",
            "--no-tensorboard", "--no-progress", "--device", "cpu"]
    cfg = DQNConfig(**{**CHAIN, "steps": 1200, "eval_every": 500, "eval_episodes": 2,
                       "learning_starts": 100, "hidden": (16,)})
    run_dir.mkdir()
    (run_dir / "config.json").write_text(json.dumps({"command": "train",
                                                     **to_dict(cfg)}))
    train(cfg, run_dir, progress=False, stop_after=600)
    assert main(["train", "--resume", str(run_dir), "--alpha", "0.5", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "config differs from the checkpoint's: alpha: 0.003 (checkpoint) vs 0.5 (given)" in err
    assert main(["train", "--resume", str(run_dir), "--no-progress"]) == 0
    assert json.loads((run_dir / "summary.json").read_text())["env_steps"] == 1200
    assert argv  # the same flags a user would pass on a fresh run


def test_corrupted_checkpoint_is_a_clear_error_and_left_alone(tmp_path, capsys):
    cfg = DQNConfig(seed=0, **{**CHAIN, "steps": 1200, "eval_every": 500})
    (tmp_path / "config.json").write_text(json.dumps({"command": "train", **to_dict(cfg)}))
    train(cfg, tmp_path, progress=False, stop_after=600)
    ckpt = tmp_path / "checkpoint_last.pt"
    data = ckpt.read_bytes()
    ckpt.write_bytes(data[: len(data) // 2])  # truncated mid-file
    before = sorted(p.name for p in tmp_path.iterdir())
    assert main(["train", "--resume", str(tmp_path), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "not a readable semigrad checkpoint" in err and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert ckpt.read_bytes() == data[: len(data) // 2]


def test_non_finite_loss_stops_training_and_keeps_last_good_checkpoint(tmp_path):
    cfg = DQNConfig(seed=0, **{**CHAIN, "env": "TestChainNaN-v0", "eval_every": 500})
    with pytest.raises(TrainingDiverged) as info:
        train(cfg, tmp_path, progress=False)
    message = str(info.value)
    assert "non-finite loss between env steps" in message
    first_nan = 400 * 4  # the env's NaN rewards start after 400 iterations of 4 envs
    env0, env1 = (int(x) for x in message.split("between env steps ")[1].split(" (")[0]
                  .split(" and "))
    assert env0 <= first_nan < env1 <= env0 + 250 + 4  # one log_every interval (+ a step)
    good = load_checkpoint(tmp_path / "checkpoint_last.pt")  # still loads
    assert good["counters"]["env_steps"] <= 1600  # from before the NaN rewards began
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["status"] == "diverged" and "non-finite" in summary["error"]


def test_train_eval_plot_commands_write_their_files(tmp_path, capsys):
    run_dir = tmp_path / "train"
    assert main(["train", "--algo", "dqn", "--env", "gymnasium:CartPole-v1", "--steps", "1000",
                 "--eval-every", "500", "--eval-episodes", "3", "--learning-starts", "200",
                 "--hidden", "16", "--seed", "1", "--run-dir", str(run_dir),
                 "--no-progress", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "semigrad train" in out and "env steps to solve" in out
    for name in ("config.json", "metrics.csv", "checkpoint_last.pt", "checkpoint_best.pt",
                 "curve.png", "summary.json"):
        assert (run_dir / name).exists(), name
    assert any((run_dir / "tb").iterdir())
    summary = json.loads((run_dir / "summary.json").read_text())
    for key in ("solved", "time_to_solve_s", "env_steps_to_solve", "final_eval_return",
                "best_eval_return", "env_steps", "gradient_steps", "wall_s"):
        assert key in summary
    assert summary["env_steps"] == 1000 and len(summary["eval_returns"]) == 2
    rows = read_metrics(run_dir)
    assert rows[-1]["step"] == 1000 and rows[-1]["eval_return"] == summary["final_eval_return"]

    gif = tmp_path / "agent.gif"
    assert main(["eval", str(run_dir), "--episodes", "3", "--gif", str(gif),
                 "--run-dir", str(tmp_path / "eval"), "--device", "cpu"]) == 0
    ev = json.loads((tmp_path / "eval" / "summary.json").read_text())
    assert len(ev["returns"]) == 3 and gif.read_bytes()[:3] == b"GIF"
    assert main(["plot", str(run_dir), str(run_dir), "--run-dir", str(tmp_path / "plot")]) == 0
    assert (tmp_path / "plot" / "curves.png").stat().st_size > 1000


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM])  # Ctrl-C, a scheduler's stop
def test_ctrl_c_saves_a_resumable_checkpoint_and_exits_cleanly(tmp_path, stop):
    run_dir = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-m", "semigrad", "train", "--run-dir", str(run_dir), "--no-progress",
         "--steps", "1000000", "--eval-every", "1000", "--eval-episodes", "2",
         "--hidden", "16", "--batch-size", "32", "--no-tensorboard", "--device", "cpu"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not (run_dir / "checkpoint_last.pt").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    proc.send_signal(stop)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "checkpoint saved" in out and "--resume" in out and "Traceback" not in err
    payload = load_checkpoint(run_dir / "checkpoint_last.pt")
    rows = read_metrics(run_dir)
    assert payload["counters"]["env_steps"] >= rows[-1]["step"] >= 1000
    assert not (run_dir / "summary.json").exists()  # unfinished: resumable


class _Stateless(ChainEnv):
    def state_dict(self):
        return None  # as an env that cannot save its state


envs.register("TestChainStateless-v0",
              lambda **kw: _Stateless(env_id="TestChainStateless-v0", **kw))


def test_env_without_saved_state_still_checkpoints_and_resumes_with_a_warning(tmp_path):
    cfg = DQNConfig(seed=0, **{**CHAIN, "env": "TestChainStateless-v0", "steps": 1200,
                               "eval_every": 400})
    part = train(cfg, tmp_path, progress=False, stop_after=600)
    assert part["status"] == "interrupted"
    assert load_checkpoint(tmp_path / "checkpoint_last.pt")["env"] is None
    with pytest.warns(UserWarning, match="cannot save its state"):
        done = train(cfg, tmp_path, progress=False, resume=True)
    assert done["status"] == "finished" and done["env_steps"] == 1200


def test_eval_of_a_directory_that_is_not_a_train_run_is_one_clear_error(tmp_path, capsys):
    assert main(["grad", "--run-dir", str(tmp_path / "g")]) == 0
    capsys.readouterr()
    code = main(["eval", str(tmp_path / "g"), "--run-dir", str(tmp_path / "e")])
    err = capsys.readouterr().err
    assert code == 2 and "a 'semigrad grad' run, not one `semigrad train` run" in err
    assert "Traceback" not in err and not (tmp_path / "e").exists()


# ----------------------------------------------------------------------------- one DQN


def _strip(rows):
    return [{k: v for k, v in r.items() if k not in ("wall_s", "train_s")} for r in rows]


@pytest.mark.parametrize(("env_id", "backend", "steps", "seeds", "extra"), [
    ("CartPole-v1", "stacked", 2000, [0, 1, 2], {}),
    ("TestChain-v0", "stacked", 1500, [0, 1, 2], {}),
    ("TestChain-v0", "vmap", 1500, [0, 1, 2], {}),
    # 3 actions and 5 agents: the output bias is 15 numbers, so a vectorised update of the
    # stacked tensors would take another rounding path than a single agent's 3 (see
    # optim.lean_step); Polyak targets and a decaying step size on top
    ("MountainCar-v0", "stacked", 3000, [0, 1, 2, 3, 4],
     {"target_update": "polyak", "alpha_end": 0.0, "hidden": (32, 32), "loss": "huber"}),
    # a convolutional network on the general path (one call per agent, not vmap)
    pytest.param("MinAtar/Breakout-v1", "vmap", 1000, [0, 1, 2],
                 {"network": "minatar", "num_envs": 1, "batch_size": 16,
                  "learning_starts": 200, "buffer_size": 1000},
                 marks=pytest.mark.skipif(importlib.util.find_spec("minatar") is None,
                                          reason="needs the pixels extra (make install)")),
])
def test_agent_k_of_a_seeds_run_is_the_single_run_with_seed_k(tmp_path, env_id, backend,
                                                               steps, seeds, extra):
    """The invariant that proves there is one DQN: on the CPU, agent k of ``--seeds`` has the
    single run's metrics, evaluations and final weights, bit for bit."""
    base = CHAIN if env_id == "TestChain-v0" else {"tensorboard": False, "device": "cpu"}
    cfg = dqn.preset(**{**base, "env": env_id, "steps": steps, "eval_every": 500,
                        "eval_episodes": 4, "log_every": 250, "q_backend": backend,
                        "n_step": 3, **extra})
    many = train(cfg, tmp_path / "many", seeds=seeds, progress=False)
    single = train(replace(cfg, seed=1), tmp_path / "single", progress=False)
    agent = json.loads((tmp_path / "many" / "seed1" / "summary.json").read_text())
    assert single["eval_returns"] == agent["eval_returns"]
    assert many["per_seed"][1]["final_eval_return"] == single["final_eval_return"]
    assert len(single["eval_returns"]) == steps // 500
    assert _strip(read_metrics(tmp_path / "single")) == \
        _strip(read_metrics(tmp_path / "many" / "seed1"))
    a = dqn.load_agent(tmp_path / "single", "last").net.state_dict()
    b = dqn.load_agent(tmp_path / "many" / "seed1", "last").net.state_dict()
    assert all(torch.equal(a[n], b[n]) for n in a)
    c = dqn.load_agent(tmp_path / "many" / "seed2", "last").net.state_dict()
    assert not all(torch.equal(a[n], c[n]) for n in a)  # another seed, another agent


def test_general_backend_learning_steps_equal_the_fast_path():
    """Learning steps of the vmap backend (any module, autograd) and the stacked fast path,
    same dueling MLP, same minibatch, gradients clipped: the same losses and gradients at every
    step, to float64 rounding (``backends.GRAD_ATOL``)."""
    from semigrad.buffers import Batch

    cfg = DQNConfig(**{**CHAIN, "hidden": (16, 8), "dueling": True, "max_grad_norm": 0.5})
    gen = torch.Generator().manual_seed(0)
    m = 3 * 24
    batch = Batch(torch.randn(m, 5, generator=gen), torch.randint(2, (m,), generator=gen),
                  torch.randn(m, generator=gen), torch.randn(m, 5, generator=gen),
                  torch.rand(m, generator=gen) < 0.2, torch.rand(m, generator=gen) < 0.1)
    assert type(dqn.init(cfg, [0], torch.device("cpu")).online).__name__ \
        == "StackedMLP"
    learn_on_both_backends(cfg, batch, [0, 1, 2], dqn.make_q_network(cfg, 5, 2))


@pytest.mark.parametrize("seeds", [None, [0, 1]])
def test_a_convolutional_network_trains_with_one_seed_or_many(tmp_path, seeds):
    """Any nn.Module factory (``network=module:function``) trains through the general path: a
    1-d convolutional Q-network learns the chain's optimal policy."""
    cfg = DQNConfig(**{**CHAIN, "network": "conv_net:conv_q_network", "alpha": 3e-3})
    train(cfg, tmp_path, seeds=seeds, progress=False)
    for d in ([tmp_path] if seeds is None else [tmp_path / f"seed{s}" for s in seeds]):
        agent = dqn.load_agent(d, "best")
        assert isinstance(agent.net[1], torch.nn.Conv1d)
        assert torch.equal(agent.act(torch.eye(5)[:4]), torch.ones(4, dtype=torch.int64))
        assert json.loads((d / "summary.json").read_text())["final_eval_return"] == 1.0


def test_paper_presets_explore_for_a_fixed_number_of_steps_whatever_steps_is():
    """MinAtar's 100k frames and Nature DQN's 1M steps of exploration survive ``steps=...``;
    an explicit ``epsilon_fraction`` wins; the classic presets keep their fraction."""
    assert dqn.EXPLORATION_STEPS["minatar-breakout"] == 100_000
    assert dqn.EXPLORATION_STEPS["atari"] == 1_000_000
    for name, explore in dqn.EXPLORATION_STEPS.items():
        assert dqn.preset(name) == dqn.PRESETS[name]
        for steps in (explore * 10, explore * 3, explore // 2):
            cfg = dqn.preset(name, steps=steps)
            assert cfg.epsilon_fraction == pytest.approx(min(1.0, explore / steps))
            end = min(explore, steps)
            assert epsilon_at(cfg, end) == pytest.approx(cfg.epsilon_end)
            assert epsilon_at(cfg, end // 2) > cfg.epsilon_end + 0.3
        assert dqn.preset(name, steps=explore, epsilon_fraction=0.5).epsilon_fraction == 0.5
    cartpole = dqn.PRESETS["cartpole"]
    assert dqn.preset("cartpole", steps=4 * cartpole.steps).epsilon_fraction == \
        cartpole.epsilon_fraction


def test_preset_call_and_load_agent_are_the_python_api(tmp_path):
    cfg = dqn.preset("cartpole-explore", alpha=5e-4, seed=3)
    assert cfg.start_box == CARTPOLE_START_BOX and cfg.alpha == 5e-4 and cfg.seed == 3
    assert dqn.preset(env="Acrobot-v1").start_box == ()
    with pytest.raises(ConfigError, match="preset: 'nope' is not one of acrobot, atari, cartpole"):
        dqn.preset("nope")
    with pytest.raises(ConfigError, match="network: cannot import 'no_such_module:f'"):
        DQNConfig(network="no_such_module:f")
    with pytest.raises(ConfigError, match="q_backend: 'stacked' runs network mlp"):
        DQNConfig(**{**CHAIN, "activation": "gelu", "q_backend": "stacked"})
    train(DQNConfig(**{**CHAIN, "steps": 600, "eval_every": 300}), tmp_path / "r",
          progress=False)
    for which in ("best", "last"):
        agent = dqn.load_agent(tmp_path / "r", which)
        assert agent.q_values(torch.eye(5)).shape == (5, 2)
        assert agent.act(torch.eye(5)).dtype == torch.int64


@pytest.mark.parametrize("fmt", ["semigrad-dqn-1", "semigrad-dqn-2"])
def test_old_checkpoint_format_is_a_clear_error(tmp_path, fmt):
    torch.save({"format": fmt, "online": {}}, tmp_path / "checkpoint_last.pt")
    with pytest.raises(ValueError, match=f"earlier semigrad .*{fmt}.*train again"):
        load_checkpoint(tmp_path / "checkpoint_last.pt")


def test_weights_an_earlier_version_wrote_still_load(tmp_path):
    """The best weights of a run written before the trainer (format semigrad-dqn-2-weights,
    the network under "online", config.json without "algo") load as they are."""
    import json

    train(DQNConfig(**{**CHAIN, "steps": 600, "eval_every": 300}), tmp_path, progress=False)
    new = torch.load(tmp_path / "checkpoint_best.pt", weights_only=True)
    assert new["format"] == "semigrad-weights-3" and new["algo"] == "dqn"
    torch.save({"format": "semigrad-dqn-2-weights", "config": new["config"],
                "online": new["weights"], "env_steps": new["env_steps"]},
               tmp_path / "checkpoint_best.pt")
    config = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({k: v for k, v in config.items()
                                                      if k != "algo"}))
    agent = dqn.load_agent(tmp_path, "best")
    for name, value in agent.net.state_dict().items():
        assert torch.equal(value, new["weights"][name])


def test_rerun_into_an_interrupted_folder_without_resume_is_refused(tmp_path, capsys):
    argv = ["train", "--env", "TestChain-v0", "--steps", "1200", "--eval-every", "400",
            "--learning-starts", "100", "--hidden", "16", "--no-tensorboard", "--no-progress",
            "--device", "cpu", "--run-dir", str(tmp_path)]
    train(dqn.config_from_dict({**CHAIN, "steps": 1200, "eval_every": 400,
                                "learning_starts": 100, "hidden": (16,)}), tmp_path,
          progress=False, stop_after=600)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "already holds a run" in err and "--resume" in err and "Traceback" not in err
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()} == before


def test_a_config_of_the_earlier_vocabulary_is_a_clear_error(tmp_path, capsys):
    """lr, total_steps and eps_* were renamed alpha, steps and epsilon_* (the names TD(0),
    SARSA and Baird use): an old run directory says so in one line."""
    (tmp_path / "config.json").write_text(json.dumps(
        {"command": "train", "env": "CartPole-v1", "lr": 1e-3, "total_steps": 1000,
         "eps_start": 1.0}))
    with pytest.raises(ValueError, match=r"earlier semigrad .*'eps_start', 'lr', 'total_steps'"
                                         r".*'epsilon_start', 'alpha', 'steps'"):
        dqn.load_agent(tmp_path)
    assert main(["train", "--resume", str(tmp_path), "--no-progress"]) == 2
    assert "earlier semigrad" in capsys.readouterr().err


def test_train_env_takes_its_preset_or_says_it_has_none(tmp_path, capsys):
    flags = ["--steps", "600", "--eval-every", "600", "--eval-episodes", "2",
             "--learning-starts", "100", "--no-progress", "--no-tensorboard", "--device", "cpu"]
    pytest.importorskip("minatar")
    assert main(["train", "--algo", "dqn", "--env", "MinAtar/Breakout-v1", "--buffer-size",
                 "1000", *flags,
                 "--run-dir", str(tmp_path / "m")]) == 0
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert config["network"] == "minatar" and config["batch_size"] == 32  # its preset's
    assert "no preset" not in capsys.readouterr().err
    assert main(["train", "--env", "TestChain-v0", *flags, "--run-dir", str(tmp_path / "c")]) == 0
    err = capsys.readouterr().err
    assert "no dqn preset for TestChain-v0: generic defaults" in err
    config = json.loads((tmp_path / "c" / "config.json").read_text())
    assert config["start_box"] == [] and config["hidden"] == list(DQNConfig().hidden)
