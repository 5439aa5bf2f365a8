"""Tests for ``rcca``: shapes, identity at init, the joint softmax over H + W entries,
energies by hand, the receptive field after one and two recurrences, per-frame video,
params and bad options."""

from __future__ import annotations

import pytest
import torch

from nlbench.blocks import create_block, get_spec
from nlbench.blocks.criss_cross import RCCABlock

C = 16


def _perturbed(block: RCCABlock) -> RCCABlock:
    """Make the zero-initialised parts (conv_b's BN γ, β and the CCA's γ) non-zero."""
    norm = block.conv_b[1]
    torch.nn.init.uniform_(norm.weight, 0.5, 1.5)
    torch.nn.init.uniform_(norm.bias, -0.1, 0.1)
    block.cca.gamma.data.fill_(0.7)
    return block.eval()


def _input_gradient(block: torch.nn.Module, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """|∂ Σ_c out[0, c, h, w] / ∂x| summed over channels: (H, W)."""
    x = x.clone().requires_grad_(True)
    block(x)[0, :, h, w].sum().backward()
    assert x.grad is not None
    return x.grad[0].abs().sum(0)


def _criss_cross_mask(height: int, width: int, h: int, w: int, reach: int = 0) -> torch.Tensor:
    """True on rows h±reach and columns w±reach."""
    rows = (torch.arange(height) - h).abs() <= reach
    cols = (torch.arange(width) - w).abs() <= reach
    return rows[:, None] | cols[None, :]


def test_registered_with_claimed_complexity() -> None:
    spec = get_spec("rcca")
    assert spec.family == "criss-cross attention"
    assert (spec.claimed.n_exponent, spec.claimed.c_exponent) == (1.5, 1.0)
    assert spec.supports_video and not spec.needs_spatial_size
    assert dict(spec.default_options) == {"reduction": 4, "qk_reduction": 8, "recurrence": 2, "conv_kernel": 3}


@pytest.mark.parametrize("shape", [(2, C * 2, 8, 8), (2, C * 2, 15, 11), (1, C * 2, 3, 5, 7)])
def test_shape_and_identity_at_init(shape: tuple[int, ...]) -> None:
    torch.manual_seed(0)
    block = create_block("rcca", C * 2).eval()  # C_i = 8, q/k width 1
    x = torch.randn(shape)
    y = block(x)
    assert y.shape == x.shape
    assert torch.equal(y, x)
    assert not torch.allclose(_perturbed(block)(x), x)  # the identity is the init, not the block


def test_attention_sums_to_one_and_counts_self_once() -> None:
    torch.manual_seed(1)
    height, width = 7, 5
    block = _perturbed(create_block("rcca", C, qk_reduction=2).double())
    maps = block.attention_maps(torch.randn(2, C, height, width, dtype=torch.float64))
    assert len(maps) == 2
    for att in maps:
        assert att.shape == (2, height, width, height + width)
        torch.testing.assert_close(att.sum(-1), torch.ones(2, height, width, dtype=torch.float64))
        column = att[..., :height]
        diagonal = torch.diagonal(column, dim1=1, dim2=3)  # [b, w, h] = att[b, h, w, h]
        assert torch.equal(diagonal, torch.zeros_like(diagonal))  # self masked in the column ...
        assert (att[..., height:] > 0).all()  # ... and kept in the row
        assert torch.equal((att > 0).sum(-1), torch.full((2, height, width), height + width - 1))


def test_attention_matches_energies_by_hand() -> None:
    """At one position, the H + W − 1 distinct criss-cross energies, softmaxed together."""
    torch.manual_seed(2)
    block = _perturbed(create_block("rcca", C, qk_reduction=2, conv_kernel=1).double())
    x = torch.randn(1, C, 6, 4, dtype=torch.float64)
    feats = block.conv_a(x)
    q, k = block.cca.query(feats)[0], block.cca.key(feats)[0]  # (Cq, H, W)
    h, w = 2, 3
    col_energy = torch.stack([(q[:, h, w] * k[:, g, w]).sum() for g in range(6)])
    row_energy = torch.stack([(q[:, h, w] * k[:, h, v]).sum() for v in range(4)])
    col_energy[h] = float("-inf")  # the self position is in the row
    expected = torch.softmax(torch.cat([col_energy, row_energy]), dim=0)
    torch.testing.assert_close(block.cca.attention(feats)[0, h, w], expected)


def test_one_recurrence_reaches_only_row_and_column() -> None:
    torch.manual_seed(3)
    height, width, h, w = 7, 6, 2, 4
    x = torch.randn(1, C, height, width, dtype=torch.float64)
    cross = _criss_cross_mask(height, width, h, w)
    # The CCA step itself, and the whole block with 1×1 convs around it: exactly the cross.
    cca_block = _perturbed(create_block("rcca", C, qk_reduction=2, recurrence=1, conv_kernel=1).double())
    for module in (cca_block.cca, cca_block):
        inputs = x if module is cca_block else cca_block.conv_a(x).detach()
        grad = _input_gradient(module, inputs, h, w)
        assert (grad[cross] > 0).all()
        assert torch.equal(grad[~cross], torch.zeros_like(grad[~cross]))
    # With the paper's 3×3 conv_a and conv_b each side widens the cross by 1 row/column.
    block = _perturbed(create_block("rcca", C, qk_reduction=2, recurrence=1).double())
    grad = _input_gradient(block, x, h, w)
    band = _criss_cross_mask(height, width, h, w, reach=2)
    assert (grad[band] > 0).all()
    assert torch.equal(grad[~band], torch.zeros_like(grad[~band]))


@pytest.mark.parametrize("conv_kernel", [1, 3])
def test_two_recurrences_reach_every_position(conv_kernel: int) -> None:
    torch.manual_seed(4)
    block = _perturbed(create_block("rcca", C, qk_reduction=2, recurrence=2, conv_kernel=conv_kernel).double())
    grad = _input_gradient(block, torch.randn(1, C, 9, 8, dtype=torch.float64), 1, 6)
    assert (grad > 0).all()


def test_video_is_processed_per_frame() -> None:
    torch.manual_seed(5)
    block = _perturbed(create_block("rcca", C, qk_reduction=2).double())
    x = torch.randn(2, C, 3, 5, 4, dtype=torch.float64)
    y = block(x)
    for t in range(3):
        torch.testing.assert_close(y[:, :, t], block(x[:, :, t]))
    x2 = x.clone()
    x2[:, :, 0] += 1.0
    assert torch.equal(block(x2)[:, :, 1:], y[:, :, 1:])


def test_param_count_at_c256() -> None:
    c, ci, cq = 256, 64, 8
    expected = (
        c * ci * 9 + 2 * ci  # conv_a 3×3 (no bias) + BN
        + 2 * (ci * cq + cq) + (ci * ci + ci) + 1  # q, k, v (with bias) + γ
        + ci * c * 9 + 2 * c  # conv_b 3×3 (no bias) + BN
    )
    block = create_block("rcca", c)
    assert sum(p.numel() for p in block.parameters()) == expected == 300753


@pytest.mark.parametrize(
    "options",
    [
        {"reduction": 3},
        {"reduction": 0},
        {"qk_reduction": 0},
        {"recurrence": 0},
        {"recurrence": 1.5},
        {"conv_kernel": 2},
    ],
)
def test_bad_options_raise(options: dict) -> None:
    with pytest.raises(ValueError, match="rcca"):
        create_block("rcca", C, **options)


def test_narrow_block_keeps_at_least_one_query_channel() -> None:
    """At C = 16 (C_i = 4 < qk_reduction = 8) q and k get one channel, not zero."""
    block = create_block("rcca", 16)
    assert block.cca.query.out_channels == 1 and block.cca.key.out_channels == 1
    x = torch.randn(1, 16, 5, 4)
    assert block.eval()(x).shape == x.shape
