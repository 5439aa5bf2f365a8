"""``rcca``: recurrent criss-cross attention (Huang et al., "CCNet", ICCV 2019).

    h = LeakyReLU(BN(conv_a(X)))                     conv_a: k×k, C → C_i, no bias
    h = CCA(h), R times with shared weights
    Y = X + LeakyReLU(BN(conv_b(h)))                 conv_b: k×k, C_i → C, no bias,
                                                     BN γ = β = 0 (identity at init)

CCA: q, k = 1×1 convs C_i → C_i/qk_reduction, v = 1×1 conv C_i → C_i (all with bias, as
in the authors' code). Each position (h, w) scores every position of its column
(H entries, the self position masked with −inf) and of its row (W entries, self kept),
so the self position is counted once; one softmax over the H + W entries; v is
aggregated along the column and the row; ``out = γ·agg + input`` with γ a scalar
parameter starting at 0. Energies and aggregation are batched matrix products, over
the columns (batch B·W) and over the rows (batch B·H), as the CCNet authors' pure-PyTorch
code does: O(C_i·HW·(H+W)).

Video input (B, C, T, H, W) is processed frame by frame (frames folded into the batch):
criss-cross paths are spatial, so attention never crosses frames.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from nlbench.blocks.common import check_int_option, check_input, conv1x1, require_divisible, zero_init_batchnorm
from nlbench.blocks.registry import ClaimedComplexity, register_block

LEAKY_SLOPE = 0.01  # the default slope of the InPlaceABN layers in the authors' code



class CrissCrossAttention(nn.Module):
    """One criss-cross attention step on (B, C, H, W): ``γ·agg + x``, γ starting at 0."""

    def __init__(self, channels: int, *, qk_reduction: int = 8) -> None:
        super().__init__()
        # C_i / qk_reduction rounded down, at least 1, so narrow blocks (C = 16, C_i = 4)
        # still build — the channel sweep starts there.
        qk_channels = max(1, channels // qk_reduction)
        self.query = conv1x1(channels, qk_channels)
        self.key = conv1x1(channels, qk_channels)
        self.value = conv1x1(channels, channels)
        self.gamma = nn.Parameter(torch.zeros(1))

    def _energies(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Column energies (B·W, H, H) [(b, w), h, g], the self entry g = h at −inf, and
        row energies (B·H, W, W) [(b, h), w, v]: one batched product per direction."""
        q, k = self.query(x), self.key(x)
        col = torch.bmm(_by_column(q).transpose(1, 2), _by_column(k))
        col.diagonal(dim1=1, dim2=2).fill_(float("-inf"))  # bmm's backward needs q and k, not col
        row = torch.bmm(_by_row(q).transpose(1, 2), _by_row(k))
        return col, row

    def attention(self, x: Tensor) -> Tensor:
        """The joint softmax, (B, H, W, H + W): entries [:H] the column, [H:] the row.

        Entry ``[b, h, w, h]`` (the self position in the column branch) is exactly 0;
        the self position's weight is in the row branch at ``[b, h, w, H + w]``.
        """
        b, _, h, w = x.shape
        col, row = self._energies(x)
        return torch.softmax(torch.cat([col.view(b, w, h, h).transpose(1, 2), row.view(b, h, w, w)], dim=-1), dim=-1)

    def forward(self, x: Tensor) -> Tensor:
        b, _, h, w = x.shape
        att = self.attention(x)
        v = self.value(x)
        c = v.shape[1]
        att_col = att[..., :h].transpose(1, 2).contiguous().view(b * w, h, h)  # [(b, w), h, g]
        att_row = att[..., h:].contiguous().view(b * h, w, w)  # [(b, h), w, v]
        out_col = torch.bmm(_by_column(v), att_col.transpose(1, 2))  # [(b, w), c, h]
        out_row = torch.bmm(_by_row(v), att_row.transpose(1, 2))  # [(b, h), c, w]
        agg = out_col.view(b, w, c, h).permute(0, 2, 3, 1) + out_row.view(b, h, c, w).permute(0, 2, 1, 3)
        return self.gamma * agg + x


def _by_column(t: Tensor) -> Tensor:
    """(B, C, H, W) -> (B·W, C, H), contiguous: CPU ``bmm`` takes its fast batched path
    only for operands that are contiguous or transposes of contiguous (a view with
    another batch stride, as ``reshape`` gives for B = 1, falls to a per-matrix loop)."""
    b, c, h, w = t.shape
    return t.permute(0, 3, 1, 2).contiguous().view(b * w, c, h)


def _by_row(t: Tensor) -> Tensor:
    """(B, C, H, W) -> (B·H, C, W), contiguous (see :func:`_by_column`)."""
    b, c, h, w = t.shape
    return t.permute(0, 2, 1, 3).contiguous().view(b * h, c, w)


@register_block(
    "rcca",
    family="criss-cross attention",
    paper="Huang et al., CCNet: Criss-Cross Attention for Semantic Segmentation, ICCV 2019",
    claimed=ClaimedComplexity("O(C·HW·(H+W))", n_exponent=1.5, c_exponent=1.0),
    supports_video=True,
    needs_spatial_size=False,
)
class RCCABlock(nn.Module):
    """Residual recurrent criss-cross block; C_i = channels / reduction.

    ``recurrence`` R ≥ 1 applications of one shared CCA (R = 2 reaches every position);
    ``qk_reduction``: q and k have max(1, ⌊C_i / qk_reduction⌋) channels; ``conv_kernel``: the
    odd kernel size of conv_a and conv_b (3 in the paper; 1 makes the block's receptive
    field exactly the criss-cross paths). Video is processed per frame.
    """

    def __init__(
        self,
        channels: int,
        *,
        reduction: int = 4,
        qk_reduction: int = 8,
        recurrence: int = 2,
        conv_kernel: int = 3,
    ) -> None:
        super().__init__()
        check_int_option("rcca", "reduction", reduction, 1)
        check_int_option("rcca", "qk_reduction", qk_reduction, 1)
        check_int_option("rcca", "recurrence", recurrence, 1)
        check_int_option("rcca", "conv_kernel", conv_kernel, 1)
        if conv_kernel % 2 == 0:
            raise ValueError(f"rcca: conv_kernel must be odd, got {conv_kernel}")
        require_divisible("rcca", channels, reduction, "channels")
        inner = channels // reduction
        self.channels = channels
        self.inner = inner
        self.recurrence = recurrence
        pad = conv_kernel // 2
        self.conv_a = nn.Sequential(
            nn.Conv2d(channels, inner, conv_kernel, padding=pad, bias=False),
            nn.BatchNorm2d(inner),
            nn.LeakyReLU(LEAKY_SLOPE),
        )
        self.cca = CrissCrossAttention(inner, qk_reduction=qk_reduction)
        self.conv_b = nn.Sequential(
            nn.Conv2d(inner, channels, conv_kernel, padding=pad, bias=False),
            zero_init_batchnorm(channels),
            nn.LeakyReLU(LEAKY_SLOPE),
        )

    @staticmethod
    def _frames(x: Tensor) -> Tensor:
        """(B, C, T, H, W) -> (B·T, C, H, W); images pass through."""
        if x.dim() == 5:
            b, c, t, h, w = x.shape
            return x.transpose(1, 2).reshape(b * t, c, h, w)
        return x

    def attention_maps(self, x: Tensor) -> list[Tensor]:
        """The (B, H, W, H + W) criss-cross attention of each of the R recurrences.

        Entries [:H] weight the column, [H:] the row (see
        :meth:`CrissCrossAttention.attention`); video frames are folded into the batch.
        """
        check_input(x, self.channels, video=True)
        h = self.conv_a(self._frames(x))
        maps = []
        for _ in range(self.recurrence):
            maps.append(self.cca.attention(h))
            h = self.cca(h)
        return maps

    def forward(self, x: Tensor) -> Tensor:
        check_input(x, self.channels, video=True)
        h = self.conv_a(self._frames(x))
        for _ in range(self.recurrence):
            h = self.cca(h)
        out = self.conv_b(h)
        if x.dim() == 5:
            b, c, t, hh, ww = x.shape
            out = out.reshape(b, t, c, hh, ww).transpose(1, 2)
        return x + out
