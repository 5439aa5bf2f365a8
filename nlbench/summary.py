"""Closing summaries of a run: a block × size table of one headline metric, with
failures shown as their status (the vocabulary's table cells) rather than as a number.
Pure pandas; the table is the report's typed :class:`~nlbench.report.model.Table`."""

from __future__ import annotations

import pandas as pd

from nlbench import store
from nlbench.report.formatting import block_label, size_text
from nlbench.report.model import Cell, Table, number_column, text_column
from nlbench.vocabulary import STATUS_CELL, STATUS_OK, Metric, metric

#: The metrics a summary can lead with, in order of preference.
HEADLINE_METRICS: tuple[str, ...] = ("latency_fwd_ms", "macs")
#: Counts (MACs) are shown in G = 10⁹.
GIGA = 1e9


def headline_metric(df: pd.DataFrame) -> Metric:
    """The metric a run's summary shows: forward latency if it was measured, else MACs."""
    frame = store.normalise(df)
    for name in HEADLINE_METRICS[:-1]:
        if frame[metric(name).column].notna().any():
            return metric(name)
    return metric(HEADLINE_METRICS[-1])


def headline_title(m: Metric) -> str:
    """``forward latency, median ms`` / ``MACs (G = 10⁹)``."""
    return f"{m.title}, median {m.unit}" if m.sampled else f"{m.title} (G = 10⁹)"


def summary_table(df: pd.DataFrame, m: Metric) -> Table:
    """Rows: blocks (in run order); columns: sizes (and C when several); cells: the
    metric's value (G for counts), a failed case's status, "" where not run."""
    frame = store.sweep_records(store.normalise(df))
    several_c = frame["channels"].nunique() > 1
    # A block measured with several option sets (suite variants) gets one row per set.
    several_options = frame.groupby("block")["options"].nunique()
    cells: dict[str, dict[str, Cell]] = {}
    column_order: list[str] = []
    for _, row in frame.iterrows():
        key = (f"C{int(row['channels'])} " if several_c else "") + size_text(row["height"], row["width"], row["frames"])
        if key not in column_order:
            column_order.append(key)
        value: Cell = STATUS_CELL.get(row["status"], row["status"]) if row["status"] != STATUS_OK else row[m.column]
        label = (block_label(row["block"], row["options"]) if several_options.get(row["block"], 1) > 1
                 else str(row["block"]))
        cells.setdefault(label, {})[key] = value
    scale = 1.0 if m.sampled else GIGA
    spec = [text_column("block"), *[number_column(key, scale=scale) for key in column_order]]
    rows = [[block, *[by_size.get(key, "") for key in column_order]] for block, by_size in cells.items()]
    return Table(headline_title(m), tuple(spec), tuple(tuple(row) for row in rows))
