"""Small pieces every block shares: input checks, 1×1 convs, zero-initialised norms,
and the video folding that lets position-wise blocks treat (B, C, T, H, W) as
(B, C, T·H, W).

Folding is exact for anything made of 1×1 convolutions, per-channel norms and
attention over all positions, because those never look at the spatial layout.
"""

from __future__ import annotations

from numbers import Integral

from torch import Tensor, nn


def check_input(x: Tensor, channels: int, *, video: bool) -> None:
    """Reject inputs of the wrong rank or channel count with a clear message."""
    ranks = (4, 5) if video else (4,)
    if x.dim() not in ranks:
        shapes = "(B, C, H, W) or (B, C, T, H, W)" if video else "(B, C, H, W)"
        raise ValueError(f"expected input of shape {shapes}, got {tuple(x.shape)}")
    if x.shape[1] != channels:
        raise ValueError(f"expected {channels} channels, got {x.shape[1]} (input {tuple(x.shape)})")


def fold_frames(x: Tensor) -> Tensor:
    """(B, C, T, H, W) -> (B, C, T·H, W); images pass through unchanged."""
    if x.dim() == 5:
        b, c, t, h, w = x.shape
        return x.reshape(b, c, t * h, w)
    return x


def unfold_frames(y: Tensor, like: Tensor) -> Tensor:
    """Undo :func:`fold_frames` so ``y`` takes the shape of ``like``."""
    return y.reshape(like.shape[0], y.shape[1], *like.shape[2:])


def conv1x1(in_channels: int, out_channels: int, *, bias: bool = True, groups: int = 1) -> nn.Conv2d:
    """A 1×1 convolution (a per-position linear map over channels)."""
    return nn.Conv2d(in_channels, out_channels, kernel_size=1, bias=bias, groups=groups)


def zero_init_batchnorm(channels: int) -> nn.BatchNorm2d:
    """BatchNorm with γ = β = 0, so the residual branch starts as exactly zero."""
    norm = nn.BatchNorm2d(channels)
    nn.init.zeros_(norm.weight)
    nn.init.zeros_(norm.bias)
    return norm


def zero_init_groupnorm(groups: int, channels: int) -> nn.GroupNorm:
    """GroupNorm with γ = β = 0 (CGNL's identity-at-init)."""
    norm = nn.GroupNorm(groups, channels)
    nn.init.zeros_(norm.weight)
    nn.init.zeros_(norm.bias)
    return norm


def identity_init_grouped_conv(conv: nn.Conv2d) -> None:
    """Initialise a grouped 1×1 conv with in == out channels to the identity map."""
    out_channels, in_per_group = conv.weight.shape[:2]
    conv.weight.data.zero_()
    for o in range(out_channels):
        conv.weight.data[o, o % in_per_group, 0, 0] = 1.0
    if conv.bias is not None:
        conv.bias.data.zero_()


def require_divisible(name: str, value: int, divisor: int, what: str) -> None:
    """Raise a clear error when an inner width does not split evenly."""
    if divisor < 1 or value % divisor:
        raise ValueError(f"{name}: {what} ({value}) must be divisible by {divisor}")


def check_int_option(block: str, name: str, value: object, minimum: int) -> int:
    """An integer option ≥ ``minimum``; anything else (``True`` too) is a ValueError
    naming the block and the option."""
    if isinstance(value, bool) or not isinstance(value, Integral) or int(value) < minimum:
        raise ValueError(f"{block}: option {name!r} must be an integer >= {minimum}, got {value!r}")
    return int(value)
