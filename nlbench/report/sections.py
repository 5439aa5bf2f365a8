"""The report's sections, each a pure function of normalised results (and of the fits
computed from them) to a :class:`~nlbench.report.model.Section`: typed tables (numbers
stay numbers; the column says how to write them), a short intro and notes, and plot
data. Nothing here draws, reads files or formats a number into a table cell by hand.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import pandas as pd

from nlbench.counter_gaps import COUNTER_TOOLS
from nlbench.paper import paper_comparison
from nlbench.report import prose
from nlbench.report.compare import compare_runs
from nlbench.report.formatting import (
    as_float, block_label, case_text, first_line, is_missing, metric_label, num, percent, pick_prefix, prefixed_unit,
    size_text,
)
from nlbench.report.model import Cell, Column, Interval, Section, Table, number_column, text_column
from nlbench.report.plots import (
    attribution_group, attribution_plot_data, cost_plot_data, heatmap_plot_data, learning_curve_plot_data,
    pareto_plot_data, rate_plot_data,
)
from nlbench.report.tables import (
    NOISE_MIN_MS, attributed_cases, delta_vs_identity, failed_cases, is_attributed, latency_noise, memory_limits,
    module_costs, noisiest_cases, probe_summary, share_column,
)
from nlbench.store import MULTIPLY_ADD_MACS_SCHEMA
from nlbench.vocabulary import (
    CONTENDED_SAMPLE_SHARE, FAILED_STATUSES, FEW_SAMPLES, IDENTITY_BLOCK, LATENCY_METRICS, LATENCY_WARNINGS,
    MAC_OP_CLASSES, MACS_CONVENTION, METRIC_NAMES, METRICS, NOISY_IQR_OVER_MEDIAN, OP_CLASS_TEXT, OP_CLASSES,
    PROBE_BASELINE_BLOCK, PROBE_SIGNIFICANCE_LEVEL, ROOT_MODULE, ROOT_MODULE_TEXT, STARVED_OFF_CPU, STATUS_CELL,
    STATUS_OK, STATUS_TEXT, WARNING_CONTENDED, WARNING_FEW_SAMPLES, WARNING_NOISY, metric,
)

MAX_CROSSOVER_ROWS = 60
MAX_COMPARE_ROWS = 200
_METRIC_ORDER = {name: index for index, name in enumerate(METRIC_NAMES)}


def _table(title: str, spec: Sequence[Column], rows: Sequence[Sequence[Cell]], note: str = "") -> Table:
    return Table(title, tuple(spec), tuple(tuple(row) for row in rows), note)


def _run_column(several: bool) -> list[Column]:
    return [text_column("run")] if several else []


def _run_cell(row: Mapping[str, Any], several: bool) -> list[Cell]:
    return [str(row["run"])] if several else []


def _text(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value) if value else "—"
    return "—" if is_missing(value) or value == "" else str(value)


def _by_metric(frame: pd.DataFrame, *then: str) -> pd.DataFrame:
    """Rows in the vocabulary's metric order, then by ``then``."""
    return (frame.assign(_m=frame["metric"].map(_METRIC_ORDER)).sort_values(["_m", *then], kind="stable")
            .drop(columns="_m"))


# ----------------------------------------------------------------------------------
# Environment
# ----------------------------------------------------------------------------------

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
    ("executor", "manifest", "executor"),
)
_OPTIONAL_FIELDS = ("cuda_version", "only_blocks", "device_override", "plugins", "executor")


def environment_section(sweep: pd.DataFrame, probes: pd.DataFrame, manifests: Mapping[str, Mapping[str, Any]],
                        order: Sequence[str]) -> Section:
    rows: list[list[Cell]] = []
    for label, where, key in ENVIRONMENT_FIELDS:
        values = []
        for run in order:
            manifest = manifests.get(run, {})
            source = manifest.get("environment", {}) if where == "environment" else manifest
            values.append(_text(source.get(key)))
        if key in _OPTIONAL_FIELDS and all(v == "—" for v in values):
            continue
        rows.append([label, *values])
    for label, column in (("memory method", "memory_method"), ("latency threads (measured)", "latency_threads"),
                          ("measured on (hosts)", "host")):
        values = []
        for run in order:
            found = (sweep.loc[sweep["run"] == run, column].dropna() if column in sweep.columns
                     else pd.Series(dtype=object))
            values.append(", ".join(sorted({_text(v) for v in found})) or "—")
        rows.append([label, *values])
    counts = []
    for run in order:
        in_run = sweep.loc[sweep["run"] == run]
        status = in_run["status"].value_counts().to_dict()
        text = ", ".join(f"{k}: {v}" for k, v in sorted(status.items())) or "none"
        n_probe = int((probes["run"] == run).sum())
        counts.append(f"{len(in_run)} cases ({text})" + (f"; {n_probe} probe results" if n_probe else ""))
    rows.append(["results", *counts])
    spec = [text_column("field"), *[text_column(run) for run in order]]
    notes = []
    timed = sweep.loc[sweep[metric("latency_fwd_ms").column].notna() | sweep[metric("latency_fwdbwd_ms").column].notna()]
    hosts = sorted({str(h) for h in timed["host"].dropna()}) if "host" in timed.columns else []
    if len(hosts) > 1:
        notes.append(f"Latencies here were measured on {len(hosts)} machines ({', '.join(hosts)}): a comparison of "
                     "two cases timed on different machines is not like for like (the `host` column says which).")
    return Section("environment", "Environment", notes=tuple(notes),
                   tables=(_table("Environment (from each run's manifest)", spec, rows),))


# ----------------------------------------------------------------------------------
# Costs, verdicts, crossovers
# ----------------------------------------------------------------------------------


def cost_section(sweep: pd.DataFrame, axis: str, several: bool) -> Section:
    key, title = ("cost-vs-resolution", "Cost vs resolution") if axis == "N" else ("cost-vs-channels", "Cost vs channels")
    data = cost_plot_data(sweep, axis, several_runs=several)
    if not data:
        what = "resolution (N = H·W at a fixed C)" if axis == "N" else "channel count (C at a fixed H×W)"
        return Section(key, title, intro=f"No block was measured at two or more sizes along {what} in this run.")
    intro = ("Log-log, one line per block: measured points (solid), the fitted cost model of "
             "nlbench.fit (dotted) and failed cases as ✕ at the size that failed, placed on the "
             "extrapolated fit (legend: the status). MACs are multiply-adds of convolutions, matrix products and FFTs; "
             "FLOPs = 2·MACs + every other floating-point operation.")
    return Section(key, title, intro=intro, plots=data)


# ----------------------------------------------------------------------------------
# Where the cost goes: attribution by operator class and by module
# ----------------------------------------------------------------------------------

#: The modules listed per block (the rest are summed in one row).
MAX_ATTRIBUTION_MODULES = 5
ATTRIBUTION_INTRO = (
    "Each case's cost split by operator class and by module, as the audited counter attributed it. "
    "MACs and FLOPs side by side — {convention}. The figure stacks each bar to 100 % of the case's FLOPs "
    "(the total is written above it): totals grow by orders of magnitude with N and between blocks, and "
    "shares keep every size readable. Solid classes ({mac_classes}) are multiply-accumulates, 2 FLOPs per "
    "MAC (an FFT adds its butterflies' subtractions); hatched classes count in FLOPs only. The tables are "
    "at each block's largest N: shares of FLOPs and of MACs by class, and the modules that do most of the "
    "FLOPs (each operator counts once, in the innermost module whose forward ran it; "
    "\"{root}\" is the block's own forward)."
)


def _prefix_unit(prefix: tuple[float, str, str]) -> str:
    """``M = 10⁶`` for a column already named by its quantity (FLOPs, MACs); "" without a prefix."""
    return f"{prefix[1]} = {prefix[2]}" if prefix[1] else ""


def _fixed_c_text(fixed: Mapping[str, Any]) -> str:
    """``C=32`` (with frames, batch, dtype, device when not the defaults) for a group of
    :func:`~nlbench.report.plots.attribution_group`."""
    return fixed_text({**fixed, "axis": "N", "fixed_channels": fixed["channels"]})


def _attribution_absent(sweep: pd.DataFrame, manifests: Mapping[str, Mapping[str, Any]], run: str) -> str:
    """Why ``run`` has no cost attribution, in one plain sentence."""
    schema = manifests.get(run, {}).get("schema_version")
    if isinstance(schema, int) and schema < MULTIPLY_ADD_MACS_SCHEMA:
        return (f"{run} was recorded before store schema {MULTIPLY_ADD_MACS_SCHEMA} (it has schema {schema}): "
                "its cases carry no cost attribution. Re-run its suite to see where the cost goes.")
    rows = sweep.loc[sweep["run"] == run]
    ok = rows.loc[rows["status"] == STATUS_OK]
    if rows.empty:
        return f"{run} has no sweep cases."
    if ok.empty:
        return f"No case of {run} finished, so none was counted."
    if not ok["flops"].notna().any():
        return f"{run} did not count FLOPs (its suite's measure lacks \"flops\"), so nothing was attributed."
    return f"No case of {run} carries a cost attribution."


def _module_rows(case: Mapping[str, Any], limit: int) -> tuple[list[list[Cell]], float]:
    """The top ``limit`` modules of a case by FLOPs (root named by ROOT_MODULE_TEXT), the
    rest summed in one row, and the largest module FLOPs (for the unit prefix)."""
    modules = module_costs(case.get("cost_by_module"))
    modules = modules.loc[(modules["flops"] > 0) | (modules["macs"] > 0)]
    rows: list[list[Cell]] = []
    for _, module in modules.head(limit).iterrows():
        name = ROOT_MODULE_TEXT if module["module"] == ROOT_MODULE else module["module"]
        main = (f"{module['main_class']} ({module['main_class_share'] * 100:.0f} %)" if module["main_class"] else "—")
        rows.append([name, module["type"] or "—", as_float(module["calls"]), module["flops"], module["flops_share"],
                     module["macs"], as_float(module["macs_share"]), main])
    rest = modules.iloc[limit:]
    if len(rest):
        rows.append([f"({len(rest)} other module{'s' if len(rest) > 1 else ''})", "", as_float(rest["calls"].sum()), rest["flops"].sum(),
                     rest["flops_share"].sum(), rest["macs"].sum(), as_float(rest["macs_share"].sum()), ""])
    return rows, float(modules["flops"].max()) if len(modules) else 0.0


def attribution_section(sweep: pd.DataFrame, manifests: Mapping[str, Mapping[str, Any]], order: Sequence[str],
                        several: bool) -> Section:
    """Where each block's cost goes: FLOPs by operator class against N (stacked shares),
    the class shares of FLOPs and MACs at each block's largest N, and its costliest
    modules there. Says plainly why when no case carries an attribution."""
    key, title = "cost-attribution", "Where the cost goes"
    intro = ATTRIBUTION_INTRO.format(convention=MACS_CONVENTION, mac_classes=", ".join(MAC_OP_CLASSES),
                                     root=ROOT_MODULE_TEXT)
    absent = [run for run in order if not is_attributed(sweep.loc[sweep["run"] == run]).any()]
    chosen = attribution_group(sweep)
    if chosen is None:
        return Section(key, title, intro=intro,
                       notes=tuple(_attribution_absent(sweep, manifests, run) for run in order))
    fixed, group, n_other = chosen
    shares = attributed_cases(group)
    shares = shares.loc[shares["attributed_flops"] > 0]
    notes = [_attribution_absent(sweep, manifests, run) for run in absent]
    if n_other:
        notes.append(f"Shown at {_fixed_c_text(fixed)}, the setting with the most attributed cases; "
                     f"{n_other} other setting(s) not shown.")
    if shares.empty:
        notes.append(f"No attributed case at {_fixed_c_text(fixed)} has any FLOPs: nothing to split.")
        return Section(key, title, intro=intro, notes=tuple(notes))
    # One row (and one module table) per block at its largest attributed N.
    largest = (shares.sort_values(["positions", "height"], kind="stable")
               .groupby(["run", "block", "options"], sort=True, dropna=False).tail(1)
               .sort_values(["run", "block", "options"], kind="stable"))
    flops_classes = [c for c in OP_CLASSES if (largest[share_column("flops", c)] > 0).any()]
    macs_classes = [c for c in MAC_OP_CLASSES if (largest[share_column("macs", c)] > 0).any()]
    flops_prefix, macs_prefix = pick_prefix(largest["attributed_flops"]), pick_prefix(largest["attributed_macs"])
    several_options = group.groupby("block")["options"].nunique().to_dict()

    def label(row: Mapping[str, Any]) -> str:
        options = row["options"] if several_options.get(row["block"], 1) > 1 or row["options"] != "{}" else None
        return block_label(row["block"], options)

    def size(row: Mapping[str, Any]) -> str:
        return f"{size_text(row['height'], row['width'], row.get('frames'))} (N={int(as_float(row['positions']))})"

    class_rows = [[*_run_cell(row, several), label(row), size(row), row["attributed_flops"], row["attributed_macs"],
                   *[row[share_column("flops", c)] for c in flops_classes],
                   *[row[share_column("macs", c)] for c in macs_classes]]
                  for _, row in largest.iterrows()]
    class_spec = [*_run_column(several), text_column("block"), text_column("largest N"),
                  number_column("FLOPs", _prefix_unit(flops_prefix), scale=flops_prefix[0]),
                  number_column("MACs", _prefix_unit(macs_prefix), scale=macs_prefix[0]),
                  *[number_column(f"FLOPs: {c}", style="percent") for c in flops_classes],
                  *[number_column(f"MACs: {c}", style="percent") for c in macs_classes]]
    left_out = [c for c in OP_CLASSES if c not in flops_classes]
    class_note = ("Each row's FLOPs shares add to 100 %, and so do its MACs shares (— where a block does no "
                  "multiply-adds)." + (f" Classes with no FLOPs in any block are left out: {', '.join(left_out)}."
                                       if left_out else ""))
    tables = [_table("Operator classes", [text_column("class"), text_column("counts in"), text_column("operators")],
                     [[c, "MACs and FLOPs" if c in MAC_OP_CLASSES else "FLOPs only", OP_CLASS_TEXT[c]]
                      for c in OP_CLASSES]),
              _table(f"Share of FLOPs and MACs by operator class at each block's largest N ({_fixed_c_text(fixed)})",
                     class_spec, class_rows, class_note)]
    for _, row in largest.iterrows():
        rows, top = _module_rows(row, MAX_ATTRIBUTION_MODULES)
        if not rows:
            continue
        prefix = pick_prefix([top])
        spec = [text_column("module"), text_column("type"), number_column("calls", style="integer"),
                number_column("FLOPs", _prefix_unit(prefix), scale=prefix[0]),
                number_column("share of FLOPs", style="percent"),
                number_column("MACs", _prefix_unit(prefix), scale=prefix[0]),
                number_column("share of MACs", style="percent"), text_column("most of its FLOPs")]
        run_text = f" [{row['run']}]" if several else ""
        tables.append(_table(f"{label(row)}{run_text}: modules by FLOPs at {size(row)}", spec, rows))
    plots = attribution_plot_data(group, fixed, several_runs=several)
    return Section(key, title, intro=intro, notes=tuple(notes), tables=tuple(tables), plots=plots)


def fixed_text(row: Mapping[str, Any]) -> str:
    """What a fit or crossover held fixed: ``C=16`` (axis N) or ``16×16`` (axis C), and
    frames, batch, dtype and device when not the defaults."""
    if row["axis"] == "N":
        text = f"C={int(as_float(row['fixed_channels']))}"
    else:
        text = size_text(row["fixed_height"], row["fixed_width"])
    if not is_missing(row.get("frames")):
        text += f", T={int(as_float(row['frames']))}"
    batch = as_float(row.get("batch"))
    if math.isfinite(batch) and batch != 1:
        text += f", B{int(batch)}"
    for key in ("dtype", "device"):
        value = row.get(key)
        if isinstance(value, str) and value and value not in ("float32", "cpu"):
            text += f", {value}"
    return text


def _metric_text(name: str) -> str:
    return metric_label(metric(name)) if name in _METRIC_ORDER else str(name)


def verdict_section(fits: pd.DataFrame, several: bool) -> Section:
    intro = ("How each cost grows with N = H·W (at fixed C) and with C (at fixed H×W), held against the "
             "block's claimed complexity (shared/spec/blocks.md). Slopes are log-log exponents with "
             "95 % CIs; the asymptotic slope is fitted over the three largest sizes; the dominant term "
             "is the largest share of the fitted cost at the largest size.")
    if fits.empty:
        return Section("verdicts", "Complexity verdicts", intro=intro,
                       notes=("No block was measured at two or more sizes along one axis: nothing to fit.",))
    spec = [*_run_column(several), text_column("block"), text_column("metric"), text_column("axis"),
            text_column("fixed"), text_column("sizes"), number_column("slope [95 % CI]", style="interval"),
            number_column("asymptotic slope [95 % CI]", style="interval"), text_column("dominant term"),
            text_column("claimed"), number_column("claimed exponent"), text_column("verdict"), text_column("reason")]
    ordered = _by_metric(fits, "axis", "block")
    tables = []
    for title, selected in (("Verdicts: MACs", ordered.loc[ordered["metric"] == "macs"]),
                            ("Verdicts: latency and memory", ordered.loc[ordered["metric"] != "macs"])):
        rows = []
        for _, row in selected.iterrows():
            span = (f"{row['axis']}∈[{num(row['x_min'])}, {num(row['x_max'])}] ({int(row['n_points'])})"
                    if row["n_points"] else f"{int(row['n_zero'])} sizes, all zero")
            rows.append([*_run_cell(row, several),
                         block_label(row["block"], row["options"]), _metric_text(row["metric"]), row["axis"],
                         fixed_text(row), span,
                         Interval(row["slope"], row["slope_ci_low"], row["slope_ci_high"]),
                         Interval(row["asymptotic_slope"], row["asymptotic_ci_low"], row["asymptotic_ci_high"]),
                         str(row["dominant_term"]), _text(row["claimed"]), as_float(row["claimed_exponent"]),
                         str(row["verdict"]), str(row["verdict_reason"])])
        if rows:
            tables.append(_table(title, spec, rows))
    counts = fits.loc[fits["metric"] == "macs", "verdict"].value_counts().to_dict()
    notes = (f"MACs: {prose.counts_text(counts)}.",) if counts else ()
    notes += ("Latency verdicts on a shared or noisy machine are often inconclusive: see Latency noise.",)
    return Section("verdicts", "Complexity verdicts", intro=intro, notes=notes, tables=tuple(tables))


def crossover_section(crossings: pd.DataFrame, several: bool) -> Section:
    intro = ("Where one block's cost overtakes another's between measured sizes (log-log interpolation); "
             "pairs that never cross in the measured range are counted, not listed.")
    if crossings.empty:
        return Section("crossovers", "Crossovers", intro=intro,
                       notes=("No pair of blocks was measured at two or more common sizes.",))
    found = _by_metric(crossings.loc[crossings["crossover_x"].notna()], "axis", "block_a", "block_b")
    never = crossings.loc[crossings["crossover_x"].isna()]
    spec = [*_run_column(several), text_column("metric"), text_column("axis"), text_column("fixed"),
            text_column("block a"), text_column("block b"), text_column("crossover at"),
            number_column("≈ side per frame (H=W)"), text_column("costlier above"), text_column("interpolated"),
            text_column("direction")]
    rows = []
    for _, row in found.head(MAX_CROSSOVER_ROWS).iterrows():
        fixed = {"axis": row["axis"], "fixed_channels": row["fixed_channels"], "fixed_height": row["fixed_height"],
                 "fixed_width": row["fixed_width"], "frames": row["frames"], "batch": row["batch"],
                 "dtype": row["dtype"], "device": row["device"]}
        rows.append([*_run_cell(row, several),
                     _metric_text(row["metric"]), row["axis"], fixed_text(fixed),
                     block_label(row["block_a"], row["options_a"]), block_label(row["block_b"], row["options_b"]),
                     f"{row['axis']}≈{num(row['crossover_x'])}", as_float(row["crossover_resolution"]),
                     _text(row["costlier_above"]), "yes" if row["interpolated"] else "no", str(row["direction"])])
    notes = [f"{len(never)} block pairs (over all costs) never cross in their common measured range."]
    if len(found) > MAX_CROSSOVER_ROWS:
        notes.append(f"Showing the first {MAX_CROSSOVER_ROWS} of {len(found)} crossings.")
    if found["metric"].map(lambda name: name in _METRIC_ORDER and metric(name).sampled).any():
        notes.append("Latency crossings between blocks of similar cost can be noise; check the IQRs.")
    tables = (_table("Crossovers", spec, rows),) if rows else ()
    if not rows:
        notes.insert(0, "No crossover: in every measured pair one block is never costlier than the other.")
    return Section("crossovers", "Crossovers", intro=intro, notes=tuple(notes), tables=tables)


# ----------------------------------------------------------------------------------
# Deltas, failures, counters
# ----------------------------------------------------------------------------------


def _status_cell(status: str) -> str:
    return STATUS_CELL.get(status, status)


def delta_section(sweep: pd.DataFrame, several: bool) -> Section:
    intro = ("Each block's cost minus the cost of `identity` (the harness overhead: input, call, output) at "
             "the same case shape, so that what remains is the block's own cost.")
    deltas = delta_vs_identity(sweep)
    if deltas.empty:
        has_identity = (sweep["block"] == IDENTITY_BLOCK).any()
        why = ("no other block shares a case shape with identity" if has_identity
               else "this run has no `identity` baseline case")
        return Section("deltas", "Deltas against identity", intro=intro, notes=(f"No delta table: {why}.",))
    deltas = deltas.assign(
        _case=[case_text(row) for _, row in deltas.iterrows()],
        _order=list(zip(deltas["channels"].astype(float), deltas["positions"].astype(float),
                        deltas["batch"].astype(float).fillna(1.0))),
        _label=[block_label(r["block"], r["options"], r["run"] if several else None) for _, r in deltas.iterrows()],
    )
    case_order = [c for _, c in sorted({(o, c) for o, c in zip(deltas["_order"], deltas["_case"])})]
    tables = []
    for m in METRICS:
        values = deltas[f"{m.name}_delta"]
        if not values.notna().any():
            continue
        taken = deltas[f"{m.name}_block"].notna() | (deltas["status"] != STATUS_OK)
        # Latency stays in ms; counts and bytes get a decimal prefix.
        prefix = (1.0, "", "") if m.sampled else pick_prefix(values)
        unit_text = prefixed_unit(prefix, m.unit)
        quantity = f"Δ {m.title}{' (median)' if m.sampled else ''} vs identity"
        cells: dict[str, dict[str, Cell]] = {}
        for _, row in deltas.loc[taken].iterrows():
            if row["status"] != STATUS_OK:
                value: Cell = _status_cell(row["status"])
            elif row["identity_status"] != STATUS_OK:
                value = f"identity {_status_cell(row['identity_status'])}"
            else:
                value = float(row[f"{m.name}_delta"])
            cells.setdefault(row["_label"], {})[row["_case"]] = value
        used = [c for c in case_order if any(c in v for v in cells.values())]
        rows = [[label, *[cells[label].get(c, "") for c in used]] for label in cells]
        spec = [text_column(f"block (cells: {unit_text})"),
                *[number_column(c, style="signed", scale=prefix[0]) for c in used]]
        tables.append(_table(f"{quantity} [{unit_text}]", spec, rows))
    notes = ("Latency deltas are differences of medians; memory deltas of peaks. A failed case shows its status ("
             + ", ".join(_status_cell(s) for s in FAILED_STATUSES) + ") instead of a number.",)
    return Section("deltas", "Deltas against identity", intro=intro, notes=notes, tables=tuple(tables))


def failure_section(sweep: pd.DataFrame, several: bool) -> Section:
    intro = "Cases that did not finish are data: where each block stops fitting in memory or time."
    failed = failed_cases(sweep)
    if failed.empty:
        return Section("failures", "Failures and limits", intro=intro,
                       notes=(f"All {len(sweep)} cases finished (no out-of-memory, timeout, error or skip).",))
    limits = memory_limits(sweep)
    limit_spec = [*_run_column(several), text_column("block"), text_column("channels"),
                  text_column("largest ok size"), number_column("largest ok N"), text_column("first failed size"),
                  number_column("first failed N"), text_column("status"), number_column("failed cases", style="integer")]
    limit_rows = [[*_run_cell(row, several),
                   block_label(row["block"], row["options"]), f"C{int(as_float(row['channels']))}",
                   row["largest_ok_size"] or "none", as_float(row["largest_ok_positions"]), row["first_failed_size"],
                   as_float(row["first_failed_positions"]),
                   STATUS_TEXT.get(row["first_failed_status"], row["first_failed_status"]), row["n_failed"]]
                  for _, row in limits.iterrows()]
    limit_table = _table("Limits: the largest size each block ran at, and the first that failed", limit_spec,
                         limit_rows)
    case_spec = [*_run_column(several), text_column("block"), text_column("case"), text_column("status"),
                 text_column("error (first line)")]
    case_rows = [[*_run_cell(row, several), block_label(row["block"], row["options"]), case_text(row),
                  str(row["status"]), first_line(row.get("error"))] for _, row in failed.iterrows()]
    case_table = _table("Failed cases", case_spec, case_rows)
    counts = {STATUS_TEXT.get(k, k): v for k, v in failed["status"].value_counts().to_dict().items()}
    notes = (f"{len(failed)} of {len(sweep)} cases failed: {prose.counts_text(counts)}.",)
    return Section("failures", "Failures and limits", intro=intro, notes=notes, tables=(limit_table, case_table))


def counter_section(counters: pd.DataFrame, several: bool, gaps: pd.DataFrame | None = None) -> Section:
    """Our MACs beside fvcore's and ptflops' per block and, given ``gaps``
    (:func:`nlbench.counter_gaps.counter_class_gaps`), where they differ by operator class."""
    intro = ("Our audited MAC count beside fvcore's and ptflops' on the same module and input. A ratio "
             "below 1 means the tool counts fewer multiply-adds than happen (it undercounts, usually by "
             "skipping operators it has no formula for, e.g. FFTs, matmuls or softmax); above 1, it overcounts.")
    if counters.empty:
        return Section("counters", "Counter comparison", intro=intro,
                       notes=("No case has fvcore or ptflops counts (add \"counters\" to the suite's measure).",))
    prefix = pick_prefix(pd.concat([counters["macs"], counters["fvcore_macs"], counters["ptflops_macs"]]))
    unit = f"{prefix[1]} = {prefix[2]}" if prefix[1] else "MACs"
    rows = []
    for (run, block, options), group in counters.groupby(["run", "block", "options"], sort=True, dropna=False):
        largest = group.sort_values(["positions", "channels"], kind="stable").iloc[-1]

        def span(column: str) -> str:
            values = group[column].dropna()
            return f"{num(values.min())}–{num(values.max())}" if len(values) else "—"

        ops = sorted({op for ops_ in group["uncounted_ops"] for op in (ops_ or [])})
        rows.append(([str(run)] if several else []) + [
            block_label(block, options), case_text(largest), as_float(largest["macs"]),
            as_float(largest["fvcore_macs"]), as_float(largest["fvcore_ratio"]),
            as_float(largest["ptflops_macs"]), as_float(largest["ptflops_ratio"]),
            span("fvcore_ratio"), span("ptflops_ratio"), ", ".join(ops) or "none"])
    spec = [*_run_column(several), text_column("block"), text_column("case (largest)"),
            number_column("ours MACs", unit, scale=prefix[0]), number_column("fvcore MACs", unit, scale=prefix[0]),
            number_column("fvcore / ours"), number_column("ptflops MACs", unit, scale=prefix[0]),
            number_column("ptflops / ours"), text_column("fvcore / ours, all sizes"),
            text_column("ptflops / ours, all sizes"), text_column("ops our counter has no formula for")]
    tables = [_table("MACs: nlbench vs fvcore vs ptflops", spec, rows)]
    notes: list[str] = []
    if gaps is not None:
        gap_table, gap_note = _counter_gap_table(gaps, several)
        notes.append(gap_note)
        if gap_table is not None:
            tables.append(gap_table)
    return Section("counters", "Counter comparison", intro=intro, notes=tuple(notes), tables=tuple(tables))


#: Rows of the by-class counter table (one per block × class, at the block's largest N).
MAX_COUNTER_GAP_ROWS = 60
#: Why the counters differ where they do (the mechanisms; the data say where).
COUNTER_GAP_CAUSES = (
    "Known causes: neither tool has a formula for FFTs; both count a matmul of a 2-D matrix with a batched "
    "tensor (P·X, P H×H, X B×C×H×W) as one matrix product, P's size times X's last dimension, H·H·W instead "
    "of B·C·H·H·W MACs; ptflops' pytorch backend misses what it does not patch (einsum, the @ operator, "
    "torch.softmax — it patches F.softmax) and counts a convolution's or linear layer's bias as one MAC per "
    "output; fvcore counts an einsum from numpy's einsum_path report, rounded to 4 significant digits; both "
    "put norms, pooling and upsampling into their MAC totals, and ptflops activation modules too (an nn.ReLU "
    "twice: its hook and the patched F.relu it calls), which we count as FLOPs only."
)


def _gap_percent(value: Any) -> str:
    """A relative difference as ``-49.22 %``; one too small for two decimals as ``< +0.01 %``."""
    v = as_float(value)
    if math.isfinite(v) and v != 0 and abs(v) < 5e-5:
        return f"< {'+' if v > 0 else '-'}0.01 %"
    return percent(v, 2, sign=True)


def _counter_gap_summary(shown: pd.DataFrame) -> str:
    """Per tool, the classes where its MACs differ from ours (with the blocks and the
    relative difference) and the FLOP-only classes it adds to its MAC total."""
    parts = []
    for tool in COUNTER_TOOLS:
        differs = shown.loc[shown[f"{tool}_diff"].fillna(0) != 0]
        if differs.empty:
            parts.append(f"{tool} agrees with us in every class")
            continue
        found = []
        for op_class in OP_CLASSES:
            rows = differs.loc[differs["op_class"] == op_class].sort_values(f"{tool}_rel", kind="stable")
            if rows.empty:
                continue
            if op_class in MAC_OP_CLASSES:
                where = ", ".join(f"{block_label(r['block'], r['options'])} {_gap_percent(r[f'{tool}_rel'])}"
                                  for _, r in rows.iterrows())
                found.append(f"{op_class} ({where})")
            else:
                found.append(f"{op_class} counted as MACs ({len(rows)} block{'s' if len(rows) != 1 else ''})")
        parts.append(f"{tool}: " + "; ".join(found))
    return ("Where fvcore and ptflops differ from us, by operator class (each block at its largest N): "
            + ". ".join(parts) + ". " + COUNTER_GAP_CAUSES)


def _counter_gap_table(gaps: pd.DataFrame, several: bool) -> tuple[Table | None, str]:
    """The by-class differences at each block's largest N as a table, and the paragraph
    that introduces it (or says why there is none)."""
    if gaps.empty:
        return None, ("No by-class differences to show: no case records fvcore's or ptflops' MACs by operator "
                      "class (runs from before they were recorded), or they agree with ours in every class.")
    keys = ["run", "block", "options"]
    order = gaps.assign(_c=gaps["channels"].astype(float), _n=gaps["positions"].astype(float))
    largest = order.sort_values(["_n", "_c"], kind="stable").drop_duplicates(keys, keep="last")
    shown = order.loc[order["case_id"].isin(set(largest["case_id"]))]
    shown = shown.assign(_k=shown["op_class"].map(OP_CLASSES.index)).sort_values([*keys, "_k"], kind="stable")
    total = len(shown)
    prefix = pick_prefix(pd.concat([shown[c] for c in ("ours_macs", "ours_flops", "fvcore_macs", "ptflops_macs")]))
    macs, flops = prefixed_unit(prefix, "MACs"), prefixed_unit(prefix, "FLOPs")
    rows = [[*_run_cell(row, several), block_label(row["block"], row["options"]), case_text(row), row["op_class"],
             as_float(row["ours_macs"]), as_float(row["ours_flops"]),
             as_float(row["fvcore_macs"]), as_float(row["fvcore_rel"]),
             as_float(row["ptflops_macs"]), as_float(row["ptflops_rel"]), f"our {row['ours_unit']}"]
            for _, row in shown.head(MAX_COUNTER_GAP_ROWS).iterrows()]
    spec = [*_run_column(several), text_column("block"), text_column("case (largest)"), text_column("class"),
            number_column("ours MACs", macs, scale=prefix[0]), number_column("ours FLOPs", flops, scale=prefix[0]),
            number_column("fvcore MACs", macs, scale=prefix[0]),
            number_column("fvcore vs ours", style="signed_percent", decimals=2),
            number_column("ptflops MACs", macs, scale=prefix[0]),
            number_column("ptflops vs ours", style="signed_percent", decimals=2), text_column("vs ours: against")]
    shown_text = (f"the first {MAX_COUNTER_GAP_ROWS} of {total} rows" if total > MAX_COUNTER_GAP_ROWS
                  else f"{total} row{'s' if total != 1 else ''}")
    note = (f"One row per block and operator class where either tool's MACs differ from ours, at the block's "
            f"largest N ({shown_text}; {len(gaps)} case × class differences over all sizes). In conv, matmul and "
            "fft \"vs ours\" is the tool's MACs against our MACs; in the other classes we count no MACs, so it is "
            "against our FLOPs there — whether the tool counts the same operations — and all of the tool's count "
            "there is extra in its MAC total.")
    table = _table("Where fvcore and ptflops differ, by operator class", spec, rows, note)
    return table, _counter_gap_summary(shown)


# ----------------------------------------------------------------------------------
# Paper table, probes, receptive fields
# ----------------------------------------------------------------------------------


def paper_section(sweep: pd.DataFrame, table: Any, run: str, several: bool) -> Section:
    comparison = paper_comparison(sweep, table)
    giga = float(table.giga)
    g_text = "2³⁰" if giga == 2.0**30 else f"{giga:g}"
    rows = [[row["input"], row["block"], row["maps"], as_float(row["paper_gmacs"]), as_float(row["ours_gmacs"]),
             as_float(row["gmacs_rel_error"]), as_float(row["paper_params_m"]), as_float(row["ours_params_m"]),
             as_float(row["params_rel_error"]), as_float(row["ours_gflops_1e9"])]
            for _, row in comparison.iterrows()]
    spec = [text_column("input"), text_column("block"), text_column("maps summed"),
            number_column("paper GMACs", f"G = {g_text}"), number_column("ours GMACs", f"G = {g_text}"),
            number_column("GMACs rel. error", style="signed_percent"), number_column("paper params", "M = 10⁶"),
            number_column("ours params", "M = 10⁶"), number_column("params rel. error", style="signed_percent"),
            number_column("ours GFLOPs", "all FLOPs / 10⁹")]
    intro = (f"{table.title}. The paper's \"GFLOPs\" are multiply-adds divided by G = {g_text} "
             f"(so they are GMACs in our terms); our cost sums the blocks the paper inserted, one per map. "
             f"Params in millions (10⁶). Relative error = (ours − paper) / paper.")
    missing = int(comparison["ours_gmacs"].isna().sum())
    notes = (f"{missing} row(s) lack a measurement (cases missing or failed): shown as —.",) if missing else ()
    key = "paper" if not several else f"paper-{run}"
    return Section(key, "Paper-table comparison" + (f" [{run}]" if several else ""), intro=intro, notes=notes,
                   tables=(_table(table.title, spec, rows),))


def receptive_field_section(fields: pd.DataFrame) -> Section:
    """How far each block lets the probe network see: the share of input pixels that
    reach the centre output, the effective radius, and the heat maps."""
    rows, panels = [], []
    for _, row in fields.sort_values(["task", "fraction_reached"], ascending=[True, False], kind="stable").iterrows():
        fraction = as_float(row["fraction_reached"])
        rows.append([str(row["task"]), str(row["block"]), fraction, as_float(row["erf_radius"]),
                     as_float(row["reach_radius"]), as_float(row["backbone_rf"])])
        if isinstance(row.get("heatmap"), list):
            panels.append((f"{row['block']} ({100 * fraction:.0f} %)", row["heatmap"]))
    spec = [text_column("task"), text_column("block"), number_column("input pixels reached", style="percent"),
            number_column("ERF radius (px, 95 % of |grad|)", style="fixed"),
            number_column("reach radius (px)", style="integer"), number_column("backbone RF (px)", style="integer")]
    intro = ("Gradient of the centre position of the map the head pools, with respect to the input image, in "
             "the probe network with the block's parameters perturbed from their identity initialisation. "
             "A block that gives global context reaches every pixel; the backbone alone reaches only its "
             "receptive field.")
    plots = (heatmap_plot_data("receptive-fields", "Receptive fields", tuple(panels)),) if panels else ()
    return Section("receptive-fields", "Receptive fields", intro=intro,
                   tables=(_table("Receptive field in the probe network", spec, rows),), plots=plots)


def probe_section(probes: pd.DataFrame, several: bool, trials: pd.DataFrame | None = None) -> Section:
    """Probe results: per block its verdict and the numbers behind it, the rate sweep,
    accuracy against MACs and the learning curves."""
    from nlbench.probe_verdicts import probe_verdicts

    summary = probe_summary(probes)
    verdicts = probe_verdicts(probes)
    prefix = pick_prefix(summary["macs"])
    mac_unit = f"{prefix[1]} = {prefix[2]}" if prefix[1] else ""
    tables, notes = [], []
    for (run, task), group in summary.groupby(["run", "task"], sort=True, dropna=False):
        judged = verdicts.loc[(verdicts["run"] == run) & (verdicts["task"] == task)]
        target = f"{100 * judged['target_accuracy'].iloc[0]:g} %" if len(judged) else "target"
        rows = []
        for _, row in group.sort_values("accuracy_mean", ascending=False, kind="stable").iterrows():
            verdict = judged.loc[(judged["block"] == row["block"]) & (judged["options"] == row["options"])].iloc[0]
            mean, std = as_float(row["accuracy_mean"]), as_float(row["accuracy_std"])
            accuracy = "—" if not math.isfinite(mean) else (
                f"{mean:.3f} ± {std:.3f}" if math.isfinite(std) else f"{mean:.3f} (1 seed)")
            rows.append([block_label(row["block"], row["options"]), verdict["verdict"], accuracy,
                         f"{verdict['n_learned']}/{verdict['n_ok']}", as_float(verdict["steps_to_target_median"]),
                         as_float(verdict["lr"]), as_float(row["steps"]), as_float(verdict["wall_s_total"]),
                         as_float(verdict["p_vs_baseline"]), row["n_failed"], as_float(row["macs"]),
                         as_float(row["params"]), as_float(row["steps_per_s_median"]),
                         "yes" if row["pareto"] else ""])
        spec = [text_column("block"), text_column("verdict"), text_column("test accuracy (mean ± std over seeds)"),
                text_column(f"seeds ≥ {target}"), number_column(f"steps to {target} (median)", style="integer"),
                number_column("lr"), number_column("steps trained (median)", style="integer"),
                number_column("wall time, all seeds", "s", style="integer"),
                number_column(f"p vs {PROBE_BASELINE_BLOCK} (one-sided)"),
                number_column("failed seeds", style="integer"), number_column("MACs", mac_unit, scale=prefix[0]),
                number_column("params"), number_column("steps/s (median)"), text_column("Pareto-optimal")]
        title = f"Probe '{task}'" + (f" [{run}]" if several else "")
        tables.append(_table(title, spec, rows))
        notes.extend(f"{task}: {block_label(v['block'], v['options'])} {v['statement']}"
                     + (f" [{run}]" if several else "") for _, v in judged.iterrows())
    if trials is not None and not trials.empty:
        tables.extend(_rate_sweep_tables(trials, probes, several))
    intro = ("Probes train a small CNN with each block until its validation accuracy plateaus (or the maximum "
             "budget), at the learning rate a sweep on the validation split chose for the block; the test split "
             "is used once, at the end. Verdicts: learns (every seed reaches the target at its plateau, within "
             "the short budget), learns slowly (only beyond it), learns in some seeds, or does not learn within "
             f"the budget; p tests 'better than {PROBE_BASELINE_BLOCK}' over seeds (one-sided Welch t-test; the "
             f"exact Mann-Whitney test where no seed differs from another; better at p ≤ "
             f"{PROBE_SIGNIFICANCE_LEVEL:g}). Pareto-optimal: no other block is at least as accurate with "
             "fewer MACs. The plots draw the mean over seeds with bars spanning the seeds' range; the learning "
             "curves show the held-out accuracy at every evaluation, so where learning starts, and whether it "
             "had stopped, can be read off.")
    return Section("probes", "Probe results", intro=intro, notes=tuple(notes), tables=tuple(tables),
                   plots=(*pareto_plot_data(summary, several_runs=several),
                          *learning_curve_plot_data(probes, several_runs=several)))


def _rate_sweep_tables(trials: pd.DataFrame, probes: pd.DataFrame, several: bool) -> list[Table]:
    """Per run and task: every rate trial (block × rate) with its final validation
    accuracy, steps to the target and steps trained, the chosen rate marked."""
    tables = []
    for (run, task), group in trials.groupby(["run", "task"], sort=True, dropna=False):
        chosen = probes.loc[(probes["run"] == run) & (probes["task"] == task)].groupby(
            ["block", "options"], dropna=False)["lr"].first()
        rows = []
        for _, row in group.sort_values(["block", "lr"], kind="stable").iterrows():
            picked = chosen.get((row["block"], row["options"]))
            rows.append([block_label(row["block"], row["options"]), as_float(row["lr"]), row["seed"],
                         row["status"] if row["status"] != STATUS_OK else "", as_float(row["validation_accuracy"]),
                         as_float(row["steps_to_target"]), as_float(row["steps"]), row["stop_reason"] or "",
                         "yes" if picked is not None and as_float(picked) == as_float(row["lr"]) else ""])
        spec = [text_column("block"), number_column("lr"), number_column("seed", style="integer"),
                text_column("failure"), number_column("validation accuracy (final)", style="fixed", decimals=3),
                number_column("steps to target", style="integer"), number_column("steps trained", style="integer"),
                text_column("stopped by"), text_column("chosen")]
        title = f"Learning-rate sweep '{task}'" + (f" [{run}]" if several else "")
        tables.append(_table(title, spec, rows, note="Chosen: the best final validation accuracy; rates within "
                             "the plateau's minimum gain tie, and a tie goes to the fewest steps to the target, "
                             "then to the rate nearest the default."))
    return tables


# ----------------------------------------------------------------------------------
# Latency noise, run comparison
# ----------------------------------------------------------------------------------


def noise_section(sweep: pd.DataFrame) -> Section:
    rule = f"IQR/median > {NOISY_IQR_OVER_MEDIAN:.0%}".replace("%", " %")
    intro = (f"Latency is reported as the median and IQR of raw samples. A case carries a warning when its {rule} "
             f"(the noise rule of nlbench.vocabulary, stored with the case); only cases with a median ≥ "
             f"{NOISE_MIN_MS:g} ms are judged (below that, timer resolution dominates).")
    noise = latency_noise(sweep)
    if noise.empty:
        return Section("noise", "Latency noise", intro=intro, notes=("Latency was not measured in this run.",))
    rows = [[metric(row["metric"]).title, row["n_cases"], row["n_timed"], row["n_noisy"], row["noisy_fraction"]]
            for _, row in noise.iterrows()]
    spec = [text_column("latency"), number_column("cases measured", style="integer"),
            number_column(f"cases ≥ {NOISE_MIN_MS:g} ms", style="integer"),
            number_column(f"noisy: {rule}", style="integer"), number_column("noisy fraction", style="percent")]
    tables = [_table("Noisy cases", spec, rows)]
    worst = noisiest_cases(sweep)
    if len(worst):
        worst_spec = [text_column("block"), text_column("case"), number_column("median", "ms"),
                      number_column("IQR", "ms"), number_column("IQR / median", style="percent")]
        tables.append(_table("Noisiest forward-latency cases", worst_spec,
                             [[block_label(r["block"], r["options"]), case_text(r), r["median"], r["iqr"], r["noise"]]
                              for _, r in worst.iterrows()]))
    notes = tuple(f"Warning: {int(r['n_noisy'])} of {int(r['n_timed'])} {metric(r['metric']).title} cases are noisy "
                  f"({rule}): treat their latency fits and crossovers with care."
                  for _, r in noise.loc[noise["noisy_fraction"] > 0].iterrows())
    return Section("noise", "Latency noise", intro=intro, notes=notes, tables=tuple(tables))


def comparison_section(sweep: pd.DataFrame, order: Sequence[str]) -> Section:
    intro = ("Each later run (candidate) against the first (baseline), per case matched on block, options, "
             "channels, H, W, frames, batch and dtype (not device). Ratio = candidate median / baseline median; "
             "p from a two-sided Mann-Whitney U test on the raw samples; verdict at α = 0.05.")
    baseline = sweep.loc[sweep["run"] == order[0]]
    spec = [text_column("block"), text_column("case"), text_column("latency"), text_column("device base → cand"),
            number_column("baseline median", "ms"), number_column("baseline IQR", "ms"),
            number_column("candidate median", "ms"), number_column("candidate IQR", "ms"),
            number_column("ratio cand / base"), text_column("samples base / cand"),
            number_column("p (Mann-Whitney U)"), text_column("verdict")]
    tables, notes = [], []
    for candidate_run in order[1:]:
        result = compare_runs(baseline, sweep.loc[sweep["run"] == candidate_run])
        if result.empty:
            notes.append(f"{candidate_run} vs {order[0]}: no matching case with latency measurements.")
            continue
        notes.append(f"{candidate_run} vs {order[0]}: {prose.counts_text(result['verdict'].value_counts().to_dict())}.")
        rows = []
        for _, row in result.head(MAX_COMPARE_ROWS).iterrows():
            rows.append([block_label(row["block"], row["options"]), case_text(row), metric(row["metric"]).title,
                         f"{_text(row['device_baseline'])} → {_text(row['device_candidate'])}",
                         row["baseline_median_ms"], row["baseline_iqr_ms"], row["candidate_median_ms"],
                         row["candidate_iqr_ms"], row["ratio"], f"{row['n_baseline']} / {row['n_candidate']}",
                         row["p_value"], str(row["verdict"])])
        if len(result) > MAX_COMPARE_ROWS:
            notes.append(f"Showing the first {MAX_COMPARE_ROWS} of {len(result)} comparisons.")
        tables.append(_table(f"{candidate_run} (candidate) vs {order[0]} (baseline)", spec, rows))
    if any(("too few samples" in n) for n in notes):
        notes.append("\"too few samples\": with n samples per side a Mann-Whitney test cannot reach p < 0.05 "
                     "(e.g. 3 vs 3: the smallest possible p is 0.1); raise latency.min_samples.")
    return Section("comparison", "Run comparison", intro=intro, notes=tuple(notes), tables=tuple(tables))


def summary_section(findings: Sequence[str]) -> Section:
    return Section("summary", "Summary", intro="What to take away, computed from the stored results:",
                   notes=tuple(findings))


# ----------------------------------------------------------------------------------
# Measurement quality
# ----------------------------------------------------------------------------------

MAX_WARNED_ROWS = 80


def quality_section(sweep: pd.DataFrame, manifests: Mapping[str, Mapping[str, Any]], order: Sequence[str],
                    several: bool) -> Section:
    """How far the latencies can be trusted: the share without a warning, each
    warning's count, the machine's calibration, every warned case, and the rate each
    block achieves against the calibrated matmul peak."""
    intro = ("A latency carries warnings when its median cannot be trusted alone: "
             f"{WARNING_NOISY} (IQR/median > {NOISY_IQR_OVER_MEDIAN:.0%}), {WARNING_CONTENDED} (more than "
             f"{CONTENDED_SAMPLE_SHARE:.0%} of its samples lost > {STARVED_OFF_CPU:.0%} of their time off the CPU, "
             f"after up to the suite's retries), {WARNING_FEW_SAMPLES} (fewer than {FEW_SAMPLES} samples). "
             "Warned points are ringed in the latency plots.").replace("%", " %")
    rows: list[list[Cell]] = []
    warned_rows: list[list[Cell]] = []
    for name in LATENCY_METRICS:
        m = metric(name)
        measured = sweep.loc[(sweep["status"] == STATUS_OK) & sweep[m.column].notna()]
        if measured.empty:
            continue
        words = measured[m.warnings_column].map(lambda w: tuple(w) if isinstance(w, list) else ())
        counts = [int(words.map(lambda w, k=k: k in w).sum()) for k in LATENCY_WARNINGS]
        rows.append([m.title, len(measured), int((words.map(len) == 0).sum()), (words.map(len) == 0).mean(), *counts])
        for (_, row), found in zip(measured.iterrows(), words):
            if found:
                warned_rows.append([*_run_cell(row, several), block_label(row["block"], row["options"]),
                                    case_text(row), m.title, row[m.column], row[m.iqr_column] / row[m.column],
                                    ", ".join(found)])
    if not rows:
        return Section("quality", "Measurement quality", intro=intro, notes=("Latency was not measured in this run.",))
    spec = [text_column("latency"), number_column("cases", style="integer"), number_column("trustworthy", style="integer"),
            number_column("trustworthy share", style="percent"),
            *[number_column(word, style="integer") for word in LATENCY_WARNINGS]]
    tables = [_table("Trustworthy latencies", spec, rows)]
    calibration_rows = []
    floors: list[float] = []
    for run in order:
        calibration = manifests.get(run, {}).get("calibration") or {}
        allocator = sweep.loc[sweep["run"] == run, "allocator"].dropna() if "allocator" in sweep else pd.Series(dtype=object)
        run_floors = [calibration.get("noise_matmul_iqr_over_median"), calibration.get("noise_copy_iqr_over_median")]
        floors += [value for value in run_floors if isinstance(value, (int, float))]
        calibration_rows.append([run, calibration.get("matmul_gflops"), calibration.get("copy_gb_per_s"), *run_floors,
                                 _text(calibration.get("threads")), _text(calibration.get("device")),
                                 _text(calibration.get("error") or calibration.get("method")),
                                 ", ".join(sorted(set(map(str, allocator)))) or "—"])
    floor_note = ("The noise floor is the IQR/median of a fixed matmul and a fixed copy timed alternately, in "
                  "blocks as long as a sample's, at the run's start: the spread of the machine itself. ")
    if any(value > NOISY_IQR_OVER_MEDIAN for value in floors):
        floor_note += (f"It was above {NOISY_IQR_OVER_MEDIAN:.0%} here: this machine varies by more than the noise "
                       "rule allows on its own, so noisy cases say more about the machine than about the blocks."
                       ).replace("%", " %")
    tables.append(_table("Machine calibration (once per run, at the run's threads)", [
        text_column("run"), number_column("fp32 matmul", "GFLOP/s"), number_column("copy bandwidth", "GB/s"),
        number_column("noise floor: matmul", "IQR / median", style="percent"),
        number_column("noise floor: copy", "IQR / median", style="percent"),
        text_column("threads"), text_column("device"), text_column("method"), text_column("allocator")],
        calibration_rows, floor_note if floors else ""))
    if warned_rows:
        warned_spec = [*_run_column(several), text_column("block"), text_column("case"), text_column("latency"),
                       number_column("median", "ms"), number_column("IQR / median", style="percent"),
                       text_column("warnings")]
        note = f"First {MAX_WARNED_ROWS} of {len(warned_rows)}." if len(warned_rows) > MAX_WARNED_ROWS else ""
        tables.append(_table("Every warned latency", warned_spec, warned_rows[:MAX_WARNED_ROWS], note))
    return Section("quality", "Measurement quality", intro=intro, tables=tuple(tables),
                   plots=rate_plot_data(sweep, several_runs=several))
