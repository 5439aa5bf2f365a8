"""A case: one block, one configuration, one input shape on one device — the unit
the sweep measures and the store keys its results by."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Mapping

if TYPE_CHECKING:  # torch is imported where tensors are made, so suites and reports load without it
    import torch
    from torch import nn

# The dtypes a case may use, with their size in bytes (for memory estimates).
DTYPE_BYTES: Mapping[str, int] = {"float32": 4, "float64": 8, "float16": 2, "bfloat16": 2}


def stable_id(identity: Mapping[str, Any]) -> str:
    """A stable identity for a JSON-friendly mapping: the first 16 hex digits of the
    SHA-256 of its canonical JSON (sorted keys). Every record identity in the store is
    made this way (:attr:`Case.case_id`, the probes' identities)."""
    canonical = json.dumps(dict(identity), sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def torch_dtype(name: str) -> "torch.dtype":
    """The torch dtype of a case's dtype name."""
    import torch

    return getattr(torch, name)


@dataclass(frozen=True)
class Case:
    """Block + options + input shape + device + dtype; hashable, JSON-friendly.

    ``options`` is a sorted tuple of (name, value) pairs so that equal options give
    equal cases; ``frames`` is None for images and T for video input.
    """

    block: str
    channels: int
    height: int
    width: int
    batch: int = 1
    frames: int | None = None
    dtype: str = "float32"
    device: str = "cpu"
    options: tuple[tuple[str, Any], ...] = ()

    @staticmethod
    def normalise_options(options: Mapping[str, Any]) -> tuple[tuple[str, Any], ...]:
        """Options as the sorted tuple a Case holds."""
        return tuple(sorted(options.items()))

    @property
    def options_dict(self) -> dict[str, Any]:
        return dict(self.options)

    @property
    def options_json(self) -> str:
        return json.dumps(self.options_dict, sort_keys=True)

    @property
    def positions(self) -> int:
        """N: the number of positions a global block attends over."""
        return self.height * self.width * (self.frames or 1)

    @property
    def input_shape(self) -> tuple[int, ...]:
        spatial = (self.height, self.width) if self.frames is None else (self.frames, self.height, self.width)
        return (self.batch, self.channels, *spatial)

    @property
    def case_id(self) -> str:
        """A stable identity: the hash of the case's canonical JSON (:func:`stable_id`)."""
        return stable_id(self.to_dict())

    @property
    def label(self) -> str:
        """Short human label, e.g. ``nl C64 32x32 B1``."""
        frames = f"x{self.frames}f" if self.frames is not None else ""
        opts = "".join(f" {k}={v}" for k, v in self.options)
        return f"{self.block} C{self.channels} {self.height}x{self.width}{frames} B{self.batch}{opts}"

    def to_dict(self) -> dict[str, Any]:
        record = asdict(self)
        record["options"] = self.options_dict
        return record

    @classmethod
    def from_dict(cls, record: Mapping[str, Any]) -> "Case":
        fields = dict(record)
        fields["options"] = cls.normalise_options(fields.get("options") or {})
        return cls(**fields)

    def build(self) -> "nn.Module":
        """The block for this case, on its device and dtype."""
        from nlbench.blocks import create_block, get_spec

        options = self.options_dict
        if self.frames is not None and get_spec(self.block).needs_frames:
            options.setdefault("frames", self.frames)
        module = create_block(self.block, self.channels, spatial_size=(self.height, self.width), **options)
        return module.to(device=self.device, dtype=torch_dtype(self.dtype))

    def make_input(self, seed: int = 0) -> "torch.Tensor":
        """A reproducible standard-normal input of the case's shape."""
        import torch

        generator = torch.Generator().manual_seed(seed)
        x = torch.randn(self.input_shape, generator=generator, dtype=torch_dtype(self.dtype))
        return x.to(self.device)
