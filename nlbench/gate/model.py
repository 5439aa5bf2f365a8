"""The values that flow through the gate: what one side measured, and how each case
compared. Frozen and torch-free, so stored runs and pytest-benchmark files become the
same :class:`Side` and the comparison never cares where its numbers came from."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from nlbench.vocabulary import GATE_EXIT_OK, GATE_EXIT_REGRESSION, GATE_FAILING, GATE_INCONCLUSIVE, GateSettings


#: A side's machine fact listing the hosts its cases were timed on, when there were
#: several (a cluster run, ``--executor ray``).
MEASURED_ON_HOSTS = "measured_on_hosts"


@dataclass(frozen=True)
class Timing:
    """One timed pass of one case: raw per-call samples in ms, the sampling round of
    each (empty when unknown), and why they may not be trusted alone (the latency
    warnings, empty when they can)."""

    samples_ms: tuple[float, ...]
    median_ms: float
    warnings: tuple[str, ...] = ()
    rounds: tuple[int, ...] = ()


@dataclass(frozen=True)
class CaseResult:
    """One case on one side. ``key`` matches it across sides (the case id for nlbench's
    own cases, the benchmark's full name for a foreign pytest-benchmark entry)."""

    key: str
    label: str
    block: str
    status: str
    error: str | None = None
    costs: Mapping[str, float] = field(default_factory=dict)
    timings: Mapping[str, Timing] = field(default_factory=dict)


@dataclass(frozen=True)
class Side:
    """One side of a gate comparison: where it came from, the machine facts that make
    two sides comparable, and its cases by key."""

    source: str
    kind: str  # "run" or "pytest-benchmark"
    machine: Mapping[str, Any]
    cases: Mapping[str, CaseResult]


@dataclass(frozen=True)
class Comparison:
    """One case and one quantity (a count or a timed pass) compared across the sides.

    For the time tier ``ratio`` is the Hodges-Lehmann estimate of candidate/baseline
    time with its interval ``ci_low``…``ci_high``, ``p_value`` the one-sided test for
    "slower" and ``p_adjusted`` the same after the correction for the number of
    comparisons, ``unit`` what ``n_baseline``/``n_candidate`` count (see
    :mod:`nlbench.gate.compare`); for the cost tier ``ratio`` is the exact
    candidate/baseline count.
    """

    tier: str
    key: str
    label: str
    block: str
    quantity: str
    verdict: str
    reason: str = ""
    baseline: float | None = None
    candidate: float | None = None
    ratio: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    p_value: float | None = None
    p_adjusted: float | None = None
    n_baseline: int = 0
    n_candidate: int = 0
    unit: str = ""
    warnings: tuple[str, ...] = ()

    @property
    def failing(self) -> bool:
        return self.verdict in GATE_FAILING


@dataclass(frozen=True)
class GateResult:
    """A whole gate run: the settings, the two sources, machine warnings and every comparison."""

    settings: GateSettings
    baseline: str
    candidate: str
    comparisons: tuple[Comparison, ...]
    warnings: tuple[str, ...] = ()
    strict: bool = False

    @property
    def failures(self) -> tuple[Comparison, ...]:
        return tuple(c for c in self.comparisons if c.failing)

    @property
    def inconclusive(self) -> tuple[Comparison, ...]:
        return tuple(c for c in self.comparisons if c.verdict == GATE_INCONCLUSIVE)

    @property
    def exit_code(self) -> int:
        """0 when nothing failed (inconclusive cases fail only when ``strict``), 1 otherwise."""
        if self.failures or (self.strict and self.inconclusive):
            return GATE_EXIT_REGRESSION
        return GATE_EXIT_OK
