"""Presets as data, one section per algorithm: each preset names the config fields it sets
(the rest keep their defaults). This file is their one home; `semigrad train --help` lists
them and ``PRESETS`` of ``semigrad.algos.dqn`` / ``pqn`` builds the configs. What was measured
to choose them, and what else was tried, is in docs/presets.md (classic control),
docs/pixels.md (MinAtar, Atari) and docs/pqn.md.
"""

from __future__ import annotations

from typing import Any

# Exploring starts for CartPole-v1's training episodes: the whole track, the pole within its
# 12 degrees, and velocities a little past what a random policy reaches.
CARTPOLE_START_BOX = (2.4, 2.5, 0.2, 2.5)

# The MinAtar paper's DQN protocol (Young & Tian 2019, section 4): a replay of 100k
# transitions, minibatches of 32, one update per frame, a target copy every 1,000 updates,
# epsilon 1 -> 0.1 over the first 100k frames after 5,000 frames of random play, the Huber
# loss, gamma 0.99, one-step Q-learning targets, 5M frames; Adam (semigrad's optimizer)
# instead of RMSProp, at 2.5e-4.
_MINATAR = dict(network="minatar", num_envs=1, steps=5_000_000, buffer_size=100_000,
                batch_size=32, alpha=2.5e-4, gamma=0.99, n_step=1, double=False,
                loss="huber", max_grad_norm=0.0, target_update_interval=1_000,
                epsilon_start=1.0, epsilon_end=0.1, epsilon_fraction=100_000 / 5_000_000,
                learning_starts=5_000, eval_every=100_000, eval_episodes=30, log_every=10_000)
# Breakout takes 3-step returns and Double DQN targets, where they measured better at 1M
# frames; the other games keep the paper's learner (docs/pixels.md has the measurements).
_MINATAR_LEARNER = {"breakout": dict(n_step=3, double=True)}
MINATAR_GAMES = {"asterix": "Asterix", "breakout": "Breakout", "freeway": "Freeway",
                 "seaquest": "Seaquest", "space-invaders": "SpaceInvaders"}

# Nature DQN (Mnih et al. 2015, Extended Data Table 1) on Atari: a 1M-frame replay (each
# frame stored once), minibatches of 32, an update every 4 agent steps, a target copy every
# 10,000 agent steps (2,500 updates), epsilon 1 -> 0.1 over the first 1M steps after 50,000
# steps of random play, the Huber loss, gamma 0.99, 10M agent steps (40M frames); Adam at
# 1e-4 instead of RMSProp (as Dopamine and CleanRL do).
_ATARI = dict(env="ALE/Pong-v5", network="nature", num_envs=1, steps=10_000_000,
              buffer_size=1_000_000, batch_size=32, alpha=1e-4, gamma=0.99, n_step=1,
              double=False, loss="huber", max_grad_norm=0.0, train_freq=4,
              target_update_interval=2_500, epsilon_start=1.0, epsilon_end=0.1,
              epsilon_fraction=0.1, learning_starts=50_000, eval_every=250_000,
              eval_episodes=10, log_every=10_000)

# Classic control, each from the env's own initial states as the peers train; what was
# measured to choose them, and what else was tried, is in docs/presets.md.
_CLASSIC = {
    # CartPole-v1: a 128x128 network, batch 256, 2 gradient steps per iteration, the Huber loss
    # and a step size decaying to 0
    "cartpole": dict(hidden=(128, 128), batch_size=256, gradient_steps=2, loss="huber",
                     alpha_end=0.0),
    # the RL Zoo's Acrobot settings in semigrad's terms (one gradient step per env step, a
    # target copy every 250), with 3-step returns, a decaying step size and dueling heads
    "acrobot": dict(env="Acrobot-v1", steps=100_000, hidden=(256, 256), alpha=6.3e-4,
                    alpha_end=0.0, learning_starts=0, epsilon_fraction=0.12,
                    epsilon_end=0.01, n_step=3, gradient_steps=4,
                    target_update_interval=250, dueling=True, eval_every=5_000),
    # the RL Zoo's MountainCar settings with 5-step returns, no Double DQN, the Huber loss, a
    # decaying step size and a 128x128 dueling network
    "mountaincar": dict(env="MountainCar-v0", steps=120_000, num_envs=1, buffer_size=10_000,
                        hidden=(128, 128), dueling=True, alpha=4e-3, alpha_end=0.0, gamma=0.98,
                        double=False, loss="huber", target_update_interval=300,
                        train_freq=16, gradient_steps=8, epsilon_fraction=0.2,
                        epsilon_end=0.07, eval_every=5_000),
    # the RL Zoo's LunarLander settings (its Acrobot ones) translated as for Acrobot: one
    # gradient step per 4 env steps, 3-step returns, a decaying step size
    "lunarlander": dict(env="LunarLander-v3", steps=300_000, hidden=(256, 256), alpha=6.3e-4,
                        alpha_end=0.0, learning_starts=0, epsilon_fraction=0.12,
                        epsilon_end=0.01, n_step=3, eval_every=5_000),
}

# name -> the fields it sets
DQN: dict[str, dict[str, Any]] = {
    **_CLASSIC,
    # CartPole-v1 with exploring starts (training only; evaluation on the env's own starts):
    # the 64x64 learner of DQNConfig(), on work the peers do not do
    "cartpole-explore": dict(start_box=CARTPOLE_START_BOX),
    **{f"minatar-{name}": dict(env=f"MinAtar/{game}-v1",
                               **{**_MINATAR, **_MINATAR_LEARNER.get(name, {})})
       for name, game in MINATAR_GAMES.items()},
    "atari": _ATARI,  # any ALE/<Game>-v5 with --env
}
DQN_DEFAULT = "cartpole"

# ----------------------------------------------------------------------------- PQN
# Presets of ``semigrad.algos.pqn`` (``PQNConfig`` fields); what was measured to choose them is
# in docs/pqn.md.
PQN: dict[str, dict[str, Any]] = {
    # CartPole-v1 from the env's own starts: a 64x64 MLP with LayerNorm, 64 envs x 32 steps,
    # Q(0.9) returns of rewards scaled by 0.1 (as purejaxql's CartPole config), 2 epochs of 8
    # minibatches, Adam at a constant 1e-3, epsilon 1 -> 0.01 over the first 60k env steps
    "cartpole": dict(env="CartPole-v1", steps=150_000, num_envs=64, rollout=32, epochs=2,
                     minibatches=8, alpha=1e-3, q_lambda=0.9, reward_scale=0.1,
                     hidden=(64, 64), layer_norm=True, epsilon_end=0.01,
                     epsilon_fraction=0.4, eval_every=4_096),
    # Classic control, from each env's own starts (benchmarks/pqn_classic.py, docs/pqn.md):
    # the CartPole shape with 128x128 (64x64 for MountainCar), more epochs, alpha decaying
    # to 0; LunarLander meets its goal (9/10 final >= 200), Acrobot (5/10 >= -80) and
    # MountainCar (7/10 >= -110) not yet
    "acrobot": dict(env="Acrobot-v1", steps=400_000, num_envs=64, rollout=32, epochs=4,
                    minibatches=8, alpha=1e-3, alpha_end=0.0, q_lambda=0.9, reward_scale=0.1,
                    hidden=(128, 128), layer_norm=True, epsilon_end=0.01,
                    epsilon_fraction=0.3, eval_every=8_192),
    "lunarlander": dict(env="LunarLander-v3", steps=400_000, num_envs=64, rollout=32,
                        epochs=4, minibatches=8, alpha=1e-3, alpha_end=0.0, q_lambda=0.9,
                        reward_scale=0.1, hidden=(128, 128), layer_norm=True,
                        epsilon_end=0.01, epsilon_fraction=0.2, eval_every=32_768),
    "mountaincar": dict(env="MountainCar-v0", steps=600_000, num_envs=64, rollout=32,
                        epochs=8, minibatches=16, alpha=3e-3, alpha_end=0.0, q_lambda=0.9,
                        reward_scale=0.1, hidden=(64, 64), layer_norm=True, epsilon_end=0.01,
                        epsilon_fraction=0.3, eval_every=8_192),
    # MinAtar, each game: purejaxql's MinAtar configuration (config/alg/pqn_minatar.yaml,
    # Gallici et al. 2025): the MinAtar network with LayerNorm, 128 envs x 32 steps, Q(0.65)
    # returns, 2 epochs of 32 minibatches, Adam 5e-4 decaying linearly to 0, gradient-norm
    # clipping at 10, epsilon 1 -> 0.05 over the first 10% of the run; 5M frames, the MinAtar
    # paper's budget (purejaxql trains 10M)
    **{f"minatar-{name}": dict(env=f"MinAtar/{game}-v1", network="minatar", layer_norm=True,
                               steps=5_000_000, num_envs=128, rollout=32, epochs=2,
                               minibatches=32, alpha=5e-4, alpha_end=0.0, q_lambda=0.65,
                               epsilon_end=0.05, epsilon_fraction=0.1, eval_every=250_000,
                               eval_episodes=30, log_every=32_768)
       for name, game in MINATAR_GAMES.items()},
    # Atari (any ALE/<Game>-v5 with --env): purejaxql's Atari configuration
    # (config/alg/pqn_atari.yaml, Gallici et al. 2025, "Simplifying Deep Temporal Difference
    # Learning"): the Nature network with LayerNorm, 128 envs x 32 steps, Q(0.65) returns,
    # gamma 0.99, 2 epochs of 32 minibatches, RAdam at a constant 2.5e-4 (LR_LINEAR_DECAY
    # False), epsilon 1 -> 0.001 over the first 10% of the run, 5e7 env steps summed over
    # the envs (TOTAL_TIMESTEPS: 200M frames), evaluation on 8 greedy games (TEST_ENVS);
    # its env (envpool): life loss terminal, clipped rewards, 30 no-op starts, frame skip 4,
    # no sticky actions, as semigrad's AtariEnv trains. MAX_GRAD_NORM 10 clips the gradient
    # of 0.5 * mean squared error; semigrad's mse is the mean squared error, twice that
    # gradient, so 20 here clips the same updates (RAdam's step is otherwise scale-free)
    "atari": dict(env="ALE/Pong-v5", network="nature", layer_norm=True, steps=50_000_000,
                  num_envs=128, rollout=32, epochs=2, minibatches=32, alpha=2.5e-4,
                  optimizer="radam", q_lambda=0.65, gamma=0.99, max_grad_norm=20.0,
                  epsilon_start=1.0, epsilon_end=0.001, epsilon_fraction=0.1,
                  eval_every=1_048_576, eval_episodes=8, log_every=65_536),
}
PQN_DEFAULT = "cartpole"


# ----------------------------------------------------------------------------- defaults per env
# The algorithm ``semigrad train --env ID`` runs when neither --algo nor --preset is given: of
# DQN and PQN, the one that met the env's goals (issue 25), and the faster of the two where
# both did (docs/pqn.md, "Which algorithm by default", has the numbers). Other envs: DQN.
DEFAULT_ALGORITHM: dict[str, str] = {
    "CartPole-v1": "pqn",
    "LunarLander-v3": "pqn",
    **{f"MinAtar/{game}-v1": "pqn" for game in MINATAR_GAMES.values()},
}


def default_algorithm(env_id: str) -> str:
    """The algorithm that trains ``env_id`` by default (``gymnasium:`` prefix ignored)."""
    return DEFAULT_ALGORITHM.get(env_id.removeprefix("gymnasium:"), "dqn")


# ----------------------------------------------------------------------------- lookups


def fields_of(presets: dict[str, Any], name: str, overrides: dict[str, Any]) -> dict[str, Any]:
    """The fields of preset ``name`` (a config in ``presets``) with ``overrides`` on top."""
    from semigrad.config import ConfigError, to_dict

    if name not in presets:
        raise ConfigError(f"preset: {name!r} is not one of {', '.join(sorted(presets))}")
    return {**to_dict(presets[name]), **overrides}


def for_env(presets: dict[str, Any], env_id: str) -> str | None:
    """The name of the preset tuned for ``env_id`` (``gymnasium:`` prefix ignored), or None."""
    plain = env_id.removeprefix("gymnasium:")
    return next((name for name, cfg in presets.items() if cfg.env == plain), None)


# ----------------------------------------------------------------------------- the Rainbow family
# Presets of ``semigrad.algos.c51``, ``qrdqn`` and ``rainbow``; what was measured to choose
# them is in docs/rainbow.md. CartPole-v1 from the env's own starts, on DQN's cartpole learner
# (128x128, batch 256, 2 gradient steps per iteration, a step size decaying to 0, 5-step
# Double targets); returns of CartPole lie in [0, 1 / (1 - 0.99)] = [0, 100], C51's support.
_FAMILY_CARTPOLE = dict(hidden=(128, 128), batch_size=256, gradient_steps=2, alpha_end=0.0)
# LunarLander-v3: DQN's lunarlander learner (the RL Zoo's settings with 3-step returns and a
# step size decaying to 0); its returns lie within about [-300, 300] (a crash costs 100).
_FAMILY_LUNARLANDER = {**_CLASSIC["lunarlander"], "v_min": -300.0, "v_max": 300.0}
# MinAtar, each game, as "Revisiting Rainbow" (Obando-Ceron & Castro 2021) trains the family
# there (their Dopamine configs, Configs/{rainbow,quantile}_<game>.gin): the MinAtar network,
# a replay of 100k transitions, minibatches of 32, an update every 4 frames, a target copy
# every 1,000 frames (250 updates), 1,000 frames of random play, Adam at 1e-4 (their Adam
# epsilon 3.125e-4 is not a semigrad option: torch's 1e-8), gamma 0.99, epsilon 1 -> 0.01 over
# the first 250k frames (Dopamine's default) where noise does not explore, 51 atoms on
# [-100, 100], no gradient clipping; 5M frames as the MinAtar paper's budget (they train 10M).
_FAMILY_MINATAR = dict(network="minatar", num_envs=1, steps=5_000_000, buffer_size=100_000,
                       batch_size=32, alpha=1e-4, gamma=0.99, max_grad_norm=0.0, train_freq=4,
                       target_update_interval=250, learning_starts=1_000, epsilon_start=1.0,
                       epsilon_end=0.01, epsilon_fraction=250_000 / 5_000_000,
                       eval_every=100_000, eval_episodes=30, log_every=10_000)
# Atari: the Nature protocol of DQN's atari preset (a 1M-frame replay stored once per frame,
# an update every 4 agent steps, 10M agent steps) with the family's papers' settings: C51
# (Bellemare et al. 2017) and QR-DQN (Dabney et al. 2018) a target copy every 8,000 agent
# steps (2,000 updates), 20,000 steps of random play, epsilon 1 -> 0.01 over 250k steps, Adam
# at 2.5e-4 (C51) and 5e-5 (QR-DQN, 200 quantiles), one-step targets; Rainbow (Hessel et al.
# 2018, Table 1) Adam at 6.25e-5, 3-step Double targets, a target copy every 8,000 steps,
# 20,000 steps of random play, noise instead of epsilon; the support [-10, 10] of clipped
# rewards.
_FAMILY_ATARI = {**_ATARI, "target_update_interval": 2_000, "learning_starts": 20_000,
                 "epsilon_end": 0.01, "epsilon_fraction": 250_000 / 10_000_000}
C51: dict[str, dict[str, Any]] = {
    "cartpole": dict(**_FAMILY_CARTPOLE, num_atoms=51, v_min=0.0, v_max=100.0),
    "lunarlander": dict(**_FAMILY_LUNARLANDER, num_atoms=51),
    **{f"minatar-{name}": dict(env=f"MinAtar/{game}-v1", **_FAMILY_MINATAR, num_atoms=51,
                               v_min=-100.0, v_max=100.0, n_step=1, double=False)
       for name, game in MINATAR_GAMES.items()},
    "atari": {**_FAMILY_ATARI, "alpha": 2.5e-4, "num_atoms": 51, "v_min": -10.0,
              "v_max": 10.0},
}
C51_DEFAULT = "cartpole"
QRDQN: dict[str, dict[str, Any]] = {
    # a constant step size (DQN's cartpole learner decays it to 0): QR-DQN was still rising at
    # 50k steps when the step size reached 0 (5/10 seeds ended >= 475; constant: 9/10)
    "cartpole": {**_FAMILY_CARTPOLE, "num_quantiles": 25, "alpha_end": None},
    "lunarlander": {**_CLASSIC["lunarlander"], "num_quantiles": 25},
    **{f"minatar-{name}": dict(env=f"MinAtar/{game}-v1", **_FAMILY_MINATAR, num_quantiles=51,
                               kappa=1.0, n_step=3, double=False)
       for name, game in MINATAR_GAMES.items()},
    "atari": {**_FAMILY_ATARI, "alpha": 5e-5, "num_quantiles": 200, "kappa": 1.0},
}
QRDQN_DEFAULT = "cartpole"
# Rainbow (Hessel et al. 2018): noisy nets, dueling, prioritized replay (alpha 0.5, beta
# 0.4 -> 1), Double targets, C51; on CartPole 5-step returns as DQN's preset, and epsilon 1 -> 0
# over the first 40% of the run before noise alone explores (noise alone from the start left
# 4 of 10 seeds near a return of 110 at 7,500 steps: docs/rainbow.md). On MinAtar and Atari,
# noise alone explores (epsilon 0), as in the papers.
_RAINBOW_PIXELS = dict(n_step=3, double=True, epsilon_start=0.0, epsilon_end=0.0)
RAINBOW: dict[str, dict[str, Any]] = {
    "cartpole": dict(**_FAMILY_CARTPOLE, num_atoms=51, v_min=0.0, v_max=100.0, n_step=5,
                     epsilon_start=1.0, epsilon_end=0.0, epsilon_fraction=0.4),
    "lunarlander": {**_FAMILY_LUNARLANDER, "num_atoms": 51, "epsilon_end": 0.0},
    **{f"minatar-{name}": {**_FAMILY_MINATAR, "env": f"MinAtar/{game}-v1", "num_atoms": 51,
                           "v_min": -100.0, "v_max": 100.0, **_RAINBOW_PIXELS}
       for name, game in MINATAR_GAMES.items()},
    "atari": {**_FAMILY_ATARI, "alpha": 6.25e-5, "num_atoms": 51, "v_min": -10.0,
              "v_max": 10.0, **_RAINBOW_PIXELS},
}
RAINBOW_DEFAULT = "cartpole"

# Presets whose papers fix exploration in env steps, not as a share of the run (MinAtar: 100k
# frames for DQN, 250k for the family; Atari: 1M steps for DQN, 250k for the family):
# ``preset_fields`` keeps that length when ``steps`` changes, unless the overrides set
# ``epsilon_fraction`` themselves.
PAPER_PROTOCOLS = (*(f"minatar-{game}" for game in MINATAR_GAMES), "atari")


def exploration_steps(table: dict[str, dict[str, Any]]) -> dict[str, int]:
    """Preset name -> its env steps of exploration, for the ``PAPER_PROTOCOLS`` in ``table``."""
    return {name: round(table[name]["epsilon_fraction"] * table[name]["steps"])
            for name in PAPER_PROTOCOLS if name in table}


EXPLORATION_STEPS: dict[str, int] = exploration_steps(DQN)


def preset_functions(config_cls: type, table: dict[str, dict[str, Any]], default: str,
                     fixed_exploration: bool = True):
    """``(PRESETS, preset, preset_fields, preset_for_env)`` of an algorithm whose presets are
    ``table`` (name -> fields of ``config_cls``), as ``semigrad train`` reads them.

    ``preset_fields(name, overrides)``: preset ``name``'s fields with ``overrides`` on top. A
    preset's ``start_box`` belongs to its env: it is dropped when ``overrides`` name another
    env and do not set ``start_box`` themselves. With ``fixed_exploration``, a preset of
    ``PAPER_PROTOCOLS`` explores for its paper's number of env steps whatever ``steps`` is
    (``epsilon_fraction`` recomputed, at most 1), unless ``overrides`` set
    ``epsilon_fraction``; without it (PQN, whose papers anneal over a share of the run) the
    share stays.
    """
    built = {name: config_cls(**fields) for name, fields in table.items()}
    explore = exploration_steps(table) if fixed_exploration else {}

    def preset_fields(name: str, overrides: dict[str, Any]) -> dict[str, Any]:
        fields = fields_of(built, name, dict(overrides))
        if ("start_box" in fields and fields["env"] != built[name].env
                and "start_box" not in overrides):
            fields["start_box"] = ()
        steps = fields["steps"]
        if (name in explore and "epsilon_fraction" not in overrides
                and isinstance(steps, int) and steps > 0):
            fields["epsilon_fraction"] = min(1.0, explore[name] / steps)
        return fields

    def preset_for_env(env_id: str) -> str | None:
        """The name of the preset tuned for ``env_id`` (``gymnasium:`` prefix ignored), or
        None."""
        return for_env(built, env_id)

    def preset(name: str = default, **overrides: Any) -> Any:
        """The config ``semigrad train --preset NAME --FIELD VALUE ...`` trains with:
        ``preset("cartpole", alpha=5e-4, seed=3)``."""
        return config_cls(**preset_fields(name, overrides))

    return built, preset, preset_fields, preset_for_env
