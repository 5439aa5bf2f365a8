"""``snl`` against the SNL paper: the affinity built by hand, its symmetry and spectrum,
the zero-degree guard, the output formula, the reduction to NS (SNL Table 1), the
order-2 (gSNL) term, identity at init, shapes, parameter counts and option checks."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from nlbench.blocks import create_block, get_spec
from nlbench.blocks.nonlocal_block import NonLocalStage
from nlbench.blocks.snl import SpectralNonLocalBlock
from tests.conftest import randomise

C = 8  # C' = 4


def conv(m: nn.Conv2d, v: Tensor) -> Tensor:
    """A bias-free 1×1 conv on (B, C_in, N) features."""
    assert m.bias is None
    return torch.einsum("oi,bin->bon", m.weight[:, :, 0, 0], v)


def bn(m: nn.BatchNorm2d, v: Tensor) -> Tensor:
    """Eval-mode BatchNorm on (B, C, N) features."""
    scale = m.weight / torch.sqrt(m.running_var + m.eps)
    return (v - m.running_mean[None, :, None]) * scale[None, :, None] + m.bias[None, :, None]


def affinity_by_hand(block: SpectralNonLocalBlock, x: Tensor) -> Tensor:
    """A = D^{-1/2} M̂ D^{-1/2}, M̂ = (M + Mᵀ)/2, M = ReLU(θ)ᵀReLU(φ), D from N×N row sums."""
    xf = x.reshape(x.shape[0], x.shape[1], -1)
    m = torch.relu(conv(block.theta, xf)).transpose(1, 2) @ torch.relu(conv(block.phi, xf))
    m_hat = (m + m.transpose(1, 2)) / 2
    d = m_hat.sum(dim=-1)
    d_inv_sqrt = torch.where(d > 0, d.clamp_min(1e-300) ** -0.5, torch.zeros_like(d))
    return d_inv_sqrt[:, :, None] * m_hat * d_inv_sqrt[:, None, :]


def snl_by_hand(block: SpectralNonLocalBlock, x: Tensor, a: Tensor) -> Tensor:
    """Y = X + BN(Σ_k A^k Z W_{k+1}) with matrix powers formed explicitly."""
    xf = x.reshape(x.shape[0], x.shape[1], -1)
    z = conv(block.g, xf)
    total = 0
    for k, w in enumerate(block.w):
        a_k = torch.linalg.matrix_power(a, k)
        total = total + conv(w, torch.einsum("bnm,bcm->bcn", a_k, z))
    return (xf + bn(block.bn, total)).reshape(x.shape)


def make(order: int = 1, seed: int = 0) -> SpectralNonLocalBlock:
    block = SpectralNonLocalBlock(C, order=order).double().eval()
    randomise(block, seed)
    return block


@pytest.mark.parametrize("shape", [(2, C, 5, 4), (1, C, 2, 3, 4)], ids=["image", "video"])
def test_affinity_matches_definition_and_is_symmetric_with_spectrum_in_unit_interval(shape) -> None:
    block = make()
    x = torch.randn(shape, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        a = block.affinity(x)
    n = x[0, 0].numel()
    assert a.shape == (shape[0], n, n)
    torch.testing.assert_close(a, affinity_by_hand(block, x), rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(a, a.transpose(1, 2), rtol=1e-14, atol=1e-15)  # symmetric up to rounding
    assert (a >= 0).all()
    eig = torch.linalg.eigvalsh(a)
    assert eig.min() >= -1 - 1e-10 and eig.max() <= 1 + 1e-10
    # a normalised adjacency with positive degrees has 1 as an eigenvalue (eigenvector D^{1/2}·1)
    if (affinity_by_hand(block, x).sum(-1) > 0).all():
        torch.testing.assert_close(eig[:, -1], torch.ones(shape[0], dtype=torch.float64))


def test_spectrum_bound_holds_for_many_random_weights() -> None:
    x = torch.randn(3, C, 4, 4, dtype=torch.float64)
    for seed in range(5):
        block = make(seed=seed)
        with torch.no_grad():
            eig = torch.linalg.eigvalsh(block.affinity(x))
        assert eig.abs().max() <= 1 + 1e-10


@pytest.mark.parametrize("order", [1, 2, 3])
@pytest.mark.parametrize("shape", [(2, C, 3, 5), (1, C, 2, 3, 3)], ids=["image", "video"])
def test_output_matches_formula(order: int, shape: tuple[int, ...]) -> None:
    block = make(order, seed=order)
    x = torch.randn(shape, dtype=torch.float64)
    with torch.no_grad():
        y = block(x)
        a = affinity_by_hand(block, x)
        assert not torch.allclose(y, x)
        torch.testing.assert_close(y, snl_by_hand(block, x, a), rtol=1e-10, atol=1e-10)


def test_order_two_adds_the_a_squared_term_and_one_conv() -> None:
    first, second = make(order=1, seed=4), make(order=2, seed=4)
    assert len(first.w) == 2 and len(second.w) == 3
    assert sum(p.numel() for p in second.parameters()) - sum(p.numel() for p in first.parameters()) == C * (C // 2)
    second.load_state_dict(first.state_dict(), strict=False)  # same θ, φ, g, W₁, W₂, BN
    x = torch.randn(2, C, 4, 3, dtype=torch.float64)
    with torch.no_grad():
        y1, y2 = first(x), second(x)
        assert not torch.allclose(y1, y2)  # W₃ ≠ 0: the A² term contributes
        a = first.affinity(x)
        a2z = torch.einsum("bnm,bcm->bcn", a @ a, conv(second.g, x.flatten(2)))
        pre_bn_1 = bn_inverse(first.bn, y1 - x)
        pre_bn_2 = bn_inverse(second.bn, y2 - x)
        torch.testing.assert_close(pre_bn_2 - pre_bn_1, conv(second.w[2], a2z).reshape(x.shape))
        second.w[2].weight.zero_()
        torch.testing.assert_close(second(x), y1)


def bn_inverse(m: nn.BatchNorm2d, y: Tensor) -> Tensor:
    """Undo an eval-mode BN on (B, C, H, W) values (γ ≠ 0)."""
    shape = (1, -1, 1, 1)
    return (y - m.bias.view(shape)) * torch.sqrt(m.running_var + m.eps).view(shape) / m.weight.view(shape) + (
        m.running_mean.view(shape)
    )


def test_zero_degree_guard_all_zero_theta() -> None:
    block = SpectralNonLocalBlock(C)
    randomise(block)
    with torch.no_grad():
        block.theta.weight.zero_()
    x = torch.randn(2, C, 4, 5, requires_grad=True)
    a = block.affinity(x)
    assert torch.equal(a, torch.zeros_like(a))
    y = block(x)  # training-mode BN
    assert torch.isfinite(y).all()
    y.square().sum().backward()
    assert torch.isfinite(x.grad).all()
    assert all(p.grad is None or torch.isfinite(p.grad).all() for p in block.parameters())
    block.eval()
    with torch.no_grad():  # A = 0 leaves only Z·W₁
        expected = x + bn(block.bn, conv(block.w[0], conv(block.g, x.flatten(2)))).reshape(x.shape)
        torch.testing.assert_close(block(x), expected)


def test_zero_degree_guard_isolated_positions() -> None:
    """Positions whose input is zero have zero features (no bias) and so zero degree."""
    block = make()
    x = torch.randn(1, C, 3, 4, dtype=torch.float64)
    x[0, :, 1, 2] = 0
    x[0, :, 0, 0] = 0
    x.requires_grad_(True)
    a = block.affinity(x)
    zero_rows = [1 * 4 + 2, 0]
    assert torch.equal(a[0, zero_rows], torch.zeros(2, 12, dtype=torch.float64))
    assert torch.equal(a[0, :, zero_rows], torch.zeros(12, 2, dtype=torch.float64))
    assert (a[0].sum(dim=-1) > 0).sum() == 10
    torch.testing.assert_close(a.detach(), affinity_by_hand(block, x.detach()), rtol=1e-10, atol=1e-12)
    block.train()
    block(x).sum().backward()
    assert torch.isfinite(x.grad).all()


def test_reduces_to_ns_with_opposite_weights_and_row_normalised_affinity() -> None:
    """SNL Table 1: W₁ = −W₂ and A row-normalised give NS's X + BN(W(Z − A·Z))."""
    ns = NonLocalStage(C).double().eval()
    randomise(ns, seed=5)
    snl = SpectralNonLocalBlock(C).double().eval()
    unit = ns.units[0]
    with torch.no_grad():
        unit.g.bias.zero_()  # SNL's convs have no bias
        unit.w.bias.zero_()
        snl.g.weight.copy_(unit.g.weight)
        snl.w[0].weight.copy_(unit.w.weight)
        snl.w[1].weight.copy_(-unit.w.weight)
        snl.bn.load_state_dict(unit.bn.state_dict())
        x = torch.randn(2, C, 3, 4, dtype=torch.float64)
        row_normalised = ns.affinity(x)
        torch.testing.assert_close(row_normalised.sum(-1), torch.ones(2, 12, dtype=torch.float64))
        y_ns = ns(x)
        assert not torch.allclose(y_ns, x)
        torch.testing.assert_close(snl.forward_with_affinity(x, row_normalised), y_ns, rtol=1e-12, atol=1e-12)
        # and with its own symmetric affinity it is a different block
        assert not torch.allclose(snl(x), y_ns)


@pytest.mark.parametrize("order", [1, 2])
@pytest.mark.parametrize("shape", [(2, C, 15, 11), (2, C, 3, 5, 4)], ids=["image-15x11", "video"])
def test_shapes_and_identity_at_init(order: int, shape: tuple[int, ...]) -> None:
    block = create_block("snl", C, order=order).eval()
    x = torch.randn(shape)
    with torch.no_grad():
        y = block(x)
    assert y.shape == x.shape
    assert torch.equal(y, x)


def test_parameter_counts_at_256_channels() -> None:
    c, ci = 256, 128
    bn_params = 2 * c
    for order in (1, 2, 3):
        block = create_block("snl", c, order=order)
        expected = 3 * c * ci + (order + 1) * ci * c + bn_params  # no biases anywhere but BN
        assert sum(p.numel() for p in block.parameters()) == expected
    assert sum(p.numel() for p in create_block("snl", c).parameters()) == 164_352


def test_registry_entry() -> None:
    spec = get_spec("snl")
    assert spec.family == "spectral non-local"
    assert spec.claimed.text == "O(C·H²W²)"
    assert (spec.claimed.n_exponent, spec.claimed.c_exponent) == (2.0, 1.0)
    assert spec.supports_video and not spec.needs_spatial_size
    assert dict(spec.default_options) == {"reduction": 2, "order": 1, "impl": "dense"}


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"order": 0}, "order"),
        ({"order": "2"}, "order"),
        ({"reduction": 3}, "divisible by 3"),
        ({"reduction": -2}, "reduction"),
    ],
)
def test_invalid_options_raise(options: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        create_block("snl", C, **options)


def test_forward_with_affinity_checks_shape() -> None:
    block = create_block("snl", C)
    with pytest.raises(ValueError, match="affinity must have shape"):
        block.forward_with_affinity(torch.randn(1, C, 3, 4), torch.eye(11)[None])
