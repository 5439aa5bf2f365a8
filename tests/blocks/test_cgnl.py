"""Tests for ``cgnl``: shapes, identity at init, the Taylor kernel converging to its exact
closed form, the dot kernel against the hand-written dot product, the channel grouping,
video, params and bad options."""

from __future__ import annotations

import math

import pytest
import torch

from nlbench.blocks import create_block, get_spec
from nlbench.blocks.cgnl import CGNLBlock, compact_kernel

C = 16


def _projections(block: CGNLBlock, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """θ, φ, g of ``x`` as (B, G, c·N): group k = channels [k·c, (k+1)·c), all positions."""
    b = x.shape[0]
    return tuple(conv(x).reshape(b, block.groups, -1) for conv in (block.theta, block.phi, block.g))


def _exact_gaussian(theta: torch.Tensor, phi: torch.Tensor, g: torch.Tensor, gamma: float) -> torch.Tensor:
    """What the Taylor series sums to: out_i = Σ_j g_j · exp(−2γ) · exp(2γ θ_i φ_j), with
    the full (L × L) kernel matrix formed explicitly.

    (exp(−γ(θ_i − φ_j)²) = exp(−γθ_i²)·exp(−γφ_j²)·exp(2γθ_iφ_j); CGNL replaces the first
    two factors by β = exp(−2γ), which is exact when θ_i² = φ_j² = 1.)
    """
    kernel = math.exp(-2 * gamma) * torch.exp(2 * gamma * theta[..., :, None] * phi[..., None, :])
    return (kernel @ g[..., None])[..., 0]


def test_registered_with_claimed_complexity() -> None:
    spec = get_spec("cgnl")
    assert spec.family == "compact generalized non-local"
    assert (spec.claimed.n_exponent, spec.claimed.c_exponent) == (1.0, 1.0)
    assert spec.supports_video and not spec.needs_spatial_size
    assert dict(spec.default_options) == {
        "reduction": 2, "groups": 8, "order": 3, "kernel": "gaussian", "gamma": 1e-4,
    }


@pytest.mark.parametrize("kernel", ["gaussian", "dot"])
@pytest.mark.parametrize("shape", [(2, C, 8, 8), (2, C, 15, 11), (1, C, 3, 5, 7)])
def test_shape_and_identity_at_init(shape: tuple[int, ...], kernel: str) -> None:
    torch.manual_seed(0)
    block = create_block("cgnl", C, kernel=kernel).eval()
    x = torch.randn(shape)
    y = block(x)
    assert y.shape == x.shape
    assert torch.equal(y, x)
    torch.nn.init.ones_(block.norm.weight)
    assert not torch.allclose(block(x), x)  # the identity is the init, not the block


def test_taylor_converges_to_exact_kernel() -> None:
    """As P grows, the block's Taylor-expanded attention converges to the closed form."""
    torch.manual_seed(1)
    gamma = 0.25  # large enough that low orders are visibly wrong
    block = create_block("cgnl", C, groups=2, gamma=gamma).double().eval()
    x = torch.randn(2, C, 5, 4, dtype=torch.float64)
    exact = _exact_gaussian(*_projections(block, x), gamma)
    errors = []
    for order in (0, 1, 2, 4, 8, 16, 24):
        block.order = order
        approx = block.aggregate(x).reshape(exact.shape)
        errors.append(((approx - exact).abs().max() / exact.abs().max()).item())
    assert errors[0] > 0.1, errors
    assert all(later < earlier for earlier, later in zip(errors, errors[1:])), errors
    assert errors[-1] < 1e-12, errors


def test_default_order_is_accurate_at_default_gamma() -> None:
    torch.manual_seed(2)
    block = create_block("cgnl", C, groups=2).double().eval()  # P = 3, γ = 1e-4
    x = torch.randn(1, C, 6, 5, dtype=torch.float64)
    exact = _exact_gaussian(*_projections(block, x), 1e-4)
    torch.testing.assert_close(block.aggregate(x).reshape(exact.shape), exact, rtol=1e-12, atol=1e-12)


def test_taylor_kernel_is_the_gaussian_rbf_on_unit_entries() -> None:
    """With θ_i, φ_j ∈ {±1} the β factor is exact: the limit is Σ_j exp(−γ(θ_i − φ_j)²) g_j."""
    gen = torch.Generator().manual_seed(3)
    theta = torch.randint(0, 2, (2, 3, 40), generator=gen).double() * 2 - 1
    phi = torch.randint(0, 2, (2, 3, 40), generator=gen).double() * 2 - 1
    g = torch.randn(2, 3, 40, generator=gen, dtype=torch.float64)
    gamma = 0.3
    rbf = torch.exp(-gamma * (theta[..., :, None] - phi[..., None, :]) ** 2)
    expected = (rbf @ g[..., None])[..., 0]
    low = compact_kernel(theta, phi, g, kernel="gaussian", order=1, gamma=gamma)
    high = compact_kernel(theta, phi, g, kernel="gaussian", order=20, gamma=gamma)
    assert (low - expected).abs().max() > 1e-3
    torch.testing.assert_close(high, expected, rtol=1e-12, atol=1e-12)


def test_dot_kernel_matches_hand_computed_groups() -> None:
    """kernel="dot": per group k, out_i = Σ_j θ_i φ_j g_j over that group's c channels × N."""
    torch.manual_seed(4)
    groups, inner = 4, C // 2
    c = inner // groups
    block = create_block("cgnl", C, groups=groups, kernel="dot").double().eval()
    x = torch.randn(2, C, 5, 3, dtype=torch.float64)
    theta, phi, g = (conv(x) for conv in (block.theta, block.phi, block.g))  # (B, C', H, W)
    expected = torch.empty_like(theta)
    for k in range(groups):  # loop only in the test, to pin down which channels form a group
        sl = slice(k * c, (k + 1) * c)
        t, p, v = (a[:, sl].reshape(2, -1) for a in (theta, phi, g))  # (B, c·N)
        affinity = t[:, :, None] * p[:, None, :]  # (B, L, L), explicit
        expected[:, sl] = (affinity @ v[:, :, None]).reshape(2, c, 5, 3)
    torch.testing.assert_close(block.aggregate(x), expected)


def test_video_groups_span_frames() -> None:
    """The per-group vector is c·T·H·W long, so one frame's input reaches every frame."""
    torch.manual_seed(5)
    block = create_block("cgnl", C, groups=2, kernel="dot").double().eval()
    x = torch.randn(1, C, 3, 4, 5, dtype=torch.float64)
    theta, phi, g = (conv(x.reshape(1, C, 12, 5)) for conv in (block.theta, block.phi, block.g))
    t, p, v = (a.reshape(1, 2, -1) for a in (theta, phi, g))
    expected = (t * (p * v).sum(-1, keepdim=True)).reshape(1, C // 2, 3, 4, 5)
    torch.testing.assert_close(block.aggregate(x), expected)
    x2 = x.clone()
    x2[:, :, 0] += 1.0
    assert (block.aggregate(x2) - block.aggregate(x))[:, :, 2].abs().max() > 1e-6


def test_param_count_at_c256() -> None:
    c, inner, groups = 256, 128, 8
    expected = 3 * c * inner + inner * c // groups + 2 * c  # θ, φ, g; grouped out conv; GN γ, β
    block = create_block("cgnl", c)
    assert sum(p.numel() for p in block.parameters()) == expected == 102912


@pytest.mark.parametrize(
    "options",
    [
        {"reduction": 3},
        {"groups": 3},
        {"groups": 0},
        {"order": -1},
        {"order": 2.5},
        {"kernel": "poly"},
        {"gamma": 0.0},
        {"gamma": float("nan")},
    ],
)
def test_bad_options_raise(options: dict) -> None:
    with pytest.raises(ValueError, match="cgnl"):
        create_block("cgnl", C, **options)
