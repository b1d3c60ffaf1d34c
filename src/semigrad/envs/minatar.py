"""MinAtar games behind semigrad's batched interface (see ``semigrad.envs.base``).

MinAtar (K. Young and T. Tian, 2019, "MinAtar: An Atari-Inspired Testbed for Thorough and
Reproducible Reinforcement Learning Experiments", arXiv:1903.03176) reduces five Atari games
(Asterix, Breakout, Freeway, Seaquest, Space Invaders) to a 10 x 10 grid with one binary
channel per kind of object. This module steps N ``minatar.Environment`` objects of the
``minatar`` package (imported only when an env is made) one after the other on the CPU, and
hands the batch to ``device`` once per step.

Observations: the package's ``(10, 10, C)`` bool state (height, width, channel), transposed to
channel-first ``(C, 10, 10)``, as uint8 (0 / 1), flattened to ``C * 100`` values: ``obs`` is
``(N, C * 100)`` uint8 and ``obs.view(N, *MinAtarEnv.obs_shape)`` recovers the grid. C is 4
(Asterix, Breakout), 7 (Freeway), 10 (Seaquest) or 6 (Space Invaders).

Actions: the full set of 6 (no-op, left, up, right, down, fire), as the paper's results use;
the actions a game ignores are no-ops there. Dynamics are the package defaults: sticky actions
with probability 0.1 (the previous action is repeated instead of the chosen one, and the
previous action carries over into the next episode, as in the package) and difficulty ramping
(Asterix, Seaquest and Space Invaders speed up as an episode goes on). MinAtar has no time
limit; with ``max_episode_steps`` an episode that reaches it is truncated, as gymnasium's
``TimeLimit`` does (``truncated`` is True at that step, ``terminated`` only where the game
itself ended then).
"""

from __future__ import annotations

import json

import numpy as np
import torch

from semigrad.devices import resolve_device
from semigrad.envs.base import BatchedEnv, EnvSpec, EpisodeCounter, import_extra

# game name in the minatar package -> gymnasium-style id
GAMES = {
    "asterix": "MinAtar/Asterix-v1",
    "breakout": "MinAtar/Breakout-v1",
    "freeway": "MinAtar/Freeway-v1",
    "seaquest": "MinAtar/Seaquest-v1",
    "space_invaders": "MinAtar/SpaceInvaders-v1",
}
# channels of each game's grid (minatar 1.0.15), so that ``obs_shape`` is known without an env
CHANNELS = {"asterix": 4, "breakout": 4, "freeway": 7, "seaquest": 10, "space_invaders": 6}
NUM_ACTIONS = 6  # every MinAtar game takes the full action set
GRID = 10  # the games' 10 x 10 grid
CELL = 16  # pixels per grid cell in ``render``


def _import_minatar(env_id: str):
    return import_extra("minatar", env_id, "pixels", "the minatar package")


class MinAtarEnv(BatchedEnv):
    """N copies of MinAtar game ``game``; sub-env i is seeded with ``seed + i``.

    ``game``: one of ``GAMES`` ("asterix", "breakout", "freeway", "seaquest",
    "space_invaders"). ``obs`` rows are ``obs_shape = (C, 10, 10)`` uint8 grids (``obs_dtype``),
    flattened (see the module docstring); C is ``CHANNELS[game]``.
    ``seed=None`` leaves the sub-envs unseeded (NumPy entropy).
    ``sticky_action_prob`` and ``difficulty_ramping`` are passed to ``minatar.Environment``
    (package defaults 0.1 and True). ``state_dict`` saves the games exactly (their variables,
    random generators and sticky actions), as JSON text.
    """

    obs_dtype = torch.uint8

    def __init__(
        self,
        game: str,
        num_envs: int = 1,
        device: str | torch.device | None = None,
        seed: int | None = None,
        max_episode_steps: int | None = None,
        sticky_action_prob: float = 0.1,
        difficulty_ramping: bool = True,
    ) -> None:
        if game not in GAMES:
            raise ValueError(f"MinAtar game: expected one of {', '.join(GAMES)}, got {game!r}")
        env_id = GAMES[game]
        if isinstance(num_envs, bool) or not isinstance(num_envs, int) or num_envs < 1:
            raise ValueError(f"num_envs: expected an integer >= 1, got {num_envs!r}")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)
                                 or seed < 0 or seed + num_envs > 2**32):
            raise ValueError(f"seed: expected None or an integer in [0, 2**32 - num_envs], "
                             f"got {seed!r}")
        if max_episode_steps is not None and (
            isinstance(max_episode_steps, bool) or not isinstance(max_episode_steps, int)
            or max_episode_steps < 1
        ):
            raise ValueError(f"max_episode_steps: expected None or an integer >= 1, "
                             f"got {max_episode_steps!r}")
        if not 0.0 <= float(sticky_action_prob) <= 1.0:
            raise ValueError(f"sticky_action_prob: expected a probability in [0, 1], "
                             f"got {sticky_action_prob!r}")
        minatar = _import_minatar(env_id)
        self.game = game
        self.num_envs = num_envs
        self.device = resolve_device(device)
        self.sticky_action_prob = float(sticky_action_prob)
        self.difficulty_ramping = bool(difficulty_ramping)
        self._games = []
        for i in range(num_envs):
            sub = minatar.Environment(game, sticky_action_prob=self.sticky_action_prob,
                                      difficulty_ramping=self.difficulty_ramping)
            if seed is not None:
                sub.seed(seed + i)
            self._games.append(sub)
        channels = int(self._games[0].state_shape()[2])  # CHANNELS[game] in minatar 1.0.15
        self._obs_shape = (channels, GRID, GRID)
        self.spec = EnvSpec(
            id=env_id,
            obs_dim=channels * GRID * GRID,
            num_actions=NUM_ACTIONS,
            reward_threshold=None,
            max_episode_steps=max_episode_steps,
            backend="minatar",
        )
        self._max_steps = max_episode_steps
        # elapsed steps of each episode, for the time limit
        self._elapsed = np.zeros(num_envs, dtype=np.int64)
        self._episodes = EpisodeCounter(num_envs, self.device)
        # (N, 10, 10, C) states as the package gives them, filled in place every step
        self._states = np.zeros((num_envs, GRID, GRID, channels), dtype=bool)
        self._ready = False

    @property
    def obs_shape(self) -> tuple[int, int, int]:
        """``(C, 10, 10)``: what each flat ``(C * 100,)`` row of ``obs`` stands for."""
        return self._obs_shape

    @property
    def games(self) -> list:
        """The ``minatar.Environment`` of each sub-env (for tests and inspection)."""
        return self._games

    render_fps = 10

    def render(self, index: int = 0) -> np.ndarray:
        """Sub-env ``index``'s grid as ``(160, 160, 3)`` uint8, 16 pixels a cell, coloured as
        the minatar package's own display: black where empty, else the colour of the highest
        channel present (the "cubehelix" palette sampled at ``C`` evenly spaced points)."""
        self.check_index(index)
        if getattr(self, "_palette", None) is None:
            from matplotlib import colormaps

            channels = self._obs_shape[0]
            points = np.linspace(0.0, 1.0, channels + 2)[1:-1]
            colours = colormaps["cubehelix"](points)[:, :3]
            self._palette = (np.vstack([np.zeros(3), colours]) * 255).round().astype(np.uint8)
        state = self._states[index]
        layer = np.max(state * np.arange(1, state.shape[2] + 1), axis=2)  # 0: empty cell
        return self._palette[layer].repeat(CELL, axis=0).repeat(CELL, axis=1)

    def _obs(self, states: np.ndarray) -> torch.Tensor:
        """``(N, 10, 10, C)`` bool -> ``(N, C * 100)`` uint8 on ``device`` (one copy)."""
        flat = states.transpose(0, 3, 1, 2).astype(np.uint8, order="C")  # a new array
        return torch.from_numpy(flat.reshape(len(states), -1)).to(self.device)

    def reset(self) -> torch.Tensor:
        """Start a new episode in every sub-env -> obs ``(N, C * 100)`` uint8."""
        for i, sub in enumerate(self._games):
            sub.reset()
            self._states[i] = sub.state()
        self._elapsed[:] = 0
        self._episodes.reset()
        self._ready = True
        return self._obs(self._states)

    def step(self, actions: torch.Tensor):
        """Step every sub-env with ``actions (N,)`` int64 in ``[0, 6)``, resetting the
        finished ones in the same step; see ``semigrad.envs.base``."""
        self.check_actions(actions)
        acts = actions.tolist()
        bad = [i for i, a in enumerate(acts) if not 0 <= a < NUM_ACTIONS]
        if bad:
            raise ValueError(f"{self.spec.id}.step: actions must be in [0, {NUM_ACTIONS}), got "
                             f"{acts[bad[0]]} at index {bad[0]}")
        if not self._ready:
            raise ValueError(f"{self.spec.id}.step: call reset() before step()")
        n = self.num_envs
        reward = np.zeros(n, dtype=np.float32)
        terminated = np.zeros(n, dtype=bool)
        states = self._states
        for i, (sub, a) in enumerate(zip(self._games, acts, strict=True)):
            reward[i], terminated[i] = sub.act(a)
            states[i] = sub.state()
        self._elapsed += 1
        if self._max_steps is None:
            truncated = np.zeros(n, dtype=bool)
        else:
            truncated = self._elapsed >= self._max_steps
        done = terminated | truncated
        final_obs = self._obs(states)
        if done.any():
            for i in np.flatnonzero(done).tolist():
                self._games[i].reset()
                states[i] = self._games[i].state()
            self._elapsed[done] = 0
            obs = self._obs(states)
        else:
            obs = final_obs.clone()
        reward_t = torch.from_numpy(reward).to(self.device)
        terminated_t = torch.from_numpy(terminated).to(self.device)
        truncated_t = torch.from_numpy(truncated).to(self.device)
        ep_return, ep_length = self._episodes.update(reward_t, terminated_t | truncated_t)
        info = {"final_obs": final_obs, "episode_return": ep_return, "episode_length": ep_length}
        return obs, reward_t, terminated_t, truncated_t, info

    def state_dict(self) -> dict | None:
        """Exact state of every sub-env for a resume; ``None`` if a game holds a value that
        this encoding does not know (none of the five in minatar 1.0.15 does).

        The games' variables, their NumPy ``RandomState`` and the sticky action are saved as
        JSON text (tagged so that NumPy arrays and scalars, tuples and dicts come back with
        their exact types and values); step counts and running returns as tensors.
        """
        try:
            games = [_save_game(sub) for sub in self._games]
        except _Unsaveable:
            return None
        return {
            "config": {"game": self.game, "num_envs": self.num_envs,
                       "sticky_action_prob": self.sticky_action_prob,
                       "difficulty_ramping": self.difficulty_ramping},
            "games": json.dumps(games),
            "elapsed": torch.from_numpy(self._elapsed.copy()),
            "episodes": self._episodes.state_dict(),
            "ready": self._ready,
        }

    def load_state_dict(self, state: dict) -> None:
        config = {"game": self.game, "num_envs": self.num_envs,
                  "sticky_action_prob": self.sticky_action_prob,
                  "difficulty_ramping": self.difficulty_ramping}
        if state["config"] != config:
            raise ValueError(f"{self.spec.id}: the saved env state is of {state['config']}, "
                             f"this env is {config}")
        games = json.loads(state["games"])
        for sub, saved in zip(self._games, games, strict=True):
            _load_game(sub, saved)
        self._elapsed[:] = state["elapsed"].cpu().numpy()
        self._episodes.load_state_dict(state["episodes"])
        self._ready = bool(state["ready"])
        if self._ready:
            for i, sub in enumerate(self._games):
                self._states[i] = sub.state()


def register_minatar(register) -> None:
    """``register(env_id, factory)`` each of the five MinAtar ids (``GAMES``)."""
    for game, env_id in GAMES.items():
        register(env_id, lambda game=game, **kw: MinAtarEnv(game, **kw))


# --- exact JSON encoding of the games' state -----------------------------------------------


class _Unsaveable(Exception):
    """A game holds a value that ``_encode`` cannot write exactly."""


def _encode(value):
    """``value`` as JSON-able data that ``_decode`` turns back into an equal value of the same
    type (JSON objects are used only as tags)."""
    kind = type(value)
    if value is None or kind in (bool, int, float, str):
        return value
    if kind is list:
        return [_encode(v) for v in value]
    if kind is tuple:
        return {"tuple": [_encode(v) for v in value]}
    if kind is dict:
        return {"dict": [[_encode(k), _encode(v)] for k, v in value.items()]}
    if kind is np.ndarray and value.dtype.kind in "biuf":
        return {"ndarray": value.dtype.str, "shape": list(value.shape),
                "data": value.ravel().tolist()}
    if isinstance(value, np.generic) and value.dtype.kind in "biuf":
        return {"scalar": value.dtype.str, "value": value.item()}
    raise _Unsaveable(f"cannot save a {kind.__name__}")


def _decode(data):
    if isinstance(data, list):
        return [_decode(v) for v in data]
    if not isinstance(data, dict):
        return data
    if "tuple" in data:
        return tuple(_decode(v) for v in data["tuple"])
    if "dict" in data:
        return {_decode(k): _decode(v) for k, v in data["dict"]}
    if "ndarray" in data:
        return np.array(data["data"], dtype=np.dtype(data["ndarray"])).reshape(data["shape"])
    return np.dtype(data["scalar"]).type(data["value"])


def _save_game(sub) -> dict:
    """One ``minatar.Environment``: its game's variables, its generator(s), its sticky action."""
    core = sub.env
    variables = {k: v for k, v in vars(core).items() if k != "random"}
    return {
        "vars": _encode(variables),
        "rng": _encode(sub.random.get_state()),
        # the game draws from the wrapper's generator once seeded, else from its own
        "game_rng": None if core.random is sub.random else _encode(core.random.get_state()),
        "last_action": _encode(sub.last_action),
    }


def _load_game(sub, saved: dict) -> None:
    core = sub.env
    for key, value in _decode(saved["vars"]).items():
        setattr(core, key, value)
    sub.random = np.random.RandomState()
    sub.random.set_state(_decode(saved["rng"]))
    if saved["game_rng"] is None:
        core.random = sub.random
    else:
        core.random = np.random.RandomState()
        core.random.set_state(_decode(saved["game_rng"]))
    sub.last_action = _decode(saved["last_action"])
