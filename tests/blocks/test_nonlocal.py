"""``nl`` and ``ns`` against their definitions: a naive per-position loop for every NL
mode (with and without sub-sampling, images and video), the NS diffusion formula written
out by hand, identity at init, shapes, row-stochastic affinities, parameter counts and
option validation."""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor, nn

from nlbench.blocks import BlockError, create_block, get_spec
from nlbench.blocks.nonlocal_block import NonLocalBlock, NonLocalStage
from tests.conftest import randomise

C = 8  # tiny channel count: C' = 4


def conv_at(conv: nn.Conv2d, v: Tensor) -> Tensor:
    """A 1×1 conv applied to one position's channel vector."""
    out = conv.weight[:, :, 0, 0] @ v
    return out + conv.bias if conv.bias is not None else out


def bn_at(bn: nn.BatchNorm2d, v: Tensor) -> Tensor:
    """Eval-mode BatchNorm applied to one position's channel vector."""
    return (v - bn.running_mean) / torch.sqrt(bn.running_var + bn.eps) * bn.weight + bn.bias


def naive_nl(block: NonLocalBlock, x: Tensor) -> Tensor:
    """Wang et al.'s formula, one position at a time (images as T = 1 video)."""
    video = x.dim() == 5
    xv = x if video else x.unsqueeze(2)
    b_, _, t_, h_, w_ = xv.shape
    out = xv.clone()
    gaussian = block.mode == "gaussian"
    for b in range(b_):
        positions = [(t, h, w) for t in range(t_) for h in range(h_) for w in range(w_)]
        feat = {p: xv[b, :, p[0], p[1], p[2]] for p in positions}
        theta = {p: feat[p] if gaussian else conv_at(block.theta, feat[p]) for p in positions}
        phi_full = {p: feat[p] if gaussian else conv_at(block.phi, feat[p]) for p in positions}
        g_full = {p: conv_at(block.g, feat[p]) for p in positions}
        if block.sub_sample:  # 2×2 max-pool per frame, floor for odd sizes
            keys, values = [], []
            for t in range(t_):
                for hh in range(h_ // 2):
                    for ww in range(w_ // 2):
                        window = [(t, 2 * hh + i, 2 * ww + j) for i in range(2) for j in range(2)]
                        keys.append(torch.stack([phi_full[q] for q in window]).amax(dim=0))
                        values.append(torch.stack([g_full[q] for q in window]).amax(dim=0))
        else:
            keys = [phi_full[p] for p in positions]
            values = [g_full[p] for p in positions]
        d = theta[positions[0]].numel()
        for p in positions:
            if block.mode == "dot_product":
                weights = [torch.dot(theta[p], k) / len(keys) for k in keys]
            else:
                scores = [torch.exp(torch.dot(theta[p], k) / math.sqrt(d)) for k in keys]
                total = sum(scores)
                weights = [s / total for s in scores]
            y = sum(w * v for w, v in zip(weights, values))
            out[b, :, p[0], p[1], p[2]] = feat[p] + bn_at(block.bn, conv_at(block.w_z, y))
    return out if video else out.squeeze(2)


@pytest.mark.parametrize("mode", ["embedded_gaussian", "dot_product", "gaussian"])
@pytest.mark.parametrize("sub_sample", [False, True])
@pytest.mark.parametrize("shape", [(2, C, 5, 4), (1, C, 2, 3, 5)], ids=["image", "video"])
def test_nl_matches_naive_loop(mode: str, sub_sample: bool, shape: tuple[int, ...]) -> None:
    block = NonLocalBlock(C, mode=mode, sub_sample=sub_sample).double().eval()
    randomise(block)
    x = torch.randn(shape, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        y = block(x)
        expected = naive_nl(block, x)
    assert not torch.allclose(y, x)  # the branch carries signal
    torch.testing.assert_close(y, expected, rtol=1e-10, atol=1e-10)


def test_nl_forward_with_affinity_reproduces_forward() -> None:
    block = NonLocalBlock(C, sub_sample=True).double().eval()
    randomise(block)
    x = torch.randn(2, C, 6, 5, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(block.forward_with_affinity(x, block.affinity(x)), block(x))
        with pytest.raises(ValueError, match="affinity must have shape"):
            block.forward_with_affinity(x, torch.zeros(2, 30, 30, dtype=torch.float64))


@pytest.mark.parametrize("mode", ["embedded_gaussian", "gaussian"])
def test_nl_affinity_rows_sum_to_one(mode: str) -> None:
    block = NonLocalBlock(C, mode=mode)
    randomise(block)
    x = torch.randn(2, C, 15, 11)
    with torch.no_grad():
        a = block.affinity(x)
    assert a.shape == (2, 165, 165)
    assert (a >= 0).all()
    torch.testing.assert_close(a.sum(dim=-1), torch.ones(2, 165))


def test_nl_affinity_shapes_with_sub_sampling() -> None:
    block = NonLocalBlock(C, sub_sample=True)
    with torch.no_grad():
        assert block.affinity(torch.randn(1, C, 15, 11)).shape == (1, 165, 7 * 5)
        assert block.affinity(torch.randn(1, C, 3, 5, 4)).shape == (1, 60, 3 * 2 * 2)
    with pytest.raises(ValueError, match="sub_sample needs H >= 2"):
        block(torch.randn(1, C, 1, 6))


def test_dot_product_affinity_divides_by_key_count() -> None:
    block = NonLocalBlock(C, mode="dot_product").double()
    x = torch.randn(1, C, 3, 4, dtype=torch.float64)
    with torch.no_grad():
        theta = block.theta(x).flatten(2)
        phi = block.phi(x).flatten(2)
        torch.testing.assert_close(block.affinity(x), theta.transpose(1, 2) @ phi / 12)


def ns_by_hand(block: NonLocalStage, x: Tensor) -> Tensor:
    """Y = X + BN(W(Z − A·Z)) per unit, A = softmax(θᵀφ/√C') from the stage input."""
    def conv(m: nn.Conv2d, v: Tensor) -> Tensor:  # v: (B, C_in, N)
        return torch.einsum("oi,bin->bon", m.weight[:, :, 0, 0], v) + m.bias[None, :, None]

    def bn(m: nn.BatchNorm2d, v: Tensor) -> Tensor:
        scale = m.weight / torch.sqrt(m.running_var + m.eps)
        return (v - m.running_mean[None, :, None]) * scale[None, :, None] + m.bias[None, :, None]

    xf = x.reshape(x.shape[0], x.shape[1], -1)
    theta, phi = conv(block.theta, xf), conv(block.phi, xf)
    a = torch.softmax(torch.einsum("bcn,bcm->bnm", theta, phi) / math.sqrt(theta.shape[1]), dim=-1)
    for unit in block.units:
        z = conv(unit.g, xf)
        az = torch.einsum("bnm,bcm->bcn", a, z)
        xf = xf + bn(unit.bn, conv(unit.w, z - az))
    return xf.reshape(x.shape)


@pytest.mark.parametrize("stage_num", [1, 2])
@pytest.mark.parametrize("shape", [(2, C, 5, 3), (1, C, 2, 3, 4)], ids=["image", "video"])
def test_ns_matches_diffusion_formula(stage_num: int, shape: tuple[int, ...]) -> None:
    block = NonLocalStage(C, stage_num=stage_num).double().eval()
    randomise(block, seed=3)
    x = torch.randn(shape, dtype=torch.float64)
    with torch.no_grad():
        y = block(x)
        assert not torch.allclose(y, x)
        torch.testing.assert_close(y, ns_by_hand(block, x), rtol=1e-10, atol=1e-10)
        a = block.affinity(x)
        torch.testing.assert_close(a.sum(dim=-1), torch.ones(a.shape[:2], dtype=torch.float64))
        torch.testing.assert_close(block.forward_with_affinity(x, a), y)


def test_ns_with_identity_affinity_is_identity() -> None:
    """A = I makes Z − A·Z vanish: the (I − A) form, not a plain attention."""
    block = NonLocalStage(C).double().eval()
    randomise(block)
    with torch.no_grad():
        block.units[0].bn.bias.zero_()
        block.units[0].bn.running_mean.zero_()
        block.units[0].w.bias.zero_()
        x = torch.randn(2, C, 3, 4, dtype=torch.float64)
        y = block.forward_with_affinity(x, torch.eye(12, dtype=torch.float64).expand(2, 12, 12))
    torch.testing.assert_close(y, x, rtol=0, atol=1e-12)


@pytest.mark.parametrize(
    ("name", "options"),
    [("nl", {}), ("nl", {"mode": "dot_product", "sub_sample": True}), ("nl", {"mode": "gaussian"}),
     ("ns", {}), ("ns", {"stage_num": 3})],
)
@pytest.mark.parametrize("shape", [(2, C, 15, 11), (2, C, 3, 5, 4)], ids=["image-15x11", "video"])
def test_shapes_and_identity_at_init(name: str, options: dict, shape: tuple[int, ...]) -> None:
    block = create_block(name, C, **options).eval()
    x = torch.randn(shape)
    with torch.no_grad():
        y = block(x)
    assert y.shape == x.shape
    assert torch.equal(y, x)


@pytest.mark.parametrize(("name", "options"), [("nl", {}), ("nl", {"sub_sample": True}), ("ns", {"stage_num": 2})])
def test_training_mode_gradients_are_finite(name: str, options: dict) -> None:
    block = create_block(name, C, **options)
    randomise(block)
    x = torch.randn(2, C, 5, 6, requires_grad=True)
    block(x).square().sum().backward()
    assert torch.isfinite(x.grad).all()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in block.parameters())


def count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_parameter_counts_at_256_channels() -> None:
    c, ci = 256, 128
    conv_in = c * ci + ci  # 1×1 conv C → C' with bias
    conv_out = ci * c + c  # 1×1 conv C' → C with bias
    bn = 2 * c
    assert count(create_block("nl", c)) == 3 * conv_in + conv_out + bn == 132_224
    assert count(create_block("nl", c, sub_sample=True, mode="dot_product")) == 132_224
    assert count(create_block("nl", c, mode="gaussian")) == conv_in + conv_out + bn
    assert count(create_block("nl", c, reduction=4)) == 3 * (c * 64 + 64) + (64 * c + c) + bn
    assert count(create_block("ns", c)) == 3 * conv_in + conv_out + bn
    assert count(create_block("ns", c, stage_num=2)) == 2 * conv_in + 2 * (conv_in + conv_out + bn)


def test_registry_entries() -> None:
    for name, family in [("nl", "non-local"), ("ns", "non-local stage")]:
        spec = get_spec(name)
        assert spec.family == family
        assert spec.claimed.text == "O(C·H²W²)"
        assert (spec.claimed.n_exponent, spec.claimed.c_exponent) == (2.0, 1.0)
        assert spec.supports_video and not spec.needs_spatial_size
    assert dict(get_spec("nl").default_options) == {"mode": "embedded_gaussian", "sub_sample": False, "reduction": 2,
                                                  "impl": "dense"}
    assert dict(get_spec("ns").default_options) == {"reduction": 2, "stage_num": 1, "impl": "dense"}


@pytest.mark.parametrize(
    ("name", "options", "message"),
    [
        ("nl", {"mode": "cosine"}, "mode"),
        ("nl", {"sub_sample": "yes"}, "sub_sample"),
        ("nl", {"reduction": 0}, "reduction"),
        ("nl", {"reduction": 3}, "divisible by 3"),
        ("nl", {"reduction": 2.0}, "reduction"),
        ("ns", {"stage_num": 0}, "stage_num"),
        ("ns", {"stage_num": True}, "stage_num"),
    ],
)
def test_invalid_options_raise(name: str, options: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        create_block(name, C, **options)


def test_unknown_option_and_bad_input_raise() -> None:
    with pytest.raises(BlockError, match="no option"):
        create_block("ns", C, mode="gaussian")
    block = create_block("nl", C)
    with pytest.raises(ValueError, match="expected 8 channels"):
        block(torch.randn(1, 4, 3, 3))
    with pytest.raises(ValueError, match="expected input of shape"):
        block(torch.randn(C, 3, 3))
