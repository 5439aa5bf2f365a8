"""Receptive-field probe: which input pixels can change one output position?

The probe network (:class:`~nlbench.probes.network.ProbeNet`) with a block after its stem
is differentiated at the centre position of the block's output (or of the feature map
just before global pooling) with respect to the input image. Where the gradient is
zero the pixel cannot influence that position. A local block reaches a small window
(the backbone's 7×7 plus the block's own kernel), the identity block exactly the
backbone's window, a global block the whole image. Blocks are identity at
initialisation, so their parameters are perturbed first (or a trained model is used).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
from torch import nn

from nlbench.probes.network import ProbeNet, backbone_receptive_field, build_probe_net, reorthogonalizers
from nlbench.vocabulary import KIND_RECEPTIVE_FIELD


@dataclass(frozen=True, eq=False)
class ReceptiveFieldResult:
    """Gradient reach of one output position of a block inside the probe network.

    ``heatmap`` (H, W) is |∂out/∂input| summed over input channels and divided by its
    maximum; a pixel is *reached* when its value exceeds ``rel_threshold``.
    ``fraction_reached`` is the reached share of all input pixels; ``erf_radius`` the
    smallest Euclidean radius around ``centre`` (the input pixel the output position
    is centred on) holding ``mass`` of the summed gradient magnitude (the effective
    receptive field); ``reach_radius`` the largest Chebyshev distance from ``centre``
    of a reached pixel. ``backbone_rf`` is the backbone's own receptive field.
    """

    block: str
    target: str
    image_size: tuple[int, int]
    feature_index: tuple[int, int]
    centre: tuple[int, int]
    heatmap: np.ndarray
    rel_threshold: float
    fraction_reached: float
    erf_radius: float
    mass: float
    reach_radius: int
    backbone_rf: int

    def __post_init__(self) -> None:
        if self.heatmap.shape != self.image_size:
            raise ValueError(f"heatmap shape {self.heatmap.shape} does not match image_size {self.image_size}")
        self.heatmap.flags.writeable = False

    @property
    def reached(self) -> np.ndarray:
        """Boolean (H, W) mask of the input pixels that reach the output position."""
        return self.heatmap > self.rel_threshold

    def to_record(self) -> dict[str, Any]:
        """The scalar facts (no heat map) as a JSON-friendly dict."""
        return {
            "kind": KIND_RECEPTIVE_FIELD,
            "block": self.block,
            "target": self.target,
            "height": self.image_size[0],
            "width": self.image_size[1],
            "centre": list(self.centre),
            "fraction_reached": self.fraction_reached,
            "erf_radius": self.erf_radius,
            "erf_mass": self.mass,
            "reach_radius": self.reach_radius,
            "backbone_rf": self.backbone_rf,
        }


def perturb_block(block: nn.Module, *, scale: float, seed: int) -> None:
    """Add seeded Gaussian noise of std ``scale`` to every parameter of ``block`` (so
    its zero-initialised residual branch carries signal), then re-orthogonalise any
    orthogonal transforms (SRL-LO)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in block.parameters():
            noise = torch.randn(parameter.shape, generator=generator, dtype=torch.float64)
            parameter.add_(scale * noise.to(parameter.dtype))
        for module in reorthogonalizers(block):
            module.reorthogonalize()


def _erf_radius(heat: np.ndarray, centre: tuple[int, int], mass: float) -> float:
    """Smallest Euclidean radius around ``centre`` that holds ``mass`` of ``heat``."""
    rows, cols = np.indices(heat.shape)
    distance = np.hypot(rows - centre[0], cols - centre[1]).ravel()
    order = np.argsort(distance, kind="stable")
    cumulative = np.cumsum(heat.ravel()[order])
    total = cumulative[-1]
    if total <= 0:
        return 0.0
    index = int(np.searchsorted(cumulative, mass * total, side="left"))
    return float(distance[order][min(index, len(order) - 1)])


def receptive_field_probe(
    block: str,
    *,
    model: ProbeNet | None = None,
    channels: int = 32,
    image_size: int = 32,
    in_channels: int = 1,
    stage: int = 1,
    target: str = "block",
    seed: int = 0,
    perturb: float = 0.5,
    rel_threshold: float = 1e-6,
    mass: float = 0.95,
    block_options: Mapping[str, Any] | None = None,
) -> ReceptiveFieldResult:
    """Measure the gradient reach of the centre output position of ``block``.

    Without ``model`` a fresh probe network (``channels``, ``image_size``, ``stage``)
    is built from seed ``seed`` and the block's parameters perturbed by ``perturb``;
    with ``model`` (e.g. a trained one) a float64 copy of that network is used as it
    is, at the image size it was built for (``block`` is then only a label).
    ``target`` is "block" (the block's output) or "features" (the map just before
    global average pooling). The gradient is taken
    in float64, in eval mode (BatchNorm with running statistics, so no position
    leaks into another through batch statistics), on a seeded random image.
    """
    if target not in ("block", "features"):
        raise ValueError(f"target must be 'block' or 'features', got {target!r}")
    if not 0.0 < mass <= 1.0:
        raise ValueError(f"mass must lie in (0, 1], got {mass}")
    if rel_threshold < 0:
        raise ValueError(f"rel_threshold must be >= 0, got {rel_threshold}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if model is None:
            net = build_probe_net(
                block,
                in_channels=in_channels,
                num_classes=2,
                channels=channels,
                image_size=image_size,
                stage=stage,
                block_options=block_options,
            )
            if perturb:
                perturb_block(net.block, scale=perturb, seed=seed)
        else:
            net = copy.deepcopy(model)
            in_channels = net.stem[0][0].in_channels
            stage = net.stage
            image_size = net.image_size or image_size
    net = net.double().eval()
    generator = torch.Generator().manual_seed(seed + 1)
    size = int(image_size)
    x = torch.randn(1, in_channels, size, size, generator=generator, dtype=torch.float64, requires_grad=True)
    out = net.block_output(x) if target == "block" else net.features(x)
    _, c, h, w = out.shape
    fi, fj = h // 2, w // 2
    weights = torch.randn(c, generator=generator, dtype=torch.float64)
    (out[0, :, fi, fj] * weights).sum().backward()
    assert x.grad is not None
    heat = x.grad.detach().abs().sum(dim=(0, 1)).numpy()
    peak = float(heat.max())
    heat = heat / peak if peak > 0 else heat
    rf = backbone_receptive_field(stage)
    centre = (fi * rf.stride, fj * rf.stride)
    reached = heat > rel_threshold
    rows, cols = np.nonzero(reached)
    reach = int(max(np.abs(rows - centre[0]).max(), np.abs(cols - centre[1]).max())) if rows.size else 0
    return ReceptiveFieldResult(
        block=block,
        target=target,
        image_size=(size, size),
        feature_index=(fi, fj),
        centre=centre,
        heatmap=heat,
        rel_threshold=rel_threshold,
        fraction_reached=float(reached.mean()),
        erf_radius=_erf_radius(heat, centre, mass),
        mass=mass,
        reach_radius=reach,
        backbone_rf=rf.size,
    )


def save_heatmap(result: ReceptiveFieldResult, path: str | Path, *, title: str | None = None) -> Path:
    """Write ``result``'s heat map as a PNG (log colour scale, the centre and the
    backbone's receptive field marked); returns the path."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.colors import LogNorm
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure = Figure(figsize=(4.2, 3.6))
    FigureCanvasAgg(figure)
    axes = figure.add_subplot(1, 1, 1)
    floor = max(result.rel_threshold, 1e-12)
    shown = np.where(result.reached, result.heatmap, np.nan)
    image = axes.imshow(shown, norm=LogNorm(vmin=floor, vmax=1.0), cmap="viridis", interpolation="nearest")
    figure.colorbar(image, ax=axes, label="|∂out/∂input| (rel. to max)")
    half = result.backbone_rf // 2
    axes.add_patch(
        Rectangle(
            (result.centre[1] - half - 0.5, result.centre[0] - half - 0.5),
            result.backbone_rf,
            result.backbone_rf,
            fill=False,
            edgecolor="red",
            linewidth=1.0,
            label=f"backbone RF {result.backbone_rf}",
        )
    )
    axes.plot(result.centre[1], result.centre[0], "r+", markersize=8)
    axes.set_title(
        title
        or f"{result.block}: {100 * result.fraction_reached:.1f}% reached, ERF r{int(100 * result.mass)}={result.erf_radius:.1f}",
        fontsize=9,
    )
    axes.legend(loc="lower right", fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    return path
