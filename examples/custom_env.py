"""Your own environment for ``semigrad train``: a 1-D corridor, registered with gymnasium when
this module is imported. From the repository root:

    semigrad train --env examples.custom_env:Corridor-v0 --steps 20000

``--env module.path:ID`` makes semigrad import ``module.path`` (here this file, which registers
``Corridor-v0``) and then train on ``ID``; the current directory is searched for the module, as
``python -m`` searches it. From Python: ``semigrad.envs.make("examples.custom_env:Corridor-v0")``.

The agent starts in the leftmost of ``LENGTH`` cells and steps left (action 0) or right
(action 1); reaching the rightmost cell ends the episode. Every step gives reward -1, so the best
return is ``-(LENGTH - 1)`` (the registered reward threshold) and episodes are cut after
``MAX_STEPS`` steps. Observations are the one-hot position. The position is kept in ``state``
(as the classic-control envs keep theirs), which lets ``semigrad train --resume`` restore it
exactly.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np

LENGTH = 10
MAX_STEPS = 50


class Corridor(gym.Env):
    def __init__(self, length: int = LENGTH) -> None:
        self.length = length
        self.observation_space = gym.spaces.Box(0.0, 1.0, (length,), dtype=np.float32)
        self.action_space = gym.spaces.Discrete(2)
        self.state = np.zeros(1)

    def _obs(self) -> np.ndarray:
        obs = np.zeros(self.length, dtype=np.float32)
        obs[int(self.state[0])] = 1.0
        return obs

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.state = np.zeros(1)
        return self._obs(), {}

    def step(self, action):
        position = min(max(int(self.state[0]) + (1 if action == 1 else -1), 0), self.length - 1)
        self.state = np.array([position], dtype=np.float64)
        return self._obs(), -1.0, position == self.length - 1, False, {}


gym.register("Corridor-v0", entry_point=Corridor, max_episode_steps=MAX_STEPS,
             reward_threshold=-(LENGTH - 1.0))
