"""Atari 2600 games (the Arcade Learning Environment, through ``ale-py``) behind semigrad's
batched interface (see ``semigrad.envs.base``), with the standard DQN preprocessing.

Each sub-env is an ``ale_py.ALEInterface`` driven directly (not through gymnasium's wrappers, to
skip the per-frame RGB observation and wrapper calls), stepped one after the other on the CPU;
the batch goes to ``device`` once per step. ``ale_py`` (and ``cv2``) are imported only when an
env is made.

Preprocessing (Mnih et al. 2015, "Human-level control through deep reinforcement learning",
Nature 518, Methods; as gymnasium's ``AtariPreprocessing`` and Stable-Baselines3's
``AtariWrapper`` implement it), per sub-env:

* no-op starts: every new game begins with k no-op actions, k uniform in ``[1, noop_max]``
  (30), one frame each; a game that ends during them is restarted;
* frame skip: the agent's action is repeated for ``frame_skip`` (4) frames and the rewards are
  summed; the observed frame is the pixel-wise maximum of the last two of them (the Atari
  flickers). A step whose game ends before its last frame stops there and observes that frame;
* the greyscale screen (ALE's luminance palette), 210 x 160, resized to 84 x 84 with OpenCV's
  area interpolation (``cv2.INTER_AREA``);
* a stack of the last ``stack`` (4) such frames, oldest first: ``obs`` is ``(N, 4 * 84 * 84)``
  uint8 and ``obs.view(N, 4, 84, 84)`` (``obs_shape``) recovers it. A new game's stack is its
  first frame repeated 4 times;
* time limit: a game is cut after ``max_episode_frames`` (108,000, i.e. 30 minutes at 60 Hz:
  27,000 agent steps) emulator frames counted from its start, no-op starts included (ALE's
  ``max_num_frames_per_episode``, as gymnasium's ``ALE/*-v5`` ids set it), reported as
  ``truncated``;
* deterministic emulator: ``repeat_action_probability`` (sticky actions) 0.0 by default, with
  the minimal action set (``full_action_space=False``).

With ``training=True`` (what the agent learns from; Mnih et al. 2015): a lost life is reported
as ``terminated`` (no bootstrap across it) but the game goes on, the stack continuing (as SB3's
``EpisodicLifeEnv``, not reset: ``obs`` equals ``info["final_obs"]`` there); rewards are clipped
to their sign (-1, 0, +1). ``info["episode_return"]`` / ``["episode_length"]`` are reported only
when the whole game ends (game over or time limit): its UNCLIPPED score and its number of agent
steps (NaN / 0 at a life loss that does not end the game). A life lost in the step that
reaches the time limit is both ``terminated`` and ``truncated``. With ``training=False``
(evaluation): an episode is a whole game, rewards are the game's own score, a lost life is not
terminal. Machado et al. 2018 ("Revisiting the Arcade Learning Environment: Evaluation
Protocols and Open Problems for General Agents", JAIR 61) is the reference for that protocol:
report the game score of whole games (game over, not life loss, ends an episode), with a cap on
episode length; they recommend sticky actions (``repeat_action_probability=0.25``) instead of
no-op starts as the source of stochasticity, which ``repeat_action_probability`` allows.

Seeding: sub-env i is seeded with ``seed + i`` exactly as gymnasium's ``AtariEnv`` seeds on
``reset(seed=seed + i)`` (``np.random.SeedSequence(seed + i)`` gives the ALE's seed and that of
the generator that draws the no-op counts), so that sub-env i plays the same games as
``AtariPreprocessing(gymnasium.make("ALE/<Game>-v5", frameskip=1,
repeat_action_probability=0.0), noop_max=30, frame_skip=4, screen_size=84)`` reset with that
seed, frame for frame (but for the last observation of a game that ends mid-skip, where that
wrapper returns a stale max-pool).
"""

from __future__ import annotations

import json
import math
import re

import numpy as np
import torch

from semigrad.devices import resolve_device
from semigrad.envs.base import BatchedEnv, EnvSpec, import_extra

# Games registered by ``register_atari`` (any game whose ROM ale-py ships can be made).
GAMES = ("Pong", "Breakout", "SpaceInvaders", "Seaquest", "Qbert", "BeamRider", "Enduro",
         "MsPacman", "Asterix", "Freeway")
SCREEN = 84  # side of the resized square frame


def env_id_of(game: str) -> str:
    """``"Pong"`` -> ``"ALE/Pong-v5"`` (gymnasium's id of the game's ALE env)."""
    return f"ALE/{game}-v5"


def _game_name(game: str) -> str:
    """``"Pong"`` or ``"ALE/Pong-v5"`` -> ``"Pong"``."""
    if not isinstance(game, str) or not game:
        raise ValueError(f"Atari game: expected a name such as 'Pong', got {game!r}")
    name = game.removeprefix("ALE/")
    return re.sub(r"-v\d+$", "", name)


def _import_ale(env_id: str):
    """``(ale_py, cv2)``; either missing -> one ``ValueError`` line that says what to install."""
    return (import_extra("ale_py", env_id, "pixels", "ale-py"),
            import_extra("cv2", env_id, "pixels", "opencv-python-headless (to resize frames)"))


def _rom_id(ale_py, game: str, env_id: str) -> str:
    """PascalCase game name -> ale-py's snake_case ROM id; unknown -> ValueError."""
    from ale_py import roms

    ids = {"".join(part.capitalize() for part in rom.split("_")): rom
           for rom in roms.get_all_rom_ids()}
    if game not in ids:
        import difflib

        close = difflib.get_close_matches(game, sorted(ids), n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
        raise ValueError(f"env {env_id!r}: ale-py {ale_py.__version__} has no game {game!r}"
                         f"{hint}")
    return ids[game]


def _check_int(name: str, value, low: int, allow_none: bool = False) -> None:
    if allow_none and value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        none = "None or " if allow_none else ""
        raise ValueError(f"{name}: expected {none}an integer >= {low}, got {value!r}")


class AtariEnv(BatchedEnv):
    """N copies of Atari game ``game`` (e.g. ``"Pong"``, id ``"ALE/Pong-v5"``) with the DQN
    preprocessing (see the module docstring); sub-env i is seeded with ``seed + i``
    (``seed=None``: fresh entropy).

    ``training``: life loss terminal (the game goes on) and rewards clipped to their sign;
    ``False`` for evaluation (whole games, the game's score). ``noop_max`` (30), ``frame_skip``
    (4), ``stack`` (4) and ``max_episode_frames`` (108,000 emulator frames; ``None``: no limit)
    as in the module docstring; ``full_action_space``: all 18 actions instead of the game's
    minimal set; ``repeat_action_probability``: ALE's sticky actions (0.0: deterministic).

    ``state_dict`` saves the emulators exactly (``ALEInterface.cloneState(include_rng=True)``
    serialized, as uint8 tensors) with the frame stacks and the no-op generators; it is
    ``None`` with sticky actions, whose last action an ALE state does not hold.
    """

    obs_dtype = torch.uint8

    def __init__(
        self,
        game: str,
        num_envs: int = 1,
        device: str | torch.device | None = None,
        seed: int | None = None,
        training: bool = True,
        noop_max: int = 30,
        frame_skip: int = 4,
        stack: int = 4,
        max_episode_frames: int | None = 108_000,
        full_action_space: bool = False,
        repeat_action_probability: float = 0.0,
    ) -> None:
        game = _game_name(game)
        env_id = env_id_of(game)
        _check_int("num_envs", num_envs, 1)
        _check_int("seed", seed, 0, allow_none=True)
        _check_int("noop_max", noop_max, 0)
        _check_int("frame_skip", frame_skip, 1)
        _check_int("stack", stack, 1)
        _check_int("max_episode_frames", max_episode_frames, 1, allow_none=True)
        if not isinstance(training, bool) or not isinstance(full_action_space, bool):
            raise ValueError(f"training, full_action_space: expected booleans, got "
                             f"{training!r}, {full_action_space!r}")
        if not 0.0 <= float(repeat_action_probability) < 1.0:
            raise ValueError(f"repeat_action_probability: expected a probability in [0, 1), "
                             f"got {repeat_action_probability!r}")
        ale_py, cv2 = _import_ale(env_id)
        rom = _rom_id(ale_py, game, env_id)
        self._cv2 = cv2
        self.game = game
        self.num_envs = num_envs
        self.device = resolve_device(device)
        self.training = training
        self.noop_max = noop_max
        self.frame_skip = frame_skip
        self.stack = stack
        self.frame_stack = stack  # the replay keeps each frame once (buffers.FrameStackReplay)
        self.max_episode_frames = max_episode_frames
        self.full_action_space = full_action_space
        self.repeat_action_probability = float(repeat_action_probability)

        ale_py.ALEInterface.setLoggerMode(ale_py.LoggerMode.Error)
        rom_path = ale_py.roms.get_rom_path(rom)
        self._ales = []
        self._rngs = []  # draw the no-op counts, as gymnasium's AtariEnv.np_random does
        for i in range(num_envs):
            # gymnasium's AtariEnv.seed_game: one SeedSequence gives both seeds
            np_seed, ale_seed = np.random.SeedSequence(
                None if seed is None else seed + i).generate_state(n_words=2)
            self._rngs.append(np.random.Generator(np.random.PCG64(
                np.random.SeedSequence(int(np_seed)))))
            ale = ale_py.ALEInterface()
            ale.setInt("random_seed", int(np.int32(ale_seed)))
            ale.setFloat("repeat_action_probability", self.repeat_action_probability)
            ale.setInt("frame_skip", 1)
            ale.setInt("max_num_frames_per_episode", max_episode_frames or 0)
            ale.loadROM(str(rom_path))
            self._ales.append(ale)
        ale = self._ales[0]
        self._action_set = list(ale.getLegalActionSet() if full_action_space
                                else ale.getMinimalActionSet())
        if noop_max > 0 and self._action_set[0] != ale_py.Action.NOOP:
            raise ValueError(f"env {env_id!r}: action 0 is {self._action_set[0]}, not NOOP, "
                             "so no-op starts are impossible; pass noop_max=0")
        height, width = ale.getScreenDims()
        self._obs_shape = (stack, SCREEN, SCREEN)
        self.spec = EnvSpec(
            id=env_id,
            obs_dim=stack * SCREEN * SCREEN,
            num_actions=len(self._action_set),
            reward_threshold=None,
            max_episode_steps=(None if max_episode_frames is None
                               else math.ceil(max_episode_frames / frame_skip)),
            backend="ale",
        )
        # the frame stack of every sub-env, oldest first, updated in place
        self._frames = np.zeros((num_envs, stack, SCREEN, SCREEN), dtype=np.uint8)
        self._lives = np.zeros(num_envs, dtype=np.int64)
        # unclipped score and agent steps of each game in progress
        self._game_return = np.zeros(num_envs, dtype=np.float64)
        self._game_length = np.zeros(num_envs, dtype=np.int64)
        # the last two screens of a step, for the max-pool
        self._screens = (np.empty((height, width), np.uint8), np.empty((height, width), np.uint8))
        self._ready = False

    @property
    def obs_shape(self) -> tuple[int, int, int]:
        """``(stack, 84, 84)``: what each flat row of ``obs`` stands for (oldest frame first)."""
        return self._obs_shape

    @property
    def ales(self) -> list:
        """The ``ale_py.ALEInterface`` of each sub-env (for tests and inspection)."""
        return self._ales

    @property
    def action_meanings(self) -> list[str]:
        """The ALE action of each action index, e.g. ``["NOOP", "FIRE", "RIGHT", "LEFT"]``."""
        return [a.name for a in self._action_set]

    @property
    def render_fps(self) -> float:
        """Agent steps per second of game time (the ALE runs at 60 frames a second)."""
        return 60.0 / self.frame_skip

    def render(self, index: int = 0) -> np.ndarray:
        """Sub-env ``index``'s game screen as the player sees it: ``(210, 160, 3)`` uint8 RGB
        (its last emulator frame, before any preprocessing)."""
        return self._ales[self.check_index(index)].getScreenRGB()

    # --- one sub-env -----------------------------------------------------------------------

    def _resize(self, screen: np.ndarray) -> np.ndarray:
        return self._cv2.resize(screen, (SCREEN, SCREEN), interpolation=self._cv2.INTER_AREA)

    def _new_game(self, i: int) -> None:
        """Start a new game in sub-env i (with its no-op start); its stack is the first frame
        repeated."""
        ale = self._ales[i]
        ale.reset_game()
        noops = int(self._rngs[i].integers(1, self.noop_max + 1)) if self.noop_max > 0 else 0
        noop = self._action_set[0]
        for _ in range(noops):
            ale.act(noop)
            if ale.game_over():
                ale.reset_game()
        screen = self._screens[0]
        ale.getScreenGrayscale(screen)
        self._frames[i] = self._resize(screen)  # broadcast over the stack
        self._lives[i] = ale.lives()
        self._game_return[i] = 0.0
        self._game_length[i] = 0

    def _act(self, i: int, action) -> float:
        """``frame_skip`` frames of ``action`` in sub-env i; pushes the max-pooled frame onto
        its stack and returns the summed (unclipped) reward."""
        ale = self._ales[i]
        last, before = self._screens
        skip = self.frame_skip
        reward = 0
        for t in range(skip):
            reward += ale.act(action)
            if t == skip - 1 or ale.game_over():
                ale.getScreenGrayscale(last)
                if t == skip - 1 and skip > 1:
                    np.maximum(last, before, out=last)
                break
            if t == skip - 2:
                ale.getScreenGrayscale(before)
        frames = self._frames[i]
        frames[:-1] = frames[1:].copy()
        frames[-1] = self._resize(last)
        return float(reward)

    # --- the batch -------------------------------------------------------------------------

    def _obs(self) -> torch.Tensor:
        """The stacks as ``(N, obs_dim)`` uint8 on ``device`` (a copy)."""
        return torch.from_numpy(self._frames.reshape(self.num_envs, -1).copy()).to(self.device)

    def reset(self) -> torch.Tensor:
        """Start a new game in every sub-env -> obs ``(N, stack * 84 * 84)`` uint8."""
        for i in range(self.num_envs):
            self._new_game(i)
        self._ready = True
        return self._obs()

    def step(self, actions: torch.Tensor):
        """Step every sub-env with ``actions (N,)`` int64 in ``[0, num_actions)``, starting new
        games in the same step where one ended; see ``semigrad.envs.base`` and the module
        docstring (life loss and clipping with ``training=True``)."""
        self.check_actions(actions)
        acts = actions.tolist()
        num_actions = self.spec.num_actions
        bad = [i for i, a in enumerate(acts) if not 0 <= a < num_actions]
        if bad:
            raise ValueError(f"{self.spec.id}.step: actions must be in [0, {num_actions}), got "
                             f"{acts[bad[0]]} at index {bad[0]}")
        if not self._ready:
            raise ValueError(f"{self.spec.id}.step: call reset() before step()")
        n = self.num_envs
        raw = np.zeros(n, dtype=np.float64)
        game_over = np.zeros(n, dtype=bool)
        truncated = np.zeros(n, dtype=bool)
        life_lost = np.zeros(n, dtype=bool)
        for i, a in enumerate(acts):
            raw[i] = self._act(i, self._action_set[a])
            ale = self._ales[i]
            game_over[i] = ale.game_over(with_truncation=False)
            truncated[i] = not game_over[i] and ale.game_truncated()
            lives = ale.lives()
            life_lost[i] = lives < self._lives[i]
            self._lives[i] = lives
        self._game_return += raw
        self._game_length += 1
        ended = game_over | truncated
        terminated = game_over | life_lost if self.training else game_over
        episode_return = np.where(ended, self._game_return, np.nan)
        episode_length = np.where(ended, self._game_length, 0)
        final_obs = self._obs()
        if ended.any():
            for i in np.flatnonzero(ended).tolist():
                self._new_game(i)
            obs = self._obs()
        else:
            obs = final_obs.clone()
        reward = np.sign(raw) if self.training else raw
        dev = self.device
        info = {
            "final_obs": final_obs,
            "episode_return": torch.from_numpy(episode_return.astype(np.float32)).to(dev),
            "episode_length": torch.from_numpy(episode_length).to(dev),
        }
        return (obs, torch.from_numpy(reward.astype(np.float32)).to(dev),
                torch.from_numpy(terminated).to(dev), torch.from_numpy(truncated).to(dev), info)

    # --- saving ------------------------------------------------------------------------------

    def _config(self) -> dict:
        return {"game": self.game, "num_envs": self.num_envs, "training": self.training,
                "noop_max": self.noop_max, "frame_skip": self.frame_skip, "stack": self.stack,
                "max_episode_frames": self.max_episode_frames,
                "full_action_space": self.full_action_space,
                "repeat_action_probability": self.repeat_action_probability}

    def state_dict(self) -> dict | None:
        """Exact state of every sub-env for a resume, as tensors and plain values (a
        weights-only checkpoint holds it): each emulator's ``cloneState(include_rng=True)``
        serialized to a uint8 tensor, the frame stacks, lives, the games' running scores and
        lengths, and the no-op generators' states (JSON text). ``None`` with sticky actions
        (``repeat_action_probability > 0``): the ALE's state lacks the last action taken, which
        a sticky action repeats, so a restored game would diverge."""
        if self.repeat_action_probability > 0.0:
            return None
        ales = [torch.frombuffer(bytearray(ale.cloneState(include_rng=True).serialize()),
                                 dtype=torch.uint8) for ale in self._ales]
        return {
            "config": self._config(),
            "ales": ales,
            "rngs": json.dumps([rng.bit_generator.state for rng in self._rngs]),
            "frames": torch.from_numpy(self._frames.copy()),
            "lives": torch.from_numpy(self._lives.copy()),
            "game_return": torch.from_numpy(self._game_return.copy()),
            "game_length": torch.from_numpy(self._game_length.copy()),
            "ready": self._ready,
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore what ``state_dict`` returned (from an env of the same configuration)."""
        if state["config"] != self._config():
            raise ValueError(f"{self.spec.id}: the saved env state is of {state['config']}, "
                             f"this env is {self._config()}")
        import ale_py

        for ale, saved in zip(self._ales, state["ales"], strict=True):
            ale.restoreState(ale_py.ALEState(saved.cpu().numpy().tobytes()))
        for rng, saved in zip(self._rngs, json.loads(state["rngs"]), strict=True):
            rng.bit_generator.state = saved
        self._frames[:] = state["frames"].cpu().numpy()
        self._lives[:] = state["lives"].cpu().numpy()
        self._game_return[:] = state["game_return"].cpu().numpy()
        self._game_length[:] = state["game_length"].cpu().numpy()
        self._ready = bool(state["ready"])


def register_atari(register) -> None:
    """``register(env_id, factory)`` the ``ALE/<Game>-v5`` id of each game in ``GAMES``;
    ``factory(num_envs=, device=, seed=, training=...)`` builds an ``AtariEnv``."""
    for game in GAMES:
        register(env_id_of(game), lambda game=game, **kw: AtariEnv(game, **kw))
