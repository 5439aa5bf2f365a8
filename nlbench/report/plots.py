"""Plot data from stored results, and its drawing to PNG with matplotlib's Agg backend
(no pyplot state, no display).

Building the data (:func:`cost_plot_data`, :func:`pareto_plot_data`,
:func:`heatmap_plot_data`, :func:`attribution_plot_data`) is pure pandas/numpy — the report's assembly calls it; the
fitted lines are :func:`nlbench.fit.fit_series`'s term models. Drawing
(:func:`render_png`) is called only by the renderer (:mod:`nlbench.report.render`), and
imports matplotlib only when it runs.
"""

from __future__ import annotations

import io
import math
import re
import textwrap
from typing import Any

import numpy as np
import pandas as pd

from nlbench.fit import fit_series
from nlbench.probe_verdicts import held_out_accuracies
from nlbench.report.formatting import as_float, block_label, is_missing, short_count, size_text
from nlbench.report.model import BarPanel, FailedPoint, Heatmap, Plot, PlotData, Series, Stack, failed_by_status
from nlbench.report.tables import attributed_cases, is_attributed, share_column
from nlbench.vocabulary import (
    AXES, AXIS_LABELS, LATENCY_METRICS, MAC_OP_CLASSES, METRICS, OP_CLASSES, STATUS_CELL, STATUS_OK, Metric,
    class_cost_column,
)
from nlbench.vocabulary import metric as metric_named


def _fixed_keys(axis: str) -> list[str]:
    common = ["frames", "batch", "device", "dtype"]
    return (["channels"] if axis == "N" else ["height", "width"]) + common


def _fixed_text(axis: str, fixed: dict[str, Any]) -> str:
    parts = [f"C={int(fixed['channels'])}"] if axis == "N" else [size_text(fixed["height"], fixed["width"])]
    if not is_missing(fixed.get("frames")):
        parts.append(f"T={int(fixed['frames'])}")
    if not is_missing(fixed.get("batch")):
        parts.append(f"batch {int(fixed['batch'])}")
    for key in ("dtype", "device"):
        if isinstance(fixed.get(key), str) and fixed[key]:
            parts.append(fixed[key])
    return ", ".join(parts)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _quartiles(samples: Any) -> tuple[float, float]:
    if isinstance(samples, (list, tuple, np.ndarray)) and len(samples) >= 2:
        values = np.asarray(samples, dtype=float)
        values = values[np.isfinite(values)]
        if values.size >= 2:
            q1, q3 = np.percentile(values, [25, 75])
            return float(q1), float(q3)
    return math.nan, math.nan


def _axis_column(axis: str) -> str:
    return "positions" if axis == "N" else "channels"


def _series(rows: pd.DataFrame, metric: Metric, axis: str, label: str) -> Series:
    """One block's points, fitted line and failed sizes along ``axis``."""
    x_column = _axis_column(axis)
    ok = rows.loc[(rows["status"] == STATUS_OK) & rows[metric.column].notna()]
    xs, ys, lows, highs, zeros, warned = [], [], [], [], [], []
    for x, at_x in ok.groupby(x_column, sort=True):
        y = float(at_x[metric.column].median())
        if y <= 0:
            zeros.append(float(x))
            continue
        xs.append(float(x))
        ys.append(y)
        stored = at_x[metric.warnings_column] if metric.warnings_column else pd.Series(dtype=object)
        warned.append(", ".join(sorted({w for value in stored if isinstance(value, list) for w in value})))
        q1, q3 = (_quartiles(at_x.iloc[0].get(metric.samples_column)) if metric.sampled and len(at_x) == 1
                  else (math.nan, math.nan))
        lows.append(q1)
        highs.append(q3)
    failed_rows = rows.loc[rows["status"] != STATUS_OK].sort_values(x_column, kind="stable")
    failed_x = [float(x) for x in failed_rows[x_column]]
    fit_x: tuple[float, ...] = ()
    fit_y: tuple[float, ...] = ()
    terms = ""
    model = None
    if len(xs) >= 2:
        try:
            model = fit_series(xs, ys, axis).model
        except ValueError:
            model = None
    if model is not None:
        grid = np.geomspace(min(xs + failed_x), max(xs + failed_x), 60)
        predicted = model.predict(grid)
        keep = np.isfinite(predicted) & (predicted > 0)
        fit_x, fit_y = tuple(grid[keep].tolist()), tuple(predicted[keep].tolist())
        terms = " + ".join(model.terms)
    failed = []
    for _, row in failed_rows.iterrows():
        x = float(row[x_column])
        y = math.nan
        if model is not None:
            predicted = float(model.predict([x])[0])
            y = predicted if math.isfinite(predicted) and predicted > 0 else math.nan
        if not math.isfinite(y) and ys:
            y = max(ys)
        where = size_text(row["height"], row["width"], row["frames"]) if axis == "N" else f"C={int(row['channels'])}"
        failed.append(FailedPoint(x, y, str(row["status"]), where,
                                  "" if is_missing(row.get("error")) else str(row.get("error"))))
    if not all(math.isfinite(v) for v in lows + highs):
        lows, highs = [], []
    return Series(label, tuple(xs), tuple(ys), tuple(lows), tuple(highs), fit_x, fit_y, terms, tuple(failed),
                  tuple(zeros), tuple(warned) if any(warned) else ())


def cost_plot_data(sweep: pd.DataFrame, axis: str, *, several_runs: bool = False,
                   max_groups: int = 2) -> tuple[PlotData, ...]:
    """Cost-vs-``axis`` plot data for every metric with data: one line per block (and
    configuration, and run when ``several_runs``), for at most ``max_groups`` fixed
    groups (the other axis, frames, batch, dtype, device) per metric, the best-sampled
    first. ``sweep`` holds normalised sweep records (:func:`nlbench.store.sweep_records`)."""
    if axis not in AXES:
        raise ValueError(f"axis must be one of {AXES}, got {axis!r}")
    if sweep.empty:
        return ()
    x_column = _axis_column(axis)
    keys = _fixed_keys(axis)
    plots: list[PlotData] = []
    for metric in METRICS:
        if not sweep[metric.column].notna().any():
            continue
        candidates = []
        for key, group in sweep.groupby(keys, sort=True, dropna=False):
            if group[x_column].nunique() < 2:
                continue
            n_points = int(((group["status"] == STATUS_OK) & (group[metric.column] > 0)).sum())
            if n_points == 0:
                continue
            candidates.append((n_points, group[x_column].nunique(), dict(zip(keys, key)), group))
        candidates.sort(key=lambda item: (-item[0], -item[1]))
        for index, (_, _, fixed, group) in enumerate(candidates[:max_groups]):
            series = []
            for (run, block, options), rows in group.groupby(["run", "block", "options"], sort=True, dropna=False):
                several_options = group.loc[group["block"] == block, "options"].nunique() > 1
                label = block_label(block, options if several_options or options != "{}" else None,
                                    str(run) if several_runs else None)
                series.append(_series(rows, metric, axis, label))
            series = _fill_failed_y(series)
            zero = [s.label for s in series if s.zero_x and not s.x]
            note = (f"Zero at every size (not drawn on a log axis): {', '.join(zero)}." if zero else "")
            skipped = len(candidates) - max_groups
            if index == 0 and skipped > 0:
                note = (note + " " if note else "") + f"{skipped} more group(s) with other fixed settings not plotted."
            fixed_text = _fixed_text(axis, fixed)
            plots.append(PlotData(
                key=_slug(f"{metric.name}-vs-{axis}-{fixed_text}"),
                title=f"{metric.title} vs {axis} ({fixed_text})",
                xlabel=AXIS_LABELS[axis],
                ylabel=metric.axis_label,
                series=tuple(series),
                note=note,
            ))
    return tuple(plots)


def rate_plot_data(sweep: pd.DataFrame, *, several_runs: bool = False) -> tuple[PlotData, ...]:
    """Achieved GFLOP/s (FLOPs per median second, store column ``achieved_gflops_*``)
    against N, one line per block, with the run's calibrated fp32 matmul peak as a
    flat line: how far each block is from the machine's compute roof."""
    plots = []
    for name in LATENCY_METRICS:
        pass_name = name.removeprefix("latency_").removesuffix("_ms")
        column = f"achieved_gflops_{pass_name}"
        ok = sweep.loc[(sweep["status"] == STATUS_OK) & (sweep.get(column, pd.Series(dtype=float)) > 0)]
        if ok.empty or ok["positions"].nunique() < 2:
            continue
        series = []
        for (run, block, options), rows in ok.groupby(["run", "block", "options"], sort=True, dropna=False):
            points = rows.groupby("positions", sort=True)[column].median()
            label = block_label(block, options if options != "{}" else None, str(run) if several_runs else None)
            series.append(Series(label, tuple(map(float, points.index)), tuple(map(float, points.values))))
        peaks = ok["calibrated_matmul_gflops"].dropna()
        if len(peaks):
            span = (float(ok["positions"].min()), float(ok["positions"].max()))
            series.append(Series(f"calibrated fp32 matmul peak ({float(peaks.median()):.3g} GFLOP/s)", span,
                                 (float(peaks.median()),) * 2))
        title = metric_named(name).title
        plots.append(PlotData(key=_slug(f"rate-{pass_name}"), title=f"achieved rate, {title} vs N",
                              xlabel=AXIS_LABELS["N"], ylabel=f"achieved GFLOP/s ({title}: FLOPs / median)",
                              series=tuple(series)))
    return tuple(plots)


def _fill_failed_y(series: list[Series]) -> list[Series]:
    """Failed points of blocks with no measured cost sit at the plot's largest cost."""
    top = max((y for s in series for y in s.y), default=math.nan)
    filled = []
    for s in series:
        if any(not math.isfinite(p.y) for p in s.failed):
            points = tuple(p if math.isfinite(p.y) else FailedPoint(p.x, top, p.status, p.size, p.error)
                           for p in s.failed)
            s = Series(s.label, s.x, s.y, s.y_low, s.y_high, s.fit_x, s.fit_y, s.fit_terms, points, s.zero_x)
        filled.append(s)
    return filled


def pareto_plot_data(summary: pd.DataFrame, *, several_runs: bool = False) -> tuple[PlotData, ...]:
    """Accuracy vs MACs per probe task (one point per block: the mean over seeds, bars
    the seeds' range),
    with the Pareto front. ``summary`` is :func:`nlbench.report.tables.probe_summary`."""
    plots = []
    if summary.empty:
        return ()
    for (run, task), group in summary.groupby(["run", "task"], sort=True, dropna=False):
        series = []
        for _, row in group.iterrows():
            acc, macs = as_float(row["accuracy_mean"]), as_float(row["macs"])
            if not (math.isfinite(acc) and math.isfinite(macs) and macs > 0):
                continue
            low, high = as_float(row["accuracy_min"]), as_float(row["accuracy_max"])
            low, high = ((low,), (high,)) if int(row["n_seeds"]) > 1 and math.isfinite(low) else ((), ())
            series.append(Series(block_label(row["block"], row["options"], str(run) if several_runs else None),
                                 (macs,), (acc,), low, high))
        if not series:
            continue
        front = sorted((as_float(r["macs"]), as_float(r["accuracy_mean"])) for _, r in group.iterrows() if r["pareto"])
        title = f"probe '{task}': accuracy vs MACs" + (f" [{run}]" if several_runs else "")
        plots.append(PlotData(
            key=_slug(f"pareto-{task}-{run if several_runs else ''}"),
            title=title, xlabel="MACs of the probe network, one image (log)",
            ylabel="test accuracy (mean over seeds; bars: their range)", series=tuple(series), logx=True, logy=False,
            kind="pareto", front=tuple(front),
        ))
    return tuple(plots)


def learning_curve_plot_data(probes: pd.DataFrame, *, several_runs: bool = False) -> tuple[PlotData, ...]:
    """Held-out accuracy against training steps per probe task: one line per block, the
    mean over its seeds at each evaluated step, bars the seeds' range — with a few
    seeds that learn or stay at chance, mean ± std would run past 100 % (from each
    stored run's ``learning_curve``: the validation accuracy, or the test accuracy of
    runs evaluated on the test split along the way). A seed that stopped at its
    plateau before the others keeps its last accuracy at the later steps (so the mean
    does not jump when a seed stops); steps no two seeds reached have no bars. No plot
    for a task whose runs were evaluated at the end only."""
    plots = []
    ok = probes.loc[probes["status"] == "ok"] if "status" in probes.columns else probes
    for (run, task), group in ok.groupby(["run", "task"], sort=True, dropna=False):
        series = []
        held_out: set[str] = set()
        for (block, options), runs in group.groupby(["block", "options"], sort=False):
            curves = []
            for curve in runs["learning_curve"]:
                key, evaluated = held_out_accuracies(curve)
                held_out.add(key)
                if evaluated:
                    curves.append(evaluated)
            by_step: dict[float, list[float]] = {}
            for step in sorted({step for curve in curves for step in curve}):
                for curve in curves:
                    if step in curve:
                        by_step.setdefault(step, []).append(curve[step])
                    elif step > max(curve):  # stopped earlier: its last accuracy stands
                        by_step.setdefault(step, []).append(curve[max(curve)])
            if not by_step:
                continue
            steps = sorted(by_step)
            means = [float(np.mean(by_step[s])) for s in steps]
            spread = all(len(by_step[s]) > 1 for s in steps)
            series.append(Series(block_label(block, options, str(run) if several_runs else None), tuple(steps),
                                 tuple(means), tuple(min(by_step[s]) for s in steps) if spread else (),
                                 tuple(max(by_step[s]) for s in steps) if spread else ()))
        if not any(len(s.x) > 1 for s in series):  # evaluated only at the end: no curve to draw
            continue
        split = " / ".join(sorted(k.removesuffix("_accuracy") for k in held_out))
        title = f"probe '{task}': {split} accuracy vs training steps" + (f" [{run}]" if several_runs else "")
        plots.append(PlotData(key=_slug(f"curves-{task}-{run if several_runs else ''}"), title=title,
                              xlabel="training steps", ylabel=f"{split} accuracy (mean over seeds; bars: their range)",
                              series=tuple(series), logx=False, logy=False, kind="cost"))
    return tuple(plots)


def heatmap_plot_data(key: str, title: str, panels: tuple[tuple[str, Any], ...]) -> PlotData:
    """A grid of receptive-field heat maps (|∂ centre output / ∂ input|, normalised),
    one panel per (label, 2-D values)."""
    maps = tuple(Heatmap(label, tuple(tuple(float(v) for v in row) for row in values)) for label, values in panels)
    return PlotData(key=key, title=title, xlabel="", ylabel="", logx=False, logy=False, kind="heatmaps",
                    heatmaps=maps)


def attribution_group(sweep: pd.DataFrame) -> tuple[dict[str, Any], pd.DataFrame, int] | None:
    """The group of cases at one fixed C (and frames, batch, device, dtype: the resolution
    axis, fixed as the cost plots fix it) with the most cases attributed to operator
    classes, then the most sizes; with its sweep cases (failed ones included) and how many
    other groups have attributed cases. None when no case is attributed."""
    if sweep.empty:
        return None
    keys = _fixed_keys("N")
    candidates = []
    for key, group in sweep.groupby(keys, sort=True, dropna=False):
        attributed = group.loc[is_attributed(group)]
        if len(attributed):
            candidates.append((len(attributed), attributed["positions"].nunique(), dict(zip(keys, key)), group))
    if not candidates:
        return None
    candidates.sort(key=lambda item: (-item[0], -item[1]))
    _, _, fixed, group = candidates[0]
    return fixed, group, len(candidates) - 1


def _size_texts(frame: pd.DataFrame) -> pd.Series:
    """Each case's size as text (``12×10``, ``T4·8×8``): what tells one bar from another."""
    return pd.Series([size_text(h, w, f) for h, w, f in zip(frame["height"], frame["width"], frame["frames"])],
                     index=frame.index, dtype=object)


def attribution_plot_data(group: pd.DataFrame, fixed: dict[str, Any], *,
                          several_runs: bool = False) -> tuple[PlotData, ...]:
    """Where each block's FLOPs go as N grows: one panel per block (and options, and run
    when ``several_runs``) of ``group`` (:func:`attribution_group`), one bar per size of
    the group, stacked by operator class (:data:`~nlbench.vocabulary.OP_CLASSES` order) as
    shares of the case's FLOPs, the total written above each bar. Shares, not absolute
    FLOPs: totals span orders of magnitude across sizes and blocks. A size a block has no
    attribution at shows its status instead of a bar; a block with no FLOPs at any
    attributed size (``identity``) gets no panel and is named in the note."""
    shares = attributed_cases(group)
    if shares.empty:
        return ()
    group = group.assign(_size=_size_texts(group))
    shares = shares.assign(_size=_size_texts(shares))
    sizes = group.drop_duplicates("_size").sort_values(["positions", "height"], kind="stable")
    categories = tuple(f"{size}\nN={int(as_float(n))}" for size, n in zip(sizes["_size"], sizes["positions"]))
    classes = [c for c in OP_CLASSES if shares[class_cost_column("flops", c)].sum() > 0]
    panels, no_flops = [], []
    for (run, block, options), rows in group.groupby(["run", "block", "options"], sort=True, dropna=False):
        several_options = group.loc[group["block"] == block, "options"].nunique() > 1
        label = block_label(block, options if several_options or options != "{}" else None,
                            str(run) if several_runs else None)
        attributed = shares.loc[(shares["run"] == run) & (shares["block"] == block) & (shares["options"] == options)]
        if attributed.empty:
            continue  # failed at every size: the failures section says so
        counted = attributed.loc[attributed["attributed_flops"] > 0].drop_duplicates("_size").set_index("_size")
        if counted.empty:
            no_flops.append(label)
            continue
        failed = rows.loc[rows["status"] != STATUS_OK].drop_duplicates("_size").set_index("_size")["status"]
        present = set(rows["_size"])
        values: dict[str, list[float]] = {c: [] for c in classes}
        above, missing = [], []
        for size in sizes["_size"]:
            case = counted.loc[size] if size in counted.index else None
            for c in classes:
                values[c].append(float(case[share_column("flops", c)]) if case is not None else math.nan)
            above.append(short_count(case["attributed_flops"]) if case is not None else "")
            if case is not None or size not in present:
                missing.append("")  # a bar, or a size this block was not run at
            elif size in failed.index:
                missing.append(STATUS_CELL.get(failed[size], failed[size]))
            else:
                missing.append("not counted")
        panels.append(BarPanel(label, categories, tuple(Stack(c, tuple(values[c])) for c in classes),
                               tuple(above), tuple(missing)))
    if not panels:
        return ()
    fixed_text = _fixed_text("N", fixed)
    note = f"No FLOPs at any size (no panel): {', '.join(no_flops)}." if no_flops else ""
    return (PlotData(
        key=_slug(f"cost-attribution-{fixed_text}"),
        title=f"Where the FLOPs go: share by operator class vs N ({fixed_text}); total FLOPs above each bar",
        xlabel="H×W and N = H·W positions", ylabel="share of the case's FLOPs [%]",
        logx=False, logy=False, kind="stacked", panels=tuple(panels), note=note,
    ),)


# ----------------------------------------------------------------------------------
# Drawing (called by the renderer)
# ----------------------------------------------------------------------------------


def render_png(data: PlotData, *, dpi: int = 100) -> Plot:
    """Draw ``data`` with matplotlib (Agg, no pyplot) and return it with its PNG bytes
    and the legend entries drawn (failures included, e.g. "nl: ✕ out of memory at …").
    Every text is drawn as text: ``$…$`` in a block or run name is never mathtext."""
    import matplotlib

    with matplotlib.rc_context({"text.parse_math": False, "text.usetex": False}):
        return _render(data, dpi=dpi)


def _render(data: PlotData, *, dpi: int) -> Plot:
    if data.kind == "heatmaps":
        return _render_heatmaps(data, dpi=dpi)
    if data.kind == "stacked":
        return _render_stacked(data, dpi=dpi)
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    figure = Figure(figsize=(9.6, 5.2), dpi=dpi)
    figure.subplots_adjust(left=0.085, right=0.64, bottom=0.1, top=0.93)  # legend on the right
    FigureCanvasAgg(figure)
    axes = figure.add_subplot(1, 1, 1)
    count = max(1, len(data.series))
    cmap = matplotlib.colormaps["tab10" if count <= 10 else "tab20"]
    markers = "osD^v<>ph*"
    handles: dict[tuple[str, int, str], Any] = {}  # (role, series, status) -> artist
    lines = data.kind == "cost"
    for number, series in enumerate(data.series):
        color = cmap(number % cmap.N)
        marker = markers[number % len(markers)]
        if series.x:
            if series.y_low and series.y_high:
                lower = np.maximum(np.subtract(series.y, series.y_low), 0.0)
                upper = np.maximum(np.subtract(series.y_high, series.y), 0.0)
                handle = axes.errorbar(series.x, series.y, yerr=[lower, upper], color=color, marker=marker,
                                       markersize=5, linewidth=1.4 if lines else 0, capsize=3, elinewidth=1.1,
                                       linestyle="-" if lines else "none")
            else:
                (handle,) = axes.plot(series.x, series.y, color=color, marker=marker, markersize=5,
                                      linewidth=1.4, linestyle="-" if lines else "none")
            handles[("series", number, "")] = handle
        if series.fit_x:
            axes.plot(series.fit_x, series.fit_y, color=color, linestyle=":", linewidth=1.2, alpha=0.9)
        if series.warned_points:  # never drawn as ordinary data: ringed, and named in the legend
            wx, wy, _ = zip(*series.warned_points)
            handles[("warned", -1, "")] = axes.scatter(wx, wy, s=170, facecolors="none", edgecolors="crimson",
                                                       linewidths=1.6, zorder=6)
        for status, points in failed_by_status(series).items():
            handles[("failed", number, status)] = axes.scatter(
                [p.x for p in points], [p.y for p in points], marker="x", s=90, linewidths=2.2, color=color, zorder=5)
        if data.kind == "pareto" and series.x:
            axes.annotate(series.label, (series.x[0], series.y[0]), textcoords="offset points", xytext=(6, 4),
                          fontsize=8)
    if data.front:
        fx, fy = zip(*data.front)
        (handles[("front", -1, "")],) = axes.step(fx, fy, where="post", color="0.3", linestyle="--", linewidth=1.0)
    handles[("fit", -1, "")] = Line2D([], [], color="0.3", linestyle=":", linewidth=1.2)
    if data.logx:
        axes.set_xscale("log")
    if data.logy:
        axes.set_yscale("log")
    axes.set_xlabel(data.xlabel)
    axes.set_ylabel(data.ylabel)
    axes.set_title(data.title, fontsize=11)
    axes.grid(True, which="major", alpha=0.35)
    entries = data.legend_entries
    if entries:
        axes.legend([handles[(e.role, e.series, e.status)] for e in entries], [e.label for e in entries],
                    loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7.5, frameon=False)
    return Plot(data, _png(figure, dpi), data.legend)


def _render_heatmaps(data: PlotData, *, dpi: int) -> Plot:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    panels = data.heatmaps
    columns = min(5, max(1, len(panels)))
    rows = -(-len(panels) // columns) or 1
    figure = Figure(figsize=(2.2 * columns, 2.4 * rows + 0.4), dpi=dpi)
    FigureCanvasAgg(figure)
    for number, panel in enumerate(panels):
        axes = figure.add_subplot(rows, columns, number + 1)
        heat = np.asarray(panel.values, dtype=float)
        axes.imshow(np.log10(np.maximum(heat, 1e-6)), cmap="magma", vmin=-6, vmax=0, interpolation="nearest")
        axes.set_title(panel.label, fontsize=9)
        axes.set_xticks([])
        axes.set_yticks([])
    figure.suptitle(data.title + " (log10 of normalised |gradient|, −6 … 0)", fontsize=9)
    figure.tight_layout()
    return Plot(data, _png(figure, dpi), data.legend)


#: One colour per operator class, the same in every report (colour-blind-safe "Tableau 10"
#: hues); the classes that count in FLOPs only are drawn hatched, so MAC classes stand out.
OP_CLASS_COLOURS: dict[str, str] = {
    "conv": "#4e79a7", "matmul": "#f28e2b", "fft": "#59a14f", "softmax": "#e15759",
    "elementwise": "#b07aa1", "norm": "#9c755f", "other": "#bab0ac",
}


def _render_stacked(data: PlotData, *, dpi: int) -> Plot:
    """A grid of small stacked-bar panels (shares, 0–100 %) with one shared legend below."""
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    panels = data.panels
    bars = max((len(p.categories) for p in panels), default=1)
    columns = max(1, min(len(panels), 4 if bars <= 4 else 3 if bars <= 6 else 2))
    rows = -(-len(panels) // columns) or 1
    width = max(2.6, 0.42 * bars + 0.9)
    figure = Figure(figsize=(width * columns + 0.6, 2.45 * rows + 0.9), dpi=dpi, layout="constrained")
    FigureCanvasAgg(figure)
    labels = [entry.label for entry in data.legend_entries]

    def style(label: str) -> dict[str, Any]:
        flops_only = label not in MAC_OP_CLASSES
        return {"facecolor": OP_CLASS_COLOURS.get(label, "#888888"), "edgecolor": "white", "linewidth": 0.5,
                "hatch": "////" if flops_only else None}

    with matplotlib.rc_context({"hatch.color": "white", "hatch.linewidth": 0.6}):
        for number, panel in enumerate(panels):
            axes = figure.add_subplot(rows, columns, number + 1)
            x = np.arange(len(panel.categories))
            bottom = np.zeros(len(x))
            for stack in panel.stacks:
                heights = np.nan_to_num(np.asarray(stack.values, dtype=float) * 100.0)
                axes.bar(x, heights, bottom=bottom, width=0.72, **style(stack.label))
                bottom += heights
            for i, text in enumerate(panel.above):
                if text:
                    axes.text(x[i], 101.5, text, ha="center", va="bottom", fontsize=6.5, color="0.2")
            for i, text in enumerate(panel.missing):
                if text:
                    axes.text(x[i], 3, text, ha="center", va="bottom", rotation=90, fontsize=7, color="#b3261e")
            axes.set_xlim(-0.6, len(x) - 0.4)
            axes.set_ylim(0, 112)
            axes.set_yticks([0, 25, 50, 75, 100])
            axes.tick_params(axis="y", labelsize=7)
            axes.set_xticks(x, panel.categories, fontsize=6.5)
            axes.set_title(panel.label, fontsize=9)
            axes.grid(True, axis="y", alpha=0.3)
            axes.set_axisbelow(True)
            if number % columns == 0:
                axes.set_ylabel(data.ylabel, fontsize=7.5)
        if labels:
            handles = [Patch(label=label, **style(label)) for label in labels]
            figure.legend(handles, labels, loc="outside lower center", ncol=len(labels), fontsize=8, frameon=False,
                          handlelength=1.6)
        # ~13 characters of 10-pt text per inch: wrap the title to the figure's width
        figure.suptitle(textwrap.fill(data.title, int(figure.get_figwidth() * 13)), fontsize=10)
        return Plot(data, _png(figure, dpi), data.legend)


def _png(figure: Any, dpi: int) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi, metadata={"Software": None})
    return buffer.getvalue()
