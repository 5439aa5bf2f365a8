"""Tests of nlbench.fit.estimators: slope CIs and term decompositions on known costs."""

from __future__ import annotations

import math

import numpy as np
import pytest

from nlbench import fit

from .synthetic_series import N_GRID


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


def test_mixture_recovers_terms_and_shares() -> None:
    y = 1000.0 * N_GRID + 4.0 * N_GRID * np.log(N_GRID)
    model = fit.fit_terms(N_GRID, y, "N")
    assert set(model.terms) == {"N", "N·logN"}
    coefficients = dict(zip(model.terms, model.coefficients))
    assert coefficients["N"] == pytest.approx(1000.0, rel=1e-6)
    assert coefficients["N·logN"] == pytest.approx(4.0, rel=1e-6)
    expected_share = 1000.0 / (1000.0 + 4.0 * math.log(16384))
    assert model.shares(16384)["N"] == pytest.approx(expected_share, rel=1e-6)
