"""``semigrad grad``: show where the gradient of the Q-learning loss goes (seed 000)."""

from __future__ import annotations

import argparse
import sys

import torch

from semigrad.commands._common import add_run_arguments, finish_run, start_run
from semigrad.losses import LOSS_KINDS, q_learning_loss_per_sample, taken_action_values

NAME = "grad"
HELP = "print and plot d loss / d q for a Q matrix and taken actions"
DESCRIPTION = """\
Compute the Q-learning regression loss for a Q matrix (B, A), the taken actions (B,) and
targets (B,), and show its gradient with respect to every network output. Only the taken
actions' entries are non-zero: 2 * (q[i, a_i] - target_i) / B for the squared error. The loss
is semigrad.losses.q_learning_loss_per_sample, the seed question's per-sample loop.

Defaults: the 5x3 example of the DQN question (seed 000) with targets drawn from --seed.

  semigrad grad
  semigrad grad --q "0.235,1.200,1.321" --actions 1 --targets 0.890
"""

SEED_Q = "4.0,2.5,2.9; 1.2,1.5,1.9; 5.0,5.5,5.9; 4.8,2.5,2.9; 4.0,2.8,3.9"
SEED_ACTIONS = "2,1,1,0,1"


def _floats(text: str, what: str) -> list[float]:
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ValueError(f"{what}: expected comma-separated numbers, got {text!r}") from None


def parse_matrix(text: str) -> torch.Tensor:
    """``"1,2;3,4"`` -> a float64 ``(2, 2)`` tensor (rows split by ';', entries by ',')."""
    rows = [_floats(row, "--q") for row in text.split(";") if row.strip()]
    if not rows or any(len(r) != len(rows[0]) for r in rows) or not rows[0]:
        raise ValueError(f"--q: rows must be non-empty and of equal length, got {text!r}")
    return torch.tensor(rows, dtype=torch.float64)


def parse_actions(text: str) -> torch.Tensor:
    try:
        return torch.tensor([int(x) for x in text.split(",") if x.strip()], dtype=torch.int64)
    except ValueError:
        raise ValueError(f"--actions: expected comma-separated integers, got {text!r}") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--q", default=SEED_Q,
                        help="Q matrix, rows separated by ';' (default: the seed's 5x3 example)")
    parser.add_argument("--actions", default=SEED_ACTIONS,
                        help="taken action per row (default: %(default)s)")
    parser.add_argument("--targets", default=None,
                        help="target per row (default: q[i, a_i] + N(0, 1) noise from --seed)")
    parser.add_argument("--loss", choices=LOSS_KINDS, default="mse", help="default: mse")
    add_run_arguments(parser, device=False)


def run(args: argparse.Namespace) -> int:
    q = parse_matrix(args.q)
    actions = parse_actions(args.actions)
    if actions.shape[0] != q.shape[0]:
        raise ValueError(f"--actions: need one action per row of --q ({q.shape[0]}), "
                         f"got {actions.shape[0]}")
    taken = taken_action_values(q, actions)  # validates actions' range
    if args.targets is None:
        noise = torch.randn(q.shape[0], generator=torch.Generator().manual_seed(args.seed),
                            dtype=torch.float64)
        targets = (taken + noise).round(decimals=2)
    else:
        targets = torch.tensor(_floats(args.targets, "--targets"), dtype=torch.float64)
        if targets.shape != taken.shape:
            raise ValueError(f"--targets: need one target per row of --q ({q.shape[0]}), "
                             f"got {targets.shape[0]}")

    run_dir = start_run(args, NAME, {"q": q.tolist(), "actions": actions.tolist(),
                                     "targets": targets.tolist(), "loss": args.loss})
    q.requires_grad_(True)
    # a target given outright is a transition that does not bootstrap: r = target, discount 0
    no_bootstrap = torch.zeros_like(targets)
    loss = q_learning_loss_per_sample(q, actions, targets, no_bootstrap, torch.zeros_like(q),
                                      kind=args.loss)
    loss.backward()
    grad = q.grad

    print(format_gradient_table(q.detach(), grad, actions, targets, color=sys.stdout.isatty()))
    from semigrad.plots.gradients import gradient_heatmap

    png = gradient_heatmap(q.detach().numpy(), grad.numpy(), actions.numpy(),
                           run_dir / "grad.png", title=f"d {args.loss} loss / d q")
    off_taken = grad.clone()
    off_taken[torch.arange(len(actions)), actions] = 0
    summary = {
        "loss": loss.item(),
        "kind": args.loss,
        "taken_values": taken.tolist(),
        "targets": targets.tolist(),
        "grad": grad.tolist(),
        "max_abs_grad_off_taken": off_taken.abs().max().item(),
        "figure": str(png),
    }
    finish_run(run_dir, "semigrad grad", summary,
               shown={"loss": loss.item(), "non-zero gradients": int((grad != 0).sum()),
                      "max |grad| off taken actions": summary["max_abs_grad_off_taken"],
                      "figure": str(png)})
    return 0


def format_gradient_table(q, grad, actions, targets, color: bool = False) -> str:
    """Rows of ``grad (B, A)`` with the taken action marked ``*`` (and yellow when ``color``)."""
    batch, num_actions = grad.shape
    head = "sample |" + "".join(f"{'a=' + str(a):>12}" for a in range(num_actions))
    lines = [head + f" | {'q[i,a_i]':>9} {'target':>9}", "-" * (len(head) + 22)]
    for i in range(batch):
        cells = []
        for a in range(num_actions):
            text = f"{grad[i, a].item():+.4f}" + ("*" if a == actions[i] else " ")
            text = f"{text:>12}"
            if color and a == actions[i]:
                text = f"\x1b[30;43m{text}\x1b[0m"
            cells.append(text)
        lines.append(f"{i:>6} |" + "".join(cells)
                     + f" | {q[i, actions[i]].item():9.4f} {targets[i].item():9.4f}")
    lines.append("* taken action: the only entry of each row that receives gradient")
    return "\n".join(lines)
