"""Pure pandas views of stored results that the report shows: deltas against the
``identity`` baseline, counter comparison, paper-table comparison, probe summaries,
latency noise and failures. Each takes the frame :func:`nlbench.store.load` returns and
gives a plain DataFrame (numbers, not text), so tests and other tools can use them."""

from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np
import pandas as pd

from nlbench.report.formatting import as_float, canonical_options, is_missing, size_text

# The costs a report compares, as (metric name, store column).
COST_COLUMNS: Mapping[str, str] = {
    "macs": "macs",
    "latency_fwd_ms": "latency_fwd_ms_median",
    "latency_fwdbwd_ms": "latency_fwdbwd_ms_median",
    "peak_mem_fwd_bytes": "peak_mem_fwd_bytes",
    "peak_mem_fwdbwd_bytes": "peak_mem_fwdbwd_bytes",
}

# A case's shape: what identifies "the same input" across blocks within one run.
SHAPE_KEYS: tuple[str, ...] = ("channels", "height", "width", "frames", "batch", "device", "dtype")

IDENTITY_BLOCK = "identity"
FAILED_STATUSES: tuple[str, ...] = ("oom", "timeout", "error", "skipped")


def _column(df: pd.DataFrame, name: str) -> pd.Series:
    """A column, or an all-missing one when the frame lacks it."""
    if name in df.columns:
        return df[name]
    return pd.Series([None] * len(df), index=df.index, dtype=object)


def sweep_rows(df: pd.DataFrame) -> pd.DataFrame:
    """The sweep cases of a results frame (``kind`` "sweep" or absent), not probe results."""
    if df.empty:
        return df.copy()
    kind = _column(df, "kind").fillna("sweep")
    frame = df.loc[kind == "sweep"].copy()
    if "run" not in frame.columns:
        frame["run"] = ""
    frame["options"] = _column(frame, "options").map(canonical_options)
    return frame


def receptive_field_rows(df: pd.DataFrame) -> pd.DataFrame:
    """The receptive-field measurements of probe runs (``kind == "receptive_field"``)."""
    if df.empty or "kind" not in df.columns:
        return df.iloc[0:0].copy()
    return df.loc[df["kind"] == "receptive_field"].copy()


def probe_rows(df: pd.DataFrame) -> pd.DataFrame:
    """The probe results of a results frame (``kind == "probe"``)."""
    if df.empty or "kind" not in df.columns:
        return df.iloc[0:0].copy()
    frame = df.loc[df["kind"] == "probe"].copy()
    if "run" not in frame.columns:
        frame["run"] = ""
    frame["options"] = _column(frame, "options").map(canonical_options)
    return frame


def _shape_key(frame: pd.DataFrame) -> pd.Series:
    """A hashable key per row from run + case shape (missing values made comparable)."""
    parts = [_column(frame, "run")] + [_column(frame, key) for key in SHAPE_KEYS]
    cleaned = [part.map(lambda v: None if is_missing(v) else (float(v) if isinstance(v, (int, float, np.number)) else v))
               for part in parts]
    return pd.Series(list(zip(*cleaned)), index=frame.index, dtype=object)


def delta_vs_identity(df: pd.DataFrame) -> pd.DataFrame:
    """Each block's cost minus ``identity``'s at the same case shape (same run).

    One row per non-identity sweep case whose shape (channels, H, W, frames, batch,
    device, dtype) has an ``identity`` case; for each cost ``m`` in
    :data:`COST_COLUMNS`: ``m_block``, ``m_identity`` and ``m_delta``. A failed case
    (either side) or a measurement not taken gives a null delta, never zero.
    """
    columns = ["run", "block", "options", *SHAPE_KEYS, "status", "identity_status"]
    for metric in COST_COLUMNS:
        columns += [f"{metric}_block", f"{metric}_identity", f"{metric}_delta"]
    frame = sweep_rows(df)
    if frame.empty:
        return pd.DataFrame(columns=columns)
    frame = frame.assign(_key=_shape_key(frame))
    identity = frame.loc[frame["block"] == IDENTITY_BLOCK]
    others = frame.loc[frame["block"] != IDENTITY_BLOCK]
    by_key: dict[Any, pd.Series] = {}
    for _, row in identity.iterrows():
        # Prefer an ok identity case when a shape was measured more than once.
        if row["_key"] not in by_key or row["status"] == "ok":
            by_key[row["_key"]] = row
    records = []
    for _, row in others.iterrows():
        base = by_key.get(row["_key"])
        if base is None:
            continue
        record: dict[str, Any] = {name: row.get(name) for name in ("run", "block", "options", *SHAPE_KEYS, "status")}
        record["identity_status"] = base["status"]
        both_ok = row["status"] == "ok" and base["status"] == "ok"
        for metric, column in COST_COLUMNS.items():
            own = as_float(row.get(column)) if row["status"] == "ok" else math.nan
            ref = as_float(base.get(column)) if base["status"] == "ok" else math.nan
            record[f"{metric}_block"] = own
            record[f"{metric}_identity"] = ref
            record[f"{metric}_delta"] = own - ref if both_ok else math.nan
        records.append(record)
    return pd.DataFrame.from_records(records, columns=columns)



def counter_comparison(df: pd.DataFrame) -> pd.DataFrame:
    """Our audited MACs beside fvcore's and ptflops' for every ok case that has them.

    ``fvcore_ratio`` / ``ptflops_ratio`` are the tool's count over ours: below 1 the
    tool undercounts (it skips operators it has no formula for), above 1 it overcounts.
    """
    columns = ["run", "block", "options", *SHAPE_KEYS, "positions", "macs", "fvcore_macs", "fvcore_ratio",
               "ptflops_macs", "ptflops_ratio", "uncounted_ops"]
    frame = sweep_rows(df)
    if frame.empty:
        return pd.DataFrame(columns=columns)
    frame = frame.loc[frame["status"] == "ok"].copy()
    for column in ("macs", "fvcore_macs", "ptflops_macs"):
        frame[column] = pd.to_numeric(_column(frame, column), errors="coerce")
    frame = frame.loc[frame["macs"].notna() & (frame["fvcore_macs"].notna() | frame["ptflops_macs"].notna())]
    if frame.empty:
        return pd.DataFrame(columns=columns)
    ours = frame["macs"].where(frame["macs"] > 0)
    frame["fvcore_ratio"] = frame["fvcore_macs"] / ours
    frame["ptflops_ratio"] = frame["ptflops_macs"] / ours
    frame["positions"] = (pd.to_numeric(frame["height"], errors="coerce") * pd.to_numeric(frame["width"], errors="coerce")
                          * pd.to_numeric(_column(frame, "frames"), errors="coerce").fillna(1.0))
    frame["uncounted_ops"] = _column(frame, "uncounted_ops").map(lambda v: list(v) if isinstance(v, list) else [])
    return frame[columns].reset_index(drop=True)


# ----------------------------------------------------------------------------------
# Probes
# ----------------------------------------------------------------------------------

PROBE_COLUMNS: tuple[str, ...] = (
    "run", "task", "block", "options", "n_seeds", "n_failed", "accuracy_mean", "accuracy_std", "macs",
    "params", "steps", "steps_per_s_median", "pareto",
)


def probe_summary(df: pd.DataFrame) -> pd.DataFrame:
    """Probe accuracy by (run, task, block, options) over seeds, with cost and the Pareto flag.

    ``accuracy_std`` is the sample standard deviation (ddof = 1; null for one seed).
    ``pareto`` is true when no other block of the same task and run reaches at least
    the same mean accuracy with fewer MACs (or a higher one with as few).
    """
    probes = probe_rows(df)
    if probes.empty:
        return pd.DataFrame(columns=list(PROBE_COLUMNS))
    records = []
    for (run, task, block, options), rows in probes.groupby(["run", "task", "block", "options"], sort=True, dropna=False):
        ok = rows.loc[rows["status"] == "ok"] if "status" in rows.columns else rows
        accuracy = pd.to_numeric(_column(ok, "accuracy"), errors="coerce").dropna()
        macs = pd.to_numeric(_column(ok, "macs"), errors="coerce").dropna()
        params = pd.to_numeric(_column(ok, "params"), errors="coerce").dropna()
        steps = pd.to_numeric(_column(ok, "steps"), errors="coerce").dropna()
        speed = pd.to_numeric(_column(ok, "steps_per_s"), errors="coerce").dropna()
        records.append({
            "run": run, "task": task, "block": block, "options": options,
            "n_seeds": int(accuracy.size),
            "n_failed": int(len(rows) - accuracy.size),
            "accuracy_mean": float(accuracy.mean()) if accuracy.size else math.nan,
            "accuracy_std": float(accuracy.std(ddof=1)) if accuracy.size > 1 else math.nan,
            "macs": float(macs.median()) if macs.size else math.nan,
            "params": float(params.median()) if params.size else math.nan,
            "steps": float(steps.median()) if steps.size else math.nan,
            "steps_per_s_median": float(speed.median()) if speed.size else math.nan,
        })
    summary = pd.DataFrame.from_records(records)
    summary["pareto"] = False
    for _, group in summary.groupby(["run", "task"], sort=False):
        for index, row in group.iterrows():
            summary.loc[index, "pareto"] = _on_front(row, group)
    return summary[list(PROBE_COLUMNS)]


def _on_front(row: pd.Series, group: pd.DataFrame) -> bool:
    acc, cost = row["accuracy_mean"], row["macs"]
    if not (math.isfinite(acc) and math.isfinite(cost)):
        return False
    for index, other in group.iterrows():
        if index == row.name or not (math.isfinite(other["accuracy_mean"]) and math.isfinite(other["macs"])):
            continue
        if other["macs"] <= cost and other["accuracy_mean"] >= acc and (
                other["macs"] < cost or other["accuracy_mean"] > acc):
            return False
    return True


# ----------------------------------------------------------------------------------
# Latency noise and failures
# ----------------------------------------------------------------------------------


def latency_noise(df: pd.DataFrame, *, min_ms: float = 1.0, threshold: float = 0.10) -> pd.DataFrame:
    """Per latency kind (fwd, fwdbwd): ok cases with a median ≥ ``min_ms``, how many
    have IQR/median above ``threshold``, and that fraction."""
    frame = sweep_rows(df)
    records = []
    for kind in ("fwd", "fwdbwd"):
        median_col, iqr_col = f"latency_{kind}_ms_median", f"latency_{kind}_ms_iqr"
        if frame.empty or median_col not in frame.columns:
            continue
        median = pd.to_numeric(frame[median_col], errors="coerce")
        iqr = pd.to_numeric(_column(frame, iqr_col), errors="coerce")
        timed = (frame["status"] == "ok") & (median >= min_ms)
        if not median.notna().any():
            continue
        noisy = timed & (iqr / median > threshold)
        n_timed, n_noisy = int(timed.sum()), int(noisy.sum())
        records.append({
            "latency": kind, "n_cases": int(median.notna().sum()), "n_timed": n_timed, "n_noisy": n_noisy,
            "noisy_fraction": n_noisy / n_timed if n_timed else math.nan,
            "min_ms": min_ms, "threshold": threshold,
        })
    return pd.DataFrame.from_records(
        records, columns=["latency", "n_cases", "n_timed", "n_noisy", "noisy_fraction", "min_ms", "threshold"])


def noisiest_cases(df: pd.DataFrame, *, min_ms: float = 1.0, limit: int = 10) -> pd.DataFrame:
    """The ok cases with the largest forward IQR/median (median ≥ ``min_ms``)."""
    frame = sweep_rows(df)
    if frame.empty or "latency_fwd_ms_median" not in frame.columns:
        return frame.iloc[0:0]
    median = pd.to_numeric(frame["latency_fwd_ms_median"], errors="coerce")
    iqr = pd.to_numeric(_column(frame, "latency_fwd_ms_iqr"), errors="coerce")
    frame = frame.assign(_median=median, _iqr=iqr, noise=iqr / median)
    frame = frame.loc[(frame["status"] == "ok") & (frame["_median"] >= min_ms) & frame["noise"].notna()]
    return frame.sort_values("noise", ascending=False).head(limit)


def failed_cases(df: pd.DataFrame) -> pd.DataFrame:
    """Sweep cases that did not finish (status oom, timeout, error or skipped)."""
    frame = sweep_rows(df)
    if frame.empty:
        return frame
    frame = frame.loc[frame["status"] != "ok"].copy()
    frame["positions"] = (pd.to_numeric(frame["height"], errors="coerce") * pd.to_numeric(frame["width"], errors="coerce")
                          * pd.to_numeric(_column(frame, "frames"), errors="coerce").fillna(1.0))
    return frame.sort_values(["run", "block", "channels", "positions"], kind="stable")


def memory_limits(df: pd.DataFrame) -> pd.DataFrame:
    """Per (run, block, options, channels, batch, dtype, device) that failed somewhere:
    the largest N that ran and the smallest N that did not (with its status)."""
    frame = sweep_rows(df)
    columns = ["run", "block", "options", "channels", "batch", "dtype", "device", "largest_ok_positions",
               "largest_ok_size", "first_failed_positions", "first_failed_size", "first_failed_status", "n_failed"]
    if frame.empty:
        return pd.DataFrame(columns=columns)
    frame = frame.assign(positions=pd.to_numeric(frame["height"], errors="coerce")
                         * pd.to_numeric(frame["width"], errors="coerce")
                         * pd.to_numeric(_column(frame, "frames"), errors="coerce").fillna(1.0))
    records = []
    keys = ["run", "block", "options", "channels", "batch", "dtype", "device"]
    for key, rows in frame.groupby(keys, sort=True, dropna=False):
        failed = rows.loc[rows["status"] != "ok"].sort_values("positions")
        if failed.empty:
            continue
        ok = rows.loc[rows["status"] == "ok"].sort_values("positions")
        first = failed.iloc[0]
        last_ok = ok.iloc[-1] if len(ok) else None
        records.append({
            **dict(zip(keys, key)),
            "largest_ok_positions": float(last_ok["positions"]) if last_ok is not None else math.nan,
            "largest_ok_size": size_text(last_ok["height"], last_ok["width"], last_ok.get("frames"))
            if last_ok is not None else "",
            "first_failed_positions": float(first["positions"]),
            "first_failed_size": size_text(first["height"], first["width"], first.get("frames")),
            "first_failed_status": first["status"],
            "n_failed": int(len(failed)),
        })
    return pd.DataFrame.from_records(records, columns=columns)
