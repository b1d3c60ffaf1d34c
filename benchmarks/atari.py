"""DQN on Atari: frames per second of the whole training loop (env, replay, learner) and the
replay's memory, for the `atari` preset (Nature DQN hyper-parameters) on one game.

It trains ``--steps`` agent steps (4 frames each) of ``ALE/<game>-v5`` with the preset, but
with ``--learning-starts`` steps of random play first (the preset's 50,000 would leave a short
run without learning), times the training loop (``train_s``: evaluation excluded), evaluates
greedily at the end, and prints frames/s before and after learning starts, the final score,
and the replay's bytes: as allocated for this run, and for a million transitions (the Nature
replay) against storing ``obs`` and ``next_obs`` stacks as uint8 (2 x 4 x 84 x 84 bytes per
transition). One torch thread on the CPU.

``--peers sb3,cleanrl`` times two other loops on the same work in the same run (same game,
agent steps, random steps first, preprocessing: 30 no-op starts, 4-frame skip with max-pool,
84 x 84 grey, 4-frame stack, life loss terminal, clipped rewards; the Nature network, batch 32,
an update every 4 steps, Adam at 1e-4, epsilon 1 -> 0.01 over 10% of the steps), one seed:

* ``sb3``: Stable-Baselines3's DQN with the RL Zoo's Atari settings (``hyperparams/dqn.yml``:
  ``AtariWrapper``, ``VecFrameStack`` 4, ``CnnPolicy``, a 100k replay of ``obs`` and
  ``next_obs`` stacks, target update every 1,000 steps), ``--learning-starts`` instead of the
  Zoo's 100k;
* ``cleanrl``: a single-file loop written here in the style of CleanRL's ``dqn_atari.py``
  (gymnasium's ``AtariPreprocessing`` and ``FrameStackObservation`` in a one-env
  ``SyncVectorEnv``, SB3's ``ReplayBuffer`` with ``optimize_memory_usage=True`` as CleanRL
  uses it, the MSE loss, a target copy every 1,000 steps) and semigrad's Nature network.

Each row is the whole loop's frames/s (4 emulator frames per agent step) and its ratio to
semigrad's. The peers need the ``bench`` extra (SB3); the evaluation at the end of semigrad's
run is excluded from its time, the peers evaluate nothing.

    python benchmarks/atari.py [--game Pong] [--steps 20000] [--learning-starts 5000]
                               [--device cpu] [--seeds 0] [--peers sb3,cleanrl]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from machine import describe_machine
from semigrad.algos import dqn
from semigrad.buffers import FrameStackReplay
from semigrad.config import parse_seeds

ZOO_ATARI = dict(learning_rate=1e-4, batch_size=32, buffer_size=100_000, gamma=0.99,
                 target_update_interval=1_000, train_freq=4, gradient_steps=1,
                 exploration_fraction=0.1, exploration_final_eps=0.01,
                 optimize_memory_usage=False)


def sb3_loop(game: str, steps: int, learning_starts: int, seed: int) -> float:
    """Seconds SB3's DQN (RL Zoo Atari settings) takes for ``steps`` agent steps."""
    import ale_py
    import gymnasium as gym
    from stable_baselines3 import DQN
    from stable_baselines3.common.env_util import make_atari_env
    from stable_baselines3.common.vec_env import VecFrameStack

    gym.register_envs(ale_py)
    env = VecFrameStack(make_atari_env(f"{game}NoFrameskip-v4", n_envs=1, seed=seed), 4)
    model = DQN("CnnPolicy", env, seed=seed, device="cpu", verbose=0,
                learning_starts=learning_starts,
                **{**ZOO_ATARI, "buffer_size": min(ZOO_ATARI["buffer_size"], steps)})
    t0 = time.perf_counter()
    model.learn(steps)
    return time.perf_counter() - t0


def cleanrl_style_loop(game: str, steps: int, learning_starts: int, seed: int) -> float:
    """Seconds a CleanRL-style single-file DQN loop takes for ``steps`` agent steps."""
    import ale_py
    import gymnasium as gym
    import numpy as np
    from gymnasium.wrappers import AtariPreprocessing, FrameStackObservation
    from stable_baselines3.common.buffers import ReplayBuffer

    from semigrad.nets import nature_q_network
    from semigrad.schedules import linear_schedule

    gym.register_envs(ale_py)

    def make_env():
        env = gym.make(f"ALE/{game}-v5", frameskip=1, repeat_action_probability=0.0)
        env = AtariPreprocessing(env, noop_max=30, frame_skip=4, screen_size=84,
                                 terminal_on_life_loss=True)
        return FrameStackObservation(env, 4)

    envs = gym.vector.SyncVectorEnv([make_env],
                                    autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)
    num_actions = int(envs.single_action_space.n)
    q = nature_q_network((4, 84, 84), num_actions)
    target = nature_q_network((4, 84, 84), num_actions)
    target.load_state_dict(q.state_dict())
    optimizer = torch.optim.Adam(q.parameters(), lr=1e-4)
    replay = ReplayBuffer(min(1_000_000, steps), envs.single_observation_space,
                          envs.single_action_space, "cpu", optimize_memory_usage=True,
                          handle_timeout_termination=False)
    rng = np.random.default_rng(seed)
    envs.single_action_space.seed(seed)
    torch.manual_seed(seed)
    t0 = time.perf_counter()
    obs, _ = envs.reset(seed=seed)
    for step in range(steps):
        epsilon = linear_schedule(1.0, 0.01, 0.1 * steps, step)
        if rng.random() < epsilon:
            actions = np.array([envs.single_action_space.sample()])
        else:
            with torch.no_grad():
                actions = q(torch.from_numpy(obs).view(1, -1)).argmax(dim=1).numpy()
        next_obs, rewards, terminated, truncated, infos = envs.step(actions)
        real_next = next_obs.copy()
        for i in np.flatnonzero(truncated):
            real_next[i] = infos["final_obs"][i]
        replay.add(obs, real_next, actions, np.sign(rewards), terminated, [{}])
        obs = next_obs
        if step > learning_starts and step % 4 == 0:
            data = replay.sample(32)
            with torch.no_grad():
                best = target(data.next_observations.view(32, -1)).max(dim=1).values
                goal = data.rewards.flatten() + 0.99 * best * (1 - data.dones.flatten())
            taken = q(data.observations.view(32, -1)).gather(1, data.actions).squeeze(1)
            loss = torch.nn.functional.mse_loss(taken, goal)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        if step % 1_000 == 0:
            target.load_state_dict(q.state_dict())
    envs.close()
    return time.perf_counter() - t0


PEERS = {"sb3": ("SB3 DQN, RL Zoo Atari settings", sb3_loop),
         "cleanrl": ("CleanRL-style loop (SB3 replay, optimize_memory_usage)",
                     cleanrl_style_loop)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--game", default="Pong")
    parser.add_argument("--steps", type=int, default=20_000, help="agent steps (4 frames each)")
    parser.add_argument("--learning-starts", type=int, default=5_000)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seeds", default="0", help="seeds trained at once, e.g. 0-3")
    parser.add_argument("--eval-episodes", type=int, default=1)
    parser.add_argument("--peers", default="", help="also time these loops: sb3,cleanrl")
    args = parser.parse_args()
    peers = [p.strip() for p in args.peers.split(",") if p.strip()]
    for peer in peers:
        if peer not in PEERS:
            parser.error(f"--peers: {peer!r} is not one of {', '.join(PEERS)}")
    torch.set_num_threads(1)
    print(describe_machine())
    seeds = list(parse_seeds(args.seeds))
    cfg = dqn.preset("atari", env=f"ALE/{args.game}-v5", steps=args.steps,
                     learning_starts=args.learning_starts, eval_every=args.steps,
                     eval_episodes=args.eval_episodes, log_every=max(1000, args.steps // 20),
                     buffer_size=min(1_000_000, args.steps), tensorboard=False,
                     device=args.device)
    print(f"{cfg.env}, preset 'atari' with steps {args.steps}, learning_starts "
          f"{args.learning_starts}, device {args.device}, seeds {seeds}")
    with tempfile.TemporaryDirectory() as tmp:
        total = dqn.train(cfg, Path(tmp), seeds=seeds, progress=False)
        from semigrad.run import read_metrics

        rows = read_metrics(Path(tmp) / f"seed{seeds[0]}")
    k = len(seeds)
    frames = 4 * total["env_steps_per_agent"] * k
    print(f"\nwhole loop: {frames / total['train_s']:,.0f} frames/s over {k} agent(s) "
          f"({total['train_s']:.1f} s of training for {frames:,} frames)")
    # frames/s before and after learning starts, from the metric rows' wall seconds (the only
    # evaluation is at the end, after the last row used here)
    before = [r for r in rows if r["step"] <= args.learning_starts]
    after = [r for r in rows if args.learning_starts < r["step"] < args.steps]
    if len(before) > 1 and after:
        t0, s0 = before[-1]["wall_s"] - before[0]["wall_s"], before[-1]["step"] - before[0]["step"]
        t1, s1 = after[-1]["wall_s"] - before[-1]["wall_s"], after[-1]["step"]
        s1 -= before[-1]["step"]
        print(f"  random play: {4 * k * s0 / t0:,.0f} frames/s; learning (an update every "
              f"{cfg.train_freq} steps): {4 * k * s1 / t1:,.0f} frames/s")
    finals = [s["final_eval_return"] for s in total["per_seed"]]
    print(f"final greedy score(s): {finals} ({args.eval_episodes} episode(s) each)")
    replay = FrameStackReplay(1_000_000, (4, 84, 84), max_episode_steps=27_000)
    stacked = 2 * 4 * 84 * 84 * 1_000_000
    print(f"replay of 1M transitions: {replay.nbytes() / 1e9:.2f} GB (frames once) against "
          f"{stacked / 1e9:.1f} GB for obs and next_obs stacks as uint8 "
          f"({stacked / replay.nbytes():.1f}x); a checkpoint holds the filled part only")
    if not peers:
        return
    ours = frames / total["train_s"]
    print(f"\n{args.game}, {args.steps:,} agent steps ({learning_starts_text(args)}), one "
          f"torch thread, seed {seeds[0]}")
    print("| loop | frames/s | semigrad's speed-up |")
    print("| --- | ---: | ---: |")
    print(f"| semigrad, {k} agent(s) in one process | {ours:,.0f} | 1.00x |")
    for peer in peers:
        name, loop = PEERS[peer]
        seconds = loop(args.game, args.steps, args.learning_starts, seeds[0])
        fps = 4 * args.steps / seconds
        print(f"| {name} | {fps:,.0f} | {ours / fps:.2f}x |", flush=True)


def learning_starts_text(args: argparse.Namespace) -> str:
    return f"the first {args.learning_starts:,} random, then an update every 4"


if __name__ == "__main__":
    main()
