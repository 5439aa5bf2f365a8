"""Measure one case in this process: build its block once, run the measurers the
suite asks for, and return one flat, JSON-ready record.

Failures are data: an out-of-memory, a timeout or an exception is recorded with its
status and message, keeping every measurement taken before it.
"""

from __future__ import annotations

import time
import traceback
from dataclasses import dataclass
from typing import Any

import torch

from nlbench.case import Case


@dataclass(frozen=True)
class CaseSettings:
    """What to measure for a case and how (taken from the suite)."""

    measure: tuple[str, ...]
    warmup: int = 2
    min_run_time_s: float = 0.2
    min_samples: int = 5
    max_samples: int = 100
    threads: int | None = None
    timeout_s: float = 300.0


OOM_MARKERS = ("out of memory", "can't allocate memory", "cannot allocate memory", "std::bad_alloc")


def classify_failure(exc: BaseException) -> str:
    """The store status for an exception: ``oom``, ``timeout`` or ``error``."""
    from nlbench.measure.latency import MeasurementTimeout

    if isinstance(exc, MeasurementTimeout):
        return "timeout"
    if isinstance(exc, (MemoryError, torch.OutOfMemoryError)):
        return "oom"
    if isinstance(exc, RuntimeError) and any(m in str(exc).lower() for m in OOM_MARKERS):
        return "oom"
    return "error"


def base_record(case: Case) -> dict[str, Any]:
    """The case's identity and its block's claim, with no measurement yet."""
    from nlbench.blocks import get_spec

    record: dict[str, Any] = {"kind": "sweep", "case_id": case.case_id, **case.to_dict(), "label": case.label}
    try:
        spec = get_spec(case.block)
        record.update(
            family=spec.family,
            claimed_complexity=spec.claimed.text,
            claimed_n_exponent=spec.claimed.n_exponent,
            claimed_c_exponent=spec.claimed.c_exponent,
            claimed_n_log_power=spec.claimed.n_log_power,
        )
    except ValueError:
        pass
    return record


def measure_case(case: Case, settings: CaseSettings) -> dict[str, Any]:
    """Build the case's block and measure it; never raises for a failing case."""
    record = base_record(case)
    record.update(status="ok", error=None)
    started = time.perf_counter()
    deadline = started + settings.timeout_s
    previous_threads = torch.get_num_threads()
    if settings.threads:
        torch.set_num_threads(settings.threads)
    record["threads"] = torch.get_num_threads()
    try:
        torch.manual_seed(0)
        module = case.build().eval()
        x = case.make_input(seed=0)
        _measure_into(record, module, x, settings, deadline)
    except Exception as exc:  # noqa: BLE001 — every failure becomes data
        record["status"] = classify_failure(exc)
        record["error"] = f"{type(exc).__name__}: {exc}"[:2000]
        record["traceback"] = traceback.format_exc(limit=6)[-4000:]
    finally:
        torch.set_num_threads(previous_threads)
        record["duration_s"] = round(time.perf_counter() - started, 3)
    return record


def _measure_into(record: dict[str, Any], module: torch.nn.Module, x: torch.Tensor,
                  settings: CaseSettings, deadline: float) -> None:
    """Run the selected measurers, writing each result into ``record`` as it arrives."""
    inputs = (x,)
    if "params" in settings.measure:
        from nlbench.measure.params import count_params

        counted = count_params(module)
        record.update(params=counted.trainable, params_total=counted.total,
                      param_bytes=counted.total_bytes, buffer_bytes=counted.buffer_bytes)
    if "flops" in settings.measure:
        from nlbench.measure.flops import count_flops

        flops = count_flops(module, inputs)
        record.update(
            macs=flops.macs,
            flops=flops.flops,
            uncounted_ops=list(flops.uncounted_ops),
            operators=[{"op": o.op, "calls": o.calls, "flops": o.flops, "status": o.status} for o in flops.operators],
        )
    if "counters" in settings.measure:
        from nlbench.measure.flops import fvcore_macs, ptflops_macs

        record["fvcore_macs"] = fvcore_macs(module, inputs)
        record["ptflops_macs"] = ptflops_macs(module, inputs)
    latency_settings = _latency_settings(settings)
    if "latency_fwd" in settings.measure:
        from nlbench.measure.latency import measure_forward

        result = measure_forward(module, inputs, latency_settings, deadline_s=_remaining(deadline))
        record.update(latency_fwd_ms_samples=list(result.samples_ms), latency_fwd_ms_median=result.median_ms,
                      latency_fwd_ms_iqr=result.iqr_ms, latency_threads=result.threads)
    if "latency_fwdbwd" in settings.measure:
        from nlbench.measure.latency import measure_forward_backward

        result = measure_forward_backward(module, inputs, latency_settings, deadline_s=_remaining(deadline))
        record.update(latency_fwdbwd_ms_samples=list(result.samples_ms), latency_fwdbwd_ms_median=result.median_ms,
                      latency_fwdbwd_ms_iqr=result.iqr_ms, latency_threads=result.threads)
    if "memory" in settings.measure:
        from nlbench.measure.memory import measure_memory

        memory = measure_memory(module, inputs, backward=True)
        record.update(peak_mem_fwd_bytes=memory.peak_fwd_bytes, peak_mem_fwdbwd_bytes=memory.peak_fwdbwd_bytes,
                      memory_method=memory.method)


def _latency_settings(settings: CaseSettings):
    from nlbench.measure.latency import LatencySettings

    return LatencySettings(warmup=settings.warmup, min_run_time_s=settings.min_run_time_s,
                           min_samples=settings.min_samples, max_samples=settings.max_samples,
                           threads=settings.threads)


def _remaining(deadline: float) -> float:
    from nlbench.measure.latency import MeasurementTimeout

    left = deadline - time.perf_counter()
    if left <= 0:
        raise MeasurementTimeout("case time limit reached before latency measurement")
    return left
