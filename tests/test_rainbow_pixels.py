"""The Rainbow family on frames (issue 26): ``heads.HeadNetwork`` with a convolutional torso
(the MinAtar and Nature networks) against ``ConvQNetwork`` with the same weights, noise only in
the fully connected layers, the MinAtar presets of c51, qrdqn and rainbow trained from the CLI
and from Python, agent k of a --seeds run = the single run with seed k, exact resume, and the
presets' paper protocols (exploration fixed in frames)."""

import json

import pytest
import torch

from semigrad import cli, trainer
from semigrad.algos import c51, dqn, presets, qrdqn, rainbow
from semigrad.config import ConfigError
from semigrad.heads import HeadNetwork
from semigrad.nets import minatar_q_network, nature_q_network
from semigrad.noisy import NoisyLinear
from semigrad.schedules import epsilon_at
from test_rainbow import assert_agent_k_is_single_run_k, assert_resume_is_exact

TINY = dict(steps=300, buffer_size=400, batch_size=8, learning_starts=100, eval_every=150,
            eval_episodes=1, log_every=50, train_freq=2, target_update_interval=20,
            tensorboard=False, device="cpu")


def _as_head_network(conv_net, conv: str, obs_shape, num_actions: int, dueling: bool):
    """A scalar ``HeadNetwork`` carrying ``conv_net``'s (a ``ConvQNetwork``'s) weights."""
    head = HeadNetwork(0, num_actions, "scalar", conv=conv, obs_shape=obs_shape,
                       dueling=dueling).double()
    src = conv_net.state_dict()
    state = {}
    for i, m in enumerate(conv_net.torso):
        if isinstance(m, torch.nn.Conv2d):
            state[f"convs.{i}.weight"], state[f"convs.{i}.bias"] = (src[f"torso.{i}.weight"],
                                                                    src[f"torso.{i}.bias"])
    state["torso.0.weight"], state["torso.0.bias"] = src["fc.0.weight"], src["fc.0.bias"]
    w, b = src["head.weight"], src["head.bias"]
    if dueling:  # ConvQNetwork's head: row 0 the value, rows 1.. the advantages
        state["value.weight"], state["value.bias"] = w[:1], b[:1]
        w, b = w[1:], b[1:]
    state["advantage.weight"], state["advantage.bias"] = w, b
    head.load_state_dict(state)
    return head


@pytest.mark.parametrize("dueling", [False, True])
def test_conv_head_network_is_the_conv_q_network(dueling):
    """With a scalar head and plain layers, ``HeadNetwork(conv=...)`` computes what
    ``ConvQNetwork`` does with the same weights: same frames in (uint8 and bool rows), the
    same Q-values out, for the MinAtar network and the Nature network (frames scaled)."""
    torch.manual_seed(0)
    for conv, build, shape, a in (("minatar", minatar_q_network, (4, 10, 10), 6),
                                  ("nature", nature_q_network, (4, 84, 84), 5)):
        net = build(shape, a, dueling).double()
        head = _as_head_network(net, conv, shape, a, dueling)
        frames = torch.randint(0, 256 if conv == "nature" else 2,
                               (7, shape[0] * shape[1] * shape[2]), dtype=torch.uint8)
        torch.testing.assert_close(head(frames), net(frames), rtol=1e-12, atol=1e-12)
        if conv == "minatar":
            torch.testing.assert_close(head(frames.bool()), net(frames.bool()),
                                       rtol=1e-12, atol=1e-12)


def test_conv_head_network_outputs_distributions_and_noise_only_in_the_dense_layers():
    torch.manual_seed(0)
    net = HeadNetwork(0, 6, "categorical", 11, dueling=True, noisy_sigma0=0.5, v_min=-5.0,
                      v_max=5.0, conv="minatar", obs_shape=(4, 10, 10))
    assert not any(isinstance(m, NoisyLinear) for m in net.convs.modules())
    assert sum(isinstance(m, NoisyLinear) for m in net.modules()) == 3  # hidden, A, V
    frames = torch.randint(0, 2, (3, 400), dtype=torch.uint8)
    values, probs = net.distribution(frames)
    assert values.shape == probs.shape == (3, 6, 11)
    torch.testing.assert_close(probs.sum(-1), torch.ones(3, 6))
    torch.testing.assert_close(net(frames), (values * probs).sum(-1))
    with pytest.raises(ValueError, match="obs_shape must be"):
        HeadNetwork(8, 2, "quantile", 5, conv="minatar")
    with pytest.raises(ValueError, match="conv must be"):
        HeadNetwork(8, 2, "quantile", 5, conv="resnet", obs_shape=(1, 2, 2))


@pytest.mark.parametrize("module", [c51, qrdqn, rainbow])
def test_minatar_presets_train_and_give_distributions(module, tmp_path):
    pytest.importorskip("minatar")
    cfg = module.preset("minatar-breakout", **TINY)
    total = module.train(cfg, tmp_path, seeds=[0, 1], progress=False)
    assert total["status"] == "finished" and len(total["per_seed"]) == 2
    agent = trainer.load_agent(tmp_path / "seed0", "last")
    frames = torch.zeros(3, 400, dtype=torch.uint8)
    values, probs = agent.distribution(frames)
    atoms = cfg.num_quantiles if module is qrdqn else cfg.num_atoms
    assert values.shape == probs.shape == (3, 6, atoms)  # MinAtar: all 6 actions
    torch.testing.assert_close(agent.q_values(frames), (values * probs).sum(-1))


def test_rainbow_on_minatar_agent_k_is_single_run_k_and_resumes(tmp_path):
    pytest.importorskip("minatar")
    cfg = rainbow.preset("minatar-breakout", **TINY)
    assert_agent_k_is_single_run_k(rainbow, cfg, tmp_path / "seeds", seeds=(0, 1, 2))
    assert_resume_is_exact(rainbow, cfg, tmp_path / "resume", stop_after=150)


def test_noisy_dqn_runs_the_minatar_network(tmp_path):
    pytest.importorskip("minatar")
    cfg = dqn.preset("minatar-breakout", noisy=True, epsilon_start=0.0, epsilon_end=0.0, **TINY)
    dqn.train(cfg, tmp_path, progress=False)
    agent = trainer.load_agent(tmp_path, "last")
    assert isinstance(agent.net, HeadNetwork) and agent.net.convs is not None
    assert agent.q_values(torch.zeros(2, 400, dtype=torch.uint8)).shape == (2, 6)


def test_cli_trains_rainbow_minatar_preset(tmp_path):
    pytest.importorskip("minatar")
    run = tmp_path / "run"
    code = cli.main(["train", "--algo", "rainbow", "--preset", "minatar-breakout", "--run-dir",
                     str(run), "--no-tensorboard", "--device", "cpu", "--steps", "300",
                     "--buffer-size", "400", "--batch-size", "8", "--learning-starts", "100",
                     "--eval-every", "150", "--eval-episodes", "1", "--log-every", "50"])
    assert code in (0, None)
    summary = json.loads((run / "summary.json").read_text())
    config = json.loads((run / "config.json").read_text())
    assert summary["env_steps"] == 300 and summary["algo"] == config["algo"] == "rainbow"
    assert config["network"] == "minatar" and config["noisy"] and config["prioritized"]


def test_family_presets_explore_for_their_papers_frames_whatever_steps_is():
    """MinAtar: 250k frames of epsilon for c51 and qrdqn (Dopamine's), none for Rainbow (its
    noise explores); Atari: 250k agent steps; an explicit ``epsilon_fraction`` wins."""
    for module in (c51, qrdqn):
        for name, explore in (("minatar-asterix", 250_000), ("atari", 250_000)):
            assert module.preset(name) == module.PRESETS[name]
            for steps in (explore * 4, explore // 2):
                cfg = module.preset(name, steps=steps)
                assert epsilon_at(cfg, min(explore, steps)) == pytest.approx(cfg.epsilon_end)
                assert epsilon_at(cfg, min(explore, steps) // 2) > cfg.epsilon_end + 0.3
            assert module.preset(name, epsilon_fraction=0.5).epsilon_fraction == 0.5
    for name in ("minatar-seaquest", "atari"):
        cfg = rainbow.preset(name, steps=1_000_000)
        assert cfg.noisy and epsilon_at(cfg, 0) == 0.0 == epsilon_at(cfg, 500_000)
    assert presets.exploration_steps(presets.DQN) == dqn.EXPLORATION_STEPS


def test_frame_networks_on_flat_observations_are_one_clear_error(tmp_path):
    for module in (c51, rainbow):
        cfg = module.preset("cartpole", network="minatar", **TINY)
        with pytest.raises(ConfigError, match="takes frames"):
            module.train(cfg, tmp_path / module.NAME, progress=False)
    with pytest.raises(ConfigError, match="built-in networks"):
        c51.C51Config(network="conv_net:conv_q_network")
    with pytest.raises(ConfigError, match="noisy"):
        dqn.DQNConfig(noisy=True, network="conv_net:conv_q_network")
