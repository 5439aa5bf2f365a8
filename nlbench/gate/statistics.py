"""The time tier's statistics, as pure functions on times.

Two designs. *Unpaired* (two independent sets of replicates):

- :func:`ratio_estimate`: the Hodges-Lehmann estimate of the ratio candidate/baseline
  (the median of all pairwise ratios, i.e. the HL shift of the log-times) with its
  distribution-free interval (Moses' order statistics of the pairwise differences,
  normal approximation of the Mann-Whitney distribution);
- :func:`one_sided_p_value`: the one-sided Mann-Whitney U test that the candidate's
  times are stochastically larger (or smaller).

*Paired* (replicates matched two by two, e.g. the two trees' medians of one
interleaved round, measured back to back):

- :func:`paired_ratio_estimate`: the HL estimate of the paired log-ratios (the median
  of their Walsh averages) with the Wilcoxon signed-rank interval;
- :func:`paired_p_value`: the one-sided Wilcoxon signed-rank test.

:func:`holm_adjust`: Holm's step-down correction, so that a gate comparing many cases
keeps its family-wise false-alarm rate at α. :func:`round_medians`: the replicate a
round gives.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy import stats

#: Pairwise differences beyond this many are estimated from an even subsample of each
#: side (the estimate and interval stay distribution-free; memory stays bounded).
MAX_PAIRS = 4_000_000


@dataclass(frozen=True)
class RatioEstimate:
    """Candidate/baseline time: the Hodges-Lehmann point estimate and its interval
    (NaN bounds when the samples are too few for the asked confidence)."""

    ratio: float
    low: float
    high: float


def _positive(samples: Sequence[float]) -> np.ndarray:
    array = np.asarray(samples, dtype=float)
    return array[np.isfinite(array) & (array > 0)]


def _thinned(array: np.ndarray, keep: int) -> np.ndarray:
    if array.size <= keep:
        return array
    return np.sort(array)[np.linspace(0, array.size - 1, keep).round().astype(int)]


def ratio_estimate(baseline: Sequence[float], candidate: Sequence[float], confidence: float = 0.95) -> RatioEstimate:
    """The HL ratio of ``candidate`` to ``baseline`` times with a ``confidence`` interval."""
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    base, cand = np.log(_positive(baseline)), np.log(_positive(candidate))
    if base.size == 0 or cand.size == 0:
        return RatioEstimate(math.nan, math.nan, math.nan)
    keep = int(math.sqrt(MAX_PAIRS))
    base, cand = _thinned(base, keep), _thinned(cand, keep)
    differences = np.sort((cand[None, :] - base[:, None]).ravel())
    m, n = base.size, cand.size
    point = float(np.median(differences))
    z = stats.norm.ppf(0.5 + confidence / 2.0)
    k = int(math.floor(m * n / 2.0 - z * math.sqrt(m * n * (m + n + 1) / 12.0)))
    if k < 0:
        return RatioEstimate(math.exp(point), math.nan, math.nan)
    return RatioEstimate(math.exp(point), math.exp(differences[k]), math.exp(differences[m * n - 1 - k]))


def one_sided_p_value(baseline: Sequence[float], candidate: Sequence[float], *, slower: bool = True) -> float:
    """One-sided Mann-Whitney U p-value for "the candidate is slower" (or, with
    ``slower=False``, faster); NaN without samples."""
    base, cand = _positive(baseline), _positive(candidate)
    if base.size == 0 or cand.size == 0:
        return math.nan
    if np.all(base == base[0]) and np.all(cand == base[0]):
        return 1.0
    return float(stats.mannwhitneyu(cand, base, alternative="greater" if slower else "less").pvalue)


def holm_adjust(p_values: Sequence[float]) -> list[float]:
    """Holm-adjusted p-values (family-wise error control); NaN stays NaN and does not count."""
    indexed = [(p, i) for i, p in enumerate(p_values) if not math.isnan(p)]
    indexed.sort()
    m = len(indexed)
    adjusted = [math.nan] * len(p_values)
    running = 0.0
    for rank, (p, i) in enumerate(indexed):
        running = max(running, min(1.0, (m - rank) * p))
        adjusted[i] = running
    return adjusted


def round_medians(samples: Sequence[float], rounds: Sequence[int]) -> dict[int, float]:
    """The median sample of each round (samples and round labels aligned)."""
    if len(samples) != len(rounds):
        raise ValueError(f"{len(samples)} samples but {len(rounds)} round labels")
    by_round: dict[int, list[float]] = {}
    for value, label in zip(samples, rounds):
        if math.isfinite(value) and value > 0:
            by_round.setdefault(int(label), []).append(float(value))
    return {label: float(np.median(values)) for label, values in sorted(by_round.items())}


def _log_ratios(baseline: Sequence[float], candidate: Sequence[float]) -> np.ndarray:
    if len(baseline) != len(candidate):
        raise ValueError(f"paired designs need as many baseline as candidate values ({len(baseline)} vs {len(candidate)})")
    base, cand = np.asarray(baseline, dtype=float), np.asarray(candidate, dtype=float)
    keep = np.isfinite(base) & np.isfinite(cand) & (base > 0) & (cand > 0)
    return np.log(cand[keep]) - np.log(base[keep])


def paired_ratio_estimate(baseline: Sequence[float], candidate: Sequence[float],
                          confidence: float = 0.95) -> RatioEstimate:
    """The HL ratio of paired values (``candidate[i]`` against ``baseline[i]``) with a
    ``confidence`` interval from the Walsh averages' order statistics."""
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    d = _log_ratios(baseline, candidate)
    n = d.size
    if n == 0:
        return RatioEstimate(math.nan, math.nan, math.nan)
    i, j = np.triu_indices(n)
    walsh = np.sort((d[i] + d[j]) / 2.0)
    point = float(np.median(walsh))
    z = stats.norm.ppf(0.5 + confidence / 2.0)
    k = int(math.floor(n * (n + 1) / 4.0 - z * math.sqrt(n * (n + 1) * (2 * n + 1) / 24.0)))
    if k < 0:
        return RatioEstimate(math.exp(point), math.nan, math.nan)
    return RatioEstimate(math.exp(point), math.exp(walsh[k]), math.exp(walsh[walsh.size - 1 - k]))


def paired_p_value(baseline: Sequence[float], candidate: Sequence[float], *, slower: bool = True) -> float:
    """One-sided Wilcoxon signed-rank p-value for "the candidate is slower" (or faster)
    on paired values; NaN without pairs, 1 when every pair is equal."""
    d = _log_ratios(baseline, candidate)
    if d.size == 0:
        return math.nan
    if np.all(d == 0):
        return 1.0
    return float(stats.wilcoxon(d, alternative="greater" if slower else "less").pvalue)
