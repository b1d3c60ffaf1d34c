"""AtariEnv (ale-py behind the batched interface, DQN preprocessing): shapes, frame stack,
seeding, life loss in training mode, evaluation mode, bad inputs, saving, and equality with
gymnasium's AtariPreprocessing on the same seeds and actions."""

import io
import math
import subprocess
import sys

import numpy as np
import pytest
import torch

ale_py = pytest.importorskip("ale_py")
pytest.importorskip("cv2")

from semigrad.envs.atari import GAMES, AtariEnv, register_atari  # noqa: E402

FRAME = 84 * 84


def _actions(env, steps, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, env.num_actions, (steps, env.num_envs), generator=gen)


def _stack(obs):
    return obs.view(obs.shape[0], 4, 84, 84)


def test_shapes_dtypes_and_spec():
    env = AtariEnv("Pong", num_envs=2, device="cpu", seed=0)
    assert env.spec.id == "ALE/Pong-v5" and env.spec.backend == "ale"
    assert env.spec.obs_dim == 4 * FRAME and env.obs_shape == (4, 84, 84)
    assert env.obs_dtype == torch.uint8 and env.num_actions == 6
    assert env.spec.max_episode_steps == 27_000
    assert env.action_meanings[0] == "NOOP"
    obs = env.reset()
    assert obs.shape == (2, 4 * FRAME) and obs.dtype == torch.uint8 and obs.device.type == "cpu"
    obs, reward, term, trunc, info = env.step(torch.zeros(2, dtype=torch.int64))
    assert obs.shape == (2, 4 * FRAME) and obs.dtype == torch.uint8
    assert reward.shape == (2,) and reward.dtype == torch.float32
    assert term.dtype == torch.bool and trunc.dtype == torch.bool and term.shape == (2,)
    assert info["final_obs"].shape == (2, 4 * FRAME) and info["final_obs"].dtype == torch.uint8
    assert info["episode_return"].isnan().all() and (info["episode_length"] == 0).all()
    assert obs.max() > 0  # a real screen, not a blank one
    # the factory form of the id is accepted too
    assert AtariEnv("ALE/Breakout-v5", device="cpu", seed=0).spec.num_actions == 4


def test_stack_shifts_by_one_frame_and_new_games_repeat_their_first_frame():
    # a 60-frame limit: each game is cut after a few agent steps (fewer after long no-ops)
    env = AtariEnv("Breakout", num_envs=3, device="cpu", seed=1, max_episode_frames=60)
    assert env.spec.max_episode_steps == 15
    prev = _stack(env.reset())
    assert (prev == prev[:, :1]).all()  # the first frame repeated
    cuts = 0
    for a in _actions(env, 40):
        obs, _, term, trunc, info = env.step(a)
        obs, final = _stack(obs), _stack(info["final_obs"])
        assert torch.equal(final[:, :3], prev[:, 1:])  # the stack moved by one frame
        for i in range(3):
            if trunc[i]:
                cuts += 1
                assert not term[i] and info["episode_length"][i] > 0
                assert env.ales[i].getEpisodeFrameNumber() < 60  # a fresh game
                assert (obs[i] == obs[i, :1]).all() and not torch.equal(obs[i], final[i])
            else:
                assert torch.equal(obs[i], final[i])
        prev = obs
    assert cuts >= 6


def test_same_seed_same_observations():
    def run(seed):
        env = AtariEnv("Breakout", num_envs=2, device="cpu", seed=seed)
        out = [env.reset()]
        for a in _actions(env, 60):
            out.append(env.step(a)[0])
        return torch.stack(out)

    a, b = run(7), run(7)
    assert torch.equal(a, b)
    # sub-env i is seeded seed + i: sub-env 1 of seed 7 is sub-env 0 of seed 8 (same actions)
    env = AtariEnv("Breakout", num_envs=1, device="cpu", seed=8)
    first = env.reset()
    assert torch.equal(first[0], a[0, 1])


def test_matches_gymnasium_atari_preprocessing():
    """Frame, reward, flags and rendered screen of each step equal those of gymnasium's
    AtariPreprocessing on ``gymnasium.make("ALE/Breakout-v5", frameskip=1,
    repeat_action_probability=0.0)`` reset with seed + i (but for the last frame of a game
    that ends mid-skip)."""
    import gymnasium
    from gymnasium.wrappers import AtariPreprocessing

    gymnasium.register_envs(ale_py)
    n, seed = 2, 5
    env = AtariEnv("Breakout", num_envs=n, device="cpu", seed=seed, training=False)
    refs = [AtariPreprocessing(gymnasium.make("ALE/Breakout-v5", frameskip=1,
                                              repeat_action_probability=0.0,
                                              render_mode="rgb_array"),
                               noop_max=30, frame_skip=4, screen_size=84,
                               terminal_on_life_loss=False) for _ in range(n)]
    obs = _stack(env.reset())
    for i, ref in enumerate(refs):
        np.testing.assert_array_equal(obs[i, -1].numpy(), ref.reset(seed=seed + i)[0])
    ends = 0
    for a in _actions(env, 250):
        obs, reward, term, trunc, _ = env.step(a)
        obs = _stack(obs)
        for i, ref in enumerate(refs):
            frame, r, te, tr, _ = ref.step(int(a[i]))
            assert (r, te, tr) == (reward[i].item(), term[i].item(), trunc[i].item())
            if te or tr:
                ends += 1
                frame = ref.reset()[0]
            np.testing.assert_array_equal(obs[i, -1].numpy(), frame)
            # render (GIFs): the screen in colour, as gymnasium's env draws it
            np.testing.assert_array_equal(env.render(i), ref.render())
    assert ends >= 1  # a new game started (its no-op start drawn by the same generator)


def test_training_life_loss_is_terminal_but_the_game_goes_on():
    """Breakout (5 lives): training and evaluation envs of the same seed play the same game on
    the same actions; training ends an episode at each lost life without a reset, evaluation
    only at game over, and both report the game's unclipped score then."""
    train = AtariEnv("Breakout", device="cpu", seed=3, training=True)
    evalu = AtariEnv("Breakout", device="cpu", seed=3, training=False)
    prev = train.reset()
    assert torch.equal(prev, evalu.reset())
    assert train.ales[0].lives() == 5
    gen = torch.Generator().manual_seed(1)
    life_losses, score, steps, after_loss = 0, 0.0, 0, None
    for _ in range(2000):
        a = torch.randint(0, 4, (1,), generator=gen)
        obs, reward, term, trunc, info = train.step(a)
        e_obs, e_reward, e_term, e_trunc, e_info = evalu.step(a)
        steps += 1
        score += e_reward.item()
        assert torch.equal(obs, e_obs) and not trunc and not e_trunc
        assert reward.item() == math.copysign(1.0, e_reward.item()) * (e_reward.item() != 0)
        if after_loss is not None:  # the step after a life loss continues the same stack
            assert torch.equal(_stack(obs)[0, :3], _stack(after_loss)[0, 1:])
            after_loss = None
        if e_term:  # game over: both end it and report the whole game
            assert term and train.ales[0].getEpisodeFrameNumber() < 200  # a new game began
            for i in (info, e_info):
                assert i["episode_return"].item() == score
                assert i["episode_length"].item() == steps
            break
        if term:  # a life lost, the game not over
            life_losses += 1
            lives = train.ales[0].lives()
            assert lives == 5 - life_losses and lives > 0
            assert torch.equal(obs, info["final_obs"])  # no reset
            assert torch.equal(_stack(obs)[0, :3], _stack(prev)[0, 1:])
            assert info["episode_return"].isnan().all() and info["episode_length"].item() == 0
            after_loss = obs
        assert e_info["episode_return"].isnan().all()
        prev = obs
    else:
        pytest.fail("no game over in 2000 steps")
    assert life_losses == 4  # five lives: four life-loss terminals, then the game over


def test_evaluation_rewards_are_unclipped_training_rewards_clipped():
    # Space Invaders pays 5 to 30 points an alien
    train = AtariEnv("SpaceInvaders", device="cpu", seed=0, training=True)
    evalu = AtariEnv("SpaceInvaders", device="cpu", seed=0, training=False)
    train.reset(), evalu.reset()
    raw, clipped = [], []
    for a in _actions(train, 150):
        clipped.append(train.step(a)[1])
        raw.append(evalu.step(a)[1])
    raw, clipped = torch.cat(raw), torch.cat(clipped)
    assert raw.max() > 1 and torch.equal(clipped, raw.sign())


def test_bad_actions_raise_value_error():
    env = AtariEnv("Pong", num_envs=2, device="cpu", seed=0)
    with pytest.raises(ValueError, match="call reset"):
        env.step(torch.zeros(2, dtype=torch.int64))
    env.reset()
    for bad in (torch.zeros(2, dtype=torch.int32), torch.zeros(3, dtype=torch.int64),
                torch.tensor([0, 6]), torch.tensor([-1, 0]), [0, 0]):
        with pytest.raises(ValueError, match="ALE/Pong-v5.step: actions must be"):
            env.step(bad)


def test_bad_arguments_raise_value_error():
    with pytest.raises(ValueError, match="no game 'Pongg'; did you mean 'Pong'"):
        AtariEnv("Pongg", device="cpu")
    for kwargs in ({"num_envs": 0}, {"seed": -1}, {"frame_skip": 0}, {"noop_max": -1},
                   {"max_episode_frames": 0}, {"training": "yes"},
                   {"repeat_action_probability": 1.0}):
        with pytest.raises(ValueError):
            AtariEnv("Pong", device="cpu", **kwargs)


def test_missing_ale_py_is_one_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "ale_py", None)
    with pytest.raises(ValueError) as err:
        AtariEnv("Pong", device="cpu")
    assert str(err.value) == ("env 'ALE/Pong-v5' needs ale-py: pip install 'semigrad[pixels]' "
                              "(or: make install)")


def test_importing_the_module_does_not_import_ale_py():
    code = ("import sys, semigrad.envs.atari as a; a.register_atari(lambda i, f: None); "
            "assert 'ale_py' not in sys.modules and 'cv2' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_register_atari():
    made = {}
    register_atari(made.__setitem__)
    for game in ("Pong", "Breakout", "SpaceInvaders", "Seaquest", "Qbert"):
        assert f"ALE/{game}-v5" in made
    assert len(made) == len(GAMES)
    env = made["ALE/Qbert-v5"](num_envs=2, device="cpu", seed=0)
    assert isinstance(env, AtariEnv) and env.spec.id == "ALE/Qbert-v5" and env.training
    assert not made["ALE/Seaquest-v5"](num_envs=1, device="cpu", seed=0, training=False).training


def test_state_dict_resumes_exactly():
    def run(env, actions):
        out = []
        for a in actions:
            obs, reward, term, trunc, info = env.step(a)
            out.append(torch.cat([obs.float(), reward[:, None], term[:, None], trunc[:, None],
                                  info["episode_return"][:, None].nan_to_num(-1.0)], dim=1))
        return torch.stack(out)

    env = AtariEnv("Breakout", num_envs=2, device="cpu", seed=0, max_episode_frames=400)
    env.reset()
    actions = _actions(env, 160)
    run(env, actions[:40])
    buf = io.BytesIO()
    torch.save(env.state_dict(), buf)
    buf.seek(0)
    state = torch.load(buf, weights_only=True)
    expected = run(env, actions[40:])  # crosses game ends (and their no-op starts)
    other = AtariEnv("Breakout", num_envs=2, device="cpu", seed=123, max_episode_frames=400)
    other.load_state_dict(state)
    assert torch.equal(run(other, actions[40:]), expected)
    assert expected[:, :, -2].any()  # a truncation happened after the restore
    with pytest.raises(ValueError, match="saved env state"):
        AtariEnv("Breakout", num_envs=3, device="cpu", seed=0).load_state_dict(state)
    sticky = AtariEnv("Breakout", device="cpu", seed=0, repeat_action_probability=0.25)
    assert sticky.state_dict() is None
