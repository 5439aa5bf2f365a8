"""The report's sentences: the summary findings a reader should take away, computed from
the stored results and the fits. Pure: frames in, markdown-flavoured text out (``**``
marks a block name; the renderers escape everything else)."""

from __future__ import annotations

import math
from typing import Any, Mapping

import pandas as pd

from nlbench.report.formatting import (
    as_float, block_label, case_text, interval, metric_label, num, percent, pick_prefix, scaled, size_text,
)
from nlbench.report.tables import counter_comparison, failed_cases, memory_limits, sweeps
from nlbench.vocabulary import FAILED_STATUSES, IDENTITY_BLOCK, STATUS_OK, STATUS_TEXT, metric

#: How a block's first failure reads as a verb phrase ("**nl** ran out of memory at 64×64").
FAILURE_VERBS: Mapping[str, str] = {
    "oom": "ran out of memory", "timeout": "timed out", "error": "failed with an error",
    "skipped": "was skipped as too big for the memory limit",
}
#: Claims are time complexities: judged on MACs first, then latency (not memory).
TIME_METRICS: Mapping[str, int] = {"macs": 0, "latency_fwd_ms": 1, "latency_fwdbwd_ms": 1}
#: Below this ratio (a tool's count over ours) a counter undercounts.
UNDERCOUNT = 0.95


def counts_text(counts: Mapping[Any, int]) -> str:
    """``2 holds, 1 does not hold`` (sorted by name)."""
    return ", ".join(f"{v} {k}" for k, v in sorted(counts.items()))


def summary_findings(sweep: pd.DataFrame, fits: pd.DataFrame, counters: pd.DataFrame | None = None, *,
                     limit: int = 3) -> list[str]:
    """The few things a reader should know, computed from the data: the costliest and
    cheapest block at the largest size, then the most salient of: the most limiting
    failure, a claim that does not hold, the counters' worst undercount."""
    sweep = sweeps(sweep)
    if sweep.empty:
        return ["This run holds no sweep results."]
    counters = counter_comparison(sweep) if counters is None else counters
    cost = _finding_cost(sweep)
    salient = [f for f in (_finding_failure(sweep), _finding_verdict(fits), _finding_counters(counters)) if f]
    fallback = [f for f in (_finding_all_ran(sweep), _finding_verdicts_fine(fits)) if f]
    findings = ([cost] if cost else []) + salient + fallback
    return findings[:limit]


def _finding_cost(sweep: pd.DataFrame) -> str | None:
    ok = sweep.loc[(sweep["status"] == STATUS_OK) & (sweep["block"] != IDENTITY_BLOCK) & sweep["macs"].notna()]
    if ok.empty:
        return None
    # The largest case at which at least two blocks ran (or the largest at all): largest N, then largest C.
    counts = ok.groupby("positions")["block"].nunique()
    sizes = counts.index[counts >= 2] if (counts >= 2).any() else counts.index
    at = ok.loc[ok["positions"] == sizes.max()]
    per_c = at.groupby("channels")["block"].nunique()
    channels = (per_c.index[per_c >= 2] if (per_c >= 2).any() else per_c.index).max()
    at = at.loc[at["channels"] == channels]
    per_block = at.groupby(["block", "options"], sort=False).agg(
        macs=("macs", "median"), flops=("flops", "median"),
        latency=(metric("latency_fwd_ms").column, "median")).sort_values("macs")
    first = at.iloc[0]
    where = f"{size_text(first['height'], first['width'], first['frames'])}, C={int(channels)}"
    (cheap_block, cheap_opts), cheap = per_block.index[0], per_block.iloc[0]
    (dear_block, dear_opts), dear = per_block.index[-1], per_block.iloc[-1]

    factor, prefix, _ = pick_prefix([dear["macs"]])  # k/M/G = 10³/10⁶/10⁹, as the report's header says

    def describe(macs: float, flops: float, latency: float) -> str:
        text = f"{scaled(macs, factor)} {prefix}MACs ({scaled(flops, factor)} {prefix}FLOPs)"
        return text + (f", {num(latency)} ms forward (median)" if math.isfinite(as_float(latency)) else "")

    missing = sweep.loc[(sweep["status"] != STATUS_OK) & (sweep["positions"] == sizes.max())
                        & (sweep["channels"] == channels)]
    absent = ""
    if len(missing):
        absent = " Not measured there: " + "; ".join(
            f"{block_label(r['block'], r['options'])}: {STATUS_TEXT.get(r['status'], r['status'])}"
            for _, r in missing.iterrows()) + "."
    if len(per_block) == 1:
        return (f"At the largest size measured ({where}) only **{block_label(dear_block, dear_opts)}** ran: "
                f"{describe(dear['macs'], dear['flops'], dear['latency'])}.{absent}")
    ratio = dear["macs"] / cheap["macs"] if cheap["macs"] > 0 else math.inf
    times = f"{num(ratio)}× the MACs of" if math.isfinite(ratio) else "more MACs than"
    return (f"At the largest size measured ({where}), **{block_label(dear_block, dear_opts)}** is the most expensive "
            f"block: {describe(dear['macs'], dear['flops'], dear['latency'])}, {times} the cheapest, "
            f"**{block_label(cheap_block, cheap_opts)}** ({describe(cheap['macs'], cheap['flops'], cheap['latency'])}).{absent}")


def _finding_verdict(fits: pd.DataFrame) -> str | None:
    if fits.empty:
        return None
    # Not on identity, whose cost is the harness's own by definition.
    refuted = fits.loc[(fits["verdict"] == "does not hold") & fits["metric"].isin(list(TIME_METRICS))
                       & (fits["block"] != IDENTITY_BLOCK)].copy()
    if refuted.empty:
        return None
    refuted["_p"] = refuted["metric"].map(TIME_METRICS)
    refuted["_gap"] = -(refuted["asymptotic_slope"] - refuted["claimed_exponent"]).abs()
    row = refuted.sort_values(["_p", "_gap"], kind="stable").iloc[0]
    others = len(refuted) - 1
    more = (f" ({others} other block/metric pair{'s' if others != 1 else ''} with a time-complexity claim "
            f"that does not hold; see Complexity verdicts)") if others else ""
    return (f"**{block_label(row['block'], row['options'])}**'s claimed {row['claimed']} does not hold for "
            f"{metric_label(metric(row['metric']))} along {row['axis']}: asymptotic slope "
            f"{interval(row['asymptotic_slope'], row['asymptotic_ci_low'], row['asymptotic_ci_high'])} vs the "
            f"claimed {num(row['claimed_exponent'])} (dominant term {row['dominant_term']}){more}.")


def _finding_verdicts_fine(fits: pd.DataFrame) -> str | None:
    if fits.empty:
        return None
    macs = fits.loc[fits["metric"] == "macs", "verdict"].value_counts().to_dict()
    if not macs:
        return None
    return f"No claimed time complexity is refuted by the measured MACs; MACs verdicts: {counts_text(macs)}."


def _finding_failure(sweep: pd.DataFrame) -> str | None:
    limits = memory_limits(sweep)
    if limits.empty:
        return None
    severity = {status: rank for rank, status in enumerate(FAILED_STATUSES)}
    limits = limits.assign(_s=limits["first_failed_status"].map(severity).fillna(len(severity)))
    row = limits.sort_values(["_s", "first_failed_positions"], kind="stable").iloc[0]
    status = row["first_failed_status"]
    ran = (f"; the largest size it ran at was {row['largest_ok_size']}" if row["largest_ok_size"]
           else "; it ran at no size")
    total = counts_text(failed_cases(sweep)["status"].value_counts().to_dict())
    return (f"**{block_label(row['block'], row['options'])}** {FAILURE_VERBS.get(status, status)} at "
            f"{row['first_failed_size']} (N = {num(row['first_failed_positions'])}, "
            f"C={int(as_float(row['channels']))}){ran}. Failed cases in all: {total}.")


def _finding_all_ran(sweep: pd.DataFrame) -> str | None:
    if sweep.empty or (sweep["status"] != STATUS_OK).any():
        return None
    return f"All {len(sweep)} cases ran: no out-of-memory, timeout or error at the sizes swept."


def _finding_counters(counters: pd.DataFrame) -> str | None:
    if counters.empty:
        return None
    best = None
    for tool in ("fvcore", "ptflops"):
        ratios = counters[f"{tool}_ratio"]
        if not ratios.notna().any():
            continue
        index = ratios.idxmin()
        if best is None or ratios[index] < best[1]:
            best = (tool, float(ratios[index]), counters.loc[index])
    if best is None or not best[1] < UNDERCOUNT:
        return None
    tool, ratio, row = best
    other = "ptflops" if tool == "fvcore" else "fvcore"
    other_ratio = as_float(row[f"{other}_ratio"])
    also = f"; {other} counts {percent(other_ratio, 0)}" if math.isfinite(other_ratio) else ""
    undercounting = int(((counters["fvcore_ratio"] < UNDERCOUNT) | (counters["ptflops_ratio"] < UNDERCOUNT)).sum())
    return (f"The usual counters undercount: {tool} counts only {percent(ratio, 0)} of "
            f"**{block_label(row['block'], row['options'])}**'s MACs at {case_text(row)}{also}; "
            f"{undercounting} of {len(counters)} cases are undercounted by at least {percent(1 - UNDERCOUNT, 0)} "
            f"by one of them.")
