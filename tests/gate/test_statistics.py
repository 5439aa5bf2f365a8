"""The time tier's statistics against hand-computed values and their defining properties."""

from __future__ import annotations

import math

import numpy as np
import pytest

from nlbench.gate.statistics import (
    holm_adjust, one_sided_p_value, paired_p_value, paired_ratio_estimate, ratio_estimate, round_medians,
)


def test_hodges_lehmann_of_an_exact_scaling_is_the_scale():
    base = [1.0, 1.1, 1.3, 0.9, 1.05, 1.2, 0.95]
    estimate = ratio_estimate(base, [1.25 * b for b in base])
    # the pairwise log-ratios are log 1.25 + log(b_j / b_i), whose median is log 1.25 by symmetry
    assert estimate.ratio == pytest.approx(1.25, rel=1e-12)
    assert estimate.low < 1.25 < estimate.high


def test_interval_uses_moses_order_statistics():
    rng = np.random.default_rng(3)
    base, cand = rng.lognormal(0, 0.1, 10), rng.lognormal(0.05, 0.1, 10)
    estimate = ratio_estimate(base, cand, confidence=0.95)
    differences = np.sort((np.log(cand)[None, :] - np.log(base)[:, None]).ravel())
    # k = floor(m·n/2 − z·sqrt(m·n·(m+n+1)/12)) = floor(50 − 1.95996·sqrt(175)) = 24
    assert math.floor(50 - 1.959964 * math.sqrt(100 * 21 / 12)) == 24
    assert estimate.low == pytest.approx(math.exp(differences[24]))
    assert estimate.high == pytest.approx(math.exp(differences[100 - 1 - 24]))
    assert estimate.ratio == pytest.approx(math.exp(np.median(differences)))


def test_too_few_samples_have_no_interval_and_empty_sides_no_estimate():
    assert math.isnan(ratio_estimate([1.0], [1.1]).low)
    assert ratio_estimate([1.0], [1.1]).ratio == pytest.approx(1.1)
    assert math.isnan(ratio_estimate([], [1.0]).ratio)
    assert math.isnan(one_sided_p_value([], [1.0]))
    with pytest.raises(ValueError, match="confidence"):
        ratio_estimate([1.0], [1.0], confidence=1.0)


def test_interval_covers_the_truth_in_a_and_a_draws():
    rng = np.random.default_rng(7)
    covered = 0
    trials = 300
    for _ in range(trials):
        base, cand = rng.lognormal(0, 0.05, 20), rng.lognormal(0, 0.05, 20)
        estimate = ratio_estimate(base, cand, confidence=0.95)
        covered += estimate.low <= 1.0 <= estimate.high
    assert covered / trials >= 0.92


def test_one_sided_p_value_points_the_right_way():
    base = [1.0 + 0.01 * i for i in range(15)]
    slower = [b * 1.5 for b in base]
    assert one_sided_p_value(base, slower, slower=True) < 1e-4
    assert one_sided_p_value(base, slower, slower=False) > 0.99
    assert one_sided_p_value([2.0] * 5, [2.0] * 5) == 1.0


def test_holm_by_hand():
    adjusted = holm_adjust([0.01, 0.04, 0.03, math.nan])
    # sorted 0.01·3 = 0.03, 0.03·2 = 0.06, 0.04·1 = 0.04 → monotone 0.06
    assert adjusted[:3] == pytest.approx([0.03, 0.06, 0.06])
    assert math.isnan(adjusted[3])
    assert holm_adjust([0.9, 0.8]) == pytest.approx([1.0, 1.0])  # 0.8·2 caps at 1; 0.9 keeps the running max
    assert holm_adjust([]) == []


def test_holm_keeps_family_wise_error_of_null_p_values():
    rng = np.random.default_rng(11)
    alarms = sum(min(holm_adjust(list(rng.uniform(size=20)))) < 0.05 for _ in range(2000))
    assert alarms / 2000 <= 0.06


def test_paired_estimate_by_hand():
    base = [1.0, 2.0, 4.0, 8.0, 16.0]
    cand = [1.1, 2.2, 4.4, 8.8, 17.6]  # every pair 1.1
    estimate = paired_ratio_estimate(base, cand)
    assert estimate.ratio == pytest.approx(1.1)
    # n = 5: k = floor(7.5 − 1.96·sqrt(13.75)) = floor(0.232) = 0 → the extreme Walsh averages
    assert estimate.low == pytest.approx(1.1) and estimate.high == pytest.approx(1.1)
    d = np.log([1.2, 1.0, 1.1, 1.3])  # Walsh averages of 4 log-ratios: median by hand
    walsh = sorted((d[i] + d[j]) / 2 for i in range(4) for j in range(i, 4))
    assert paired_ratio_estimate([1, 1, 1, 1], [1.2, 1.0, 1.1, 1.3]).ratio == pytest.approx(math.exp(np.median(walsh)))
    with pytest.raises(ValueError, match="as many"):
        paired_ratio_estimate([1.0], [1.0, 2.0])


def test_paired_p_value_exact_signed_rank():
    # 6 pairs all slower: exact one-sided signed-rank p = 1 / 2^6
    assert paired_p_value([1.0] * 6, [1.1, 1.2, 1.05, 1.3, 1.15, 1.25]) == pytest.approx(1 / 64)
    assert paired_p_value([1.0] * 6, [1.1, 1.2, 1.05, 1.3, 1.15, 1.25], slower=False) > 0.9
    assert paired_p_value([1.0, 2.0], [1.0, 2.0]) == 1.0
    assert math.isnan(paired_p_value([], []))


def test_round_medians():
    assert round_medians([3.0, 1.0, 2.0, 10.0, 30.0], [0, 0, 0, 1, 1]) == {0: 2.0, 1: 20.0}
    with pytest.raises(ValueError, match="round labels"):
        round_medians([1.0], [0, 1])
