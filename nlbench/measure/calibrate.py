"""Calibrate the machine once per run: the fp32 matrix-multiply rate and the memory
bandwidth it achieves at the run's thread count, so each case's achieved GFLOP/s can
be read as a fraction of what this machine does at best (a roofline's two roofs).

Both are best-of-k timings (the best repetition is the one least disturbed), on the
run's device: CPU with ``perf_counter``, CUDA with CUDA events. Beside them, the
machine's own noise floor: a fixed matmul and a fixed copy timed alternately in blocks
as long as a sample's, their IQR/median — the spread no case on this machine can be
measured under, telling a noisy machine from a noisy block.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable

import numpy as np
import torch

from nlbench.measure.latency import intra_op_threads, synchronize_if_cuda
from nlbench.vocabulary import iqr_over_median

MATMUL_SIZE = 1024
COPY_BYTES = 128 * 2**20
REPEATS = 7
#: The noise floor's kernels: a matmul of a fraction of a millisecond (compute) and a
#: copy many times a core's L2 cache (memory), timed
#: alternately for NOISE_SECONDS. On 2026-12-02's VM a 4 ms-block matmul loop had
#: IQR/median 7.9 % and the copy 21 % (docs/latency-noise.md).
NOISE_MATMUL_SIZE = 256
NOISE_COPY_BYTES = 16 * 2**20
NOISE_SECONDS = 2.0


@dataclass(frozen=True)
class Calibration:
    """What this machine achieves at best: fp32 matmul GFLOP/s (2·n³ FLOPs per
    product) and copy bandwidth in GB/s (bytes read + written), at ``threads``."""

    matmul_gflops: float
    copy_gb_per_s: float
    threads: int
    device: str
    matmul_size: int = MATMUL_SIZE
    copy_bytes: int = COPY_BYTES
    method: str = "best of 7 repetitions"
    noise_matmul_iqr_over_median: float | None = None
    noise_copy_iqr_over_median: float | None = None
    noise_seconds: float = 0.0
    noise_block_ms: float = 0.0

    def to_manifest(self) -> dict[str, Any]:
        return asdict(self)


def _best_seconds(run: Callable[[], Any], device: torch.device, repeats: int) -> float:
    """The fastest of ``repeats`` timed runs, after one untimed warm-up."""
    run()
    best = float("inf")
    for _ in range(repeats):
        if device.type == "cuda":
            start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            run()
            stop.record()
            torch.cuda.synchronize(device)
            best = min(best, start.elapsed_time(stop) / 1e3)
        else:
            t0 = time.perf_counter()
            run()
            best = min(best, time.perf_counter() - t0)
    return best


def _calls_per_block(run: Callable[[], Any], device: torch.device, block_ms: float) -> int:
    """Calls of ``run`` that fill a block of ``block_ms`` (at least one), from a timed call."""
    run()
    synchronize_if_cuda(device)
    t0 = time.perf_counter_ns()
    run()
    synchronize_if_cuda(device)
    return max(1, math.ceil(block_ms * 1e6 / max(time.perf_counter_ns() - t0, 1)))


def noise_floor(kernels: dict[str, Callable[[], Any]], device: torch.device, *, block_ms: float,
                seconds: float) -> dict[str, float]:
    """IQR/median of each kernel's per-call time, the kernels timed alternately in blocks
    of at least ``block_ms`` for ``seconds`` in all (so a slow spell of the machine hits
    each alike)."""
    calls = {name: _calls_per_block(run, device, block_ms) for name, run in kernels.items()}
    per_call: dict[str, list[float]] = {name: [] for name in kernels}
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline or min(map(len, per_call.values())) < 2:
        for name, run in kernels.items():
            synchronize_if_cuda(device)
            t0 = time.perf_counter_ns()
            for _ in range(calls[name]):
                run()
            synchronize_if_cuda(device)
            per_call[name].append((time.perf_counter_ns() - t0) / calls[name])
    spreads = {}
    for name, times in per_call.items():
        q1, median, q3 = np.percentile(times, [25, 50, 75])
        spreads[name] = iqr_over_median(float(median), float(q3 - q1))
    return spreads


def calibrate(device: str = "cpu", threads: int | None = None, *, repeats: int = REPEATS,
              block_ms: float = 4.0, noise_seconds: float = NOISE_SECONDS) -> Calibration:
    """Measure the matmul rate and the copy bandwidth on ``device`` at ``threads``, and
    the noise floor over ``noise_seconds`` in blocks of ``block_ms`` (0: skipped)."""
    dev = torch.device(device)
    with intra_op_threads(threads) as used, torch.no_grad():
        a = torch.randn(MATMUL_SIZE, MATMUL_SIZE, device=dev)
        b = torch.randn(MATMUL_SIZE, MATMUL_SIZE, device=dev)
        out = torch.empty(MATMUL_SIZE, MATMUL_SIZE, device=dev)
        matmul_s = _best_seconds(lambda: torch.mm(a, b, out=out), dev, repeats)
        source = torch.empty(COPY_BYTES // 4, device=dev).normal_()
        target = torch.empty_like(source)
        copy_s = _best_seconds(lambda: target.copy_(source), dev, repeats)
        noise: dict[str, float] = {}
        if noise_seconds > 0:
            n = NOISE_MATMUL_SIZE
            small_a, small_b, small_out = a[:n, :n].contiguous(), b[:n, :n].contiguous(), out[:n, :n].contiguous()
            copy_from, copy_to = source[:NOISE_COPY_BYTES // 4], target[:NOISE_COPY_BYTES // 4]
            noise = noise_floor({"matmul": lambda: torch.mm(small_a, small_b, out=small_out),
                                 "copy": lambda: copy_to.copy_(copy_from)}, dev,
                                block_ms=block_ms, seconds=noise_seconds)
    return Calibration(matmul_gflops=2 * MATMUL_SIZE**3 / matmul_s / 1e9, copy_gb_per_s=2 * COPY_BYTES / copy_s / 1e9,
                       threads=used, device=str(dev), method=f"best of {repeats} repetitions",
                       noise_matmul_iqr_over_median=noise.get("matmul"), noise_copy_iqr_over_median=noise.get("copy"),
                       noise_seconds=noise_seconds if noise else 0.0, noise_block_ms=block_ms if noise else 0.0)
