"""Machine calibration: the two roofs and the noise floor."""

from __future__ import annotations

import math
import types

import pytest
import torch

from nlbench.measure import calibrate as calibration_module
from nlbench.measure.calibrate import calibrate, noise_floor
from nlbench.vocabulary import NOISY_IQR_OVER_MEDIAN


def test_calibration_measures_both_roofs_and_the_noise_floor() -> None:
    found = calibrate("cpu", 1, repeats=1, noise_seconds=0.05)
    assert found.matmul_gflops > 0 and found.copy_gb_per_s > 0 and found.threads == 1
    for spread in (found.noise_matmul_iqr_over_median, found.noise_copy_iqr_over_median):
        assert spread is not None and math.isfinite(spread) and spread >= 0
    assert found.noise_seconds == 0.05 and found.noise_block_ms == 4.0
    manifest = found.to_manifest()
    assert manifest["noise_copy_iqr_over_median"] == found.noise_copy_iqr_over_median


def test_no_noise_seconds_no_noise_floor() -> None:
    found = calibrate("cpu", 1, repeats=1, noise_seconds=0)
    assert found.noise_matmul_iqr_over_median is None and found.noise_copy_iqr_over_median is None
    assert found.noise_seconds == 0.0


def test_the_noise_floor_is_each_kernels_spread_timed_alternately(monkeypatch: pytest.MonkeyPatch) -> None:
    """On a fake clock: a kernel that always takes 1 µs has no spread; one that takes 1 µs
    and 3 µs by turns has an IQR as large as its median. The kernels take turns."""
    clock = {"ns": 0}
    order: list[str] = []
    monkeypatch.setattr(calibration_module, "time", types.SimpleNamespace(
        perf_counter_ns=lambda: clock["ns"], perf_counter=lambda: clock["ns"] / 1e9))

    def steady() -> None:
        order.append("steady")
        clock["ns"] += 1000

    jumpy_calls = {"n": 0}

    def jumpy() -> None:
        order.append("jumpy")
        clock["ns"] += 1000 if jumpy_calls["n"] % 2 == 0 else 3000
        jumpy_calls["n"] += 1

    spreads = noise_floor({"steady": steady, "jumpy": jumpy}, torch.device("cpu"), block_ms=0.001, seconds=40e-6)
    assert spreads["steady"] == 0.0
    assert spreads["jumpy"] > NOISY_IQR_OVER_MEDIAN
    timed = order[4:]  # after the two calls each that size the blocks
    assert timed[0::2] == ["steady"] * (len(timed) // 2) and timed[1::2] == ["jumpy"] * (len(timed) // 2)
    assert len(timed) >= 4, "at least two blocks of each kernel"
