"""Stable-Baselines3 DQN under semigrad's evaluation protocol, for the benchmarks that compare
against it (``dqn_cartpole.py``, ``classic_control.py``): every ``eval_every`` env steps,
``episodes`` greedy episodes on separate envs with the env's own starts, seeded as semigrad
seeds its evaluations (``policies.evaluation_seed``); the training clock is paused meanwhile.
SB3 is the optional ``bench`` extra: ``pip install -c constraints.txt -e '.[bench]'``.
"""

from __future__ import annotations

import time

from semigrad import config


def parse_seeds(text: str) -> list[int]:
    """``semigrad.config.parse_seeds``, where an empty text means no seeds (``--sb3-seeds ""``)."""
    return list(config.parse_seeds(text)) if text.strip() else []


def fmt(value, spec: str) -> str:
    """``value`` in a table cell, "-" for None."""
    return "-" if value is None else format(value, spec)


def stability(evals: list[float], target: float) -> float | None:
    """The share of the evaluations after the first one >= ``target`` that are >= it."""
    first = next((i for i, v in enumerate(evals) if v >= target), None)
    later = evals[first + 1:] if first is not None else []
    return sum(v >= target for v in later) / len(later) if later else None


def run_sb3(env_id: str, seed: int, steps: int, eval_every: int, target: float,
            hyper: dict, episodes: int = 20, until_solved: bool = False) -> dict:
    """Train SB3's DQN with ``hyper`` (its own argument names; ``net_arch`` goes to the policy)
    and evaluate it greedily; the same summary keys as semigrad's rows in the benchmarks.
    ``until_solved``: stop at the first evaluation >= ``target`` (its time to solve is the
    same; "final" is then that evaluation)."""
    import gymnasium as gym
    import numpy as np
    from stable_baselines3 import DQN
    from stable_baselines3.common.callbacks import BaseCallback

    from semigrad.policies import evaluation_seed

    class GreedyEval(BaseCallback):
        def __init__(self) -> None:
            super().__init__()
            self.evals, self.eval_s, self.solved_at = [], 0.0, None
            self.env = gym.make_vec(env_id, num_envs=episodes, vectorization_mode="sync")
            self.t0 = time.perf_counter()

        def _on_step(self) -> bool:
            if self.num_timesteps % eval_every == 0:
                t0 = time.perf_counter()
                obs, _ = self.env.reset(seed=evaluation_seed(seed, len(self.evals)))
                returns = np.zeros(episodes)
                done = np.zeros(episodes, dtype=bool)
                while not done.all():
                    action, _ = self.model.predict(obs, deterministic=True)
                    obs, r, te, tr, _ = self.env.step(action)
                    returns += r * ~done
                    done |= te | tr
                self.evals.append(float(returns.mean()))
                self.eval_s += time.perf_counter() - t0
                if self.solved_at is None and self.evals[-1] >= target:
                    self.solved_at = (time.perf_counter() - self.t0 - self.eval_s,
                                      self.num_timesteps)
                    return not until_solved
            return True

    hyper = dict(hyper)
    model = DQN("MlpPolicy", env_id, policy_kwargs={"net_arch": hyper.pop("net_arch")},
                seed=seed, device="cpu", verbose=0, **hyper)
    cb = GreedyEval()
    model.learn(steps, callback=cb)
    return {"solved": cb.solved_at is not None,
            "time_to_solve_s": cb.solved_at[0] if cb.solved_at else None,
            "env_steps_to_solve": cb.solved_at[1] if cb.solved_at else None,
            "final": cb.evals[-1], "best": max(cb.evals),
            "stable": stability(cb.evals, target),
            "train_s": time.perf_counter() - cb.t0 - cb.eval_s, "wall_s": None}
