"""``snl``: the spectral nonlocal block (Zhu, She, Zhang, Guo, "A Spectral Nonlocal Block
for Deep Neural Networks").

    θ, φ, g = 1×1 convs C → C' (C' = C / reduction, no bias), flattened to N positions
    M  = ReLU(θ)ᵀ ReLU(φ)                      non-negative (the authors' released kernel)
    M̂  = (M + Mᵀ) / 2,   D = diag(row sums of M̂)
    A  = D^{-1/2} M̂ D^{-1/2}                  symmetric, eigenvalues in [−1, 1]
    Y  = X + BN(Σ_{k=0..K} A^k·Z·W_{k+1}),   Z = g(X),  W_k: 1×1 convs C' → C (no bias)

K = ``order``: K = 1 is the SNL block, Z·W₁ + A·Z·W₂; K = 2 adds A²·Z·W₃ (gSNL), and so
on. We use the monomial terms A^k·Z·W_{k+1}, as the spec writes them, not the Chebyshev
polynomials T_k(A) = 2A·T_{k−1}(A) − T_{k−2}(A) of SNL Eq. 8: with a free W per term both
span exactly the same family of functions (T_k is a combination of A^0..A^k, absorbed by
the W's), and the monomials need no subtraction. A^k·Z is computed by repeated A·(·)
products (K bmms of N×N×C'), never by forming A^k.

Efficiency without changing the definition: the degrees are D_ii = ½(ReLU(θ)_i·s_φ +
ReLU(φ)_i·s_θ), s = Σ_j ReLU(·)_j — O(N·C') instead of N² row sums — and the D^{-1/2}
scaling is applied to the features before the one bmm (A = Lᵀ·R, the stacked factors
of :func:`spectral_factors`), so A is the only N×N matrix kept for backward. It is still
the explicit dense affinity the paper defines. ``impl="factorized"`` never forms it.
Zero degrees (a position whose ReLU features are all zero) get D^{-1/2} = 0: its row
and column of A are zero, and the output stays finite. The last BN starts at γ = β = 0
(identity at init). Video (B, C, T, H, W) is folded to T·H·W positions.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor, nn

from nlbench.blocks.common import check_input, check_int_option, conv1x1, fold_frames, unfold_frames, zero_init_batchnorm
from nlbench.blocks.nonlocal_block import (
    DENSE_AFFINITY,
    FACTORIZED_AFFINITY,
    IMPL_FACTORIZED,
    aggregate,
    check_affinity,
    check_impl,
    flatten_positions,
    inner_width,
)
from nlbench.blocks.registry import Implementation, register_block
from nlbench.vocabulary import IMPL_DENSE

SNL_IMPLEMENTATIONS = (
    Implementation(IMPL_DENSE, DENSE_AFFINITY, "the N×N affinity A formed; A^k·Z by repeated products",
                   dense_affinity=True),
    Implementation(IMPL_FACTORIZED, FACTORIZED_AFFINITY,
                   "A = Lᵀ·R (rank ≤ 2C′) applied through its factors, A·Z = (Z·Rᵀ)·L: no N×N matrix"),
)


def inverse_sqrt_degrees(theta_pos: Tensor, phi_pos: Tensor) -> Tensor:
    """D^{-1/2} of M̂ = ½(θ⁺ᵀφ⁺ + φ⁺ᵀθ⁺) for non-negative (B, d, N) features -> (B, N).

    Row sums by linearity, without the N×N matrix; a zero degree gives 0 (not inf), and
    the gradient at it is 0 too (the ``where`` never takes rsqrt of 0).
    """
    degrees = 0.5 * (
        torch.einsum("bdn,bd->bn", theta_pos, phi_pos.sum(dim=-1))
        + torch.einsum("bdn,bd->bn", phi_pos, theta_pos.sum(dim=-1))
    )
    positive = degrees > 0
    return torch.where(positive, degrees, torch.ones_like(degrees)).rsqrt() * positive


def spectral_factors(theta: Tensor, phi: Tensor) -> tuple[Tensor, Tensor]:
    """Factors L, R (B, 2d, N) of the spectral affinity, A = Lᵀ·R, for (B, d, N) θ and φ.

    With s = D^{-1/2}: L = [θ⁺; φ⁺]·s and R = ½[φ⁺; θ⁺]·s, so (LᵀR)_ij =
    s_i·½(θ⁺_i·φ⁺_j + φ⁺_i·θ⁺_j)·s_j — the definition, with rank ≤ 2d.
    """
    theta_pos, phi_pos = torch.relu(theta), torch.relu(phi)
    inv_sqrt = inverse_sqrt_degrees(theta_pos, phi_pos).unsqueeze(1)  # (B, 1, N)
    left = torch.cat([theta_pos, phi_pos], dim=1) * inv_sqrt
    right = torch.cat([phi_pos, theta_pos], dim=1) * (0.5 * inv_sqrt)
    return left, right


def spectral_affinity(theta: Tensor, phi: Tensor) -> Tensor:
    """A = D^{-1/2} M̂ D^{-1/2} with M̂ the symmetrised ReLU(θ)ᵀReLU(φ), for (B, d, N) -> (B, N, N).

    Formed as Lᵀ·R from :func:`spectral_factors` — one product with a 2d contraction —
    rather than as K + Kᵀ: adding an N×N matrix to its transpose walks one of them
    against its memory layout, which made this block 2.7× slower at 64×64 (C = 64,
    one thread; benchmarks/exact_forms.py). Symmetric up to rounding: A_ij and A_ji
    sum the same 2d products in a different order.
    """
    left, right = spectral_factors(theta, phi)
    return torch.bmm(left.transpose(1, 2), right)


@register_block(
    "snl",
    family="spectral non-local",
    paper="Zhu, She, Zhang, Guo, A Spectral Nonlocal Block for Deep Neural Networks",
    claimed=DENSE_AFFINITY,
    supports_video=True,
    dense_affinity=True,
    implementations=SNL_IMPLEMENTATIONS,
)
class SpectralNonLocalBlock(nn.Module):
    """Y = X + BN(Σ_{k=0..order} A^k·Z·W_{k+1}) with A the normalised symmetric affinity.

    ``impl="dense"`` forms A (N×N); ``impl="factorized"`` computes the same function
    through A's rank-≤ 2C′ factors (:func:`spectral_factors`), O(C′²·N) with no N×N
    matrix. Both have the same parameters (``state_dict``).
    Submodules: ``theta``, ``phi``, ``g`` (C → C', no bias), ``w`` (a ModuleList of
    order + 1 convs C' → C, no bias; ``w[k]`` multiplies A^k·Z), ``bn``.
    """

    def __init__(self, channels: int, *, reduction: int = 2, order: int = 1, impl: str = IMPL_DENSE) -> None:
        super().__init__()
        inner = inner_width("snl", channels, reduction)
        order = check_int_option("snl", "order", order, 1)
        self.impl = check_impl("snl", impl, SNL_IMPLEMENTATIONS)
        self.channels = int(channels)
        self.inner_channels = inner
        self.order = order
        self.theta = conv1x1(channels, inner, bias=False)
        self.phi = conv1x1(channels, inner, bias=False)
        self.g = conv1x1(channels, inner, bias=False)
        self.w = nn.ModuleList(conv1x1(inner, channels, bias=False) for _ in range(order + 1))
        self.bn = zero_init_batchnorm(channels)

    def _affinity_of(self, xf: Tensor) -> Tensor:
        return spectral_affinity(flatten_positions(self.theta(xf)), flatten_positions(self.phi(xf)))

    def _propagator(self, xf: Tensor) -> Callable[[Tensor], Tensor]:
        """Z ↦ A·Z for this input, by the block's implementation."""
        if self.impl == IMPL_FACTORIZED:
            left, right = spectral_factors(flatten_positions(self.theta(xf)), flatten_positions(self.phi(xf)))
            return lambda term: torch.bmm(torch.bmm(term, right.transpose(1, 2)), left)
        affinity = self._affinity_of(xf)
        return lambda term: aggregate(affinity, term)

    def affinity(self, x: Tensor) -> Tensor:
        """The (B, N, N) symmetric normalised affinity A the block uses for ``x``."""
        check_input(x, self.channels, video=True)
        return self._affinity_of(fold_frames(x))

    def forward_with_affinity(self, x: Tensor, affinity: Tensor) -> Tensor:
        """The block's output with a given (B, N, N) affinity in place of its own
        (e.g. a row-normalised one, which with W₁ = −W₂ turns SNL into NS)."""
        check_input(x, self.channels, video=True)
        xf = fold_frames(x)
        n = xf.shape[2] * xf.shape[3]
        check_affinity(affinity, x.shape[0], n, n, "snl")
        return self._output(x, xf, lambda term: aggregate(affinity, term))

    def _output(self, x: Tensor, xf: Tensor, propagate: Callable[[Tensor], Tensor]) -> Tensor:
        z = self.g(xf)
        term = flatten_positions(z)
        mixed = self.w[0](z)
        for w_k in self.w[1:]:
            term = propagate(term)  # A^k·Z from A^{k-1}·Z
            mixed = mixed + w_k(term.reshape(z.shape))
        return unfold_frames(xf + self.bn(mixed), x)

    def forward(self, x: Tensor) -> Tensor:
        check_input(x, self.channels, video=True)
        xf = fold_frames(x)
        return self._output(x, xf, self._propagator(xf))
