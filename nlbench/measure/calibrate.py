"""Calibrate the machine once per run: the fp32 matrix-multiply rate and the memory
bandwidth it achieves at the run's thread count, so each case's achieved GFLOP/s can
be read as a fraction of what this machine does at best (a roofline's two roofs).

Both are best-of-k timings (the best repetition is the one least disturbed), on the
run's device: CPU with ``perf_counter``, CUDA with CUDA events.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any, Callable

import torch

from nlbench.measure.latency import intra_op_threads

MATMUL_SIZE = 1024
COPY_BYTES = 128 * 2**20
REPEATS = 7


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


def calibrate(device: str = "cpu", threads: int | None = None, *, repeats: int = REPEATS) -> Calibration:
    """Measure the matmul rate and the copy bandwidth on ``device`` at ``threads``."""
    dev = torch.device(device)
    with intra_op_threads(threads) as used, torch.no_grad():
        a = torch.randn(MATMUL_SIZE, MATMUL_SIZE, device=dev)
        b = torch.randn(MATMUL_SIZE, MATMUL_SIZE, device=dev)
        out = torch.empty(MATMUL_SIZE, MATMUL_SIZE, device=dev)
        matmul_s = _best_seconds(lambda: torch.mm(a, b, out=out), dev, repeats)
        source = torch.empty(COPY_BYTES // 4, device=dev).normal_()
        target = torch.empty_like(source)
        copy_s = _best_seconds(lambda: target.copy_(source), dev, repeats)
    return Calibration(matmul_gflops=2 * MATMUL_SIZE**3 / matmul_s / 1e9, copy_gb_per_s=2 * COPY_BYTES / copy_s / 1e9,
                       threads=used, device=str(dev), method=f"best of {repeats} repetitions")
