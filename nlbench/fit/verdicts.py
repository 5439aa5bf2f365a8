"""Verdicts: whether a measured asymptotic slope confirms, refutes or cannot judge a
claimed exponent, with the numbers that decided it in words."""

from __future__ import annotations

import math
from dataclasses import dataclass

from nlbench.fit.estimators import SlopeEstimate


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
    """A verdict (one of :data:`nlbench.vocabulary.VERDICTS`) and the numbers that decided it."""

    verdict: str
    reason: str


def format_size(value: float) -> str:
    """A size for human text: integers with thousands separators, else 3 digits."""
    if not math.isfinite(value):
        return "nan"
    if abs(value) >= 10:
        return f"{value:,.0f}"
    return f"{value:.3g}"


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
    span = f"{axis}∈[{format_size(x_min)}, {format_size(x_max)}]"
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
