"""Divergence guard: stop a value-learning run whose estimates leave the possible range.

With rewards bounded by ``|R| <= r_max`` and discount ``gamma < 1``, every true value obeys
``|v_pi(s)| <= r_max / (1 - gamma)`` (the geometric series; Sutton & Barto 3.3), and so does
every action value. A TD error ``delta = R + gamma v(S') - v(S)`` of values within that bound
obeys ``|delta| <= r_max + (1 + gamma) r_max / (1 - gamma) = 2 r_max / (1 - gamma)``. An
estimate beyond these bounds, or a non-finite one, is not noise: the run has diverged, and
training further only produces larger numbers (the course notebook printed 13388 for a
state worth less than 20).

Function approximators overshoot the bound a little while they learn (most of all in
control, where the greedy policy's bootstrapped targets overestimate), so the guard trips
at ``SLACK = 1.5`` times the bound: far below where a diverging run goes, far above
where a healthy one wanders. The check costs one ``.item()`` per watched tensor, so it
runs every ``every`` updates (divergence persists; a step between two checks is reported
at the next check).
``gamma = 1`` has no finite bound: only non-finite values are caught then.
"""

from __future__ import annotations

import math

import torch

SLACK = 1.5

USUAL_CAUSES = {
    "notebook": (
        "the notebook's update: its 'loss' alpha * (R + gamma v(S') - v(S)) is not a squared "
        "error, and minimising it lets gradient flow through v(S'), so it pushes v(S) up "
        "without end; use the semi-gradient rule (target without gradient, S&B 9.3)"
    ),
    "default": (
        "usually a step size alpha too large for the network and optimizer, gradient "
        "flowing through the bootstrap target, or off-policy bootstrapping with function "
        "approximation (the deadly triad, S&B 11.3); lower --alpha or check the rule"
    ),
}


class DivergenceError(RuntimeError):
    """A run's values or TD errors became non-finite or left ``|v| <= r_max / (1 - gamma)``.

    Attributes: ``what`` (the quantity, e.g. ``"v_hat"``), ``step`` (transitions so far),
    ``value`` (its largest magnitude, possibly inf/NaN), ``bound`` (the largest magnitude
    possible, ``r_max / (1 - gamma)`` for values, twice that for TD errors).
    """

    def __init__(self, what: str, step: int, value: float, bound: float, cause: str) -> None:
        self.what, self.step, self.value, self.bound = what, step, value, bound
        if math.isfinite(value):
            broke = (f"max |{what}| = {value:.4g}, over {SLACK:g} x its largest possible "
                     f"value {bound:.4g}")
        else:
            broke = f"{what} became {value}"
        super().__init__(f"diverged at step {step:,}: {broke}. Cause: {cause}.")


def value_bound(r_max: float, gamma: float) -> float:
    """``r_max / (1 - gamma)``, the largest possible ``|v_pi(s)|`` (``inf`` when gamma = 1)."""
    return math.inf if gamma >= 1 else r_max / (1.0 - gamma)


class DivergenceGuard:
    """Checks value estimates and TD errors every ``every`` updates.

    ``check(step, values, td_errors)``: ``values`` any tensor of value estimates (v or q),
    ``td_errors`` the TD errors of the same update; raises ``DivergenceError`` when a value
    exceeds ``SLACK * r_max / (1 - gamma)``, a TD error ``SLACK * 2 r_max / (1 - gamma)``, or
    either is not finite. ``rule`` picks the explanation of the usual cause ("notebook" or any).
    """

    def __init__(
        self,
        r_max: float,
        gamma: float,
        every: int = 100,
        enabled: bool = True,
        value_name: str = "v_hat",
        rule: str = "default",
    ) -> None:
        if every < 1:
            raise ValueError(f"DivergenceGuard: every must be >= 1, got {every}")
        self.value_bound = value_bound(r_max, gamma)
        self.td_bound = 2 * self.value_bound
        self.every = every
        self.enabled = enabled
        self.value_name = value_name
        self.cause = USUAL_CAUSES.get(rule, USUAL_CAUSES["default"])
        if enabled and every > 1:
            self.cause += f" (checked every {every} updates)"

    def due(self, update: int) -> bool:
        """Whether update number ``update`` (0-based) is one to check."""
        return self.enabled and update % self.every == 0

    def check(self, step: int, values: torch.Tensor, td_errors: torch.Tensor) -> None:
        """Raise ``DivergenceError`` if ``values`` or ``td_errors`` are out of bounds."""
        for what, tensor, bound in (
            (self.value_name, values, self.value_bound),
            ("TD error delta", td_errors, self.td_bound),
        ):
            peak = tensor.detach().abs().max().item()
            if not peak <= SLACK * bound:  # also catches NaN
                raise DivergenceError(what, step, peak, bound, self.cause)
