"""Shared check for tests: the fast (stacked) and general (vmap / per-agent) Q-network paths
of ``dqn.learn`` agree."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import replace

import torch
from torch import nn

from semigrad.algos import dqn
from semigrad.buffers import Batch
from semigrad.losses import fold_termination

# Gradients of the two paths, in float64, agree to GRAD_ATOL. The error argument: the paths
# compute the same sums in different kernels and orders (batched products on patches with a
# hand-written backward, against autograd through conv2d / linear); each gradient entry is a
# sum of n <= a few hundred products of numbers of size <= ~1 (0/1 frames or N(0, 1) inputs,
# weights and d loss / d q = 2 e / B below 1), so reordering it moves it by at most about
# n * u * sum|terms| <= 300 * 1.1e-16 * 300 = 1e-11 (u: float64's unit roundoff); the forward
# pass's own rounding enters d loss / d q at the same scale. 1e-10 leaves a factor 10 above that
# worst case (seen: 4e-16); a relative error of 1e-6 in one layer's gradient still fails it.
GRAD_ATOL = 1e-10


def _float64_batch(batch: Batch) -> Batch:
    """``batch`` with its float fields in float64 (frames stay uint8)."""
    return Batch(*(x.double() if x is not None and x.is_floating_point() else x
                   for x in (batch.obs, batch.actions, batch.rewards, batch.next_obs,
                             batch.terminated, batch.truncated, batch.discounts)))


def _agent_grads(net, k: int, template: nn.Module) -> dict:
    """Agent k's ``.grad`` of ``net``'s stacked parameters under ``template``'s names."""
    view = copy.copy(net)
    view.params = [p.grad for p in net.params]
    state = view.agent_state_dict(k, template)
    return {name: state[name] for name, _ in template.named_parameters()}


def learn_on_both_backends(cfg: dqn.DQNConfig, batch: Batch, seeds: Sequence[int],
                           template: nn.Module, steps: int = 3) -> None:
    """Build ``cfg``'s K agents on the stacked and the vmap backends, in float64 (the same
    initial weights, asserted exactly: the same initialisation, copied), and take ``steps``
    learning steps with each on ``batch``. At every step, just before the optimizer: the same
    losses, mean Q-values and (clipped) gradients of every agent to ``GRAD_ATOL``. Then the
    general path takes the fast path's new weights, so that the next step's gradients are
    again taken at the same weights; agent 0's weights must have moved on both paths.

    Weights after Adam are not compared: Adam divides by ``sqrt(v) + 1e-8``, so an element
    whose gradient is near 0 turns the paths' rounding differences into a step of up to the
    learning rate in either direction (float32: 6e-6 apart after three steps, on an Intel
    Xeon), whatever the two paths' agreement."""
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)  # the networks are made in float64
    try:
        states = [dqn.init(replace(cfg, q_backend=b), list(seeds), torch.device("cpu"))
                  for b in ("stacked", "vmap")]
    finally:
        torch.set_default_dtype(default)
    fast, general = states
    assert type(general.online).__name__ == "ModuleEnsemble"
    assert all(p.dtype == torch.float64 for st in states for p in st.online.params)
    batch = _float64_batch(batch)
    before = [st.online.agent_state_dict(0, template) for st in states]
    assert all(torch.equal(before[0][n], before[1][n]) for n in before[0])
    grads: dict[int, list] = {0: [], 1: []}
    for i, st in enumerate(states):  # record each step's gradients, then step as ever
        def record(st=st, step=st.optimizer_step, out=grads[i]):
            out.append([_agent_grads(st.online, k, template) for k in range(len(seeds))])
            return step()

        st.optimizer_step = record
    names = [name for name, _ in template.named_parameters()]
    for step in range(steps):
        moved_from = [st.online.agent_state_dict(0, template) for st in states]
        for st in states:
            dqn.learn(cfg, st, batch,
                      fold_termination(cfg.gamma, batch.terminated, torch.float64))
        # summed losses (column 2) and mean Q-values (column 3): sums of B numbers of ~1
        torch.testing.assert_close(general.acc, fast.acc, rtol=0, atol=GRAD_ATOL)
        for k in range(len(seeds)):
            for name in names:
                torch.testing.assert_close(grads[1][step][k][name], grads[0][step][k][name],
                                           rtol=0, atol=GRAD_ATOL,
                                           msg=lambda m, k=k, n=name, s=step:
                                           f"step {s}, agent {k}, d loss / d {n}: {m}")
        for st, start in zip(states, moved_from, strict=True):
            now = st.online.agent_state_dict(0, template)
            assert not all(torch.equal(now[n], start[n]) for n in now), "nothing learned"
        with torch.no_grad():  # the general path continues from the fast path's weights
            for k in range(len(seeds)):
                weights = fast.online.agent_state_dict(k, template)
                for name, p in zip(names, general.online.params, strict=True):
                    p[k].copy_(weights[name])
