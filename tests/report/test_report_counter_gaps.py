"""The counter section's second table: where fvcore and ptflops differ from us, by
operator class, at each block's largest N (runs written by hand through the store)."""

from __future__ import annotations

from typing import Any

import pytest

from nlbench.report import build_report, render_markdown, sections
from synthetic_runs import case_record

GAP_TABLE = "Where fvcore and ptflops differ, by operator class"


def _with_classes(record: dict[str, Any], *, fft: bool) -> dict[str, Any]:
    """A case of C·N conv MACs (and 2·C·N fft MACs for an FFT block), 4·C·N norm FLOPs;
    fvcore counts the conv and the norm's FLOPs but no FFT, ptflops adds the conv bias
    (C·N/2) and no norm."""
    n, c = record["height"] * record["width"], record["channels"]
    cost = {"conv": {"macs": c * n, "flops": 2 * c * n}, "norm": {"macs": 0, "flops": 4 * c * n}}
    fvcore = {"conv": c * n, "norm": 4 * c * n}
    ptflops = {"conv": c * n + c * n // 2}
    if fft:
        cost["fft"] = {"macs": 2 * c * n, "flops": 5 * c * n}
    macs = sum(v["macs"] for v in cost.values())
    return {**record, "cost_by_class": cost, "macs": macs, "flops": sum(v["flops"] for v in cost.values()),
            "fvcore_macs": sum(fvcore.values()), "ptflops_macs": sum(ptflops.values()),
            "fvcore_macs_by_class": fvcore, "ptflops_macs_by_class": ptflops}


def test_the_gap_table_shows_each_block_at_its_largest_n(make_run) -> None:
    records = [_with_classes(case_record(block, 8, size), fft=block == "spectral")
               for block in ("spectral", "cheap") for size in (8, 16)]
    section = build_report([make_run("gaps", records)]).section("counters")
    assert [t.title for t in section.tables] == ["MACs: nlbench vs fvcore vs ptflops", GAP_TABLE]
    table = section.tables[1]
    cases = table.column("case (largest)")
    assert set(cases) == {"C8 · 16×16"}  # the largest N only
    rows = {(r[0], r[2]): r for r in table.rows}
    assert set(rows) == {("cheap", "conv"), ("cheap", "norm"), ("spectral", "conv"), ("spectral", "fft"),
                         ("spectral", "norm")}
    fft = dict(zip(table.columns, rows[("spectral", "fft")]))
    assert fft["fvcore vs ours"] == "-100.00 %" and fft["ptflops vs ours"] == "-100.00 %"
    assert fft["vs ours: against"] == "our MACs"
    conv = dict(zip(table.columns, rows[("cheap", "conv")]))
    assert conv["fvcore vs ours"] == "+0.00 %" and conv["ptflops vs ours"] == "+50.00 %"
    norm = dict(zip(table.columns, rows[("cheap", "norm")]))  # no MACs of ours: against our FLOPs
    assert norm["vs ours: against"] == "our FLOPs"
    assert norm["fvcore vs ours"] == "+0.00 %" and norm["ptflops vs ours"] == "-100.00 %"
    intro = section.notes[0]
    assert intro.startswith("Where fvcore and ptflops differ from us, by operator class")
    assert "fvcore: fft (spectral -100.00 %); norm counted as MACs (2 blocks)" in intro
    assert "ptflops: conv (cheap +50.00 %, spectral +50.00 %); fft (spectral -100.00 %)" in intro
    assert "Known causes: neither tool has a formula for FFTs" in intro
    assert "10 case × class differences over all sizes" in table.note
    assert GAP_TABLE in render_markdown(build_report([make_run("gaps-md", records)]))


def test_the_gap_table_is_capped(make_run, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sections, "MAX_COUNTER_GAP_ROWS", 2)
    records = [_with_classes(case_record(block, 8, 8), fft=True) for block in ("a", "b")]
    table = build_report([make_run("capped", records)]).section("counters").tables[1]
    assert len(table.rows) == 2 and "the first 2 of 6 rows" in table.note


def test_runs_without_by_class_counts_keep_the_totals_table_only(make_run) -> None:
    section = build_report([make_run("old", [case_record("cheap", 8, s) for s in (8, 16)])]).section("counters")
    assert [t.title for t in section.tables] == ["MACs: nlbench vs fvcore vs ptflops"]
    assert section.notes and section.notes[0].startswith("No by-class differences to show")


def test_a_difference_too_small_for_two_decimals_is_not_written_as_zero(make_run) -> None:
    record = _with_classes(case_record("big", 64, 64), fft=False)
    record["fvcore_macs_by_class"] = {"conv": record["fvcore_macs_by_class"]["conv"] + 4}  # 4 in 262144
    record["fvcore_macs"] = record["fvcore_macs_by_class"]["conv"]
    section = build_report([make_run("tiny", [record])]).section("counters")
    assert "fvcore: conv (big < +0.01 %)" in section.notes[0]
