"""envs.make and the gymnasium adapter, checked against gymnasium run directly."""

import importlib
import sys

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


# gymnasium warns about the two deliberately broken envs below; that is expected
@pytest.mark.filterwarnings("ignore:.*(render_mode|render fps|RGB-array rendering).*:UserWarning")
def test_gymnasium_envs_draw_only_when_made_to():
    """``render=True`` makes gymnasium's envs with ``render_mode="rgb_array"``: sub-env i's
    picture is then that of gymnasium's env run on its own with sub-env i's seed and actions
    (pixel for pixel: the same renderer on the same state); without it ``render`` says how to
    get one."""
    env = envs.make("gymnasium:CartPole-v1", num_envs=2, device="cpu", seed=3, render=True)
    refs = [gym.make("CartPole-v1", render_mode="rgb_array") for _ in range(2)]
    env.reset()
    for i, ref in enumerate(refs):
        ref.reset(seed=3 + i)
    for _ in range(4):  # the two carts pushed apart, the poles falling opposite ways
        env.step(torch.tensor([0, 1]))
        for i, ref in enumerate(refs):
            ref.step(i)
    pictures = [env.render(i) for i in range(2)]
    for picture, ref in zip(pictures, refs, strict=True):
        np.testing.assert_array_equal(picture, ref.render())
    assert not np.array_equal(*pictures)  # so a picture of the wrong sub-env fails
    assert pictures[1].shape == (400, 600, 3) and env.render_fps == 50
    plain = envs.make("gymnasium:CartPole-v1", num_envs=1, device="cpu")
    with pytest.raises(ValueError, match=r"render=True"):
        plain.render(0)
    # an env that takes no render_mode: one clear line
    with pytest.raises(ValueError, match=r"cannot draw itself.*render_mode"):
        envs.make("corridor_env:Corridor-v0", num_envs=1, device="cpu", render=True)

    class Blind(gym.Env):  # takes a render_mode, draws nothing
        metadata = {"render_modes": ["rgb_array"]}
        observation_space = gym.spaces.Box(0.0, 1.0, (2,), dtype=np.float32)
        action_space = gym.spaces.Discrete(2)

        def __init__(self, render_mode=None):
            self.render_mode = render_mode

        def reset(self, *, seed=None, options=None):
            return np.zeros(2, dtype=np.float32), {}

        def step(self, action):
            return np.zeros(2, dtype=np.float32), 0.0, True, False, {}

        def render(self):
            return None

    gym.register("SemigradTestBlind-v0", entry_point=Blind, max_episode_steps=5)
    blind = envs.make("SemigradTestBlind-v0", num_envs=1, device="cpu", render=True)
    blind.reset()
    with pytest.raises(ValueError, match=r"render\(\) gave NoneType, not an RGB picture"):
        blind.render(0)


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


def test_continuous_action_message_recommends_lunar_lander_with_its_extra():
    with pytest.raises(ValueError, match=r"LunarLander-v3 with semigrad\[box2d\]"):
        envs.make("Pendulum-v1")


# ----------------------------------------------------------------- module.path:ID (your own env)


def test_module_id_imports_the_module_and_makes_its_env():
    env = envs.make("corridor_env:Corridor-v0", num_envs=2, device="cpu", seed=0)
    assert env.spec.backend == "gymnasium" and env.spec.id == "corridor_env:Corridor-v0"
    assert (env.obs_dim, env.num_actions) == (10, 2)
    assert (env.spec.reward_threshold, env.spec.max_episode_steps) == (-9.0, 50)
    obs = env.reset()
    assert obs[:, 0].tolist() == [1.0, 1.0]
    right = torch.ones(2, dtype=torch.int64)
    for _ in range(8):
        _, reward, terminated, _, _ = env.step(right)
        assert reward.tolist() == [-1.0, -1.0] and not terminated.any()
    obs, _, terminated, truncated, info = env.step(right)
    assert terminated.all() and not truncated.any()
    assert info["episode_return"].tolist() == [-9.0, -9.0] and info["final_obs"][:, 9].all()
    assert obs[:, 0].tolist() == [1.0, 1.0]  # reset in the same step
    assert env.state_dict() is not None  # the position lives in `state`: resumes are exact
    forced = envs.make("gymnasium:corridor_env:Corridor-v0", num_envs=1, device="cpu")
    assert forced.spec.id == "corridor_env:Corridor-v0"


def _one_line_error(env_id: str) -> str:
    with pytest.raises(ValueError) as caught:
        envs.check_env_id(env_id)
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_module_id_whose_import_fails_is_one_line(tmp_path, monkeypatch):
    assert _one_line_error("no_such_pkg.envs:MyEnv-v0") == (
        "env: cannot import module 'no_such_pkg.envs' for 'no_such_pkg.envs:MyEnv-v0' "
        "(ModuleNotFoundError: No module named 'no_such_pkg')")
    (tmp_path / "broken_env_module.py").write_text("raise RuntimeError('no\\nregistration')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "broken_env_module", raising=False)
    assert _one_line_error("broken_env_module:Broken-v0") == (
        "env: cannot import module 'broken_env_module' for 'broken_env_module:Broken-v0' "
        "(RuntimeError: no registration)")
    with pytest.raises(ValueError, match="expected 'ID' or 'module.path:ID'"):
        envs.make("a:b:Corridor-v0")


def test_unknown_id_in_a_good_module_is_one_line_with_suggestions():
    # (other suggestions may follow, depending on what else registered ids with gymnasium)
    assert _one_line_error("corridor_env:Corridor-v9").startswith(
        "env: unknown environment id 'corridor_env:Corridor-v9' (importing 'corridor_env' did "
        "not register 'Corridor-v9'); did you mean 'Corridor-v0'")


def test_module_id_is_found_in_the_current_directory(tmp_path, monkeypatch):
    """As with ``python -m``: the ``semigrad`` console script has no current directory on
    sys.path, yet ``--env examples.custom_env:Corridor-v0`` works from the repository root."""
    (tmp_path / "cwd_corridor_env.py").write_text(
        "import gymnasium as gym\nfrom corridor_env import Corridor\n"
        "gym.register('CwdCorridor-v0', entry_point=Corridor, max_episode_steps=5)\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", ".", str(tmp_path))])
    importlib.invalidate_caches()
    try:
        env = envs.make("cwd_corridor_env:CwdCorridor-v0", device="cpu")
        assert env.spec.max_episode_steps == 5 and str(tmp_path) in sys.path
    finally:
        sys.modules.pop("cwd_corridor_env", None)
        gym.registry.pop("CwdCorridor-v0", None)


def test_cli_trains_on_a_module_id_and_refuses_a_bad_module_in_one_line(tmp_path, capsys):
    from semigrad.cli import main

    common = ["--steps", "600", "--eval-every", "300", "--learning-starts", "100",
              "--no-progress", "--no-tensorboard", "--device", "cpu"]
    assert main(["train", "--env", "corridor_env:Corridor-v0", *common,
                 "--run-dir", str(tmp_path / "r")]) == 0
    assert (tmp_path / "r" / "summary.json").exists()
    capsys.readouterr()
    assert main(["train", "--env", "no_such_pkg.envs:MyEnv-v0", *common,
                 "--run-dir", str(tmp_path / "bad")]) == 2
    err = capsys.readouterr().err
    assert err == ("semigrad train: error: env: cannot import module 'no_such_pkg.envs' for "
                   "'no_such_pkg.envs:MyEnv-v0' (ModuleNotFoundError: No module named "
                   "'no_such_pkg')\n")
    assert not (tmp_path / "bad").exists()


# ----------------------------------------------------------------- Box2D (semigrad[box2d])


def test_lunar_lander_matches_gymnasium():
    pytest.importorskip("Box2D", reason="LunarLander-v3 needs the box2d extra (make install)")
    num_envs, seed = 2, 11
    env = envs.make("LunarLander-v3", num_envs=num_envs, device="cpu", seed=seed)
    assert (env.obs_dim, env.num_actions) == (8, 4) and env.spec.reward_threshold == 200
    refs = [gym.make("LunarLander-v3") for _ in range(num_envs)]
    ref_obs = [r.reset(seed=seed + i)[0] for i, r in enumerate(refs)]
    np.testing.assert_array_equal(env.reset().numpy(), np.stack(ref_obs))
    rng = np.random.default_rng(1)
    ends = 0
    for _ in range(300):
        actions = rng.integers(0, 4, num_envs)
        obs, reward, terminated, truncated, info = env.step(torch.as_tensor(actions))
        for i, ref in enumerate(refs):
            o, r, te, tr, _ = ref.step(int(actions[i]))
            assert reward[i].item() == np.float32(r)  # semigrad's rewards are float32
            assert (terminated[i].item(), truncated[i].item()) == (te, tr)
            np.testing.assert_array_equal(info["final_obs"][i].numpy(), o)
            if te or tr:
                ends += 1
                o, _ = ref.reset()
            np.testing.assert_array_equal(obs[i].numpy(), o)
    assert ends >= 2
    env.close()


def test_missing_box2d_is_one_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "Box2D", None)  # `import Box2D` fails as if not installed
    for name in [m for m in sys.modules if m.startswith("gymnasium.envs.box2d")]:
        monkeypatch.delitem(sys.modules, name)  # so that gymnasium imports them again
    with pytest.raises(ValueError) as caught:
        envs.make("LunarLander-v3", device="cpu")
    assert str(caught.value) == ("env 'LunarLander-v3' needs Box2D: pip install "
                                 "'semigrad[box2d]' (or: make install)")
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_missing_dependency_message():
    from gymnasium.error import DependencyNotInstalled

    from semigrad.envs.gym_vector import missing_dependency_message

    try:
        try:
            raise ModuleNotFoundError("No module named 'Box2D'", name="Box2D")
        except ImportError as err:
            raise DependencyNotInstalled("Box2D is not installed") from err
    except DependencyNotInstalled as err:
        assert missing_dependency_message("BipedalWalker-v3", err) == (
            "env 'BipedalWalker-v3' needs Box2D: pip install 'semigrad[box2d]' (or: make install)")
    other = DependencyNotInstalled("MuJoCo is not installed,\n run `pip install mujoco`")
    assert missing_dependency_message("Ant-v5", other) == (
        "env 'Ant-v5' needs a package that is not installed: MuJoCo is not installed, run "
        "`pip install mujoco`")
    assert missing_dependency_message("X-v0", RuntimeError("boom")) is None
