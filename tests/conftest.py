"""Shared test fixtures and helpers."""

from __future__ import annotations

import torch
from torch import nn

torch.set_num_threads(min(2, torch.get_num_threads()))


def perturb_parameters(module: nn.Module, *, seed: int = 0, scale: float = 0.5) -> None:
    """Move every parameter away from its initial value (zero-initialised γ, β, α …)
    so that all branches carry signal and every gradient path is exercised."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in module.parameters():
            noise = torch.randn(parameter.shape, generator=generator, dtype=torch.float64)
            parameter.add_(scale * noise.to(parameter.dtype))


def randomise(module: nn.Module, seed: int = 0) -> None:
    """Give every parameter and BN running statistic a non-trivial random value."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(0.5 * torch.randn(p.shape, generator=gen, dtype=p.dtype))
        for m in module.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=gen, dtype=m.running_mean.dtype))
                m.running_var.copy_(0.5 + torch.rand(m.num_features, generator=gen, dtype=m.running_var.dtype))
