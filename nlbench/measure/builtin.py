"""The built-in measurers, registered in the order a suite lists them by default
(:data:`nlbench.vocabulary.DEFAULT_MEASUREMENTS`).

Each is a thin adapter from the registry's ``(module, inputs, case, settings)`` to
the measuring function it wraps; the measuring itself lives in its own module.
"""

from __future__ import annotations

from torch import Tensor, nn

from nlbench.case import Case
from nlbench.measure.external_counters import CounterMacs, count_with_public_counters
from nlbench.measure.flops import FlopCount, count_flops
from nlbench.measure.latency import LatencyResult, measure_forward, measure_forward_backward
from nlbench.measure.memory import MemoryResult, measure_memory
from nlbench.measure.params import ParamCount, count_params
from nlbench.measure.registry import CaseSettings, register_measurer
from nlbench.vocabulary import LATENCY_MEASUREMENTS


@register_measurer("params", description="trainable and total parameters, and their bytes")
def params(module: nn.Module, inputs: tuple[Tensor, ...], case: Case, settings: CaseSettings) -> ParamCount:
    return count_params(module)


@register_measurer("flops", description="MACs and FLOPs of one forward, with a per-operator audit")
def flops(module: nn.Module, inputs: tuple[Tensor, ...], case: Case, settings: CaseSettings) -> FlopCount:
    return count_flops(module, inputs)


@register_measurer("counters", description="fvcore's and ptflops' MACs of the same forward")
def counters(module: nn.Module, inputs: tuple[Tensor, ...], case: Case, settings: CaseSettings) -> CounterMacs:
    return count_with_public_counters(module, inputs)


@register_measurer("latency_fwd", description="forward latency: raw samples, median, IQR")
def latency_fwd(module: nn.Module, inputs: tuple[Tensor, ...], case: Case, settings: CaseSettings) -> LatencyResult:
    return measure_forward(module, inputs, settings.sampling, deadline_s=settings.remaining_s(),
                           round_index=settings.round_index)


@register_measurer("latency_fwdbwd", description="forward+backward latency: raw samples, median, IQR")
def latency_fwdbwd(module: nn.Module, inputs: tuple[Tensor, ...], case: Case,
                   settings: CaseSettings) -> LatencyResult:
    return measure_forward_backward(module, inputs, settings.sampling, deadline_s=settings.remaining_s(),
                                    round_index=settings.round_index)


@register_measurer("memory", description="peak extra bytes during forward and forward+backward")
def memory(module: nn.Module, inputs: tuple[Tensor, ...], case: Case, settings: CaseSettings) -> MemoryResult:
    # When both latency passes ran on this module before, its one-off allocations are done.
    order = settings.measure
    warm = all(name in order and order.index(name) < order.index("memory") for name in LATENCY_MEASUREMENTS)
    return measure_memory(module, inputs, backward=True, warm_up=not warm)
