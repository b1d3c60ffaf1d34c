"""A tiny deterministic chain MDP behind semigrad's batched env interface, for DQN tests.

States 0..L-1 (one-hot observations), start in state 0; action 1 moves right, action 0 moves
left (state 0 stays). Reaching state L-1 terminates with reward 1; every other step gives 0.
Episodes are cut (truncated) after ``max_steps``. With discount gamma the optimal values are
``Q*(s, right) = gamma^(L-2-s)`` and ``Q*(s, left) = gamma * max_a Q*(max(s-1, 0), a)``.
``nan_after`` (env steps per sub-env) makes every later reward NaN, to test the guard.
"""

from __future__ import annotations

import torch

from semigrad.envs import BatchedEnv, EnvSpec, EpisodeCounter


class ChainEnv(BatchedEnv):
    def __init__(self, num_envs=1, device="cpu", seed=None, length=5, max_steps=20,
                 nan_after=None, env_id="TestChain-v0"):
        self.num_envs, self.device, self.length = num_envs, torch.device(device), length
        self.max_steps, self.nan_after, self.steps_done = max_steps, nan_after, 0
        self.spec = EnvSpec(env_id, length, 2, None, max_steps, "test")
        self.pos = torch.zeros(num_envs, dtype=torch.int64, device=self.device)
        self.t = torch.zeros_like(self.pos)
        self.episodes = EpisodeCounter(num_envs, self.device)

    def _obs(self, pos):
        return torch.nn.functional.one_hot(pos, self.length).float()

    def reset(self):
        self.pos.zero_()
        self.t.zero_()
        self.episodes.reset()
        return self._obs(self.pos)

    def step(self, actions):
        self.check_actions(actions)
        self.steps_done += 1
        pos = torch.clamp(self.pos + 2 * actions - 1, min=0)
        terminated = pos == self.length - 1
        self.t += 1
        truncated = (self.t >= self.max_steps) & ~terminated
        reward = terminated.float()
        if self.nan_after is not None and self.steps_done > self.nan_after:
            reward = torch.full_like(reward, float("nan"))
        done = terminated | truncated
        final_obs = self._obs(pos)
        ret, length = self.episodes.update(reward, done)
        self.pos = torch.where(done, torch.zeros_like(pos), pos)
        self.t = torch.where(done, torch.zeros_like(self.t), self.t)
        info = {"final_obs": final_obs, "episode_return": ret, "episode_length": length}
        return self._obs(self.pos), reward, terminated, truncated, info

    def state_dict(self):
        return {"pos": self.pos.clone(), "t": self.t.clone(), "steps_done": self.steps_done,
                "episodes": self.episodes.state_dict()}

    def load_state_dict(self, state):
        self.pos.copy_(state["pos"])
        self.t.copy_(state["t"])
        self.steps_done = state["steps_done"]
        self.episodes.load_state_dict(state["episodes"])


def optimal_q(length: int, gamma: float) -> torch.Tensor:
    """Q* ``(length - 1, 2)`` for the non-terminal states, by value iteration."""
    q = torch.zeros(length, 2, dtype=torch.float64)
    for _ in range(200):
        v = q.max(dim=1).values
        v[length - 1] = 0.0
        new = torch.zeros_like(q)
        for s in range(length - 1):
            right = s + 1
            new[s, 1] = 1.0 if right == length - 1 else gamma * v[right]
            new[s, 0] = gamma * v[max(s - 1, 0)]
        q = new
    return q[: length - 1]


class PixelChainEnv(ChainEnv):
    """The chain as frames: each observation is a ``(1, 5, 5)`` uint8 image (flattened to 25
    numbers) whose row ``pos`` is lit, as a pixel env hands frames to the replay."""

    obs_dtype = torch.uint8
    obs_shape = (1, 5, 5)

    def __init__(self, **kw):
        super().__init__(**{**kw, "env_id": "TestPixelChain-v0"})
        from semigrad.envs import EnvSpec

        self.spec = EnvSpec("TestPixelChain-v0", 25, 2, None, self.max_steps, "test")

    def _obs(self, pos):
        frames = torch.zeros(pos.shape[0], 5, 5, dtype=torch.uint8, device=self.device)
        frames[torch.arange(pos.shape[0], device=self.device), pos] = 1
        return frames.reshape(pos.shape[0], 25)
