"""The built-in measurers, registered in the order a suite lists them by default
(:data:`nlbench.vocabulary.DEFAULT_MEASUREMENTS`); ``profile``, which writes files, comes
after them and runs only when a suite names it.

Each is a thin adapter from the registry's ``(module, inputs, case, settings)`` to
the measuring function it wraps; the measuring itself lives in its own module.
"""

from __future__ import annotations

from pathlib import Path

from torch import Tensor, nn

from nlbench.case import Case
from nlbench.measure.external_counters import CounterMacs, count_with_public_counters
from nlbench.measure.flops import FlopCount, count_flops
from nlbench.measure.latency import LatencyResult, measure_forward, measure_forward_backward
from nlbench.measure.memory import MemoryResult, measure_memory
from nlbench.measure.params import ParamCount, count_params
from nlbench.measure.registry import CaseSettings, register_measurer
from nlbench.profile import PROFILES_DIR, ProfileColumns, profile_module
from nlbench.vocabulary import LATENCY_MEASUREMENTS


@register_measurer("params", description="trainable and total parameters, and their bytes")
def params(module: nn.Module, inputs: tuple[Tensor, ...], case: Case, settings: CaseSettings) -> ParamCount:
    return count_params(module)


@register_measurer("flops", description="MACs and FLOPs of one forward, with a per-operator audit")
def flops(module: nn.Module, inputs: tuple[Tensor, ...], case: Case, settings: CaseSettings) -> FlopCount:
    return count_flops(module, inputs)


@register_measurer("counters", description="fvcore's and ptflops' MACs of the same forward, total and by class")
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


@register_measurer("profile", description="torch.profiler trace, operator and module tables under <run>/profiles/")
def profile(module: nn.Module, inputs: tuple[Tensor, ...], case: Case, settings: CaseSettings) -> ProfileColumns:
    # Not a default measurement: it writes files, and the profiler's overhead is not latency.
    if settings.artifacts_dir is None:
        raise ValueError("the 'profile' measurement writes files under the run directory, and these case "
                         "settings have none (CaseSettings.artifacts_dir is None; the sweep sets it)")
    settings.remaining_s()  # a case already out of time is not profiled
    run_dir = Path(settings.artifacts_dir)
    result = profile_module(module, inputs, case, run_dir / PROFILES_DIR / case.case_id)
    return result.measurement(relative_to=run_dir)
