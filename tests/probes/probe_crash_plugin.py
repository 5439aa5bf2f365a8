"""A plugin for tests/probes/test_workers.py: block ``probe_test_dies`` kills the
process training it (SIGKILL, as the kernel's out-of-memory killer does) on its first
forward pass of a training batch, and ``probe_test_exits`` ends it with exit code 3."""

from __future__ import annotations

import os
import signal

import torch
from torch import Tensor, nn

from nlbench.blocks import ClaimedComplexity, register_block

_CLAIMED = ClaimedComplexity("O(1)", n_exponent=0.0, c_exponent=0.0)


class _Dies(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.zeros(()))

    def forward(self, x: Tensor) -> Tensor:
        if self.training and torch.is_grad_enabled():
            os.kill(os.getpid(), signal.SIGKILL)
        return x + self.scale * x


class _Exits(_Dies):
    def forward(self, x: Tensor) -> Tensor:
        if self.training and torch.is_grad_enabled():
            os._exit(3)
        return x + self.scale * x


register_block("probe_test_dies", family="test", paper="-", claimed=_CLAIMED)(_Dies)
register_block("probe_test_exits", family="test", paper="-", claimed=_CLAIMED)(_Exits)
