"""Verdicts on probe runs, derived from the stored results only: for each block and
task, whether it *learns* (reaches the target accuracy at its plateau within the short
budget), *learns slowly* (only beyond it), *learns in some seeds*, or *does not learn*
within the budget it trained (or every seed failed), with the seeds' spread and a
one-sided test over seeds against the ``local`` baseline (Welch's t-test; exact
Mann-Whitney where no seed differs). Torch-free (the report and the CLI use it).
"""

from __future__ import annotations

import math
import warnings
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from nlbench.vocabulary import (
    PROBE_BASELINE_BLOCK, PROBE_SIGNIFICANCE_LEVEL, STATUS_OK, VERDICT_DOES_NOT_LEARN, VERDICT_LEARNS,
    VERDICT_FAILED, VERDICT_LEARNS_SLOWLY, VERDICT_UNSTABLE,
)

#: The target and short budget of runs stored before they were recorded (the probe's
#: fixed 1500-step budget of the time, and today's target).
LEGACY_TARGET_ACCURACY = 0.85
LEGACY_SHORT_BUDGET_STEPS = 1500

VERDICT_COLUMNS: tuple[str, ...] = (
    "run", "task", "block", "options", "verdict", "n_seeds", "n_ok", "n_learned", "accuracy_mean", "accuracy_std",
    "accuracies", "steps_to_target_median", "steps_to_target_min", "steps_to_target_max", "steps_median",
    "max_steps", "target_accuracy", "short_budget_steps", "lr", "wall_s_total", "baseline_accuracy_mean",
    "p_vs_baseline", "test_vs_baseline", "better_than_baseline", "statement",
)


def held_out_accuracies(curve: Any) -> tuple[str, dict[float, float]]:
    """A stored learning curve's held-out accuracy by step, and which split it is: the
    validation accuracy, or the test accuracy for runs evaluated on the test split
    along the way (before the validation split existed)."""
    points = [p for p in curve if isinstance(p, Mapping)] if isinstance(curve, list) else []
    key = "validation_accuracy" if any(_finite(p.get("validation_accuracy")) for p in points) else "test_accuracy"
    return key, {float(p["step"]): float(p[key]) for p in points if _finite(p.get(key))}


def steps_to_target(curve: Any, target: float) -> int | None:
    """The first step of a stored learning curve whose held-out accuracy
    (:func:`held_out_accuracies`) reached ``target``."""
    _, accuracies = held_out_accuracies(curve)
    return next((int(step) for step, accuracy in sorted(accuracies.items()) if accuracy >= target - 1e-12), None)


def welch_greater(sample: Sequence[float], baseline: Sequence[float]) -> tuple[float, str] | None:
    """One-sided p that ``sample``'s mean exceeds ``baseline``'s, and the test that gave
    it: Welch's t-test over seeds; when neither side varies at all (every seed at the
    ceiling, or at the constant predictor's accuracy) Welch's t is undefined, and the
    exact one-sided Mann-Whitney test on the seeds is used (with 3 + 3 seeds its p is
    at least 0.05). Either way a level-α test rejects at p ≤ α. None with fewer than
    two values on a side."""
    from scipy import stats

    if len(sample) < 2 or len(baseline) < 2:
        return None
    if np.ptp(sample) == 0 and np.ptp(baseline) == 0:
        exact = stats.mannwhitneyu(sample, baseline, alternative="greater", method="exact")
        return float(exact.pvalue), "exact Mann-Whitney test over seeds, one-sided: no spread on either side for Welch"
    with warnings.catch_warnings():  # nearly equal seeds: scipy warns of lost precision; the p stays defined
        warnings.simplefilter("ignore", RuntimeWarning)
        p = float(stats.ttest_ind(sample, baseline, equal_var=False, alternative="greater").pvalue)
    return p, "Welch t-test over seeds, one-sided"


def probe_verdicts(probes: pd.DataFrame) -> pd.DataFrame:
    """One row per (run, task, block, options) of the probe records in ``probes``
    (``store.probe_records`` of a loaded frame): the verdict, its numbers and a
    sentence that states them (:data:`VERDICT_COLUMNS`)."""
    if probes.empty:
        return pd.DataFrame(columns=list(VERDICT_COLUMNS))
    rows = []
    for (run, task, block, options), group in probes.groupby(["run", "task", "block", "options"], sort=True,
                                                             dropna=False):
        rows.append({"run": run, "task": task, "block": block, "options": options, **_block_numbers(group)})
    frame = pd.DataFrame.from_records(rows)
    for index, row in frame.iterrows():
        baseline = frame.loc[(frame["run"] == row["run"]) & (frame["task"] == row["task"])
                             & (frame["block"] == PROBE_BASELINE_BLOCK)]
        base = list(baseline.iloc[0]["accuracies"]) if len(baseline) else []
        tested = welch_greater(list(row["accuracies"]), base) if row["block"] != PROBE_BASELINE_BLOCK else None
        frame.at[index, "baseline_accuracy_mean"] = float(np.mean(base)) if base else math.nan
        frame.at[index, "p_vs_baseline"] = math.nan if tested is None else tested[0]
        frame.at[index, "test_vs_baseline"] = "" if tested is None else tested[1]
        frame.at[index, "better_than_baseline"] = (None if tested is None
                                                   else bool(tested[0] <= PROBE_SIGNIFICANCE_LEVEL))
        frame.at[index, "statement"] = _statement(frame.loc[index], has_baseline=bool(base))
    return frame[list(VERDICT_COLUMNS)]


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _column(group: pd.DataFrame, name: str, default: Any) -> Any:
    """The first known value of a per-run setting (the same for every seed of a run)."""
    if name not in group.columns:
        return default
    values = group[name].dropna()
    return values.iloc[0] if len(values) else default


def _block_numbers(group: pd.DataFrame) -> dict[str, Any]:
    ok = group.loc[(group["status"] == STATUS_OK) & group["accuracy"].notna()]
    target = float(_column(group, "target_accuracy", LEGACY_TARGET_ACCURACY))
    short = int(_column(group, "short_budget_steps", LEGACY_SHORT_BUDGET_STEPS))
    max_steps = int(_column(group, "max_steps", _column(group, "steps", 0)))
    accuracies = tuple(float(a) for a in ok["accuracy"])
    learned = [(float(row["accuracy"]) >= target - 1e-12,
                steps_to_target(row["learning_curve"], target)) for _, row in ok.iterrows()]
    # a seed that ends above the target on the test split but was never seen there on
    # the validation split reached it by its last step
    reached = [steps if steps is not None else int(row_steps) for (is_learned, steps), row_steps
               in zip(learned, ok["steps"]) if is_learned]
    n_learned = len(reached)
    if not len(ok):
        verdict = VERDICT_FAILED
    elif n_learned == len(ok):
        verdict = VERDICT_LEARNS if float(np.median(reached)) <= short else VERDICT_LEARNS_SLOWLY
    elif n_learned == 0:
        verdict = VERDICT_DOES_NOT_LEARN
    else:
        verdict = VERDICT_UNSTABLE
    lrs = ok["lr"].dropna().unique() if "lr" in ok.columns else []
    wall = ok["wall_s"].dropna() if "wall_s" in ok.columns else pd.Series(dtype=float)
    return {
        "verdict": verdict, "n_seeds": int(len(group)), "n_ok": int(len(ok)), "n_learned": n_learned,
        "accuracy_mean": float(np.mean(accuracies)) if accuracies else math.nan,
        "accuracy_std": float(np.std(accuracies, ddof=1)) if len(accuracies) > 1 else math.nan,
        "accuracies": accuracies,
        "steps_to_target_median": float(np.median(reached)) if reached else math.nan,
        "steps_to_target_min": float(min(reached)) if reached else math.nan,
        "steps_to_target_max": float(max(reached)) if reached else math.nan,
        "steps_median": float(ok["steps"].median()) if len(ok) else math.nan,
        "max_steps": max_steps, "target_accuracy": target, "short_budget_steps": short,
        "lr": float(lrs[0]) if len(lrs) == 1 else math.nan,
        "wall_s_total": float(wall.sum()) if len(wall) else math.nan,
        "baseline_accuracy_mean": math.nan, "p_vs_baseline": math.nan, "test_vs_baseline": "",
        "better_than_baseline": None,
        "statement": "",
    }


def _percent(value: float) -> str:
    return f"{100 * value:.1f} %"


def _statement(row: pd.Series, *, has_baseline: bool) -> str:
    """The verdict in one sentence, with its numbers."""
    if row["verdict"] == VERDICT_FAILED:
        return f"{VERDICT_FAILED} ({row['n_seeds']} of {row['n_seeds']})"
    spread = f" ± {100 * row['accuracy_std']:.1f}" if math.isfinite(row["accuracy_std"]) else ""
    accuracy = f"{100 * row['accuracy_mean']:.1f}{spread} % test accuracy"
    seeds = f"{row['n_learned']} of {row['n_ok']} seeds ≥ {_percent(row['target_accuracy'])}"
    if row["n_learned"]:
        low, high = int(row["steps_to_target_min"]), int(row["steps_to_target_max"])
        over = "seeds" if row["n_learned"] == row["n_ok"] else f"the {row['n_learned']} seeds that reached it"
        steps = (f"; {_percent(row['target_accuracy'])} reached after {int(row['steps_to_target_median'])} steps "
                 f"(median over {over}" + (f", {low}–{high})" if low != high else ")"))
    else:
        steps = ""
    verdict = str(row["verdict"])
    if row["verdict"] == VERDICT_DOES_NOT_LEARN:
        verdict += f" within {row['max_steps']} steps"
    elif row["verdict"] == VERDICT_LEARNS_SLOWLY:
        verdict += f" (beyond {row['short_budget_steps']} steps)"
    text = f"{verdict}: {accuracy} ({seeds}){steps}"
    if math.isfinite(row["lr"]):
        text += f"; lr {row['lr']:g}"
    if row["block"] == PROBE_BASELINE_BLOCK:
        return text + "; the baseline"
    if not has_baseline:
        return text + f"; no '{PROBE_BASELINE_BLOCK}' baseline in this run to test against"
    p = row["p_vs_baseline"]
    base = _percent(row["baseline_accuracy_mean"])
    if not math.isfinite(p):
        return text + f"; against {PROBE_BASELINE_BLOCK} ({base}): too few seeds for a test"
    relation = "better than" if p <= PROBE_SIGNIFICANCE_LEVEL else "not shown better than"
    return (text + f"; {relation} {PROBE_BASELINE_BLOCK} ({base}): p = {p:.2g} "
            f"({row['test_vs_baseline']}, α = {PROBE_SIGNIFICANCE_LEVEL:g})")
