"""The bench's one vocabulary: metrics, statuses, record kinds, sampling settings and
claimed complexities. Torch-free, so the store, fits, reports, gate and CLI import it
without paying for torch; nothing else in the package defines these concepts.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

# --------------------------------------------------------------------------- statuses

STATUS_OK = "ok"
STATUS_OOM = "oom"
STATUS_TIMEOUT = "timeout"
STATUS_ERROR = "error"
STATUS_SKIPPED = "skipped"
FAILED_STATUSES: tuple[str, ...] = (STATUS_OOM, STATUS_TIMEOUT, STATUS_ERROR, STATUS_SKIPPED)
STATUSES: tuple[str, ...] = (STATUS_OK, *FAILED_STATUSES)

#: How a status reads in prose and plot legends.
STATUS_TEXT: Mapping[str, str] = {
    "ok": "ok", "oom": "out of memory", "timeout": "timed out", "error": "error", "skipped": "skipped (too big)",
}
#: How a failed case reads in a table cell, where a number would stand.
STATUS_CELL: Mapping[str, str] = {"ok": "ok", "oom": "OOM", "timeout": "timeout", "error": "error", "skipped": "skipped"}

# --------------------------------------------------------------------------- record kinds

KIND_SWEEP = "sweep"
KIND_PROBE = "probe"
KIND_RECEPTIVE_FIELD = "receptive_field"
#: A probe's learning-rate trial: one block, one seed, one rate of the config's grid.
KIND_PROBE_LR_TRIAL = "probe_lr_trial"
RECORD_KINDS: tuple[str, ...] = (KIND_SWEEP, KIND_PROBE, KIND_RECEPTIVE_FIELD, KIND_PROBE_LR_TRIAL)

# --------------------------------------------------------------------------- probe outcomes

#: Why a probe run stopped: its validation accuracy plateaued (after one decay of the
#: rate), or it trained its whole budget (the maximum, or the fixed budget).
STOP_PLATEAU = "plateau"
STOP_BUDGET = "budget"
STOP_REASONS: tuple[str, ...] = (STOP_PLATEAU, STOP_BUDGET)

#: A block's verdict on a probe task (see ``nlbench.probes.verdicts``).
VERDICT_LEARNS = "learns"
VERDICT_LEARNS_SLOWLY = "learns slowly"
VERDICT_UNSTABLE = "learns in some seeds"
VERDICT_DOES_NOT_LEARN = "does not learn"
VERDICT_FAILED = "every seed failed"
VERDICTS: tuple[str, ...] = (VERDICT_LEARNS, VERDICT_LEARNS_SLOWLY, VERDICT_UNSTABLE, VERDICT_DOES_NOT_LEARN,
                             VERDICT_FAILED)
#: The block every probe verdict is tested against: local convolutions, no global context.
PROBE_BASELINE_BLOCK = "local"
#: One-sided level of the test "better than the baseline block" (rejected at p ≤ level).
PROBE_SIGNIFICANCE_LEVEL = 0.05

# --------------------------------------------------------------------------- case shape

#: What identifies "the same input" across blocks within one run.
SHAPE_KEYS: tuple[str, ...] = ("channels", "height", "width", "frames", "batch", "device", "dtype")
#: The block every delta table is taken against.
IDENTITY_BLOCK = "identity"

# --------------------------------------------------------------------------- metrics

#: IQR/median above which a latency's median is not trusted alone (the harness convention).
NOISY_IQR_OVER_MEDIAN = 0.10


@dataclass(frozen=True)
class Metric:
    """A cost the bench measures: its name, unit and store columns, how a plot labels
    it, and — for sampled metrics — the columns of its raw samples and spread and the
    noise rule that flags it.

    ``column`` holds the one number that summarises a case (the median of the samples
    for sampled metrics, the exact count otherwise).
    """

    name: str
    unit: str
    column: str
    title: str
    axis_label: str
    samples_column: str | None = None
    iqr_column: str | None = None
    warnings_column: str | None = None
    rounds_column: str | None = None  # the sampling round of each sample

    @property
    def sampled(self) -> bool:
        """Whether the metric is summarised from raw samples (median and IQR)."""
        return self.samples_column is not None

    def is_noisy(self, median: float, iqr: float) -> bool:
        """The noise rule: IQR/median above :data:`NOISY_IQR_OVER_MEDIAN` (sampled metrics only)."""
        return self.sampled and is_noisy(median, iqr)


def iqr_over_median(median: float, iqr: float) -> float:
    """Relative spread; infinite when the median is 0 but the IQR is not, NaN when unknown."""
    if not (math.isfinite(median) and math.isfinite(iqr)):
        return math.nan
    if median > 0:
        return iqr / median
    return math.inf if iqr > 0 else 0.0


def is_noisy(median: float, iqr: float) -> bool:
    """True when IQR/median exceeds :data:`NOISY_IQR_OVER_MEDIAN`."""
    ratio = iqr_over_median(median, iqr)
    return not math.isnan(ratio) and ratio > NOISY_IQR_OVER_MEDIAN


#: A sample whose main thread spent more than this share of its wall time off the
#: CPU did not get the CPU it asked for.
STARVED_OFF_CPU = 0.10
#: A latency is ``contended`` when more than this share of its samples were starved.
CONTENDED_SAMPLE_SHARE = 0.25
#: Fewer samples than this is ``few-samples``: too few for a rank test to mean much.
FEW_SAMPLES = 10

WARNING_NOISY = "noisy"
WARNING_CONTENDED = "contended"
WARNING_FEW_SAMPLES = "few-samples"
LATENCY_WARNINGS: tuple[str, ...] = (WARNING_NOISY, WARNING_CONTENDED, WARNING_FEW_SAMPLES)


def latency_warnings(median: float, iqr: float, *, n_samples: int | None = None,
                     starved_share: float | None = None) -> list[str]:
    """Why a latency's median cannot be trusted alone (empty when it can): short words
    from :data:`LATENCY_WARNINGS`. ``n_samples`` and ``starved_share`` are judged only
    when known (older records lack them)."""
    found = []
    if is_noisy(median, iqr):
        found.append(WARNING_NOISY)
    if starved_share is not None and starved_share > CONTENDED_SAMPLE_SHARE:
        found.append(WARNING_CONTENDED)
    if n_samples is not None and n_samples < FEW_SAMPLES:
        found.append(WARNING_FEW_SAMPLES)
    return found


#: The timed passes: forward, and forward + sum loss + backward (metric ``latency_<pass>_ms``).
LATENCY_PASSES: tuple[str, ...] = ("fwd", "fwdbwd")


def _latency(direction: str, label: str) -> Metric:
    return Metric(
        name=f"latency_{direction}_ms", unit="ms", column=f"latency_{direction}_ms_median",
        title=f"{label} latency", axis_label=f"{label} latency, median [ms] (bars: IQR)",
        samples_column=f"latency_{direction}_ms_samples", iqr_column=f"latency_{direction}_ms_iqr",
        warnings_column=f"latency_{direction}_warnings", rounds_column=f"latency_{direction}_round_samples",
    )


METRICS: tuple[Metric, ...] = (
    Metric("macs", "MACs", "macs", "MACs", "MACs (multiply-adds of convolutions, matrix products, FFTs)"),
    _latency("fwd", "forward"),
    _latency("fwdbwd", "forward+backward"),
    Metric("peak_mem_fwd_bytes", "bytes", "peak_mem_fwd_bytes", "peak memory, forward",
           "peak memory, forward [bytes]"),
    Metric("peak_mem_fwdbwd_bytes", "bytes", "peak_mem_fwdbwd_bytes", "peak memory, forward+backward",
           "peak memory, forward+backward [bytes]"),
)
METRIC_NAMES: tuple[str, ...] = tuple(m.name for m in METRICS)
LATENCY_METRICS: tuple[str, ...] = tuple(m.name for m in METRICS if m.sampled)
_METRICS_BY_NAME: Mapping[str, Metric] = {m.name: m for m in METRICS}


def metric(name: str) -> Metric:
    """The metric called ``name``; an unknown name suggests close ones."""
    if name not in _METRICS_BY_NAME:
        raise ValueError(f"unknown metric {name!r}.{did_you_mean(name, METRIC_NAMES)} "
                         f"Known metrics: {', '.join(METRIC_NAMES)}.")
    return _METRICS_BY_NAME[name]


# --------------------------------------------------------------------------- cost attribution

#: The operator classes MACs and FLOPs are attributed to, in the order reports stack them.
OP_CLASSES: tuple[str, ...] = ("conv", "matmul", "fft", "softmax", "elementwise", "norm", "other")
#: The classes whose operators are multiply-accumulates; every other class counts in FLOPs only.
MAC_OP_CLASSES: tuple[str, ...] = ("conv", "matmul", "fft")
OP_CLASS_TEXT: Mapping[str, str] = {
    "conv": "convolutions",
    "matmul": "matrix products and dense linear algebra (mm, bmm, addmm, einsum, matmul, QR)",
    "fft": "FFTs",
    "softmax": "softmax and log-softmax",
    "elementwise": "elementwise arithmetic and activations",
    "norm": "normalisation layers",
    "other": "reductions, pooling, interpolation, dropout",
}
#: The block option that selects an exact implementation, and the default one's name.
IMPL_OPTION = "impl"
IMPL_DENSE = "dense"
#: The MACs convention every ``macs`` column follows (store schema 2 on).
MACS_CONVENTION = (
    "macs counts multiply-accumulates only: convolutions, matrix products (mm, bmm, addmm, "
    "matmul, einsum) and FFT butterflies; softmax, elementwise ops, norms, pooling and bias "
    "additions count in flops only, so flops = 2·macs + the other floating-point operations"
)
#: How the module an operator ran in directly (not in a submodule) is named: the block itself.
ROOT_MODULE = ""
ROOT_MODULE_TEXT = "(block itself)"


def class_cost_column(quantity: str, op_class: str) -> str:
    """The flat column of one class's cost in a loaded frame: ``macs_conv``, ``flops_softmax`` …"""
    if quantity not in ("macs", "flops") or op_class not in OP_CLASSES:
        raise ValueError(f"no class cost column for {quantity!r}, {op_class!r}")
    return f"{quantity}_{op_class}"


#: The flat per-class columns ``load`` derives from each case's attribution.
CLASS_COST_COLUMNS: tuple[str, ...] = (
    *(class_cost_column("macs", c) for c in MAC_OP_CLASSES),
    *(class_cost_column("flops", c) for c in OP_CLASSES),
)

#: The built-in measurements, in the order a suite runs them by default (the measurer
#: registry registers them in this order; a plugin may add more).
DEFAULT_MEASUREMENTS: tuple[str, ...] = ("params", "flops", "counters", "latency_fwd", "latency_fwdbwd", "memory")
#: The measurements that time a pass (later sampling rounds and contention retries repeat them).
LATENCY_MEASUREMENTS: tuple[str, ...] = ("latency_fwd", "latency_fwdbwd")

#: Store columns that hold numbers (load makes them numeric; null where not measured).
NUMERIC_COLUMNS: tuple[str, ...] = (
    "params", "params_total", "param_bytes", "buffer_bytes", "macs", "flops", "fvcore_macs", "ptflops_macs",
    "latency_fwd_ms_median", "latency_fwd_ms_iqr", "latency_fwdbwd_ms_median", "latency_fwdbwd_ms_iqr",
    "peak_mem_fwd_bytes", "peak_mem_fwdbwd_bytes", "latency_threads", "threads", "duration_s",
    "estimated_peak_bytes", "claimed_n_exponent", "claimed_c_exponent", "claimed_n_log_power",
    "accuracy", "steps", "seed", "steps_per_s", "wall_s",
    "latency_fwd_calls_per_sample", "latency_fwd_warmup_calls", "latency_fwdbwd_calls_per_sample",
    "latency_fwdbwd_warmup_calls", "latency_attempts", "calibrated_matmul_gflops",
    *CLASS_COST_COLUMNS,
)
#: Integer columns of a case's shape (nullable: ``frames`` is null for images).
SHAPE_INT_COLUMNS: tuple[str, ...] = ("channels", "height", "width", "frames", "batch")

# --------------------------------------------------------------------------- fits

AXES: tuple[str, ...] = ("N", "C")
AXIS_LABELS: Mapping[str, str] = {"N": "N = H·W (·T) positions", "C": "C channels"}
VERDICTS: tuple[str, ...] = ("holds", "does not hold", "inconclusive")


def check_axis(axis: str) -> None:
    """Raise a ValueError unless ``axis`` is one of :data:`AXES`."""
    if axis not in AXES:
        raise ValueError(f"axis must be one of {AXES}, got {axis!r}")


@dataclass(frozen=True)
class ClaimedComplexity:
    """A claimed time complexity, as text and as exponents the fits can test.

    The cost is claimed to grow as ``N**n_exponent * log(N)**n_log_power`` in the
    number of positions N = H·W (H proportional to W) at fixed C, and as
    ``C**c_exponent`` in the channel count at fixed N.
    """

    text: str
    n_exponent: float
    c_exponent: float
    n_log_power: int = 0

    def n_growth(self, n: float) -> float:
        """The claimed cost at ``n`` positions, up to a constant."""
        return n**self.n_exponent * math.log(n) ** self.n_log_power

    @property
    def dense_affinity(self) -> bool:
        """Whether the claim is quadratic (or worse) in N: a dense N×N affinity."""
        return self.n_exponent >= 2

    def effective_exponent(self, axis: str, x_max: float) -> float:
        """The local log-log exponent the claim predicts at ``x_max``.

        Axis N: ``a + b/ln(x_max)`` (the slope of N^a·log^b N at x_max); axis C: ``c``.
        """
        check_axis(axis)
        if axis == "C":
            return float(self.c_exponent)
        if self.n_log_power == 0:
            return float(self.n_exponent)
        if not x_max > 1.0:
            return math.nan
        return float(self.n_exponent + self.n_log_power / math.log(x_max))


# --------------------------------------------------------------------------- sampling


class SettingsError(ValueError):
    """A sampling or limits setting out of its range; ``field`` names it."""

    def __init__(self, field: str, expected: str, got: Any) -> None:
        super().__init__(f"{field}: expected {expected}, got {got!r}")
        self.field, self.expected, self.got = field, expected, got


def _check_int(owner: str, name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise SettingsError(f"{owner}.{name}", f"an integer ≥ {minimum}", value)


def _check_number(owner: str, name: str, value: Any, minimum: float) -> None:
    if (isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)
            or value < minimum):
        raise SettingsError(f"{owner}.{name}", f"a finite number ≥ {minimum:g}", value)


@dataclass(frozen=True)
class SamplingSettings:
    """How latency is sampled — the one set of defaults, used unchanged from the suite
    file (``[latency]``) to the timing loop.

    Warm-up: at least ``warmup`` untimed calls, continued until the timings are stable
    (the median of the last three calls within 10 % of the three before) or
    ``max_warmup_s`` has passed. Then timed samples until at least ``min_samples`` were
    taken and ``min_run_time_s`` of wall time spent sampling, or ``max_samples`` were
    taken. A sample is a block of calls lasting at least ``block_ms`` (one call when a
    call is that long; 0 = always one call); the default, 4 ms, is one period of this
    machine's 250 Hz scheduler tick: with it 97–100 % of the `resolution` grid's
    forward cases kept IQR/median ≤ 10 %, against 79–88 % with 0.1 ms blocks and
    73–85 % with 1 ms (docs/latency-noise.md). ``threads`` fixes
    ``torch.set_num_threads`` (None leaves the process's count; the count used is
    recorded either way); the default is 1 because on a small shared machine one
    busy neighbour moved 2-thread medians up to 2.3× and 1-thread medians ≤ 16 %, and
    the contention check is exact for one thread (docs/latency-noise.md). ``rounds`` > 1 samples each case in that many rounds
    interleaved with the other cases, each round in a fresh worker process when the
    local executor isolates its cases (in-process runs cannot; a case's speed differs
    from one process to the next by more than within one); ``retries`` re-measures a contended case that
    many times, later in the sweep. ``retain_freed_memory`` makes the measuring worker
    keep freed memory in its heap (glibc tunables: no ``mmap``, no trimming), so a call
    reuses pages instead of faulting fresh ones in — the steady state a caching
    allocator gives (CUDA's, or the jemalloc/tcmalloc PyTorch's CPU tuning guide
    recommends); ``huge_pages`` backs that heap with transparent huge pages, which on a
    VM cut the cost of growing it (a fresh worker's first nl 128×128 forward+backward
    round: 34 s with 4 KiB pages, 16–18 s with huge ones) and the TLB misses over big
    buffers (nl 128×128 forward 1.81 s against 2.2 s); in-process runs
    (``--in-process``) cannot apply either.
    """

    warmup: int = 2
    min_run_time_s: float = 0.2
    min_samples: int = 5
    max_samples: int = 100
    threads: int | None = 1
    block_ms: float = 4.0
    max_warmup_s: float = 0.5
    rounds: int = 1
    retries: int = 2
    retain_freed_memory: bool = True
    huge_pages: bool = True

    def __post_init__(self) -> None:
        owner = "latency"
        for name in ("retain_freed_memory", "huge_pages"):
            if not isinstance(getattr(self, name), bool):
                raise SettingsError(f"{owner}.{name}", "true or false", getattr(self, name))
        _check_int(owner, "warmup", self.warmup, 0)
        _check_number(owner, "min_run_time_s", self.min_run_time_s, 0.0)
        _check_int(owner, "min_samples", self.min_samples, 1)
        _check_int(owner, "max_samples", self.max_samples, 1)
        if self.max_samples < self.min_samples:
            raise SettingsError(f"{owner}.max_samples", f"at least {owner}.min_samples ({self.min_samples})",
                                self.max_samples)
        if self.threads is not None:
            _check_int(owner, "threads", self.threads, 1)
        _check_number(owner, "block_ms", self.block_ms, 0.0)
        _check_number(owner, "max_warmup_s", self.max_warmup_s, 0.0)
        _check_int(owner, "rounds", self.rounds, 1)
        _check_int(owner, "retries", self.retries, 0)
        for name in ("min_run_time_s", "block_ms", "max_warmup_s"):
            object.__setattr__(self, name, float(getattr(self, name)))


@dataclass(frozen=True)
class Limits:
    """Guards that keep one case from taking the sweep down."""

    case_timeout_s: float = 300.0
    max_memory_gib: float = 12.0

    def __post_init__(self) -> None:
        _check_number("limits", "case_timeout_s", self.case_timeout_s, 1.0)
        _check_number("limits", "max_memory_gib", self.max_memory_gib, 0.01)
        object.__setattr__(self, "case_timeout_s", float(self.case_timeout_s))
        object.__setattr__(self, "max_memory_gib", float(self.max_memory_gib))


# --------------------------------------------------------------------------- the gate

#: The two tiers of the gate — exact counts, and sampled time — and the verdicts on a
#: whole case (missing, failed, new) that come before either.
TIER_COST = "cost"
TIER_TIME = "time"
TIER_CASE = "case"
#: The counts the cost tier compares exactly (store columns).
COST_COLUMNS: tuple[str, ...] = ("params", "macs", "flops")
#: The measurements the cost tier needs (``--cost-only`` measures just these).
COST_MEASUREMENTS: tuple[str, ...] = ("params", "flops")

GATE_PASS = "pass"                  # no significant change beyond the threshold
GATE_IMPROVEMENT = "improvement"    # significantly faster beyond the threshold
GATE_REGRESSION = "regression"      # significantly slower beyond the threshold
GATE_INCONCLUSIVE = "inconclusive"  # warned samples, too few samples, or failed on both sides
GATE_COST_SAME = "same"
GATE_COST_CHANGED = "cost changed"
GATE_COST_ALLOWED = "cost changed (allowed)"
GATE_MISSING = "missing"            # in the baseline, not in the candidate
GATE_FAILED = "failed"              # finished in the baseline, failed in the candidate
GATE_NEW = "new"                    # only in the candidate (nothing to compare)
#: Verdicts that fail the gate (exit code 1).
GATE_FAILING: tuple[str, ...] = (GATE_REGRESSION, GATE_COST_CHANGED, GATE_MISSING, GATE_FAILED)
GATE_VERDICTS: tuple[str, ...] = (GATE_REGRESSION, GATE_COST_CHANGED, GATE_MISSING, GATE_FAILED, GATE_INCONCLUSIVE,
                                  GATE_COST_ALLOWED, GATE_IMPROVEMENT, GATE_NEW, GATE_PASS, GATE_COST_SAME)
#: Exit codes of ``nlbench gate``.
GATE_EXIT_OK, GATE_EXIT_REGRESSION, GATE_EXIT_BAD_INPUT = 0, 1, 2


@dataclass(frozen=True)
class GateSettings:
    """How the time tier decides — a suite's ``[gate]`` table, overridable per command.

    A time comparison is a regression only when the candidate is slower *significantly*
    — a one-sided Mann-Whitney U test on the raw samples, Holm-corrected over every
    time comparison of the gate run, below ``alpha`` (family-wise) — *and* by more than
    ``threshold`` (the Hodges-Lehmann ratio of the candidate's to the baseline's times
    above 1 + threshold). ``confidence`` is the level of each ratio's interval. The
    default α = 0.01 keeps the family-wise false alarms of A/A runs at ≤ 1 % when the
    samples behave; the threshold guards against the ones that do not.
    """

    threshold: float = 0.10
    alpha: float = 0.01
    confidence: float = 0.95

    def __post_init__(self) -> None:
        _check_number("gate", "threshold", self.threshold, 0.0)
        for name in ("alpha", "confidence"):
            value = getattr(self, name)
            _check_number("gate", name, value, 0.0)
            if not 0.0 < value < 1.0:
                raise SettingsError(f"gate.{name}", "a number strictly between 0 and 1", value)
        for name in ("threshold", "alpha", "confidence"):
            object.__setattr__(self, name, float(getattr(self, name)))


# --------------------------------------------------------------------------- names


def did_you_mean(name: str, known: Iterable[str], *, n: int = 3) -> str:
    """" Did you mean 'a', 'b'?" for the known names close to ``name`` ("" when none)."""
    close = difflib.get_close_matches(name, list(known), n=n, cutoff=0.5)
    return f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
