"""The probe network: a small CNN whose own receptive field is known and limited
(:func:`backbone_receptive_field`), the block under test after its stem, then a 1×1
readout, global average pooling and a linear head."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from torch import Tensor, nn

# (kernel, stride) of every spatial layer before the block, per stage. Each layer is
# a k×k convolution with padding k//2, so output index u is centred on input u·stride.
STEM_LAYERS: tuple[tuple[int, int], ...] = ((3, 2), (3, 1))
STAGE_LAYERS: Mapping[int, tuple[tuple[int, int], ...]] = {
    1: STEM_LAYERS,
    2: STEM_LAYERS + ((3, 2),),
}
STAGES: tuple[int, ...] = tuple(sorted(STAGE_LAYERS))
"""Where the block may sit: after the stem (1) or after one more strided layer (2)."""


def check_stage(stage: Any, owner: str = "stage") -> None:
    """Reject a stage the network does not have, naming ``owner``."""
    if stage not in STAGE_LAYERS:
        raise ValueError(f"{owner} must be one of {list(STAGES)}, got {stage!r}")


@dataclass(frozen=True)
class ReceptiveField:
    """The input window one feature of the backbone sees: ``size`` × ``size`` input
    pixels, centred on input pixel ``index · stride`` for feature ``index``."""

    size: int
    stride: int


def backbone_receptive_field(stage: int = 1) -> ReceptiveField:
    """The exact receptive field of the probe backbone before the block.

    Stage 1 (default): conv 3×3/2 then conv 3×3/1 — r = 1 + 2·1 + 2·2 = 7 input
    pixels at a stride of 2 (a 16×16 feature map for 32×32 input). Stage 2 adds a
    conv 3×3/2: r = 7 + 2·2 = 11 at stride 4 (8×8 for 32×32). The layers after the
    block (a 1×1 readout) do not widen it.
    """
    check_stage(stage)
    size, stride = 1, 1
    for kernel, layer_stride in STAGE_LAYERS[stage]:
        size += (kernel - 1) * stride
        stride *= layer_stride
    return ReceptiveField(size, stride)


def feature_size(image_size: int, stage: int = 1) -> int:
    """Side of the feature map the block sees for a square ``image_size`` input."""
    check_stage(stage)
    side = image_size
    for kernel, stride in STAGE_LAYERS[stage]:
        side = (side + 2 * (kernel // 2) - kernel) // stride + 1
    return side


def _conv_bn_relu(cin: int, cout: int, kernel: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class ProbeNet(nn.Module):
    """stem (conv-BN-ReLU layers of :data:`STAGE_LAYERS`) → block → readout
    (1×1 conv-BN-ReLU, receptive field unchanged) → global average pool → linear.

    The readout gives each position a nonlinearity after the block, so a block that
    brings far-away information to a position can be compared with what is there.
    """

    def __init__(
        self,
        block: nn.Module,
        *,
        in_channels: int,
        channels: int,
        num_classes: int,
        stage: int = 1,
        image_size: int | None = None,
    ) -> None:
        super().__init__()
        check_stage(stage, "ProbeNet: stage")
        self.image_size = image_size  # the input size the block was built for, if it matters
        self.in_channels = in_channels
        layers = []
        cin = in_channels
        for kernel, stride in STAGE_LAYERS[stage]:
            layers.append(_conv_bn_relu(cin, channels, kernel, stride))
            cin = channels
        self.stem = nn.Sequential(*layers)
        self.block = block
        self.readout = _conv_bn_relu(channels, channels, 1, 1)
        self.head = nn.Linear(channels, num_classes)
        self.stage = stage

    def block_output(self, x: Tensor) -> Tensor:
        """The block's output feature map (B, C, h, w)."""
        return self.block(self.stem(x))

    def features(self, x: Tensor) -> Tensor:
        """The feature map just before global average pooling."""
        return self.readout(self.block_output(x))

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x).mean(dim=(2, 3)))


def build_probe_net(
    block_name: str,
    *,
    in_channels: int,
    num_classes: int,
    channels: int,
    image_size: int,
    stage: int = 1,
    block_options: Mapping[str, Any] | None = None,
) -> ProbeNet:
    """A :class:`ProbeNet` with registered block ``block_name`` after the stem (built
    for the feature map it sees, :func:`feature_size`), in float32 on the CPU."""
    from nlbench.blocks import create_block

    side = feature_size(image_size, stage)
    block = create_block(block_name, channels, spatial_size=(side, side), **dict(block_options or {}))
    return ProbeNet(
        block, in_channels=in_channels, channels=channels, num_classes=num_classes, stage=stage, image_size=image_size
    )


def reorthogonalizers(model: nn.Module) -> list[nn.Module]:
    """Submodules with a ``reorthogonalize()`` method (SRL-LO), to call after every
    optimizer step as the SRL paper does."""
    return [m for m in model.modules() if callable(getattr(m, "reorthogonalize", None))]
