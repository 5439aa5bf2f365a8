"""Shared test fixtures and helpers."""

from __future__ import annotations

import sys

import pytest
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


@pytest.fixture()
def install_plugin(tmp_path, monkeypatch):
    """``install_plugin(name, source, load=True)``: a user's plugin module written to a
    temp dir on ``sys.path`` (and ``PYTHONPATH``, for CLI subprocesses), imported unless
    ``load=False``; every block and measurer it registered is unregistered afterwards."""
    from nlbench.blocks import list_blocks, load_plugin, unregister_block
    from nlbench.measure.registry import measurer_names, unregister_measurer

    blocks_before, measurers_before, names = set(list_blocks()), set(measurer_names()), []

    def install(name: str, source: str, *, load: bool = True) -> str:
        (tmp_path / f"{name}.py").write_text(source)
        monkeypatch.syspath_prepend(str(tmp_path))
        monkeypatch.setenv("PYTHONPATH", str(tmp_path))
        names.append(name)
        if load:
            load_plugin(name)
        return name

    yield install
    for block in set(list_blocks()) - blocks_before:
        unregister_block(block)
    for measurer in set(measurer_names()) - measurers_before:
        unregister_measurer(measurer)
    for name in names:
        sys.modules.pop(name, None)


@pytest.fixture()
def wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI prints through one rich console; a wide one keeps messages and table
    cells on one line, so a test can look for a whole message."""
    from nlbench import cli

    monkeypatch.setattr(cli.console, "width", 400)
