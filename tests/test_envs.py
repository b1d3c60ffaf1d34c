"""envs.make and the gymnasium adapter, checked against gymnasium run directly."""

import gymnasium as gym
import numpy as np
import pytest
import torch

from semigrad import envs


def test_same_step_reset_and_final_obs_match_gymnasium():
    num_envs, seed = 3, 7
    env = envs.make("gymnasium:CartPole-v1", num_envs=num_envs, device="cpu", seed=seed)
    refs = [gym.make("CartPole-v1") for _ in range(num_envs)]
    ref_obs = [r.reset(seed=seed + i)[0] for i, r in enumerate(refs)]
    obs = env.reset()
    assert obs.shape == (num_envs, 4) and obs.dtype == torch.float32
    np.testing.assert_array_equal(obs.numpy(), np.stack(ref_obs))
    rng = np.random.default_rng(0)
    ends = 0
    returns = [0.0] * num_envs
    for _ in range(300):
        actions = rng.integers(0, 2, num_envs)
        obs, reward, terminated, truncated, info = env.step(torch.as_tensor(actions))
        for i, ref in enumerate(refs):
            o, r, te, tr, _ = ref.step(int(actions[i]))
            returns[i] += r
            assert reward[i].item() == r
            assert (terminated[i].item(), truncated[i].item()) == (te, tr)
            np.testing.assert_array_equal(info["final_obs"][i].numpy(), o)
            if te or tr:
                ends += 1
                assert info["episode_return"][i].item() == returns[i]
                returns[i] = 0.0
                o, _ = ref.reset()  # gymnasium's autoreset continues the sub-env's own RNG
            else:
                assert np.isnan(info["episode_return"][i].item())
            np.testing.assert_array_equal(obs[i].numpy(), o)
    assert ends > 10


def test_truncation_is_reported_apart_from_termination():
    env = envs.make("gymnasium:CartPole-v1", num_envs=1, device="cpu", seed=0,
                    max_episode_steps=5)
    env.reset()
    flags = [env.step(torch.tensor([0, ][:1]))[2:4] for _ in range(5)]
    terminated, truncated = flags[-1]
    assert truncated.item() and not terminated.item()
    assert env.spec.max_episode_steps == 500  # the registered spec, not the override


def test_spec_describes_the_env():
    env = envs.make("CartPole-v1", num_envs=2, device="cpu")
    assert (env.obs_dim, env.num_actions) == (4, 2)
    assert env.spec.reward_threshold == 475.0 and env.spec.max_episode_steps == 500


def test_gymnasium_prefix_forces_gymnasium():
    env = envs.make("gymnasium:CartPole-v1", num_envs=1, device="cpu")
    assert env.spec.backend == "gymnasium"


def test_unknown_id_suggests_close_names():
    with pytest.raises(ValueError, match="did you mean 'CartPole-v1'"):
        envs.make("CartPole-v7")


def test_continuous_action_space_is_refused():
    with pytest.raises(ValueError, match="discrete action space"):
        envs.make("Pendulum-v1")


def test_bad_actions_and_num_envs():
    env = envs.make("CartPole-v1", num_envs=2, device="cpu", seed=0)
    env.reset()
    with pytest.raises(ValueError, match=r"int64 tensor of shape \(2,\)"):
        env.step(torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match="num_envs"):
        envs.make("CartPole-v1", num_envs=0)
