"""Estimators on one series of positive costs: log-log slopes with confidence
intervals, and the decomposition of a cost into candidate terms.

Pure numpy/scipy: values in, frozen values out, nothing about blocks or claims.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
from scipy import optimize, stats

from nlbench.vocabulary import check_axis

# Relative-error floor for BIC: an exact fit scores as a fit to 1e-10, so that among
# exact fits the one with fewer terms wins and round-off cannot pick the model.
_REL_ERR_FLOOR = 1e-10


def as_series(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``x`` and ``y`` as flat float arrays of one length."""
    xs = np.asarray(x, dtype=float).ravel()
    ys = np.asarray(y, dtype=float).ravel()
    if xs.shape != ys.shape:
        raise ValueError(f"x and y must have the same length, got {xs.size} and {ys.size}")
    return xs, ys


# ----------------------------------------------------------------------------------
# Candidate terms
# ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Term:
    """One candidate term of a cost model: its value and ``x·dvalue/dx``.

    ``x·dvalue/dx`` (the derivative with respect to ln x) gives the model's local
    log-log exponent as ``Σ c_j·x·t_j'(x) / Σ c_j·t_j(x)``.
    """

    name: str
    value: Callable[[np.ndarray], np.ndarray]
    log_derivative: Callable[[np.ndarray], np.ndarray]


def _ones(x: np.ndarray) -> np.ndarray:
    return np.ones_like(x, dtype=float)


def _zeros(x: np.ndarray) -> np.ndarray:
    return np.zeros_like(x, dtype=float)


N_TERMS: tuple[Term, ...] = (
    Term("const", _ones, _zeros),
    Term("N", lambda x: x, lambda x: x),
    Term("N·logN", lambda x: x * np.log(x), lambda x: x * np.log(x) + x),
    Term("N^1.5", lambda x: x**1.5, lambda x: 1.5 * x**1.5),
    Term("N^2", lambda x: x**2, lambda x: 2.0 * x**2),
)

C_TERMS: tuple[Term, ...] = (
    Term("const", _ones, _zeros),
    Term("C", lambda x: x, lambda x: x),
    Term("C^2", lambda x: x**2, lambda x: 2.0 * x**2),
)


def candidate_terms(axis: str) -> tuple[Term, ...]:
    """The candidate terms of the decomposition along ``axis`` ("N" or "C")."""
    check_axis(axis)
    return N_TERMS if axis == "N" else C_TERMS


# ----------------------------------------------------------------------------------
# Estimates
# ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SlopeEstimate:
    """A log-log OLS slope with its confidence interval (NaN when undetermined)."""

    slope: float
    ci_low: float
    ci_high: float
    stderr: float
    dof: int
    n_points: int

    @property
    def ci_halfwidth(self) -> float:
        return (self.ci_high - self.ci_low) / 2.0


#: The estimate of a series too short to have a slope.
NAN_SLOPE = SlopeEstimate(math.nan, math.nan, math.nan, math.nan, 0, 0)


@dataclass(frozen=True)
class TermModel:
    """A non-negative combination of candidate terms fitted to one series."""

    axis: str
    terms: tuple[str, ...]
    coefficients: tuple[float, ...]
    bic: float
    rel_rmse: float
    log_sigma: float
    dof: int

    def _selected(self) -> list[tuple[Term, float]]:
        by_name = {term.name: term for term in candidate_terms(self.axis)}
        return [(by_name[name], coef) for name, coef in zip(self.terms, self.coefficients)]

    def predict(self, x: Sequence[float] | np.ndarray) -> np.ndarray:
        """The fitted cost at ``x``."""
        xs = np.asarray(x, dtype=float)
        total = np.zeros_like(xs)
        for term, coef in self._selected():
            total = total + coef * term.value(xs)
        return total

    def local_exponent(self, x: float) -> float:
        """d ln(cost) / d ln(x) of the fitted model at ``x``."""
        xs = np.asarray([x], dtype=float)
        value = self.predict(xs)[0]
        if not value > 0:
            return math.nan
        slope = sum(coef * term.log_derivative(xs)[0] for term, coef in self._selected())
        return float(slope / value)

    def shares(self, x: float) -> dict[str, float]:
        """Each candidate term's share of the fitted cost at ``x`` (0 if not selected)."""
        xs = np.asarray([x], dtype=float)
        parts = {term.name: 0.0 for term in candidate_terms(self.axis)}
        for term, coef in self._selected():
            parts[term.name] = float(coef * term.value(xs)[0])
        total = sum(parts.values())
        if not total > 0:
            return {name: math.nan for name in parts}
        return {name: value / total for name, value in parts.items()}

    def dominant_term(self, x: float) -> str:
        """The term with the largest share of the fitted cost at ``x``."""
        shares = self.shares(x)
        finite = {name: share for name, share in shares.items() if math.isfinite(share)}
        if not finite:
            return "none"
        return max(finite, key=lambda name: finite[name])


# ----------------------------------------------------------------------------------
# Estimators
# ----------------------------------------------------------------------------------


def _t_interval(slope: float, stderr: float, dof: int, confidence: float) -> tuple[float, float]:
    if dof < 1 or not math.isfinite(stderr):
        return math.nan, math.nan
    half = float(stats.t.ppf(0.5 + confidence / 2.0, dof)) * stderr
    return slope - half, slope + half


def loglog_slope(
    x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray, *, confidence: float = 0.95
) -> SlopeEstimate:
    """OLS slope of ln y on ln x, with a ``confidence`` CI from the t distribution.

    Points need x > 0 and y > 0. Two distinct x give a slope without a CI; fewer
    give NaN.
    """
    xs, ys = as_series(x, y)
    if np.any(xs <= 0) or np.any(ys <= 0) or not (np.all(np.isfinite(xs)) and np.all(np.isfinite(ys))):
        raise ValueError("loglog_slope needs finite x > 0 and y > 0 (drop zero/NaN costs first)")
    n = xs.size
    lx, ly = np.log(xs), np.log(ys)
    sxx = float(np.sum((lx - lx.mean()) ** 2))
    if n < 2 or sxx <= 0:
        return SlopeEstimate(math.nan, math.nan, math.nan, math.nan, 0, n)
    slope = float(np.sum((lx - lx.mean()) * (ly - ly.mean())) / sxx)
    dof = n - 2
    if dof < 1:
        return SlopeEstimate(slope, math.nan, math.nan, math.nan, 0, n)
    residuals = ly - ly.mean() - slope * (lx - lx.mean())
    stderr = math.sqrt(float(np.sum(residuals**2)) / dof / sxx)
    low, high = _t_interval(slope, stderr, dof, confidence)
    return SlopeEstimate(slope, low, high, stderr, dof, n)


def tail_slope(
    x: Sequence[float] | np.ndarray,
    y: Sequence[float] | np.ndarray,
    *,
    tail_points: int = 3,
    log_sigma: float | None = None,
    sigma_dof: int = 0,
    confidence: float = 0.95,
) -> SlopeEstimate:
    """Log-log OLS slope over the ``tail_points`` largest x: the local (asymptotic) slope.

    With ``log_sigma`` (the noise σ of ln y, estimated elsewhere with ``sigma_dof``
    degrees of freedom) the CI is ``t(sigma_dof) · σ / sqrt(Sxx_tail)``; without it the
    tail's own residuals are used (``tail_points - 2`` degrees of freedom).
    """
    if tail_points < 2:
        raise ValueError(f"tail_points must be >= 2, got {tail_points}")
    xs, ys = as_series(x, y)
    order = np.argsort(xs)
    xs, ys = xs[order][-tail_points:], ys[order][-tail_points:]
    own = loglog_slope(xs, ys, confidence=confidence)
    if log_sigma is None or sigma_dof < 1 or not math.isfinite(own.slope):
        return own
    lx = np.log(xs)
    stderr = log_sigma / math.sqrt(float(np.sum((lx - lx.mean()) ** 2)))
    low, high = _t_interval(own.slope, stderr, sigma_dof, confidence)
    return SlopeEstimate(own.slope, low, high, stderr, sigma_dof, own.n_points)


def fit_terms(
    x: Sequence[float] | np.ndarray,
    y: Sequence[float] | np.ndarray,
    axis: str,
    *,
    max_terms: int = 3,
) -> TermModel:
    """Decompose a cost into candidate terms by NNLS on relative errors, chosen by BIC.

    Every subset of at most ``max_terms`` candidate terms (and at most n − 1, so a
    model never has as many coefficients as points) is fitted by non-negative least
    squares minimising Σ((f(x_i) − y_i)/y_i)²; the subset with the lowest
    BIC = n·ln(RSS/n) + k·ln(n) wins (k = terms with a positive coefficient;
    RSS/n floored at (1e-10)² so exact fits tie and the smaller model wins).
    """
    terms = candidate_terms(axis)
    xs, ys = as_series(x, y)
    if xs.size < 1 or np.any(xs <= 0) or np.any(ys <= 0):
        raise ValueError("fit_terms needs at least one point with x > 0 and y > 0")
    n = xs.size
    limit = max(1, min(max_terms, n - 1))
    basis = np.column_stack([term.value(xs) for term in terms]) / ys[:, None]
    rhs = np.ones(n)
    best: tuple[float, int, tuple[str, ...], tuple[float, ...], float] | None = None
    for size in range(1, limit + 1):
        for subset in itertools.combinations(range(len(terms)), size):
            columns = basis[:, subset]
            scale = np.linalg.norm(columns, axis=0)
            if np.any(scale <= 0) or not np.all(np.isfinite(scale)):
                continue
            scaled_coefs, _ = optimize.nnls(columns / scale, rhs)
            coefs = scaled_coefs / scale
            positive = coefs > 0
            if not np.any(positive):
                continue
            rss = float(np.sum((columns @ coefs - rhs) ** 2))
            k = int(positive.sum())
            bic = n * math.log(max(rss / n, _REL_ERR_FLOOR**2)) + k * math.log(n)
            names = tuple(terms[j].name for j, keep in zip(subset, positive) if keep)
            values = tuple(float(c) for c in coefs[positive])
            candidate = (bic, k, names, values, rss)
            if best is None or (bic, k) < (best[0], best[1]):
                best = candidate
    if best is None:
        raise ValueError(f"no candidate term could be fitted on axis {axis} to y={ys.tolist()}")
    bic, k, names, values, rss = best
    model = TermModel(axis, names, values, bic, math.sqrt(rss / n), math.nan, n - k)
    log_residuals = np.log(ys) - np.log(model.predict(xs))
    dof = n - k
    log_sigma = math.sqrt(float(np.sum(log_residuals**2)) / dof) if dof >= 1 else math.nan
    return TermModel(axis, names, values, bic, math.sqrt(rss / n), log_sigma, dof)
