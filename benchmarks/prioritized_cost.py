"""Prioritized replay's cost: drawing a prioritized minibatch and updating its priorities,
against drawing a uniform one and against a whole DQN gradient step, at K = 1 and K = 8 agents.

For each DQN preset in ``--presets`` (default ``cartpole`` and ``minatar-breakout``) and each K
in ``--agents``, it builds the K agents' DQN state (``dqn.init``), plays ``--fill`` env steps
per agent into the replay (epsilon 1), then builds an ``AgentReplay`` of the same layout with
``prioritized=PrioritizedSpec(0.6)`` holding the same transitions, every slot at a random
priority (``|delta| ~ U[0, 2)``). It times, per call, interleaved in ``--repeats`` rounds of
``--calls`` calls each (the table shows the median round; the machine may be shared):

* ``uniform``: ``replay.sample`` / ``sample_n_step`` of the preset's batch (what DQN draws);
* ``prioritized``: the same draw by priority (``beta`` 0.4) plus ``update_priorities`` of the
  batch (what a prioritized DQN step adds; the |delta| it needs is assumed at hand);
* ``dqn step``: ``dqn.update`` (a uniform draw, the forward and backward passes, Adam, the
  target update), the whole gradient step of the K agents.

The goal (issue 26): prioritized draw + update <= 20% of the DQN step's time. The last
column is ``(prioritized - uniform) / dqn step``: what switching to prioritized replay adds to
a step. Times are CPU time (``time.process_time``) per call, the wall time beside them: on a
shared machine other jobs stretch wall times unevenly, CPU time much less. One torch thread
(``--threads``); CPU by default (``--device``; on CUDA the CPU time is the host's only, so
read the wall times).

    python benchmarks/prioritized_cost.py [--presets cartpole,minatar-breakout]
                                          [--agents 1,8] [--fill 20000] [--calls 200]
                                          [--repeats 5] [--device cpu] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from machine import describe_machine
from semigrad.algos import dqn
from semigrad.buffers import AgentReplay, PrioritizedSpec


def build(preset: str, agents: int, fill: int, device: torch.device):
    cfg = dqn.preset(preset, device=str(device))
    st = dqn.init(cfg, list(range(agents)), device)
    for _ in range(fill // cfg.num_envs):
        dqn.act(cfg, st, 1.0)
    env = st.env
    prio = AgentReplay(agents, device=device, prioritized=PrioritizedSpec(0.6),
                       **dqn.replay_layout(cfg, env))
    prio.buffer.load_state_dict(st.replay.buffer.state_dict())
    gen = torch.Generator(device=device).manual_seed(0)
    slots = torch.arange(prio.capacity, device=device).expand(agents, -1)
    prio.prioritized.update(slots, torch.rand(slots.shape, generator=gen, device=device) * 2)
    return cfg, st, prio, gen


def sample(cfg, replay, u, **beta):
    if cfg.n_step == 1:
        return replay.sample(u, **beta)
    return replay.sample_n_step(cfg.n_step, cfg.gamma, u, **beta)


def per_call(fn, calls: int, sync) -> tuple[float, float]:
    """Wall and CPU (``time.process_time``) seconds per call."""
    sync()
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(calls):
        fn()
    sync()
    return (time.perf_counter() - t0) / calls, (time.process_time() - c0) / calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", default="cartpole,minatar-breakout")
    parser.add_argument("--agents", default="1,8")
    parser.add_argument("--fill", type=int, default=20_000)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    print(describe_machine())
    print(f"fill {args.fill} env steps per agent, {args.calls} calls x {args.repeats} rounds "
          f"(median round), device {device}")
    print("times in us per call: CPU (wall)")
    print(f"{'preset':<18}{'K':>3}{'batch':>7}{'n':>3}{'uniform':>16}{'prioritized':>16}"
          f"{'dqn step':>18}{'prio/step':>11}{'added/step':>12}")
    for preset in args.presets.split(","):
        for agents in (int(k) for k in args.agents.split(",")):
            cfg, st, prio, gen = build(preset, agents, args.fill, device)
            b = cfg.batch_size

            def uniform(cfg=cfg, st=st, b=b):
                sample(cfg, st.replay, st.uniforms.take(b))

            def prioritized(cfg=cfg, st=st, b=b, prio=prio, gen=gen):
                batch = sample(cfg, prio, st.uniforms.take(b), beta=0.4)
                td = torch.rand(batch.indices.shape, generator=gen, device=device)
                prio.update_priorities(batch.indices, td)

            def step(cfg=cfg, st=st):
                dqn.update(cfg, st)

            times = {"uniform": [], "prioritized": [], "step": []}
            for fn in (uniform, prioritized, step):  # warm-up (compilation, buffers)
                per_call(fn, 5, sync)
            for _ in range(args.repeats):
                for name, fn in (("uniform", uniform), ("prioritized", prioritized),
                                 ("step", step)):
                    times[name].append(per_call(fn, args.calls, sync))
            wall = {name: statistics.median(w for w, _ in t) * 1e6 for name, t in times.items()}
            med = {name: statistics.median(c for _, c in t) * 1e6 for name, t in times.items()}
            cells = "".join(f"{f'{med[n]:.0f} ({wall[n]:.0f})':>{w}}"
                            for n, w in (("uniform", 16), ("prioritized", 16), ("step", 18)))
            print(f"{preset:<18}{agents:>3}{b:>7}{cfg.n_step:>3}{cells}"
                  f"{med['prioritized'] / med['step']:>11.1%}"
                  f"{(med['prioritized'] - med['uniform']) / med['step']:>12.1%}", flush=True)


if __name__ == "__main__":
    main()
