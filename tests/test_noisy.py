"""NoisyLinear (Fortunato et al. 2018, factorised Gaussian): the paper's initialisation, the
noise's statistics, reproducible resampling, means in eval mode, gradients to mu and sigma."""

import math

import pytest
import torch
from torch import nn

from semigrad.noisy import NoisyLinear, noisy_layers, resample_noise, scaled_noise


def test_initialisation_follows_the_paper():
    layer = NoisyLinear(64, 10, generator=torch.Generator().manual_seed(0))
    bound = 1 / math.sqrt(64)
    assert layer.weight_mu.abs().max() <= bound and layer.bias_mu.abs().max() <= bound
    assert layer.weight_mu.std() > 0.5 * bound / math.sqrt(3)  # spread over the interval
    assert torch.all(layer.weight_sigma == 0.5 * bound)
    assert torch.all(layer.bias_sigma == 0.5 * bound)
    params = dict(layer.named_parameters())
    assert set(params) == {"weight_mu", "weight_sigma", "bias_mu", "bias_sigma"}
    assert set(dict(layer.named_buffers())) == {"eps_in", "eps_out"}


def test_noise_statistics():
    """f(eps) = sign(eps) sqrt|eps|: mean 0, E f^2 = E|eps| = sqrt(2/pi); the weight noise is
    the outer product of the two vectors (rank one), its entries with variance 2/pi; the bias
    noise is the output vector."""
    gen = torch.Generator().manual_seed(1)
    f = scaled_noise(200_000, gen, dtype=torch.float64)
    assert abs(f.mean().item()) < 0.01
    assert abs(f.pow(2).mean().item() - math.sqrt(2 / math.pi)) < 0.01
    eps = f.pow(2) * f.sign()  # f^-1: back to standard normal
    assert abs(eps.std().item() - 1) < 0.01
    layer = NoisyLinear(300, 200, generator=gen, dtype=torch.float64)
    samples = []
    for _ in range(20):
        layer.resample_noise()
        samples.append(layer.weight_epsilon())
    w = torch.stack(samples)
    assert abs(w.mean().item()) < 0.01
    assert abs(w.var().item() - 2 / math.pi) < 0.02
    assert torch.linalg.matrix_rank(samples[0]).item() == 1
    assert torch.equal(samples[-1], torch.outer(layer.eps_out, layer.eps_in))
    # the layer's output: mean over noise is the means' output
    x = torch.randn(4, 300, generator=gen, dtype=torch.float64)
    outs = []
    for _ in range(400):
        layer.resample_noise()
        outs.append(layer(x))
    layer.eval()
    clean = layer(x)
    spread = torch.stack(outs).std(0).mean()
    assert (torch.stack(outs).mean(0) - clean).abs().mean() < 4 * spread / math.sqrt(400)


def test_resampling_is_reproducible_and_eval_uses_the_means():
    a = NoisyLinear(5, 3, generator=torch.Generator().manual_seed(7))
    b = NoisyLinear(5, 3, generator=torch.Generator().manual_seed(7))
    x = torch.randn(8, 5)
    assert torch.equal(a(x), b(x))
    a.resample_noise()
    b.resample_noise()
    assert torch.equal(a(x), b(x))
    before = a(x)
    a.resample_noise()
    assert not torch.equal(a(x), before)  # new noise, new output
    assert torch.equal(a(x), a(x))  # a forward pass draws nothing
    # an explicit generator overrides the layer's
    a.resample_noise(torch.Generator().manual_seed(3))
    b.resample_noise(torch.Generator().manual_seed(3))
    assert torch.equal(a(x), b(x))
    a.eval()
    mean = a(x)
    torch.testing.assert_close(mean, x @ a.weight_mu.T + a.bias_mu, rtol=0, atol=0)
    a.resample_noise()
    assert torch.equal(a(x), mean)  # eval ignores the noise
    # the noise is in the state: a copy loaded from it computes the same
    c = NoisyLinear(5, 3)
    c.load_state_dict(b.state_dict())
    assert torch.equal(c(x), b(x))


def test_gradients_reach_mu_and_sigma():
    layer = NoisyLinear(6, 4, generator=torch.Generator().manual_seed(2))
    x = torch.randn(10, 6)
    layer(x).pow(2).sum().backward()
    for name, p in layer.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    # d / d sigma_w = d / d w * eps_w, d / d sigma_b = d / d b * eps_b
    torch.testing.assert_close(layer.weight_sigma.grad,
                               layer.weight_mu.grad * layer.weight_epsilon())
    torch.testing.assert_close(layer.bias_sigma.grad, layer.bias_mu.grad * layer.eps_out)
    assert layer.eps_in.grad is None


def test_networks_resample_all_their_layers_from_one_stream():
    def net():
        return nn.Sequential(NoisyLinear(4, 8), nn.ReLU(), NoisyLinear(8, 2))

    a, b = net(), net()
    b.load_state_dict(a.state_dict())
    assert len(noisy_layers(a)) == 2
    resample_noise(a, torch.Generator().manual_seed(5))
    resample_noise(b, torch.Generator().manual_seed(5))
    x = torch.randn(3, 4)
    assert torch.equal(a(x), b(x))
    with pytest.raises(ValueError, match="sigma0 must be >= 0"):
        NoisyLinear(3, 2, sigma0=-0.1)
