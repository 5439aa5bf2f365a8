"""Closing summaries of a run: block × size tables of one headline metric, with
failures shown as their status rather than as a number. Pure pandas."""

from __future__ import annotations

import math

import pandas as pd

from nlbench.report.formatting import is_missing

FAILURE_LABELS = {"oom": "OOM", "timeout": "timeout", "error": "error", "skipped": "skipped"}


def headline_metric(df: pd.DataFrame) -> tuple[str, str]:
    """(column, title) of the metric a run's summary shows: forward latency if it was
    measured, else GMACs."""
    if "latency_fwd_ms_median" in df and df["latency_fwd_ms_median"].notna().any():
        return "latency_fwd_ms_median", "forward latency, median ms"
    return "macs", "MACs (G = 10⁹)"


def size_label(row: pd.Series) -> str:
    frames = row.get("frames")
    prefix = "" if is_missing(frames) else f"T{int(frames)}·"
    return f"{prefix}{int(row['height'])}×{int(row['width'])}"


def format_value(column: str, value: float) -> str:
    if column == "macs":
        return f"{value / 1e9:.3g}"
    return f"{value:.3g}"


def summary_table(df: pd.DataFrame, column: str) -> pd.DataFrame:
    """Rows: blocks (in run order); columns: sizes (and C when several); cells: text."""
    if df.empty:
        return pd.DataFrame()
    frame = df[df.get("kind", "sweep").fillna("sweep") == "sweep"] if "kind" in df else df
    several_c = frame["channels"].nunique() > 1
    cells: dict[str, dict[str, str]] = {}
    column_order: list[str] = []
    for _, row in frame.iterrows():
        key = (f"C{int(row['channels'])} " if several_c else "") + size_label(row)
        if key not in column_order:
            column_order.append(key)
        value = row.get(column)
        if row["status"] != "ok":
            text = FAILURE_LABELS.get(row["status"], row["status"])
        elif value is None or (isinstance(value, float) and math.isnan(value)):
            text = "—"
        else:
            text = format_value(column, float(value))
        cells.setdefault(row["block"], {})[key] = text
    return pd.DataFrame.from_dict(cells, orient="index")[column_order].fillna("")
