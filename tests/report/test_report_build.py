"""Reports from stored results: sections, tables, plots, escaping, failures, deltas,
paper and probe sections, and that rendering never needs torch."""

from __future__ import annotations

import base64
import io
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from nlbench import store
from nlbench.report import (
    Report,
    build_report, counter_comparison, delta_vs_identity, latency_noise, probe_summary, read_paper_table,
    render_html, render_markdown, report_id, summary_findings, write_report,
)
from nlbench.fit import VerdictRule, fit_run
from nlbench.report.render import PNG_SIGNATURE, png_size
from synthetic_runs import case_record, standard_records

REPO = Path(__file__).resolve().parents[2]

CORE_SECTIONS = ("Summary", "Environment", "Cost vs resolution", "Cost vs channels", "Complexity verdicts",
                 "Crossovers", "Deltas against identity", "Failures and limits", "Counter comparison",
                 "Latency noise")

PAPER_SUITE = """
name = "paper-test"
blocks = ["nl", "cheap"]
channels = [16]
resolutions = [8, 16, 32, 64]
[paper_table]
title = "Test paper, Table 9"
giga = 1073741824
maps = { "small" = [[8, 8], [16, 16]], "large" = [[32, 32], [64, 64]] }
rows = [
    { input = "small", block = "nl", gflops = 0.001, params_m = 0.003 },
    { input = "small", block = "cheap", gflops = 0.00005, params_m = 0.003 },
    { input = "large", block = "nl", gflops = 0.5, params_m = 0.003 },
    { input = "large", block = "cheap", gflops = 0.001, params_m = 0.003 },
]
"""


def nl_macs_at(channels: int, positions: int) -> int:
    """nl's MACs in the synthetic runs (synthetic_runs.case_record): C·N² + 2·C²·N."""
    return channels * positions**2 + 2 * channels**2 * positions


def table_rows_by_first_cell(table) -> dict[str, tuple[str, ...]]:
    return {row[0]: row for row in table.rows}


# ----------------------------------------------------------------------------------
# Markdown
# ----------------------------------------------------------------------------------


def test_markdown_has_every_section_and_github_tables(synthetic_report: Report) -> None:
    report = synthetic_report
    markdown = render_markdown(report)
    for title in CORE_SECTIONS:
        assert f"\n## {title}\n" in markdown, title
    # GitHub tables: a header row followed by a separator row of --- cells
    separators = re.findall(r"^\| (?:-{3}:?|-{3}) (?:\| (?:-{3}:?|-{3}) )*\|$", markdown, flags=re.M)
    assert len(separators) >= 6
    # verdict table has the claimed complexity, the verdict and its numbers
    verdicts = report.section("verdicts").tables[0]
    assert verdicts.columns[:2] == ("block", "metric")
    nl_macs = [row for row in verdicts.rows if row[0] == "nl" and row[2] == "N"]
    assert nl_macs and nl_macs[0][verdicts.columns.index("claimed")] == "O(C·H²W²)"
    # The verdict the synthetic data imply: nl's MACs are C·N² + 2·C²·N (case_record) at C=16,
    # measured at N = 8², 16², 32² (64² ran out of memory). The asymptotic slope over those
    # three sizes (equally spaced in log N) is ln(MACs(32²)/MACs(8²)) / ln(32²/8²) ≈ 1.86, within
    # the verdict tolerance of the claimed exponent 2, and exact data leave no CI to speak of.
    expected = math.log(nl_macs_at(16, 32 * 32) / nl_macs_at(16, 8 * 8)) / math.log(16)
    assert abs(expected - 2.0) <= VerdictRule().tolerance
    assert nl_macs[0][verdicts.columns.index("asymptotic slope [95 % CI]")].startswith(f"{expected:.2f} [")
    assert nl_macs[0][verdicts.columns.index("verdict")] == "holds"
    # plots are linked as files beside report.md
    links = re.findall(r"!\[[^\]]*\]\((plots/[^)]+\.png)\)", markdown)
    assert len(links) == len(report.plots) > 0
    # units in column names, MACs vs FLOPs labelled
    assert "FLOPs = 2·MACs" in markdown
    assert "[ms]" in markdown


def test_summary_names_costliest_block_and_the_oom(synthetic_report: Report) -> None:
    report = synthetic_report
    assert 1 <= len(report.summary) <= 3
    text = " ".join(report.summary)
    assert "**nl** is the most expensive" in text
    assert "**cheap**" in text
    assert "**nl** ran out of memory at 64×64" in text
    assert "32×32" in text  # the largest size nl ran at


def test_environment_comes_from_the_manifest(synthetic_report: Report) -> None:
    env = synthetic_report.section("environment").tables[0]
    rows = table_rows_by_first_cell(env)
    assert rows["torch"][1] == "2.13.0+cpu"
    assert rows["host"][1] == "testhost"
    assert rows["CPU model"][1] == "Test CPU"
    assert rows["commit"][1] == "abc123"
    assert rows["suite"][1] == "synthetic"
    assert rows["dtypes"][1] == "float32"


# ----------------------------------------------------------------------------------
# Files, HTML, plots
# ----------------------------------------------------------------------------------


def test_write_report_writes_markdown_plots_and_html(synthetic_run: Path, tmp_path: Path) -> None:
    written = write_report([synthetic_run], tmp_path / "reports")
    target = tmp_path / "reports" / synthetic_run.name
    assert written["md"] == target / "report.md" and written["html"] == target / "index.html"
    markdown = written["md"].read_text()
    for link in re.findall(r"\]\((plots/[^)]+\.png)\)", markdown):
        data = (target / link).read_bytes()
        assert data.startswith(PNG_SIGNATURE)


def test_write_report_html_only(make_run, tmp_path: Path) -> None:
    run = make_run("tiny", [case_record("nl", 8, s) for s in (8, 16)])
    only_html = write_report([run], tmp_path / "html-only", formats=("html",))
    assert set(only_html) == {"dir", "html"} and only_html["html"].read_text().startswith("<!DOCTYPE html>")
    assert not (tmp_path / "html-only" / "tiny" / "report.md").exists()


def test_html_is_self_contained(synthetic_report: Report) -> None:
    html = render_html(synthetic_report)
    assert html.lstrip().startswith("<!DOCTYPE html>")
    assert "<link" not in html
    assert "<script" not in html
    assert not re.search(r"(?:src|href)\s*=\s*[\"']?(?:https?:)?//", html)
    assert "http://" not in html and "https://" not in html
    assert "url(" not in html and "@import" not in html
    sources = re.findall(r"<img[^>]*\ssrc=\"([^\"]+)\"", html)
    assert sources and all(src.startswith("data:image/png;base64,") for src in sources)


def test_plots_are_valid_pngs(synthetic_report: Report) -> None:
    report = synthetic_report
    html = render_html(report)
    sources = re.findall(r"<img[^>]*\ssrc=\"data:image/png;base64,([^\"]+)\"", html)
    assert len(sources) == len(report.plots)
    for encoded in sources:
        data = base64.b64decode(encoded, validate=True)
        assert data.startswith(PNG_SIGNATURE)
        width, height = png_size(data)
        assert width >= 300 and height >= 200
        with Image.open(io.BytesIO(data)) as image:
            image.verify()  # a truncated or corrupt PNG raises here
    keys = {plot.key for plot in report.plots}
    assert any(key.startswith("macs-vs-n") for key in keys)
    assert any(key.startswith("macs-vs-c") for key in keys)
    assert any(key.startswith("latency-fwd-ms-vs-n") for key in keys)
    assert any(key.startswith("peak-mem-fwd-bytes-vs-n") for key in keys)


def test_results_strings_are_escaped_in_html_and_markdown(make_run) -> None:
    evil = "<script>alert(1)</script>"
    records = [case_record("identity", 8, s) for s in (8, 16)]
    records += [case_record(evil, 8, s, case_id=f"evil-{s}") for s in (8, 16)]
    records.append(case_record("nl", 8, 32, status="error", error='<img src=x onerror="alert(2)"> failed'))
    run = make_run("escape-run", records, host=evil, suite=evil)
    report = build_report([run])
    html = render_html(report)
    assert "<script" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html  # shown, as text
    assert "<img src=x" not in html and "&lt;img src=x onerror=" in html
    markdown = render_markdown(report)
    assert "<script" not in markdown and "<img src=x" not in markdown
    assert "&lt;script>alert(1)&lt;/script>" in markdown


# ----------------------------------------------------------------------------------
# Failures
# ----------------------------------------------------------------------------------


def test_oom_is_marked_in_plot_data_legend_and_tables(synthetic_report: Report) -> None:
    report = synthetic_report
    macs_plot = next(p for p in report.section("cost-vs-resolution").plots if p.key.startswith("macs-vs-n"))
    nl = next(s for s in macs_plot.series if s.label == "nl")
    assert [(p.x, p.status, p.size) for p in nl.failed] == [(64.0 * 64, "oom", "64×64")]
    assert math.isfinite(nl.failed[0].y) and nl.failed[0].y > max(nl.y)  # on the extrapolated fit
    assert 64.0 * 64 not in nl.x
    assert "nl: ✕ out of memory at 64×64" in macs_plot.legend
    assert not any("✕" in label for label in macs_plot.legend if label.startswith("cheap"))

    failures = report.section("failures")
    limits, cases = failures.tables
    row = limits.rows[0]
    assert row[limits.columns.index("largest ok size")] == "32×32"
    assert row[limits.columns.index("first failed size")] == "64×64"
    assert row[limits.columns.index("status")] == "out of memory"
    assert cases.rows[0][cases.columns.index("status")] == "oom"
    assert "CPU out of memory" in cases.rows[0][cases.columns.index("error (first line)")]

    delta_macs = report.section("deltas").tables[0]
    nl_row = table_rows_by_first_cell(delta_macs)["nl"]
    assert nl_row[delta_macs.columns.index("C16 · 64×64")] == "OOM"


# ----------------------------------------------------------------------------------
# Deltas, counters, noise
# ----------------------------------------------------------------------------------


def test_delta_vs_identity_is_block_minus_identity(synthetic_run: Path) -> None:
    deltas = delta_vs_identity(store.load(synthetic_run))
    assert set(deltas["block"]) == {"nl", "cheap"}
    nl8 = deltas[(deltas["block"] == "nl") & (deltas["height"] == 8) & (deltas["channels"] == 16)].iloc[0]
    n, c = 64, 16
    assert nl8["macs_delta"] == c * n * n + 2 * c * c * n  # identity has 0 MACs
    assert nl8["latency_fwd_ms_delta"] == pytest.approx((c * n * n + 2 * c * c * n) / 1e6)  # minus identity's 0.01
    assert nl8["peak_mem_fwd_bytes_delta"] == 4 * (c * n + n * n) - 4 * c * n
    assert nl8["peak_mem_fwdbwd_bytes_delta"] == 2 * (4 * (c * n + n * n) - 4 * c * n)
    cheap32 = deltas[(deltas["block"] == "cheap") & (deltas["height"] == 16) & (deltas["channels"] == 32)].iloc[0]
    assert cheap32["peak_mem_fwd_bytes_delta"] == 8 * 32 * 256 - 4 * 32 * 256
    nl64 = deltas[(deltas["block"] == "nl") & (deltas["height"] == 64)].iloc[0]
    assert nl64["status"] == "oom" and math.isnan(nl64["macs_delta"]) and math.isnan(nl64["latency_fwd_ms_delta"])
    # every non-identity case with an identity at its shape has a row
    assert len(deltas) == 2 * 4 + 2 * 3


def test_delta_needs_identity_at_the_same_shape(make_run) -> None:
    run = make_run("no-identity", [case_record("nl", 8, s) for s in (8, 16)]
                   + [case_record("identity", 16, 8)])  # identity at another C: no match
    assert delta_vs_identity(store.load(run)).empty
    section = build_report([run]).section("deltas")
    assert not section.tables and "No delta table" in section.notes[0]


def test_counter_comparison_ratios(synthetic_run: Path, synthetic_report: Report) -> None:
    counters = counter_comparison(store.load(synthetic_run))
    cheap = counters[counters["block"] == "cheap"]
    assert (cheap["fvcore_ratio"] == 0.5).all() and cheap["ptflops_ratio"].round(12).eq(0.9).all()
    assert counters.loc[counters["block"] == "identity", "fvcore_ratio"].isna().all()  # 0/0 is not a ratio
    table = synthetic_report.section("counters").tables[0]
    assert table_rows_by_first_cell(table)["cheap"][table.columns.index("fvcore / ours")] == "0.5"
    sweep = store.load(synthetic_run)
    findings = summary_findings(sweep, fit_run(sweep), counters, limit=10)
    assert any("fvcore counts only 50 % of **cheap**'s MACs" in finding for finding in findings)


def test_latency_noise_fraction_counts_only_cases_of_a_millisecond_or_more(make_run) -> None:
    records = [
        case_record("nl", 8, 8, latency_fwd_ms_median=5.0, latency_fwd_ms_iqr=2.5),  # noisy
        case_record("nl", 8, 16, latency_fwd_ms_median=5.0, latency_fwd_ms_iqr=0.05),  # steady
        case_record("nl", 8, 32, latency_fwd_ms_median=0.5, latency_fwd_ms_iqr=0.4),  # < 1 ms: not judged
    ]
    noise = latency_noise(store.load(make_run("noise", records)))
    fwd = noise[noise["latency"] == "fwd"].iloc[0]
    assert (fwd["n_timed"], fwd["n_noisy"], fwd["noisy_fraction"]) == (2, 1, 0.5)


# ----------------------------------------------------------------------------------
# Paper table and probes
# ----------------------------------------------------------------------------------


def test_paper_section_appears_when_the_suite_has_a_paper_table(make_run) -> None:
    run = make_run("paper-run", standard_records(oom_at=None), suite_toml=PAPER_SUITE)
    report = build_report([run])
    section = report.section("paper")
    table = section.tables[0]
    assert "2³⁰" in " ".join(table.columns) and "2³⁰" in section.intro
    df = store.load(run)
    rows = {(r[0], r[1]): r for r in table.rows}
    nl_small = df[(df["block"] == "nl") & df["height"].isin([8, 16])]["macs"].sum() / 2**30
    ours = rows[("small", "nl")][table.columns.index("ours GMACs [G = 2³⁰]")]
    assert float(ours) == pytest.approx(nl_small, rel=1e-2)
    markdown = render_markdown(report)
    assert "## Paper-table comparison" in markdown and "Test paper, Table 9" in markdown


def test_paper_comparison_leaves_failed_rows_null(make_run) -> None:
    """A paper row whose cases failed has null measurements, never a partial sum."""
    from nlbench.paper import paper_comparison

    records = standard_records()  # nl fails at 64×64: its "large" row must be null
    run = make_run("paper-run-2", records, suite_toml=PAPER_SUITE)
    comparison = paper_comparison(store.load(run), read_paper_table(run))
    large_nl = comparison[(comparison["input"] == "large") & (comparison["block"] == "nl")]
    assert len(large_nl) == 1 and large_nl[["ours_gmacs", "ours_params_m", "gmacs_rel_error"]].isna().all(axis=None)
    assert comparison[comparison["input"] != "large"]["ours_gmacs"].notna().all()


def test_no_paper_or_probe_section_without_their_data(synthetic_run: Path, synthetic_report: Report) -> None:
    report = synthetic_report
    assert not report.has_section("paper") and not report.has_section("probes")
    assert read_paper_table(synthetic_run) is None


def probe_record(task: str, block: str, seed: int, accuracy: float | None, macs: int) -> dict:
    return {"kind": "probe", "case_id": f"probe-{task}-{block}-{seed}", "task": task, "block": block,
            "options": {}, "seed": seed, "status": "ok" if accuracy is not None else "error",
            "error": None if accuracy is not None else "diverged", "accuracy": accuracy, "steps": 100,
            "macs": macs, "params": 1000, "steps_per_s": 50.0, "learning_curve": [{"step": 100, "accuracy": accuracy}],
            "channels": 16, "batch": 32, "device": "cpu", "dtype": "float32"}


def test_probe_results_by_block_and_task_with_pareto(make_run) -> None:
    records = standard_records() + [
        probe_record("long-range", "nl", 0, 0.80, 2_000_000), probe_record("long-range", "nl", 1, 0.90, 2_000_000),
        probe_record("long-range", "cheap", 0, 0.60, 1_000_000), probe_record("long-range", "cheap", 1, 0.70, 1_000_000),
        probe_record("long-range", "identity", 0, 0.50, 1_500_000),  # dearer than cheap and worse: dominated
        probe_record("long-range", "identity", 1, None, 1_500_000),  # a failed seed
    ]
    run = make_run("probe-run", records)
    df = store.load(run)
    summary = probe_summary(df).set_index("block")
    assert summary.loc["nl", "accuracy_mean"] == pytest.approx(0.85)
    assert summary.loc["nl", "accuracy_std"] == pytest.approx(math.sqrt(0.005))  # sample std of 0.8, 0.9
    assert (summary.loc["nl", "accuracy_min"], summary.loc["nl", "accuracy_max"]) == (0.80, 0.90)
    assert summary.loc["identity", "n_seeds"] == 1 and summary.loc["identity", "n_failed"] == 1
    assert summary["pareto"].to_dict() == {"cheap": True, "identity": False, "nl": True}
    report = build_report([run])
    section = report.section("probes")
    table = section.tables[0]
    assert list(table_rows_by_first_cell(table)["nl"][1:4]) == ["learns in some seeds", "0.850 ± 0.071", "1/2"]
    assert any(note.startswith("long-range: nl learns in some seeds") for note in section.notes)
    assert section.plots and section.plots[0].kind == "pareto"
    pareto = {series.label: series for series in section.plots[0].series}
    assert (pareto["nl"].y_low, pareto["nl"].y_high) == ((0.80,), (0.90,)), "bars: the seeds' range"
    assert pareto["identity"].y_low == (), "one seed: no spread drawn"
    assert "Pareto front" in section.plots[0].legend
    # probe rows never leak into the sweep analyses
    results = table_rows_by_first_cell(report.section("environment").tables[0])["results"][1]
    assert results.startswith("12 cases (ok: 11, oom: 1); 6 probe results")
    assert len(delta_vs_identity(df)) == len(delta_vs_identity(df[df["kind"] != "probe"])) == 8


# ----------------------------------------------------------------------------------
# Several runs, bad input, torch
# ----------------------------------------------------------------------------------


def test_two_runs_give_a_combined_id_and_a_comparison(make_run) -> None:
    base = make_run("run-a", standard_records())
    cand = make_run("run-b", standard_records(run_scale=2.0))
    assert report_id([base, cand]) == "run-a-vs-run-b"
    report = build_report([base, cand])
    assert report.report_id == "run-a-vs-run-b" and report.run_ids == ("run-a", "run-b")
    table = report.section("comparison").tables[0]
    verdicts = set(table.column("verdict"))
    assert "slower" in verdicts  # 2× slower, five samples each side: p ≈ 0.008
    env = report.section("environment").tables[0]
    assert env.columns == ("field", "run-a", "run-b")


def test_bad_input_is_rejected_clearly(synthetic_run: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="formats"):
        write_report([synthetic_run], tmp_path, formats=("pdf",))
    with pytest.raises(ValueError, match="at least one run"):
        build_report([])
    with pytest.raises(store.StoreError, match="no such run directory"):
        build_report([tmp_path / "missing"])


def test_rendering_does_not_import_torch(make_run, tmp_path: Path) -> None:
    run = make_run("tiny-torchless", [case_record("nl", 8, s) for s in (8, 16)])
    code = (
        "import sys, pathlib\n"
        "from nlbench.report import write_report\n"
        f"paths = write_report([pathlib.Path({str(run)!r})], pathlib.Path({str(tmp_path / 'out')!r}))\n"
        "assert paths['html'].exists()\n"
        "bad = sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.'))\n"
        "print('TORCH' if bad else 'NO-TORCH')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("NO-TORCH")


# ----------------------------------------------------------------------------------
# The seams: typed tables, plot data, one normalisation at entry
# ----------------------------------------------------------------------------------


def test_tables_are_typed_numbers_formatted_and_text_escaped() -> None:
    from nlbench.report import Column, Interval, Table
    from nlbench.report.render import markdown_table, table_cells

    table = Table("t", (Column("version"), Column("MACs", "number", "k = 10³", scale=1e3),
                        Column("slope", "number", style="interval"), Column("Δ", "number", style="signed")),
                  (("3.11", 12_345.0, Interval(1.5, 1.4, 1.6), -2.0), ("<b>x|y</b>", None, Interval(math.nan, 0, 0),
                                                                       "OOM")))
    assert table.columns == ("version", "MACs [k = 10³]", "slope", "Δ")
    assert table.rows == (("3.11", "12.3", "1.50 [1.40, 1.60]", "−2"), ("<b>x|y</b>", "—", "—", "OOM"))
    assert table.values("MACs [k = 10³]") == (12_345.0, None)
    lines = markdown_table(table).splitlines()
    assert lines[1] == "| --- | ---: | ---: | ---: |"  # a version string that looks like a number stays text
    assert lines[3].startswith("| &lt;b>x\\|y&lt;/b> |")
    classes = [[css for _, css in row] for row in table_cells(table)]
    assert classes == [["", "num", "num", "num"], ["", "num", "num", "fail"]]
    with pytest.raises(TypeError, match="text column"):
        Table("bad", (Column("name"),), ((1.0,),))
    with pytest.raises(ValueError, match="row 0 has 2 cells"):
        Table("bad", (Column("name"),), (("a", "b"),))


def test_the_report_holds_plot_data_and_the_renderer_draws(synthetic_report: Report) -> None:
    from nlbench.report import Plot, PlotData, render_plots

    assert synthetic_report.plots and all(isinstance(p, PlotData) for p in synthetic_report.plots)
    assert not any(hasattr(p, "png") for p in synthetic_report.plots)
    drawn = render_plots(synthetic_report)
    assert [p.key for p in drawn] == [p.key for p in synthetic_report.plots]
    assert all(isinstance(p, Plot) and p.png.startswith(PNG_SIGNATURE) for p in drawn)
    assert all(p.legend == p.data.legend for p in drawn)


def test_assemble_report_normalises_a_hand_built_frame(synthetic_run: Path, synthetic_report: Report) -> None:
    import pandas as pd

    from nlbench.report import assemble_report

    records = [dict(r) for r in store.read_records(synthetic_run)]
    frame = pd.DataFrame(records)  # as written: options dicts, frames None, no run column, no positions
    report = assemble_report(frame, {synthetic_run.name: store.read_manifest(synthetic_run)})
    assert [s.title for s in report.sections] == [s.title for s in synthetic_report.sections]
    assert report.summary == synthetic_report.summary
    for key in ("verdicts", "deltas", "failures"):
        assert ([t.rows for t in report.section(key).tables]
                == [t.rows for t in synthetic_report.section(key).tables]), key


# ----------------------------------------------------------------------------------
# Measurement quality
# ----------------------------------------------------------------------------------


def test_quality_section_counts_warnings_shows_calibration_and_rings_warned_points(make_run, tmp_path: Path) -> None:
    records = [case_record("nl", 8, size) for size in (8, 16, 32)]
    records[1]["latency_fwd_warnings"] = ["noisy", "contended"]
    records[2]["latency_fwd_warnings"] = ["few-samples"]
    for record in records:
        record.setdefault("latency_fwd_warnings", [])
        record["latency_fwdbwd_warnings"] = []
    run_dir = make_run("quality", records)
    manifest = store.read_manifest(run_dir)
    manifest["calibration"] = {"matmul_gflops": 50.0, "copy_gb_per_s": 10.0, "threads": 1, "device": "cpu",
                               "method": "best of 7 repetitions", "noise_matmul_iqr_over_median": 0.04,
                               "noise_copy_iqr_over_median": 0.25, "noise_seconds": 2.0, "noise_block_ms": 4.0}
    store.write_manifest(run_dir, manifest)
    report = build_report([run_dir])
    quality = next(s for s in report.sections if s.key == "quality")
    trust = {row[0]: row for row in quality.tables[0].rows}
    # forward: 3 cases, 1 without a warning (33 %), noisy 1, contended 1, few-samples 1
    assert trust["forward latency"][1:] == ("3", "1", "33.3 %", "1", "1", "1")
    assert trust["forward+backward latency"][1:4] == ("3", "3", "100.0 %")
    assert quality.tables[1].rows[0][1:5] == ("50", "10", "4.0 %", "25.0 %")
    assert "varies by more than the noise rule allows" in quality.tables[1].note, "the copy's floor is over 10 %"
    warned = quality.tables[2].rows
    assert [row[-1] for row in warned] == ["noisy, contended", "few-samples"]
    fwd_plot = next(p for s in report.sections for p in s.plots if p.key.startswith("latency-fwd-ms-vs-n"))
    nl = next(series for series in fwd_plot.series if series.label == "nl")
    assert [w for _, _, w in nl.warned_points] == ["contended, noisy", "few-samples"]
    assert "ringed: latency not trustworthy (contended, few-samples, noisy)" in fwd_plot.legend
    rate = next(p for p in quality.plots if p.key == "rate-fwd")
    peak = next(series for series in rate.series if series.label.startswith("calibrated fp32 matmul peak"))
    assert peak.y == (50.0, 50.0)
    achieved = next(series for series in rate.series if series.label == "nl")
    # FLOPs / median: 2·MACs / (MACs / 1e6 + 0.01) ms, as synthetic_runs writes them
    macs = nl_macs_at(8, 8 * 8)
    assert achieved.y[0] == pytest.approx(2 * macs / ((macs / 1e6 + 0.01) * 1e-3) / 1e9)


def test_dollar_signs_in_names_are_drawn_as_text_not_mathtext(make_run) -> None:
    """Unbalanced or malformed $…$ would make matplotlib's mathtext raise; as text it draws."""
    names = ["$x^2$", "$\\frac{$", "\\$$"]
    records = [case_record(name, 8, size) for name in names for size in (8, 16)]
    report = build_report([make_run("mathtext", records)])
    from nlbench.report.render import render_plots

    plots = render_plots(report)
    assert plots and all(plot.png.startswith(PNG_SIGNATURE) for plot in plots)
    legend = {label for plot in plots for label in plot.legend}
    assert {"$x^2$", "$\\frac{$", "\\$$"} <= {label.split("  (fit")[0] for label in legend}


def test_cost_finding_quotes_the_stored_flops_not_twice_the_macs() -> None:
    """FLOPs = 2·MACs + the rest: the summary reads them from the store."""
    import pandas as pd

    from nlbench import store
    from nlbench.report.prose import _finding_cost

    rows = [{"case_id": f"{b}", "kind": "sweep", "block": b, "options": "{}", "channels": 8, "height": 4,
             "width": 4, "batch": 1, "device": "cpu", "dtype": "float32", "status": "ok",
             "macs": macs, "flops": flops} for b, macs, flops in (("dear", 1e9, 3e9), ("cheap", 1e8, 5e8))]
    text = _finding_cost(store.normalise(pd.DataFrame(rows)))
    assert "1 GMACs (3 GFLOPs)" in text and "0.1 GMACs (0.5 GFLOPs)" in text


def test_latencies_from_several_machines_are_flagged() -> None:
    import pandas as pd

    from nlbench import store
    from nlbench.report.sections import environment_section

    rows = [{"case_id": h, "kind": "sweep", "block": "nl", "options": "{}", "channels": 8, "height": 4, "width": 4,
             "batch": 1, "device": "cpu", "dtype": "float32", "status": "ok", "host": h, "run": "r",
             "latency_fwd_ms_median": 1.0} for h in ("node-a", "node-b")]
    sweep = store.normalise(pd.DataFrame(rows))
    section = environment_section(sweep, sweep.iloc[0:0], {"r": {"executor": "ray"}}, ["r"])
    assert any("measured on 2 machines (node-a, node-b)" in note for note in section.notes)
    fields = {row[0]: row[1] for row in section.tables[0].rows}
    assert fields["executor"] == "ray" and fields["measured on (hosts)"] == "node-a, node-b"


def test_learning_curves_show_mean_and_spread_over_seeds_per_block() -> None:
    import pandas as pd

    from nlbench.report.plots import learning_curve_plot_data, render_png

    def curve(*accuracies: float) -> list[dict]:
        return [{"step": 50 * (i + 1), "train_loss": 1.0, "test_accuracy": a} for i, a in enumerate(accuracies)]

    rows = [
        {"run": "r", "task": "same_pair", "block": "nl", "options": "{}", "status": "ok", "learning_curve": curve(0.5, 0.7)},
        {"run": "r", "task": "same_pair", "block": "nl", "options": "{}", "status": "ok", "learning_curve": curve(0.5, 0.9)},
        {"run": "r", "task": "same_pair", "block": "local", "options": "{}", "status": "ok",
         "learning_curve": [{"step": 50, "train_loss": 1.0, "test_accuracy": None}, *curve(0.5, 0.5)[1:]]},
        {"run": "r", "task": "same_pair", "block": "a2", "options": "{}", "status": "error", "learning_curve": curve(0.1)},
    ]
    (plot,) = learning_curve_plot_data(pd.DataFrame(rows))
    series = {s.label: s for s in plot.series}
    assert set(series) == {"nl", "local"}, "a failed run draws no curve"
    assert series["nl"].x == (50.0, 100.0) and series["nl"].y == pytest.approx((0.5, 0.8))
    assert (series["nl"].y_low, series["nl"].y_high) == ((0.5, 0.7), (0.5, 0.9)), "bars: the seeds' range"
    assert series["local"].x == (100.0,) and series["local"].y_low == (), "one seed: no spread drawn"
    assert not plot.logx and not plot.logy
    assert render_png(plot).png[:4] == b"\x89PNG"
    final_only = pd.DataFrame([{**rows[0], "learning_curve": curve(0.9)}])
    assert learning_curve_plot_data(final_only) == (), "one evaluation at the end is no curve"
    # a seed that stopped at its plateau keeps its last (validation) accuracy at later steps
    validation = [{"step": 50 * (i + 1), "train_loss": 1.0, "validation_accuracy": a} for i, a in enumerate((0.6, 1.0))]
    stopped = [{**rows[0], "learning_curve": validation},
               {**rows[0], "learning_curve": [*validation, {"step": 150, "train_loss": 1.0, "validation_accuracy": 0.8}]}]
    (plot,) = learning_curve_plot_data(pd.DataFrame(stopped))
    assert plot.series[0].x == (50.0, 100.0, 150.0) and plot.series[0].y == pytest.approx((0.6, 1.0, 0.9))
    assert "validation accuracy" in plot.ylabel
