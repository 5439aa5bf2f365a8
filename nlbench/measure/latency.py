"""Wall-clock latency of a block's forward and forward+backward passes.

A timed sample is a block of back-to-back calls (one call unless a call is shorter
than ``block_ms``), timed with ``time.perf_counter_ns`` (on CUDA the device is
synchronised before the clock starts and before it stops) and stored per call, so the
raw samples can feed a rank test (Mann-Whitney) later; warm-up calls, continued until
the timings settle, are discarded. Beside each sample the loop records the main
thread's CPU time (a sample whose thread was off the CPU for more than 10 % of it was
starved: contention), the minor page faults and the involuntary context switches. The
summary is the median and the IQR of the raw samples, never a single run or the mean.

The helpers that put a module into a measurable state and put it back afterwards
(``preserved_module_state``, ``inputs_for_backward``, ``scalar_loss``) are shared
with the memory measurer.
"""

from __future__ import annotations

import math
import resource
import time
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from nlbench.vocabulary import (
    LATENCY_PASSES, STARVED_OFF_CPU, WARNING_CONTENDED, Metric, SamplingSettings, iqr_over_median, latency_warnings, metric,
)

#: The passes a latency is measured for: forward, and forward+backward.
PASSES: tuple[str, ...] = LATENCY_PASSES

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
    """The samples of one pass (``"fwd"`` or ``"fwdbwd"``) and how they were taken.

    Per sample: ``samples_ms`` the wall time of one call (a sample of several calls
    is their mean), ``cpu_ms`` the main thread's CPU time per call over the same span,
    ``minor_faults`` the process's minor page faults per call, ``involuntary_switches``
    its involuntary context switches in the sample, ``rounds`` the sweep round the
    sample was taken in. ``calls_per_sample`` and ``warmup_calls`` say how the loop ran.
    The summary statistics and the warnings derive from the samples.
    """

    samples_ms: tuple[float, ...]
    threads: int
    device: str
    pass_name: str = "fwd"
    cpu_ms: tuple[float, ...] | None = None
    minor_faults: tuple[float, ...] | None = None
    involuntary_switches: tuple[int, ...] | None = None
    rounds: tuple[int, ...] | None = None
    calls_per_sample: int = 1
    warmup_calls: int = 0

    def __post_init__(self) -> None:
        samples = tuple(float(s) for s in self.samples_ms)  # accept lists, e.g. from JSON
        if not samples:
            raise ValueError("LatencyResult.samples_ms must hold at least one sample")
        if not all(math.isfinite(s) and s >= 0 for s in samples):
            raise ValueError(f"LatencyResult.samples_ms must be finite and >= 0, got {samples!r}")
        object.__setattr__(self, "samples_ms", samples)
        for name, kind in (("cpu_ms", float), ("minor_faults", float), ("involuntary_switches", int), ("rounds", int)):
            values = getattr(self, name)
            if values is not None:
                values = tuple(kind(v) for v in values)
                if len(values) != len(samples):
                    raise ValueError(f"LatencyResult.{name} must have one value per sample ({len(samples)})")
                object.__setattr__(self, name, values)
        if isinstance(self.threads, bool) or not isinstance(self.threads, int) or self.threads < 1:
            raise ValueError(f"LatencyResult.threads must be an int >= 1, got {self.threads!r}")
        if not isinstance(self.device, str) or not self.device:
            raise ValueError(f"LatencyResult.device must be a non-empty string, got {self.device!r}")
        if self.pass_name not in PASSES:
            raise ValueError(f"LatencyResult.pass_name must be one of {PASSES}, got {self.pass_name!r}")
        if isinstance(self.calls_per_sample, bool) or not isinstance(self.calls_per_sample, int) or self.calls_per_sample < 1:
            raise ValueError(f"LatencyResult.calls_per_sample must be an int >= 1, got {self.calls_per_sample!r}")

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
    def off_cpu(self) -> tuple[float, ...] | None:
        """Per sample, the share of its wall time the main thread was not on a CPU
        (None when CPU time was not recorded, e.g. on CUDA, where waiting is normal)."""
        if self.cpu_ms is None:
            return None
        return tuple(max(0.0, 1.0 - c / w) if w > 0 else 0.0 for c, w in zip(self.cpu_ms, self.samples_ms))

    @property
    def starved_share(self) -> float | None:
        """The share of samples that were starved of CPU (see ``vocabulary.STARVED_OFF_CPU``)."""
        off = self.off_cpu
        if off is None:
            return None
        return sum(o > STARVED_OFF_CPU for o in off) / len(off)

    @property
    def contended(self) -> bool:
        """True when the samples show the process did not get its CPU."""
        return WARNING_CONTENDED in self.warnings

    @property
    def warnings(self) -> tuple[str, ...]:
        """Why this latency cannot be trusted (empty when it can)."""
        return tuple(latency_warnings(self.median_ms, self.iqr_ms, n_samples=self.n_samples,
                                      starved_share=self.starved_share))

    def columns(self) -> dict[str, Any]:
        """The record columns of this pass: raw samples and their side channels,
        median, IQR, warnings, threads and how the loop ran."""
        m = self.metric
        prefix = f"latency_{self.pass_name}"

        def optional(values: tuple[Any, ...] | None) -> list[Any] | None:
            return None if values is None else list(values)

        return {m.samples_column: list(self.samples_ms), m.column: self.median_ms, m.iqr_column: self.iqr_ms,
                m.warnings_column: list(self.warnings), "latency_threads": self.threads,
                f"{prefix}_cpu_ms_samples": optional(self.cpu_ms),
                f"{prefix}_minor_faults_samples": optional(self.minor_faults),
                f"{prefix}_invol_switches_samples": optional(self.involuntary_switches),
                m.rounds_column: optional(self.rounds),
                f"{prefix}_calls_per_sample": self.calls_per_sample, f"{prefix}_warmup_calls": self.warmup_calls}

    @classmethod
    def from_columns(cls, record: Mapping[str, Any], pass_name: str) -> "LatencyResult":
        """The result a record's columns (as :meth:`columns` wrote them) hold for ``pass_name``."""
        prefix = f"latency_{pass_name}"
        return cls(samples_ms=tuple(record[f"{prefix}_ms_samples"]), threads=int(record["latency_threads"]),
                   device=str(record["device"]), pass_name=pass_name,
                   cpu_ms=record.get(f"{prefix}_cpu_ms_samples"),
                   minor_faults=record.get(f"{prefix}_minor_faults_samples"),
                   involuntary_switches=record.get(f"{prefix}_invol_switches_samples"),
                   rounds=record.get(metric(f"latency_{pass_name}_ms").rounds_column),
                   calls_per_sample=int(record.get(f"{prefix}_calls_per_sample") or 1),
                   warmup_calls=int(record.get(f"{prefix}_warmup_calls") or 0))

    def merged(self, other: "LatencyResult") -> "LatencyResult":
        """This result and a later round's of the same pass, samples concatenated."""
        def join(a, b):  # noqa: ANN001, ANN202
            return None if a is None or b is None else a + b

        return replace(self, samples_ms=self.samples_ms + other.samples_ms, cpu_ms=join(self.cpu_ms, other.cpu_ms),
                       minor_faults=join(self.minor_faults, other.minor_faults),
                       involuntary_switches=join(self.involuntary_switches, other.involuntary_switches),
                       rounds=join(self.rounds, other.rounds), warmup_calls=self.warmup_calls + other.warmup_calls,
                       calls_per_sample=max(self.calls_per_sample, other.calls_per_sample))


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


#: Linux's memory counts of this process, in pages: total, resident, … (proc(5)).
STATM_FILE = "/proc/self/statm"
PAGE_BYTES = resource.getpagesize()


def resident_bytes() -> int | None:
    """This process's resident memory, huge pages included (``/proc/self/statm``);
    None where the system does not say."""
    try:
        with open(STATM_FILE, "rb") as statm:
            return int(statm.read().split()[1]) * PAGE_BYTES
    except (OSError, ValueError, IndexError):
        return None


@dataclass(frozen=True)
class _Block:
    """One timed block of calls: wall and main-thread CPU nanoseconds, the process's
    minor page faults and involuntary context switches during it, and how much its
    resident memory grew (None where the system does not say)."""

    wall_ns: int
    cpu_ns: int
    minor_faults: int
    involuntary_switches: int
    resident_growth_bytes: int | None


def _timed_block(call: Callable[[], Any], prepare: Callable[[], None], device: torch.device, calls: int) -> _Block:
    """Time ``calls`` back-to-back calls (``prepare`` before each; the first one
    untimed). The last result is freed outside the timed region."""
    prepare()
    synchronize_if_cuda(device)
    resident0 = resident_bytes()
    usage0 = resource.getrusage(resource.RUSAGE_SELF)
    cpu0, t0 = time.thread_time_ns(), time.perf_counter_ns()
    result = call()
    for _ in range(calls - 1):
        del result
        prepare()
        result = call()
    synchronize_if_cuda(device)
    t1, cpu1 = time.perf_counter_ns(), time.thread_time_ns()
    usage1 = resource.getrusage(resource.RUSAGE_SELF)
    del result
    resident1 = resident_bytes()  # after the result is freed: the growth a steady call leaves behind is none
    growth = None if resident0 is None or resident1 is None else resident1 - resident0
    return _Block(t1 - t0, cpu1 - cpu0, usage1.ru_minflt - usage0.ru_minflt, usage1.ru_nivcsw - usage0.ru_nivcsw,
                  growth)


#: Warm-up is stable when the median call of the last window (at least
#: STABLE_WINDOW calls and STABLE_WINDOW_S seconds of them) is within
#: STABLE_TOLERANCE of the median of the window before it. The time span matters:
#: here a fast call ran at half speed for its first ~10 ms after a pause.
STABLE_WINDOW = 3
STABLE_WINDOW_S = 0.010
STABLE_TOLERANCE = 0.10


def warmed_up(per_call_ns: Sequence[float], calls: int = 1) -> bool:
    """Whether warm-up timings (per-call ns of blocks of ``calls`` calls) have settled:
    the last window's median within :data:`STABLE_TOLERANCE` of the window before."""
    if len(per_call_ns) < 2 * STABLE_WINDOW:
        return False
    typical = float(np.median(per_call_ns[-STABLE_WINDOW:]))
    window = max(STABLE_WINDOW, math.ceil(STABLE_WINDOW_S * 1e9 / max(typical * calls, 1.0)))
    if len(per_call_ns) < 2 * window:
        return False
    last = float(np.median(per_call_ns[-window:]))
    before = float(np.median(per_call_ns[-2 * window:-window]))
    return before > 0 and abs(last - before) <= STABLE_TOLERANCE * before


#: Most calls one sample may block together.
MAX_CALLS_PER_SAMPLE = 10_000
#: A call that grows the process's resident memory by more than this has not reached
#: the allocator's steady state: the heap is still growing to the call's working set,
#: and the kernel faults the fresh pages in. Seen here: dense NL at 96×96 faulted
#: 165,888 pages (648 MiB) into each of its first timed calls (2.5 s instead of 0.35 s)
#: after a one-call warm-up that max_warmup_s had cut short. Growth, not fault counts:
#: a huge-page fault brings 2 MiB in, and an allocator that maps and unmaps a block on
#: every call faults every time without ever reaching a steadier state.
STEADY_GROWTH_BYTES_PER_CALL = 2**20
#: Warm-up calls allowed past ``max_warmup_s`` while calls still grow the process's
#: memory (timed blocks that grow it count against it too, and are warm-up, not samples).
MAX_FAULTING_WARMUP_CALLS = 4


def still_growing(block: _Block, calls: int) -> bool:
    """Whether a block's calls still grow the process's memory (see
    :data:`STEADY_GROWTH_BYTES_PER_CALL`); where resident memory is not reported, its
    minor faults stand in (each at least a page)."""
    growth = block.resident_growth_bytes if block.resident_growth_bytes is not None else block.minor_faults * PAGE_BYTES
    return growth / max(calls, 1) > STEADY_GROWTH_BYTES_PER_CALL


def _sample(
    what: str,
    call: Callable[[], Any],
    prepare: Callable[[], None],
    device: torch.device,
    settings: SamplingSettings,
    deadline_s: float | None,
    *,
    pass_name: str,
    threads: int,
    round_index: int,
) -> LatencyResult:
    """Warm up (at least ``settings.warmup`` calls, until stable or
    ``settings.max_warmup_s``), choose the calls per sample from the warm-up's
    timings and ``settings.block_ms``, then time blocks until the stopping rule
    holds; raise MeasurementTimeout as soon as the deadline has passed."""
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

    # Warm-up in blocks too: single calls until their time is known, then blocks of
    # the calls a sample will use, until stable (per-call times compared over windows
    # of at least STABLE_WINDOW_S) or max_warmup_s; at least ``warmup`` calls; and past
    # max_warmup_s (up to MAX_FAULTING_WARMUP_CALLS more) while calls still fault fresh
    # pages in — the allocator's heap has not reached the call's working set yet.
    warm: list[float] = []
    calls, warm_calls, faulting, extra_calls = 1, 0, False, 0
    warm_started = time.perf_counter()
    while warm_calls < settings.warmup or (
            settings.max_warmup_s > 0 and not warmed_up(warm, calls)
            and time.perf_counter() - warm_started < settings.max_warmup_s) or (
            faulting and extra_calls < MAX_FAULTING_WARMUP_CALLS):
        past_budget = warm_calls >= settings.warmup and time.perf_counter() - warm_started >= settings.max_warmup_s
        block = _timed_block(call, prepare, device, calls)
        warm.append(block.wall_ns / calls)
        faulting = device.type == "cpu" and still_growing(block, calls)
        warm_calls += calls
        extra_calls += calls if past_budget else 0
        if settings.block_ms > 0:
            typical_ns = float(np.median(warm[-STABLE_WINDOW:]))
            calls = int(min(MAX_CALLS_PER_SAMPLE, max(1, math.ceil(settings.block_ms * 1e6 / max(typical_ns, 1.0)))))
        check(0)

    # A timed block that still faults fresh pages in is warm-up too, from the same
    # budget: a call that did not fault does not prove the next one will not. Seen
    # here: nl at 128×128 in a sweep worker (whose heap earlier cases had shaped) ran a
    # warm-up call without a fault, then 0.58 s, 3.1 s and 4.0 s samples, the slow ones
    # faulting a fresh 1 GiB N×N buffer in (193,088 and 262,144 faults); the heap only
    # grows, so the faulting stops after a few calls.
    on_cpu = device.type == "cpu"  # on CUDA the host thread waits for the device by design
    blocks: list[_Block] = []
    sampling_started = time.perf_counter_ns()
    min_run_time_ns = settings.min_run_time_s * 1e9
    while len(blocks) < settings.max_samples:
        block = _timed_block(call, prepare, device, calls)
        check(len(blocks))
        if on_cpu and still_growing(block, calls) and extra_calls < MAX_FAULTING_WARMUP_CALLS:
            warm_calls += calls
            extra_calls += calls
            sampling_started = time.perf_counter_ns()  # min_run_time_s counts steady samples only
            continue
        blocks.append(block)
        if len(blocks) >= settings.min_samples and time.perf_counter_ns() - sampling_started >= min_run_time_ns:
            break
    return LatencyResult(
        samples_ms=tuple(b.wall_ns / calls / 1e6 for b in blocks), threads=threads, device=str(device),
        pass_name=pass_name, cpu_ms=tuple(b.cpu_ns / calls / 1e6 for b in blocks) if on_cpu else None,
        minor_faults=tuple(b.minor_faults / calls for b in blocks),
        involuntary_switches=tuple(b.involuntary_switches for b in blocks),
        rounds=(round_index,) * len(blocks), calls_per_sample=calls, warmup_calls=warm_calls)


def measure_forward(
    module: nn.Module,
    inputs: Tensor | Sequence[Tensor],
    settings: SamplingSettings = SamplingSettings(),
    *,
    deadline_s: float | None = None,
    round_index: int = 0,
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
        return _sample("forward", lambda: module(*xs), lambda: None, device, settings, deadline_s,
                       pass_name="fwd", threads=threads, round_index=round_index)


def measure_forward_backward(
    module: nn.Module,
    inputs: Tensor | Sequence[Tensor],
    settings: SamplingSettings = SamplingSettings(),
    *,
    deadline_s: float | None = None,
    round_index: int = 0,
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
        result = _sample("forward+backward", lambda: forward_backward(module, xs), lambda: clear_grads(module, xs),
                         device, settings, deadline_s, pass_name="fwdbwd", threads=threads, round_index=round_index)
        clear_grads(module, xs)
    return result
