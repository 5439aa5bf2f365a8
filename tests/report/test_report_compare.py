"""compare_runs: per matching case, ratio candidate/baseline and a Mann-Whitney U test."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from nlbench.report import compare_runs
from nlbench.report.compare import min_two_sided_p


def frame(rows: list[dict]) -> pd.DataFrame:
    base = {"options": "{}", "channels": 16, "height": 8, "width": 8, "frames": None, "batch": 1,
            "dtype": "float32", "device": "cpu", "status": "ok", "kind": "sweep"}
    records = []
    for row in rows:
        record = {**base, **row}
        samples = record.get("latency_fwd_ms_samples")
        if samples is not None:
            record["latency_fwd_ms_median"] = float(np.median(samples))
            q1, q3 = np.percentile(samples, [25, 75])
            record["latency_fwd_ms_iqr"] = float(q3 - q1)
        records.append(record)
    return pd.DataFrame(records)


def samples(mean: float, n: int = 20, seed: int = 0) -> list[float]:
    rng = np.random.default_rng(seed)
    return (mean * (1 + 0.03 * rng.standard_normal(n))).tolist()


def test_detects_a_twofold_slowdown() -> None:
    base = frame([{"block": "nl", "latency_fwd_ms_samples": samples(10.0, seed=1)}])
    cand = frame([{"block": "nl", "latency_fwd_ms_samples": samples(20.0, seed=2)}])
    result = compare_runs(base, cand)
    assert len(result) == 1
    row = result.iloc[0]
    assert row["metric"] == "latency_fwd_ms"
    assert row["ratio"] == pytest.approx(2.0, rel=0.05)
    assert row["p_value"] < 0.05
    assert row["verdict"] == "slower"
    # and the other way round it is faster
    assert compare_runs(cand, base).iloc[0]["verdict"] == "faster"


def test_identical_distributions_show_no_significant_change() -> None:
    same = samples(10.0, seed=3)
    base = frame([{"block": "nl", "latency_fwd_ms_samples": same}])
    cand = frame([{"block": "nl", "latency_fwd_ms_samples": list(reversed(same))}])
    row = compare_runs(base, cand).iloc[0]
    assert row["ratio"] == pytest.approx(1.0)
    assert row["p_value"] == pytest.approx(1.0)
    assert row["verdict"] == "no significant change"
    # two draws from one distribution: not significant (fixed seeds, checked p)
    other = frame([{"block": "nl", "latency_fwd_ms_samples": samples(10.0, seed=4)}])
    row = compare_runs(base, other).iloc[0]
    assert row["p_value"] >= 0.05 and row["verdict"] == "no significant change"


def test_matches_on_case_not_device_and_keeps_both_devices() -> None:
    base = frame([{"block": "nl", "latency_fwd_ms_samples": samples(10.0, seed=5)},
                  {"block": "nl", "height": 16, "width": 16, "latency_fwd_ms_samples": samples(40.0, seed=6)},
                  {"block": "a2", "latency_fwd_ms_samples": samples(5.0, seed=7)}])
    cand = frame([{"block": "nl", "device": "cuda", "latency_fwd_ms_samples": samples(1.0, seed=8)},
                  {"block": "nl", "dtype": "float16", "latency_fwd_ms_samples": samples(1.0, seed=9)}])
    result = compare_runs(base, cand)
    assert len(result) == 1  # only the 8×8 float32 nl matches; a2, 16×16 and float16 do not
    row = result.iloc[0]
    assert (row["device_baseline"], row["device_candidate"]) == ("cpu", "cuda")
    assert row["verdict"] == "faster" and row["ratio"] == pytest.approx(0.1, rel=0.05)


def test_too_few_samples_and_failed_cases_are_said_so() -> None:
    assert min_two_sided_p(3, 3) == pytest.approx(0.1)
    base = frame([{"block": "nl", "latency_fwd_ms_samples": [1.0, 1.1, 1.2]},
                  {"block": "a2", "latency_fwd_ms_samples": samples(1.0)}])
    cand = frame([{"block": "nl", "latency_fwd_ms_samples": [5.0, 5.1, 5.2]},
                  {"block": "a2", "status": "oom", "latency_fwd_ms_samples": None}])
    result = compare_runs(base, cand).set_index("block")
    assert result.loc["nl", "verdict"] == "too few samples" and math.isnan(result.loc["nl", "p_value"])
    assert result.loc["nl", "ratio"] == pytest.approx(5.1 / 1.1)
    assert result.loc["a2", "verdict"] == "failed" and result.loc["a2", "status_candidate"] == "oom"


def test_fwdbwd_samples_are_compared_too() -> None:
    base = frame([{"block": "nl", "latency_fwd_ms_samples": samples(10.0, seed=10),
                   "latency_fwdbwd_ms_samples": samples(30.0, seed=11), "latency_fwdbwd_ms_median": 30.0}])
    cand = frame([{"block": "nl", "latency_fwd_ms_samples": samples(10.0, seed=12),
                   "latency_fwdbwd_ms_samples": samples(60.0, seed=13), "latency_fwdbwd_ms_median": 60.0}])
    result = compare_runs(base, cand).set_index("metric")
    assert result.loc["latency_fwdbwd_ms", "verdict"] == "slower"
    assert result.loc["latency_fwd_ms", "verdict"] == "no significant change"


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="alpha"):
        compare_runs(frame([]), frame([]), alpha=1.5)
    with pytest.raises(ValueError, match="unknown latency metric"):
        compare_runs(frame([]), frame([]), metrics=("macs",))
    with pytest.raises(TypeError, match="DataFrame"):
        compare_runs([], frame([]))  # type: ignore[arg-type]
    assert compare_runs(frame([]), frame([])).empty
