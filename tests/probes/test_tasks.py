"""Probe tasks: determinism, balance, geometry, label correctness, and the CIFAR
binary reader."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import ndimage

from nlbench.probes.network import backbone_receptive_field
from nlbench.probes.tasks import (
    STEM_RECEPTIVE_FIELD,
    load_cifar,
    make_digits,
    make_pathfinder,
    make_same_pair,
    make_task,
    pattern_bank,
    read_cifar_file,
)

EIGHT_CONNECTED = np.ones((3, 3), dtype=int)


def _assert_same_data(a, b) -> None:
    for split_a, split_b in ((a.train, b.train), (a.test, b.test)):
        assert torch.equal(split_a.images, split_b.images)
        assert torch.equal(split_a.labels, split_b.labels)


# ---------------------------------------------------------------------------- same_pair


def test_same_pair_is_deterministic_from_the_seed_and_balanced() -> None:
    first = make_same_pair(n_train=64, n_test=32, seed=3)
    _assert_same_data(first, make_same_pair(n_train=64, n_test=32, seed=3))
    other = make_same_pair(n_train=64, n_test=32, seed=4)
    assert not torch.equal(first.train.images, other.train.images)
    assert first.train.images.shape == (64, 1, 32, 32) and first.train.images.dtype == torch.float32
    assert first.train.labels.dtype == torch.int64 and first.num_classes == 2
    assert int(first.train.labels.sum()) == 32 and int(first.test.labels.sum()) == 16
    # the test split is not a copy of the train split
    assert not torch.equal(first.train.images[:32], first.test.images)


def test_same_pair_patterns_are_farther_apart_than_the_backbone_receptive_field() -> None:
    rf = backbone_receptive_field(1).size
    assert STEM_RECEPTIVE_FIELD == rf, "the task's default geometry follows the probe's stem"
    data = make_same_pair(n_train=300, n_test=1, noise=0.0)
    images, labels = data.train.images[:, 0].numpy(), data.train.labels.numpy()
    for image, label in zip(images, labels):
        components, count = ndimage.label(image != 0, structure=EIGHT_CONNECTED)
        assert count == 2, "the two patterns must be separate blobs"
        pixels = [np.argwhere(components == k) for k in (1, 2)]
        assert all(len(p) == 25 for p in pixels)
        # closest pixels of the two patterns, in Chebyshev distance: no rf×rf window holds both
        gap = np.abs(pixels[0][:, None, :] - pixels[1][None, :, :]).max(axis=2).min()
        assert gap >= rf
        # a window that sees a pattern sees no zero padding
        every = np.concatenate(pixels)
        assert every.min() >= rf - 1 and every.max() <= 32 - rf
        # the label says whether the two patches are identical
        patches = [image[p[:, 0].min() : p[:, 0].min() + 5, p[:, 1].min() : p[:, 1].min() + 5] for p in pixels]
        assert bool(np.array_equal(patches[0], patches[1])) == bool(label)


def test_same_pair_pattern_marginals_do_not_depend_on_the_label() -> None:
    """The premise of the argument that local features + pooling see nothing: each
    pattern slot is uniform over the bank under both labels."""
    data = make_same_pair(n_train=6000, n_test=1, bank_size=8)
    ids = data.train.meta["pattern_ids"]
    labels = data.train.labels.numpy()
    for slot in (0, 1):
        for label in (0, 1):
            freq = np.bincount(ids[labels == label, slot], minlength=8) / np.sum(labels == label)
            assert np.abs(freq - 1 / 8).max() < 0.03
    assert np.all((ids[:, 0] == ids[:, 1]) == (labels == 1))


def test_pattern_bank_is_distinct_and_binary() -> None:
    bank = pattern_bank(16, 5)
    assert bank.shape == (16, 5, 5) and set(np.unique(bank)) == {-1.0, 1.0}
    flat = bank.reshape(16, -1)
    distances = (flat[:, None] != flat[None]).sum(axis=2) + 25 * np.eye(16, dtype=int)
    assert distances.min() >= 5


def test_same_pair_rejects_geometry_that_does_not_fit() -> None:
    with pytest.raises(ValueError, match="image_size >="):
        make_same_pair(n_train=4, n_test=4, receptive_field=11)
    with pytest.raises(ValueError, match="n_train"):
        make_same_pair(n_train=0, n_test=4)


# --------------------------------------------------------------------------- pathfinder


def test_pathfinder_is_deterministic_and_balanced() -> None:
    first = make_pathfinder(n_train=40, n_test=20, seed=1)
    _assert_same_data(first, make_pathfinder(n_train=40, n_test=20, seed=1))
    assert not torch.equal(first.train.images, make_pathfinder(n_train=40, n_test=20, seed=2).train.images)
    assert first.train.images.shape == (40, 1, 32, 32)
    assert int(first.train.labels.sum()) == 20 and int(first.test.labels.sum()) == 10
    assert set(torch.unique(first.train.images).tolist()) == {0.0, 1.0}


def test_pathfinder_labels_match_the_connectivity_of_the_solid_drawing() -> None:
    """With gaps closed (dash_off=0) and the same seed, the markers are connected
    exactly when the label says they share a contour."""
    dashed = make_pathfinder(n_train=200, n_test=1, seed=5)
    solid = make_pathfinder(n_train=200, n_test=1, seed=5, dash_off=0)
    assert torch.equal(dashed.train.labels, solid.train.labels)
    assert np.array_equal(dashed.train.meta["markers"], solid.train.meta["markers"])
    dashed_px, solid_px = dashed.train.images[:, 0] > 0, solid.train.images[:, 0] > 0
    assert bool((dashed_px <= solid_px).all()), "dashing only removes pixels"
    assert int(dashed_px.sum()) < int(solid_px.sum()), "the dashed curves have gaps"
    for image, markers, label in zip(solid_px.numpy(), solid.train.meta["markers"], solid.train.labels):
        components, _ = ndimage.label(image, structure=EIGHT_CONNECTED)
        first, second = (components[r, c] for r, c in markers)
        assert first > 0 and second > 0
        assert (first == second) == bool(label)


def test_pathfinder_label_one_joins_the_two_ends_of_one_curve() -> None:
    data = make_pathfinder(n_train=50, n_test=1, seed=7)
    curves, markers, labels = data.train.meta["curves"], data.train.meta["markers"], data.train.labels.numpy()
    for curve, marker, label in zip(curves, markers, labels):
        assert np.abs(marker[0] - marker[1]).max() >= 9, "markers farther apart than a 7×7 window"
        assert np.array_equal(marker[0], curve[0, 0])
        expected = curve[0, -1] if label == 1 else curve[1, 0]
        assert np.array_equal(marker[1], expected)


# ------------------------------------------------------------------------------ digits


def test_digits_shapes_and_seeded_split() -> None:
    data = make_digits(seed=0)
    assert data.train.images.shape == (1348, 1, 32, 32) and data.test.images.shape == (449, 1, 32, 32)
    assert data.num_classes == 10 and set(data.train.labels.tolist()) == set(range(10))
    assert float(data.train.images.min()) >= -1.0 and float(data.train.images.max()) <= 1.0
    again = make_digits(seed=0)
    assert torch.equal(data.test.labels, again.test.labels)
    assert not torch.equal(data.test.labels, make_digits(seed=1).test.labels)
    small = make_digits(n_train=100, n_test=50, image_size=16)
    assert small.train.images.shape == (100, 1, 16, 16) and len(small.test) == 50
    with pytest.raises(ValueError, match="exceeds"):
        make_digits(n_train=1700, n_test=200)


# ------------------------------------------------------------------------------- CIFAR


def _records(n: int, label_bytes: int, seed: int) -> tuple[bytes, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    limits = [10] if label_bytes == 1 else [20, 100]
    labels = np.stack([rng.integers(0, limit, size=n) for limit in limits], axis=1).astype(np.uint8)
    pixels = rng.integers(0, 256, size=(n, 3, 32, 32), dtype=np.uint8)
    raw = np.concatenate([labels, pixels.reshape(n, -1)], axis=1).tobytes()
    return raw, labels.astype(np.int64), pixels


def _write_cifar10(folder: Path, per_file: int = 3) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    names = [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]
    for seed, name in enumerate(names):
        raw, labels, pixels = _records(per_file, 1, seed)
        (folder / name).write_bytes(raw)
        written[name] = (labels[:, 0], pixels)
    return written


def test_cifar10_binary_round_trip(tmp_path: Path) -> None:
    written = _write_cifar10(tmp_path / "cifar-10-batches-bin")
    images, labels = read_cifar_file(tmp_path / "cifar-10-batches-bin" / "data_batch_2.bin", "cifar10")
    assert np.array_equal(labels, written["data_batch_2.bin"][0])
    assert np.array_equal(images, written["data_batch_2.bin"][1])

    data = load_cifar(tmp_path, variant="cifar10")  # finds the standard subdirectory
    assert data.num_classes == 10 and data.in_channels == 3
    train_labels = np.concatenate([written[f"data_batch_{i}.bin"][0] for i in range(1, 6)])
    assert np.array_equal(data.train.labels.numpy(), train_labels)
    assert np.array_equal(data.test.labels.numpy(), written["test_batch.bin"][0])
    pixels = torch.from_numpy(np.concatenate([written[f"data_batch_{i}.bin"][1] for i in range(1, 6)])) / 255.0
    mean, std = pixels.mean(dim=(0, 2, 3), keepdim=True), pixels.std(dim=(0, 2, 3), keepdim=True)
    assert torch.allclose(data.train.images, (pixels - mean) / std, atol=1e-5)
    subset = load_cifar(tmp_path, variant="cifar10", n_train=4, n_test=2, seed=1)
    assert len(subset.train) == 4 and len(subset.test) == 2


def test_cifar100_binary_round_trip_with_both_label_kinds(tmp_path: Path) -> None:
    raw_train, labels_train, pixels_train = _records(5, 2, 10)
    raw_test, labels_test, _ = _records(4, 2, 11)
    (tmp_path / "train.bin").write_bytes(raw_train)
    (tmp_path / "test.bin").write_bytes(raw_test)
    images, labels = read_cifar_file(tmp_path / "train.bin", "cifar100")
    assert np.array_equal(labels, labels_train) and np.array_equal(images, pixels_train)
    fine = make_task("cifar100", data_dir=str(tmp_path))
    assert fine.num_classes == 100 and np.array_equal(fine.test.labels.numpy(), labels_test[:, 1])
    coarse = load_cifar(tmp_path, variant="cifar100", label_kind="coarse")
    assert coarse.num_classes == 20 and np.array_equal(coarse.train.labels.numpy(), labels_train[:, 0])


def test_cifar_rejects_truncated_and_missing_files(tmp_path: Path) -> None:
    written = _write_cifar10(tmp_path)
    assert written
    data = (tmp_path / "test_batch.bin").read_bytes()
    (tmp_path / "test_batch.bin").write_bytes(data[:-7])
    with pytest.raises(ValueError, match="multiple of the 3073-byte record"):
        read_cifar_file(tmp_path / "test_batch.bin", "cifar10")
    with pytest.raises(ValueError, match="truncated"):
        load_cifar(tmp_path, variant="cifar10")
    (tmp_path / "data_batch_3.bin").unlink()
    with pytest.raises(FileNotFoundError, match="data_batch_3.bin"):
        load_cifar(tmp_path, variant="cifar10")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_cifar(tmp_path / "nowhere", variant="cifar10")
    with pytest.raises(ValueError, match="data_dir"):
        make_task("cifar10")


def test_make_task_rejects_unknown_names_and_options() -> None:
    with pytest.raises(ValueError, match="known tasks"):
        make_task("long_range_arena")
    with pytest.raises(ValueError, match="no option 'colour'"):
        make_task("same_pair", colour=True)
    data = make_task("same_pair", n_train=8, n_test=4, seed=0, bank_size=4)
    assert len(data.train) == 8
