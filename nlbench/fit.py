"""Complexity fits: how each measured cost grows with N (positions) and with C
(channels), and whether that growth matches the block's claimed complexity.

Pure numpy/scipy/pandas on stored results (never torch), so a report can re-fit a
run anywhere. For every series of measurements (one block, one configuration, one
axis swept while everything else is fixed) it gives:

* the **log-log OLS slope** over all points, with a 95 % CI from the t distribution;
* the **asymptotic slope**: the log-log OLS slope over the last ``tail_points``
  (default 3) sizes — model-free, so it converges to the true leading exponent as the
  largest sizes move into the asymptotic regime. Its CI uses the noise level σ of the
  log residuals of the selected term model below (all points, ``n - k`` degrees of
  freedom), because three points alone leave one degree of freedom and a useless
  t quantile; a misfitting model inflates σ, which honestly widens the CI;
* a **decomposition into candidate terms** (axis N: 1, N, N·logN, N^1.5, N²; axis C:
  1, C, C²) by non-negative least squares on relative errors (each point weighted by
  1/y so small sizes count), choosing among subsets of at most three terms by BIC;
  the **dominant term** is the one with the largest share of the fitted cost at the
  largest measured size;
* a **verdict** comparing the asymptotic slope with the exponent the claim predicts
  at the largest size (``a + b/ln(x_max)`` for N^a·log^b N; ``c`` for C^c).

:func:`crossovers` finds where one block's cost overtakes another's.
"""

from __future__ import annotations

import itertools
import json
import math
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import optimize, stats

METRICS: tuple[str, ...] = (
    "macs",
    "latency_fwd_ms",
    "latency_fwdbwd_ms",
    "peak_mem_fwd_bytes",
    "peak_mem_fwdbwd_bytes",
)

METRIC_COLUMNS: Mapping[str, str] = {
    "macs": "macs",
    "latency_fwd_ms": "latency_fwd_ms_median",
    "latency_fwdbwd_ms": "latency_fwdbwd_ms_median",
    "peak_mem_fwd_bytes": "peak_mem_fwd_bytes",
    "peak_mem_fwdbwd_bytes": "peak_mem_fwdbwd_bytes",
}

AXES: tuple[str, ...] = ("N", "C")

VERDICTS: tuple[str, ...] = ("holds", "does not hold", "inconclusive")

REQUIRED_COLUMNS: tuple[str, ...] = ("block", "channels", "height", "width", "status")

# Grouping columns that may be absent from a results frame; absent ones are filled
# with a sentinel so that groups stay well defined.
_OPTIONAL_KEYS: tuple[str, ...] = ("options", "frames", "batch", "device", "dtype")

# Relative-error floor for BIC: an exact fit scores as a fit to 1e-10, so that among
# exact fits the one with fewer terms wins and round-off cannot pick the model.
_REL_ERR_FLOOR = 1e-10


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
    _check_axis(axis)
    return N_TERMS if axis == "N" else C_TERMS


def _check_axis(axis: str) -> None:
    if axis not in AXES:
        raise ValueError(f"axis must be one of {AXES}, got {axis!r}")


# ----------------------------------------------------------------------------------
# Values passed between stages
# ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Claim:
    """A claimed complexity ``N^n_exponent · log(N)^n_log_power · C^c_exponent``."""

    text: str
    n_exponent: float
    c_exponent: float
    n_log_power: int = 0

    def effective_exponent(self, axis: str, x_max: float) -> float:
        """The local log-log exponent the claim predicts at ``x_max``.

        Axis N: ``a + b/ln(x_max)`` (the slope of N^a·log^b N at x_max); axis C: ``c``.
        """
        _check_axis(axis)
        if axis == "C":
            return float(self.c_exponent)
        if self.n_log_power == 0:
            return float(self.n_exponent)
        if not x_max > 1.0:
            return math.nan
        return float(self.n_exponent + self.n_log_power / math.log(x_max))


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


@dataclass(frozen=True)
class VerdictRule:
    """When a measured exponent confirms, refutes, or cannot judge a claim.

    * inconclusive: fewer than ``min_points`` sizes, a size range below ``min_range``
      (x_max/x_min), or an asymptotic CI half-width above ``max_ci_halfwidth`` (noise);
    * holds: |asymptotic − claimed| ≤ ``tolerance`` (with the CI narrow enough, above);
    * does not hold: the difference exceeds ``tolerance`` and the claimed exponent lies
      outside the CI; otherwise inconclusive.
    """

    tolerance: float = 0.15
    max_ci_halfwidth: float = 0.25
    min_points: int = 3
    min_range: float = 4.0

    def __post_init__(self) -> None:
        if not self.tolerance >= 0:
            raise ValueError(f"tolerance must be >= 0, got {self.tolerance}")
        if not self.max_ci_halfwidth > 0:
            raise ValueError(f"max_ci_halfwidth must be > 0, got {self.max_ci_halfwidth}")
        if self.min_points < 2:
            raise ValueError(f"min_points must be >= 2, got {self.min_points}")
        if not self.min_range >= 1:
            raise ValueError(f"min_range must be >= 1, got {self.min_range}")


@dataclass(frozen=True)
class Verdict:
    """A verdict and the human-readable numbers that decided it."""

    verdict: str
    reason: str


@dataclass(frozen=True)
class SeriesFit:
    """Everything fitted on one series (one axis swept, everything else fixed).

    ``x``/``y`` are the points with a positive cost that the fits used (distinct x,
    median y); ``zero_x`` the sizes whose cost was zero.
    """

    axis: str
    x: tuple[float, ...]
    y: tuple[float, ...]
    zero_x: tuple[float, ...]
    slope: SlopeEstimate
    asymptotic: SlopeEstimate
    model: TermModel | None
    claim: Claim | None
    claimed_exponent: float
    verdict: Verdict

    @property
    def n_zero(self) -> int:
        """Sizes measured at zero cost (excluded from the log fits)."""
        return len(self.zero_x)

    @property
    def x_min(self) -> float:
        """Smallest fitted size (smallest measured size when every cost is zero)."""
        sizes = self.x or self.zero_x
        return min(sizes) if sizes else math.nan

    @property
    def x_max(self) -> float:
        """Largest fitted size (largest measured size when every cost is zero)."""
        sizes = self.x or self.zero_x
        return max(sizes) if sizes else math.nan

    def as_record(self) -> dict[str, Any]:
        """The columns :func:`fit_run` reports for this series."""
        model = self.model
        shares = model.shares(self.x_max) if model is not None else {}
        return {
            "n_points": len(self.x),
            "n_zero": self.n_zero,
            "x_min": self.x_min,
            "x_max": self.x_max,
            "slope": self.slope.slope,
            "slope_ci_low": self.slope.ci_low,
            "slope_ci_high": self.slope.ci_high,
            "asymptotic_slope": self.asymptotic.slope,
            "asymptotic_ci_low": self.asymptotic.ci_low,
            "asymptotic_ci_high": self.asymptotic.ci_high,
            "model_slope_at_max": model.local_exponent(self.x_max) if model is not None else math.nan,
            "dominant_term": model.dominant_term(self.x_max) if model is not None else "none",
            "model_terms": " + ".join(model.terms) if model is not None else "",
            "term_shares": json.dumps(
                {name: (round(share, 4) if math.isfinite(share) else None) for name, share in shares.items()},
                ensure_ascii=False,
            ),
            "model_rel_rmse": model.rel_rmse if model is not None else math.nan,
            "claimed": self.claim.text if self.claim is not None else None,
            "claimed_exponent": self.claimed_exponent,
            "verdict": self.verdict.verdict,
            "verdict_reason": self.verdict.reason,
        }


# ----------------------------------------------------------------------------------
# Pure fitting functions
# ----------------------------------------------------------------------------------

_NAN_SLOPE = SlopeEstimate(math.nan, math.nan, math.nan, math.nan, 0, 0)


def _as_series(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    xs = np.asarray(x, dtype=float).ravel()
    ys = np.asarray(y, dtype=float).ravel()
    if xs.shape != ys.shape:
        raise ValueError(f"x and y must have the same length, got {xs.size} and {ys.size}")
    return xs, ys


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
    xs, ys = _as_series(x, y)
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
    xs, ys = _as_series(x, y)
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
    xs, ys = _as_series(x, y)
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


def judge(
    asymptotic: SlopeEstimate,
    claimed_exponent: float,
    *,
    n_points: int,
    x_min: float,
    x_max: float,
    axis: str,
    claim_text: str,
    rule: VerdictRule = VerdictRule(),
) -> Verdict:
    """Hold a measured asymptotic slope against a claimed exponent (see VerdictRule)."""
    a = asymptotic
    span = f"{axis}∈[{_fmt(x_min)}, {_fmt(x_max)}]"
    measured = f"asymptotic slope {a.slope:.2f} [{a.ci_low:.2f}, {a.ci_high:.2f}]"
    versus = f"claimed {claimed_exponent:.2f} ({claim_text})"
    if not math.isfinite(claimed_exponent):
        return Verdict("inconclusive", f"no usable claimed exponent for {claim_text!r}")
    if n_points < rule.min_points:
        return Verdict("inconclusive", f"only {n_points} sizes with a positive cost (need ≥ {rule.min_points})")
    ratio = x_max / x_min
    if ratio < rule.min_range:
        return Verdict(
            "inconclusive",
            f"{span} spans a factor {ratio:.2f} (< {rule.min_range:g}); too narrow to fit an exponent",
        )
    if not (math.isfinite(a.ci_low) and math.isfinite(a.ci_high)):
        return Verdict("inconclusive", f"{measured} over {span}: no confidence interval")
    half = a.ci_halfwidth
    if half > rule.max_ci_halfwidth:
        return Verdict(
            "inconclusive",
            f"{measured} over {span} vs {versus}: CI half-width {half:.2f} > {rule.max_ci_halfwidth:g} (noise)",
        )
    diff = a.slope - claimed_exponent
    detail = f"{measured} over {span} vs {versus}; difference {diff:+.2f}"
    if abs(diff) <= rule.tolerance:
        return Verdict("holds", f"{detail} within tolerance {rule.tolerance:g}")
    if not (a.ci_low <= claimed_exponent <= a.ci_high):
        return Verdict("does not hold", f"{detail} beyond tolerance {rule.tolerance:g} and outside the CI")
    return Verdict("inconclusive", f"{detail} beyond tolerance {rule.tolerance:g} but the CI contains the claim")


def fit_series(
    x: Sequence[float] | np.ndarray,
    y: Sequence[float] | np.ndarray,
    axis: str,
    claim: Claim | None = None,
    *,
    rule: VerdictRule = VerdictRule(),
    tail_points: int = 3,
    max_terms: int = 3,
    confidence: float = 0.95,
) -> SeriesFit:
    """Fit one series of costs ``y`` at sizes ``x`` along ``axis`` and judge ``claim``.

    NaN costs are dropped; duplicated x are merged by the median; zero costs are
    excluded from the log fits and counted in ``n_zero`` (a series that is zero
    everywhere is constant: it holds a constant claim and is inconclusive otherwise).
    """
    _check_axis(axis)
    xs, ys = _as_series(x, y)
    if np.any(~np.isfinite(xs)) or np.any(xs <= 0):
        raise ValueError(f"sizes along axis {axis} must be finite and > 0, got {xs.tolist()}")
    if np.any(ys[np.isfinite(ys)] < 0):
        raise ValueError(f"costs must be >= 0, got {ys.tolist()}")
    ux, uy = _median_by_x(xs, ys)
    zero = uy == 0
    px, py = ux[~zero], uy[~zero]
    n_zero = int(zero.sum())
    x_max_all = float(ux.max()) if ux.size else math.nan
    claimed_exponent = claim.effective_exponent(axis, x_max_all) if claim is not None else math.nan
    claim_text = claim.text if claim is not None else "no claim"

    if px.size == 0:
        if ux.size == 0:
            verdict = Verdict("inconclusive", "no measured cost")
        elif claim is not None and claimed_exponent == 0:
            verdict = Verdict(
                "holds", f"zero cost at all {ux.size} sizes {axis}∈[{_fmt(ux.min())}, {_fmt(ux.max())}]: "
                f"constant, as claimed ({claim_text})"
            )
        else:
            verdict = Verdict(
                "inconclusive", f"zero cost at all {ux.size} sizes: no growth to compare with {claim_text}"
            )
        return SeriesFit(axis, (), (), tuple(ux.tolist()), _NAN_SLOPE, _NAN_SLOPE, None, claim,
                         claimed_exponent, verdict)

    slope = loglog_slope(px, py, confidence=confidence) if px.size >= 2 else _NAN_SLOPE
    model = fit_terms(px, py, axis, max_terms=max_terms)
    if px.size >= 2:
        asymptotic = tail_slope(
            px, py, tail_points=tail_points, log_sigma=model.log_sigma, sigma_dof=model.dof, confidence=confidence
        )
    else:
        asymptotic = _NAN_SLOPE
    x_max = float(px.max())
    claimed_exponent = claim.effective_exponent(axis, x_max) if claim is not None else math.nan
    if claim is None:
        verdict = Verdict("inconclusive", "no claimed complexity recorded for this block")
    else:
        verdict = judge(
            asymptotic,
            claimed_exponent,
            n_points=int(px.size),
            x_min=float(px.min()),
            x_max=x_max,
            axis=axis,
            claim_text=claim_text,
            rule=rule,
        )
    dominant = model.dominant_term(x_max)
    share = model.shares(x_max).get(dominant, math.nan)
    verdict = Verdict(
        verdict.verdict,
        f"{verdict.reason}; dominant term {dominant} ({share:.0%} of the fitted cost at {axis}={_fmt(x_max)})",
    )
    if n_zero:
        verdict = Verdict(verdict.verdict, f"{verdict.reason}; {n_zero} zero-cost size(s) excluded from the fit")
    return SeriesFit(axis, tuple(px.tolist()), tuple(py.tolist()), tuple(ux[zero].tolist()), slope, asymptotic,
                     model, claim, claimed_exponent, verdict)


def _median_by_x(xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted distinct x (with a finite cost) and the median cost at each."""
    keep = np.isfinite(ys)
    xs, ys = xs[keep], ys[keep]
    if xs.size == 0:
        return xs, ys
    ux = np.unique(xs)
    uy = np.array([float(np.median(ys[xs == value])) for value in ux])
    return ux, uy


def _fmt(value: float) -> str:
    """A size for human text: integers with thousands separators, else 3 digits."""
    if not math.isfinite(value):
        return "nan"
    if abs(value) >= 10:
        return f"{value:,.0f}"
    return f"{value:.3g}"


# ----------------------------------------------------------------------------------
# Results frame -> fits
# ----------------------------------------------------------------------------------

ClaimLike = Any  # a Claim, a (text, n_exp, c_exp, n_log_power) tuple, or an object with those attributes


def _to_claim(value: ClaimLike) -> Claim:
    if isinstance(value, Claim):
        return value
    if isinstance(value, (tuple, list)):
        if len(value) not in (3, 4):
            raise ValueError(f"a claim tuple is (text, n_exponent, c_exponent[, n_log_power]), got {value!r}")
        text, n_exp, c_exp, *rest = value
        return Claim(str(text), float(n_exp), float(c_exp), int(rest[0]) if rest else 0)
    if all(hasattr(value, name) for name in ("text", "n_exponent", "c_exponent")):
        return Claim(str(value.text), float(value.n_exponent), float(value.c_exponent),
                     int(getattr(value, "n_log_power", 0)))
    raise ValueError(f"cannot read a claimed complexity from {value!r}")


def _claims_from_frame(df: pd.DataFrame) -> dict[str, Claim]:
    """Claims recorded in the results' ``claimed_*`` columns, one per block."""
    columns = ("claimed_complexity", "claimed_n_exponent", "claimed_c_exponent")
    if not all(column in df.columns for column in columns):
        return {}
    claims: dict[str, Claim] = {}
    for block, rows in df.groupby("block", sort=True):
        rows = rows.dropna(subset=list(columns))
        if rows.empty:
            continue
        first = rows.iloc[0]
        log_power = first.get("claimed_n_log_power", 0)
        log_power = 0 if log_power is None or (isinstance(log_power, float) and math.isnan(log_power)) else log_power
        claims[str(block)] = Claim(
            str(first["claimed_complexity"]),
            float(first["claimed_n_exponent"]),
            float(first["claimed_c_exponent"]),
            int(log_power),
        )
    return claims


def _normalise_options(value: Any) -> str:
    """Options as canonical JSON text (sorted keys) so equal options group together."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "{}"
    if isinstance(value, Mapping):
        return json.dumps(dict(value), sort_keys=True)
    try:
        return json.dumps(json.loads(str(value)), sort_keys=True)
    except (TypeError, ValueError):
        return str(value)


def _prepare(df: pd.DataFrame) -> pd.DataFrame:
    """Only ``ok`` rows, with canonical keys and a ``positions`` column N = H·W·(T or 1)."""
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"expected a pandas DataFrame of results, got {type(df).__name__}")
    missing = [column for column in REQUIRED_COLUMNS if column not in df.columns]
    if missing:
        raise ValueError(f"results frame lacks required column(s) {missing}; it has {sorted(df.columns)}")
    frame = df.loc[df["status"] == "ok"].copy()
    for column in _OPTIONAL_KEYS:
        if column not in frame.columns:
            frame[column] = None
    frame["options"] = frame["options"].map(_normalise_options)
    frame["frames"] = pd.to_numeric(frame["frames"], errors="coerce")
    for column in ("channels", "height", "width"):
        frame[column] = pd.to_numeric(frame[column], errors="raise").astype(float)
    frame["positions"] = frame["height"] * frame["width"] * frame["frames"].fillna(1.0)
    return frame


def _group_keys(axis: str) -> list[str]:
    common = ["frames", "batch", "device", "dtype"]
    if axis == "N":
        return ["channels", *common]
    return ["height", "width", *common]


def _axis_column(axis: str) -> str:
    return "positions" if axis == "N" else "channels"


def _clean(value: Any) -> Any:
    """A group key value for the output (NaN/None -> None, numpy scalars -> Python)."""
    if value is None:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, np.generic):
        return value.item()
    return value


def _metric_columns(frame: pd.DataFrame, metrics: Iterable[str]) -> list[tuple[str, str]]:
    chosen = []
    for metric in metrics:
        if metric not in METRIC_COLUMNS:
            raise ValueError(f"unknown metric {metric!r}; known: {list(METRIC_COLUMNS)}")
        if METRIC_COLUMNS[metric] in frame.columns:
            chosen.append((metric, METRIC_COLUMNS[metric]))
    return chosen


FIT_COLUMNS: tuple[str, ...] = (
    "block", "options", "metric", "axis", "fixed_channels", "fixed_positions", "fixed_height", "fixed_width",
    "frames", "batch", "device", "dtype", "n_points", "n_zero", "x_min", "x_max", "slope", "slope_ci_low",
    "slope_ci_high", "asymptotic_slope", "asymptotic_ci_low", "asymptotic_ci_high", "model_slope_at_max",
    "dominant_term", "model_terms", "term_shares", "model_rel_rmse", "claimed", "claimed_exponent", "verdict",
    "verdict_reason",
)


def fit_run(
    df: pd.DataFrame,
    claims: Mapping[str, ClaimLike] | None = None,
    *,
    metrics: Sequence[str] = METRICS,
    tolerance: float = 0.15,
    max_ci_halfwidth: float = 0.25,
    min_points: int = 3,
    min_range: float = 4.0,
    tail_points: int = 3,
    max_terms: int = 3,
    confidence: float = 0.95,
) -> pd.DataFrame:
    """Fit every (block, metric, axis, fixed-other-axis group) of a results frame.

    A group is one block with one set of options, swept along one axis while the
    other axis (C for axis N, H and W for axis C), frames, batch, device and dtype
    stay fixed; groups with fewer than two distinct sizes measured are not an axis and
    give no row. Only ``status == "ok"`` rows are used. Claims come from ``claims``
    (block -> Claim or (text, n_exponent, c_exponent, n_log_power)) when given, else
    from the frame's ``claimed_*`` columns. Returns one row per group with
    :data:`FIT_COLUMNS`.
    """
    rule = VerdictRule(tolerance, max_ci_halfwidth, min_points, min_range)
    frame = _prepare(df)
    known = _claims_from_frame(frame)
    if claims is not None:
        known.update({str(block): _to_claim(value) for block, value in claims.items()})
    records: list[dict[str, Any]] = []
    for metric, column in _metric_columns(frame, metrics):
        values = pd.to_numeric(frame[column], errors="coerce")
        measured = frame.assign(_cost=values).dropna(subset=["_cost"])
        for axis in AXES:
            keys = ["block", "options", *_group_keys(axis)]
            x_column = _axis_column(axis)
            for key, rows in measured.groupby(keys, dropna=False, sort=True):
                if rows[x_column].nunique() < 2:
                    continue
                fixed = dict(zip(keys, key))
                block = str(fixed["block"])
                fit = fit_series(
                    rows[x_column].to_numpy(float),
                    rows["_cost"].to_numpy(float),
                    axis,
                    known.get(block),
                    rule=rule,
                    tail_points=tail_points,
                    max_terms=max_terms,
                    confidence=confidence,
                )
                height = _clean(fixed.get("height"))
                width = _clean(fixed.get("width"))
                frames = _clean(fixed["frames"])
                record: dict[str, Any] = {
                    "block": block,
                    "options": fixed["options"],
                    "metric": metric,
                    "axis": axis,
                    "fixed_channels": _clean(fixed.get("channels")),
                    "fixed_positions": (height * width * (frames or 1)) if axis == "C" else None,
                    "fixed_height": height,
                    "fixed_width": width,
                    "frames": frames,
                    "batch": _clean(fixed["batch"]),
                    "device": _clean(fixed["device"]),
                    "dtype": _clean(fixed["dtype"]),
                }
                record.update(fit.as_record())
                records.append(record)
    return pd.DataFrame.from_records(records, columns=list(FIT_COLUMNS))


# ----------------------------------------------------------------------------------
# Crossovers
# ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Crossing:
    """Where ``log(cost_a / cost_b)`` changes sign between measured sizes.

    ``a_costlier_above`` is true when a costs more than b above ``x``.
    ``interpolated`` is false when the crossing was placed at a measured size (equal
    costs there) or at a geometric midpoint (a zero cost on one side).
    """

    x: float
    a_costlier_above: bool
    interpolated: bool


def find_crossings(
    x: Sequence[float] | np.ndarray, cost_a: Sequence[float] | np.ndarray, cost_b: Sequence[float] | np.ndarray
) -> list[Crossing]:
    """Sign changes of ln(cost_a/cost_b) over sorted ``x``, interpolated in log-log space.

    Costs must be ≥ 0; a zero cost is cheaper than any positive one. Between two
    neighbouring sizes with opposite signs the crossing is the root of the straight
    line through (ln x, ln a − ln b); equal costs at a size between opposite signs
    place the crossing at that size.
    """
    xs = np.asarray(x, dtype=float)
    a = np.asarray(cost_a, dtype=float)
    b = np.asarray(cost_b, dtype=float)
    if not (xs.shape == a.shape == b.shape):
        raise ValueError("x, cost_a and cost_b must have the same length")
    if np.any(xs <= 0) or np.any(a < 0) or np.any(b < 0):
        raise ValueError("find_crossings needs x > 0 and costs >= 0")
    order = np.argsort(xs)
    xs, a, b = xs[order], a[order], b[order]
    with np.errstate(divide="ignore", invalid="ignore"):
        diff = np.log(a) - np.log(b)
    diff = np.where((a == 0) & (b == 0), 0.0, diff)
    sign = np.sign(diff)
    crossings: list[Crossing] = []
    previous: int | None = None
    for i in range(xs.size):
        if sign[i] == 0:
            continue
        if previous is not None and sign[previous] != sign[i]:
            rising = bool(sign[i] > 0)
            if i - previous > 1:
                crossings.append(Crossing(float(xs[previous + 1]), rising, False))
            elif math.isfinite(diff[previous]) and math.isfinite(diff[i]):
                lx0, lx1 = math.log(xs[previous]), math.log(xs[i])
                t = diff[previous] / (diff[previous] - diff[i])
                crossings.append(Crossing(float(math.exp(lx0 + t * (lx1 - lx0))), rising, True))
            else:
                crossings.append(Crossing(float(math.sqrt(xs[previous] * xs[i])), rising, False))
        previous = i
    return crossings


CROSSOVER_COLUMNS: tuple[str, ...] = (
    "metric", "axis", "block_a", "options_a", "block_b", "options_b", "fixed_channels", "fixed_height",
    "fixed_width", "frames", "batch", "device", "dtype", "n_common", "x_min", "x_max", "crossover_x",
    "crossover_resolution", "costlier_above", "interpolated", "direction",
)


def crossovers(df: pd.DataFrame, metric: str = "macs", axis: str = "N") -> pd.DataFrame:
    """Where one block's cost overtakes another's along ``axis``.

    Every pair of series (block + options) measured in the same fixed group (the
    other axis, frames, batch, device, dtype) is compared on the sizes both measured
    (at least two); each sign change of ln(cost_a/cost_b) gives a row, and a pair
    without one gives a row with NaN ``crossover_x`` saying which is always cheaper.
    ``crossover_resolution`` (axis N) is the side of the equivalent square frame,
    sqrt(N / frames). Returns :data:`CROSSOVER_COLUMNS`.
    """
    _check_axis(axis)
    if metric not in METRIC_COLUMNS:
        raise ValueError(f"unknown metric {metric!r}; known: {list(METRIC_COLUMNS)}")
    frame = _prepare(df)
    column = METRIC_COLUMNS[metric]
    if column not in frame.columns:
        raise ValueError(f"results frame has no column {column!r} for metric {metric!r}")
    frame = frame.assign(_cost=pd.to_numeric(frame[column], errors="coerce")).dropna(subset=["_cost"])
    frame = frame.loc[frame["_cost"] >= 0]
    x_column = _axis_column(axis)
    group_keys = _group_keys(axis)
    records: list[dict[str, Any]] = []
    for key, group in frame.groupby(group_keys, dropna=False, sort=True):
        fixed = dict(zip(group_keys, key))
        series: dict[tuple[str, str], pd.Series] = {}
        for (block, options), rows in group.groupby(["block", "options"], sort=True):
            series[(str(block), str(options))] = rows.groupby(x_column)["_cost"].median()
        for (id_a, costs_a), (id_b, costs_b) in itertools.combinations(sorted(series.items()), 2):
            common = costs_a.index.intersection(costs_b.index).sort_values()
            if common.size < 2:
                continue
            xs = common.to_numpy(float)
            a, b = costs_a.loc[common].to_numpy(float), costs_b.loc[common].to_numpy(float)
            base = {
                "metric": metric,
                "axis": axis,
                "block_a": id_a[0],
                "options_a": id_a[1],
                "block_b": id_b[0],
                "options_b": id_b[1],
                "fixed_channels": _clean(fixed.get("channels")),
                "fixed_height": _clean(fixed.get("height")),
                "fixed_width": _clean(fixed.get("width")),
                "frames": _clean(fixed["frames"]),
                "batch": _clean(fixed["batch"]),
                "device": _clean(fixed["device"]),
                "dtype": _clean(fixed["dtype"]),
                "n_common": int(xs.size),
                "x_min": float(xs.min()),
                "x_max": float(xs.max()),
            }
            name_a, name_b = _series_label(id_a, id_b), _series_label(id_b, id_a)
            found = find_crossings(xs, a, b)
            frames = base["frames"] or 1
            for crossing in found:
                high, low = (name_a, name_b) if crossing.a_costlier_above else (name_b, name_a)
                side = math.sqrt(crossing.x / frames) if axis == "N" else math.nan
                where = f"{axis}≈{_fmt(crossing.x)}" + (f" (≈{side:.1f}² per frame)" if axis == "N" else "")
                records.append({
                    **base,
                    "crossover_x": crossing.x,
                    "crossover_resolution": side,
                    "costlier_above": high,
                    "interpolated": crossing.interpolated,
                    "direction": f"{high} costs more than {low} above {where}; below it {low} costs more",
                })
            if not found:
                records.append({
                    **base,
                    "crossover_x": math.nan,
                    "crossover_resolution": math.nan,
                    "costlier_above": _always_costlier(name_a, name_b, a, b),
                    "interpolated": False,
                    "direction": _no_crossing_text(name_a, name_b, a, b, axis, xs),
                })
    return pd.DataFrame.from_records(records, columns=list(CROSSOVER_COLUMNS))


def _series_label(own: tuple[str, str], other: tuple[str, str]) -> str:
    """The block name, with its options when the pair is one block in two configurations."""
    block, options = own
    return f"{block} {options}" if block == other[0] else block


def _always_costlier(name_a: str, name_b: str, a: np.ndarray, b: np.ndarray) -> str | None:
    if np.all(a >= b) and np.any(a > b):
        return name_a
    if np.all(b >= a) and np.any(b > a):
        return name_b
    return None


def _no_crossing_text(name_a: str, name_b: str, a: np.ndarray, b: np.ndarray, axis: str, xs: np.ndarray) -> str:
    span = f"{axis}∈[{_fmt(xs.min())}, {_fmt(xs.max())}]"
    costlier = _always_costlier(name_a, name_b, a, b)
    if costlier is None:
        return f"{name_a} and {name_b} cost the same at every measured size ({span})"
    cheaper = name_b if costlier == name_a else name_a
    return f"no crossover: {cheaper} is never costlier than {costlier} in the measured range {span}"
