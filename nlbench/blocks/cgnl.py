"""``cgnl``: the compact generalized non-local block (Yue et al., NeurIPS 2018).

θ, φ, g are 1×1 convs C → C' (no bias); their C' channels are split into G groups, and
each group is flattened to a vector of length L = c·N (c = C'/G, N = H·W or T·H·W), so
attention runs between all channel-positions of a group. The Gaussian RBF kernel is
replaced by its Taylor expansion of order P (γ small, β = exp(−2γ)):

    out_i = Σ_j g_j · β · Σ_{k=0..P} (2γ θ_i φ_j)^k / k!   ≈   Σ_j g_j · β · exp(2γ θ_i φ_j)

which factorises, so it costs O(L·(P+1)) instead of O(L²):

    att_k = α_k · Σ_j φ_j^k g_j,   out_i = Σ_k att_k · α_k θ_i^k,   α_k = sqrt((2γ)^k / k! · β).

``kernel="dot"`` is P = 0 without the α's: out = θ · (φ · g). Then a grouped 1×1 conv
C' → C (groups G, no bias), GroupNorm(G, C) with γ = β = 0 (identity at init), and the
residual. All G groups are computed at once as a (B, G, L) batch.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from nlbench.blocks.common import (
    check_input,
    check_int_option,
    conv1x1,
    fold_frames,
    require_divisible,
    unfold_frames,
    zero_init_groupnorm,
)
from nlbench.blocks.registry import ClaimedComplexity, register_block

KERNELS = ("gaussian", "dot")


def taylor_coefficients(order: int, gamma: float) -> list[float]:
    """α_k = sqrt((2γ)^k / k! · exp(−2γ)) for k = 0..order."""
    beta = math.exp(-2.0 * gamma)
    return [math.sqrt((2.0 * gamma) ** k / math.factorial(k) * beta) for k in range(order + 1)]


def compact_kernel(theta: Tensor, phi: Tensor, g: Tensor, *, kernel: str, order: int, gamma: float) -> Tensor:
    """CGNL's factorised attention over the last axis of (…, L) tensors.

    ``kernel="gaussian"``: Σ_k α_k θ^k · (α_k φ^k · g), the order-``order`` Taylor
    expansion of Σ_j g_j exp(−2γ) exp(2γ θ_i φ_j). ``kernel="dot"``: θ · (φ · g).
    The sum over k is a short loop (P + 1 terms); every term is vectorised over all
    leading axes (batch and groups) and over L.
    """
    if kernel == "dot":
        return theta * (phi * g).sum(dim=-1, keepdim=True)
    if kernel != "gaussian":
        raise ValueError(f"cgnl: kernel must be one of {', '.join(map(repr, KERNELS))}, got {kernel!r}")
    out = torch.zeros_like(theta)
    theta_power = torch.ones_like(theta)
    phi_power = torch.ones_like(phi)
    for k, alpha in enumerate(taylor_coefficients(order, gamma)):
        if k > 0:
            theta_power = theta_power * theta
            phi_power = phi_power * phi
        att_k = (alpha * phi_power * g).sum(dim=-1, keepdim=True)  # (…, 1)
        out = out + att_k * (alpha * theta_power)
    return out


@register_block(
    "cgnl",
    family="compact generalized non-local",
    paper="Yue et al., Compact Generalized Non-local Network, NeurIPS 2018",
    claimed=ClaimedComplexity("O(C·HW·(P+1))", n_exponent=1.0, c_exponent=1.0),
    supports_video=True,
    needs_spatial_size=False,
)
class CGNLBlock(nn.Module):
    """Residual CGNL block; C' = channels / reduction split into ``groups`` groups.

    ``order`` is the Taylor order P (ignored by ``kernel="dot"``); ``gamma`` the RBF
    width γ. Video input is treated as T·H·W positions, so each group's vector has
    length c·T·H·W.
    """

    def __init__(
        self,
        channels: int,
        *,
        reduction: int = 2,
        groups: int = 8,
        order: int = 3,
        kernel: str = "gaussian",
        gamma: float = 1e-4,
    ) -> None:
        super().__init__()
        check_int_option("cgnl", "reduction", reduction, 1)
        check_int_option("cgnl", "groups", groups, 1)
        check_int_option("cgnl", "order", order, 0)
        if kernel not in KERNELS:
            raise ValueError(f"cgnl: kernel must be one of {', '.join(map(repr, KERNELS))}, got {kernel!r}")
        if isinstance(gamma, bool) or not isinstance(gamma, (int, float)) or not math.isfinite(gamma) or gamma <= 0:
            raise ValueError(f"cgnl: gamma must be a positive finite number, got {gamma!r}")
        require_divisible("cgnl", channels, reduction, "channels")
        inner = channels // reduction
        require_divisible("cgnl", inner, groups, "inner channels (channels / reduction)")
        require_divisible("cgnl", channels, groups, "channels")
        self.channels = channels
        self.inner = inner
        self.groups = groups
        self.order = order
        self.kernel = kernel
        self.gamma = float(gamma)
        self.theta = conv1x1(channels, inner, bias=False)
        self.phi = conv1x1(channels, inner, bias=False)
        self.g = conv1x1(channels, inner, bias=False)
        self.conv_out = conv1x1(inner, channels, bias=False, groups=groups)
        self.norm = zero_init_groupnorm(groups, channels)

    def evaluate_kernel(self, theta: Tensor, phi: Tensor, g: Tensor) -> Tensor:
        """This block's kernel (its ``kernel``, ``order`` and ``gamma``) on (…, L) tensors."""
        return compact_kernel(theta, phi, g, kernel=self.kernel, order=self.order, gamma=self.gamma)

    def aggregate(self, x: Tensor) -> Tensor:
        """The attention output before the output conv: (B, C', *spatial)."""
        check_input(x, self.channels, video=True)
        folded = fold_frames(x)
        b = folded.shape[0]
        grouped = (conv(folded).reshape(b, self.groups, -1) for conv in (self.theta, self.phi, self.g))
        out = self.evaluate_kernel(*grouped)  # (B, G, c·N)
        return unfold_frames(out.reshape(b, self.inner, *folded.shape[2:]), x)

    def forward(self, x: Tensor) -> Tensor:
        y = fold_frames(self.aggregate(x))
        return x + unfold_frames(self.norm(self.conv_out(y)), x)


