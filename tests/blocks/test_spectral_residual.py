"""SRL blocks (``srl_fft``, ``srl_lo``): the transforms are orthonormal and invertible,
P and Q stay orthogonal, the receptive field is global, a fresh block is the identity,
shapes and parameter counts match the spec's formulas, and bad input is refused."""

from __future__ import annotations

import pytest
import torch

from nlbench.blocks import BlockError, create_block, get_spec
from nlbench.blocks.spectral_residual import (
    SpectralReLU,
    SpectralResidualFFT,
    SpectralResidualLO,
    irfft2_stacked,
    rfft2_stacked,
)

C = 8
F64 = torch.float64


def make(name: str, height: int, width: int, **options) -> torch.nn.Module:
    """A float64 block in eval mode, reproducibly initialised.

    srl_lo's P and Q are drawn in float32, so they are re-orthogonalised in float64
    to make the float64 transform orthogonal to float64 precision.
    """
    torch.manual_seed(0)
    block = create_block(name, C, spatial_size=(height, width), **options).to(F64).eval()
    if isinstance(block, SpectralResidualLO):
        block.reorthogonalize()
    return block


def randn(*shape: int, seed: int = 1) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=F64)


def half_spectrum_energy(z: torch.Tensor, width: int) -> torch.Tensor:
    """‖X‖² recovered from the stacked half spectrum (re at 2c, im at 2c+1).

    The columns k = 1 … ⌈W/2⌉−1 stand for themselves and their mirror W−k, so they count
    twice; column 0 and, for even W, column W/2 are self-conjugate and count once.
    """
    power = z[:, 0::2] ** 2 + z[:, 1::2] ** 2  # (B, C, H, W//2+1)
    weights = torch.full((width // 2 + 1,), 2.0, dtype=z.dtype)
    weights[0] = 1.0
    if width % 2 == 0:
        weights[-1] = 1.0
    return (power * weights).sum()


# ----------------------------------------------------------------------------- registry


def test_specs_declare_the_papers_claims() -> None:
    fft, lo = get_spec("srl_fft"), get_spec("srl_lo")
    assert (fft.claimed.n_exponent, fft.claimed.c_exponent, fft.claimed.n_log_power) == (1.0, 1.0, 1)
    assert (lo.claimed.n_exponent, lo.claimed.c_exponent, lo.claimed.n_log_power) == (1.5, 1.0, 0)
    assert fft.claimed.text == "O(C·HW·log(HW))" and lo.claimed.text == "O(C·HW·(H+W))"
    for spec in (fft, lo):
        assert spec.family == "spectral residual" and spec.supports_video and spec.needs_spatial_size
        assert "frames" in spec.default_options and spec.default_options["frames"] is None
    assert fft.default_options["groups"] == 8 and fft.default_options["spectral_relu"] is True
    assert lo.default_options["groups"] == 2 and lo.default_options["reorthogonalize_in_forward"] is False


def test_spatial_size_is_required_only_where_parameters_depend_on_it() -> None:
    with pytest.raises(BlockError, match="spatial_size"):
        create_block("srl_lo", C)
    with pytest.raises(BlockError, match="spatial_size"):
        create_block("srl_fft", C)  # spectral ReLU on by default
    block = create_block("srl_fft", C, spectral_relu=False).eval()
    for shape in [(2, C, 6, 5), (1, C, 9, 14)]:  # any size works without the spectral ReLU
        x = torch.randn(*shape)
        assert torch.equal(block(x), x)
    with pytest.raises(ValueError, match="spatial_size"):
        SpectralResidualLO(C)  # direct construction is checked too
    with pytest.raises(ValueError, match="spatial_size"):
        SpectralResidualFFT(C)


def test_bad_options_and_inputs_are_clear_errors() -> None:
    with pytest.raises(BlockError, match="no option"):
        create_block("srl_lo", C, spatial_size=(4, 4), spectral_rleu=False)
    with pytest.raises(ValueError, match="divisible"):
        create_block("srl_fft", 6, spatial_size=(4, 4))  # 2C = 12 is not divisible by 8
    with pytest.raises(ValueError, match="divisible"):
        create_block("srl_lo", 9, spatial_size=(4, 4))
    with pytest.raises(ValueError, match="frames"):
        create_block("srl_fft", C, spatial_size=(4, 4), frames=0)
    with pytest.raises(ValueError, match="spatial_size"):
        create_block("srl_lo", C, spatial_size=(4, 0))
    fft, lo = make("srl_fft", 6, 5), make("srl_lo", 6, 5)
    for block in (fft, lo):
        with pytest.raises(ValueError, match="spatial_size"):
            block(randn(1, C, 6, 6))  # built for 6×5
        with pytest.raises(ValueError, match="frames=3"):
            block(randn(1, C, 3, 6, 5))  # video, but built without frames
        with pytest.raises(ValueError, match="channels"):
            block(randn(1, C + 2, 6, 5))
    video = make("srl_lo", 6, 5, frames=3)
    with pytest.raises(ValueError, match="frames=3, got T=4"):
        video(randn(1, C, 4, 6, 5))
    with pytest.raises(ValueError, match="image input"):
        video(randn(1, C, 6, 5))


# ----------------------------------------------------------------------------- transforms


@pytest.mark.parametrize("height,width", [(6, 8), (7, 5), (15, 11), (4, 1)])
def test_fft_transform_is_invertible_and_orthonormal(height: int, width: int) -> None:
    block = make("srl_fft", height, width)
    x = randn(2, C, height, width)
    z = block.transform(x)
    assert z.shape == (2, 2 * C, height, width // 2 + 1)
    torch.testing.assert_close(block.inverse(z, (height, width)), x, rtol=0, atol=1e-12)
    # Parseval with the half spectrum counted correctly, for even and odd W
    torch.testing.assert_close(half_spectrum_energy(z, width), (x**2).sum(), rtol=1e-12, atol=0)
    if width > 2:  # the naive sum over the half spectrum is not the energy: the weights matter
        assert not torch.isclose((z**2).sum(), (x**2).sum(), rtol=1e-6)


def test_fft_stacking_interleaves_real_and_imaginary_parts_of_each_channel() -> None:
    x = randn(2, C, 5, 6)
    spectrum = torch.fft.rfft2(x, norm="ortho")
    z = rfft2_stacked(x)
    assert torch.equal(z[:, 0::2], spectrum.real) and torch.equal(z[:, 1::2], spectrum.imag)
    video = randn(2, C, 3, 5, 6)
    zv = rfft2_stacked(video)
    assert zv.shape == (2, 2 * C, 3, 5, 4)
    torch.testing.assert_close(irfft2_stacked(zv, (5, 6)), video, rtol=0, atol=1e-12)
    for t in range(3):  # per-frame 2-D transform
        torch.testing.assert_close(zv[:, :, t], rfft2_stacked(video[:, :, t]), rtol=0, atol=1e-12)


@pytest.mark.parametrize("height,width", [(6, 8), (15, 11)])
def test_lo_transform_is_p_x_q_invertible_and_norm_preserving(height: int, width: int) -> None:
    block = make("srl_lo", height, width)
    x = randn(2, C, height, width)
    z = block.transform(x)
    torch.testing.assert_close(z, torch.einsum("ij,bcjk,kl->bcil", block.P, x, block.Q), rtol=0, atol=1e-12)
    torch.testing.assert_close(block.inverse(z), x, rtol=0, atol=1e-12)
    torch.testing.assert_close(z.norm(), x.norm(), rtol=1e-12, atol=0)
    video = randn(1, C, 3, height, width)
    torch.testing.assert_close(block.inverse(block.transform(video)), video, rtol=0, atol=1e-12)


def orthogonality_error(m: torch.Tensor) -> float:
    m = m.detach()
    return float((m.t() @ m - torch.eye(m.shape[0], dtype=m.dtype)).abs().max())


def test_lo_starts_orthogonal_and_reorthogonalize_restores_it() -> None:
    block = make("srl_lo", 7, 5)
    assert orthogonality_error(block.P) < 1e-6 and orthogonality_error(block.Q) < 1e-6
    with torch.no_grad():
        block.P.add_(0.3 * randn(7, 7, seed=2))
        block.Q.add_(0.3 * randn(5, 5, seed=3))
    drifted_p, drifted_q = block.P.detach().clone(), block.Q.detach().clone()
    assert orthogonality_error(drifted_p) > 1e-2 and orthogonality_error(drifted_q) > 1e-2
    block.reorthogonalize()
    assert orthogonality_error(block.P) < 1e-12 and orthogonality_error(block.Q) < 1e-12
    for new, old in ((block.P, drifted_p), (block.Q, drifted_q)):
        r = new.detach().t() @ old  # old = new·R, so R = newᵀ·old is upper triangular with R_ii > 0
        torch.testing.assert_close(r, torch.triu(r), rtol=0, atol=1e-12)
        assert bool((torch.diagonal(r) > 0).all())
    # already orthogonal: reorthogonalizing again changes P, Q and the output only by rounding
    block.alpha.data.fill_(0.7)
    x = randn(2, C, 7, 5)
    before_p, before_y = block.P.detach().clone(), block(x).detach()
    block.reorthogonalize()
    torch.testing.assert_close(block.P.detach(), before_p, rtol=0, atol=1e-12)
    torch.testing.assert_close(block(x).detach(), before_y, rtol=0, atol=1e-10)


def test_lo_reorthogonalize_in_forward_option() -> None:
    block = make("srl_lo", 6, 4, reorthogonalize_in_forward=True)
    with torch.no_grad():
        block.P.add_(0.3 * randn(6, 6, seed=4))
    block(randn(1, C, 6, 4))
    assert orthogonality_error(block.P) < 1e-12
    plain = make("srl_lo", 6, 4)
    with torch.no_grad():
        plain.P.add_(0.3 * randn(6, 6, seed=4))
    plain(randn(1, C, 6, 4))
    assert orthogonality_error(plain.P) > 1e-2  # without the option, forward leaves P alone


# ----------------------------------------------------------------------------- the blocks


@pytest.mark.parametrize("name", ["srl_fft", "srl_lo"])
@pytest.mark.parametrize("spectral_relu", [True, False])
def test_identity_at_init(name: str, spectral_relu: bool) -> None:
    torch.manual_seed(0)
    image = create_block(name, C, spatial_size=(15, 11), spectral_relu=spectral_relu).eval()
    x = torch.randn(2, C, 15, 11)
    assert float(image.alpha.detach()) == 0.0
    assert torch.equal(image(x), x)
    video = create_block(name, C, spatial_size=(15, 11), spectral_relu=spectral_relu, frames=3).eval()
    xv = torch.randn(2, C, 3, 15, 11)
    assert torch.equal(video(xv), xv)


@pytest.mark.parametrize("name", ["srl_fft", "srl_lo"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_shapes_dtypes_and_gradients(name: str, dtype: torch.dtype) -> None:
    torch.manual_seed(0)
    for frames, shape in [(None, (2, C, 15, 11)), (None, (1, C, 8, 8)), (3, (2, C, 3, 15, 11))]:
        block = create_block(name, C, spatial_size=shape[-2:], frames=frames).to(dtype).train()
        block.alpha.data.fill_(0.5)
        x = torch.randn(*shape, dtype=dtype, requires_grad=True)
        y = block(x)
        assert y.shape == x.shape and y.dtype == dtype
        y.square().sum().backward()
        assert x.grad is not None and torch.isfinite(x.grad).all()
        assert block.alpha.grad is not None and float(block.alpha.grad) != 0.0


def test_spectral_relu_shapes_and_formula() -> None:
    fft = make("srl_fft", 15, 11)
    lo = make("srl_lo", 15, 11)
    assert fft.phi.act.weight.shape == (15, 6) and fft.phi.act.bias.shape == (15, 6)
    assert lo.phi.act.weight.shape == (15, 11) and lo.phi.act.bias.shape == (15, 11)
    for act in (fft.phi.act, lo.phi.act):
        assert torch.equal(act.weight, torch.ones_like(act.weight)) and not act.bias.any()
    assert isinstance(make("srl_fft", 15, 11, spectral_relu=False).phi.act, torch.nn.ReLU)
    relu = SpectralReLU((3, 2)).to(F64)
    with torch.no_grad():
        relu.weight.copy_(randn(3, 2, seed=5))
        relu.bias.copy_(randn(3, 2, seed=6))
    z = randn(2, 4, 3, 2)
    expected = torch.maximum(relu.weight * z + relu.bias, torch.zeros(()))
    assert torch.equal(relu(z), expected)
    with pytest.raises(ValueError, match="spectral ReLU"):
        relu(randn(2, 4, 3, 3))


@pytest.mark.parametrize("name", ["srl_fft", "srl_lo"])
@pytest.mark.parametrize("height,width", [(8, 6), (9, 7)])
def test_one_changed_pixel_changes_every_output_position(name: str, height: int, width: int) -> None:
    """At its identity init φ is symmetric enough that a few positions of an even-sized
    map can cancel exactly, so φ's weights are moved to generic values first (P and Q
    stay orthogonal)."""
    block = make(name, height, width)
    generator = torch.Generator().manual_seed(8)
    with torch.no_grad():
        for parameter in block.phi.parameters():
            parameter.add_(0.3 * torch.randn(parameter.shape, generator=generator, dtype=F64))
        block.phi.bn.running_mean.normal_(0.0, 0.3, generator=generator)
        block.alpha.fill_(0.5)
    x = randn(1, C, height, width)
    changed = x.clone()
    changed[0, 3, 2, 1] += 1.0
    diff = (block(changed) - block(x)).detach()[0].abs().amax(dim=0)  # largest change over channels
    assert bool((diff.abs() > 1e-9).all()), f"{name}: {int((diff.abs() <= 1e-9).sum())} positions unchanged"


def test_video_is_per_frame_until_conv_t_mixes_frames() -> None:
    """With conv_t at its identity init, the video block is the image block per frame;
    once conv_t mixes frames, a change in one frame reaches the others."""
    for name in ("srl_fft", "srl_lo"):
        video = make(name, 6, 5, frames=3)
        image = make(name, 6, 5)
        image.load_state_dict({k: v for k, v in video.state_dict().items() if "conv_t" not in k})
        for block in (video, image):
            block.alpha.data.fill_(0.5)
        x = randn(2, C, 3, 6, 5)
        per_frame = torch.stack([image(x[:, :, t]) for t in range(3)], dim=2)
        torch.testing.assert_close(video(x), per_frame, rtol=0, atol=1e-12)
        with torch.no_grad():
            video.phi.conv_t.weight.copy_(randn(3, 3, 1, 1, seed=7))
        changed = x.clone()
        changed[0, :, 0] += 1.0
        diff = (video(changed) - video(x)).detach()
        assert bool((diff[0, :, 1:].abs().amax(dim=(0, 2, 3)) > 1e-9).all()), name


# ----------------------------------------------------------------------------- parameter counts


@pytest.mark.parametrize("height,width", [(16, 12), (32, 24), (64, 48)])
def test_parameter_counts_match_hand_formulas(height: int, width: int) -> None:
    channels = 256

    def count(block: torch.nn.Module) -> int:
        return sum(p.numel() for p in block.parameters())

    spectral = 2 * channels
    fft_plain = spectral * (spectral // 8) + spectral + 2 * spectral + 1  # conv W + b, BN γ β, α
    fft_srelu = fft_plain + 2 * height * (width // 2 + 1)
    lo = height**2 + width**2 + channels * channels // 2 + channels + 2 * channels + 2 * height * width + 1
    size = (height, width)
    assert count(create_block("srl_fft", channels, spatial_size=size, spectral_relu=False)) == fft_plain
    assert count(create_block("srl_fft", channels, spectral_relu=False)) == fft_plain
    assert count(create_block("srl_fft", channels, spatial_size=size)) == fft_srelu
    assert count(create_block("srl_lo", channels, spatial_size=size)) == lo
    # video adds conv_t: T×T weights and T biases
    assert count(create_block("srl_fft", channels, spatial_size=size, frames=4)) == fft_srelu + 16 + 4
