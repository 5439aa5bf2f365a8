"""Tests of nlbench.fit.crossovers: crossings at known points, on both axes."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import optimize

from nlbench import fit

from .synthetic_series import SIDES, case_row, only_row, sweep_rows


def test_crossover_of_quadratic_and_n_log_n_at_analytic_point() -> None:
    a, b = 1.0, 1000.0  # a·N² = b·N·lnN at N = (b/a)·lnN
    exact = optimize.brentq(lambda n: a * n - b * math.log(n), 100.0, 1e6)
    rows = [case_row("nl", 64, s, s, a * (s * s) ** 2) for s in SIDES]
    rows += [case_row("srl_fft", 64, s, s, b * s * s * math.log(s * s)) for s in SIDES]
    pairs = fit.crossovers(pd.DataFrame(rows), metric="macs", axis="N")
    assert len(pairs) == 1
    pair = pairs.iloc[0]
    assert pair["crossover_x"] == pytest.approx(exact, rel=0.03)
    assert pair["crossover_resolution"] == pytest.approx(math.sqrt(pair["crossover_x"]))
    assert pair["costlier_above"] == "nl"
    assert pair["direction"].startswith("nl costs more than srl_fft above N≈")
    assert bool(pair["interpolated"])


def test_crossovers_on_channel_axis_and_no_crossing() -> None:
    rows = sweep_rows("a2", lambda n, c: n * c * c) + sweep_rows("cgnl", lambda n, c: 64 * n * c)
    rows += sweep_rows("nl", lambda n, c: 10 * n * n * c)
    pairs = fit.crossovers(pd.DataFrame(rows), metric="macs", axis="C")
    crossing = only_row(pairs, block_a="a2", block_b="cgnl")
    assert crossing["crossover_x"] == pytest.approx(64.0, rel=1e-6)  # N·C² = 64·N·C at C = 64
    assert crossing["costlier_above"] == "a2"
    assert math.isnan(crossing["crossover_resolution"])
    never = only_row(pairs, block_a="cgnl", block_b="nl")
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
