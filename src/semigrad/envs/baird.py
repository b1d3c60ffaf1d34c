"""Baird's counterexample (Sutton & Barto 2nd ed., section 11.2, Figure 11.1), as exact tensors.

Seven states, two actions: *dashed* (action 0) moves to one of the six upper states uniformly,
*solid* (action 1) moves to the seventh (lower) state. Rewards are zero, so the true value of
every policy is ``v_pi = 0``. Features (Figure 11.1, 8 weights)::

    upper state i = 1..6:  v_hat(i) = 2 w_i + w_8      x(i) = 2 e_i + e_8
    lower state 7:         v_hat(7) = w_7 + 2 w_8      x(7) = e_7 + 2 e_8

Behaviour policy ``b(dashed) = 6/7, b(solid) = 1/7``; target policy ``pi(solid) = 1``; so the
importance ratio ``rho = pi / b`` is 7 for solid and 0 for dashed. Under ``b`` the next state is
uniform over all seven states whatever the current one, so the behaviour state distribution
``mu`` is uniform and a behaviour trajectory started from ``mu`` visits i.i.d. uniform states.

``BairdProblem`` holds the MDP and exposes what the book computes with: ``mu``, the target
policy's transition matrix ``P_pi``, ``v_pi``, the ``mu``-weighted projection ``Pi`` onto the
feature span, VE and PBE (section 11.4). ``BairdEnv`` is the same MDP behind semigrad's batched
environment interface (``semigrad.envs.base``); ``make("Baird-v0")`` / ``make("BairdNotebook-v0")``
build it (``semigrad.envs`` registers both ids with ``register_baird``).

Variants (``VARIANTS``): ``"book"`` as above; ``"notebook"``, the course notebook's version
(seed 001): ``v_hat(s) = 2 w_s + w_8`` for all seven states, gamma 0.95, one-step episodes whose
start state is drawn from the six upper states, and no importance ratio (target = behaviour).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from semigrad.devices import resolve_device
from semigrad.envs.base import BatchedEnv, EnvSpec, EpisodeCounter

NUM_STATES = 7
NUM_FEATURES = 8
DASHED, SOLID = 0, 1
ACTION_NAMES = ("dashed", "solid")
VARIANTS = ("book", "notebook")
ZERO_ERROR_DIRECTION = (1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 4.0, -2.0)
"""Weights proportional to this give ``v_hat = 0 = v_pi`` in every state (book, section 11.7)."""


@dataclass(frozen=True)
class BairdProblem:
    """A finite MDP with linear features, a behaviour and a target policy (float64 tensors).

    Shapes: ``features (S, d)``, ``transitions (S, A, S)`` = p(s' | s, a), ``rewards (S, A)``
    expected reward r(s, a), ``behaviour (S, A)`` = b(a | s), ``target (S, A)`` = pi(a | s),
    ``mu (S,)`` the state distribution the updates are drawn from (and VE, PBE weigh with),
    ``start_weights (d,)``. ``restart``: every transition is a one-step episode whose start
    state is drawn from ``mu`` (the notebook's variant) instead of a continuing trajectory.
    """

    name: str
    features: torch.Tensor
    transitions: torch.Tensor
    rewards: torch.Tensor
    behaviour: torch.Tensor
    target: torch.Tensor
    mu: torch.Tensor
    gamma: float
    start_weights: torch.Tensor
    restart: bool = False

    @property
    def num_states(self) -> int:
        return self.features.shape[0]

    @property
    def num_features(self) -> int:
        return self.features.shape[1]

    @property
    def device(self) -> torch.device:
        return self.features.device

    def importance_ratios(self) -> torch.Tensor:
        """``rho(s, a) = pi(a|s) / b(a|s)`` ``(S, A)`` (S&B eq. 11.1); 0 where ``b`` is 0."""
        b = self.behaviour
        return torch.where(b > 0, self.target / b.clamp_min(torch.finfo(b.dtype).tiny), 0.0)

    def target_transition_matrix(self) -> torch.Tensor:
        """``P_pi[s, s'] = sum_a pi(a|s) p(s'|s, a)`` ``(S, S)``."""
        return torch.einsum("sa,sat->st", self.target, self.transitions)

    def target_rewards(self) -> torch.Tensor:
        """``r_pi[s] = sum_a pi(a|s) r(s, a)`` ``(S,)``."""
        return (self.target * self.rewards).sum(1)

    def true_values(self) -> torch.Tensor:
        """``v_pi = (I - gamma P_pi)^-1 r_pi`` ``(S,)`` (zero for Baird's MDP)."""
        eye = torch.eye(self.num_states, dtype=self.features.dtype, device=self.device)
        return torch.linalg.solve(eye - self.gamma * self.target_transition_matrix(),
                                  self.target_rewards())

    def behaviour_state_distribution(self) -> torch.Tensor:
        """``mu (S,)``: the distribution the off-policy updates sample states from."""
        return self.mu

    def on_policy_distribution(self) -> torch.Tensor:
        """The stationary distribution ``d_pi (S,)`` of ``P_pi`` (S&B 9.2): ``d_pi P_pi = d_pi``.

        For the book's Baird MDP all mass is on the lower state, which the target policy never
        leaves.
        """
        eye = torch.eye(self.num_states, dtype=self.features.dtype, device=self.device)
        # (I - P_pi^T) d = 0 has rank S - 1: replace its last equation by sum(d) = 1.
        lhs = (eye - self.target_transition_matrix()).T
        lhs[-1] = 1.0
        return torch.linalg.solve(lhs, eye[-1])

    def values(self, w: torch.Tensor) -> torch.Tensor:
        """``v_hat = X w``: ``w (..., d)`` -> ``(..., S)``."""
        return w @ self.features.T

    def bellman_error(self, w: torch.Tensor) -> torch.Tensor:
        """Bellman error vector ``delta_bar_w = B_pi v_w - v_w`` ``(..., S)`` (S&B eq. 11.20)."""
        v = self.values(w)
        return self.target_rewards() + self.gamma * v @ self.target_transition_matrix().T - v

    def projection(self, mu: torch.Tensor | None = None) -> torch.Tensor:
        """``Pi = X (X^T D X)^+ X^T D`` ``(S, S)``, the ``mu``-weighted projection onto span(X).

        S&B eq. 11.14, with the pseudo-inverse because Baird's ``X^T D X`` (8x8, rank 7) is
        singular; ``mu`` defaults to the behaviour state distribution.
        """
        mu = self.mu if mu is None else mu
        x = self.features
        xdx = x.T @ (mu[:, None] * x)
        return x @ torch.linalg.pinv(xdx, hermitian=True) @ x.T * mu[None, :]

    def value_error(self, w: torch.Tensor, mu: torch.Tensor | None = None) -> torch.Tensor:
        """``VE(w) = sum_s mu(s) (v_pi(s) - v_hat(s, w))^2``, ``(..., d)`` -> ``(...,)`` (9.1)."""
        return self.sqrt_value_error(w, mu) ** 2

    def projected_bellman_error(self, w: torch.Tensor, mu: torch.Tensor | None = None
                                ) -> torch.Tensor:
        """``PBE(w) = ||Pi delta_bar_w||^2_mu``: ``w (..., d)`` -> ``(...,)`` (S&B eq. 11.22)."""
        return self.sqrt_projected_bellman_error(w, mu) ** 2

    def sqrt_value_error(self, w: torch.Tensor, mu: torch.Tensor | None = None) -> torch.Tensor:
        """``sqrt(VE(w))`` ``(...,)``, finite for every finite ``w`` (no overflow in squares)."""
        mu = self.mu if mu is None else mu
        return mu_norm(self.values(w) - self.true_values(), mu)

    def sqrt_projected_bellman_error(self, w: torch.Tensor, mu: torch.Tensor | None = None
                                     ) -> torch.Tensor:
        """``sqrt(PBE(w))`` ``(...,)``, finite for every finite ``w``."""
        mu = self.mu if mu is None else mu
        return mu_norm(self.bellman_error(w) @ self.projection(mu).T, mu)


def mu_norm(e: torch.Tensor, mu: torch.Tensor) -> torch.Tensor:
    """``||e||_mu = sqrt(sum_s mu(s) e_s^2)``: ``e (..., S)`` -> ``(...,)``, scaled so that
    squaring huge entries does not overflow (S&B eq. 11.11)."""
    scale = e.abs().amax(-1, keepdim=True).clamp_min(torch.finfo(e.dtype).tiny)
    return ((e / scale) ** 2 * mu).sum(-1).sqrt() * scale.squeeze(-1)


def _policy(probs: tuple[float, float], dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    return torch.tensor([probs] * NUM_STATES, dtype=dtype, device=device)


def _transitions(dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    p = torch.zeros(NUM_STATES, 2, NUM_STATES, dtype=dtype, device=device)
    p[:, DASHED, :-1] = 1.0 / (NUM_STATES - 1)
    p[:, SOLID, -1] = 1.0
    return p


def baird(device: str | torch.device | None = None, gamma: float = 0.99) -> BairdProblem:
    """The book's Baird counterexample (Figure 11.1; start weights of Figure 11.2)."""
    device = resolve_device(device)
    dt = torch.float64
    x = torch.zeros(NUM_STATES, NUM_FEATURES, dtype=dt, device=device)
    upper = torch.arange(NUM_STATES - 1, device=device)
    x[upper, upper] = 2.0
    x[upper, 7] = 1.0
    x[6, 6], x[6, 7] = 1.0, 2.0
    return BairdProblem(
        name="book",
        features=x,
        transitions=_transitions(dt, device),
        rewards=torch.zeros(NUM_STATES, 2, dtype=dt, device=device),
        behaviour=_policy((6 / 7, 1 / 7), dt, device),
        target=_policy((0.0, 1.0), dt, device),
        mu=torch.full((NUM_STATES,), 1.0 / NUM_STATES, dtype=dt, device=device),
        gamma=gamma,
        start_weights=torch.tensor([1.0, 1, 1, 1, 1, 1, 10, 1], dtype=dt, device=device),
    )


def baird_notebook(device: str | torch.device | None = None, gamma: float = 0.95) -> BairdProblem:
    """The course notebook's variant (seed 001, last cells).

    ``v_hat(s) = 2 w_s + w_8`` for all seven states (the lower state too), gamma 0.95,
    states drawn from the upper six (``np.random.choice(6)``), one transition each, behaviour
    6/7 dashed / 1/7 solid, and no importance ratio (the target policy is the behaviour policy).
    The notebook starts from ``torch.randn(8)``; we start from the book's weights so that runs
    of the two variants are comparable.
    """
    device = resolve_device(device)
    dt = torch.float64
    x = torch.zeros(NUM_STATES, NUM_FEATURES, dtype=dt, device=device)
    states = torch.arange(NUM_STATES, device=device)
    x[states, states] = 2.0
    x[:, 7] = 1.0
    mu = torch.full((NUM_STATES,), 1.0 / (NUM_STATES - 1), dtype=dt, device=device)
    mu[-1] = 0.0
    behaviour = _policy((6 / 7, 1 / 7), dt, device)
    return BairdProblem(
        name="notebook",
        features=x,
        transitions=_transitions(dt, device),
        rewards=torch.zeros(NUM_STATES, 2, dtype=dt, device=device),
        behaviour=behaviour,
        target=behaviour.clone(),
        mu=mu,
        gamma=gamma,
        start_weights=torch.tensor([1.0, 1, 1, 1, 1, 1, 10, 1], dtype=dt, device=device),
        restart=True,
    )


def make_baird(variant: str = "book", device: str | torch.device | None = None,
               gamma: float | None = None) -> BairdProblem:
    """``baird`` or ``baird_notebook`` by name (``VARIANTS``); ``gamma=None`` keeps its default."""
    builders = {"book": baird, "notebook": baird_notebook}
    if variant not in builders:
        raise ValueError(f"variant: {variant!r} is not one of {', '.join(map(repr, VARIANTS))}")
    return builders[variant](device) if gamma is None else builders[variant](device, gamma)


class BairdEnv(BatchedEnv):
    """``num_envs`` copies of a ``BairdProblem`` behind the batched interface.

    Observations are the feature vectors ``x(S) (N, d)`` in float64 (the counterexample is
    about exact linear arithmetic); ``env.state (N,)`` int64 holds the state indices, and
    ``info["final_state"]`` the states the transitions ended in. The book's MDP is continuing
    (never terminated nor truncated); the notebook variant truncates every transition (a
    one-step episode, bootstrapped from ``info["final_obs"]``) and restarts from ``mu``.
    """

    def __init__(self, problem: BairdProblem, num_envs: int = 1,
                 device: str | torch.device | None = None, seed: int | None = None,
                 env_id: str | None = None) -> None:
        self.device = resolve_device(device)
        self.problem = problem
        self.num_envs = num_envs
        self.spec = EnvSpec(id=env_id or f"Baird-{problem.name}", obs_dim=problem.num_features,
                            num_actions=2, reward_threshold=None,
                            max_episode_steps=1 if problem.restart else None, backend="semigrad")
        self._x = problem.features.to(self.device)
        self._p = problem.transitions.to(self.device)
        self._r = problem.rewards.to(self.device)
        self._mu = problem.mu.to(self.device)
        self._gen = torch.Generator(device=self.device)
        if seed is not None:
            self._gen.manual_seed(seed)
        self._episodes = EpisodeCounter(num_envs, self.device)
        self.state = self._starts()

    def _starts(self) -> torch.Tensor:
        return torch.multinomial(self._mu.expand(self.num_envs, -1), 1, replacement=True,
                                 generator=self._gen).squeeze(1)

    def reset(self) -> torch.Tensor:
        self.state = self._starts()
        self._episodes.reset()
        return self._x[self.state]

    def step(self, actions: torch.Tensor):
        self.check_actions(actions)
        nxt = torch.multinomial(self._p[self.state, actions], 1, generator=self._gen).squeeze(1)
        reward = self._r[self.state, actions]
        terminated = torch.zeros(self.num_envs, dtype=torch.bool, device=self.device)
        truncated = torch.full_like(terminated, self.problem.restart)
        ep_return, ep_length = self._episodes.update(reward, truncated)
        self.state = torch.where(truncated, self._starts(), nxt)
        info = {"final_obs": self._x[nxt], "final_state": nxt,
                "episode_return": ep_return, "episode_length": ep_length}
        return self._x[self.state], reward, terminated, truncated, info


def _factory(variant: str, env_id: str):
    def build(num_envs: int, device: torch.device, seed: int | None) -> BairdEnv:
        return BairdEnv(make_baird(variant, device), num_envs, device=device, seed=seed,
                        env_id=env_id)

    return build


def register_baird(register) -> None:
    """``register(env_id, factory)`` ``Baird-v0`` (the book's variant) and
    ``BairdNotebook-v0`` (the notebook's)."""
    register("Baird-v0", _factory("book", "Baird-v0"))
    register("BairdNotebook-v0", _factory("notebook", "BairdNotebook-v0"))
