"""One series (one axis swept, everything else fixed): its slopes, its term model and
the verdict on its claim, as one frozen :class:`SeriesFit`."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from nlbench.fit.estimators import (
    NAN_SLOPE, SlopeEstimate, TermModel, as_series, fit_terms, loglog_slope, tail_slope,
)
from nlbench.fit.verdicts import Verdict, VerdictRule, format_size, judge
from nlbench.vocabulary import ClaimedComplexity, check_axis


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
    claim: ClaimedComplexity | None
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
        """The columns :func:`nlbench.fit.fit_run` reports for this series."""
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


def fit_series(
    x: Sequence[float] | np.ndarray,
    y: Sequence[float] | np.ndarray,
    axis: str,
    claim: ClaimedComplexity | None = None,
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
    check_axis(axis)
    xs, ys = as_series(x, y)
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
                "holds", f"zero cost at all {ux.size} sizes {axis}∈[{format_size(ux.min())}, "
                f"{format_size(ux.max())}]: constant, as claimed ({claim_text})"
            )
        else:
            verdict = Verdict(
                "inconclusive", f"zero cost at all {ux.size} sizes: no growth to compare with {claim_text}"
            )
        return SeriesFit(axis, (), (), tuple(ux.tolist()), NAN_SLOPE, NAN_SLOPE, None, claim,
                         claimed_exponent, verdict)

    slope = loglog_slope(px, py, confidence=confidence) if px.size >= 2 else NAN_SLOPE
    model = fit_terms(px, py, axis, max_terms=max_terms)
    if px.size >= 2:
        asymptotic = tail_slope(
            px, py, tail_points=tail_points, log_sigma=model.log_sigma, sigma_dof=model.dof, confidence=confidence
        )
    else:
        asymptotic = NAN_SLOPE
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
        f"{verdict.reason}; dominant term {dominant} ({share:.0%} of the fitted cost at "
        f"{axis}={format_size(x_max)})",
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
