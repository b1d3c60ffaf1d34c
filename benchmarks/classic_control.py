"""DQN (or ``--algo pqn`` ...) on classic control: semigrad's per-env presets (and optionally SB3
with the RL Zoo's).

For each env, semigrad trains all seeds in ONE process (seeds are a batch dimension) with the
env's preset; ``--sb3`` also trains Stable-Baselines3 DQN with the RL Zoo hyper-parameters,
one seed at a time, under the same protocol: every ``eval_every`` env steps, 20 greedy episodes
on separate environments with the env's own starts, evaluation time excluded from the training
time. Per seed it prints: solved (an evaluation >= the env's target), training seconds and env
steps to the first such evaluation, final and best greedy return, and 'stable' (the share of
evaluations after the first solve that are >= the target), then the totals.

    python benchmarks/classic_control.py [--algo dqn]
        [--envs CartPole-v1,Acrobot-v1,MountainCar-v0,LunarLander-v3] [--seeds 0-9]
        [--single-seeds 0-2] [--sb3] [--sb3-seeds 0-2] [--until-solved] [--device cpu]
        [--eval-every N]

``--single-seeds`` also trains those seeds one run at a time (one agent per process, as SB3
trains), the rows to compare wall time to the threshold with; with ``--sb3`` the script then
prints the ratio of the median times to solve. ``--until-solved`` stops each SB3 run at its
first evaluation >= the target (its time to solve is unchanged; its "final" is then that
evaluation), to save hours; ``--seeds ""`` skips the all-seeds-in-one-process run.

semigrad runs each env's preset of ``--algo`` (default dqn), ``preset_for_env(env)`` (see
docs/presets.md and docs/pqn.md for how they were found); the script prints the fields that
differ from the algorithm's default config. ``--eval-every`` evaluates semigrad's runs that
often instead of the preset's (PQN's must be a multiple of its num_envs x rollout). Note:
semigrad's target_update_interval counts gradient steps and train_freq vector steps (num_envs
env steps each); SB3's count env steps.

Targets (from the issue): CartPole-v1 >= 475 from its own starts within 50k steps;
Acrobot-v1 >= -80 by 100k; MountainCar-v0 >= -110 by 120k; LunarLander-v3 >= 200 by 300k.
SB3 is the optional `bench` extra: pip install -c constraints.txt -e '.[bench]'.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

import torch

import sb3_protocol
from machine import describe_machine
from sb3_protocol import fmt, parse_seeds
from semigrad import config, trainer
from semigrad.run import read_metrics

TARGETS = {"CartPole-v1": 475.0, "Acrobot-v1": -80.0, "MountainCar-v0": -110.0,
           "LunarLander-v3": 200.0}
EVAL_EPISODES = 20

# RL Zoo (rl-baselines3-zoo, hyperparams/dqn.yml) DQN hyper-parameters, SB3's vocabulary
RL_ZOO: dict[str, dict] = {
    "CartPole-v1": dict(steps=50_000, eval_every=2_500, learning_rate=2.3e-3, batch_size=64,
                        buffer_size=100_000, learning_starts=1_000, gamma=0.99,
                        target_update_interval=10, train_freq=256, gradient_steps=128,
                        exploration_fraction=0.16, exploration_final_eps=0.04,
                        net_arch=[256, 256]),
    "Acrobot-v1": dict(steps=100_000, eval_every=5_000, learning_rate=6.3e-4, batch_size=128,
                       buffer_size=50_000, learning_starts=0, gamma=0.99,
                       target_update_interval=250, train_freq=4, gradient_steps=-1,
                       exploration_fraction=0.12, exploration_final_eps=0.1,
                       net_arch=[256, 256]),
    "MountainCar-v0": dict(steps=120_000, eval_every=5_000, learning_rate=4e-3, batch_size=128,
                           buffer_size=10_000, learning_starts=1_000, gamma=0.98,
                           target_update_interval=600, train_freq=16, gradient_steps=8,
                           exploration_fraction=0.2, exploration_final_eps=0.07,
                           net_arch=[256, 256]),
    "LunarLander-v3": dict(steps=300_000, eval_every=5_000, learning_rate=6.3e-4,
                           batch_size=128, buffer_size=50_000, learning_starts=0, gamma=0.99,
                           target_update_interval=250, train_freq=4, gradient_steps=-1,
                           exploration_fraction=0.12, exploration_final_eps=0.1,
                           net_arch=[256, 256]),
}


def semigrad_config(algo, env: str, device: str, eval_every: int | None) -> tuple[object, str]:
    """The env's preset of ``algo`` (CartPole: from its own starts), evaluated as the peers
    are."""
    name = algo.preset_for_env(env)
    if name is None:
        raise SystemExit(f"{algo.NAME} has no preset for {env}")
    every = {} if eval_every is None else {"eval_every": eval_every}
    cfg = algo.preset(name, tensorboard=False, device=device, eval_episodes=EVAL_EPISODES,
                      **every)
    return cfg, f"{algo.NAME}.preset({name!r})"


def run_semigrad(algo, env: str, seeds: list[int], device: str,
                 eval_every: int | None = None) -> tuple[dict[int, dict], float]:
    cfg, source = semigrad_config(algo, env, device, eval_every)
    target = TARGETS[env]
    default = config.to_dict(algo.Config())
    changed = {k: v for k, v in config.to_dict(cfg).items() if default[k] != v}
    print(f"\nsemigrad preset for {env}, from {source} (fields that differ from "
          f"{algo.Config.__name__}()): {changed}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        total = trainer.train(algo, cfg, Path(tmp) / "run", seeds=seeds, progress=False)
        rows = {}
        for p in total.get("per_seed") or [{**total, "run_dir": Path(tmp) / "run"}]:
            # the target, not gymnasium's reward_threshold (Acrobot's is -100)
            evals_at = [row for row in read_metrics(p["run_dir"])
                        if row["eval_return"] is not None]
            evals = [row["eval_return"] for row in evals_at]
            first = next((row for row in evals_at if row["eval_return"] >= target), None)
            rows[p["seed"]] = {
                "solved": first is not None,
                "time_to_solve_s": first["train_s"] if first else None,
                "env_steps_to_solve": int(first["step"]) if first else None,
                "final": evals[-1], "best": max(evals),
                "stable": sb3_protocol.stability(evals, target),
                "train_s": total["train_s"]}
    return rows, total["train_s"]


def run_sb3(env_id: str, seed: int, until_solved: bool = False) -> dict:
    """SB3 with the RL Zoo's hyper-parameters for ``env_id``, the same protocol."""
    hp = dict(RL_ZOO[env_id])
    steps, eval_every = hp.pop("steps"), hp.pop("eval_every")
    return sb3_protocol.run_sb3(env_id, seed, steps, eval_every, TARGETS[env_id], hp,
                                EVAL_EPISODES, until_solved)


def median_time_to_solve(rows: dict[int, dict]) -> float | None:
    times = [r["time_to_solve_s"] for r in rows.values() if r["solved"]]
    return statistics.median(times) if times else None


def table(name: str, rows: dict[int, dict], target: float, train_s: float | None = None) -> None:
    print(f"\n{name}")
    print(f"{'seed':>4} {'solved':>6} {'t_solve s':>9} {'steps':>7} {'final':>7} {'best':>7} "
          f"{'stable':>6}")
    for seed, r in rows.items():
        print(f"{seed:>4} {str(r['solved']):>6} {fmt(r['time_to_solve_s'], '9.1f')} "
              f"{fmt(r['env_steps_to_solve'], '7d')} {r['final']:7.1f} {r['best']:7.1f} "
              f"{fmt(r['stable'], '6.2f')}")
    n = len(rows)
    solved = [r for r in rows.values() if r["solved"]]
    finals = [r["final"] for r in rows.values()]
    stable = sum(r["stable"] is not None and r["stable"] >= 0.9 for r in solved)
    t_med = median_time_to_solve(rows)
    time_text = (f"training {train_s:.1f} s for all {n} seeds" if train_s is not None
                 else f"training {sum(r['train_s'] for r in rows.values()):.1f} s in all")
    print(f"target {target:g}: solved {len(solved)}/{n}, final >= target "
          f"{sum(f >= target for f in finals)}/{n}, stable (>= 90% of later evaluations) "
          f"{stable}/{n}; final mean {statistics.mean(finals):.1f} +- "
          f"{statistics.pstdev(finals):.1f}, median {statistics.median(finals):.1f}; median "
          f"time to solve {fmt(t_med, '.1f')} s; {time_text}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--algo", default="dqn", choices=("dqn", "pqn", "c51", "qrdqn",
                                                           "rainbow"))
    parser.add_argument("--eval-every", type=int, default=None,
                        help="semigrad's env steps between evaluations (default: the preset's)")
    parser.add_argument("--envs", default="CartPole-v1,Acrobot-v1,MountainCar-v0,LunarLander-v3")
    parser.add_argument("--seeds", default="0-9")
    parser.add_argument("--single-seeds", default="",
                        help="also train these seeds one run at a time, e.g. 0-2")
    parser.add_argument("--sb3", action="store_true", help="also run SB3 DQN (RL Zoo tuning)")
    parser.add_argument("--sb3-seeds", default=None, help="default: the same as --seeds")
    parser.add_argument("--until-solved", action="store_true",
                        help="stop each SB3 run at its first evaluation >= the target")
    parser.add_argument("--device", default="cpu", help="semigrad's torch device (default: cpu)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(describe_machine())
    seeds = parse_seeds(args.seeds)
    algo = trainer.algorithm(args.algo)
    label = f"semigrad {algo.NAME}"
    for env in [e.strip() for e in args.envs.split(",") if e.strip()]:
        if env not in TARGETS:
            parser.error(f"--envs: {env!r} is not one of {', '.join(TARGETS)}")
        if seeds:
            rows, train_s = run_semigrad(algo, env, seeds, args.device, args.eval_every)
            table(f"{label}, {env}, seeds {args.seeds} in one process", rows,
                  TARGETS[env], train_s)
        single = {}
        for seed in parse_seeds(args.single_seeds):
            single.update(run_semigrad(algo, env, [seed], args.device, args.eval_every)[0])
        if single:
            table(f"{label}, {env}, one seed per run", single, TARGETS[env])
        if args.sb3:
            sb3_seeds = parse_seeds(args.sb3_seeds or args.seeds)
            sb3 = {s: run_sb3(env, s, args.until_solved) for s in sb3_seeds}
            table(f"Stable-Baselines3 DQN, RL Zoo hyper-parameters, {env}"
                  f"{' (each run stopped when solved)' if args.until_solved else ''}", sb3,
                  TARGETS[env])
            ours, theirs = median_time_to_solve(single), median_time_to_solve(sb3)
            if ours and theirs:
                print(f"median time to solve, one seed per run: semigrad {ours:.1f} s, SB3 "
                      f"{theirs:.1f} s: semigrad {theirs / ours:.1f}x faster")


if __name__ == "__main__":
    main()
