"""Tests for ``a2`` (double attention): shapes, identity at init, the two softmax axes,
the forward pass against the formula written out by hand, video, params, bad options."""

from __future__ import annotations

import pytest
import torch

from nlbench.blocks import BlockError, create_block, get_spec
from nlbench.blocks.double_attention import DoubleAttentionBlock

C = 16


def _perturbed(block: DoubleAttentionBlock) -> DoubleAttentionBlock:
    """Give the zero-initialised output BN non-zero γ, β so the branch contributes."""
    torch.nn.init.uniform_(block.norm.weight, 0.5, 1.5)
    torch.nn.init.uniform_(block.norm.bias, -0.5, 0.5)
    return block.eval()


def test_registered_with_claimed_complexity() -> None:
    spec = get_spec("a2")
    assert spec.family == "double attention"
    assert (spec.claimed.n_exponent, spec.claimed.c_exponent) == (1.0, 2.0)
    assert spec.supports_video and not spec.needs_spatial_size
    assert dict(spec.default_options) == {"reduction": 4, "distribute_softmax": "channels"}


@pytest.mark.parametrize("shape", [(2, C, 8, 8), (2, C, 15, 11), (1, C, 3, 5, 7)])
def test_shape_and_identity_at_init(shape: tuple[int, ...]) -> None:
    torch.manual_seed(0)
    block = create_block("a2", C).eval()
    x = torch.randn(shape)
    y = block(x)
    assert y.shape == x.shape
    assert torch.equal(y, x)
    assert not torch.allclose(_perturbed(block)(x), x)  # the identity is the init, not the block


@pytest.mark.parametrize("shape", [(2, C, 15, 11), (1, C, 3, 5, 7)])
def test_softmax_axes_channels(shape: tuple[int, ...]) -> None:
    torch.manual_seed(1)
    block = create_block("a2", C).eval()
    x = torch.randn(shape, dtype=torch.float64)
    block = block.double()
    gather, distribute = block.attention_maps(x)
    n = x[0, 0].numel()
    assert gather.shape == distribute.shape == (shape[0], C // 4, n)
    ones_n = torch.ones(shape[0], C // 4, dtype=torch.float64)
    ones_c = torch.ones(shape[0], n, dtype=torch.float64)
    torch.testing.assert_close(gather.sum(dim=-1), ones_n)  # over positions
    torch.testing.assert_close(distribute.sum(dim=1), ones_c)  # over c_n at each position
    assert not torch.allclose(distribute.sum(dim=-1), ones_n)  # ... and not over positions


def test_softmax_axes_positions_option() -> None:
    torch.manual_seed(2)
    block = create_block("a2", C, distribute_softmax="positions").double().eval()
    x = torch.randn(2, C, 15, 11, dtype=torch.float64)
    gather, distribute = block.attention_maps(x)
    torch.testing.assert_close(distribute.sum(dim=-1), torch.ones(2, C // 4, dtype=torch.float64))
    assert not torch.allclose(distribute.sum(dim=1), torch.ones(2, 15 * 11, dtype=torch.float64))


@pytest.mark.parametrize("axis", ["channels", "positions"])
def test_forward_matches_formula_by_hand(axis: str) -> None:
    torch.manual_seed(3)
    block = _perturbed(create_block("a2", C, distribute_softmax=axis).double())
    x = torch.randn(2, C, 5, 6, dtype=torch.float64)
    a = block.conv_a(x).flatten(2)  # (B, c_m, N)
    bm = block.conv_b(x).flatten(2)  # (B, c_n, N)
    v = block.conv_v(x).flatten(2)  # (B, c_n, N)
    gather = bm.exp() / bm.exp().sum(dim=2, keepdim=True)
    vaxis = 1 if axis == "channels" else 2
    distribute = v.exp() / v.exp().sum(dim=vaxis, keepdim=True)
    # G[b, m, n] = Σ_j A[b, m, j] gather[b, n, j];  Z[b, m, i] = Σ_n G[b, m, n] distribute[b, n, i]
    g = (a[:, :, None, :] * gather[:, None, :, :]).sum(-1)
    z = (g[:, :, :, None] * distribute[:, None, :, :]).sum(2)
    expected = x + block.norm(block.conv_out(z.reshape(2, C // 4, 5, 6)))
    torch.testing.assert_close(block(x), expected)


def test_video_attention_spans_frames() -> None:
    torch.manual_seed(4)
    block = _perturbed(create_block("a2", C).double())
    x = torch.randn(1, C, 3, 4, 5, dtype=torch.float64)
    x2 = x.clone()
    x2[:, :, 0] += torch.randn_like(x2[:, :, 0])  # change frame 0 only
    delta = (block(x2) - block(x))[:, :, 2]  # look at frame 2
    assert delta.abs().max() > 1e-6


def test_param_count_at_c256() -> None:
    c, inner = 256, 64
    expected = 3 * (c * inner + inner) + (inner * c + c) + 2 * c  # A, Bm, V; out conv; BN γ, β
    block = create_block("a2", c)
    assert sum(p.numel() for p in block.parameters()) == expected == 66496


@pytest.mark.parametrize(
    "options",
    [{"reduction": 3}, {"reduction": 0}, {"reduction": True}, {"distribute_softmax": "rows"}],
)
def test_bad_options_raise(options: dict) -> None:
    with pytest.raises(ValueError, match="a2"):
        create_block("a2", C, **options)


def test_unknown_option_and_bad_input() -> None:
    with pytest.raises(BlockError, match="no option"):
        create_block("a2", C, heads=2)
    block = create_block("a2", C)
    with pytest.raises(ValueError, match="channels"):
        block(torch.randn(1, C + 1, 4, 4))
