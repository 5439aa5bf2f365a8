"""Tests of nlbench.fit.frame: a hand-made (not normalised) results frame grouped into
series, fitted and judged; and the package staying torch-free."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from nlbench import fit

from .synthetic_series import CHANNELS, N_GRID, SIDES, case_row, only_row, sweep_rows


def test_importing_fit_does_not_import_torch() -> None:
    code = "import sys, nlbench.fit; assert 'torch' not in sys.modules, 'torch was imported'"
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert completed.returncode == 0, completed.stderr


def test_fit_run_verdicts_hold_and_fail_from_claim_columns() -> None:
    rows = sweep_rows("a2", lambda n, c: n * c * c)  # claim N·C² is right
    rows += sweep_rows("cgnl", lambda n, c: n * c * c)  # claim N·C is wrong on axis C
    rows += sweep_rows("nl", lambda n, c: 2 * n * c * c + n * n * c)
    result = fit.fit_run(pd.DataFrame(rows))
    assert set(result.columns) >= {"slope", "slope_ci_low", "asymptotic_slope", "dominant_term", "verdict"}
    a2_c = only_row(result, block="a2", metric="macs", axis="C")
    assert a2_c["verdict"] == "holds"
    assert a2_c["fixed_positions"] == 1024
    assert a2_c["claimed_exponent"] == 2.0
    cgnl_c = only_row(result, block="cgnl", metric="macs", axis="C")
    assert cgnl_c["verdict"] == "does not hold"
    assert "2.00" in cgnl_c["verdict_reason"] and "1.00" in cgnl_c["verdict_reason"]
    cgnl_n = only_row(result, block="cgnl", metric="macs", axis="N")
    assert cgnl_n["verdict"] == "holds" and cgnl_n["fixed_channels"] == 64
    nl_n = only_row(result, block="nl", metric="macs", axis="N")
    assert nl_n["verdict"] == "holds" and nl_n["dominant_term"] == "N^2"
    assert nl_n["n_points"] == len(SIDES) and nl_n["x_max"] == 128**2
    # No latency or memory was measured: those metrics give no rows at all.
    assert set(result["metric"]) == {"macs"}


def test_srl_fft_channel_claim_fails_where_pointwise_convs_dominate() -> None:
    """C·N·logN claimed; the 1×1 convs' C²·N takes over at large C."""
    rows = sweep_rows("srl_fft", lambda n, c: 5 * c * n * math.log2(n) + c * c * n / 4)
    result = fit.fit_run(pd.DataFrame(rows))
    n_axis = only_row(result, block="srl_fft", axis="N")
    assert n_axis["verdict"] == "holds"
    c_axis = only_row(result, block="srl_fft", axis="C")
    assert c_axis["verdict"] == "does not hold"
    assert c_axis["dominant_term"] == "C^2"
    assert c_axis["asymptotic_slope"] > 1.5


def test_fit_run_claims_argument_when_columns_missing() -> None:
    frame = pd.DataFrame(sweep_rows("a2", lambda n, c: n * c * c)).drop(
        columns=["claimed_complexity", "claimed_n_exponent", "claimed_c_exponent", "claimed_n_log_power"]
    )
    without = fit.fit_run(frame)
    assert set(without["verdict"]) == {"inconclusive"}
    with_claims = fit.fit_run(frame, claims={"a2": ("O(C²·HW)", 1.0, 2.0, 0)})
    assert set(with_claims["verdict"]) == {"holds"}
    assert set(with_claims["claimed"]) == {"O(C²·HW)"}


def test_identity_zero_cost_does_not_crash() -> None:
    rows = sweep_rows("identity", lambda n, c: 0.0) + sweep_rows("nl", lambda n, c: n * n * c)
    frame = pd.DataFrame(rows)
    result = fit.fit_run(frame)
    identity = result.loc[result["block"] == "identity"]
    assert len(identity) == 2
    assert (identity["n_points"] == 0).all()
    assert (identity["verdict"] == "holds").all()  # zero everywhere is constant, as O(1) claims
    assert identity["verdict_reason"].str.contains("zero cost").all()
    assert identity["slope"].isna().all()
    pairs = fit.crossovers(frame, metric="macs", axis="N")
    pair = only_row(pairs, block_a="identity", block_b="nl")
    assert math.isnan(pair["crossover_x"])
    assert pair["costlier_above"] == "nl"
    assert "identity is never costlier than nl" in pair["direction"]


def test_failed_rows_excluded_and_duplicates_take_median() -> None:
    rows = sweep_rows("nl", lambda n, c: n * n * c)
    rows.append(case_row("nl", 64, 64, 64, 1.0, status="oom"))  # a failure must not enter the fit
    rows.append(case_row("nl", 64, 128, 128, 1e30, status="error"))
    rows.append(case_row("nl", 64, 16, 16, 3 * 256**2 * 64))  # duplicated x: median of three
    rows.append(case_row("nl", 64, 16, 16, 0.2 * 256**2 * 64))
    rows.append(case_row("nl", 64, 32, 32, math.nan))  # a measurement not taken
    result = fit.fit_run(pd.DataFrame(rows))
    row = only_row(result, block="nl", axis="N")
    assert row["n_points"] == len(SIDES)
    assert row["slope"] == pytest.approx(2.0, abs=1e-9)
    assert row["verdict"] == "holds"


def test_groups_are_kept_apart() -> None:
    rows = sweep_rows("nl", lambda n, c: n * n * c)
    rows += [case_row("nl", 32, s, s, s**4 * 32) for s in SIDES]  # a second resolution sweep at C=32
    rows += [case_row("nl", 64, s, s, s**2 * 64, options='{"mode": "dot_product"}') for s in SIDES]
    result = fit.fit_run(pd.DataFrame(rows))
    n_rows = result.loc[(result["axis"] == "N")]
    assert len(n_rows) == 3
    assert set(n_rows["fixed_channels"]) == {32, 64}
    dot = only_row(n_rows, options='{"mode": "dot_product"}')
    assert dot["slope"] == pytest.approx(1.0)


def test_video_positions_include_frames() -> None:
    rows = [case_row("a2", c, 8, 8, 4 * 64 * c * c, frames=4) for c in CHANNELS]
    result = fit.fit_run(pd.DataFrame(rows))
    row = only_row(result, axis="C")
    assert row["fixed_positions"] == 4 * 64
    assert row["frames"] == 4


def test_fit_run_rejects_frames_without_required_columns() -> None:
    with pytest.raises(ValueError, match="status"):
        fit.fit_run(pd.DataFrame({"block": ["nl"], "channels": [64], "height": [8], "width": [8]}))
    with pytest.raises(ValueError, match="axis"):
        fit.fit_series(N_GRID, N_GRID, "HW")
    with pytest.raises(ValueError, match="same length"):
        fit.fit_series(N_GRID, N_GRID[:-1], "N")


def test_latency_and_memory_metrics_fit_with_zero_points_excluded() -> None:
    rng = np.random.default_rng(3)
    rows = []
    for s in SIDES:
        n = s * s
        rows.append(
            case_row(
                "nl",
                64,
                s,
                s,
                n * n * 64,
                latency_fwd_ms_median=1e-4 * n * n * math.exp(rng.normal(0.0, 0.02)),
                latency_fwdbwd_ms_median=5.0 * math.exp(rng.normal(0.0, 0.6)),  # pure noise
                peak_mem_fwd_bytes=0.0 if s == 8 else 4.0 * n * n,  # below the allocator's resolution
            )
        )
    result = fit.fit_run(pd.DataFrame(rows))
    assert set(result["metric"]) == {"macs", "latency_fwd_ms", "latency_fwdbwd_ms", "peak_mem_fwd_bytes"}
    assert only_row(result, metric="latency_fwd_ms")["verdict"] == "holds"
    assert only_row(result, metric="latency_fwdbwd_ms")["verdict"] == "inconclusive"
    memory = only_row(result, metric="peak_mem_fwd_bytes")
    assert memory["n_zero"] == 1 and memory["n_points"] == len(SIDES) - 1
    assert memory["x_min"] == 16 * 16
    assert memory["slope"] == pytest.approx(2.0)
    assert "1 zero-cost size(s) excluded" in memory["verdict_reason"]
