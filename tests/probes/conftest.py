"""Shared probe fixtures: a tiny training budget and two test blocks."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from torch import Tensor, nn

from nlbench.blocks import ClaimedComplexity, register_block, unregister_block
from nlbench.probes import QUICK_CONFIG, ProbeConfig

TINY = replace(
    QUICK_CONFIG, steps=12, batch_size=8, n_train=64, n_test=32, n_validation=16, log_every=4, eval_every=8,
    warmup_steps=2, threads=1
)


@pytest.fixture()
def tiny() -> ProbeConfig:
    """A probe budget of a fraction of a second per block × seed."""
    return TINY


class CountingBlock(nn.Module):
    """A tiny trainable residual block that counts reorthogonalize() calls."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.zeros(()))
        self.calls = 0

    def forward(self, x: Tensor) -> Tensor:
        return x + self.scale * x.mean(dim=(2, 3), keepdim=True)

    def reorthogonalize(self) -> None:
        self.calls += 1


class BrokenBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()

    def forward(self, x: Tensor) -> Tensor:
        raise RuntimeError("this block is broken on purpose")


@pytest.fixture()
def test_blocks():
    """Registers ``probe_test_counting`` (:class:`CountingBlock`) and ``probe_test_broken``."""
    claimed = ClaimedComplexity("O(1)", n_exponent=0.0, c_exponent=0.0)
    register_block("probe_test_counting", family="test", paper="-", claimed=claimed)(CountingBlock)
    register_block("probe_test_broken", family="test", paper="-", claimed=claimed)(BrokenBlock)
    yield CountingBlock
    unregister_block("probe_test_counting")
    unregister_block("probe_test_broken")
