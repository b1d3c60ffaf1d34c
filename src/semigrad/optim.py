"""A lean optimizer step for hot loops: torch's own kernels without ``optimizer.step()``'s
per-call Python work (about 100 us, more than a small network's whole update on a CPU).

Used by the TD(0) fast path (``semigrad.algos.td0``) and by DQN (``semigrad.algos.dqn``);
``tests/test_td0.py`` checks it is ``optimizer.step()`` bit for bit. Also here: gradient-norm
clipping per agent, for K agents' parameters stacked along dimension 0.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch


def lean_step(optimizer: torch.optim.Optimizer, params: list[torch.Tensor],
              per_row: bool = False) -> Callable[[list[torch.Tensor]], None] | None:
    """``step(grads)``: one step of ``optimizer`` on ``params`` (its only group) from ``grads``,
    without ``optimizer.step()``'s per-call Python work (about 100 us, more than a small net's
    whole update). None when ``optimizer`` is not one of:

    * plain ``torch.optim.SGD`` (no momentum, weight decay, maximize): ``w <- w - lr g`` in one
      foreach kernel;
    * ``torch.optim.Adam(fused=True)`` without amsgrad, weight decay, maximize: torch's fused
      Adam kernel on the optimizer's own state (``exp_avg``, ``exp_avg_sq``, ``step``), so the
      numbers are those of ``optimizer.step()`` and the optimizer can carry on from there.

    The learning rate is read from ``optimizer.param_groups[0]["lr"]`` at every call; build
    the step after loading any optimizer state (it holds on to the state's tensors).

    ``per_row``: the parameters are K agents' stacked along dimension 0, and Adam steps each
    agent's row as a tensor of its own (still one fused call). The fused kernel runs a
    vectorised loop over a tensor and a scalar loop over its tail, which round differently,
    so an element's rounding would depend on where its row falls in the stacked tensor, i.e.
    on K; per row, agent k's numbers are those of a single agent's.
    """
    if len(optimizer.param_groups) != 1:
        return None
    group = optimizer.param_groups[0]
    if [id(p) for p in group["params"]] != [id(p) for p in params]:
        return None
    if type(optimizer) is torch.optim.SGD:
        if group["momentum"] or group["weight_decay"] or group["maximize"]:
            return None

        @torch.no_grad()
        def sgd(grads: list[torch.Tensor]) -> None:
            torch._foreach_add_(params, grads, alpha=-group["lr"])

        return sgd
    if type(optimizer) is not torch.optim.Adam or not group["fused"] or any(
            group[k] for k in ("amsgrad", "weight_decay", "maximize", "capturable",
                               "differentiable", "decoupled_weight_decay")):
        return None
    # The state optimizer.step() would create. Fresh step counters are views of one tensor,
    # so one add advances them all (optimizer.step() still advances each once).
    fresh = not any(optimizer.state[p] for p in params)
    counters = torch.zeros(len(params), dtype=torch.float32, device=params[0].device)
    for i, p in enumerate(params):
        state = optimizer.state[p]
        if not state:
            state["step"] = counters[i] if fresh else torch.zeros_like(counters[0])
            state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
    steps = [optimizer.state[p]["step"] for p in params]
    exp_avgs = [optimizer.state[p]["exp_avg"] for p in params]
    exp_avg_sqs = [optimizer.state[p]["exp_avg_sq"] for p in params]
    beta1, beta2 = group["betas"]

    split = (lambda ts: [row for t in ts for row in t.unbind(0)]) if per_row else list
    k = params[0].shape[0] if per_row else 1
    rows = (split(params), split(exp_avgs), split(exp_avg_sqs),
            [step for step in steps for _ in range(k)])

    @torch.no_grad()
    def adam(grads: list[torch.Tensor]) -> None:
        if fresh:
            counters.add_(1)
        else:
            torch._foreach_add_(steps, 1)
        torch._fused_adam_(rows[0], split(grads), rows[1], rows[2], [], rows[3],
                           lr=group["lr"], beta1=beta1, beta2=beta2, weight_decay=0.0,
                           eps=group["eps"], amsgrad=False, maximize=False)

    return adam


def optimizer_step(optimizer: torch.optim.Optimizer,
                   params: list[torch.Tensor]) -> Callable[[], object]:
    """``optimizer.step()`` on K agents' stacked ``params``' ``.grad``, as ``lean_step`` with
    ``per_row`` (each agent's row stepped as its own tensor) where it applies. Build it after
    loading any optimizer state."""
    lean = lean_step(optimizer, params, per_row=True)
    if lean is None:
        return optimizer.step
    return lambda: lean([p.grad for p in params])


@torch.no_grad()
def clip_grad_norm_per_agent(params: Sequence[torch.Tensor], max_norm: float) -> torch.Tensor:
    """``nn.utils.clip_grad_norm_`` for each agent; returns the norms ``(K,)`` before clipping.

    Agent k's gradients (row k of every stacked parameter) are scaled by
    ``min(1, max_norm / (||g_k|| + 1e-6))``, ``||g_k||`` the norm over all of its parameters.
    """
    grads = [p.grad for p in params]
    k = grads[0].shape[0]
    # (K, P), reduced along its rows: each agent's sum runs in the same order whatever K is
    per_param = torch.stack([torch.linalg.vector_norm(g.reshape(k, -1), dim=1) for g in grads],
                            dim=1)
    total = torch.linalg.vector_norm(per_param, dim=1)
    coef = (max_norm / (total + 1e-6)).clamp(max=1.0)
    for g in grads:
        g.mul_(coef.view(k, *([1] * (g.dim() - 1))))
    return total
