"""Tests of nlbench.fit on synthetic costs with known exponents, terms and crossings."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from typing import Any, Callable

import numpy as np
import pandas as pd
import pytest
from scipy import optimize

from nlbench import fit

N_GRID = 64 * 2.0 ** np.arange(9)  # 64 .. 16384: two and a half decades
SIDES = [8, 16, 32, 64, 128]  # square frames: N = 64 .. 16384
CHANNELS = [16, 32, 64, 128, 256, 512]

CLAIMS = {
    "nl": ("O(C·H²W²)", 2.0, 1.0, 0),
    "a2": ("O(C²·HW)", 1.0, 2.0, 0),
    "cgnl": ("O(C·HW)", 1.0, 1.0, 0),
    "srl_fft": ("O(C·HW·log(HW))", 1.0, 1.0, 1),
    "identity": ("O(1)", 0.0, 0.0, 0),
}


def _row(block: str, channels: int, height: int, width: int, macs: float, **extra: Any) -> dict[str, Any]:
    text, n_exp, c_exp, log_power = CLAIMS.get(block, ("?", math.nan, math.nan, 0))
    row = {
        "block": block,
        "options": "{}",
        "channels": channels,
        "height": height,
        "width": width,
        "frames": None,
        "batch": 1,
        "device": "cpu",
        "dtype": "float32",
        "status": "ok",
        "macs": macs,
        "latency_fwd_ms_median": math.nan,
        "latency_fwdbwd_ms_median": math.nan,
        "peak_mem_fwd_bytes": math.nan,
        "peak_mem_fwdbwd_bytes": math.nan,
        "claimed_complexity": text,
        "claimed_n_exponent": n_exp,
        "claimed_c_exponent": c_exp,
        "claimed_n_log_power": log_power,
    }
    row.update(extra)
    return row


def _sweep(block: str, cost: Callable[[float, float], float], *, fixed_c: int = 64, fixed_side: int = 32) -> list[dict]:
    """A resolution sweep at C=fixed_c and a channel sweep at fixed_side², costs from cost(N, C)."""
    rows = [_row(block, fixed_c, s, s, cost(s * s, fixed_c)) for s in SIDES]
    rows += [_row(block, c, fixed_side, fixed_side, cost(fixed_side**2, c)) for c in CHANNELS if c != fixed_c]
    return rows


def _only(result: pd.DataFrame, **where: Any) -> pd.Series:
    mask = np.ones(len(result), dtype=bool)
    for column, value in where.items():
        mask &= (result[column] == value).to_numpy()
    chosen = result.loc[mask]
    assert len(chosen) == 1, f"expected one row for {where}, got {len(chosen)}:\n{chosen}"
    return chosen.iloc[0]


def test_importing_fit_does_not_import_torch() -> None:
    code = "import sys, nlbench.fit; assert 'torch' not in sys.modules, 'torch was imported'"
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert completed.returncode == 0, completed.stderr


@pytest.mark.parametrize("exponent", [1.0, 1.5, 2.0])
def test_noiseless_power_law_slopes(exponent: float) -> None:
    result = fit.fit_series(N_GRID, 7.0 * N_GRID**exponent, "N", fit.Claim("c", exponent, 1.0))
    assert result.slope.slope == pytest.approx(exponent, abs=0.02)
    assert result.asymptotic.slope == pytest.approx(exponent, abs=0.02)
    assert result.verdict.verdict == "holds"


def test_noisy_power_law_true_exponent_in_ci() -> None:
    rng = np.random.default_rng(1234)
    y = 3.0 * N_GRID**1.5 * np.exp(rng.normal(0.0, 0.1, N_GRID.size))
    result = fit.fit_series(N_GRID, y, "N")
    assert result.slope.ci_low <= 1.5 <= result.slope.ci_high
    assert result.asymptotic.ci_low <= 1.5 <= result.asymptotic.ci_high
    assert result.slope.ci_high - result.slope.ci_low < 0.5  # informative, not vacuous
    assert result.slope.slope != 1.5  # the noise really moved the estimate


def test_slope_ci_coverage_is_near_nominal() -> None:
    """Over many noisy draws the 95 % CI covers the true slope about 95 % of the time."""
    covered = 0
    draws = 200
    for seed in range(draws):
        rng = np.random.default_rng(seed)
        y = 2.0 * N_GRID**2 * np.exp(rng.normal(0.0, 0.3, N_GRID.size))
        estimate = fit.loglog_slope(N_GRID, y)
        covered += estimate.ci_low <= 2.0 <= estimate.ci_high
    assert 0.88 <= covered / draws <= 0.99


@pytest.mark.parametrize(
    ("name", "cost"),
    [
        ("N", lambda n: 5.0 * n),
        ("N·logN", lambda n: 3.0 * n * np.log(n)),
        ("N·logN", lambda n: 2.5 * n * np.log2(n)),
        ("N^1.5", lambda n: 2.0 * n**1.5),
        ("N^2", lambda n: 0.5 * n**2),
    ],
)
def test_dominant_term_tells_n_log_n_from_neighbours(name: str, cost: Callable[[np.ndarray], np.ndarray]) -> None:
    result = fit.fit_series(N_GRID, cost(N_GRID), "N")
    assert result.model is not None
    assert result.model.dominant_term(N_GRID.max()) == name
    assert result.as_record()["dominant_term"] == name
    shares = json.loads(result.as_record()["term_shares"])
    assert shares[name] == pytest.approx(1.0, abs=1e-3)


def test_mixture_recovers_terms_and_shares() -> None:
    y = 1000.0 * N_GRID + 4.0 * N_GRID * np.log(N_GRID)
    model = fit.fit_terms(N_GRID, y, "N")
    assert set(model.terms) == {"N", "N·logN"}
    coefficients = dict(zip(model.terms, model.coefficients))
    assert coefficients["N"] == pytest.approx(1000.0, rel=1e-6)
    assert coefficients["N·logN"] == pytest.approx(4.0, rel=1e-6)
    expected_share = 1000.0 / (1000.0 + 4.0 * math.log(16384))
    assert model.shares(16384)["N"] == pytest.approx(expected_share, rel=1e-6)


def test_late_quadratic_term_asymptotic_slope_above_global() -> None:
    y = N_GRID + N_GRID**2 / 1024.0  # N² overtakes N only at N = 1024
    result = fit.fit_series(N_GRID, y, "N", fit.Claim("O(N²)", 2.0, 1.0))
    assert result.slope.slope < 1.6
    assert result.asymptotic.slope > 1.85
    assert result.asymptotic.slope > result.slope.slope + 0.3
    assert result.as_record()["dominant_term"] == "N^2"
    # The selected model's own derivative at x_max is the exact local slope (1 + 2r)/(1 + r), r = 16.
    assert result.as_record()["model_slope_at_max"] == pytest.approx(33 / 17, rel=1e-6)


def test_two_points_are_inconclusive() -> None:
    x = np.array([64.0, 4096.0])
    result = fit.fit_series(x, x**2, "N", fit.Claim("O(N²)", 2.0, 1.0))
    assert result.slope.slope == pytest.approx(2.0)
    assert math.isnan(result.slope.ci_low)
    assert result.verdict.verdict == "inconclusive"
    assert "only 2" in result.verdict.reason


def test_pure_noise_is_inconclusive() -> None:
    rng = np.random.default_rng(7)
    y = 100.0 * np.exp(rng.normal(0.0, 0.5, N_GRID.size))
    result = fit.fit_series(N_GRID, y, "N", fit.Claim("O(N)", 1.0, 1.0))
    assert result.verdict.verdict == "inconclusive"
    assert "half-width" in result.verdict.reason


def test_narrow_range_is_inconclusive() -> None:
    x = np.array([1024.0, 1536.0, 2048.0, 3072.0])
    result = fit.fit_series(x, x**2, "N", fit.Claim("O(N²)", 2.0, 1.0))
    assert result.asymptotic.slope == pytest.approx(2.0)
    assert result.verdict.verdict == "inconclusive"
    assert "factor 3.00" in result.verdict.reason


def test_claimed_exponent_of_log_claim_is_local() -> None:
    claim = fit.Claim("O(N·logN)", 1.0, 1.0, 1)
    assert claim.effective_exponent("N", 16384.0) == pytest.approx(1.0 + 1.0 / math.log(16384.0))
    assert claim.effective_exponent("C", 16384.0) == 1.0
    result = fit.fit_series(N_GRID, N_GRID * np.log(N_GRID), "N", claim)
    assert result.verdict.verdict == "holds"


def test_fit_run_verdicts_hold_and_fail_from_claim_columns() -> None:
    rows = _sweep("a2", lambda n, c: n * c * c)  # claim N·C² is right
    rows += _sweep("cgnl", lambda n, c: n * c * c)  # claim N·C is wrong on axis C
    rows += _sweep("nl", lambda n, c: 2 * n * c * c + n * n * c)
    result = fit.fit_run(pd.DataFrame(rows))
    assert set(result.columns) >= {"slope", "slope_ci_low", "asymptotic_slope", "dominant_term", "verdict"}
    a2_c = _only(result, block="a2", metric="macs", axis="C")
    assert a2_c["verdict"] == "holds"
    assert a2_c["fixed_positions"] == 1024
    assert a2_c["claimed_exponent"] == 2.0
    cgnl_c = _only(result, block="cgnl", metric="macs", axis="C")
    assert cgnl_c["verdict"] == "does not hold"
    assert "2.00" in cgnl_c["verdict_reason"] and "1.00" in cgnl_c["verdict_reason"]
    cgnl_n = _only(result, block="cgnl", metric="macs", axis="N")
    assert cgnl_n["verdict"] == "holds" and cgnl_n["fixed_channels"] == 64
    nl_n = _only(result, block="nl", metric="macs", axis="N")
    assert nl_n["verdict"] == "holds" and nl_n["dominant_term"] == "N^2"
    assert nl_n["n_points"] == len(SIDES) and nl_n["x_max"] == 128**2
    # No latency or memory was measured: those metrics give no rows at all.
    assert set(result["metric"]) == {"macs"}


def test_srl_fft_channel_claim_fails_where_pointwise_convs_dominate() -> None:
    """C·N·logN claimed; the 1×1 convs' C²·N takes over at large C."""
    rows = _sweep("srl_fft", lambda n, c: 5 * c * n * math.log2(n) + c * c * n / 4)
    result = fit.fit_run(pd.DataFrame(rows))
    n_axis = _only(result, block="srl_fft", axis="N")
    assert n_axis["verdict"] == "holds"
    c_axis = _only(result, block="srl_fft", axis="C")
    assert c_axis["verdict"] == "does not hold"
    assert c_axis["dominant_term"] == "C^2"
    assert c_axis["asymptotic_slope"] > 1.5


def test_fit_run_claims_argument_when_columns_missing() -> None:
    frame = pd.DataFrame(_sweep("a2", lambda n, c: n * c * c)).drop(
        columns=["claimed_complexity", "claimed_n_exponent", "claimed_c_exponent", "claimed_n_log_power"]
    )
    without = fit.fit_run(frame)
    assert set(without["verdict"]) == {"inconclusive"}
    with_claims = fit.fit_run(frame, claims={"a2": ("O(C²·HW)", 1.0, 2.0, 0)})
    assert set(with_claims["verdict"]) == {"holds"}
    assert set(with_claims["claimed"]) == {"O(C²·HW)"}


def test_identity_zero_cost_does_not_crash() -> None:
    rows = _sweep("identity", lambda n, c: 0.0) + _sweep("nl", lambda n, c: n * n * c)
    frame = pd.DataFrame(rows)
    result = fit.fit_run(frame)
    identity = result.loc[result["block"] == "identity"]
    assert len(identity) == 2
    assert (identity["n_points"] == 0).all()
    assert (identity["verdict"] == "holds").all()  # zero everywhere is constant, as O(1) claims
    assert identity["verdict_reason"].str.contains("zero cost").all()
    assert identity["slope"].isna().all()
    pairs = fit.crossovers(frame, metric="macs", axis="N")
    pair = _only(pairs, block_a="identity", block_b="nl")
    assert math.isnan(pair["crossover_x"])
    assert pair["costlier_above"] == "nl"
    assert "identity is never costlier than nl" in pair["direction"]


def test_zero_cost_with_growth_claim_is_inconclusive() -> None:
    result = fit.fit_series(N_GRID, np.zeros_like(N_GRID), "N", fit.Claim("O(N)", 1.0, 1.0))
    assert result.verdict.verdict == "inconclusive"


def test_failed_rows_excluded_and_duplicates_take_median() -> None:
    rows = _sweep("nl", lambda n, c: n * n * c)
    rows.append(_row("nl", 64, 64, 64, 1.0, status="oom"))  # a failure must not enter the fit
    rows.append(_row("nl", 64, 128, 128, 1e30, status="error"))
    rows.append(_row("nl", 64, 16, 16, 3 * 256**2 * 64))  # duplicated x: median of three
    rows.append(_row("nl", 64, 16, 16, 0.2 * 256**2 * 64))
    rows.append(_row("nl", 64, 32, 32, math.nan))  # a measurement not taken
    result = fit.fit_run(pd.DataFrame(rows))
    row = _only(result, block="nl", axis="N")
    assert row["n_points"] == len(SIDES)
    assert row["slope"] == pytest.approx(2.0, abs=1e-9)
    assert row["verdict"] == "holds"


def test_groups_are_kept_apart() -> None:
    rows = _sweep("nl", lambda n, c: n * n * c)
    rows += [_row("nl", 32, s, s, s**4 * 32) for s in SIDES]  # a second resolution sweep at C=32
    rows += [_row("nl", 64, s, s, s**2 * 64, options='{"mode": "dot_product"}') for s in SIDES]
    result = fit.fit_run(pd.DataFrame(rows))
    n_rows = result.loc[(result["axis"] == "N")]
    assert len(n_rows) == 3
    assert set(n_rows["fixed_channels"]) == {32, 64}
    dot = _only(n_rows, options='{"mode": "dot_product"}')
    assert dot["slope"] == pytest.approx(1.0)


def test_video_positions_include_frames() -> None:
    rows = [_row("a2", c, 8, 8, 4 * 64 * c * c, frames=4) for c in CHANNELS]
    result = fit.fit_run(pd.DataFrame(rows))
    row = _only(result, axis="C")
    assert row["fixed_positions"] == 4 * 64
    assert row["frames"] == 4


def test_fit_run_rejects_frames_without_required_columns() -> None:
    with pytest.raises(ValueError, match="status"):
        fit.fit_run(pd.DataFrame({"block": ["nl"], "channels": [64], "height": [8], "width": [8]}))
    with pytest.raises(ValueError, match="axis"):
        fit.fit_series(N_GRID, N_GRID, "HW")
    with pytest.raises(ValueError, match="same length"):
        fit.fit_series(N_GRID, N_GRID[:-1], "N")


def test_crossover_of_quadratic_and_n_log_n_at_analytic_point() -> None:
    a, b = 1.0, 1000.0  # a·N² = b·N·lnN at N = (b/a)·lnN
    exact = optimize.brentq(lambda n: a * n - b * math.log(n), 100.0, 1e6)
    rows = [_row("nl", 64, s, s, a * (s * s) ** 2) for s in SIDES]
    rows += [_row("srl_fft", 64, s, s, b * s * s * math.log(s * s)) for s in SIDES]
    pairs = fit.crossovers(pd.DataFrame(rows), metric="macs", axis="N")
    assert len(pairs) == 1
    pair = pairs.iloc[0]
    assert pair["crossover_x"] == pytest.approx(exact, rel=0.03)
    assert pair["crossover_resolution"] == pytest.approx(math.sqrt(pair["crossover_x"]))
    assert pair["costlier_above"] == "nl"
    assert pair["direction"].startswith("nl costs more than srl_fft above N≈")
    assert bool(pair["interpolated"])


def test_crossovers_on_channel_axis_and_no_crossing() -> None:
    rows = _sweep("a2", lambda n, c: n * c * c) + _sweep("cgnl", lambda n, c: 64 * n * c)
    rows += _sweep("nl", lambda n, c: 10 * n * n * c)
    pairs = fit.crossovers(pd.DataFrame(rows), metric="macs", axis="C")
    crossing = _only(pairs, block_a="a2", block_b="cgnl")
    assert crossing["crossover_x"] == pytest.approx(64.0, rel=1e-6)  # N·C² = 64·N·C at C = 64
    assert crossing["costlier_above"] == "a2"
    assert math.isnan(crossing["crossover_resolution"])
    never = _only(pairs, block_a="cgnl", block_b="nl")
    assert math.isnan(never["crossover_x"])
    assert "cgnl is never costlier than nl" in never["direction"]


def test_find_crossings_directions_and_equal_point() -> None:
    x = np.array([1.0, 2.0, 4.0, 8.0])
    found = fit.find_crossings(x, [1.0, 2.0, 4.0, 8.0], [4.0, 2.0, 1.0, 1.0])
    assert len(found) == 1
    assert found[0].x == 2.0 and found[0].a_costlier_above and not found[0].interpolated
    back_and_forth = fit.find_crossings(x, [1.0, 3.0, 1.0, 3.0], [2.0, 2.0, 2.0, 2.0])
    assert [c.a_costlier_above for c in back_and_forth] == [True, False, True]
    assert fit.find_crossings(x, [1.0, 1.0, 1.0, 1.0], [2.0, 3.0, 4.0, 5.0]) == []


def test_latency_and_memory_metrics_fit_with_zero_points_excluded() -> None:
    rng = np.random.default_rng(3)
    rows = []
    for s in SIDES:
        n = s * s
        rows.append(
            _row(
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
    assert _only(result, metric="latency_fwd_ms")["verdict"] == "holds"
    assert _only(result, metric="latency_fwdbwd_ms")["verdict"] == "inconclusive"
    memory = _only(result, metric="peak_mem_fwd_bytes")
    assert memory["n_zero"] == 1 and memory["n_points"] == len(SIDES) - 1
    assert memory["x_min"] == 16 * 16
    assert memory["slope"] == pytest.approx(2.0)
    assert "1 zero-cost size(s) excluded" in memory["verdict_reason"]
