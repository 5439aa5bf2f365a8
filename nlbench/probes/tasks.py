"""Probe tasks: small image-classification problems, generated on the fly or read from
local files, each returned as a frozen :class:`TaskData` (train and test splits).

Every generator is a pure function of its arguments: the same ``seed`` gives the same
tensors, bit for bit (numpy ``Generator`` / sklearn's bundled data; nothing is
downloaded). The tasks:

- ``same_pair``: are two far-apart random patterns identical? Needs long-range
  interaction; a local CNN followed by global average pooling sits near chance.
- ``pathfinder``: are two markers on the same dashed curve? (Long Range Arena style.)
- ``digits``: scikit-learn's bundled 8×8 digits, upsampled; a sanity task that local
  networks solve too.
- ``cifar10`` / ``cifar100``: the CIFAR binary files from a local directory.
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Callable, Mapping

import numpy as np
import torch
from torch import Tensor
from torch.nn import functional as F

from nlbench.probes.network import backbone_receptive_field

# The stem of the probe network (two 3×3 convolutions, the first at stride 2) sees a
# 7×7 window of the input; the default task geometry keeps its patterns apart by that.
STEM_RECEPTIVE_FIELD = backbone_receptive_field(1).size


@dataclass(frozen=True, eq=False)
class Split:
    """One split of a task: ``images`` (N, C, H, W) float32, ``labels`` (N,) int64.

    ``meta`` holds generator facts the tests check against (pattern positions,
    marker coordinates …), as read-only numpy arrays with N rows.
    """

    images: Tensor
    labels: Tensor
    meta: Mapping[str, np.ndarray] = field(default_factory=lambda: MappingProxyType({}))

    def __post_init__(self) -> None:
        if not isinstance(self.images, Tensor) or self.images.dim() != 4 or self.images.dtype != torch.float32:
            raise ValueError(f"Split.images must be a float32 tensor (N, C, H, W), got {_describe(self.images)}")
        if not isinstance(self.labels, Tensor) or self.labels.dim() != 1 or self.labels.dtype != torch.int64:
            raise ValueError(f"Split.labels must be an int64 tensor (N,), got {_describe(self.labels)}")
        if self.images.shape[0] != self.labels.shape[0]:
            raise ValueError(
                f"Split: {self.images.shape[0]} images but {self.labels.shape[0]} labels"
            )
        for key, value in self.meta.items():
            if len(value) != len(self.labels):
                raise ValueError(f"Split.meta[{key!r}] has {len(value)} rows, expected {len(self.labels)}")
            value.flags.writeable = False
        object.__setattr__(self, "meta", MappingProxyType(dict(self.meta)))

    def __len__(self) -> int:
        return int(self.labels.shape[0])


@dataclass(frozen=True, eq=False)
class TaskData:
    """A task's name, class count and its train and test splits (same image shape), and
    the validation split held out of the training images when there is one."""

    name: str
    num_classes: int
    train: Split
    test: Split
    validation: Split | None = None

    def __post_init__(self) -> None:
        splits = {"train": self.train, "test": self.test}
        if self.validation is not None:
            splits["validation"] = self.validation
        for split_name, split in splits.items():
            if split.images.shape[1:] != self.train.images.shape[1:]:
                raise ValueError(
                    f"TaskData {self.name!r}: train images {tuple(self.train.images.shape[1:])} and "
                    f"{split_name} images {tuple(split.images.shape[1:])} differ in shape"
                )
        for split_name, split in splits.items():
            if len(split) and (int(split.labels.min()) < 0 or int(split.labels.max()) >= self.num_classes):
                raise ValueError(
                    f"TaskData {self.name!r}: {split_name} labels must lie in [0, {self.num_classes}), "
                    f"got [{int(split.labels.min())}, {int(split.labels.max())}]"
                )

    def with_validation(self, n_validation: int) -> "TaskData":
        """This task with its last ``n_validation`` training images held out as the
        validation split (generated images are independent draws and the stored sets'
        training images come in random order, so the tail is a random subset); it must
        leave at least one training image."""
        if isinstance(n_validation, bool) or not isinstance(n_validation, int) \
                or not 0 < n_validation < len(self.train):
            raise ValueError(f"{self.name}: n_validation must be a positive integer below the {len(self.train)} "
                             f"training images, got {n_validation!r}")
        cut = len(self.train) - n_validation

        def part(rows: slice) -> Split:
            meta = {key: np.asarray(value)[rows] for key, value in self.train.meta.items()}
            return Split(self.train.images[rows], self.train.labels[rows], meta)

        return TaskData(self.name, self.num_classes, part(slice(0, cut)), self.test, part(slice(cut, None)))

    @property
    def in_channels(self) -> int:
        return int(self.train.images.shape[1])

    @property
    def image_size(self) -> tuple[int, int]:
        return int(self.train.images.shape[2]), int(self.train.images.shape[3])


def _describe(value: Any) -> str:
    if isinstance(value, Tensor):
        return f"tensor of shape {tuple(value.shape)} and dtype {value.dtype}"
    return type(value).__name__


def _balanced_labels(n: int, rng: np.random.Generator) -> np.ndarray:
    """n binary labels, exactly half ones (n even) or one more zero (n odd), shuffled."""
    labels = np.arange(n) % 2
    rng.shuffle(labels)
    return labels.astype(np.int64)


def _check_sizes(n_train: int, n_test: int) -> None:
    for name, value in (("n_train", n_train), ("n_test", n_test)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")


# --------------------------------------------------------------------------- same_pair


def pattern_bank(bank_size: int, pattern_size: int, *, seed: int = 1234, min_distance: int | None = None) -> np.ndarray:
    """``bank_size`` distinct random ±1 patterns of ``pattern_size``², float32.

    Any two patterns differ in at least ``min_distance`` pixels (default: a fifth of
    the pixels), so identical and different pairs are never near-identical.
    """
    if bank_size < 2:
        raise ValueError(f"same_pair: bank_size must be at least 2 (a 'different' pair needs two patterns), got {bank_size}")
    if pattern_size < 2:
        raise ValueError(f"same_pair: pattern_size must be at least 2, got {pattern_size}")
    pixels = pattern_size * pattern_size
    min_distance = max(1, pixels // 5) if min_distance is None else min_distance
    rng = np.random.default_rng(seed)
    bank: list[np.ndarray] = []
    for _ in range(10_000):
        candidate = rng.integers(0, 2, size=pixels)
        if all(int(np.sum(candidate != kept)) >= min_distance for kept in bank):
            bank.append(candidate)
            if len(bank) == bank_size:
                break
    else:
        raise ValueError(
            f"same_pair: could not draw {bank_size} patterns of {pattern_size}x{pattern_size} "
            f"pixels that differ pairwise in >= {min_distance} pixels"
        )
    return (np.stack(bank).reshape(bank_size, pattern_size, pattern_size) * 2.0 - 1.0).astype(np.float32)


def _same_pair_split(
    n: int,
    rng: np.random.Generator,
    bank: np.ndarray,
    *,
    image_size: int,
    noise: float,
    min_offset: int,
    low: int,
    high: int,
) -> Split:
    """Draw one split of ``same_pair`` (see :func:`make_same_pair`)."""
    bank_size, p, _ = bank.shape
    labels = _balanced_labels(n, rng)
    first = rng.integers(0, bank_size, size=n)
    # a different pattern, uniform over the other bank_size - 1
    other = (first + rng.integers(1, bank_size, size=n)) % bank_size
    second = np.where(labels == 1, first, other)

    # top-left corners in [low, high]², the two at Chebyshev offset >= min_offset:
    # rejection sampling, vectorised over the images still to place.
    corners = np.zeros((n, 2, 2), dtype=np.int64)
    pending = np.arange(n)
    while pending.size:
        draw = rng.integers(low, high + 1, size=(pending.size, 2, 2))
        offset = np.abs(draw[:, 0] - draw[:, 1]).max(axis=1)
        ok = offset >= min_offset
        corners[pending[ok]] = draw[ok]
        pending = pending[~ok]

    canvas = np.zeros((n, image_size, image_size), dtype=np.float32)
    rows = np.arange(p)[None, :, None]
    cols = np.arange(p)[None, None, :]
    index = np.arange(n)[:, None, None]
    for slot, ids in ((0, first), (1, second)):
        canvas[index, corners[:, slot, 0, None, None] + rows, corners[:, slot, 1, None, None] + cols] = bank[ids]
    if noise > 0:
        canvas += noise * rng.standard_normal(canvas.shape, dtype=np.float32)
    return Split(
        images=torch.from_numpy(canvas[:, None]),
        labels=torch.from_numpy(labels),
        meta={"corners": corners, "pattern_ids": np.stack([first, second], axis=1)},
    )


def make_same_pair(
    *,
    n_train: int = 4000,
    n_test: int = 1000,
    image_size: int = 32,
    seed: int = 0,
    bank_size: int = 4,
    pattern_size: int = 5,
    noise: float = 0.2,
    receptive_field: int = STEM_RECEPTIVE_FIELD,
    bank_seed: int = 1234,
) -> TaskData:
    """Two ±1 patterns from a fixed bank of ``bank_size`` on a Gaussian-noise
    background (std ``noise``); label 1 when the two are identical, 0 when they
    differ (exactly balanced, 1 channel).

    Geometry: every pattern pixel is at Chebyshev distance >= ``receptive_field``
    from every pixel of the other pattern, so no window of that size (the probe
    stem's receptive field, 7) sees pixels of both; each pattern also keeps
    ``receptive_field - 1`` pixels from the border, so a window that sees a pattern
    sees no zero padding.

    Why a network of local convolutions, global average pooling and a linear head
    stays at chance:

    1. Its logit difference is a sum over windows, ``s = Σ_w g(window_w)``. No
       window sees both patterns, so ``s = g(P₁, ξ₁) + g(P₂, ξ₂) + b(ξ₀)``: one term
       per pattern (with the noise and position around it) plus a background term.
    2. Under both labels each pattern is uniform over the bank, and positions and
       noise are drawn independently of the label, so E[s | same] =
       E[s | different] for every g: the score's mean carries nothing.
    3. The cross-entropy is convex in s, and the data distribution does not change
       when the bank's patterns are relabelled by a permutation π. Averaging any g
       over all π is therefore no worse in loss, and the average scores every
       pattern alike, so its s does not depend on the label: the loss-optimal
       additive model is exactly at chance (loss log 2). Training gains nothing
       from recognising patterns.
    4. The only leak: under "same" the two terms are equal, so a hard threshold on s
       can call "same" only when both patterns lie in a chosen half A of the bank.
       That rule is right on at most 1/2 + m(K−m)/(2K(K−1)) <= 1/2 + K/(8(K−1))
       of the images (67 % for K = 4, |A| = m), but by (3) its cross-entropy is
       worse than a constant's, so loss-driven training does not find it. (No
       design can close this leak while a global block still solves the task: a
       block followed by global pooling also sees only the bag of local windows,
       and two labels with different bags always differ in some sum.)

    A block with global reach (attention, spectral mixing) can bring one pattern's
    features to the other's position, or a nonlinear function of both to every
    position, and solve the task; measured on the default probe, ``nl`` does.
    """
    _check_sizes(n_train, n_test)
    if noise < 0:
        raise ValueError(f"same_pair: noise must be >= 0, got {noise}")
    if receptive_field < 1:
        raise ValueError(f"same_pair: receptive_field must be >= 1, got {receptive_field}")
    bank = pattern_bank(bank_size, pattern_size, seed=bank_seed)
    margin = receptive_field - 1
    low, high = margin, image_size - pattern_size - margin
    min_offset = pattern_size - 1 + receptive_field
    if high - low < min_offset:
        raise ValueError(
            f"same_pair: a {image_size}x{image_size} image cannot hold two {pattern_size}x{pattern_size} "
            f"patterns at distance >= {receptive_field} from each other and {margin} from the border; "
            f"use image_size >= {2 * margin + 2 * pattern_size - 1 + receptive_field}"
        )
    rng = np.random.default_rng([seed, 0x5A3E])
    kwargs = dict(image_size=image_size, noise=noise, min_offset=min_offset, low=low, high=high)
    train = _same_pair_split(n_train, rng, bank, **kwargs)
    test = _same_pair_split(n_test, rng, bank, **kwargs)
    return TaskData("same_pair", 2, train, test)


# -------------------------------------------------------------------------- pathfinder


def _dilate(mask: np.ndarray) -> np.ndarray:
    """3×3 binary dilation of a stack of masks (n, H, W), vectorised over the stack."""
    padded = np.pad(mask, ((0, 0), (1, 1), (1, 1)))
    h, w = mask.shape[1:]
    out = np.zeros_like(mask)
    for dy in range(3):
        for dx in range(3):
            out |= padded[:, dy : dy + h, dx : dx + w]
    return out


def _random_curves(
    m: int, rng: np.random.Generator, *, size: int, length: int, curvature: float, margin: int
) -> np.ndarray:
    """``m`` smooth random curves of ``length`` unit steps inside the image, as integer
    pixel coordinates (m, length, 2) (row, col); consecutive points are 8-adjacent.

    The heading turns by a Gaussian angle each step and reflects off the border.
    The loop runs over the steps of a curve, vectorised over the ``m`` curves.
    """
    lo, hi = float(margin), float(size - 1 - margin)
    pos = rng.uniform(lo, hi, size=(m, 2))
    heading = rng.uniform(0.0, 2 * math.pi, size=m)
    turns = rng.normal(0.0, curvature, size=(m, length))
    points = np.empty((m, length, 2))
    points[:, 0] = pos
    for step in range(1, length):
        heading = heading + turns[:, step]
        nxt = pos + np.stack([np.sin(heading), np.cos(heading)], axis=1)
        out_row = (nxt[:, 0] < lo) | (nxt[:, 0] > hi)
        heading = np.where(out_row, -heading, heading)  # reflect the row component
        nxt = pos + np.stack([np.sin(heading), np.cos(heading)], axis=1)
        out_col = (nxt[:, 1] < lo) | (nxt[:, 1] > hi)
        heading = np.where(out_col, math.pi - heading, heading)  # reflect the column component
        pos = np.clip(pos + np.stack([np.sin(heading), np.cos(heading)], axis=1), lo, hi)
        points[:, step] = pos
    return np.rint(points).astype(np.int64)


def _chebyshev(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise Chebyshev distance between two (m, 2) arrays of pixel coordinates."""
    return np.abs(a - b).max(axis=1)


def _draw_points(mask: np.ndarray, points: np.ndarray, keep: np.ndarray | None = None) -> None:
    """Set ``mask[i, r, c]`` for the points of curve i (points (m, L, 2)), optionally
    only where ``keep`` (L,) is true."""
    m, length, _ = points.shape
    sel = np.ones(length, dtype=bool) if keep is None else keep
    index = np.repeat(np.arange(m)[:, None], int(sel.sum()), axis=1)
    mask[index, points[:, sel, 0], points[:, sel, 1]] = True


def _draw_markers(mask: np.ndarray, which: np.ndarray, centres: np.ndarray, radius: int) -> None:
    """Set a (2·radius+1)² square around each centre (k, 2) in the masks ``which``
    (k integer indices or a boolean selector) of ``mask`` (m, H, W), in place."""
    h, w = mask.shape[1:]
    which = np.flatnonzero(which) if which.dtype == bool else which
    offsets = np.arange(-radius, radius + 1)
    rows = np.clip(centres[:, 0, None, None] + offsets[None, :, None], 0, h - 1)
    cols = np.clip(centres[:, 1, None, None] + offsets[None, None, :], 0, w - 1)
    mask[which[:, None, None], rows, cols] = True


def _pathfinder_split(
    n: int,
    rng: np.random.Generator,
    *,
    size: int,
    n_contours: int,
    length: int,
    curvature: float,
    dash_on: int,
    dash_off: int,
    marker_radius: int,
    min_marker_distance: int,
    max_attempts: int = 200,
) -> Split:
    """Draw one split of ``pathfinder`` (see :func:`make_pathfinder`)."""
    labels = _balanced_labels(n, rng)
    margin = marker_radius
    curves = np.zeros((n, n_contours, length, 2), dtype=np.int64)
    solid = np.zeros((n, n_contours, size, size), dtype=bool)
    # Marker 0 sits at the start of contour 0; marker 1 at the end of contour 0 (label
    # 1) or at the start of contour 1 (label 0).
    for k in range(n_contours):
        pending = np.arange(n)
        for _ in range(max_attempts):
            if not pending.size:
                break
            pts = _random_curves(pending.size, rng, size=size, length=length, curvature=curvature, margin=margin)
            mask = np.zeros((pending.size, size, size), dtype=bool)
            _draw_points(mask, pts)
            if k == 0:
                _draw_markers(mask, np.arange(pending.size), pts[:, 0], marker_radius)
                has_end = labels[pending] == 1
                _draw_markers(mask, has_end, pts[has_end, -1], marker_radius)
            elif k == 1:
                has_start = labels[pending] == 0
                _draw_markers(mask, has_start, pts[has_start, 0], marker_radius)
            # a new contour must not touch (8-connectivity) any earlier one
            earlier = solid[pending, :k].any(axis=1)
            clash = (_dilate(mask) & earlier).any(axis=(1, 2))
            # the two markers must be farther apart than a local window; the same
            # constraints hold under both labels (every contour's two ends, and the
            # starts of contours 0 and 1), so they do not leak the label
            clash |= _chebyshev(pts[:, 0], pts[:, -1]) < min_marker_distance
            if k == 1:
                clash |= _chebyshev(curves[pending, 0, 0], pts[:, 0]) < min_marker_distance
            placed = pending[~clash]
            curves[placed, k] = pts[~clash]
            solid[placed, k] = mask[~clash]
            pending = pending[clash]
        if pending.size:
            raise ValueError(
                f"pathfinder: could not place {n_contours} non-touching contours of length {length} "
                f"in a {size}x{size} image; use fewer or shorter contours"
            )
    period = dash_on + dash_off
    keep = (np.arange(length) % period) < dash_on if dash_off > 0 else None
    image = np.zeros((n, size, size), dtype=bool)
    for k in range(n_contours):
        _draw_points(image, curves[:, k], keep)
    markers = np.stack(
        [curves[:, 0, 0], np.where(labels[:, None] == 1, curves[:, 0, -1], curves[:, 1, 0])], axis=1
    )
    everyone = np.arange(n)
    _draw_markers(image, everyone, markers[:, 0], marker_radius)
    _draw_markers(image, everyone, markers[:, 1], marker_radius)
    return Split(
        images=torch.from_numpy(image.astype(np.float32)[:, None]),
        labels=torch.from_numpy(labels),
        meta={"markers": markers, "curves": curves},
    )


def make_pathfinder(
    *,
    n_train: int = 4000,
    n_test: int = 1000,
    image_size: int = 32,
    seed: int = 0,
    n_contours: int = 3,
    contour_length: int = 18,
    curvature: float = 0.3,
    dash_on: int = 3,
    dash_off: int = 2,
    marker_radius: int = 1,
    min_marker_distance: int = STEM_RECEPTIVE_FIELD + 2,
) -> TaskData:
    """Pathfinder (Long Range Arena style): ``n_contours`` dashed smooth curves that
    never touch each other, and two square markers at curve ends; label 1 when both
    markers are on the same curve (its two ends), 0 when they sit on two different
    curves (exactly balanced, 1 channel, pixels in {0, 1}).

    The marker centres are at least ``min_marker_distance`` apart (Chebyshev; the
    default 9 keeps the two 3×3 markers out of any 7×7 window), every contour's two
    ends are as far apart, and under both labels the image holds the same kinds of
    local pieces — two marked curve ends, unmarked ends, dashes — so telling the
    labels apart means following a curve across its gaps. Unlike ``same_pair`` this
    is not leak-free: the directions in which the two marked curves leave their
    markers are correlated under label 1, and local networks pick some of that up
    (measured on the default probe, seed 0 and 1: ``identity`` 52 % and 50 %,
    ``local`` 54 % and 55 %). A larger ``min_marker_distance`` straightens the curves
    and makes that leak larger, not smaller (13: ``identity`` 56 %, ``local`` 58 %).

    ``dash_off = 0`` draws solid curves; with the same seed the curves, markers and
    labels are the same as the dashed ones (dashing is applied after every random
    draw), so a solid rendering checks the labels by connectivity.
    """
    _check_sizes(n_train, n_test)
    if n_contours < 2:
        raise ValueError(f"pathfinder: n_contours must be >= 2 (label 0 needs two curves), got {n_contours}")
    if contour_length < 2:
        raise ValueError(f"pathfinder: contour_length must be >= 2, got {contour_length}")
    if dash_on < 1 or dash_off < 0:
        raise ValueError(f"pathfinder: need dash_on >= 1 and dash_off >= 0, got {dash_on}, {dash_off}")
    if image_size < 4 * (marker_radius + 1):
        raise ValueError(f"pathfinder: image_size {image_size} is too small")
    rng = np.random.default_rng([seed, 0x9A7F])
    kwargs = dict(
        size=image_size,
        n_contours=n_contours,
        length=contour_length,
        curvature=curvature,
        dash_on=dash_on,
        dash_off=dash_off,
        marker_radius=marker_radius,
        min_marker_distance=min_marker_distance,
    )
    train = _pathfinder_split(n_train, rng, **kwargs)
    test = _pathfinder_split(n_test, rng, **kwargs)
    return TaskData("pathfinder", 2, train, test)


# ------------------------------------------------------------------------------ digits


def _resize(images: Tensor, image_size: int) -> Tensor:
    """Bilinear resize of (N, C, h, w) to image_size² (no-op when already that size)."""
    if images.shape[-2:] == (image_size, image_size):
        return images
    return F.interpolate(images, size=(image_size, image_size), mode="bilinear", align_corners=False)


def make_digits(
    *,
    n_train: int | None = None,
    n_test: int | None = None,
    image_size: int = 32,
    seed: int = 0,
) -> TaskData:
    """scikit-learn's bundled 8×8 handwritten digits (1797 images, 10 classes; no
    download), scaled to [-1, 1] and upsampled bilinearly to ``image_size``.

    The split is a seeded random permutation: by default a quarter of the images are
    the test split; ``n_train`` + ``n_test`` may not exceed 1797.
    """
    from sklearn.datasets import load_digits

    data = load_digits()
    total = len(data.target)
    n_test = round(total / 4) if n_test is None else n_test
    n_train = total - n_test if n_train is None else n_train
    _check_sizes(n_train, n_test)
    if n_train + n_test > total:
        raise ValueError(f"digits: n_train + n_test = {n_train + n_test} exceeds the {total} images available")
    order = np.random.default_rng([seed, 0xD161]).permutation(total)
    images = torch.from_numpy((data.images / 16.0 * 2.0 - 1.0).astype(np.float32))[:, None]
    images = _resize(images, image_size).contiguous()
    labels = torch.from_numpy(data.target.astype(np.int64))
    train_idx = torch.from_numpy(order[:n_train])
    test_idx = torch.from_numpy(order[n_train : n_train + n_test])
    return TaskData(
        "digits",
        10,
        Split(images[train_idx], labels[train_idx]),
        Split(images[test_idx], labels[test_idx]),
    )


# ------------------------------------------------------------------------------- CIFAR

CIFAR_PIXELS = 3 * 32 * 32


@dataclass(frozen=True)
class CifarFormat:
    """The record layout of one CIFAR binary variant."""

    name: str
    label_bytes: int
    train_files: tuple[str, ...]
    test_files: tuple[str, ...]
    subdir: str
    classes: Mapping[str, int]  # label kind -> number of classes

    @property
    def record_bytes(self) -> int:
        return self.label_bytes + CIFAR_PIXELS


CIFAR_FORMATS: Mapping[str, CifarFormat] = MappingProxyType(
    {
        "cifar10": CifarFormat(
            "cifar10",
            1,
            tuple(f"data_batch_{i}.bin" for i in range(1, 6)),
            ("test_batch.bin",),
            "cifar-10-batches-bin",
            MappingProxyType({"fine": 10}),
        ),
        "cifar100": CifarFormat(
            "cifar100",
            2,
            ("train.bin",),
            ("test.bin",),
            "cifar-100-binary",
            MappingProxyType({"coarse": 20, "fine": 100}),
        ),
    }
)


def read_cifar_file(path: str | Path, variant: str) -> tuple[np.ndarray, np.ndarray]:
    """Parse one CIFAR binary file into images (N, 3, 32, 32) uint8 and labels.

    Labels are (N,) for CIFAR-10 and (N, 2) = (coarse, fine) for CIFAR-100. A file
    whose size is not a whole number of records is rejected.
    """
    fmt = _cifar_format(variant)
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{fmt.name}: no such file {str(path)!r}")
    raw = np.fromfile(path, dtype=np.uint8)
    if raw.size == 0 or raw.size % fmt.record_bytes:
        raise ValueError(
            f"{fmt.name}: {str(path)!r} has {raw.size} bytes, not a positive multiple of the "
            f"{fmt.record_bytes}-byte record ({fmt.label_bytes} label byte(s) + {CIFAR_PIXELS} pixels); "
            "truncated or not a CIFAR binary file?"
        )
    records = raw.reshape(-1, fmt.record_bytes)
    labels = records[:, : fmt.label_bytes].astype(np.int64)
    images = records[:, fmt.label_bytes :].reshape(-1, 3, 32, 32)
    limits = [10] if fmt.label_bytes == 1 else [20, 100]
    for column, limit in enumerate(limits):
        if labels[:, column].max() >= limit:
            raise ValueError(
                f"{fmt.name}: {str(path)!r} has a label {int(labels[:, column].max())} >= {limit}; "
                "not a file of this variant?"
            )
    return images, (labels[:, 0] if fmt.label_bytes == 1 else labels)


def _cifar_format(variant: str) -> CifarFormat:
    if variant not in CIFAR_FORMATS:
        raise ValueError(f"unknown CIFAR variant {variant!r}; expected one of {', '.join(CIFAR_FORMATS)}")
    return CIFAR_FORMATS[variant]


def _cifar_dir(root: Path, fmt: CifarFormat) -> Path:
    """The directory holding the variant's files: ``root`` or its standard subdirectory."""
    if not root.exists():
        raise FileNotFoundError(f"{fmt.name}: data directory {str(root)!r} does not exist")
    for candidate in (root, root / fmt.subdir):
        if all((candidate / name).is_file() for name in fmt.train_files + fmt.test_files):
            return candidate
    expected = ", ".join(fmt.train_files + fmt.test_files)
    raise FileNotFoundError(
        f"{fmt.name}: {str(root)!r} (or its {fmt.subdir}/) lacks the binary files {expected}"
    )


def load_cifar(
    data_dir: str | Path,
    *,
    variant: str = "cifar10",
    label_kind: str = "fine",
    n_train: int | None = None,
    n_test: int | None = None,
    image_size: int = 32,
    seed: int = 0,
) -> TaskData:
    """CIFAR-10/100 from their binary files in ``data_dir`` (or its standard
    subdirectory), scaled to [0, 1] and standardised per channel with the train
    split's mean and std; ``n_train``/``n_test`` take a seeded random subset.

    ``label_kind`` is "fine" (CIFAR-10's only kind; CIFAR-100's 100 classes) or
    "coarse" (CIFAR-100's 20 superclasses).
    """
    fmt = _cifar_format(variant)
    if label_kind not in fmt.classes:
        raise ValueError(f"{fmt.name}: label_kind must be one of {', '.join(fmt.classes)}, got {label_kind!r}")
    folder = _cifar_dir(Path(data_dir), fmt)
    rng = np.random.default_rng([seed, 0xC1FA])
    splits = []
    for files, n in ((fmt.train_files, n_train), (fmt.test_files, n_test)):
        parts = [read_cifar_file(folder / name, variant) for name in files]
        images = np.concatenate([p[0] for p in parts])
        labels = np.concatenate([p[1] for p in parts])
        if labels.ndim == 2:
            labels = labels[:, 0] if label_kind == "coarse" else labels[:, 1]
        if n is not None:
            if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= len(labels):
                raise ValueError(f"{fmt.name}: asked for {n!r} images, the split has {len(labels)}")
            pick = np.sort(rng.permutation(len(labels))[:n])
            images, labels = images[pick], labels[pick]
        splits.append((torch.from_numpy(images.astype(np.float32) / 255.0), torch.from_numpy(labels)))
    mean = splits[0][0].mean(dim=(0, 2, 3), keepdim=True)
    std = splits[0][0].std(dim=(0, 2, 3), keepdim=True).clamp_min(1e-6)
    train, test = (
        Split(_resize((images - mean) / std, image_size).contiguous(), labels) for images, labels in splits
    )
    return TaskData(fmt.name, fmt.classes[label_kind], train, test)


def _load_cifar10(*, data_dir: str | Path | None = None, **kwargs: Any) -> TaskData:
    if data_dir is None:
        raise ValueError("cifar10 needs data_dir: a directory with the CIFAR-10 binary files")
    return load_cifar(data_dir, variant="cifar10", **kwargs)


def _load_cifar100(*, data_dir: str | Path | None = None, **kwargs: Any) -> TaskData:
    if data_dir is None:
        raise ValueError("cifar100 needs data_dir: a directory with the CIFAR-100 binary files")
    return load_cifar(data_dir, variant="cifar100", **kwargs)


# ---------------------------------------------------------------------------- registry

TASKS: Mapping[str, Callable[..., TaskData]] = MappingProxyType(
    {
        "same_pair": make_same_pair,
        "pathfinder": make_pathfinder,
        "digits": make_digits,
        "cifar10": _load_cifar10,
        "cifar100": _load_cifar100,
    }
)


def _accepted(factory: Callable[..., TaskData]) -> set[str]:
    """The keyword arguments a task factory accepts (including those it forwards)."""
    target = load_cifar if factory in (_load_cifar10, _load_cifar100) else factory
    names = {p.name for p in inspect.signature(target).parameters.values() if p.kind is p.KEYWORD_ONLY}
    return names | ({"data_dir"} if target is load_cifar else set())


def make_task(name: str, **options: Any) -> TaskData:
    """Build task ``name`` (a key of :data:`TASKS`) with ``options`` (n_train, n_test,
    image_size, seed, data_dir, and the task's own); unknown names or options are
    errors that list what is valid."""
    if name not in TASKS:
        raise ValueError(f"unknown probe task {name!r}; known tasks: {', '.join(TASKS)}")
    factory = TASKS[name]
    valid = _accepted(factory) - ({"variant"} if name.startswith("cifar") else set())
    unknown = sorted(set(options) - valid)
    if unknown:
        raise ValueError(f"task {name!r} has no option {', '.join(map(repr, unknown))}; valid: {', '.join(sorted(valid))}")
    return factory(**options)
