"""Peak memory of a block's forward and forward+backward passes.

Both numbers are *peak extra bytes during the call*: the highest amount of memory
allocated on the inputs' device at any moment during the call, above what was already
allocated when it started. The inputs, the parameters and anything else alive before
the call are the baseline and are not counted; the output, the activations saved for
backward, temporaries (including kernels' internal workspaces) and the gradients are.

- CUDA: the caching allocator's statistics, ``max_memory_allocated()`` after
  ``reset_peak_memory_stats()``, minus ``memory_allocated()`` just before the call.
- CPU: the profiler's memory events (``torch.profiler.profile(profile_memory=True)``);
  every allocation and free through c10's CPU allocator is an event with a signed byte
  count, and the peak of their running sum, in time order, is the peak extra bytes.
  Memory obtained outside c10's allocator (e.g. a BLAS library's private buffers) is
  not seen.

The forward is measured in eval mode under ``torch.no_grad()`` (inference, as the
forward latency); forward+backward in train mode with a ``sum`` loss, gradients set to
None first (the same step as the forward+backward latency). One untimed warm-up pass
precedes each measurement, so one-off lazy initialisation is not counted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch
from torch import Tensor, nn

from nlbench.measure.latency import (
    as_input_tuple,
    clear_grads,
    forward_backward,
    inputs_for_backward,
    preserved_module_state,
    synchronize_if_cuda,
)

CUDA_METHOD = "cuda allocator max_memory_allocated (peak minus memory_allocated before the call)"
CPU_METHOD = "cpu profiler memory events (peak of cumulative alloc−free)"


@dataclass(frozen=True)
class MemoryResult:
    """Peak extra bytes during forward and during forward+backward (None: not
    measured), and how they were measured."""

    peak_fwd_bytes: int | None
    peak_fwdbwd_bytes: int | None
    method: str

    def __post_init__(self) -> None:
        for name in ("peak_fwd_bytes", "peak_fwdbwd_bytes"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
                raise ValueError(f"MemoryResult.{name} must be a non-negative int or None, got {value!r}")
        if not isinstance(self.method, str) or not self.method:
            raise ValueError(f"MemoryResult.method must be a non-empty string, got {self.method!r}")

    def columns(self) -> dict[str, Any]:
        """The record columns: both peaks and how they were measured."""
        return {"peak_mem_fwd_bytes": self.peak_fwd_bytes, "peak_mem_fwdbwd_bytes": self.peak_fwdbwd_bytes,
                "memory_method": self.method}


def peak_bytes_from_deltas(deltas: Sequence[int]) -> int:
    """Peak of the running sum of signed allocation sizes (in time order), starting
    from 0 — frees of memory allocated before the window may make it dip below 0,
    which does not lower the peak below 0."""
    running = peak = 0
    for delta in deltas:
        running += delta
        peak = max(peak, running)
    return peak


def _cpu_peak_extra_bytes(call: Callable[[], Any]) -> int:
    """Run ``call`` under the profiler with memory events and return the peak of the
    cumulative CPU allocations minus frees during it."""
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True, record_shapes=False) as prof:
        result = call()
        del result
    kineto_results = getattr(prof.profiler, "kineto_results", None)
    if kineto_results is None:
        raise RuntimeError(
            f"torch {torch.__version__}: the profiler exposes no kineto_results; "
            "the CPU memory measurement needs its raw [memory] events"
        )
    events = [
        event
        for event in kineto_results.events()
        if event.name() == "[memory]" and event.device_type() == DeviceType.CPU
    ]
    events.sort(key=lambda event: event.start_ns())  # stable: ties keep recording order
    return peak_bytes_from_deltas([int(event.nbytes()) for event in events])


def _cuda_peak_extra_bytes(call: Callable[[], Any], device: torch.device) -> int:
    """Run ``call`` and return the CUDA allocator's peak allocated bytes during it,
    above what was allocated when it started."""
    synchronize_if_cuda(device)
    torch.cuda.reset_peak_memory_stats(device)
    baseline = torch.cuda.memory_allocated(device)
    result = call()
    synchronize_if_cuda(device)
    del result
    return max(0, int(torch.cuda.max_memory_allocated(device)) - int(baseline))


def measure_memory(
    module: nn.Module,
    inputs: Tensor | Sequence[Tensor],
    *,
    backward: bool = True,
    warm_up: bool = True,
) -> MemoryResult:
    """Peak extra bytes of ``module(*inputs)`` (eval, no grad) and, if ``backward``,
    of a forward+backward step (train); see the module docstring for the method.

    The module's modes, grads and buffers are restored afterwards. Only CPU and CUDA
    inputs are supported.
    """
    if not isinstance(module, nn.Module):
        raise TypeError(f"measure_memory: module must be a torch.nn.Module, got {type(module).__name__}")
    xs = as_input_tuple(inputs)
    device = xs[0].device
    if device.type == "cuda":
        method = CUDA_METHOD

        def peak(call: Callable[[], Any]) -> int:
            return _cuda_peak_extra_bytes(call, device)

    elif device.type == "cpu":
        method = CPU_METHOD
        peak = _cpu_peak_extra_bytes
    else:
        raise ValueError(f"measure_memory: no memory measurement for device {device.type!r} (cpu and cuda only)")

    with preserved_module_state(module):
        module.eval()
        with torch.no_grad():
            if warm_up:
                warm = module(*xs)  # lazy one-off allocations happen here, not in the measurement
                del warm
            synchronize_if_cuda(device)
            peak_fwd = peak(lambda: module(*xs))

        peak_fwdbwd = None
        if backward:
            xs_bwd = inputs_for_backward(module, xs)
            module.train()
            with torch.enable_grad():
                clear_grads(module, xs_bwd)
                if warm_up:
                    warm = forward_backward(module, xs_bwd)
                    del warm
                    clear_grads(module, xs_bwd)
                synchronize_if_cuda(device)
                peak_fwdbwd = peak(lambda: forward_backward(module, xs_bwd))
                clear_grads(module, xs_bwd)
    return MemoryResult(peak_fwd_bytes=peak_fwd, peak_fwdbwd_bytes=peak_fwdbwd, method=method)
