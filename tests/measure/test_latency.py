"""Latency measurers: one call per sample, warm-up discarded, stopping rule, summary
statistics from the raw samples, thread count and module state restored, deadline.
No assertion is made on absolute speed (the machine is shared)."""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from nlbench.vocabulary import SamplingSettings
from nlbench.measure.latency import (
    LatencyResult,
    MeasurementTimeout,
    measure_forward,
    measure_forward_backward,
)

# One call per sample and a fixed warm-up, so call counts are exact.
SINGLE = {"block_ms": 0.0, "max_warmup_s": 0.0}
FAST = SamplingSettings(warmup=2, min_run_time_s=0.0, min_samples=4, max_samples=50, **SINGLE)


class Recorder(nn.Module):
    """Counts forward calls and records, per call, the mode, the thread count and
    whether the weight's gradient had been cleared."""

    def __init__(self, sleep_s: float = 0.0) -> None:
        super().__init__()
        self.linear = nn.Linear(4, 4)
        self.sleep_s = sleep_s
        self.calls = 0
        self.modes: list[bool] = []
        self.threads: list[int] = []
        self.grad_was_none: list[bool] = []

    def forward(self, x: Tensor) -> Tensor:
        self.calls += 1
        self.modes.append(self.training)
        self.threads.append(torch.get_num_threads())
        self.grad_was_none.append(self.linear.weight.grad is None)
        if self.sleep_s:
            time.sleep(self.sleep_s)
        return self.linear(x)


@pytest.fixture
def x() -> Tensor:
    return torch.randn(3, 4)


@pytest.mark.parametrize("measure", [measure_forward, measure_forward_backward])
def test_warmup_is_discarded_and_each_sample_is_one_call(measure, x: Tensor) -> None:
    module = Recorder()
    result = measure(module, (x,), FAST)
    assert result.n_samples == len(result.samples_ms) == FAST.min_samples  # min_run_time_s=0
    assert module.calls == FAST.warmup + result.n_samples
    assert result.device == "cpu"
    assert all(s >= 0 for s in result.samples_ms)


def test_max_samples_caps_the_sampling(x: Tensor) -> None:
    module = Recorder()
    settings = SamplingSettings(warmup=1, min_run_time_s=60.0, min_samples=2, max_samples=7, **SINGLE)
    result = measure_forward(module, (x,), settings)
    assert result.n_samples == 7
    assert module.calls == 8


def test_sampling_continues_until_min_run_time(x: Tensor) -> None:
    module = Recorder(sleep_s=0.002)
    settings = SamplingSettings(warmup=0, min_run_time_s=0.1, min_samples=1, max_samples=10_000, **SINGLE)
    started = time.perf_counter()
    result = measure_forward(module, (x,), settings)
    elapsed = time.perf_counter() - started
    assert elapsed >= 0.1
    assert result.n_samples > 1  # one 2 ms call cannot have filled 0.1 s
    assert module.calls == result.n_samples
    assert min(result.samples_ms) >= 2.0  # each sample covers the whole call (sleep included)


def test_quartiles_interpolate_between_order_statistics() -> None:
    """Hand-computed: sorted 1, 2, 4, 8, 16, 32 (n = 6). Quartile p sits at rank
    p·(n − 1): q25 at 1.25 → 2 + 0.25·(4 − 2) = 2.5; median at 2.5 → (4 + 8)/2 = 6;
    q75 at 3.75 → 8 + 0.75·(16 − 8) = 14."""
    result = LatencyResult(samples_ms=(32.0, 1.0, 8.0, 2.0, 16.0, 4.0), threads=1, device="cpu")
    assert result.q25_ms == pytest.approx(2.5)
    assert result.median_ms == pytest.approx(6.0)
    assert result.q75_ms == pytest.approx(14.0)
    assert result.iqr_ms == pytest.approx(11.5)
    assert result.iqr_over_median == pytest.approx(11.5 / 6.0)
    assert result.warnings and "noisy" in result.warnings[0]
    columns = LatencyResult(samples_ms=(1.0,) * 12, threads=2, device="cpu", pass_name="fwdbwd").columns()
    assert {k: columns[k] for k in ("latency_fwdbwd_ms_samples", "latency_fwdbwd_ms_median", "latency_fwdbwd_ms_iqr",
                                    "latency_fwdbwd_warnings", "latency_threads")} == {
        "latency_fwdbwd_ms_samples": [1.0] * 12, "latency_fwdbwd_ms_median": 1.0,
        "latency_fwdbwd_ms_iqr": 0.0, "latency_fwdbwd_warnings": [], "latency_threads": 2}
    assert LatencyResult(samples_ms=(1.0,) * 9, threads=1, device="cpu").warnings == ("few-samples",)


def test_summary_statistics_on_known_samples() -> None:
    result = LatencyResult(samples_ms=(4.0, 1.0, 3.0, 2.0, 100.0), threads=1, device="cpu")
    assert result.median_ms == 3.0
    assert result.iqr_ms == pytest.approx(4.0 - 2.0)
    assert result.iqr_over_median == pytest.approx(2.0 / 3.0)
    assert result.noisy
    steady = LatencyResult(samples_ms=[10.0, 10.1, 10.2, 9.9, 10.0], threads=2, device="cpu")
    assert steady.samples_ms == (10.0, 10.1, 10.2, 9.9, 10.0)  # lists are stored as tuples
    assert not steady.noisy


@pytest.mark.parametrize("measure", [measure_forward, measure_forward_backward])
def test_threads_are_fixed_recorded_and_restored(measure, x: Tensor) -> None:
    before = torch.get_num_threads()
    target = 1 if before != 1 else 2
    module = Recorder()
    result = measure(module, (x,), SamplingSettings(warmup=1, min_run_time_s=0.0, min_samples=3, threads=target, **SINGLE))
    assert result.threads == target
    assert set(module.threads) == {target}
    assert torch.get_num_threads() == before
    untouched = measure(Recorder(), (x,), replace(FAST, threads=None))
    assert untouched.threads == before, "threads=None leaves the process's count"


def test_forward_runs_in_eval_without_grad_and_restores_mode(x: Tensor) -> None:
    class GradProbe(Recorder):
        def forward(self, x: Tensor) -> Tensor:
            assert not torch.is_grad_enabled()
            return super().forward(x)

    module = GradProbe().train()
    module.linear.eval()  # mixed modes must come back exactly
    measure_forward(module, (x,), FAST)
    assert set(module.modes) == {False}
    assert module.training and not module.linear.training


def test_forward_backward_trains_clears_grads_and_restores_state(x: Tensor) -> None:
    module = nn.Sequential(Recorder(), nn.BatchNorm1d(4)).eval()
    recorder, bn = module[0], module[1]
    stats_before = (bn.running_mean.clone(), bn.running_var.clone(), bn.num_batches_tracked.clone())
    old_grad = torch.full_like(recorder.linear.weight, 7.0)
    recorder.linear.weight.grad = old_grad
    result = measure_forward_backward(module, (x,), FAST)
    assert result.n_samples == FAST.min_samples
    assert set(recorder.modes) == {True}  # measured in train mode
    assert all(recorder.grad_was_none)  # grads set to None before every call
    assert not module.training and not bn.training
    assert recorder.linear.weight.grad is old_grad
    assert recorder.linear.bias.grad is None
    assert torch.equal(bn.running_mean, stats_before[0])
    assert torch.equal(bn.running_var, stats_before[1])
    assert torch.equal(bn.num_batches_tracked, stats_before[2])


def test_forward_backward_on_parameterless_module_leaves_caller_input_alone(x: Tensor) -> None:
    result = measure_forward_backward(nn.Identity(), (x,), FAST)
    assert result.n_samples == FAST.min_samples
    assert not x.requires_grad and x.grad is None


def test_forward_backward_without_anything_to_differentiate_is_rejected() -> None:
    class Detached(nn.Module):
        def forward(self, x: Tensor) -> Tensor:
            return x.detach() * 2

    with pytest.raises(ValueError, match="does not require grad"):
        measure_forward_backward(Detached(), (torch.randn(2, 4),), FAST)
    with pytest.raises(ValueError, match="nothing to differentiate"):
        measure_forward_backward(nn.Identity(), (torch.arange(4),), FAST)


@pytest.mark.parametrize("measure", [measure_forward, measure_forward_backward])
def test_deadline_raises_measurement_timeout(measure, x: Tensor) -> None:
    module = Recorder(sleep_s=0.02)
    settings = SamplingSettings(warmup=0, min_run_time_s=30.0, min_samples=1, max_samples=1000, **SINGLE)
    started = time.perf_counter()
    with pytest.raises(MeasurementTimeout) as info:
        measure(module, (x,), settings, deadline_s=0.05)
    assert time.perf_counter() - started < 5.0  # stopped early, not after 30 s
    assert isinstance(info.value, TimeoutError)
    assert "deadline" in str(info.value)
    assert info.value.elapsed_s > info.value.deadline_s == 0.05
    assert 1 <= info.value.samples_taken < 1000
    assert torch.get_num_threads() >= 1 and module.training  # state restored on the way out


def test_deadline_applies_during_warmup(x: Tensor) -> None:
    module = Recorder(sleep_s=0.02)
    with pytest.raises(MeasurementTimeout) as info:
        measure_forward(module, (x,), SamplingSettings(warmup=1000), deadline_s=0.05)
    assert info.value.samples_taken == 0
    assert module.calls < 1000
    assert str(MeasurementTimeout("case time limit reached")) == "case time limit reached"


def test_bad_settings_and_inputs_are_rejected(x: Tensor) -> None:
    with pytest.raises(ValueError, match="max_samples"):
        SamplingSettings(min_samples=10, max_samples=5)
    with pytest.raises(ValueError, match="warmup"):
        SamplingSettings(warmup=-1)
    with pytest.raises(ValueError, match="threads"):
        SamplingSettings(threads=0)
    with pytest.raises(ValueError, match="min_run_time_s"):
        SamplingSettings(min_run_time_s=float("nan"))
    with pytest.raises(ValueError, match="at least one sample"):
        LatencyResult(samples_ms=(), threads=1, device="cpu")
    with pytest.raises(TypeError, match="inputs\\[1\\]"):
        measure_forward(Recorder(), (x, 3), FAST)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="deadline_s"):
        measure_forward(Recorder(), (x,), FAST, deadline_s=0)
    with pytest.raises(TypeError, match="nn.Module"):
        measure_forward(lambda t: t, (x,), FAST)  # type: ignore[arg-type]


def test_starved_samples_make_a_latency_contended() -> None:
    """Hand-made: 12 samples of 10 ms wall; the main thread ran 10 ms in 8 of them and
    only 5 ms in 4 (50 % off the CPU > 10 %): 4/12 = 33 % of samples starved > 25 %."""
    cpu = (10.0,) * 8 + (5.0,) * 4
    result = LatencyResult(samples_ms=(10.0,) * 12, threads=1, device="cpu", cpu_ms=cpu)
    assert result.starved_share == pytest.approx(4 / 12)
    assert result.contended and result.warnings == ("contended",)
    calm = LatencyResult(samples_ms=(10.0,) * 12, threads=1, device="cpu", cpu_ms=(10.0,) * 10 + (5.0,) * 2)
    assert not calm.contended and calm.warnings == ()


def test_short_calls_are_blocked_and_warmup_runs_until_stable(x: Tensor) -> None:
    module = Recorder()
    settings = SamplingSettings(warmup=1, max_warmup_s=5.0, block_ms=2.0, min_run_time_s=0.0, min_samples=3)
    result = measure_forward(module, (x,), settings)
    assert result.calls_per_sample > 1, "a call of microseconds is blocked to reach block_ms"
    assert result.warmup_calls >= 6, "stability needs two windows of three calls"
    assert module.calls == result.warmup_calls + result.n_samples * result.calls_per_sample
    assert result.cpu_ms is not None and len(result.cpu_ms) == result.n_samples
    assert result.rounds == (0,) * result.n_samples
    slow = Recorder(sleep_s=0.003)
    blocked = measure_forward(slow, (x,), SamplingSettings(warmup=1, block_ms=1.0, max_warmup_s=0.0, min_run_time_s=0.0, min_samples=3))
    assert blocked.calls_per_sample == 1, "a call longer than block_ms is timed alone"
    assert max(blocked.off_cpu) > 0.5, "sleeping is time off the CPU"


def test_warm_up_goes_on_while_calls_still_fault_fresh_memory_in() -> None:
    """A call whose first runs grow the heap (fresh pages, faulted in) is not warm: those
    runs are warm-up, not samples — bounded by MAX_FAULTING_WARMUP_CALLS."""
    from nlbench.measure.latency import MAX_FAULTING_WARMUP_CALLS, PAGE_BYTES, STEADY_GROWTH_BYTES_PER_CALL

    steady_faults = STEADY_GROWTH_BYTES_PER_CALL / PAGE_BYTES

    kept: list[torch.Tensor] = []

    class Growing(nn.Module):
        def __init__(self, growing_calls: int) -> None:
            super().__init__()
            self.growing_calls = growing_calls

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if len(kept) < self.growing_calls:  # 64 MiB of fresh pages, kept alive: faulted in now
                kept.append(torch.ones(16 * 2**20))
            return x + 1

    settings = SamplingSettings(warmup=1, min_samples=3, max_samples=3, min_run_time_s=0.0, **SINGLE)
    result = measure_forward(Growing(3), torch.ones(4), settings)
    assert result.warmup_calls == 4, "one warm-up call, then as long as calls fault (2 more), then one steady"
    assert max(result.minor_faults) <= steady_faults, "no sample pays for growing the heap"
    kept.clear()
    bounded = measure_forward(Growing(100), torch.ones(4), settings)
    assert bounded.warmup_calls == 1 + MAX_FAULTING_WARMUP_CALLS, "a call that always faults is not waited on for ever"
    kept.clear()


def test_growth_is_judged_by_resident_memory_not_fault_counts() -> None:
    """A huge-page fault brings 2 MiB in; an allocator that maps and unmaps a block on
    every call faults every time and never grows. Resident growth tells both apart;
    where it is unknown, faults × page size stand in."""
    from nlbench.measure.latency import PAGE_BYTES, _Block, resident_bytes, still_growing

    assert resident_bytes() > 0
    huge = _Block(wall_ns=1, cpu_ns=1, minor_faults=2, involuntary_switches=0, resident_growth_bytes=4 * 2**20)
    remapping = _Block(wall_ns=1, cpu_ns=1, minor_faults=16_384, involuntary_switches=0, resident_growth_bytes=0)
    unknown = _Block(wall_ns=1, cpu_ns=1, minor_faults=16_384, involuntary_switches=0, resident_growth_bytes=None)
    assert still_growing(huge, calls=1) and not still_growing(huge, calls=8), "per call"
    assert not still_growing(remapping, calls=1)
    assert still_growing(unknown, calls=1) == (16_384 * PAGE_BYTES > 2**20)


def test_a_call_that_faults_the_same_pages_in_every_time_is_steady() -> None:
    """glibc's default malloc maps a 64 MiB block and unmaps it on free, so every call
    faults it in afresh: that is the steady state of that allocator, measured as such
    (warm-up does not wait on it)."""
    from nlbench.measure.latency import PAGE_BYTES, STEADY_GROWTH_BYTES_PER_CALL

    class Remapping(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x + torch.ones(16 * 2**20).sum()  # 64 MiB, above glibc's largest mmap threshold

    settings = SamplingSettings(warmup=1, min_samples=3, max_samples=3, min_run_time_s=0.0, **SINGLE)
    result = measure_forward(Remapping(), torch.ones(4), settings)
    if min(result.minor_faults) * PAGE_BYTES <= STEADY_GROWTH_BYTES_PER_CALL:
        pytest.skip("this process's allocator keeps the block (GLIBC_TUNABLES or another malloc)")
    assert result.n_samples == 3 and result.warmup_calls <= 2, \
        "the first call may grow the process (kernels, caches); the ones that fault the same block in are samples"


def test_a_timed_call_that_faults_fresh_memory_in_is_warm_up_not_a_sample() -> None:
    """A steady first call does not prove the heap is steady (a sweep worker's heap is
    shaped by earlier cases): later calls that fault fresh pages in are warm-up too,
    from the same bounded budget, and are not kept as samples."""
    from nlbench.measure.latency import MAX_FAULTING_WARMUP_CALLS, PAGE_BYTES, STEADY_GROWTH_BYTES_PER_CALL

    steady_faults = STEADY_GROWTH_BYTES_PER_CALL / PAGE_BYTES

    kept: list[torch.Tensor] = []

    class GrowsOnCalls(nn.Module):
        def __init__(self, growing: set[int]) -> None:
            super().__init__()
            self.growing, self.calls = growing, 0

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if self.calls in self.growing:  # 64 MiB of fresh pages, kept alive: faulted in now
                kept.append(torch.ones(16 * 2**20))
            self.calls += 1
            return x + 1

    settings = SamplingSettings(warmup=1, min_samples=3, max_samples=3, min_run_time_s=0.0, **SINGLE)
    result = measure_forward(GrowsOnCalls({1, 3}), torch.ones(4), settings)
    assert result.n_samples == 3 and max(result.minor_faults) <= steady_faults
    assert result.warmup_calls == 3, "the warm-up call and the two faulting timed calls"
    kept.clear()
    always = measure_forward(GrowsOnCalls(set(range(1, 100))), torch.ones(4), settings)
    assert always.warmup_calls == 1 + MAX_FAULTING_WARMUP_CALLS, "the budget is shared and bounded"
    assert always.n_samples == 3 and min(always.minor_faults) > steady_faults, "then faulting calls are kept"
    kept.clear()
