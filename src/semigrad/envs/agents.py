"""K agents' environments as one batched env of ``K * N`` (seeds as a batch dimension).

Agent k owns rows ``k N .. k N + N - 1`` and its envs are seeded by its own seed alone, so agent
k's episodes are those of ``make(env_id, N, seed=seeds[k])`` whatever the other agents are: for
semigrad's CartPole-v1 exactly (``AgentsCartPole``: one tensor CartPole of ``K * N`` whose
initial states come per agent), for other ids K envs stepped one after another
(``StackedEnvs``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from semigrad.envs.base import BatchedEnv
from semigrad.envs.cartpole import AgentsCartPole, TorchCartPole
from semigrad.envs.registry import make
from semigrad.seeding import agent_generators


class StackedEnvs(BatchedEnv):
    """K environments of N sub-envs (any ``envs.make`` id, agent k's seeded with ``seeds[k]``),
    stepped one after another and seen as one of ``K * N``; agent k owns rows ``k N .. k N + N-1``.
    """

    def __init__(self, env_id: str, num_envs: int, seeds: Sequence[int],
                 device: torch.device, start_box: tuple[float, ...] | None = None) -> None:
        self.envs = [make(env_id, num_envs=num_envs, device=device, seed=s,
                          start_box=start_box) for s in seeds]
        self.spec, self.device = self.envs[0].spec, device
        self.num_envs = len(self.envs) * num_envs
        self.obs_dtype = self.envs[0].obs_dtype
        self.frame_stack = getattr(self.envs[0], "frame_stack", 1)

    @property
    def obs_shape(self) -> tuple[int, ...]:
        return self.envs[0].obs_shape

    def reset(self) -> torch.Tensor:
        return torch.cat([e.reset() for e in self.envs])

    def step(self, actions: torch.Tensor):
        self.check_actions(actions)
        outs = [e.step(a) for e, a in zip(self.envs, actions.chunk(len(self.envs)), strict=True)]
        obs, reward, terminated, truncated = (torch.cat([o[i] for o in outs]) for i in range(4))
        info = {key: torch.cat([o[4][key] for o in outs])
                for key in ("final_obs", "episode_return", "episode_length")}
        return obs, reward, terminated, truncated, info

    def state_dict(self) -> dict | None:
        """Every agent's env state; None when one of them cannot save its state."""
        states = [e.state_dict() for e in self.envs]
        return None if any(state is None for state in states) else {"envs": states}

    def load_state_dict(self, state: dict) -> None:
        for e, saved in zip(self.envs, state["envs"], strict=True):
            e.load_state_dict(saved)

    def close(self) -> None:
        for e in self.envs:
            e.close()


def make_agents(env_id: str, num_envs: int, seeds: Sequence[int], device: torch.device,
                start_box: tuple[float, ...] | None = None) -> BatchedEnv:
    """``len(seeds) * num_envs`` envs, agent k's ``num_envs`` seeded by ``seeds[k]`` alone."""
    probe = make(env_id, num_envs=1, device=device, seed=0, start_box=start_box)
    probe.close()
    if type(probe) is TorchCartPole:
        return AgentsCartPole(num_envs, agent_generators(seeds, device), device, start_box)
    return StackedEnvs(env_id, num_envs, seeds, device, start_box)
