"""Noisy nets: exploration by learned parameter noise instead of epsilon-greedy.

Fortunato, Azar, Piot, Menick, Osband, Graves, Mnih, Munos, Hassabis, Pietquin, Blundell &
Legg 2018, "Noisy Networks for Exploration" (ICLR), factorised Gaussian noise (section 3.2):
a linear layer ``y = (mu_w + sigma_w * eps_w) x + mu_b + sigma_b * eps_b`` whose ``mu`` and
``sigma`` are both learned, with ``eps_w = f(eps_out) f(eps_in)^T``, ``eps_b = f(eps_out)``,
``eps_in (p,)``, ``eps_out (q,)`` standard normal and ``f(x) = sign(x) sqrt(|x|)``: p + q
normal draws per layer instead of p q + q. Rainbow (Hessel et al. 2018) uses them in place of
epsilon-greedy, resampling before every action selection and every gradient step.

Noise is drawn only by ``resample_noise`` (from a ``torch.Generator``, so runs reproduce) and
kept in buffers, so a forward pass is a pure function of parameters, noise and input, and a
checkpoint (``state_dict``) holds the noise too. ``eval()`` uses the means alone.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from semigrad.seeding import agent_generators


def scaled_noise(n: int, generator: torch.Generator | None = None,
                 device: torch.device | str | None = None,
                 dtype: torch.dtype | None = None) -> torch.Tensor:
    """``f(eps) = sign(eps) sqrt(|eps|)`` of ``n`` standard normal draws, ``(n,)``."""
    eps = torch.randn(n, generator=generator, device=device, dtype=dtype)
    return eps.sign() * eps.abs().sqrt()


class NoisyLinear(nn.Module):
    """A factorised-Gaussian noisy linear layer ``in_features -> out_features`` (Fortunato et
    al. 2018, section 3.2 and 3.2.1's initialisation): ``mu`` uniform in ``[-1/sqrt(p),
    1/sqrt(p)]`` and ``sigma = sigma0 / sqrt(p)`` (``p = in_features``; the paper's ``sigma0 =
    0.5``). Parameters ``weight_mu``, ``weight_sigma (q, p)``, ``bias_mu``, ``bias_sigma (q,)``;
    buffers ``eps_in (p,)``, ``eps_out (q,)``: the current noise, already through ``f``.

    ``generator``: where ``resample_noise`` draws from unless given one (default: torch's
    global generator). Training mode uses the noisy weights, evaluation mode (``eval()``) the
    means. Noise starts drawn (``resample_noise`` in ``__init__``, after the parameters).
    """

    def __init__(self, in_features: int, out_features: int, sigma0: float = 0.5,
                 generator: torch.Generator | None = None,
                 device: torch.device | str | None = None,
                 dtype: torch.dtype | None = None) -> None:
        super().__init__()
        if in_features < 1 or out_features < 1:
            raise ValueError(f"NoisyLinear: in_features and out_features must be >= 1, got "
                             f"{in_features} and {out_features}")
        if not sigma0 >= 0:
            raise ValueError(f"NoisyLinear: sigma0 must be >= 0, got {sigma0!r}")
        self.in_features, self.out_features, self.sigma0 = in_features, out_features, sigma0
        self.generator = generator
        kw = {"device": device, "dtype": dtype}
        self.weight_mu = nn.Parameter(torch.empty(out_features, in_features, **kw))
        self.weight_sigma = nn.Parameter(torch.empty(out_features, in_features, **kw))
        self.bias_mu = nn.Parameter(torch.empty(out_features, **kw))
        self.bias_sigma = nn.Parameter(torch.empty(out_features, **kw))
        self.register_buffer("eps_in", torch.zeros(in_features, **kw))
        self.register_buffer("eps_out", torch.zeros(out_features, **kw))
        self.reset_parameters()
        self.resample_noise()

    def reset_parameters(self) -> None:
        """The paper's initialisation (section 3.2.1, factorised noise)."""
        bound = 1 / math.sqrt(self.in_features)
        with torch.no_grad():
            self.weight_mu.uniform_(-bound, bound, generator=self.generator)
            self.bias_mu.uniform_(-bound, bound, generator=self.generator)
            self.weight_sigma.fill_(self.sigma0 * bound)
            self.bias_sigma.fill_(self.sigma0 * bound)

    def resample_noise(self, generator: torch.Generator | None = None) -> None:
        """New ``eps_in`` and ``eps_out`` (``p + q`` normal draws, input side first) from
        ``generator``, else the layer's own."""
        gen = generator if generator is not None else self.generator
        kw = {"device": self.eps_in.device, "dtype": self.eps_in.dtype}
        self.eps_in.copy_(scaled_noise(self.in_features, gen, **kw))
        self.eps_out.copy_(scaled_noise(self.out_features, gen, **kw))

    def weight_epsilon(self) -> torch.Tensor:
        """The weight noise ``eps_w = eps_out eps_in^T``, ``(q, p)``."""
        return torch.outer(self.eps_out, self.eps_in)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x (..., p)`` -> ``(..., q)``: noisy in training mode, the means in eval mode."""
        if not self.training:
            return F.linear(x, self.weight_mu, self.bias_mu)
        weight = torch.addcmul(self.weight_mu, self.weight_sigma, self.weight_epsilon())
        bias = torch.addcmul(self.bias_mu, self.bias_sigma, self.eps_out)
        return F.linear(x, weight, bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, " \
               f"sigma0={self.sigma0}"


def noisy_layers(module: nn.Module) -> list[NoisyLinear]:
    """The ``NoisyLinear`` layers of ``module``, in ``modules()`` order."""
    return [m for m in module.modules() if isinstance(m, NoisyLinear)]


def resample_noise(module: nn.Module, generator: torch.Generator | None = None) -> None:
    """``resample_noise(generator)`` on every ``NoisyLinear`` of ``module``, in order (one
    generator for the whole network gives one reproducible stream)."""
    for layer in noisy_layers(module):
        layer.resample_noise(generator)


# ----------------------------------------------------------------------------- K networks at once


def noise_indices(module: nn.Module) -> list[int]:
    """Positions, in ``module.named_buffers()`` order, of each ``NoisyLinear``'s ``eps_in``
    and ``eps_out``, in the order ``resample_noise`` draws them: where the noise sits in the
    stacked buffers of K copies of ``module`` (``nets.ModuleEnsemble.buffers``)."""
    where = {id(b): i for i, (_, b) in enumerate(module.named_buffers())}
    return [where[id(b)] for layer in noisy_layers(module) for b in (layer.eps_in, layer.eps_out)]


@torch.no_grad()
def resample_stacked_noise(buffers: list[torch.Tensor], indices: list[int],
                           generators: list[torch.Generator]) -> None:
    """New noise for K stacked copies of a network: agent k's from ``generators[k]`` alone,
    drawn in ``resample_noise``'s order, so agent k's noise is what ``resample_noise(net_k,
    generators[k])`` gives a single network. ``buffers``: the stacked buffers ``(K, ...)``,
    ``indices``: ``noise_indices`` of the network."""
    for k, gen in enumerate(generators):
        for i in indices:
            row = buffers[i][k]
            row.copy_(scaled_noise(row.shape[0], gen, row.device, row.dtype))


class noise_off:  # noqa: N801 (a context manager, used as ``with noise_off(...)``)
    """Within it, the stacked noise buffers are zero, so each ``NoisyLinear`` computes
    ``mu + sigma * 0``: its means, what ``eval()`` computes; restored on exit."""

    def __init__(self, buffers: list[torch.Tensor], indices: list[int]) -> None:
        self.buffers, self.indices = buffers, indices

    def __enter__(self) -> None:
        with torch.no_grad():
            self.saved = [self.buffers[i].clone() for i in self.indices]
            for i in self.indices:
                self.buffers[i].zero_()

    def __exit__(self, *exc: object) -> None:
        with torch.no_grad():
            for i, saved in zip(self.indices, self.saved, strict=True):
                self.buffers[i].copy_(saved)


NOISE_SEED = 0x6E6F697379  # added to an agent's seed for its noise generator ("noisy")


@dataclass
class StackedNoise:
    """K agents' noisy-net state in a Q-ensemble: where the noise sits in its stacked buffers
    (``noise_indices``) and each agent's generator (seeded from its seed plus ``NOISE_SEED``,
    apart from its other streams), which a checkpoint keeps."""

    indices: list[int]
    generators: list[torch.Generator]

    @classmethod
    def of(cls, template: nn.Module, seeds: Sequence[int],
           device: torch.device | str) -> StackedNoise:
        """The noise of K copies of ``template``, agent k's generator seeded ``seeds[k]``."""
        return cls(noise_indices(template),
                   agent_generators([s + NOISE_SEED for s in seeds], device))

    def resample(self, *nets) -> None:
        """New noise in each ensemble of ``nets`` (anything with stacked ``buffers``)."""
        for net in nets:
            resample_stacked_noise(net.buffers, self.indices, self.generators)

    def off(self, net) -> noise_off:
        """A context in which ``net``'s noise is zero (its means)."""
        return noise_off(net.buffers, self.indices)
