"""The gate's decision: two :class:`~nlbench.gate.model.Side` values in, one
:class:`~nlbench.gate.model.GateResult` out — a pure function.

Per case present on both sides and finished on both:

- **cost tier** — params, MACs and FLOPs are exact counts: any difference is reported
  and is a failure (``cost changed``) unless cost changes are allowed;
- **time tier** — per timed pass, the Hodges-Lehmann ratio candidate/baseline with its
  interval and a one-sided rank test, Holm-corrected over every time comparison of the
  run. *What is replicated*: samples within one sampling round share one instance of
  the block, its memory layout and the machine's state of that moment; measured here,
  rounds of the same code sit at levels up to 1.5× apart while the samples within a
  round agree within a few per cent (docs/gate.md). So when both sides carry rounds the
  replicate is a round's median: for the two sides of one ``nlbench gate --base`` run
  (one ``gate_session``, rounds measured back to back) the rounds are *paired*
  (Wilcoxon signed-rank on the per-round log-ratios), otherwise unpaired (Mann-Whitney
  U on round medians); only sides without rounds (e.g. pytest-benchmark files) are
  judged on raw samples.

Verdicts: a *regression* needs corrected p < α **and** a ratio above 1 + threshold; a
*pass* needs the interval's upper end at or below 1 + threshold — a slowdown beyond the
threshold ruled out; anything between is *inconclusive* (listed, never passed
silently), as is a comparison whose samples are ``contended`` or ``few-samples``
(``noisy`` samples are judged on their replicates, and said to be noisy).

A case of the baseline that the candidate lacks is ``missing``; one that the candidate
failed (OOM, timeout, error) is ``failed``; both fail the gate. A case only the
candidate has is ``new``.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Iterable

from nlbench.gate.model import MEASURED_ON_HOSTS, CaseResult, Comparison, GateResult, Side, Timing
from nlbench.gate.statistics import (
    holm_adjust, one_sided_p_value, paired_p_value, paired_ratio_estimate, ratio_estimate, round_medians,
)
from nlbench.vocabulary import (
    COST_COLUMNS, GATE_COST_ALLOWED, GATE_COST_CHANGED, GATE_COST_SAME, GATE_FAILED, GATE_IMPROVEMENT,
    GATE_INCONCLUSIVE, GATE_MISSING, GATE_NEW, GATE_PASS, GATE_REGRESSION, STATUS_OK, TIER_CASE, TIER_COST, TIER_TIME,
    WARNING_NOISY, GateSettings,
)

TIERS: tuple[str, ...] = (TIER_COST, TIER_TIME)
#: Fewer replicates per side than this cannot be compared at all.
MIN_REPLICATES = 2
#: Rounds needed to judge on rounds rather than on samples.
MIN_PAIRED_ROUNDS = 5
UNIT_PAIRED_ROUNDS = "paired rounds"
UNIT_ROUNDS = "rounds"
UNIT_SAMPLES = "samples"


class NothingComparable(ValueError):
    """The two sides share no case: there is nothing to judge (exit code 2)."""


def machine_warnings(baseline: Side, candidate: Side) -> list[str]:
    """Why the two sides' times may not be comparable: different machines, threads or
    torch, or measurements taken at different times rather than interleaved."""
    found = []
    for side_name, side in (("baseline", baseline), ("candidate", candidate)):
        hosts = side.machine.get(MEASURED_ON_HOSTS)
        if hosts:
            found.append(f"the {side_name}'s cases were timed on {len(hosts)} machines ({', '.join(hosts)}); "
                         "a case's times are comparable only where both sides timed it on the same machine")
    for name, value in baseline.machine.items():
        if name in ("started_at", "gate_session", MEASURED_ON_HOSTS):
            continue
        other = candidate.machine.get(name)
        if value is not None and other is not None and value != other:
            found.append(f"the sides differ in {name}: {value} (baseline) vs {other} (candidate); "
                         "their times are not comparable")
    session = baseline.machine.get("gate_session")
    if session is None or session != candidate.machine.get("gate_session"):
        found.append("the sides were measured at different times, not in interleaved rounds, so drift of the "
                     "machine between them is not cancelled (`nlbench gate --base REF` interleaves)")
    return found


def one_sided_costs(baseline: Side, candidate: Side, keys: Iterable[str]) -> list[str]:
    """A warning per cost column recorded on one side only for shared cases (not compared):
    a baseline from before store schema 2 has no multiply-add ``macs``, say."""
    found = []
    for column in COST_COLUMNS:
        missing = {"baseline": 0, "candidate": 0}
        for key in keys:
            in_base, in_cand = column in baseline.cases[key].costs, column in candidate.cases[key].costs
            if in_base != in_cand:
                missing["candidate" if in_base else "baseline"] += 1
        for side, count in missing.items():
            if count:
                found.append(f"{column} not compared for {count} case(s): not recorded in the {side} "
                             "(a run from an older store schema? re-record it, e.g. with --update-baseline)")
    return found


def _cost(base: CaseResult, cand: CaseResult, allow_change: bool) -> list[Comparison]:
    rows = []
    for column in COST_COLUMNS:
        if column not in base.costs or column not in cand.costs:
            continue
        b, c = base.costs[column], cand.costs[column]
        ratio = c / b if b else (1.0 if c == b else math.inf)
        if b == c:
            verdict, reason = GATE_COST_SAME, ""
        else:
            verdict = GATE_COST_ALLOWED if allow_change else GATE_COST_CHANGED
            reason = f"{column} {b:,.0f} → {c:,.0f} ({ratio - 1:+.2%})" if math.isfinite(ratio) else f"{column} {b:,.0f} → {c:,.0f}"
        rows.append(Comparison(TIER_COST, base.key, base.label, base.block, column, verdict, reason,
                               baseline=b, candidate=c, ratio=ratio))
    return rows


def _replicates(base: Timing, cand: Timing, paired: bool) -> tuple[str, list[float], list[float]]:
    """What the test compares, and as what unit (see the module docstring)."""
    if base.rounds and cand.rounds:
        b, c = round_medians(base.samples_ms, base.rounds), round_medians(cand.samples_ms, cand.rounds)
        common = [r for r in b if r in c]
        if paired and len(common) >= MIN_PAIRED_ROUNDS:
            return UNIT_PAIRED_ROUNDS, [b[r] for r in common], [c[r] for r in common]
        if min(len(b), len(c)) >= MIN_PAIRED_ROUNDS:
            return UNIT_ROUNDS, list(b.values()), list(c.values())
    return UNIT_SAMPLES, list(base.samples_ms), list(cand.samples_ms)


def _time(base: CaseResult, cand: CaseResult, name: str, settings: GateSettings,
          paired: bool) -> tuple[Comparison, float]:
    """One timed pass compared before the multiple-comparison correction, with the raw
    p-value for "faster" (NaN when not timed on both sides)."""
    row = Comparison(TIER_TIME, base.key, base.label, base.block, name, GATE_INCONCLUSIVE)
    b: Timing | None = base.timings.get(name)
    c: Timing | None = cand.timings.get(name)
    if b is None or c is None:
        missing = "candidate" if c is None else "baseline"
        return replace(row, reason=f"not timed in the {missing}", baseline=b.median_ms if b else None,
                       candidate=c.median_ms if c else None), math.nan
    unit, b_values, c_values = _replicates(b, c, paired)
    if unit == UNIT_PAIRED_ROUNDS:
        estimate = paired_ratio_estimate(b_values, c_values, settings.confidence)
        p_slow = paired_p_value(b_values, c_values, slower=True)
        p_fast = paired_p_value(b_values, c_values, slower=False)
    else:
        estimate = ratio_estimate(b_values, c_values, settings.confidence)
        p_slow = one_sided_p_value(b_values, c_values, slower=True)
        p_fast = one_sided_p_value(b_values, c_values, slower=False)
    warnings = tuple(f"{w} ({_sides_with(w, b, c)})" for w in dict.fromkeys([*b.warnings, *c.warnings]))
    row = replace(row, baseline=b.median_ms, candidate=c.median_ms, ratio=estimate.ratio, ci_low=estimate.low,
                  ci_high=estimate.high, p_value=p_slow, n_baseline=len(b_values), n_candidate=len(c_values),
                  unit=unit, warnings=warnings)
    return row, p_fast


def _sides_with(warning: str, base: Timing, cand: Timing) -> str:
    sides = [name for name, timing in (("baseline", base), ("candidate", cand)) if warning in timing.warnings]
    return "both" if len(sides) == 2 else sides[0]


def _decide(measured: list[tuple[Comparison, float]], settings: GateSettings) -> list[Comparison]:
    """Holm-correct the time comparisons' p-values (slower and faster separately) and
    give each its verdict (see the module docstring)."""
    slower = holm_adjust([row.p_value if row.p_value is not None else math.nan for row, _ in measured])
    faster = holm_adjust([p_fast for _, p_fast in measured])
    decided = []
    limit = 1.0 + settings.threshold
    for (row, _), p_slow, p_fast in zip(measured, slower, faster):
        if row.p_value is None:  # not timed on one side: already inconclusive with its reason
            decided.append(row)
            continue
        row = replace(row, p_adjusted=p_slow)
        ratio = row.ratio if row.ratio is not None else math.nan
        high = row.ci_high if row.ci_high is not None else math.nan
        disqualifying = [w for w in row.warnings if not w.startswith(WARNING_NOISY)]
        judged = (f"{row.n_baseline} {row.unit}" if row.n_baseline == row.n_candidate
                  else f"{row.n_baseline}/{row.n_candidate} {row.unit}")
        noisy = ", noisy" if len(disqualifying) < len(row.warnings) else ""
        if disqualifying:
            verdict, reason = GATE_INCONCLUSIVE, f"warned: {', '.join(disqualifying)}"
        elif min(row.n_baseline, row.n_candidate) < MIN_REPLICATES:
            verdict, reason = GATE_INCONCLUSIVE, f"too few replicates ({judged})"
        elif p_slow < settings.alpha and ratio > limit:
            verdict, reason = GATE_REGRESSION, f"{ratio - 1:+.1%} > {settings.threshold:.0%}; {judged}{noisy}"
        elif p_fast < settings.alpha and ratio < 1.0 / limit:
            verdict, reason = GATE_IMPROVEMENT, f"{1 - ratio:.1%} faster; {judged}{noisy}"
        elif high <= limit:
            verdict, reason = GATE_PASS, ""
        else:
            verdict = GATE_INCONCLUSIVE
            reason = (f"interval reaches {high:.3f} > {limit:.2f}: a slowdown beyond {settings.threshold:.0%} "
                      f"not ruled out; {judged}{noisy}" if math.isfinite(high) else f"no interval; {judged}{noisy}")
        decided.append(replace(row, verdict=verdict, reason=reason))
    return decided


def _case_status(base: CaseResult, cand: CaseResult | None) -> Comparison | None:
    """The case-level verdict when the case cannot be compared tier by tier, else None."""
    if cand is None:
        return Comparison(TIER_CASE, base.key, base.label, base.block, "case", GATE_MISSING,
                          "in the baseline, not in the candidate")
    failed_b, failed_c = base.status != STATUS_OK, cand.status != STATUS_OK
    if failed_b and failed_c:
        return Comparison(TIER_CASE, base.key, base.label, base.block, "case", GATE_INCONCLUSIVE,
                          f"failed on both sides ({base.status} / {cand.status})")
    if failed_c:
        return Comparison(TIER_CASE, base.key, base.label, base.block, "case", GATE_FAILED,
                          f"candidate {cand.status}: {cand.error or 'no message'}")
    if failed_b:
        return Comparison(TIER_CASE, base.key, base.label, base.block, "case", GATE_NEW,
                          f"failed in the baseline ({base.status}), finished in the candidate")
    return None


def compare_sides(baseline: Side, candidate: Side, settings: GateSettings = GateSettings(), *,
                  tiers: Iterable[str] = TIERS, allow_cost_change: bool = False, strict: bool = False) -> GateResult:
    """Judge ``candidate`` against ``baseline`` (see the module docstring); raises
    :class:`NothingComparable` when the sides share no case."""
    tiers = tuple(tiers)
    unknown = [t for t in tiers if t not in TIERS]
    if unknown or not tiers:
        raise ValueError(f"tiers must be drawn from {TIERS}, got {tiers}")
    shared = [key for key in baseline.cases if key in candidate.cases]
    if not shared:
        raise NothingComparable(f"{baseline.source} and {candidate.source} have no case in common "
                                f"({len(baseline.cases)} and {len(candidate.cases)} cases)")
    session = baseline.machine.get("gate_session")
    paired = session is not None and session == candidate.machine.get("gate_session")
    case_rows: list[Comparison] = []
    cost_rows: list[Comparison] = []
    time_rows: list[tuple[Comparison, float]] = []
    for key, base in baseline.cases.items():
        cand = candidate.cases.get(key)
        status = _case_status(base, cand)
        if status is not None:
            case_rows.append(status)
            continue
        assert cand is not None
        if TIER_COST in tiers:
            cost_rows += _cost(base, cand, allow_cost_change)
        if TIER_TIME in tiers:
            names = list(dict.fromkeys([*base.timings, *cand.timings]))
            time_rows += [_time(base, cand, name, settings, paired) for name in names]
    for key, cand in candidate.cases.items():
        if key not in baseline.cases:
            case_rows.append(Comparison(TIER_CASE, key, cand.label, cand.block, "case", GATE_NEW,
                                        "only in the candidate"))
    warnings = machine_warnings(baseline, candidate) if TIER_TIME in tiers else []
    if TIER_COST in tiers:
        warnings += one_sided_costs(baseline, candidate, shared)
    return GateResult(settings, baseline.source, candidate.source,
                      tuple(case_rows + cost_rows + _decide(time_rows, settings)), tuple(warnings), strict)
