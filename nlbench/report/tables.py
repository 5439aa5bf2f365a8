"""Pure pandas views of stored results that the report shows: deltas against the
``identity`` baseline, counter comparison, probe summaries, latency noise, failures and
cost attribution (shares by operator class and by module).
Each takes a results frame (as :func:`nlbench.store.load` returns it; a frame built by
hand is normalised first) and gives a plain DataFrame of numbers, not text, so tests,
the CLI and other tools can use them. N is the store's ``positions`` column, the
metrics and statuses are :mod:`nlbench.vocabulary`'s."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from nlbench import store
from nlbench.report.formatting import size_text
from nlbench.vocabulary import (
    CLASS_COST_COLUMNS, IDENTITY_BLOCK, LATENCY_METRICS, MAC_OP_CLASSES, METRICS, NOISY_IQR_OVER_MEDIAN, OP_CLASSES,
    ROOT_MODULE, SHAPE_KEYS, STATUS_OK, WARNING_CONTENDED, WARNING_FEW_SAMPLES, WARNING_NOISY, class_cost_column,
    metric,
)

#: Latency below this median is not judged for noise: timer resolution dominates.
NOISE_MIN_MS = 1.0


def sweeps(df: pd.DataFrame) -> pd.DataFrame:
    """The sweep cases of a results frame, normalised (idempotent for a loaded frame)."""
    return store.sweep_records(store.normalise(df))


# ----------------------------------------------------------------------------------
# Deltas and counters
# ----------------------------------------------------------------------------------


def delta_columns() -> list[str]:
    """The columns of :func:`delta_vs_identity`."""
    columns = ["run", "block", "options", *SHAPE_KEYS, "positions", "status", "identity_status"]
    for m in METRICS:
        columns += [f"{m.name}_block", f"{m.name}_identity", f"{m.name}_delta"]
    return columns


def delta_vs_identity(df: pd.DataFrame) -> pd.DataFrame:
    """Each block's cost minus ``identity``'s at the same case shape (same run).

    One row per non-identity sweep case whose shape (:data:`~nlbench.vocabulary.SHAPE_KEYS`)
    has an ``identity`` case; for each metric ``m`` of the vocabulary: ``m_block``,
    ``m_identity`` and ``m_delta``. A failed case (either side) or a measurement not
    taken gives a null delta, never zero.
    """
    frame = sweeps(df)
    columns = delta_columns()
    keys = ["run", *SHAPE_KEYS]
    identity = frame.loc[frame["block"] == IDENTITY_BLOCK]
    others = frame.loc[frame["block"] != IDENTITY_BLOCK]
    if identity.empty or others.empty:
        return pd.DataFrame(columns=columns)
    # One identity case per shape, an ok one when the shape was measured more than once.
    identity = (identity.assign(_ok=identity["status"] == STATUS_OK).sort_values("_ok", kind="stable")
                .drop_duplicates(keys, keep="last"))
    costs = [m.column for m in METRICS]
    base = identity[[*keys, "status", *costs]].rename(columns={"status": "identity_status",
                                                               **{c: f"_id_{c}" for c in costs}})
    merged = others.merge(base, on=keys, how="inner")
    if merged.empty:
        return pd.DataFrame(columns=columns)
    own_ok = merged["status"] == STATUS_OK
    ref_ok = merged["identity_status"] == STATUS_OK
    for m in METRICS:
        own = merged[m.column].where(own_ok)
        ref = merged[f"_id_{m.column}"].where(ref_ok)
        merged[f"{m.name}_block"] = own
        merged[f"{m.name}_identity"] = ref
        merged[f"{m.name}_delta"] = (own - ref).where(own_ok & ref_ok)
    return merged[columns].reset_index(drop=True)


COUNTER_COLUMNS: tuple[str, ...] = (
    "run", "block", "options", *SHAPE_KEYS, "positions", "macs", "fvcore_macs", "fvcore_ratio",
    "ptflops_macs", "ptflops_ratio", "uncounted_ops",
)


def counter_comparison(df: pd.DataFrame) -> pd.DataFrame:
    """Our audited MACs beside fvcore's and ptflops' for every ok case that has them.

    ``fvcore_ratio`` / ``ptflops_ratio`` are the tool's count over ours: below 1 the
    tool undercounts (it skips operators it has no formula for), above 1 it overcounts.
    """
    frame = sweeps(df)
    frame = frame.loc[(frame["status"] == STATUS_OK) & frame["macs"].notna()
                      & (frame["fvcore_macs"].notna() | frame["ptflops_macs"].notna())].copy()
    if frame.empty:
        return pd.DataFrame(columns=list(COUNTER_COLUMNS))
    ours = frame["macs"].where(frame["macs"] > 0)
    frame["fvcore_ratio"] = frame["fvcore_macs"] / ours
    frame["ptflops_ratio"] = frame["ptflops_macs"] / ours
    frame["uncounted_ops"] = frame["uncounted_ops"].map(lambda v: v if isinstance(v, list) else [])
    return frame[list(COUNTER_COLUMNS)].reset_index(drop=True)


# ----------------------------------------------------------------------------------
# Probes
# ----------------------------------------------------------------------------------

PROBE_COLUMNS: tuple[str, ...] = (
    "run", "task", "block", "options", "n_seeds", "n_failed", "accuracy_mean", "accuracy_std", "accuracy_min",
    "accuracy_max", "macs", "params", "steps", "steps_per_s_median", "pareto",
)


def probe_summary(df: pd.DataFrame) -> pd.DataFrame:
    """Probe accuracy by (run, task, block, options) over seeds, with cost and the Pareto flag.

    ``accuracy_std`` is the sample standard deviation (ddof = 1; null for one seed);
    ``accuracy_min``/``accuracy_max`` the seeds' range (what the plots draw: a seed
    that learns beside two at chance makes mean ± std run past 100 %).
    ``pareto`` is true when no other block of the same task and run reaches at least
    the same mean accuracy with fewer MACs (or a higher one with as few).
    """
    probes = store.probe_records(store.normalise(df))
    if probes.empty:
        return pd.DataFrame(columns=list(PROBE_COLUMNS))
    for column in ("task", "accuracy", "steps", "steps_per_s"):
        if column not in probes.columns:
            probes[column] = math.nan if column != "task" else None
    records = []
    for (run, task, block, options), rows in probes.groupby(["run", "task", "block", "options"], sort=True,
                                                              dropna=False):
        ok = rows.loc[rows["status"] == STATUS_OK]
        accuracy = ok["accuracy"].dropna()

        def median(column: str) -> float:
            values = ok[column].dropna()
            return float(values.median()) if values.size else math.nan

        records.append({
            "run": run, "task": task, "block": block, "options": options,
            "n_seeds": int(accuracy.size),
            "n_failed": int(len(rows) - accuracy.size),
            "accuracy_mean": float(accuracy.mean()) if accuracy.size else math.nan,
            "accuracy_std": float(accuracy.std(ddof=1)) if accuracy.size > 1 else math.nan,
            "accuracy_min": float(accuracy.min()) if accuracy.size else math.nan,
            "accuracy_max": float(accuracy.max()) if accuracy.size else math.nan,
            "macs": median("macs"), "params": median("params"), "steps": median("steps"),
            "steps_per_s_median": median("steps_per_s"),
        })
    summary = pd.DataFrame.from_records(records)
    summary["pareto"] = False
    for _, group in summary.groupby(["run", "task"], sort=False, dropna=False):
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

NOISE_COLUMNS: tuple[str, ...] = ("metric", "latency", "n_cases", "n_timed", "n_noisy", "noisy_fraction", "n_warned",
                                  "n_contended", "n_few_samples", "min_ms", "threshold")


def _warned(warnings: pd.Series, word: str | None = None) -> pd.Series:
    """True where a case's stored latency warnings include ``word`` (any, when None)."""
    return warnings.map(lambda value: isinstance(value, list) and (word in value if word else len(value) > 0)).astype(bool)


def latency_noise(df: pd.DataFrame, *, min_ms: float = NOISE_MIN_MS) -> pd.DataFrame:
    """Per latency metric: ok cases with a median ≥ ``min_ms``; how many are noisy (their
    stored warnings say ``noisy``: IQR/median > :data:`~nlbench.vocabulary.NOISY_IQR_OVER_MEDIAN`)
    and that fraction; how many carry any warning, ``contended``, ``few-samples``.
    ``latency`` is the short name (``fwd``, ``fwdbwd``)."""
    frame = sweeps(df)
    records = []
    for name in LATENCY_METRICS:
        m = metric(name)
        median = frame[m.column]
        if not median.notna().any():
            continue
        timed = (frame["status"] == STATUS_OK) & (median >= min_ms)
        stored = frame[m.warnings_column]
        counts = {word: int((timed & _warned(stored, word)).sum())
                  for word in (WARNING_NOISY, WARNING_CONTENDED, WARNING_FEW_SAMPLES)}
        n_timed = int(timed.sum())
        records.append({
            "metric": name, "latency": name.removeprefix("latency_").removesuffix("_ms"),
            "n_cases": int(median.notna().sum()), "n_timed": n_timed, "n_noisy": counts[WARNING_NOISY],
            "noisy_fraction": counts[WARNING_NOISY] / n_timed if n_timed else math.nan,
            "n_warned": int((timed & _warned(stored)).sum()), "n_contended": counts[WARNING_CONTENDED],
            "n_few_samples": counts[WARNING_FEW_SAMPLES], "min_ms": min_ms, "threshold": NOISY_IQR_OVER_MEDIAN,
        })
    return pd.DataFrame.from_records(records, columns=list(NOISE_COLUMNS))


def noisiest_cases(df: pd.DataFrame, *, metric_name: str = "latency_fwd_ms", min_ms: float = NOISE_MIN_MS,
                   limit: int = 10) -> pd.DataFrame:
    """The ok cases with the largest IQR/median of one latency (median ≥ ``min_ms``),
    with ``median``, ``iqr``, ``noise`` (IQR/median) and ``warned`` columns."""
    m = metric(metric_name)
    frame = sweeps(df)
    frame = frame.assign(median=frame[m.column], iqr=frame[m.iqr_column], noise=frame[m.iqr_column] / frame[m.column],
                         warned=_warned(frame[m.warnings_column]))
    frame = frame.loc[(frame["status"] == STATUS_OK) & (frame["median"] >= min_ms) & frame["noise"].notna()]
    return frame.sort_values("noise", ascending=False, kind="stable").head(limit)


def failed_cases(df: pd.DataFrame) -> pd.DataFrame:
    """Sweep cases that did not finish (a failed status: oom, timeout, error, skipped)."""
    frame = sweeps(df)
    frame = frame.loc[frame["status"] != STATUS_OK]
    return frame.sort_values(["run", "block", "channels", "positions"], kind="stable")


LIMIT_COLUMNS: tuple[str, ...] = (
    "run", "block", "options", "channels", "batch", "dtype", "device", "largest_ok_positions", "largest_ok_size",
    "first_failed_positions", "first_failed_size", "first_failed_status", "n_failed",
)


def memory_limits(df: pd.DataFrame) -> pd.DataFrame:
    """Per (run, block, options, channels, batch, dtype, device) that failed somewhere:
    the largest N that ran and the smallest N that did not (with its status)."""
    frame = sweeps(df)
    records: list[dict[str, Any]] = []
    keys = ["run", "block", "options", "channels", "batch", "dtype", "device"]
    for key, rows in frame.groupby(keys, sort=True, dropna=False):
        failed = rows.loc[rows["status"] != STATUS_OK].sort_values("positions", kind="stable")
        if failed.empty:
            continue
        ok = rows.loc[rows["status"] == STATUS_OK].sort_values("positions", kind="stable")
        first = failed.iloc[0]
        last_ok = ok.iloc[-1] if len(ok) else None
        records.append({
            **dict(zip(keys, key)),
            "largest_ok_positions": float(last_ok["positions"]) if last_ok is not None else math.nan,
            "largest_ok_size": size_text(last_ok["height"], last_ok["width"], last_ok["frames"])
            if last_ok is not None else "",
            "first_failed_positions": float(first["positions"]),
            "first_failed_size": size_text(first["height"], first["width"], first["frames"]),
            "first_failed_status": first["status"],
            "n_failed": int(len(failed)),
        })
    return pd.DataFrame.from_records(records, columns=list(LIMIT_COLUMNS))


# ----------------------------------------------------------------------------------
# Cost attribution
# ----------------------------------------------------------------------------------

#: The quantities a case's cost is attributed in, and the operator classes each is split into.
ATTRIBUTED_QUANTITIES: tuple[tuple[str, tuple[str, ...]], ...] = (("flops", OP_CLASSES), ("macs", MAC_OP_CLASSES))


def share_column(quantity: str, op_class: str) -> str:
    """The column of one class's share of a case's ``quantity`` in :func:`attributed_cases`
    (``flops_conv_share``, ``macs_fft_share`` …)."""
    return class_cost_column(quantity, op_class) + "_share"


def is_attributed(frame: pd.DataFrame) -> pd.Series:
    """True for the ok cases of a normalised frame whose cost was attributed to operator
    classes (store schema 2 on; older runs and cases not counted have null class columns)."""
    return (frame["status"] == STATUS_OK) & frame[list(CLASS_COST_COLUMNS)].notna().all(axis=1)


def attributed_cases(df: pd.DataFrame) -> pd.DataFrame:
    """The ok sweep cases whose cost was attributed to operator classes, with
    ``attributed_flops`` / ``attributed_macs`` (the sums over classes) and each class's
    share of them (:func:`share_column`): shares of a case add to 1, NaN where the total is 0."""
    frame = sweeps(df)
    frame = frame.loc[is_attributed(frame)].copy()
    for quantity, classes in ATTRIBUTED_QUANTITIES:
        total = frame[[class_cost_column(quantity, c) for c in classes]].sum(axis=1)
        frame[f"attributed_{quantity}"] = total
        for op_class in classes:
            frame[share_column(quantity, op_class)] = frame[class_cost_column(quantity, op_class)] / total.where(total > 0)
    return frame


MODULE_COST_COLUMNS: tuple[str, ...] = ("module", "type", "calls", "flops", "macs", "flops_share", "macs_share",
                                        "main_class", "main_class_share")


def module_costs(modules: Any) -> pd.DataFrame:
    """A case's ``cost_by_module`` as a frame, costliest first (FLOPs, then MACs; stable):
    each module's share of the case's FLOPs and MACs — every operator counts once, in the
    innermost module whose forward ran it, so the shares add to 1 — and ``main_class``, the
    operator class of most of the module's FLOPs, with its share of them. Module names stay
    as stored (:data:`~nlbench.vocabulary.ROOT_MODULE` is the block's own forward); empty
    when the case has no module attribution."""
    if not isinstance(modules, list):
        return pd.DataFrame(columns=list(MODULE_COST_COLUMNS))
    records = []
    for entry in modules:
        if not isinstance(entry, dict):
            continue
        by_class = entry.get("by_class") if isinstance(entry.get("by_class"), dict) else {}
        class_flops = {c: float((by_class.get(c) or {}).get("flops", 0) or 0) for c in OP_CLASSES}
        flops = float(entry.get("flops") or 0)
        main = max(OP_CLASSES, key=lambda c: class_flops[c])  # ties: the first in OP_CLASSES
        records.append({"module": str(entry.get("module", ROOT_MODULE)), "type": str(entry.get("type") or ""),
                        "calls": entry.get("calls"), "flops": flops, "macs": float(entry.get("macs") or 0),
                        "main_class": main if class_flops[main] > 0 else "",
                        "main_class_share": class_flops[main] / flops if flops > 0 else math.nan})
    frame = pd.DataFrame.from_records(records, columns=["module", "type", "calls", "flops", "macs", "main_class",
                                                     "main_class_share"])
    for quantity in ("flops", "macs"):
        total = frame[quantity].sum()
        frame[f"{quantity}_share"] = frame[quantity] / total if total > 0 else math.nan
    frame = frame.sort_values(["flops", "macs"], ascending=False, kind="stable").reset_index(drop=True)
    return frame[list(MODULE_COST_COLUMNS)]
