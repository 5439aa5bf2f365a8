"""Tests of nlbench.fit.series: one series fitted and judged against its claim."""

from __future__ import annotations

import json
import math
from typing import Callable

import numpy as np
import pytest

from nlbench import fit
from nlbench.vocabulary import ClaimedComplexity

from .synthetic_series import N_GRID


@pytest.mark.parametrize("exponent", [1.0, 1.5, 2.0])
def test_noiseless_power_law_slopes(exponent: float) -> None:
    result = fit.fit_series(N_GRID, 7.0 * N_GRID**exponent, "N", ClaimedComplexity("c", exponent, 1.0))
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


def test_late_quadratic_term_asymptotic_slope_above_global() -> None:
    y = N_GRID + N_GRID**2 / 1024.0  # N² overtakes N only at N = 1024
    result = fit.fit_series(N_GRID, y, "N", ClaimedComplexity("O(N²)", 2.0, 1.0))
    assert result.slope.slope < 1.6
    assert result.asymptotic.slope > 1.85
    assert result.asymptotic.slope > result.slope.slope + 0.3
    assert result.as_record()["dominant_term"] == "N^2"
    # The selected model's own derivative at x_max is the exact local slope (1 + 2r)/(1 + r), r = 16.
    assert result.as_record()["model_slope_at_max"] == pytest.approx(33 / 17, rel=1e-6)


def test_two_points_are_inconclusive() -> None:
    x = np.array([64.0, 4096.0])
    result = fit.fit_series(x, x**2, "N", ClaimedComplexity("O(N²)", 2.0, 1.0))
    assert result.slope.slope == pytest.approx(2.0)
    assert math.isnan(result.slope.ci_low)
    assert result.verdict.verdict == "inconclusive"
    assert "only 2" in result.verdict.reason


def test_pure_noise_is_inconclusive() -> None:
    rng = np.random.default_rng(7)
    y = 100.0 * np.exp(rng.normal(0.0, 0.5, N_GRID.size))
    result = fit.fit_series(N_GRID, y, "N", ClaimedComplexity("O(N)", 1.0, 1.0))
    assert result.verdict.verdict == "inconclusive"
    assert "half-width" in result.verdict.reason


def test_narrow_range_is_inconclusive() -> None:
    x = np.array([1024.0, 1536.0, 2048.0, 3072.0])
    result = fit.fit_series(x, x**2, "N", ClaimedComplexity("O(N²)", 2.0, 1.0))
    assert result.asymptotic.slope == pytest.approx(2.0)
    assert result.verdict.verdict == "inconclusive"
    assert "factor 3.00" in result.verdict.reason


def test_claimed_exponent_of_log_claim_is_local() -> None:
    claim = ClaimedComplexity("O(N·logN)", 1.0, 1.0, 1)
    assert claim.effective_exponent("N", 16384.0) == pytest.approx(1.0 + 1.0 / math.log(16384.0))
    assert claim.effective_exponent("C", 16384.0) == 1.0
    result = fit.fit_series(N_GRID, N_GRID * np.log(N_GRID), "N", claim)
    assert result.verdict.verdict == "holds"


def test_zero_cost_with_growth_claim_is_inconclusive() -> None:
    result = fit.fit_series(N_GRID, np.zeros_like(N_GRID), "N", ClaimedComplexity("O(N)", 1.0, 1.0))
    assert result.verdict.verdict == "inconclusive"
