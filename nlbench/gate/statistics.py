"""The time tier's statistics, as pure functions on raw samples.

- :func:`ratio_estimate`: the Hodges-Lehmann estimate of the ratio candidate/baseline
  (the median of all pairwise ratios, i.e. the HL shift of the log-times) with its
  distribution-free interval (Moses' order statistics of the pairwise differences,
  normal approximation of the Mann-Whitney distribution);
- :func:`one_sided_p_value`: the one-sided Mann-Whitney U test that the candidate's
  times are stochastically larger (or smaller);
- :func:`holm_adjust`: Holm's step-down correction, so that a gate comparing many cases
  keeps its family-wise false-alarm rate at α.
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
