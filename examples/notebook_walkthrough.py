"""The course notebook's path, with semigrad, done right (seed 001).

tensors and autograd -> a value MLP -> semi-gradient TD(0) on CartPole, checked against Monte
Carlo -> the notebook's update and why it blows up -> state-action control (SARSA).

    python examples/notebook_walkthrough.py            # about a minute on a laptop CPU
    python examples/notebook_walkthrough.py --scale 0.1   # a quick pass (what the tests run)

Each section prints what to look at; read the code next to the output.
"""

from __future__ import annotations

import argparse
import tempfile

import torch

from semigrad import policies
from semigrad.algos import sarsa
from semigrad.algos.monte_carlo import NOTEBOOK_PROBE, cartpole_values
from semigrad.algos.sarsa import SarsaConfig
from semigrad.algos.td0 import TD0Config, td0
from semigrad.losses import fold_termination, td_error_loss, td_learning
from semigrad.nets import ValueNetwork
from semigrad.run import read_metrics


def section(title: str) -> None:
    print(f"\n=== {title} " + "=" * max(0, 70 - len(title)))


def autograd_and_the_target(seed: int) -> None:
    section("1. Tensors, autograd, and a target without gradient")
    torch.manual_seed(seed)
    v_hat = ValueNetwork(4, hidden=(64, 64, 64))  # the notebook's 4-64-64-64-1 MLP
    s = torch.tensor([[-0.034, 0.025, 0.015, -0.015]])  # the notebook's first CartPole state
    s_next = torch.tensor([[-0.034, -0.170, 0.015, 0.282]])
    reward, terminated, gamma = torch.tensor([1.0]), torch.tensor([False]), 0.95
    with torch.no_grad():
        v_s, v_next = v_hat(s), v_hat(s_next)
    for rule in ("semi-gradient", "notebook"):
        # the two outputs as leaves, to see the gradient each receives
        out_s, out_next = v_s.clone().requires_grad_(), v_next.clone().requires_grad_()
        if rule == "semi-gradient":  # the target under no_grad
            delta = td_learning(out_s, reward, fold_termination(gamma, terminated), out_next)
            loss = 0.5 * td_error_loss(delta)
        else:
            loss = 0.8 * (reward + gamma * out_next - out_s)  # the notebook's line
        loss.sum().backward()
        grad_next = 0.0 if out_next.grad is None else out_next.grad.item()
        print(f"{rule:>14}: d loss / d v(S) = {out_s.grad.item():+.4f}   "
              f"d loss / d v(S') = {grad_next:+.4f}")
    delta = (reward + gamma * v_next - v_s).item()
    print(f"(delta = R + gamma v(S') - v(S) = {delta:+.4f})")
    print("Look at: semi-gradient TD(0) minimises 0.5 * delta^2 with the target computed under\n"
          "no_grad: d loss / d v(S) = -delta and nothing reaches v(S'), so the step is\n"
          "w += alpha * delta * grad v(S). The notebook's 'loss' alpha * delta is linear: its\n"
          "gradients are -alpha and +alpha * gamma whatever delta is, so every step raises v(S)\n"
          "and lowers gamma v(S'); with S and S' close, v climbs without end.")


def semi_gradient_td0(scale: float, seed: int) -> None:
    section("2. Semi-gradient TD(0) on CartPole (random policy, gamma 0.95)")
    probes = torch.tensor([NOTEBOOK_PROBE, (0.0, 0.0, 0.0, 0.0)])
    truth = cartpole_values(probes, 0.95, rollouts=2000, seed=seed)
    steps = max(2000, int(300_000 * scale))
    runs = {"CartPole's own starts": (), "exploring starts": (2.4, 2.5, 0.2, 2.5)}
    estimates = {}
    for name, box in runs.items():
        config = TD0Config(num_envs=64, steps=steps, gamma=0.95, start_box=box)
        result = td0(config, device="cpu", seed=seed, probes=probes)
        estimates[name] = result.probe_values[-1]
        print(f"{name}: {result.steps:,} transitions in {result.seconds:.1f} s "
              f"({result.steps_per_second:,.0f} transitions/s, 64 environments)")
    for i, state in enumerate(probes.tolist()):
        name = ", ".join(f"{x:g}" for x in state)
        fits = "   ".join(f"{run} {v[i]:7.3f}" for run, v in estimates.items())
        print(f"  v_hat([{name}]): {fits}   Monte Carlo v_pi {truth.values[i]:6.3f} "
              f"+- {truth.stderr[i]:.3f}")
    print("Look at: the true value of the notebook's probe is below 20 (the largest possible,\n"
          "r_max / (1 - gamma) = 20); the notebook printed 13388. The probe is a rare,\n"
          "nearly-fallen state: from CartPole's own starts the random policy seldom goes there,\n"
          "and v_hat there is the network's guess. v_pi does not depend on where episodes\n"
          "start, so starting them anywhere (exploring starts, --start-box) trains v_hat there\n"
          "too (see docs/td0_sarsa.md). The upright state is right either way.")


def notebook_rule(scale: float, seed: int) -> None:
    section("3. The notebook's update, and the divergence rule")
    config = TD0Config(num_envs=1, steps=max(3000, int(20_000 * scale)), alpha=3e-4,
                       alpha_end=3e-4, rule="notebook", log_every=100)
    result = td0(config, device="cpu", seed=seed, probes=torch.tensor([NOTEBOOK_PROBE]))
    print(f"v_hat at the notebook probe: {result.probe_values[0, 0]:.3f} at the start, "
          f"{result.probe_values[-1, 0]:.3f} when the run stopped")
    if result.divergence is not None:
        print(f"stopped: {result.divergence}")
    print("Look at: no state of CartPole is worth more than 20 at gamma 0.95, yet the estimate\n"
          "crosses it after a few hundred steps and keeps climbing: the run is stopped and\n"
          "the cause named.")


def state_action_control(scale: float, seed: int) -> None:
    section("4. State-action control: semi-gradient SARSA with the notebook's q(s, a) network")
    config = SarsaConfig(num_envs=8, steps=max(4000, int(40_000 * scale)),
                         q_form="state-action", action_encoding="index", hidden=(64, 64),
                         eval_every=10**9, eval_episodes=50, tensorboard=False, device="cpu",
                         seed=seed)
    with tempfile.TemporaryDirectory() as run_dir:
        summary = sarsa.train(config, run_dir, progress=False)
        returns = [r["episode_return"] for r in read_metrics(run_dir) if r["episodes"]]
    random = policies.evaluate(lambda obs: torch.randint(2, obs.shape[:1]), "CartPole-v1", 50,
                               seed + 1, torch.device("cpu"))
    print(f"{summary['env_steps']:,} transitions; mean training return {returns[0]:.1f} in the "
          f"first {config.log_every:,} steps, {returns[-1]:.1f} in the last")
    print(f"mean return over 50 episodes: greedy policy {summary['final_eval_return']:.1f}, "
          f"random policy {random.mean().item():.1f}")
    print("Look at: q_hat(s, a) is an MLP on [state, action] (the action as a number, as in the\n"
          "notebook); the target R + gamma q_hat(S', A') uses the action A' the epsilon-greedy\n"
          "policy really takes next, without gradient, and stops at terminal states.")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0,
                        help="multiply every step count (default 1.0; 0.1 for a quick pass)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    autograd_and_the_target(args.seed)
    semi_gradient_td0(args.scale, args.seed)
    notebook_rule(args.scale, args.seed)
    state_action_control(args.scale, args.seed)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
