"""Spectral residual blocks (Chi et al., ACM MM 2019, "SRL"): ``srl_fft`` and ``srl_lo``.

Both compute ``Y = X + α·f⁻¹(φ(f(X)))`` with an orthonormal transform f over (H, W):

- ``srl_fft``: f is the 2-D real FFT (``rfft2``, ``norm="ortho"``), its real and
  imaginary parts stacked as 2C real channels; O(C·HW·log HW).
- ``srl_lo``: f(X)_c = P·X_c·Q with learnable orthogonal P (H×H) and Q (W×W);
  O(C·HW·(H+W)).

φ is a grouped 1×1 conv initialised to the identity, BatchNorm (γ=1, β=0) and a ReLU
or a *spectral ReLU* ``max(W⊙Z + B, 0)`` with one learnable W, B per frequency. α is a
scalar that starts at 0, so a fresh block is exactly the identity.

Video (SRL Fig. 3): the 2-D transform is applied per frame; φ's channel conv (conv_c)
is followed by a 1×1 conv over the temporal axis (conv_t, T×T, identity init) joined
by a transpose. conv_t's size depends on T, so video needs the ``frames`` option.

Every operation is batched over batch, channels and frames: rfft2/irfft2 or two
broadcast matmuls, 1×1 convs, a norm and element-wise ops.
"""

from __future__ import annotations

import numbers

import torch
from torch import Tensor, nn

from nlbench.blocks.common import check_input, conv1x1, identity_init_grouped_conv, require_divisible
from nlbench.blocks.registry import ClaimedComplexity, register_block

SRL_PAPER = "Chi et al., ACM MM 2019 (SRL)"
SRL_FAMILY = "spectral residual"


# ----------------------------------------------------------------------------- transforms


def rfft2_stacked(x: Tensor) -> Tensor:
    """Orthonormal 2-D real FFT over the last two axes, as real channels.

    (B, C, [T,] H, W) -> (B, 2C, [T,] H, W//2+1). Channel 2c holds the real part and
    2c+1 the imaginary part of channel c, so a channel group keeps both parts of the
    same input channels together.
    """
    spectrum = torch.view_as_real(torch.fft.rfft2(x, norm="ortho"))  # (B, C, ..., H, Wf, 2)
    stacked = spectrum.movedim(-1, 2)  # (B, C, 2, ..., H, Wf)
    return stacked.reshape(x.shape[0], 2 * x.shape[1], *stacked.shape[3:])


def irfft2_stacked(z: Tensor, size: tuple[int, int]) -> Tensor:
    """Inverse of :func:`rfft2_stacked`: (B, 2C, [T,] H, W//2+1) -> (B, C, [T,] H, W)."""
    if z.shape[1] % 2:
        raise ValueError(f"stacked spectrum needs an even channel count (re, im pairs), got {z.shape[1]}")
    pairs = z.reshape(z.shape[0], z.shape[1] // 2, 2, *z.shape[2:])
    spectrum = torch.complex(pairs[:, :, 0], pairs[:, :, 1])
    return torch.fft.irfft2(spectrum, s=size, norm="ortho")


def random_orthogonal(n: int, *, generator: torch.Generator | None = None) -> Tensor:
    """An n×n orthogonal matrix: QR of a standard-normal draw, sign-fixed (R's diagonal > 0)."""
    return orthogonal_factor(torch.randn(n, n, generator=generator))


def orthogonal_factor(matrix: Tensor) -> Tensor:
    """The Q of the QR decomposition of ``matrix`` with the signs fixed so R's diagonal is
    positive — the unique such factor, so an orthogonal input comes back unchanged."""
    q, r = torch.linalg.qr(matrix)
    signs = torch.sign(torch.diagonal(r))
    signs = torch.where(signs == 0, torch.ones_like(signs), signs)
    return q * signs  # scales column j of Q by sign(R_jj); (Q·D)(D·R) = QR


# ----------------------------------------------------------------------------- φ


class SpectralReLU(nn.Module):
    """``max(W⊙Z + B, 0)`` with one learnable weight and bias per frequency (W=1, B=0 at init).

    The last two axes of Z must be ``shape``; W and B broadcast over batch, channels
    and frames.
    """

    def __init__(self, shape: tuple[int, int]) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(shape))
        self.bias = nn.Parameter(torch.zeros(shape))

    def forward(self, z: Tensor) -> Tensor:
        if tuple(z.shape[-2:]) != tuple(self.weight.shape):
            raise ValueError(
                f"spectral ReLU was built for a spectrum of size {tuple(self.weight.shape)}, "
                f"got {tuple(z.shape[-2:])}"
            )
        return torch.relu(self.weight * z + self.bias)


class SpectralMixer(nn.Module):
    """φ: conv_c (grouped 1×1 over channels, identity init) [→ conv_t over frames] → BN → ReLU.

    Images: input (B, C', H, W'). Video: input (B, C', T, H, W'); conv_t is a T×T 1×1
    conv applied with the temporal axis transposed into the channel position.
    """

    def __init__(
        self,
        channels: int,
        *,
        groups: int,
        frames: int | None,
        relu_shape: tuple[int, int] | None,
    ) -> None:
        super().__init__()
        self.conv_c = conv1x1(channels, channels, bias=True, groups=groups)
        identity_init_grouped_conv(self.conv_c)
        self.conv_t: nn.Conv2d | None = None
        if frames is not None:
            self.conv_t = conv1x1(frames, frames, bias=True)
            identity_init_grouped_conv(self.conv_t)
        self.bn = nn.BatchNorm2d(channels)  # γ = 1, β = 0 (PyTorch's default)
        self.act: nn.Module = SpectralReLU(relu_shape) if relu_shape is not None else nn.ReLU()

    def forward(self, z: Tensor) -> Tensor:
        if z.dim() == 4:
            return self.act(self.bn(self.conv_c(z)))
        if self.conv_t is None:
            raise ValueError("this φ was built for images (frames=None); it cannot take video")
        b, c, t, h, w = z.shape
        y = self.conv_c(z.reshape(b, c, t, h * w))  # per frame and position, over channels
        y = self.conv_t(y.transpose(1, 2)).transpose(1, 2)  # per channel and position, over frames
        return self.act(self.bn(y).reshape(b, c, t, h, w))


# ----------------------------------------------------------------------------- shared checks


def _check_spatial_size(block: str, spatial_size: tuple[int, int] | None) -> tuple[int, int] | None:
    if spatial_size is None:
        return None
    if len(spatial_size) != 2 or any(
        isinstance(s, bool) or not isinstance(s, numbers.Integral) or s < 1 for s in spatial_size
    ):
        raise ValueError(f"{block}: spatial_size must be two positive integers (H, W), got {spatial_size!r}")
    return int(spatial_size[0]), int(spatial_size[1])


def _check_frames(block: str, frames: int | None) -> None:
    if frames is not None and (isinstance(frames, bool) or not isinstance(frames, int) or frames < 1):
        raise ValueError(f"{block}: frames must be a positive integer or None, got {frames!r}")


def _check_video(block: str, x: Tensor, frames: int | None) -> None:
    """Video input needs a block built with ``frames=T``; images need ``frames=None``."""
    if x.dim() == 5:
        if frames is None:
            raise ValueError(
                f"{block}: got video input {tuple(x.shape)} but the block was built for images; "
                f"create it with frames={x.shape[2]} (conv_t is T×T)"
            )
        if x.shape[2] != frames:
            raise ValueError(f"{block}: built for frames={frames}, got T={x.shape[2]} (input {tuple(x.shape)})")
    elif frames is not None:
        raise ValueError(f"{block}: built for video with frames={frames}, got image input {tuple(x.shape)}")


def _check_size(block: str, x: Tensor, size: tuple[int, int], why: str) -> None:
    if tuple(x.shape[-2:]) != size:
        raise ValueError(f"{block}: built for spatial_size={size} ({why}), got (H, W)={tuple(x.shape[-2:])}")


# ----------------------------------------------------------------------------- blocks


@register_block(
    "srl_fft",
    family=SRL_FAMILY,
    paper=SRL_PAPER,
    claimed=ClaimedComplexity("O(C·HW·log(HW))", n_exponent=1.0, c_exponent=1.0, n_log_power=1),
    supports_video=True,
    needs_spatial_size=True,
    spatial_size_option="spectral_relu",
)
class SpectralResidualFFT(nn.Module):
    """SRL-FFT: ``Y = X + α·irfft2(φ(rfft2(X)))``, real/imaginary parts as 2C channels.

    ``spatial_size`` is needed only with the spectral ReLU (its W, B are H×(W//2+1)).
    """

    def __init__(
        self,
        channels: int,
        *,
        spatial_size: tuple[int, int] | None = None,
        spectral_relu: bool = True,
        groups: int = 8,
        frames: int | None = None,
    ) -> None:
        super().__init__()
        require_divisible("srl_fft", 2 * channels, groups, "spectral channels 2C")
        _check_frames("srl_fft", frames)
        size = _check_spatial_size("srl_fft", spatial_size)
        if spectral_relu and size is None:
            raise ValueError("srl_fft: spectral_relu=True needs spatial_size=(H, W); pass it or spectral_relu=False")
        self.channels = channels
        self.frames = frames
        self.spatial_size = size
        self.spectral_relu = bool(spectral_relu)
        relu_shape = (size[0], size[1] // 2 + 1) if spectral_relu and size is not None else None
        self.phi = SpectralMixer(2 * channels, groups=groups, frames=frames, relu_shape=relu_shape)
        self.alpha = nn.Parameter(torch.zeros(()))

    def transform(self, x: Tensor) -> Tensor:
        """f: (B, C, [T,] H, W) -> (B, 2C, [T,] H, W//2+1), orthonormal rfft2 as real channels."""
        return rfft2_stacked(x)

    def inverse(self, z: Tensor, size: tuple[int, int]) -> Tensor:
        """f⁻¹: (B, 2C, [T,] H, W//2+1) -> (B, C, [T,] H, W) for the original (H, W)."""
        return irfft2_stacked(z, size)

    def forward(self, x: Tensor) -> Tensor:
        check_input(x, self.channels, video=True)
        _check_video("srl_fft", x, self.frames)
        if self.spectral_relu:
            assert self.spatial_size is not None
            _check_size("srl_fft", x, self.spatial_size, "the spectral ReLU's W, B depend on it")
        size = (x.shape[-2], x.shape[-1])
        return x + self.alpha * self.inverse(self.phi(self.transform(x)), size)


@register_block(
    "srl_lo",
    family=SRL_FAMILY,
    paper=SRL_PAPER,
    claimed=ClaimedComplexity("O(C·HW·(H+W))", n_exponent=1.5, c_exponent=1.0),
    supports_video=True,
    needs_spatial_size=True,
)
class SpectralResidualLO(nn.Module):
    """SRL-LO: ``Y = X + α·Pᵀ·φ(P·X·Q)·Qᵀ`` with learnable orthogonal P (H×H), Q (W×W).

    Gradient steps drift P and Q off the orthogonal group: call :meth:`reorthogonalize`
    after each optimiser step (the paper), or set ``reorthogonalize_in_forward`` to do
    it at the start of every forward (the authors' code).
    """

    def __init__(
        self,
        channels: int,
        *,
        spatial_size: tuple[int, int] | None = None,
        spectral_relu: bool = True,
        groups: int = 2,
        frames: int | None = None,
        reorthogonalize_in_forward: bool = False,
    ) -> None:
        super().__init__()
        require_divisible("srl_lo", channels, groups, "channels")
        _check_frames("srl_lo", frames)
        size = _check_spatial_size("srl_lo", spatial_size)
        if size is None:
            raise ValueError("srl_lo needs spatial_size=(H, W): P is H×H and Q is W×W")
        self.channels = channels
        self.frames = frames
        self.spatial_size = size
        self.reorthogonalize_in_forward = bool(reorthogonalize_in_forward)
        self.P = nn.Parameter(random_orthogonal(size[0]))
        self.Q = nn.Parameter(random_orthogonal(size[1]))
        self.phi = SpectralMixer(channels, groups=groups, frames=frames, relu_shape=size if spectral_relu else None)
        self.alpha = nn.Parameter(torch.zeros(()))

    @torch.no_grad()
    def reorthogonalize(self) -> None:
        """Replace P and Q, in place, by the orthogonal factors of their QR (R's diagonal > 0)."""
        self.P.copy_(orthogonal_factor(self.P))
        self.Q.copy_(orthogonal_factor(self.Q))

    def transform(self, x: Tensor) -> Tensor:
        """f(X)_c = P·X_c·Q for every batch item, channel (and frame)."""
        return torch.matmul(torch.matmul(self.P, x), self.Q)

    def inverse(self, z: Tensor) -> Tensor:
        """f⁻¹(Z)_c = Pᵀ·Z_c·Qᵀ (exact while P and Q are orthogonal)."""
        return torch.matmul(torch.matmul(self.P.t(), z), self.Q.t())

    def forward(self, x: Tensor) -> Tensor:
        check_input(x, self.channels, video=True)
        _check_video("srl_lo", x, self.frames)
        _check_size("srl_lo", x, self.spatial_size, "P is H×H and Q is W×W")
        if self.reorthogonalize_in_forward:
            self.reorthogonalize()
        return x + self.alpha * self.inverse(self.phi(self.transform(x)))
