"""``a2``: the double-attention block (Chen et al., "A²-Nets", NeurIPS 2018).

Two attention steps over the N positions, neither of them N×N:

- gather:     G = A · softmax_over_positions(Bm)ᵀ        (c_m × c_n global descriptors)
- distribute: Z = G · softmax_over_c_n(V)                  (c_m × N)

then ``Y = X + BN(conv1x1(Z))`` with the BN's γ = β = 0, so a fresh block is the
identity. Both steps are batched matmuls, O(c_m·c_n·N) = O(C²·HW) at c_m = c_n = C/4.
Video input is treated as T·H·W positions (folded, never looped over).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn

from nlbench.blocks.common import (
    check_input,
    conv1x1,
    fold_frames,
    require_divisible,
    unfold_frames,
    zero_init_batchnorm,
)
from nlbench.blocks.registry import ClaimedComplexity, register_block

DISTRIBUTE_AXES = ("channels", "positions")


class DoubleAttentionMaps(NamedTuple):
    """The two softmaxes of one forward pass, both of shape (B, c_n, N).

    ``gather`` sums to 1 over positions (last axis); ``distribute`` sums to 1 over
    c_n (axis 1) with ``distribute_softmax="channels"`` and over positions (last axis)
    with ``"positions"``.
    """

    gather: Tensor
    distribute: Tensor


def _check_positive_int(block: str, name: str, value: object) -> int:
    """``value`` as an int ≥ 1, or a ValueError naming the block and the option."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{block}: {name} must be a positive integer, got {value!r}")
    return value


@register_block(
    "a2",
    family="double attention",
    paper="Chen et al., A^2-Nets: Double Attention Networks, NeurIPS 2018",
    claimed=ClaimedComplexity("O(C²·HW)", n_exponent=1.0, c_exponent=2.0),
    supports_video=True,
    needs_spatial_size=False,
)
class DoubleAttentionBlock(nn.Module):
    """Residual double-attention block; c_m = c_n = channels / reduction.

    ``distribute_softmax``: ``"channels"`` (the paper: each position's c_n attention
    weights sum to 1) or ``"positions"`` (as some ports do: each of the c_n maps sums
    to 1 over the positions).
    """

    def __init__(self, channels: int, *, reduction: int = 4, distribute_softmax: str = "channels") -> None:
        super().__init__()
        _check_positive_int("a2", "reduction", reduction)
        require_divisible("a2", channels, reduction, "channels")
        if distribute_softmax not in DISTRIBUTE_AXES:
            raise ValueError(
                f"a2: distribute_softmax must be one of {', '.join(map(repr, DISTRIBUTE_AXES))}, "
                f"got {distribute_softmax!r}"
            )
        inner = channels // reduction
        self.channels = channels
        self.c_m = inner
        self.c_n = inner
        self.distribute_softmax = distribute_softmax
        self.conv_a = conv1x1(channels, self.c_m)
        self.conv_b = conv1x1(channels, self.c_n)
        self.conv_v = conv1x1(channels, self.c_n)
        self.conv_out = conv1x1(self.c_m, channels)
        self.norm = zero_init_batchnorm(channels)

    def _maps(self, x: Tensor) -> tuple[Tensor, DoubleAttentionMaps]:
        """Feature maps A (B, c_m, N) and the two softmaxes, for a folded 4-D input."""
        a = self.conv_a(x).flatten(2)
        gather = torch.softmax(self.conv_b(x).flatten(2), dim=-1)
        v = self.conv_v(x).flatten(2)
        distribute = torch.softmax(v, dim=1 if self.distribute_softmax == "channels" else -1)
        return a, DoubleAttentionMaps(gather=gather, distribute=distribute)

    def attention_maps(self, x: Tensor) -> DoubleAttentionMaps:
        """The gather and distribute softmaxes for ``x``, each (B, c_n, N).

        For video input N = T·H·W.
        """
        check_input(x, self.channels, video=True)
        return self._maps(fold_frames(x))[1]

    def forward(self, x: Tensor) -> Tensor:
        check_input(x, self.channels, video=True)
        folded = fold_frames(x)
        a, maps = self._maps(folded)
        descriptors = torch.bmm(a, maps.gather.transpose(1, 2))  # (B, c_m, c_n)
        z = torch.bmm(descriptors, maps.distribute)  # (B, c_m, N)
        z = z.reshape(folded.shape[0], self.c_m, *folded.shape[2:])
        return x + unfold_frames(self.norm(self.conv_out(z)), x)
