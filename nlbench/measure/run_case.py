"""Measure one case in this process: build its block once, run the measurers the
suite asks for, and return one flat, JSON-ready record.

Failures are data: an out-of-memory, a timeout or an exception is recorded with its
status and message, keeping every measurement taken before it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import socket
import time
import traceback
from typing import Any, Iterator

import torch

from nlbench.case import Case
from nlbench.environment import device_name
from nlbench.measure.allocator import describe_allocator
from nlbench.measure.latency import MeasurementTimeout, intra_op_threads
from nlbench.measure.registry import CaseSettings, get_measurer
from nlbench.vocabulary import KIND_SWEEP, STATUS_ERROR, STATUS_OK, STATUS_OOM, STATUS_TIMEOUT


OOM_MARKERS = ("out of memory", "can't allocate memory", "cannot allocate memory", "std::bad_alloc")


def classify_failure(exc: BaseException) -> str:
    """The store status for an exception: ``oom``, ``timeout`` or ``error``."""
    if isinstance(exc, MeasurementTimeout):
        return STATUS_TIMEOUT
    if isinstance(exc, (MemoryError, torch.OutOfMemoryError)):
        return STATUS_OOM
    if isinstance(exc, RuntimeError) and any(m in str(exc).lower() for m in OOM_MARKERS):
        return STATUS_OOM
    return STATUS_ERROR


def base_record(case: Case) -> dict[str, Any]:
    """The case's identity and its block's claim, with no measurement yet."""
    from nlbench.blocks import get_spec

    record: dict[str, Any] = {"kind": KIND_SWEEP, "case_id": case.case_id, **case.to_dict(), "label": case.label}
    try:
        spec = get_spec(case.block)
        claimed = spec.claimed_for(dict(case.options))
        record.update(
            family=spec.family,
            claimed_complexity=claimed.text,
            claimed_n_exponent=claimed.n_exponent,
            claimed_c_exponent=claimed.c_exponent,
            claimed_n_log_power=claimed.n_log_power,
        )
    except ValueError:
        pass
    return record


class ContractError(TypeError):
    """A block whose forward breaks the registry's contract (a tensor of the input's shape)."""


@contextlib.contextmanager
def output_contract(module: torch.nn.Module, inputs: tuple[torch.Tensor, ...]) -> Iterator[None]:
    """Check the block's contract — its forward returns a tensor of the input's shape,
    dtype and device — on the first forward the measurers run anyway (a hook that keeps
    only the output's description, never the tensor and its graph), or with one
    forward of its own when none ran; a violation is a ContractError."""
    seen: list[str | None] = []

    def describe(output: Any) -> str | None:
        x = inputs[0]
        if not isinstance(output, torch.Tensor):
            return f"forward returned {type(output).__name__}, expected a tensor of shape {tuple(x.shape)}"
        if output.shape != x.shape or output.dtype != x.dtype or output.device != x.device:
            return (f"forward returned a {output.dtype} tensor of shape {tuple(output.shape)} on "
                    f"{output.device}, expected {x.dtype} {tuple(x.shape)} on {x.device}")
        return None

    handle = module.register_forward_hook(lambda _m, _args, output: None if seen else seen.append(describe(output)))
    try:
        yield
    finally:
        handle.remove()
    if not seen:
        with torch.no_grad():
            seen.append(describe(module(*inputs)))
    if seen[0] is not None:
        raise ContractError(seen[0])


def measure_case(case: Case, settings: CaseSettings) -> dict[str, Any]:
    """Build the case's block and run the suite's measurers on it, in order, each
    value's columns merged into the record as it arrives; never raises for a failing
    case (the measurements taken before a failure are kept)."""
    record = base_record(case)
    record.update(status=STATUS_OK, error=None, allocator=describe_allocator(), host=socket.gethostname(),
                  device_name=device_name(case.device))
    started = time.perf_counter()
    settings = dataclasses.replace(settings, deadline=started + settings.limits.case_timeout_s)
    try:
        with intra_op_threads(settings.sampling.threads) as threads:  # for every measurer of the case
            record["threads"] = threads
            measurers = [get_measurer(name) for name in settings.measure]
            torch.manual_seed(0)
            module = case.build().eval()
            inputs = (case.make_input(seed=0),)
            with output_contract(module, inputs):  # checked after, so a failing forward keeps what was measured
                for measurer in measurers:
                    record.update(measurer.function(module, inputs, case, settings).columns())
    except Exception as exc:  # noqa: BLE001 — every failure becomes data
        record["status"] = classify_failure(exc)
        record["error"] = f"{type(exc).__name__}: {exc}"[:2000]
        record["traceback"] = traceback.format_exc(limit=6)[-4000:]
    finally:
        record["duration_s"] = round(time.perf_counter() - started, 3)
    return record
