"""Comparing two runs (CPU vs GPU, before vs after a change): per matching case, the
latency ratio candidate/baseline and a two-sided Mann-Whitney U test on the raw
samples. The CI latency gate builds on :func:`compare_runs`. The latency metrics and
their store columns are :mod:`nlbench.vocabulary`'s."""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from nlbench.report.formatting import as_float
from nlbench.report.tables import sweeps
from nlbench.vocabulary import LATENCY_METRICS, SHAPE_KEYS, STATUS_OK, metric

# A case matches across runs on these (not on device: CPU vs GPU is a comparison).
MATCH_KEYS: tuple[str, ...] = ("block", "options", *(key for key in SHAPE_KEYS if key != "device"))

VERDICT_FASTER = "faster"
VERDICT_SLOWER = "slower"
VERDICT_SAME = "no significant change"
VERDICT_FEW = "too few samples"
VERDICT_FAILED = "failed"

COMPARE_COLUMNS: tuple[str, ...] = (
    *MATCH_KEYS, "device_baseline", "device_candidate", "metric", "status_baseline", "status_candidate",
    "baseline_median_ms", "baseline_iqr_ms", "candidate_median_ms", "candidate_iqr_ms", "ratio",
    "n_baseline", "n_candidate", "p_value", "alpha", "verdict",
)


def _samples(value: Any) -> np.ndarray:
    """Raw latency samples as a float array (empty when not recorded)."""
    if isinstance(value, (list, tuple, np.ndarray)):
        array = np.asarray(value, dtype=float)
        return array[np.isfinite(array)]
    return np.empty(0)


def min_two_sided_p(n1: int, n2: int) -> float:
    """The smallest two-sided p-value an exact Mann-Whitney U test can give for sizes
    n1, n2 (complete separation): 2 / C(n1+n2, n1). With 3 and 3 samples it is 0.1, so
    no difference can be significant at α = 0.05 — the verdict says so instead."""
    if n1 < 1 or n2 < 1:
        return 1.0
    return min(1.0, 2.0 / math.comb(n1 + n2, n1))


def _judge(base: np.ndarray, cand: np.ndarray, alpha: float) -> tuple[float, str]:
    """(p-value, verdict) for one pair of sample sets."""
    if base.size < 2 or cand.size < 2 or min_two_sided_p(base.size, cand.size) > alpha:
        return math.nan, VERDICT_FEW
    if np.all(base == base[0]) and np.all(cand == base[0]):
        return 1.0, VERDICT_SAME
    result = stats.mannwhitneyu(cand, base, alternative="two-sided")
    p_value = float(result.pvalue)
    if not p_value < alpha:
        return p_value, VERDICT_SAME
    return p_value, VERDICT_SLOWER if np.median(cand) > np.median(base) else VERDICT_FASTER


def _match_frame(df: pd.DataFrame, metrics: Sequence[str]) -> pd.DataFrame:
    """Normalised sweep rows: the match keys, device, status and each latency's columns
    (those a run lacks are null, so the merge still suffixes them)."""
    frame = sweeps(df)
    columns = [*MATCH_KEYS, "device", "status"]
    for name in metrics:
        m = metric(name)
        columns += [m.column, m.iqr_column, m.samples_column]
    for column in columns:
        if column not in frame.columns:
            frame[column] = None
    return frame[columns]


def compare_runs(
    df_baseline: pd.DataFrame,
    df_candidate: pd.DataFrame,
    *,
    alpha: float = 0.05,
    metrics: Sequence[str] = LATENCY_METRICS,
) -> pd.DataFrame:
    """One row per matching case and latency metric: candidate vs baseline.

    Cases match on :data:`MATCH_KEYS` (not the device). ``ratio`` is the candidate's
    median over the baseline's; ``p_value`` is a two-sided Mann-Whitney U test on the
    raw ``<metric>_samples``; ``verdict`` is "faster" / "slower" when p < ``alpha``,
    "no significant change" otherwise, "too few samples" when fewer than two samples
    per side are stored or even a complete separation could not reach ``alpha``, and
    "failed" when either case did not finish. Returns :data:`COMPARE_COLUMNS`.
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha}")
    metrics = tuple(metrics)
    unknown = [m for m in metrics if m not in LATENCY_METRICS]
    if unknown:
        raise ValueError(f"unknown latency metric(s) {unknown}; known: {list(LATENCY_METRICS)}")
    for name, frame in (("baseline", df_baseline), ("candidate", df_candidate)):
        if not isinstance(frame, pd.DataFrame):
            raise TypeError(f"{name} must be a pandas DataFrame of results, got {type(frame).__name__}")
        if not frame.empty and "block" not in frame.columns:
            raise ValueError(f"{name} results frame has no 'block' column; load it with nlbench.store.load")
    base, cand = _match_frame(df_baseline, metrics), _match_frame(df_candidate, metrics)
    if base.empty or cand.empty:
        return pd.DataFrame(columns=list(COMPARE_COLUMNS))
    merged = base.merge(cand, on=list(MATCH_KEYS), suffixes=("_b", "_c"), how="inner")
    records = []
    for _, row in merged.iterrows():
        for name in metrics:
            m = metric(name)
            median_b = as_float(row[f"{m.column}_b"])
            median_c = as_float(row[f"{m.column}_c"])
            failed = row["status_b"] != STATUS_OK or row["status_c"] != STATUS_OK
            if not (math.isfinite(median_b) or math.isfinite(median_c)) and (not failed or name != metrics[0]):
                continue  # not measured in either run (a failed case is still listed once)
            samples_b = _samples(row[f"{m.samples_column}_b"])
            samples_c = _samples(row[f"{m.samples_column}_c"])
            if failed:
                p_value, verdict = math.nan, VERDICT_FAILED
            else:
                p_value, verdict = _judge(samples_b, samples_c, alpha)
            records.append({
                **{key: row[key] for key in MATCH_KEYS},
                "device_baseline": row.get("device_b"),
                "device_candidate": row.get("device_c"),
                "metric": name,
                "status_baseline": row["status_b"],
                "status_candidate": row["status_c"],
                "baseline_median_ms": median_b,
                "baseline_iqr_ms": as_float(row[f"{m.iqr_column}_b"]),
                "candidate_median_ms": median_c,
                "candidate_iqr_ms": as_float(row[f"{m.iqr_column}_c"]),
                "ratio": median_c / median_b if math.isfinite(median_b) and median_b > 0 else math.nan,
                "n_baseline": int(samples_b.size),
                "n_candidate": int(samples_c.size),
                "p_value": p_value,
                "alpha": alpha,
                "verdict": verdict,
            })
    return pd.DataFrame.from_records(records, columns=list(COMPARE_COLUMNS))

