"""Build a :class:`~nlbench.report.model.Report` from stored run directories only.

Everything here reads the store (``results.jsonl``, ``manifest.json``, ``suite.toml``)
and computes with pandas/numpy/scipy and :mod:`nlbench.fit`; torch is never imported,
so a report can be rebuilt on any machine that holds the results.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from nlbench import store
from nlbench.fit import METRICS, crossovers, fit_run
from nlbench.report.compare import compare_runs
from nlbench.report.formatting import (
    as_float, block_label, case_text, first_line, interval, is_missing, num, percent, pick_prefix, scaled, signed,
    size_text,
)
from nlbench.report.model import Plot, Report, Section, Table
from nlbench.report.plots import STATUS_TEXT, cost_plot_data, pareto_plot_data, render_heatmaps, render_png
from nlbench.paper import paper_comparison
from nlbench.suite import read_paper_table
from nlbench.report.tables import (
    COST_COLUMNS, IDENTITY_BLOCK, counter_comparison, delta_vs_identity, failed_cases, latency_noise,
    memory_limits, noisiest_cases, probe_rows, probe_summary, receptive_field_rows, sweep_rows,
)

METRIC_TITLES: Mapping[str, str] = {
    "macs": "MACs",
    "latency_fwd_ms": "forward latency [ms]",
    "latency_fwdbwd_ms": "forward+backward latency [ms]",
    "peak_mem_fwd_bytes": "peak memory, forward [bytes]",
    "peak_mem_fwdbwd_bytes": "peak memory, forward+backward [bytes]",
}
FAILURE_CELLS = {"oom": "OOM", "timeout": "timeout", "error": "error", "skipped": "skipped"}
MAX_CROSSOVER_ROWS = 60
MAX_COMPARE_ROWS = 200


def run_ids(run_dirs: Sequence[Path | str]) -> tuple[str, ...]:
    """The run ids (directory names) of ``run_dirs``, as :func:`nlbench.store.load` names them."""
    return tuple(Path(d).name for d in run_dirs)


def report_id(run_dirs: Sequence[Path | str]) -> str:
    """``<run>`` for one run, ``<runA>-vs-<runB>`` (…) for several."""
    ids = run_ids(run_dirs)
    if not ids:
        raise ValueError("report_id needs at least one run directory")
    return "-vs-".join(ids)


def _check_run_dirs(run_dirs: Iterable[Path | str]) -> list[Path]:
    if isinstance(run_dirs, (str, Path)):
        run_dirs = [run_dirs]
    dirs = [Path(d) for d in run_dirs]
    if not dirs:
        raise ValueError("build_report needs at least one run directory")
    for directory in dirs:
        if not directory.is_dir():
            raise store.StoreError(f"{directory}: no such run directory")
    names = [d.name for d in dirs]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"run directories must have distinct names (the run id); repeated: {duplicates}")
    return dirs


def build_report(run_dirs: Sequence[Path | str]) -> Report:
    """Read one or more run directories and build the report (tables, plots, findings).

    With several runs the first is the baseline and each later one a candidate in
    the run-comparison section; plots and tables label series by run.
    """
    dirs = _check_run_dirs(run_dirs)
    manifests = {d.name: store.read_manifest(d) for d in dirs}
    frame = store.load(dirs)
    paper_tables = {d.name: read_paper_table(d) for d in dirs}
    return assemble_report(frame, manifests, paper_tables, run_order=[d.name for d in dirs])


def assemble_report(
    df: pd.DataFrame,
    manifests: Mapping[str, Mapping[str, Any]],
    paper_tables: Mapping[str, Any] | None = None,
    *,
    run_order: Sequence[str] | None = None,
) -> Report:
    """The report of a loaded results frame (``run`` column naming each run), its
    runs' manifests and paper tables. Pure: no file is read or written."""
    order = list(run_order or manifests.keys())
    if not order:
        raise ValueError("assemble_report needs at least one run")
    paper_tables = paper_tables or {}
    several = len(order) > 1
    sweep = sweep_rows(df)
    probes = probe_rows(df)
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        fits = _fits(sweep, order)
        crossings = _crossovers(sweep, order)
    counters = counter_comparison(sweep)
    sections = [
        _environment_section(sweep, probes, manifests, order),
        _cost_section(sweep, "N", several),
        _cost_section(sweep, "C", several),
        _verdict_section(fits, several),
        _crossover_section(crossings, several),
        _delta_section(sweep, several),
        _failure_section(sweep, several),
        _counter_section(counters, several),
    ]
    for run in order:
        table = paper_tables.get(run)
        if table is not None:
            sections.append(_paper_section(sweep.loc[sweep["run"] == run] if len(sweep) else sweep, table, run, several))
    if not probes.empty:
        sections.append(_probe_section(probes, several))
    fields = receptive_field_rows(df)
    if not fields.empty:
        sections.append(_receptive_field_section(fields))
    sections.append(_noise_section(sweep))
    if several:
        sections.append(_comparison_section(sweep, order))
    findings = summary_findings(sweep, fits, counters)
    summary = Section("summary", "Summary", intro="What to take away, computed from the stored results:",
                      notes=tuple(findings))
    suites = sorted({str(m.get("suite", "?")) for m in manifests.values()})
    title = f"nlbench report: {' vs '.join(order)}"
    if suites:
        title += f" (suite{'s' if len(suites) > 1 else ''} {', '.join(suites)})"
    return Report("-vs-".join(order), title, tuple(order), tuple(findings), (summary, *sections))


# ----------------------------------------------------------------------------------
# Computations per run
# ----------------------------------------------------------------------------------


def _per_run(sweep: pd.DataFrame, order: Sequence[str], compute: Callable[[pd.DataFrame], pd.DataFrame]) -> pd.DataFrame:
    parts = []
    for run in order:
        rows = sweep.loc[sweep["run"] == run]
        if rows.empty:
            continue
        result = compute(rows)
        if len(result):
            parts.append(result.assign(run=run))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def _fits(sweep: pd.DataFrame, order: Sequence[str]) -> pd.DataFrame:
    if sweep.empty:
        return pd.DataFrame()
    return _per_run(sweep, order, fit_run)


def _crossovers(sweep: pd.DataFrame, order: Sequence[str]) -> pd.DataFrame:
    if sweep.empty:
        return pd.DataFrame()

    def compute(rows: pd.DataFrame) -> pd.DataFrame:
        parts = []
        for metric in METRICS:
            if not pd.to_numeric(rows.get(COST_COLUMNS[metric]), errors="coerce").notna().any():
                continue
            for axis in ("N", "C"):
                found = crossovers(rows, metric, axis)
                if len(found):
                    parts.append(found)
        return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()

    return _per_run(sweep, order, compute)


# ----------------------------------------------------------------------------------
# Sections
# ----------------------------------------------------------------------------------


def _table(title: str, columns: Sequence[str], rows: Iterable[Sequence[Any]], note: str = "") -> Table:
    return Table(title, tuple(columns), tuple(tuple(str(cell) for cell in row) for row in rows), note)


def _render_plots(data: Iterable[Any]) -> tuple[Plot, ...]:
    return tuple(render_png(item) for item in data)


ENVIRONMENT_FIELDS: tuple[tuple[str, str, str], ...] = (
    # (label, where, key): where is "manifest" or "environment"
    ("suite", "manifest", "suite"),
    ("started at (UTC)", "manifest", "started_at"),
    ("torch", "environment", "torch_version"),
    ("python", "environment", "python_version"),
    ("nlbench", "environment", "nlbench_version"),
    ("device", "environment", "device"),
    ("device name", "environment", "device_name"),
    ("CUDA", "environment", "cuda_version"),
    ("CPU model", "environment", "cpu_model"),
    ("CPU count", "environment", "cpu_count"),
    ("torch threads", "environment", "torch_threads"),
    ("latency threads (suite)", "manifest", "threads"),
    ("dtypes", "manifest", "dtypes"),
    ("measured", "manifest", "measure"),
    ("commit", "environment", "commit"),
    ("host", "environment", "host"),
    ("platform", "environment", "platform"),
    ("only blocks", "manifest", "only_blocks"),
    ("device override", "manifest", "device_override"),
    ("plugins", "manifest", "plugins"),
)


def _text(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value) if value else "—"
    return "—" if is_missing(value) or value == "" else str(value)


def _environment_section(sweep: pd.DataFrame, probes: pd.DataFrame, manifests: Mapping[str, Mapping[str, Any]],
                         order: Sequence[str]) -> Section:
    rows = []
    for label, where, key in ENVIRONMENT_FIELDS:
        values = []
        for run in order:
            manifest = manifests.get(run, {})
            source = manifest.get("environment", {}) if where == "environment" else manifest
            values.append(_text(source.get(key)))
        if key in ("cuda_version", "only_blocks", "device_override", "plugins") and all(v == "—" for v in values):
            continue
        rows.append([label, *values])
    for label, column in (("memory method", "memory_method"), ("latency threads (measured)", "latency_threads")):
        values = []
        for run in order:
            rows_run = sweep.loc[sweep["run"] == run] if len(sweep) and column in sweep.columns else pd.DataFrame()
            found = sorted({_text(v) for v in rows_run.get(column, pd.Series(dtype=object)) if not is_missing(v)})
            values.append(", ".join(found) or "—")
        rows.append([label, *values])
    counts = []
    for run in order:
        rows_run = sweep.loc[sweep["run"] == run] if len(sweep) else sweep
        status = rows_run["status"].value_counts().to_dict() if len(rows_run) else {}
        text = ", ".join(f"{k}: {v}" for k, v in sorted(status.items())) or "none"
        n_probe = int((probes["run"] == run).sum()) if len(probes) else 0
        counts.append(f"{len(rows_run)} cases ({text})" + (f"; {n_probe} probe results" if n_probe else ""))
    rows.append(["results", *counts])
    table = _table("Environment (from each run's manifest)", ["field", *order], rows)
    return Section("environment", "Environment", tables=(table,))


def _cost_section(sweep: pd.DataFrame, axis: str, several: bool) -> Section:
    key, title = ("cost-vs-resolution", "Cost vs resolution") if axis == "N" else ("cost-vs-channels", "Cost vs channels")
    data = cost_plot_data(sweep, axis, several_runs=several) if len(sweep) else []
    if not data:
        what = "resolution (N = H·W at a fixed C)" if axis == "N" else "channel count (C at a fixed H×W)"
        return Section(key, title, intro=f"No block was measured at two or more sizes along {what} in this run.")
    intro = ("Log-log, one line per block: measured points (solid), the fitted cost model of "
             "nlbench.fit (dotted) and failed cases as ✕ at the size that failed, placed on the "
             "extrapolated fit (legend: the status). MACs are multiply-adds; FLOPs = 2·MACs.")
    return Section(key, title, intro=intro, plots=_render_plots(data))


def _fixed_text(row: Mapping[str, Any]) -> str:
    if row["axis"] == "N":
        text = f"C={int(as_float(row['fixed_channels']))}"
    else:
        text = size_text(row["fixed_height"], row["fixed_width"])
    frames = row.get("frames")
    if not is_missing(frames):
        text += f", T={int(as_float(frames))}"
    batch = as_float(row.get("batch"))
    if math.isfinite(batch) and batch != 1:
        text += f", B{int(batch)}"
    for key in ("dtype", "device"):
        value = row.get(key)
        if isinstance(value, str) and value and value not in ("float32", "cpu"):
            text += f", {value}"
    return text


def _verdict_section(fits: pd.DataFrame, several: bool) -> Section:
    intro = ("How each cost grows with N = H·W (at fixed C) and with C (at fixed H×W), held against the "
             "block's claimed complexity (shared/spec/blocks.md). Slopes are log-log exponents with "
             "95 % CIs; the asymptotic slope is fitted over the three largest sizes; the dominant term "
             "is the largest share of the fitted cost at the largest size.")
    if fits.empty:
        return Section("verdicts", "Complexity verdicts", intro=intro,
                       notes=("No block was measured at two or more sizes along one axis: nothing to fit.",))
    columns = (["run"] if several else []) + [
        "block", "metric", "axis", "fixed", "sizes", "slope [95 % CI]", "asymptotic slope [95 % CI]",
        "dominant term", "claimed", "claimed exponent", "verdict", "reason"]
    metric_order = {m: i for i, m in enumerate(METRICS)}
    ordered = fits.assign(_m=fits["metric"].map(metric_order)).sort_values(["_m", "axis", "block"], kind="stable")
    tables = []
    for title, selected in (("Verdicts: MACs", ordered.loc[ordered["metric"] == "macs"]),
                            ("Verdicts: latency and memory", ordered.loc[ordered["metric"] != "macs"])):
        rows = []
        for _, row in selected.iterrows():
            span = (f"{row['axis']}∈[{num(row['x_min'])}, {num(row['x_max'])}] ({int(row['n_points'])})"
                    if row["n_points"] else f"{int(row['n_zero'])} sizes, all zero")
            rows.append(([row["run"]] if several else []) + [
                block_label(row["block"], row["options"]), METRIC_TITLES.get(row["metric"], row["metric"]),
                row["axis"], _fixed_text(row), span,
                interval(row["slope"], row["slope_ci_low"], row["slope_ci_high"]),
                interval(row["asymptotic_slope"], row["asymptotic_ci_low"], row["asymptotic_ci_high"]),
                row["dominant_term"], _text(row["claimed"]), num(row["claimed_exponent"]), row["verdict"],
                row["verdict_reason"]])
        if rows:
            tables.append(_table(title, columns, rows))
    counts = fits.loc[fits["metric"] == "macs", "verdict"].value_counts().to_dict()
    notes = (f"MACs: {', '.join(f'{v} {k}' for k, v in sorted(counts.items()))}.",) if counts else ()
    notes += ("Latency verdicts on a shared or noisy machine are often inconclusive: see Latency noise.",)
    return Section("verdicts", "Complexity verdicts", intro=intro, notes=notes, tables=tuple(tables))


def _crossover_section(crossings: pd.DataFrame, several: bool) -> Section:
    intro = ("Where one block's cost overtakes another's between measured sizes (log-log interpolation); "
             "pairs that never cross in the measured range are counted, not listed.")
    if crossings.empty:
        return Section("crossovers", "Crossovers", intro=intro,
                       notes=("No pair of blocks was measured at two or more common sizes.",))
    found = crossings.loc[crossings["crossover_x"].notna()]
    never = crossings.loc[crossings["crossover_x"].isna()]
    columns = (["run"] if several else []) + ["metric", "axis", "fixed", "block a", "block b", "crossover at",
                                              "≈ side per frame (H=W)", "costlier above", "interpolated",
                                              "direction"]
    metric_order = {m: i for i, m in enumerate(METRICS)}
    found = found.assign(_m=found["metric"].map(metric_order)).sort_values(["_m", "axis", "block_a", "block_b"],
                                                                          kind="stable")
    rows = []
    for _, row in found.head(MAX_CROSSOVER_ROWS).iterrows():
        fixed = {"axis": row["axis"], "fixed_channels": row["fixed_channels"], "fixed_height": row["fixed_height"],
                 "fixed_width": row["fixed_width"], "frames": row["frames"], "batch": row["batch"],
                 "dtype": row["dtype"], "device": row["device"]}
        rows.append(([row["run"]] if several else []) + [
            METRIC_TITLES.get(row["metric"], row["metric"]), row["axis"], _fixed_text(fixed),
            block_label(row["block_a"], row["options_a"]), block_label(row["block_b"], row["options_b"]),
            f"{row['axis']}≈{num(row['crossover_x'])}", num(row["crossover_resolution"]), _text(row["costlier_above"]),
            "yes" if row["interpolated"] else "no", row["direction"]])
    notes = [f"{len(never)} block pairs (over all costs) never cross in their common measured range."]
    if len(found) > MAX_CROSSOVER_ROWS:
        notes.append(f"Showing the first {MAX_CROSSOVER_ROWS} of {len(found)} crossings.")
    noisy = found["metric"].str.startswith("latency").sum()
    if noisy:
        notes.append("Latency crossings between blocks of similar cost can be noise; check the IQRs.")
    tables = (_table("Crossovers", columns, rows),) if rows else ()
    if not rows:
        notes.insert(0, "No crossover: in every measured pair one block is never costlier than the other.")
    return Section("crossovers", "Crossovers", intro=intro, notes=tuple(notes), tables=tables)


DELTA_UNITS: Mapping[str, tuple[str, str]] = {
    # metric -> (quantity, unit) for the column label
    "macs": ("Δ MACs vs identity", ""),
    "latency_fwd_ms": ("Δ forward latency (median) vs identity", "ms"),
    "latency_fwdbwd_ms": ("Δ forward+backward latency (median) vs identity", "ms"),
    "peak_mem_fwd_bytes": ("Δ peak memory, forward, vs identity", "B"),
    "peak_mem_fwdbwd_bytes": ("Δ peak memory, forward+backward, vs identity", "B"),
}


def _delta_section(sweep: pd.DataFrame, several: bool) -> Section:
    intro = ("Each block's cost minus the cost of `identity` (the harness overhead: input, call, output) at "
             "the same case shape, so that what remains is the block's own cost.")
    deltas = delta_vs_identity(sweep)
    if deltas.empty:
        has_identity = len(sweep) and (sweep["block"] == IDENTITY_BLOCK).any()
        why = ("no other block shares a case shape with identity" if has_identity
               else "this run has no `identity` baseline case")
        return Section("deltas", "Deltas against identity", intro=intro, notes=(f"No delta table: {why}.",))
    deltas = deltas.assign(
        _case=[case_text(row) for _, row in deltas.iterrows()],
        _order=[(as_float(r["channels"]), as_float(r["height"]) * as_float(r["width"]) * (
            1.0 if is_missing(r["frames"]) else as_float(r["frames"])), as_float(r["batch"])) for _, r in deltas.iterrows()],
        _label=[block_label(r["block"], r["options"], r["run"] if several else None) for _, r in deltas.iterrows()],
    )
    case_order = [c for _, c in sorted({(o, c) for o, c in zip(deltas["_order"], deltas["_case"])})]
    tables = []
    for metric, (quantity, unit) in DELTA_UNITS.items():
        values = deltas[f"{metric}_delta"]
        taken = deltas[f"{metric}_block"].notna() | (deltas["status"] != "ok")
        if not values.notna().any():
            continue
        if unit == "ms":
            factor, unit_text = 1.0, "ms"
        else:
            factor, prefix, power = pick_prefix(values)
            if unit:
                unit_text = f"{prefix}{unit} = {power} {unit}" if prefix else unit
            else:
                unit_text = f"{prefix} = {power} MACs" if prefix else "MACs"
        label = f"{quantity} [{unit_text}]"
        cells: dict[str, dict[str, str]] = {}
        for _, row in deltas.loc[taken].iterrows():
            if row["status"] != "ok":
                text = FAILURE_CELLS.get(row["status"], row["status"])
            elif row["identity_status"] != "ok":
                text = f"identity {FAILURE_CELLS.get(row['identity_status'], row['identity_status'])}"
            else:
                text = signed(row[f"{metric}_delta"], factor)
            cells.setdefault(row["_label"], {})[row["_case"]] = text
        used = [c for c in case_order if any(c in v for v in cells.values())]
        rows = [[label_, *[cells[label_].get(c, "") for c in used]] for label_ in cells]
        tables.append(_table(label, [f"block (cells: {unit_text})", *used], rows))
    notes = ("Latency deltas are differences of medians; memory deltas of peaks. "
             "A failed case shows its status (OOM, timeout, error, skipped) instead of a number.",)
    return Section("deltas", "Deltas against identity", intro=intro, notes=notes, tables=tuple(tables))


def _failure_section(sweep: pd.DataFrame, several: bool) -> Section:
    intro = "Cases that did not finish are data: where each block stops fitting in memory or time."
    failed = failed_cases(sweep)
    if failed.empty:
        n = len(sweep)
        return Section("failures", "Failures and limits", intro=intro,
                       notes=(f"All {n} cases finished (no out-of-memory, timeout, error or skip).",))
    limits = memory_limits(sweep)
    limit_rows = []
    for _, row in limits.iterrows():
        limit_rows.append(([row["run"]] if several else []) + [
            block_label(row["block"], row["options"]), f"C{int(as_float(row['channels']))}",
            row["largest_ok_size"] or "none", num(row["largest_ok_positions"]), row["first_failed_size"],
            num(row["first_failed_positions"]), STATUS_TEXT.get(row["first_failed_status"], row["first_failed_status"]),
            str(row["n_failed"])])
    limit_table = _table("Limits: the largest size each block ran at, and the first that failed",
                         (["run"] if several else []) + ["block", "channels", "largest ok size", "largest ok N",
                                                         "first failed size", "first failed N", "status",
                                                         "failed cases"], limit_rows)
    case_rows = [([row["run"]] if several else []) + [
        block_label(row["block"], row["options"]), case_text(row), row["status"], first_line(row.get("error"))]
        for _, row in failed.iterrows()]
    case_table = _table("Failed cases", (["run"] if several else []) + ["block", "case", "status", "error (first line)"],
                        case_rows)
    counts = failed["status"].value_counts().to_dict()
    notes = (f"{len(failed)} of {len(sweep)} cases failed: "
             + ", ".join(f"{v} {STATUS_TEXT.get(k, k)}" for k, v in sorted(counts.items())) + ".",)
    return Section("failures", "Failures and limits", intro=intro, notes=notes, tables=(limit_table, case_table))


def _counter_section(counters: pd.DataFrame, several: bool) -> Section:
    intro = ("Our audited MAC count beside fvcore's and ptflops' on the same module and input. A ratio "
             "below 1 means the tool counts fewer multiply-adds than happen (it undercounts, usually by "
             "skipping operators it has no formula for, e.g. FFTs, matmuls or softmax); above 1, it overcounts.")
    if counters.empty:
        return Section("counters", "Counter comparison", intro=intro,
                       notes=("No case has fvcore or ptflops counts (add \"counters\" to the suite's measure).",))
    factor, prefix, power = pick_prefix(pd.concat([counters["macs"], counters["fvcore_macs"], counters["ptflops_macs"]]))
    rows = []
    for (run, block, options), group in counters.groupby(["run", "block", "options"], sort=True):
        largest = group.sort_values(["positions", "channels"]).iloc[-1]

        def span(column: str) -> str:
            values = group[column].dropna()
            return f"{num(values.min())}–{num(values.max())}" if len(values) else "—"

        ops = sorted({op for ops_ in group["uncounted_ops"] for op in (ops_ or [])})
        rows.append(([run] if several else []) + [
            block_label(block, options), case_text(largest), scaled(largest["macs"], factor),
            scaled(largest["fvcore_macs"], factor), num(largest["fvcore_ratio"]),
            scaled(largest["ptflops_macs"], factor), num(largest["ptflops_ratio"]),
            span("fvcore_ratio"), span("ptflops_ratio"), ", ".join(ops) or "none"])
    label = f"[{prefix} = {power}]" if prefix else "[MACs]"
    columns = (["run"] if several else []) + [
        "block", "case (largest)", f"ours MACs {label}", f"fvcore MACs {label}", "fvcore / ours",
        f"ptflops MACs {label}", "ptflops / ours", "fvcore / ours, all sizes", "ptflops / ours, all sizes",
        "ops our counter has no formula for"]
    return Section("counters", "Counter comparison", intro=intro,
                   tables=(_table("MACs: nlbench vs fvcore vs ptflops", columns, rows),))


def _paper_section(sweep: pd.DataFrame, table: Any, run: str, several: bool) -> Section:
    comparison = paper_comparison(sweep, table)
    giga = float(table.giga)
    g_text = "2³⁰" if giga == 2.0**30 else f"{giga:g}"
    rows = [[row["input"], row["block"], row["maps"], num(row["paper_gmacs"]), num(row["ours_gmacs"]),
             percent(row["gmacs_rel_error"], sign=True), num(row["paper_params_m"]), num(row["ours_params_m"]),
             percent(row["params_rel_error"], sign=True), num(row["ours_gflops_1e9"])]
            for _, row in comparison.iterrows()]
    columns = ["input", "block", "maps summed", f"paper GMACs [G = {g_text}]", f"ours GMACs [G = {g_text}]",
               "GMACs rel. error", "paper params [M = 10⁶]", "ours params [M = 10⁶]", "params rel. error",
               "ours GFLOPs [2·MACs / 10⁹]"]
    intro = (f"{table.title}. The paper's \"GFLOPs\" are multiply-adds divided by G = {g_text} "
             f"(so they are GMACs in our terms); our cost sums the blocks the paper inserted, one per map. "
             f"Params in millions (10⁶). Relative error = (ours − paper) / paper.")
    missing = int(comparison["ours_gmacs"].isna().sum())
    notes = (f"{missing} row(s) lack a measurement (cases missing or failed): shown as —.",) if missing else ()
    key = "paper" if not several else f"paper-{run}"
    return Section(key, "Paper-table comparison" + (f" [{run}]" if several else ""), intro=intro, notes=notes,
                   tables=(_table(table.title, columns, rows),))


def _receptive_field_section(fields: pd.DataFrame) -> Section:
    """How far each block lets the probe network see: the share of input pixels that
    reach the centre output, the effective radius, and the heat maps."""
    rows, maps = [], []
    for _, row in fields.sort_values(["task", "fraction_reached"], ascending=[True, False]).iterrows():
        rows.append([row["task"], row["block"], f"{100 * float(row['fraction_reached']):.1f} %",
                     f"{float(row['erf_radius']):.1f}", str(int(row["reach_radius"])), str(int(row["backbone_rf"]))])
        if isinstance(row.get("heatmap"), list):
            maps.append((f"{row['block']} ({100 * float(row['fraction_reached']):.0f} %)", np.asarray(row["heatmap"])))
    table = _table("Receptive field in the probe network",
                   ["task", "block", "input pixels reached", "ERF radius (px, 95 % of |grad|)",
                    "reach radius (px)", "backbone RF (px)"], rows)
    intro = ("Gradient of the centre position of the map the head pools, with respect to the input image, in "
             "the probe network with the block's parameters perturbed from their identity initialisation. "
             "A block that gives global context reaches every pixel; the backbone alone reaches only its "
             "receptive field.")
    plots = (render_heatmaps("receptive-fields", "Receptive fields", maps),) if maps else ()
    return Section("receptive-fields", "Receptive fields", intro=intro, tables=(table,), plots=plots)


def _probe_section(probes: pd.DataFrame, several: bool) -> Section:
    summary = probe_summary(probes)
    factor, prefix, power = pick_prefix(summary["macs"])
    tables = []
    for (run, task), group in summary.groupby(["run", "task"], sort=True):
        rows = []
        for _, row in group.sort_values("accuracy_mean", ascending=False).iterrows():
            mean, std = as_float(row["accuracy_mean"]), as_float(row["accuracy_std"])
            accuracy = "—" if not math.isfinite(mean) else (
                f"{mean:.3f} ± {std:.3f}" if math.isfinite(std) else f"{mean:.3f} (1 seed)")
            rows.append([block_label(row["block"], row["options"]), accuracy, str(row["n_seeds"]),
                         str(row["n_failed"]), scaled(row["macs"], factor), num(row["params"]), num(row["steps"]),
                         num(row["steps_per_s_median"]), "yes" if row["pareto"] else ""])
        mac_label = f"MACs [{prefix} = {power}]" if prefix else "MACs"
        title = f"Probe '{task}'" + (f" [{run}]" if several else "")
        tables.append(_table(title, ["block", "accuracy (mean ± std over seeds)", "seeds", "failed seeds",
                                     mac_label, "params", "steps", "steps/s (median)", "Pareto-optimal"], rows))
    intro = ("Short training probes: test accuracy (fraction correct, mean ± sample std over seeds) next to "
             "the probe network's MACs for one image. Pareto-optimal: no other block is at least as accurate "
             "with fewer MACs.")
    plots = _render_plots(pareto_plot_data(summary, several_runs=several))
    return Section("probes", "Probe results", intro=intro, tables=tuple(tables), plots=plots)


def _noise_section(sweep: pd.DataFrame) -> Section:
    intro = ("Latency is reported as the median and IQR of raw samples. A case is noisy when IQR/median > 10 %; "
             "only cases with a median ≥ 1 ms are judged (below that, timer resolution dominates).")
    noise = latency_noise(sweep)
    if noise.empty:
        return Section("noise", "Latency noise", intro=intro, notes=("Latency was not measured in this run.",))
    rows = [[row["latency"], str(row["n_cases"]), str(row["n_timed"]), str(row["n_noisy"]),
             percent(row["noisy_fraction"])] for _, row in noise.iterrows()]
    tables = [_table("Noisy cases", ["latency", "cases measured", "cases ≥ 1 ms", "IQR/median > 10 %",
                                     "noisy fraction"], rows)]
    worst = noisiest_cases(sweep)
    if len(worst):
        tables.append(_table("Noisiest forward-latency cases", ["block", "case", "median [ms]", "IQR [ms]",
                                                                "IQR / median"],
                             [[block_label(r["block"], r["options"]), case_text(r), num(r["_median"]), num(r["_iqr"]),
                               percent(r["noise"])] for _, r in worst.iterrows()]))
    warn = noise.loc[noise["noisy_fraction"] > 0]
    notes = tuple(f"Warning: {int(r['n_noisy'])} of {int(r['n_timed'])} {r['latency']} cases have IQR/median > 10 %: "
                  "treat their latency fits and crossovers with care." for _, r in warn.iterrows())
    return Section("noise", "Latency noise", intro=intro, notes=notes, tables=tuple(tables))


def _comparison_section(sweep: pd.DataFrame, order: Sequence[str]) -> Section:
    intro = ("Each later run (candidate) against the first (baseline), per case matched on block, options, "
             "channels, H, W, frames, batch and dtype (not device). Ratio = candidate median / baseline median; "
             "p from a two-sided Mann-Whitney U test on the raw samples; verdict at α = 0.05.")
    baseline = sweep.loc[sweep["run"] == order[0]]
    tables, notes = [], []
    for candidate_run in order[1:]:
        result = compare_runs(baseline, sweep.loc[sweep["run"] == candidate_run])
        if result.empty:
            notes.append(f"{candidate_run} vs {order[0]}: no matching case with latency measurements.")
            continue
        counts = result["verdict"].value_counts().to_dict()
        notes.append(f"{candidate_run} vs {order[0]}: " + ", ".join(f"{v} {k}" for k, v in sorted(counts.items())) + ".")
        rows = []
        for _, row in result.head(MAX_COMPARE_ROWS).iterrows():
            case = case_text(row)
            devices = f"{_text(row['device_baseline'])} → {_text(row['device_candidate'])}"
            rows.append([block_label(row["block"], row["options"]), case, row["metric"].replace("latency_", "")
                         .replace("_ms", ""), devices, num(row["baseline_median_ms"]), num(row["baseline_iqr_ms"]),
                         num(row["candidate_median_ms"]), num(row["candidate_iqr_ms"]), num(row["ratio"]),
                         f"{row['n_baseline']} / {row['n_candidate']}",
                         "—" if is_missing(row["p_value"]) else f"{row['p_value']:.3g}", row["verdict"]])
        if len(result) > MAX_COMPARE_ROWS:
            notes.append(f"Showing the first {MAX_COMPARE_ROWS} of {len(result)} comparisons.")
        tables.append(_table(f"{candidate_run} (candidate) vs {order[0]} (baseline)",
                             ["block", "case", "latency", "device base → cand", "baseline median [ms]",
                              "baseline IQR [ms]", "candidate median [ms]", "candidate IQR [ms]",
                              "ratio cand / base", "samples base / cand", "p (Mann-Whitney U)", "verdict"], rows))
    if any(("too few samples" in n) for n in notes):
        notes.append("\"too few samples\": with n samples per side a Mann-Whitney test cannot reach p < 0.05 "
                     "(e.g. 3 vs 3: the smallest possible p is 0.1); raise latency.min_samples.")
    return Section("comparison", "Run comparison", intro=intro, notes=tuple(notes), tables=tuple(tables))


# ----------------------------------------------------------------------------------
# Summary findings
# ----------------------------------------------------------------------------------


def summary_findings(sweep: pd.DataFrame, fits: pd.DataFrame, counters: pd.DataFrame, *,
                     limit: int = 3) -> list[str]:
    """The few things a reader should know, computed from the data: the costliest and
    cheapest block at the largest size, then the most salient of: a claim that does
    not hold, the most limiting failure, the counters' worst undercount."""
    if sweep.empty:
        return ["This run holds no sweep results."]
    cost = _finding_cost(sweep)
    salient = [f for f in (_finding_failure(sweep), _finding_verdict(fits), _finding_counters(counters)) if f]
    fallback = [f for f in (_finding_all_ran(sweep), _finding_verdicts_fine(fits)) if f]
    findings = ([cost] if cost else []) + salient + fallback
    return findings[:limit]


def _positions(frame: pd.DataFrame) -> pd.Series:
    frames = pd.to_numeric(frame.get("frames"), errors="coerce").fillna(1.0)
    return pd.to_numeric(frame["height"], errors="coerce") * pd.to_numeric(frame["width"], errors="coerce") * frames


def _finding_cost(sweep: pd.DataFrame) -> str | None:
    ok = sweep.loc[(sweep["status"] == "ok") & (sweep["block"] != IDENTITY_BLOCK)].copy()
    if ok.empty:
        return None
    ok["_n"] = _positions(ok)
    ok["_macs"] = pd.to_numeric(ok["macs"], errors="coerce")
    ok = ok.loc[ok["_macs"].notna()]
    if ok.empty:
        return None
    # The largest case at which at least two blocks ran (or the largest at all): largest N, then largest C.
    counts = ok.groupby("_n")["block"].nunique()
    sizes = counts.index[counts >= 2] if (counts >= 2).any() else counts.index
    at = ok.loc[ok["_n"] == sizes.max()]
    per_c = at.groupby("channels")["block"].nunique()
    channels = (per_c.index[per_c >= 2] if (per_c >= 2).any() else per_c.index).max()
    at = at.loc[at["channels"] == channels]
    per_block = at.groupby(["block", "options"], sort=False).agg(
        macs=("_macs", "median"), latency=("latency_fwd_ms_median", lambda s: pd.to_numeric(s, errors="coerce").median()))
    per_block = per_block.sort_values("macs")
    first = at.iloc[0]
    where = f"{size_text(first['height'], first['width'], first.get('frames'))}, C={int(as_float(channels))}"
    (cheap_block, cheap_opts), cheap = per_block.index[0], per_block.iloc[0]
    (dear_block, dear_opts), dear = per_block.index[-1], per_block.iloc[-1]

    factor, prefix, _ = pick_prefix([dear["macs"]])  # k/M/G = 10³/10⁶/10⁹, as the report's header says

    def describe(macs: float, latency: float) -> str:
        text = f"{scaled(macs, factor)} {prefix}MACs ({scaled(2 * macs, factor)} {prefix}FLOPs)"
        return text + (f", {num(latency)} ms forward (median)" if math.isfinite(as_float(latency)) else "")

    missing = sweep.loc[(sweep["status"] != "ok") & (_positions(sweep) == sizes.max())
                        & (sweep["channels"] == channels)]
    absent = ""
    if len(missing):
        absent = " Not measured there: " + "; ".join(
            f"{block_label(r['block'], r['options'])}: {STATUS_TEXT.get(r['status'], r['status'])}"
            for _, r in missing.iterrows()) + "."
    if len(per_block) == 1:
        return (f"At the largest size measured ({where}) only **{block_label(dear_block, dear_opts)}** ran: "
                f"{describe(dear['macs'], dear['latency'])}.{absent}")
    ratio = dear["macs"] / cheap["macs"] if cheap["macs"] > 0 else math.inf
    times = f"{num(ratio)}× the MACs of" if math.isfinite(ratio) else "more MACs than"
    return (f"At the largest size measured ({where}), **{block_label(dear_block, dear_opts)}** is the most expensive "
            f"block: {describe(dear['macs'], dear['latency'])}, {times} the cheapest, "
            f"**{block_label(cheap_block, cheap_opts)}** ({describe(cheap['macs'], cheap['latency'])}).{absent}")


def _finding_verdict(fits: pd.DataFrame) -> str | None:
    if fits.empty:
        return None
    # The claims are time complexities: judge them on MACs first, then latency (not memory),
    # and not on identity, whose cost is the harness's own by definition.
    preference = {"macs": 0, "latency_fwd_ms": 1, "latency_fwdbwd_ms": 1}
    refuted = fits.loc[(fits["verdict"] == "does not hold") & fits["metric"].isin(list(preference))
                       & (fits["block"] != IDENTITY_BLOCK)].copy()
    if refuted.empty:
        return None
    refuted["_p"] = refuted["metric"].map(preference)
    refuted["_gap"] = -(refuted["asymptotic_slope"] - refuted["claimed_exponent"]).abs()
    row = refuted.sort_values(["_p", "_gap"]).iloc[0]
    others = len(refuted) - 1
    more = (f" ({others} other block/metric pair{'s' if others != 1 else ''} with a time-complexity claim "
            f"that does not hold; see Complexity verdicts)") if others else ""
    return (f"**{block_label(row['block'], row['options'])}**'s claimed {row['claimed']} does not hold for "
            f"{METRIC_TITLES.get(row['metric'], row['metric'])} along {row['axis']}: asymptotic slope "
            f"{interval(row['asymptotic_slope'], row['asymptotic_ci_low'], row['asymptotic_ci_high'])} vs the "
            f"claimed {num(row['claimed_exponent'])} (dominant term {row['dominant_term']}){more}.")


def _finding_verdicts_fine(fits: pd.DataFrame) -> str | None:
    if fits.empty:
        return None
    macs = fits.loc[fits["metric"] == "macs", "verdict"].value_counts().to_dict()
    if not macs:
        return None
    return ("No claimed time complexity is refuted by the measured MACs; MACs verdicts: "
            + ", ".join(f"{v} {k}" for k, v in sorted(macs.items())) + ".")


def _finding_failure(sweep: pd.DataFrame) -> str | None:
    limits = memory_limits(sweep)
    if limits.empty:
        return None
    severity = {"oom": 0, "timeout": 1, "error": 2, "skipped": 3}
    limits = limits.assign(_s=limits["first_failed_status"].map(severity).fillna(4))
    row = limits.sort_values(["_s", "first_failed_positions"]).iloc[0]
    status = row["first_failed_status"]
    verb = {"oom": "ran out of memory", "timeout": "timed out", "error": "failed with an error",
            "skipped": "was skipped as too big for the memory limit"}.get(status, status)
    ran = (f"; the largest size it ran at was {row['largest_ok_size']}" if row["largest_ok_size"]
           else "; it ran at no size")
    failed = failed_cases(sweep)
    counts = failed["status"].value_counts().to_dict()
    total = ", ".join(f"{v} {k}" for k, v in sorted(counts.items()))
    return (f"**{block_label(row['block'], row['options'])}** {verb} at {row['first_failed_size']} "
            f"(N = {num(row['first_failed_positions'])}, C={int(as_float(row['channels']))}){ran}. "
            f"Failed cases in all: {total}.")


def _finding_all_ran(sweep: pd.DataFrame) -> str | None:
    if sweep.empty or (sweep["status"] != "ok").any():
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
    if best is None or not best[1] < 0.95:
        return None
    tool, ratio, row = best
    other = "ptflops" if tool == "fvcore" else "fvcore"
    other_ratio = as_float(row[f"{other}_ratio"])
    also = f"; {other} counts {percent(other_ratio, 0)}" if math.isfinite(other_ratio) else ""
    undercounting = int(((counters["fvcore_ratio"] < 0.95) | (counters["ptflops_ratio"] < 0.95)).sum())
    return (f"The usual counters undercount: {tool} counts only {percent(ratio, 0)} of "
            f"**{block_label(row['block'], row['options'])}**'s MACs at {case_text(row)}{also}; "
            f"{undercounting} of {len(counters)} cases are undercounted by at least 5 % by one of them.")
