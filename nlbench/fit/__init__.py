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

Modules: :mod:`~nlbench.fit.estimators` (slopes, term models),
:mod:`~nlbench.fit.verdicts` (claims judged), :mod:`~nlbench.fit.series` (one series
fitted and judged), :mod:`~nlbench.fit.frame` (a results frame grouped into series),
:mod:`~nlbench.fit.crossovers`. Metric names, axes, verdicts and claimed complexities
are the vocabulary's (:mod:`nlbench.vocabulary`).
"""

from nlbench.fit.crossovers import CROSSOVER_COLUMNS, Crossing, crossovers, find_crossings
from nlbench.fit.estimators import (
    C_TERMS, N_TERMS, SlopeEstimate, Term, TermModel, candidate_terms, fit_terms, loglog_slope, tail_slope,
)
from nlbench.fit.frame import FIT_COLUMNS, fit_run
from nlbench.fit.series import SeriesFit, fit_series
from nlbench.fit.verdicts import Verdict, VerdictRule, judge
from nlbench.vocabulary import AXES, VERDICTS
from nlbench.vocabulary import METRIC_NAMES as METRICS  # the metric names the fits cover

__all__ = [
    "AXES", "C_TERMS", "CROSSOVER_COLUMNS", "Crossing", "FIT_COLUMNS", "METRICS", "N_TERMS", "SeriesFit",
    "SlopeEstimate", "Term", "TermModel", "VERDICTS", "Verdict", "VerdictRule", "candidate_terms", "crossovers",
    "find_crossings", "fit_run", "fit_series", "fit_terms", "judge", "loglog_slope", "tail_slope",
]
