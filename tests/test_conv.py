"""Convolutional Q-networks on frames: the MinAtar and Nature networks, uint8 frames stored as
they are in the replay, and DQN with one seed or many on a pixel env."""

import json

import pytest
import torch

from backends import learn_on_both_backends
from chain_env import PixelChainEnv
from semigrad import envs
from semigrad.algos import dqn
from semigrad.algos.dqn import DQNConfig, train
from semigrad.config import ConfigError
from semigrad.nets import minatar_q_network, nature_q_network

envs.register("TestPixelChain-v0", lambda **kw: PixelChainEnv(**kw))

PIXEL_CHAIN = dict(env="TestPixelChain-v0", steps=4000, num_envs=4, buffer_size=4000,
                   batch_size=32, n_step=1, alpha=3e-3, gamma=0.9, network="minatar",
                   loss="mse", learning_starts=200, target_update_interval=50,
                   epsilon_fraction=0.5, eval_every=1000, eval_episodes=4, log_every=250,
                   tensorboard=False, device="cpu")


@pytest.mark.parametrize("dueling", [False, True])
def test_minatar_and_nature_networks_take_flat_uint8_frames(dueling):
    torch.manual_seed(0)
    net = minatar_q_network((4, 10, 10), 6, dueling)
    frames = (torch.rand(3, 400) < 0.2).to(torch.uint8)
    q = net(frames)
    assert q.shape == (3, 6) and q.dtype == torch.float32
    assert torch.equal(q, net(frames.float()))  # uint8 and float frames are the same input
    assert [m.out_channels for m in net.modules() if isinstance(m, torch.nn.Conv2d)] == [16]
    assert net.fc[0].out_features == 128 and net.fc[0].in_features == 16 * 8 * 8
    nature = nature_q_network((4, 84, 84), 18, dueling)
    frames = torch.randint(0, 256, (2, 4 * 84 * 84), dtype=torch.uint8)
    assert nature(frames).shape == (2, 18)
    out = nature.head(nature.fc(nature.torso(frames.view(2, 4, 84, 84).float() / 255.0)))
    if dueling:  # q = v + a - mean(a)
        out = out[:, :1] + out[:, 1:] - out[:, 1:].mean(dim=1, keepdim=True)
    torch.testing.assert_close(nature(frames), out)  # frames scaled by 1/255 inside
    assert nature.fc[0].in_features == 64 * 7 * 7 and nature.fc[0].out_features == 512


def test_the_replay_stores_frames_as_uint8():
    st = dqn.init(DQNConfig(**PIXEL_CHAIN), [0], torch.device("cpu"))
    assert st.replay.buffer.obs.dtype == torch.uint8
    assert st.replay.buffer.next_obs.dtype == torch.uint8
    assert type(st.online).__name__ == "StackedConvNet"  # the MinAtar network's fast path


@pytest.mark.parametrize("seeds", [None, [0, 1]])
def test_dqn_learns_the_chain_from_frames_with_one_seed_or_many(tmp_path, seeds):
    train(DQNConfig(**PIXEL_CHAIN), tmp_path, seeds=seeds, progress=False)
    for d in ([tmp_path] if seeds is None else [tmp_path / f"seed{s}" for s in seeds]):
        agent = dqn.load_agent(d, "last")
        frames = PixelChainEnv()._obs(torch.arange(4))
        assert torch.equal(agent.act(frames), torch.ones(4, dtype=torch.int64))
        assert json.loads((d / "summary.json").read_text())["final_eval_return"] == 1.0


def test_a_convolutional_network_on_flat_observations_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="minatar takes frames"):
        train(DQNConfig(env="CartPole-v1", network="minatar", steps=2000, device="cpu"),
              tmp_path, progress=False)


@pytest.mark.parametrize("dueling", [False, True])
def test_the_minatar_network_on_the_fast_path_is_each_agents_conv_net(dueling):
    """StackedConvNet (the convolution as a layer on patches, backward written out) against
    K ConvQNetworks run with autograd, in float64: outputs, every parameter's gradient, and
    the weights mapped back to the module's names."""
    from semigrad.nets import StackedConvNet, q_ensemble

    torch.manual_seed(0)
    nets = [minatar_q_network((3, 6, 7), 5, dueling).double() for _ in range(3)]
    stacked = q_ensemble(nets, torch.device("cpu"))
    assert isinstance(stacked, StackedConvNet)
    x = (torch.rand(3, 11, 3 * 6 * 7) < 0.3).to(torch.uint8)
    grad_out = torch.randn(3, 11, 5, dtype=torch.float64)
    out, cache = stacked.forward(x)
    stacked.backward(cache, grad_out)
    for k, net in enumerate(nets):
        ref = net(x[k])
        torch.testing.assert_close(out[k], ref, rtol=0, atol=1e-12)
        ref.backward(grad_out[k])
        copy = minatar_q_network((3, 6, 7), 5, dueling).double()
        copy.load_state_dict(stacked.agent_state_dict(k, copy))
        for (name, p), q in zip(net.named_parameters(), copy.parameters(), strict=True):
            assert torch.equal(p, q), name
        grads = StackedConvNet(
            [p.grad for p in stacked.params], dueling, stacked.patches, 1.0
        ).agent_state_dict(k, copy)  # the gradients in the module's layout
        for name, p in net.named_parameters():
            torch.testing.assert_close(grads[name], p.grad, rtol=0, atol=1e-12, msg=name)


@pytest.mark.parametrize("backend", ["stacked"])  # vmap's batched convolutions round
def test_agent_k_of_a_pixel_run_is_the_single_run(tmp_path, backend):  # differently per K
    from dataclasses import replace

    from semigrad.run import read_metrics

    cfg = DQNConfig(**{**PIXEL_CHAIN, "steps": 1500, "q_backend": backend})
    train(cfg, tmp_path / "many", seeds=[0, 1, 2], progress=False)
    train(replace(cfg, seed=1), tmp_path / "single", progress=False)
    strip = lambda rows: [{k: v for k, v in r.items() if k not in ("wall_s", "train_s")}  # noqa: E731
                          for r in rows]
    assert strip(read_metrics(tmp_path / "single")) == strip(read_metrics(tmp_path / "many" /
                                                                          "seed1"))
    a = dqn.load_agent(tmp_path / "single", "last").net.state_dict()
    b = dqn.load_agent(tmp_path / "many" / "seed1", "last").net.state_dict()
    assert all(torch.equal(a[n], b[n]) for n in a)


def test_learning_steps_of_the_general_path_equal_the_fast_path_for_the_minatar_net():
    """The general path (autograd through conv2d, agent by agent) and the fast path (the
    convolution as a layer on patches, backward written out) give the same losses and
    gradients at every learning step, to float64 rounding (``backends.GRAD_ATOL``)."""
    from semigrad.buffers import Batch

    cfg = DQNConfig(**PIXEL_CHAIN)
    gen = torch.Generator().manual_seed(0)
    m = 2 * 16
    frames = (torch.rand(2, m, 25, generator=gen) < 0.3).to(torch.uint8)
    batch = Batch(frames[0], torch.randint(2, (m,), generator=gen), torch.randn(m, generator=gen),
                  frames[1], torch.rand(m, generator=gen) < 0.2, torch.zeros(m, dtype=torch.bool))
    learn_on_both_backends(cfg, batch, [0, 1], dqn.make_q_network(cfg, 25, 2, (1, 5, 5)))


class _TiedConvNet(torch.nn.Module):
    """A convolution, a linear layer used twice (one tensor under two names), a buffer and a
    None buffer: what the general path's per-agent call must map to each agent's rows."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 2, 3)
        self.mid = torch.nn.Linear(8, 8)
        self.again = self.mid  # tied
        self.register_buffer("scale", torch.rand(8) + 0.5)
        self.register_buffer("unused", None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv(x.view(-1, 1, 4, 4)).flatten(1) * self.scale
        return self.again(torch.relu(self.mid(h)))


def test_the_general_paths_per_agent_call_is_functional_call_on_each_agents_rows():
    """ModuleEnsemble runs convolutional modules one agent at a time on a shell of the module;
    output and gradients equal torch.func.functional_call on agent k's rows, bit for bit."""
    from torch.func import functional_call

    from semigrad.nets import ModuleEnsemble

    nets = []
    for k in range(3):
        torch.manual_seed(k)
        nets.append(_TiedConvNet())
    ens = ModuleEnsemble.stack(nets, torch.device("cpu"))
    assert len(ens.params) == 4 and len(ens.buffers) == 1  # the tied weight is stacked once
    x = torch.randn(3, 5, 16)
    q, cache = ens.forward(x)
    grad_out = torch.randn_like(q)
    ens.backward(cache, grad_out)
    for k, net in enumerate(nets):
        rows = {n: p[k] for n, p in zip(ens._names, ens.params, strict=True)}
        rows.update({n: b[k] for n, b in zip(ens._buffer_names, ens.buffers, strict=True)})
        with torch.enable_grad():
            ref = functional_call(net, rows, (x[k],))
        assert torch.equal(q[k], ref)
        assert torch.equal(q[k], net(x[k]))  # the rows are agent k's own network
        grads = torch.autograd.grad(ref, [rows[n] for n in ens._names], grad_out[k])
        for p, g in zip(ens.params, grads, strict=True):
            assert torch.equal(p.grad[k], g)
