"""Baselines: ``identity`` (no block, the zero row of every delta table) and
``local`` (a residual 3×3 block of about NL's parameter count, a local-receptive-field
control for the probes and the receptive-field check)."""

from __future__ import annotations

from torch import Tensor, nn

from nlbench.blocks.common import check_input, require_divisible, zero_init_batchnorm
from nlbench.blocks.registry import ClaimedComplexity, register_block


@register_block(
    "identity",
    family="baseline",
    paper="-",
    claimed=ClaimedComplexity("O(1)", n_exponent=0.0, c_exponent=0.0),
    supports_video=True,
)
class IdentityBlock(nn.Module):
    """Y = X."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channels = channels

    def forward(self, x: Tensor) -> Tensor:
        check_input(x, self.channels, video=True)
        return x


@register_block(
    "local",
    family="baseline",
    paper="-",
    claimed=ClaimedComplexity("O(C²·HW)", n_exponent=1.0, c_exponent=2.0),
    supports_video=True,
)
class LocalBlock(nn.Module):
    """Y = X + BN(conv1x1(ReLU(BN(conv_k×k(X))))) with C/reduction inner channels.

    At the defaults it has 2.5·C² weights, close to NL's 2·C², and a receptive field
    of ``kernel_size`` × ``kernel_size``. The last BN starts at zero (identity at
    init). Video is processed frame by frame, so the receptive field stays spatial.
    """

    def __init__(self, channels: int, *, reduction: int = 4, kernel_size: int = 3) -> None:
        super().__init__()
        require_divisible("local", channels, reduction, "channels")
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"local: kernel_size must be a positive odd integer, got {kernel_size}")
        inner = channels // reduction
        self.channels = channels
        self.branch = nn.Sequential(
            nn.Conv2d(channels, inner, kernel_size, padding=kernel_size // 2, bias=False),
            nn.BatchNorm2d(inner),
            nn.ReLU(inplace=True),
            nn.Conv2d(inner, channels, 1, bias=False),
            zero_init_batchnorm(channels),
        )

    def forward(self, x: Tensor) -> Tensor:
        check_input(x, self.channels, video=True)
        if x.dim() == 5:
            b, c, t, h, w = x.shape
            frames = x.transpose(1, 2).reshape(b * t, c, h, w)
            return x + self.branch(frames).reshape(b, t, c, h, w).transpose(1, 2)
        return x + self.branch(x)
