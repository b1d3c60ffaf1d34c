"""PQN on Atari: which batched Atari env serves it, and the training loop's frames per second.

(a) Env throughput, random actions, at N = 8, 32, 128 sub-envs of one game: semigrad's
``AtariEnv`` (N ``ale_py.ALEInterface`` stepped one after another from Python, with the frame
processing in NumPy/OpenCV) against ale-py's own ``ale_py.vector_env.AtariVectorEnv`` (C++
worker threads that step, max-pool, resize and stack), configured to the same preprocessing:

* frame skip 4 with the max-pool of the last two frames, 84 x 84 greyscale (the ALE's
  luminance palette, OpenCV's area interpolation), a stack of 4, up to 30 no-op starts, no
  sticky actions (``repeat_action_probability=0``), the minimal action set, 108,000 frames
  a game at most, no FIRE at reset (``use_fire_reset=False``);
* training's life loss: a lost life is terminal but the game goes on (semigrad's
  ``training=True``; ale-py's ``life_loss_info=True``; its ``episodic_life=True`` would
  instead reset the whole game at each life loss);
* same-step resets (ale-py's ``autoreset_mode="SameStep"``, which hands back the final
  observation in ``info["final_obs"]``), as semigrad's interface asks;
* rewards: semigrad clips them to their sign and reports the unclipped game score; ale-py
  is run with ``reward_clipping=False`` (a wrapper has to keep the unclipped score and clip
  itself; ale-py's clipping, ``clamp(r, -1, 1)``, is the sign for the integer rewards of the
  ALE).

What cannot be matched (so the two do not play the same games from the same seed, and
``tests/test_pqn_atari.py`` compares them with no-op starts off): ale-py draws 0..29 no-ops
from its own ``std::mt19937`` seeded ``seed + i`` (semigrad: 1..30, gymnasium's seeding);
ale-py pads a new game's stack with black frames (semigrad repeats the first frame); ale-py's
time limit counts frames after the no-ops (semigrad: from the game's start, as ALE's
``max_num_frames_per_episode``); a game that ends before the last frame of a skip ends on
ale-py's stale max-pool buffer (semigrad: the game-over frame). ``AtariVectorEnv`` has no
``cloneState``: it cannot save its state for an exact resume.

Each measurement steps ``--agent-steps`` agent steps in all (``--agent-steps / N`` batched
steps) after a reset and a warm-up of 10 batched steps, from one ``time.perf_counter`` to the
next; frames/s counts 4 emulator frames per agent step. The configurations run interleaved
(each round runs them all, in a rotated order), ``--repeats`` rounds; the table gives the median
and the CPU seconds per wall second (``time.process_time``, all threads: how many cores the
run kept busy). One torch thread; ale-py at ``num_threads`` 1 and 2.

(b) PQN's training loop with the ``atari`` preset (purejaxql's Atari config) on the game for
``--train-frames`` frames (agent steps x 4; rounded down to whole iterations of 128 x 32
agent steps, at least one) on the CPU, seed 0: frames/s of the trainer's
``train_s`` (evaluation excluded), and the share of it spent inside ``env.step``.

    python benchmarks/pqn_atari.py [--game Pong] [--envs 8,32,128] [--agent-steps 6400]
                                   [--repeats 3] [--threads 1,2] [--train-frames 50000]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from machine import describe_machine
from semigrad.envs import atari

WARMUP = 10  # batched steps after the reset, before the clock starts


def semigrad_env(game: str, n: int, seed: int):
    """semigrad's AtariEnv: (step(actions (N,) int64 numpy), close, number of actions)."""
    env = atari.AtariEnv(game, n, device="cpu", seed=seed)
    env.reset()
    return (lambda a: env.step(torch.from_numpy(a))), env.close, env.num_actions


def ale_vector_env(game: str, n: int, seed: int, threads: int, noop_max: int = 30,
                   max_frames: int = 108_000):
    """ale-py's AtariVectorEnv with semigrad's preprocessing (see the module docstring):
    ``(step(actions (N,) int64 numpy), close, number of actions)``."""
    import ale_py
    from ale_py.vector_env import AtariVectorEnv

    rom = atari._rom_id(ale_py, atari._game_name(game), atari.env_id_of(game))
    env = AtariVectorEnv(rom, n, num_threads=threads, frameskip=4, maxpool=True,
                         img_height=atari.SCREEN, img_width=atari.SCREEN, grayscale=True,
                         stack_num=4, noop_max=noop_max, repeat_action_probability=0.0,
                         full_action_space=False, max_num_frames_per_episode=max_frames,
                         use_fire_reset=False, episodic_life=False, life_loss_info=True,
                         reward_clipping=False, autoreset_mode="SameStep")
    env.reset(seed=seed)
    return env.step, env.close, int(env.single_action_space.n)


def time_env(make, n: int, agent_steps: int, seed: int = 0) -> tuple[float, float]:
    """(frames/s, CPU s per wall s) of ``agent_steps`` random agent steps of ``make()``."""
    step, close, num_actions = make()
    rng = np.random.default_rng(seed)
    try:
        for _ in range(WARMUP):
            step(rng.integers(0, num_actions, n))
        batched = max(1, agent_steps // n)
        actions = rng.integers(0, num_actions, (batched, n))
        t0, c0 = time.perf_counter(), time.process_time()
        for a in actions:
            step(a)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    finally:
        close()
    return 4 * batched * n / wall, cpu / wall


def env_table(game: str, sizes: list[int], threads: list[int], agent_steps: int,
              repeats: int) -> None:
    configs = {"semigrad AtariEnv": lambda n: (lambda: semigrad_env(game, n, 0))}
    for t in threads:
        configs[f"ale-py AtariVectorEnv, {t} thread(s)"] = \
            lambda n, t=t: (lambda: ale_vector_env(game, n, 0, t))
    names = list(configs)
    print(f"\n(a) {atari.env_id_of(game)}, random actions, {agent_steps:,} agent steps a "
          f"measurement, median of {repeats} interleaved rounds")
    print("| N | env | frames/s | ratio to semigrad's AtariEnv | CPU s / wall s |")
    print("| ---: | --- | ---: | ---: | ---: |")
    for n in sizes:
        got: dict[str, list[tuple[float, float]]] = {name: [] for name in names}
        for rnd in range(repeats):
            order = names[rnd % len(names):] + names[:rnd % len(names)]
            for name in order:
                got[name].append(time_env(configs[name](n), n, agent_steps, seed=rnd))
        base = statistics.median(fps for fps, _ in got[names[0]])
        for name in names:
            fps = statistics.median(f for f, _ in got[name])
            cores = statistics.median(c for _, c in got[name])
            print(f"| {n} | {name} | {fps:,.0f} | {fps / base:.2f}x | {cores:.2f} |",
                  flush=True)


def train_speed(game: str, frames: int, seed: int) -> None:
    """PQN with the atari preset for ``frames`` frames; frames/s and the env's share."""
    from semigrad.algos import pqn
    from semigrad.envs.base import BatchedEnv

    iteration = pqn.PRESETS["atari"].num_envs * pqn.PRESETS["atari"].rollout
    steps = max(1, frames // (4 * iteration)) * iteration  # whole iterations
    cfg = pqn.preset("atari", env=atari.env_id_of(game), steps=steps, seed=seed,
                     eval_every=10 * steps, eval_episodes=1, log_every=steps,
                     tensorboard=False, device="cpu")
    spent = [0.0]
    real_step = atari.AtariEnv.step

    def timed_step(self: BatchedEnv, actions):
        t0 = time.perf_counter()
        try:
            return real_step(self, actions)
        finally:
            spent[0] += time.perf_counter() - t0

    atari.AtariEnv.step = timed_step
    real_eval = pqn.trainer.evaluate_agents
    eval_env_s = [0.0]

    def timed_eval(*args, **kw):  # the final evaluation's env steps are not training's
        before = spent[0]
        try:
            return real_eval(*args, **kw)
        finally:
            eval_env_s[0] += spent[0] - before

    pqn.trainer.evaluate_agents = timed_eval
    try:
        with tempfile.TemporaryDirectory() as tmp:
            summary = pqn.train(cfg, Path(tmp) / "run", progress=False)
    finally:
        atari.AtariEnv.step = real_step
        pqn.trainer.evaluate_agents = real_eval
    train_s, done = summary["train_s"], summary["env_steps"]
    env_s = spent[0] - eval_env_s[0]
    print(f"\n(b) PQN, preset 'atari' ({cfg.num_envs} envs x {cfg.rollout} steps = "
          f"{iteration:,} agent steps an iteration, {cfg.epochs} x {cfg.minibatches} "
          f"minibatches of {iteration // cfg.minibatches}, network {cfg.network} with "
          f"LayerNorm, {cfg.optimizer}), {cfg.env}, seed {seed}, CPU")
    print(f"{done:,} agent steps ({4 * done:,} frames, {done // iteration} iterations) in "
          f"{train_s:.1f} s of training: {4 * done / train_s:,.0f} frames/s; inside "
          f"env.step: {env_s:.1f} s ({100 * env_s / train_s:.0f}%), the rest (acting, "
          f"targets, {cfg.epochs * cfg.minibatches * (done // iteration)} gradient steps): "
          f"{train_s - env_s:.1f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--game", default="Pong")
    parser.add_argument("--envs", default="8,32,128", help="numbers of sub-envs N")
    parser.add_argument("--threads", default="1,2", help="AtariVectorEnv num_threads values")
    parser.add_argument("--agent-steps", type=int, default=6_400,
                        help="agent steps in all per env measurement")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--train-frames", type=int, default=50_000,
                        help="frames of the PQN training run (0: skip it)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(describe_machine())
    sizes = [int(x) for x in args.envs.split(",") if x]
    threads = [int(x) for x in args.threads.split(",") if x]
    if sizes:
        env_table(args.game, sizes, threads, args.agent_steps, args.repeats)
    if args.train_frames > 0:
        train_speed(args.game, args.train_frames, args.seed)


if __name__ == "__main__":
    main()
