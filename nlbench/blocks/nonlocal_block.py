"""``nl``: the non-local block (Wang et al., CVPR 2018) and ``ns``: the nonlocal stage
(Tao et al., NeurIPS 2018, in the form the SNL paper's Eq. 9 writes it).

Both build an explicit dense N×N affinity over all N = H·W (video: T·H·W) positions:

    θ, φ, g = 1×1 convs C → C' (C' = C / reduction, with bias), flattened to N positions
    A       = softmax_row(θᵀφ / √C')                             (N × N)
    nl:  Y  = X + BN(W_z (A·g))                                  (W_z: 1×1 conv C' → C, bias)
    ns:  Y  = X + BN(W (Z − A·Z)),  Z = g(X)                     (the (I − A) diffusion form)

The last BatchNorm starts with γ = β = 0, so a fresh block in eval mode is exactly the
identity. Everything is batched: one ``bmm`` for θᵀφ, one softmax, one ``bmm`` for A·g.
The affinity is materialised on purpose (no fused attention kernel): the benchmark
measures the block as the paper defines it, including the memory of its N×N matrix.
Video input (B, C, T, H, W) is folded to (B, C, T·H, W): 1×1 convs, BN and attention over
all positions do not see the layout, so this is exact.
"""

from __future__ import annotations

import math
from numbers import Integral
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nlbench.blocks.common import (
    check_input,
    check_int_option,
    conv1x1,
    fold_frames,
    require_divisible,
    unfold_frames,
    zero_init_batchnorm,
)
from nlbench.blocks.registry import ClaimedComplexity, Implementation, register_block
from nlbench.vocabulary import IMPL_DENSE

NL_MODES = ("embedded_gaussian", "dot_product", "gaussian")

DENSE_AFFINITY = ClaimedComplexity("O(C·H²W²)", n_exponent=2.0, c_exponent=1.0)
#: A rank-≤ r affinity applied through its factors, never formed: O(C′²·N) (C′ ∝ C).
FACTORIZED_AFFINITY = ClaimedComplexity("O(C′²·HW)", n_exponent=1.0, c_exponent=2.0)

#: The other ``impl`` values (registry.Implementation names; the default, IMPL_DENSE, is
#: in the vocabulary) of the blocks that have exact alternatives.
IMPL_FACTORIZED = "factorized"
IMPL_SDPA = "sdpa"


# ---------------------------------------------------------------------------------------
# Shared pure helpers (also used by ``snl``)
# ---------------------------------------------------------------------------------------


def inner_width(block: str, channels: int, reduction: object) -> int:
    """C' = C / reduction, checked: the reduction must be a positive divisor of C."""
    if isinstance(channels, bool) or not isinstance(channels, Integral) or channels < 1:
        raise ValueError(f"{block}: channels must be a positive integer, got {channels!r}")
    reduction = check_int_option(block, "reduction", reduction, 1)
    require_divisible(block, int(channels), reduction, "channels")
    return int(channels) // reduction


def check_impl(block: str, impl: object, implementations: "Sequence[Implementation]") -> str:
    """The ``impl`` option checked against the block's declared implementations."""
    names = [i.name for i in implementations]
    if impl not in names:
        raise ValueError(f"{block}: option 'impl' must be one of {', '.join(names)}; got {impl!r}")
    return str(impl)


def flatten_positions(t: Tensor) -> Tensor:
    """(B, C, *spatial) -> (B, C, N): one column per position (a view when possible)."""
    return t.reshape(t.shape[0], t.shape[1], -1)


def aggregate(affinity: Tensor, z: Tensor) -> Tensor:
    """A·Z in channels-first layout: (B, N, M) with (B, C, M) -> (B, C, N).

    Computed as (A·Zᵀ)ᵀ, a view: the backward pass then hands the softmax a contiguous
    N×M gradient. The other order, Z·Aᵀ, makes that gradient a transposed view that the
    softmax backward copies; measured on 2 CPU threads, (A·Zᵀ)ᵀ takes 0.70× the time of
    Z·Aᵀ for softmax + aggregation forward and backward (B 32, N 256, C 16; B 1, N 1024
    and 4096, C 32) and up to 0.5× forward.
    """
    return torch.bmm(affinity, z.transpose(1, 2)).transpose(1, 2)


def fused_attention(theta: Tensor, phi: Tensor, values: Tensor, scale: float) -> Tensor:
    """softmax_row(scale · θᵀφ)·V in channels-first layout by fused attention: θ (B, d, N),
    φ (B, d, M), V (B, C, M) -> (B, C, N), never forming the N×M matrix (memory O(N))."""
    # (B, heads = 1, positions, channels) with unit last stride: CPU's fused (flash) kernel
    # takes only 4-D inputs whose last dimension is dense; for any other layout the math
    # fallback forms the N×M matrix after all. The copies are O(N·C).
    def heads(t: Tensor) -> Tensor:
        return t.transpose(1, 2).contiguous().unsqueeze(1)

    out = F.scaled_dot_product_attention(heads(theta), heads(phi), heads(values), scale=scale)
    return out.squeeze(1).transpose(1, 2)


def softmax_affinity(theta: Tensor, phi: Tensor, scale: float) -> Tensor:
    """softmax_row(scale · θᵀφ) for θ (B, d, N) and φ (B, d, M) -> (B, N, M).

    The scale is applied to θ (O(N·d)) rather than to the N×M logits (O(N·M)).
    """
    logits = torch.bmm((theta * scale).transpose(1, 2), phi)
    return torch.softmax(logits, dim=-1)


def check_affinity(affinity: Tensor, batch: int, rows: int, cols: int, block: str) -> None:
    """Reject an externally supplied affinity of the wrong shape."""
    expected = (batch, rows, cols)
    if affinity.dim() != 3 or tuple(affinity.shape) != expected:
        raise ValueError(f"{block}: affinity must have shape {expected} (B, N, N'), got {tuple(affinity.shape)}")


def pool_positions(t: Tensor, like: Tensor) -> Tensor:
    """2×2 max-pool of a folded feature map, per frame for video -> (B, C, N').

    ``t`` is (B, C, T·H, W) (or (B, C, H, W)), ``like`` the block's unfolded input; a
    video is pooled with a (1, 2, 2) window so that no window straddles two frames.
    Odd sizes are floored, as ``max_pool2d`` does.
    """
    height, width = like.shape[-2:]
    if height < 2 or width < 2:
        raise ValueError(f"sub_sample needs H >= 2 and W >= 2 for its 2×2 max-pool, got {height}×{width}")
    if like.dim() == 5:
        b, _, frames = like.shape[:3]
        pooled = F.max_pool3d(t.reshape(b, t.shape[1], frames, height, width), kernel_size=(1, 2, 2))
    else:
        pooled = F.max_pool2d(t, kernel_size=2)
    return flatten_positions(pooled)


# ---------------------------------------------------------------------------------------
# nl
# ---------------------------------------------------------------------------------------


_SOFTMAX_MODES = ("embedded_gaussian", "gaussian")
_DENSE = Implementation(IMPL_DENSE, DENSE_AFFINITY, "the N×N' affinity A formed, then A·g", dense_affinity=True)
_SDPA_TEXT = ("fused attention (scaled_dot_product_attention): the same softmax·V without storing the "
              "N×N' matrix, O(C·N²) compute, O(N) memory")
NL_IMPLEMENTATIONS = (
    _DENSE,
    Implementation(IMPL_FACTORIZED, FACTORIZED_AFFINITY,
                   "dot_product only: A·g = (g·φᵀ)·θ / N', no N×N' matrix", requires=(("mode", ("dot_product",)),)),
    Implementation(IMPL_SDPA, DENSE_AFFINITY, _SDPA_TEXT, requires=(("mode", _SOFTMAX_MODES),)),
)
NS_IMPLEMENTATIONS = (_DENSE, Implementation(IMPL_SDPA, DENSE_AFFINITY, _SDPA_TEXT + "; one call per unit"))


@register_block(
    "nl",
    family="non-local",
    paper="Wang et al., Non-local Neural Networks, CVPR 2018",
    claimed=DENSE_AFFINITY,
    supports_video=True,
    dense_affinity=True,
    implementations=NL_IMPLEMENTATIONS,
)
class NonLocalBlock(nn.Module):
    """Y = X + BN(W_z(A·g(X))) with a dense N×N' affinity A (Wang et al.).

    Modes: ``embedded_gaussian`` A = softmax_row(θᵀφ/√C'); ``dot_product`` A = θᵀφ/N'
    (N' = number of φ positions, after sub-sampling when on); ``gaussian`` θ = φ =
    identity, A = softmax_row(XᵀX/√C) (the embedded form's scaling, with the width of
    the vectors actually dotted). ``sub_sample`` 2×2-max-pools φ and g (per frame for
    video), so A is N×N' with N' ≈ N/4.

    ``impl``: ``dense`` forms A; ``factorized`` (dot_product only) computes A·g as
    (g·φᵀ)·θ/N'; ``sdpa`` (softmax modes) uses fused attention. Same parameters.
    Submodules: ``theta``, ``phi`` (None in gaussian mode), ``g``, ``w_z``, ``bn``.
    """

    def __init__(
        self,
        channels: int,
        *,
        mode: str = "embedded_gaussian",
        sub_sample: bool = False,
        reduction: int = 2,
        impl: str = IMPL_DENSE,
    ) -> None:
        super().__init__()
        inner = inner_width("nl", channels, reduction)
        if mode not in NL_MODES:
            raise ValueError(f"nl: option 'mode' must be one of {', '.join(NL_MODES)}; got {mode!r}")
        if not isinstance(sub_sample, bool):
            raise ValueError(f"nl: option 'sub_sample' must be True or False, got {sub_sample!r}")
        self.impl = check_impl("nl", impl, NL_IMPLEMENTATIONS)
        problem = next(i for i in NL_IMPLEMENTATIONS if i.name == impl).problem("nl", {"mode": mode})
        if problem is not None:
            raise ValueError(problem)
        self.channels = int(channels)
        self.inner_channels = inner
        self.mode = mode
        self.sub_sample = sub_sample
        self.theta: nn.Conv2d | None = None if mode == "gaussian" else conv1x1(channels, inner)
        self.phi: nn.Conv2d | None = None if mode == "gaussian" else conv1x1(channels, inner)
        self.g = conv1x1(channels, inner)
        self.w_z = conv1x1(inner, channels)
        self.bn = zero_init_batchnorm(channels)

    def _keys(self, t: Tensor, x: Tensor) -> Tensor:
        """Flatten a folded key/value map to (B, C, N'), pooling when sub-sampling."""
        return pool_positions(t, x) if self.sub_sample else flatten_positions(t)

    def _embed(self, x: Tensor, xf: Tensor) -> tuple[Tensor, Tensor]:
        """θ (B, d, N) and φ (B, d, N') of the folded input ``xf``."""
        if self.theta is None or self.phi is None:  # gaussian: θ = φ = identity
            return flatten_positions(xf), self._keys(xf, x)
        return flatten_positions(self.theta(xf)), self._keys(self.phi(xf), x)

    def _affinity_of(self, theta: Tensor, phi: Tensor) -> Tensor:
        if self.mode == "dot_product":
            return torch.bmm((theta * (1.0 / phi.shape[-1])).transpose(1, 2), phi)
        return softmax_affinity(theta, phi, 1.0 / math.sqrt(theta.shape[1]))

    def affinity(self, x: Tensor) -> Tensor:
        """The (B, N, N') affinity A the block uses for ``x`` (N' = N without sub-sampling)."""
        check_input(x, self.channels, video=True)
        return self._affinity_of(*self._embed(x, fold_frames(x)))

    def forward_with_affinity(self, x: Tensor, affinity: Tensor) -> Tensor:
        """The block's output with a given (B, N, N') affinity in place of its own."""
        check_input(x, self.channels, video=True)
        xf = fold_frames(x)
        g = self._keys(self.g(xf), x)
        check_affinity(affinity, x.shape[0], xf.shape[2] * xf.shape[3], g.shape[-1], "nl")
        return self._output(x, xf, aggregate(affinity, g))

    def _output(self, x: Tensor, xf: Tensor, aggregated: Tensor) -> Tensor:
        """Y = X + BN(W_z(A·g)) from A·g (B, C', N)."""
        y = aggregated.reshape(xf.shape[0], self.inner_channels, *xf.shape[2:])
        return unfold_frames(xf + self.bn(self.w_z(y)), x)

    def _aggregated(self, x: Tensor, xf: Tensor) -> Tensor:
        """A·g (B, C', N) by the block's implementation."""
        theta, phi = self._embed(x, xf)
        g = self._keys(self.g(xf), x)
        if self.impl == IMPL_FACTORIZED:
            return torch.bmm(torch.bmm(g, phi.transpose(1, 2)) * (1.0 / phi.shape[-1]), theta)
        if self.impl == IMPL_SDPA:
            return fused_attention(theta, phi, g, 1.0 / math.sqrt(theta.shape[1]))
        return aggregate(self._affinity_of(theta, phi), g)

    def forward(self, x: Tensor) -> Tensor:
        check_input(x, self.channels, video=True)
        xf = fold_frames(x)
        return self._output(x, xf, self._aggregated(x, xf))


# ---------------------------------------------------------------------------------------
# ns
# ---------------------------------------------------------------------------------------


class _DiffusionUnit(nn.Module):
    """One unit of a nonlocal stage: X ↦ X + BN(W(Z − A·Z)), Z = g(X)."""

    def __init__(self, channels: int, inner: int) -> None:
        super().__init__()
        self.inner_channels = inner
        self.g = conv1x1(channels, inner)
        self.w = conv1x1(inner, channels)
        self.bn = zero_init_batchnorm(channels)

    def forward(self, xf: Tensor, propagate: Callable[[Tensor], Tensor]) -> Tensor:
        """``propagate`` maps Z (B, C', N) to A·Z."""
        z = self.g(xf)
        zf = flatten_positions(z)
        diffused = (zf - propagate(zf)).reshape(z.shape)
        return xf + self.bn(self.w(diffused))


@register_block(
    "ns",
    family="non-local stage",
    paper="Tao et al., Nonlocal Neural Networks, Nonlocal Diffusion and Nonlocal Modeling, NeurIPS 2018",
    claimed=DENSE_AFFINITY,
    supports_video=True,
    dense_affinity=True,
    implementations=NS_IMPLEMENTATIONS,
)
class NonLocalStage(nn.Module):
    """A nonlocal stage: ``stage_num`` units X ← X + BN_s(W_s(Z_s − A·Z_s)), Z_s = g_s(X).

    A = softmax_row(θᵀφ/√C') is computed once, from the stage's input, and shared by
    every unit (Tao et al.: the affinity is fixed within a stage); each unit has its
    own g, W and zero-initialised BN. ``impl="sdpa"`` computes each unit's A·Z by fused
    attention (the softmax is recomputed per unit; no N×N matrix is stored).
    Submodules: ``theta``, ``phi``, ``units``.
    """

    def __init__(self, channels: int, *, reduction: int = 2, stage_num: int = 1, impl: str = IMPL_DENSE) -> None:
        super().__init__()
        inner = inner_width("ns", channels, reduction)
        stage_num = check_int_option("ns", "stage_num", stage_num, 1)
        self.impl = check_impl("ns", impl, NS_IMPLEMENTATIONS)
        self.channels = int(channels)
        self.inner_channels = inner
        self.theta = conv1x1(channels, inner)
        self.phi = conv1x1(channels, inner)
        self.units = nn.ModuleList(_DiffusionUnit(channels, inner) for _ in range(stage_num))

    def _affinity_of(self, xf: Tensor) -> Tensor:
        theta, phi = flatten_positions(self.theta(xf)), flatten_positions(self.phi(xf))
        return softmax_affinity(theta, phi, 1.0 / math.sqrt(self.inner_channels))

    def affinity(self, x: Tensor) -> Tensor:
        """The (B, N, N) row-stochastic affinity A shared by the stage's units."""
        check_input(x, self.channels, video=True)
        return self._affinity_of(fold_frames(x))

    def forward_with_affinity(self, x: Tensor, affinity: Tensor) -> Tensor:
        """The stage's output with a given (B, N, N) affinity in place of its own."""
        check_input(x, self.channels, video=True)
        xf = fold_frames(x)
        n = xf.shape[2] * xf.shape[3]
        check_affinity(affinity, x.shape[0], n, n, "ns")
        return self._output(x, xf, lambda z: aggregate(affinity, z))

    def _output(self, x: Tensor, xf: Tensor, propagate: Callable[[Tensor], Tensor]) -> Tensor:
        for unit in self.units:
            xf = unit(xf, propagate)
        return unfold_frames(xf, x)

    def forward(self, x: Tensor) -> Tensor:
        check_input(x, self.channels, video=True)
        xf = fold_frames(x)
        if self.impl == IMPL_SDPA:  # θ, φ from the stage's input, as the dense form's A
            theta, phi = flatten_positions(self.theta(xf)), flatten_positions(self.phi(xf))
            scale = 1.0 / math.sqrt(self.inner_channels)
            return self._output(x, xf, lambda z: fused_attention(theta, phi, z, scale))
        affinity = self._affinity_of(xf)
        return self._output(x, xf, lambda z: aggregate(affinity, z))
