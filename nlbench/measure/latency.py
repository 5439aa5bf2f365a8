"""Wall-clock latency of a block's forward and forward+backward passes.

Every timed sample is exactly one call, timed with ``time.perf_counter_ns`` (on CUDA
the device is synchronised before the clock starts and before it stops), so the raw
samples can feed a rank test (Mann-Whitney) later; warm-up calls are discarded. The
summary is the median and the IQR of the raw samples, never a single run or the mean.

The helpers that put a module into a measurable state and put it back afterwards
(``preserved_module_state``, ``inputs_for_backward``, ``scalar_loss``) are shared
with the memory measurer.
"""

from __future__ import annotations

import math
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from nlbench.vocabulary import Metric, SamplingSettings, iqr_over_median, latency_warnings, metric

#: The passes a latency is measured for: forward, and forward+backward.
PASSES: tuple[str, ...] = ("fwd", "fwdbwd")

class MeasurementTimeout(TimeoutError):
    """A measurement ran past its deadline; the sweep records the case as ``timeout``.

    The deadline is checked between calls, so one call that itself runs very long
    overshoots it by up to that call's duration. The keyword fields are set when the
    latency loop raises it (None when raised elsewhere with only a message).
    """

    def __init__(
        self,
        message: str,
        *,
        elapsed_s: float | None = None,
        deadline_s: float | None = None,
        samples_taken: int | None = None,
    ) -> None:
        super().__init__(message)
        self.elapsed_s = elapsed_s
        self.deadline_s = deadline_s
        self.samples_taken = samples_taken


@dataclass(frozen=True)
class LatencyResult:
    """Raw per-call samples (milliseconds, warm-up excluded) of one pass (``"fwd"`` or
    ``"fwdbwd"``), the intra-op thread count they ran with and the device; the summary
    statistics and the warnings derive from the samples."""

    samples_ms: tuple[float, ...]
    threads: int
    device: str
    pass_name: str = "fwd"

    def __post_init__(self) -> None:
        samples = tuple(float(s) for s in self.samples_ms)  # accept lists, e.g. from JSON
        if not samples:
            raise ValueError("LatencyResult.samples_ms must hold at least one sample")
        if not all(math.isfinite(s) and s >= 0 for s in samples):
            raise ValueError(f"LatencyResult.samples_ms must be finite and >= 0, got {samples!r}")
        object.__setattr__(self, "samples_ms", samples)
        if isinstance(self.threads, bool) or not isinstance(self.threads, int) or self.threads < 1:
            raise ValueError(f"LatencyResult.threads must be an int >= 1, got {self.threads!r}")
        if not isinstance(self.device, str) or not self.device:
            raise ValueError(f"LatencyResult.device must be a non-empty string, got {self.device!r}")
        if self.pass_name not in PASSES:
            raise ValueError(f"LatencyResult.pass_name must be one of {PASSES}, got {self.pass_name!r}")

    @property
    def metric(self) -> Metric:
        """The vocabulary's metric for this pass (its columns and noise rule)."""
        return metric(f"latency_{self.pass_name}_ms")

    @property
    def n_samples(self) -> int:
        return len(self.samples_ms)

    @property
    def median_ms(self) -> float:
        return float(np.median(self.samples_ms))

    @property
    def q25_ms(self) -> float:
        """First quartile (linear interpolation between order statistics)."""
        return float(np.percentile(self.samples_ms, 25))

    @property
    def q75_ms(self) -> float:
        """Third quartile (linear interpolation between order statistics)."""
        return float(np.percentile(self.samples_ms, 75))

    @property
    def iqr_ms(self) -> float:
        """Interquartile range q75 − q25."""
        return self.q75_ms - self.q25_ms

    @property
    def iqr_over_median(self) -> float:
        """Relative spread; infinite if the median is 0 but the IQR is not."""
        return iqr_over_median(self.median_ms, self.iqr_ms)

    @property
    def noisy(self) -> bool:
        """True when IQR/median exceeds the harness's noise threshold: the median
        should not be trusted alone."""
        return self.metric.is_noisy(self.median_ms, self.iqr_ms)

    @property
    def warnings(self) -> tuple[str, ...]:
        """Why this latency cannot be trusted (empty when it can)."""
        return tuple(latency_warnings(self.median_ms, self.iqr_ms))

    def columns(self) -> dict[str, Any]:
        """The record columns of this pass: raw samples, median, IQR, warnings, threads."""
        m = self.metric
        return {m.samples_column: list(self.samples_ms), m.column: self.median_ms, m.iqr_column: self.iqr_ms,
                m.warnings_column: list(self.warnings), "latency_threads": self.threads}


# --- shared helpers ------------------------------------------------------------------


def as_input_tuple(inputs: Tensor | Sequence[Tensor]) -> tuple[Tensor, ...]:
    """The module's positional inputs as a tuple (a lone tensor is wrapped); all must
    be tensors on one device."""
    if isinstance(inputs, Tensor):
        inputs = (inputs,)
    if not isinstance(inputs, (tuple, list)):
        raise TypeError(f"inputs must be a tensor or a tuple of tensors, got {type(inputs).__name__}")
    if not inputs:
        raise ValueError("inputs must hold at least one tensor")
    for index, item in enumerate(inputs):
        if not isinstance(item, Tensor):
            raise TypeError(f"inputs[{index}] must be a torch.Tensor, got {type(item).__name__}")
    devices = {item.device for item in inputs}
    if len(devices) > 1:
        raise ValueError(f"all inputs must be on one device, got {sorted(map(str, devices))}")
    return tuple(inputs)


def _check_module(module: nn.Module) -> None:
    if not isinstance(module, nn.Module):
        raise TypeError(f"module must be a torch.nn.Module, got {type(module).__name__}")


def synchronize_if_cuda(device: torch.device) -> None:
    """Wait for queued kernels on a CUDA device (no-op elsewhere), so a clock reading
    covers the work launched before it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@contextmanager
def preserved_module_state(module: nn.Module) -> Iterator[None]:
    """Restore, on exit, each submodule's train/eval flag, each parameter's ``.grad``
    and every buffer's values (a training-mode pass updates BatchNorm statistics), so
    measuring leaves the module as it found it."""
    modes = [(sub, sub.training) for sub in module.modules()]
    parameters = list(module.parameters())
    grads = [p.grad for p in parameters]
    buffers = [
        (sub, name, buffer, buffer.detach().clone())
        for sub in module.modules()
        for name, buffer in sub.named_buffers(recurse=False)
    ]
    try:
        yield
    finally:
        for sub, training in modes:
            sub.training = training
        for parameter, grad in zip(parameters, grads):
            parameter.grad = grad
        with torch.no_grad():
            for sub, name, buffer, saved in buffers:
                sub._buffers[name] = buffer  # undo a re-assignment during the pass, if any
                buffer.copy_(saved)


@contextmanager
def intra_op_threads(threads: int | None) -> Iterator[int]:
    """Set ``torch.set_num_threads(threads)`` (None: leave it) for the block, yield the
    count in force, and restore the previous count on exit."""
    previous = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield torch.get_num_threads()
    finally:
        if torch.get_num_threads() != previous:
            torch.set_num_threads(previous)


def inputs_for_backward(module: nn.Module, inputs: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
    """Inputs for a forward+backward pass: unchanged when the module has a trainable
    parameter (the input's gradient is then not part of the cost); otherwise detached
    aliases of the floating-point inputs that require grad, so that backward exists
    (e.g. for the parameter-free ``identity`` block). The caller's tensors are not
    modified."""
    if any(p.requires_grad for p in module.parameters()):
        return inputs
    if not any(x.is_floating_point() or x.is_complex() for x in inputs):
        raise ValueError(
            "forward+backward: the module has no trainable parameter and no input is "
            "floating point, so there is nothing to differentiate"
        )
    return tuple(
        x.detach().requires_grad_(True) if (x.is_floating_point() or x.is_complex()) else x for x in inputs
    )


def scalar_loss(output: Any) -> Tensor:
    """A scalar to call backward on: the sum of the output (of every tensor in a tuple,
    list or dict output), accumulated in at least float32 without copying the output."""
    tensors: list[Tensor]
    if isinstance(output, Tensor):
        tensors = [output]
    elif isinstance(output, (tuple, list)):
        tensors = [t for t in output if isinstance(t, Tensor)]
    elif isinstance(output, dict):
        tensors = [t for t in output.values() if isinstance(t, Tensor)]
    else:
        raise TypeError(f"cannot form a loss from a module output of type {type(output).__name__}")
    tensors = [t for t in tensors if t.requires_grad]
    if not tensors:
        raise ValueError(
            "forward+backward: the module output does not require grad, so backward cannot be measured"
        )
    loss = None
    for tensor in tensors:
        real = tensor.real if tensor.is_complex() else tensor
        part = real.sum(dtype=torch.promote_types(real.dtype, torch.float32))
        loss = part if loss is None else loss + part
    assert loss is not None
    return loss


def clear_grads(module: nn.Module, inputs: tuple[Tensor, ...]) -> None:
    """Set parameter and leaf-input gradients to None (no zero tensor is kept)."""
    for parameter in module.parameters():
        parameter.grad = None
    for x in inputs:
        if x.is_leaf and x.requires_grad:
            x.grad = None


def forward_backward(module: nn.Module, inputs: tuple[Tensor, ...]) -> Any:
    """One training step without an optimiser: forward, sum loss, backward. Returns
    the output so the caller decides when it is freed."""
    output = module(*inputs)
    scalar_loss(output).backward()
    return output


# --- the timing loop -----------------------------------------------------------------


def _check_deadline(deadline_s: float | None) -> None:
    if deadline_s is not None and (
        isinstance(deadline_s, bool) or not isinstance(deadline_s, (int, float)) or not deadline_s > 0
    ):
        raise ValueError(f"deadline_s must be a positive number or None, got {deadline_s!r}")


def _sample(
    what: str,
    call: Callable[[], Any],
    prepare: Callable[[], None],
    device: torch.device,
    settings: SamplingSettings,
    deadline_s: float | None,
) -> tuple[float, ...]:
    """Run ``settings.warmup`` untimed calls, then time single calls (each preceded by
    an untimed ``prepare``) until the stopping rule holds; raise MeasurementTimeout as
    soon as the deadline has passed."""
    started = time.perf_counter()

    def check(samples_taken: int) -> None:
        if deadline_s is not None:
            elapsed = time.perf_counter() - started
            if elapsed > deadline_s:
                raise MeasurementTimeout(
                    f"{what}: {elapsed:.3f} s elapsed, past the deadline of {deadline_s:.3f} s "
                    f"({samples_taken} timed samples taken)",
                    elapsed_s=elapsed,
                    deadline_s=deadline_s,
                    samples_taken=samples_taken,
                )

    for _ in range(settings.warmup):
        prepare()
        result = call()
        synchronize_if_cuda(device)
        del result
        check(0)

    samples: list[float] = []
    sampling_started = time.perf_counter_ns()
    min_run_time_ns = settings.min_run_time_s * 1e9
    while len(samples) < settings.max_samples:
        prepare()
        synchronize_if_cuda(device)
        t0 = time.perf_counter_ns()
        result = call()
        synchronize_if_cuda(device)
        t1 = time.perf_counter_ns()
        del result  # freed outside the timed region
        samples.append((t1 - t0) / 1e6)
        check(len(samples))
        if len(samples) >= settings.min_samples and time.perf_counter_ns() - sampling_started >= min_run_time_ns:
            break
    return tuple(samples)


def measure_forward(
    module: nn.Module,
    inputs: Tensor | Sequence[Tensor],
    settings: SamplingSettings = SamplingSettings(),
    *,
    deadline_s: float | None = None,
) -> LatencyResult:
    """Per-call latency of ``module(*inputs)`` in eval mode under ``torch.no_grad()``.

    The module's modes, grads and buffers and the thread count are restored afterwards.
    Raises MeasurementTimeout once ``deadline_s`` seconds (warm-up included) have passed.
    """
    _check_module(module)
    xs = as_input_tuple(inputs)
    _check_deadline(deadline_s)
    device = xs[0].device
    with preserved_module_state(module), intra_op_threads(settings.threads) as threads, torch.no_grad():
        module.eval()
        samples = _sample("forward", lambda: module(*xs), lambda: None, device, settings, deadline_s)
    return LatencyResult(samples_ms=samples, threads=threads, device=str(device), pass_name="fwd")


def measure_forward_backward(
    module: nn.Module,
    inputs: Tensor | Sequence[Tensor],
    settings: SamplingSettings = SamplingSettings(),
    *,
    deadline_s: float | None = None,
) -> LatencyResult:
    """Per-call latency of forward + ``sum`` loss + backward in train mode.

    Gradients are set to None before each call, outside the timed region; inputs
    require grad only when the module has no trainable parameter (see
    ``inputs_for_backward``). The module's modes, grads and buffers (BatchNorm
    statistics) and the thread count are restored afterwards. Raises
    MeasurementTimeout once ``deadline_s`` seconds (warm-up included) have passed.
    """
    _check_module(module)
    xs = inputs_for_backward(module, as_input_tuple(inputs))
    _check_deadline(deadline_s)
    device = xs[0].device
    with preserved_module_state(module), intra_op_threads(settings.threads) as threads, torch.enable_grad():
        module.train()
        samples = _sample(
            "forward+backward",
            lambda: forward_backward(module, xs),
            lambda: clear_grads(module, xs),
            device,
            settings,
            deadline_s,
        )
        clear_grads(module, xs)
    return LatencyResult(samples_ms=samples, threads=threads, device=str(device), pass_name="fwdbwd")
