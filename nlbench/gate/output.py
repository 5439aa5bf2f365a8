"""What a gate run says: one headline, the rows worth reading first, a markdown summary
for a pull-request comment or ``$GITHUB_STEP_SUMMARY``, and a JSON document. Pure
functions of a :class:`~nlbench.gate.model.GateResult`; the terminal table is drawn
by the CLI from :func:`table_rows`."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from nlbench.gate.model import Comparison, GateResult
from nlbench.report.render import md_escape
from nlbench.vocabulary import GATE_COST_SAME, GATE_IMPROVEMENT, GATE_NEW, GATE_PASS, GATE_VERDICTS, TIER_CASE, TIER_TIME, metric

JSON_FORMAT_VERSION = 1
TABLE_HEADERS: tuple[str, ...] = ("verdict", "case", "quantity", "baseline", "candidate", "ratio [CI]", "p (Holm)",
                                  "note")
#: Verdicts a reader needs to see; the rest are summarised in counts.
QUIET_VERDICTS: tuple[str, ...] = (GATE_PASS, GATE_COST_SAME)


def quantity_title(quantity: str) -> str:
    """``latency_fwd_ms`` → ``forward latency``; counts and foreign names as they are."""
    try:
        return metric(quantity).title
    except ValueError:
        return quantity


def _number(value: float | None, spec: str) -> str:
    return "—" if value is None or not math.isfinite(value) else format(value, spec)


def _value(row: Comparison, value: float | None) -> str:
    if row.tier == TIER_TIME:
        return _number(value, ".3g") + (" ms" if value is not None and math.isfinite(value) else "")
    return _number(value, ",.0f")


def ratio_text(row: Comparison) -> str:
    """``1.123 [1.101, 1.146]`` (the interval only where there is one)."""
    text = _number(row.ratio, ".3f")
    if row.ci_low is not None and math.isfinite(row.ci_low) and row.ci_high is not None:
        text += f" [{row.ci_low:.3f}, {row.ci_high:.3f}]"
    return text


def table_rows(result: GateResult, *, everything: bool = False) -> list[tuple[str, ...]]:
    """One tuple of cells per comparison worth showing (all with ``everything``), the
    failing first, then inconclusive, then the rest; user text is left as text."""
    order = {verdict: i for i, verdict in enumerate(GATE_VERDICTS)}
    shown = [r for r in result.comparisons if everything or r.verdict not in QUIET_VERDICTS or r.tier == TIER_TIME]
    shown.sort(key=lambda r: (order.get(r.verdict, len(order)), r.label, r.quantity))
    return [(r.verdict, r.label, quantity_title(r.quantity), _value(r, r.baseline), _value(r, r.candidate),
             ratio_text(r) if r.tier != TIER_CASE else "—", _number(r.p_adjusted, ".2g"), r.reason)
            for r in shown]


def counts(result: GateResult) -> dict[str, int]:
    """How many comparisons ended in each verdict (only verdicts that occur)."""
    found: dict[str, int] = {}
    for row in result.comparisons:
        found[row.verdict] = found.get(row.verdict, 0) + 1
    return {v: found[v] for v in GATE_VERDICTS if v in found}


def headline(result: GateResult) -> str:
    """One line: the outcome and the counts behind it."""
    failures = result.failures
    if failures:
        names = sorted({f"{r.label} ({quantity_title(r.quantity)})" for r in failures})
        shown = "; ".join(names[:5]) + (f"; … {len(names) - 5} more" if len(names) > 5 else "")
        outcome = f"FAIL — {len(failures)} failing: {shown}"
    elif result.strict and result.inconclusive:
        outcome = f"FAIL (strict) — {len(result.inconclusive)} inconclusive"
    else:
        outcome = "PASS"
    summary = ", ".join(f"{n} {v}" for v, n in counts(result).items())
    return f"{outcome} ({summary})"


def settings_text(result: GateResult) -> str:
    """The decision rules the result was judged by, in one sentence."""
    s = result.settings
    n_time = sum(r.tier == TIER_TIME for r in result.comparisons)
    counts_rule = "counts (params, MACs, FLOPs) must match exactly"
    if not n_time:
        return counts_rule
    units = sorted({r.unit for r in result.comparisons if r.tier == TIER_TIME and r.unit})
    return (f"a time regression needs ratio > {1 + s.threshold:.2f} and p < {s.alpha:g} (one-sided rank test on "
            f"{' / '.join(units) or 'samples'}, Holm-corrected over {n_time} time comparisons); a pass needs the "
            f"{s.confidence:.0%} interval's upper end ≤ {1 + s.threshold:.2f}; {counts_rule}")


def gate_markdown(result: GateResult) -> str:
    """A GitHub-flavoured markdown summary: headline, warnings, the rows to read, and
    every comparison in a collapsed section."""
    icon = "❌" if result.exit_code else ("⚠️" if result.inconclusive else "✅")
    lines = [f"### {icon} nlbench gate: {md_escape(headline(result))}", "",
             f"Baseline `{md_escape(result.baseline)}` vs candidate `{md_escape(result.candidate)}`; "
             f"{md_escape(settings_text(result))}.", ""]
    for warning in result.warnings:
        lines.append(f"> **warning:** {md_escape(warning)}")
    if result.warnings:
        lines.append("")

    def table(rows: list[tuple[str, ...]]) -> list[str]:
        out = ["| " + " | ".join(TABLE_HEADERS) + " |", "|" + "---|" * len(TABLE_HEADERS)]
        out += ["| " + " | ".join(md_escape(cell) if cell else " " for cell in row) + " |" for row in rows]
        return out

    attention = [r for r in table_rows(result) if r[0] not in (GATE_PASS, GATE_COST_SAME, GATE_IMPROVEMENT, GATE_NEW)]
    if attention:
        lines += table(attention) + [""]
    lines += ["<details><summary>every comparison</summary>", "", *table(table_rows(result, everything=True)), "",
              "</details>", ""]
    return "\n".join(lines)


def _json_number(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def gate_json(result: GateResult) -> dict[str, Any]:
    """The whole result as JSON-ready data (non-finite numbers become null)."""
    rows = []
    for row in result.comparisons:
        data = {k: _json_number(v) for k, v in dataclasses.asdict(row).items()}
        data["warnings"] = list(row.warnings)
        data["failing"] = row.failing
        rows.append(data)
    return {
        "format_version": JSON_FORMAT_VERSION,
        "exit_code": result.exit_code,
        "headline": headline(result),
        "baseline": result.baseline,
        "candidate": result.candidate,
        "settings": {**dataclasses.asdict(result.settings), "strict": result.strict},
        "warnings": list(result.warnings),
        "counts": counts(result),
        "comparisons": rows,
    }

