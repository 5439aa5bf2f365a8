"""Plot data from stored results, and its rendering to PNG with matplotlib's Agg
backend (no pyplot state, no display). Building the data is pure pandas/numpy; the
fitted lines are :func:`nlbench.fit.fit_series`'s term models."""

from __future__ import annotations

import io
import math
import re
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import pandas as pd

from nlbench.fit import fit_series
from nlbench.report.formatting import as_float, block_label, is_missing, size_text
from nlbench.report.model import FailedPoint, Plot, PlotData, Series

STATUS_TEXT = {"oom": "out of memory", "timeout": "timed out", "error": "error", "skipped": "skipped (too big)"}


@dataclass(frozen=True)
class CostMetric:
    """A cost a plot can show: its store column and how to label it."""

    name: str
    column: str
    title: str
    ylabel: str
    samples_column: str = ""


COST_METRICS: tuple[CostMetric, ...] = (
    CostMetric("macs", "macs", "MACs", "MACs (multiply-adds; FLOPs = 2·MACs)"),
    CostMetric("latency_fwd_ms", "latency_fwd_ms_median", "forward latency",
               "forward latency, median [ms] (bars: IQR)", "latency_fwd_ms_samples"),
    CostMetric("latency_fwdbwd_ms", "latency_fwdbwd_ms_median", "forward+backward latency",
               "forward+backward latency, median [ms] (bars: IQR)", "latency_fwdbwd_ms_samples"),
    CostMetric("peak_mem_fwd_bytes", "peak_mem_fwd_bytes", "peak memory, forward", "peak memory, forward [bytes]"),
    CostMetric("peak_mem_fwdbwd_bytes", "peak_mem_fwdbwd_bytes", "peak memory, forward+backward",
               "peak memory, forward+backward [bytes]"),
)

AXIS_LABELS = {"N": "N = H·W (·T) positions", "C": "C channels"}


def _fixed_keys(axis: str) -> list[str]:
    common = ["frames", "batch", "device", "dtype"]
    return (["channels"] if axis == "N" else ["height", "width"]) + common


def _fixed_text(axis: str, fixed: dict[str, Any]) -> str:
    parts = [f"C={int(fixed['channels'])}"] if axis == "N" else [size_text(fixed["height"], fixed["width"])]
    frames = fixed.get("frames")
    if not is_missing(frames) and frames != -1:
        parts.append(f"T={int(frames)}")
    if not is_missing(fixed.get("batch")):
        parts.append(f"batch {int(fixed['batch'])}")
    for key in ("dtype", "device"):
        if isinstance(fixed.get(key), str) and fixed[key]:
            parts.append(fixed[key])
    return ", ".join(parts)


def _prepared(df: pd.DataFrame) -> pd.DataFrame:
    frame = df.copy()
    for column in ("channels", "height", "width", "batch"):
        frame[column] = pd.to_numeric(frame[column], errors="coerce")
    frame["frames"] = pd.to_numeric(frame.get("frames"), errors="coerce").fillna(-1)
    for column in ("device", "dtype"):
        frame[column] = frame[column].fillna("")
    frame["positions"] = frame["height"] * frame["width"] * frame["frames"].where(frame["frames"] > 0, 1.0)
    return frame


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


def _series(rows: pd.DataFrame, metric: CostMetric, axis: str, label: str) -> Series:
    """One block's points, fitted line and failed sizes along ``axis``."""
    x_column = "positions" if axis == "N" else "channels"
    ok = rows.loc[rows["status"] == "ok"].copy()
    ok["_y"] = pd.to_numeric(ok[metric.column], errors="coerce") if metric.column in ok.columns else math.nan
    ok = ok.loc[ok["_y"].notna()]
    xs, ys, lows, highs, zeros = [], [], [], [], []
    for x, at_x in ok.groupby(x_column, sort=True):
        y = float(at_x["_y"].median())
        if y <= 0:
            zeros.append(float(x))
            continue
        xs.append(float(x))
        ys.append(y)
        q1, q3 = (_quartiles(at_x.iloc[0].get(metric.samples_column)) if metric.samples_column and len(at_x) == 1
                  else (math.nan, math.nan))
        lows.append(q1)
        highs.append(q3)
    failed_rows = rows.loc[rows["status"] != "ok"].sort_values(x_column)
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
        where = (size_text(row["height"], row["width"], None if row["frames"] == -1 else row["frames"])
                 if axis == "N" else f"C={int(row['channels'])}")
        failed.append(FailedPoint(x, y, str(row["status"]), where,
                                  "" if is_missing(row.get("error")) else str(row.get("error"))))
    if not all(math.isfinite(v) for v in lows + highs):
        lows, highs = [], []
    return Series(label, tuple(xs), tuple(ys), tuple(lows), tuple(highs), fit_x, fit_y, terms, tuple(failed),
                  tuple(zeros))


def cost_plot_data(df: pd.DataFrame, axis: str, *, several_runs: bool = False,
                   max_groups: int = 2) -> list[PlotData]:
    """Cost-vs-``axis`` plot data for every cost with data: one line per block (and
    configuration, and run when ``several_runs``), for at most ``max_groups`` fixed
    groups (the other axis, frames, batch, dtype, device) per cost, the best-sampled
    first. ``df`` holds sweep rows (see :func:`nlbench.report.tables.sweep_rows`)."""
    if axis not in AXIS_LABELS:
        raise ValueError(f"axis must be 'N' or 'C', got {axis!r}")
    if df.empty:
        return []
    frame = _prepared(df)
    x_column = "positions" if axis == "N" else "channels"
    keys = _fixed_keys(axis)
    plots: list[PlotData] = []
    for metric in COST_METRICS:
        if metric.column not in frame.columns or not pd.to_numeric(frame[metric.column], errors="coerce").notna().any():
            continue
        candidates = []
        for key, group in frame.groupby(keys, sort=True, dropna=False):
            if group[x_column].nunique() < 2:
                continue
            measured = pd.to_numeric(group[metric.column], errors="coerce")
            n_points = int(((group["status"] == "ok") & (measured > 0)).sum())
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
                ylabel=metric.ylabel,
                series=tuple(series),
                note=note,
            ))
    return plots


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


def pareto_plot_data(summary: pd.DataFrame, *, several_runs: bool = False) -> list[PlotData]:
    """Accuracy vs MACs per probe task (one point per block, bars ±1 std over seeds),
    with the Pareto front. ``summary`` is :func:`nlbench.report.tables.probe_summary`."""
    plots = []
    if summary.empty:
        return plots
    for (run, task), group in summary.groupby(["run", "task"], sort=True):
        series = []
        for _, row in group.iterrows():
            acc, macs = as_float(row["accuracy_mean"]), as_float(row["macs"])
            if not (math.isfinite(acc) and math.isfinite(macs) and macs > 0):
                continue
            std = as_float(row["accuracy_std"])
            low, high = ((acc - std,), (acc + std,)) if math.isfinite(std) else ((), ())
            series.append(Series(block_label(row["block"], row["options"], str(run) if several_runs else None),
                                 (macs,), (acc,), low, high))
        if not series:
            continue
        front = sorted((as_float(r["macs"]), as_float(r["accuracy_mean"])) for _, r in group.iterrows() if r["pareto"])
        title = f"probe '{task}': accuracy vs MACs" + (f" [{run}]" if several_runs else "")
        plots.append(PlotData(
            key=_slug(f"pareto-{task}-{run if several_runs else ''}"),
            title=title, xlabel="MACs of the probe network, one image (log)",
            ylabel="test accuracy (mean ± std over seeds)", series=tuple(series), logx=True, logy=False,
            kind="pareto", front=tuple(front),
        ))
    return plots


# ----------------------------------------------------------------------------------
# Rendering
# ----------------------------------------------------------------------------------


def _failure_label(label: str, points: Sequence[FailedPoint]) -> str:
    status = points[0].status
    sizes = ", ".join(p.size for p in points[:3]) + (" …" if len(points) > 3 else "")
    return f"{label}: ✕ {STATUS_TEXT.get(status, status)} at {sizes}"


def render_png(data: PlotData, *, dpi: int = 100) -> Plot:
    """Draw ``data`` with matplotlib (Agg, no pyplot) and return it with its PNG bytes
    and the legend entries drawn (failures included, e.g. "nl: ✕ out of memory at …")."""
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
    entries: list[tuple[Any, str]] = []  # legend in drawing order: a block, then its failures
    for number, series in enumerate(data.series):
        color = cmap(number % cmap.N)
        marker = markers[number % len(markers)]
        label = series.label + (f"  (fit: {series.fit_terms})" if series.fit_terms else "")
        if series.x:
            if series.y_low and series.y_high:
                lower = np.maximum(np.subtract(series.y, series.y_low), 0.0)
                upper = np.maximum(np.subtract(series.y_high, series.y), 0.0)
                handle = axes.errorbar(series.x, series.y, yerr=[lower, upper], color=color, marker=marker,
                                       markersize=5, linewidth=1.4 if data.kind == "cost" else 0, capsize=3, elinewidth=1.1,
                                       linestyle="-" if data.kind == "cost" else "none")
            else:
                (handle,) = axes.plot(series.x, series.y, color=color, marker=marker, markersize=5,
                                      linewidth=1.4, linestyle="-" if data.kind == "cost" else "none")
            entries.append((handle, label))
        if series.fit_x:
            axes.plot(series.fit_x, series.fit_y, color=color, linestyle=":", linewidth=1.2, alpha=0.9)
        by_status: dict[str, list[FailedPoint]] = {}
        for point in series.failed:
            by_status.setdefault(point.status, []).append(point)
        for points in by_status.values():
            handle = axes.scatter([p.x for p in points], [p.y for p in points], marker="x", s=90, linewidths=2.2,
                                  color=color, zorder=5)
            entries.append((handle, _failure_label(series.label, points)))
        if data.kind == "pareto" and series.x:
            axes.annotate(series.label, (series.x[0], series.y[0]), textcoords="offset points", xytext=(6, 4),
                          fontsize=8)
    if data.front:
        fx, fy = zip(*data.front)
        (handle,) = axes.step(fx, fy, where="post", color="0.3", linestyle="--", linewidth=1.0)
        entries.append((handle, "Pareto front"))
    if data.logx:
        axes.set_xscale("log")
    if data.logy:
        axes.set_yscale("log")
    axes.set_xlabel(data.xlabel)
    axes.set_ylabel(data.ylabel)
    axes.set_title(data.title, fontsize=11)
    axes.grid(True, which="major", alpha=0.35)
    handles = [handle for handle, _ in entries]
    labels = [label for _, label in entries]
    if data.kind == "cost" and any(s.fit_x for s in data.series):
        handles.append(Line2D([], [], color="0.3", linestyle=":", linewidth=1.2))
        labels.append("dotted: fitted cost model (nlbench.fit)")
    if labels:
        axes.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7.5, frameon=False)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi, metadata={"Software": None})
    return Plot(data, buffer.getvalue(), tuple(labels))


def render_heatmaps(key: str, title: str, maps: Sequence[tuple[str, np.ndarray]], *, dpi: int = 100) -> Plot:
    """A grid of receptive-field heat maps (|∂ centre output / ∂ input|, normalised),
    one panel per block, as a :class:`Plot` with its PNG bytes."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    columns = min(5, max(1, len(maps)))
    rows = -(-len(maps) // columns)
    figure = Figure(figsize=(2.2 * columns, 2.4 * rows + 0.4), dpi=dpi)
    FigureCanvasAgg(figure)
    for number, (label, heat) in enumerate(maps):
        axes = figure.add_subplot(rows, columns, number + 1)
        axes.imshow(np.log10(np.maximum(heat, 1e-6)), cmap="magma", vmin=-6, vmax=0, interpolation="nearest")
        axes.set_title(label, fontsize=9)
        axes.set_xticks([])
        axes.set_yticks([])
    figure.suptitle(title + " (log10 of normalised |gradient|, −6 … 0)", fontsize=9)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    data = PlotData(key=key, title=title, xlabel="", ylabel="", series=(), logx=False, logy=False, kind="heatmaps")
    return Plot(data=data, png=buffer.getvalue(), legend=tuple(label for label, _ in maps))
