"""Shared check for tests: the fast (stacked) and general (vmap / per-agent) Q-network paths
of ``dqn.learn`` agree."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import torch
from torch import nn

from semigrad.algos import dqn
from semigrad.buffers import Batch


def learn_on_both_backends(cfg: dqn.DQNConfig, batch: Batch, seeds: Sequence[int],
                           template: nn.Module, steps: int = 3, atol: float = 1e-6) -> None:
    """Build ``cfg``'s K agents on the stacked and the vmap backends (the same initial
    weights, asserted), take ``steps`` learning steps on ``batch`` with each, and assert that
    every agent's weights agree to ``atol``, and that agent 0's weights moved."""
    states = [dqn.init_state(replace(cfg, q_backend=b), list(seeds), ["x"] * len(seeds),
                             torch.device("cpu")) for b in ("stacked", "vmap")]
    assert type(states[1].online).__name__ == "ModuleEnsemble"
    before = [st.online.agent_state_dict(0, template) for st in states]
    assert all(torch.equal(before[0][n], before[1][n]) for n in before[0])
    for _ in range(steps):
        for st in states:
            dqn.learn(cfg, st, batch, cfg.gamma)
    for k in range(len(seeds)):
        fast, general = (st.online.agent_state_dict(k, template) for st in states)
        for name in fast:
            torch.testing.assert_close(general[name], fast[name], rtol=0, atol=atol)
    fast0 = states[0].online.agent_state_dict(0, template)
    assert not all(torch.equal(fast0[n], before[0][n]) for n in fast0), "nothing learned"
