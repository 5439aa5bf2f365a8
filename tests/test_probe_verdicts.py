"""Probe verdicts from stored records: each verdict on hand-made seeds, steps to the
target from the stored curve, and the Welch test against the local baseline checked
against a hand computation."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from nlbench.probe_verdicts import probe_verdicts, steps_to_target, welch_greater


def record(block: str, seed: int, accuracy: float, curve: list[tuple[int, float]], **extra) -> dict:
    return {"run": "r", "task": "same_pair", "block": block, "options": "{}", "seed": seed, "status": "ok",
            "accuracy": accuracy, "steps": curve[-1][0] if curve else 100, "lr": 4e-3, "wall_s": 10.0,
            "target_accuracy": 0.85, "short_budget_steps": 1500, "max_steps": 4000,
            "learning_curve": [{"step": s, "train_loss": 0.5, "validation_accuracy": a} for s, a in curve], **extra}


def frame() -> pd.DataFrame:
    rows = []
    for seed, accuracy in enumerate((0.49, 0.50, 0.51)):
        rows.append(record("local", seed, accuracy, [(2000, 0.5), (4000, accuracy)]))
    for seed, (accuracy, at) in enumerate(((0.99, 600), (1.0, 800), (0.98, 1000))):
        rows.append(record("nl", seed, accuracy, [(200, 0.5), (at, 0.9), (at + 600, accuracy)]))
    for seed, (accuracy, at) in enumerate(((0.97, 2000), (0.99, 2400), (0.96, 1400))):
        rows.append(record("srl_fft", seed, accuracy, [(200, 0.5), (at, 0.86), (at + 600, accuracy)]))
    for seed, accuracy in enumerate((0.50, 0.99, 0.51)):
        rows.append(record("snl", seed, accuracy, [(400, 0.5), (1200, accuracy)]))
    for seed, accuracy in enumerate((0.50, 0.505, 0.49)):
        rows.append(record("cgnl", seed, accuracy, [(2000, 0.5), (4000, accuracy)]))
    rows.append({**record("rcca", 0, 0.5, [(100, 0.5)]), "status": "error", "accuracy": None})
    return pd.DataFrame(rows)


def test_each_verdict_and_its_numbers() -> None:
    verdicts = probe_verdicts(frame()).set_index("block")
    assert verdicts.loc["nl", "verdict"] == "learns"
    assert verdicts.loc["nl", "steps_to_target_median"] == 800 and verdicts.loc["nl", "n_learned"] == 3
    assert verdicts.loc["srl_fft", "verdict"] == "learns slowly", "median 2000 steps > the 1500-step short budget"
    assert verdicts.loc["snl", "verdict"] == "learns in some seeds" and verdicts.loc["snl", "n_learned"] == 1
    assert verdicts.loc["cgnl", "verdict"] == "does not learn"
    assert verdicts.loc["rcca", "verdict"] == "every seed failed" and verdicts.loc["rcca", "n_ok"] == 0
    assert verdicts.loc["nl", "accuracy_mean"] == pytest.approx(0.99)
    assert verdicts.loc["nl", "wall_s_total"] == 30.0
    statement = verdicts.loc["nl", "statement"]
    assert statement.startswith("learns: 99.0 ± 1.0 % test accuracy (3 of 3 seeds ≥ 85.0 %)")
    assert "reached after 800 steps (median over seeds, 600–1000)" in statement
    assert "(median over the 1 seeds that reached it)" in verdicts.loc["snl", "statement"]
    assert "better than local (50.0 %)" in statement
    assert verdicts.loc["cgnl", "statement"].startswith("does not learn within 4000 steps")
    assert "not shown better than local" in verdicts.loc["cgnl", "statement"]
    assert verdicts.loc["srl_fft", "statement"].startswith("learns slowly (beyond 1500 steps)")
    assert verdicts.loc["local", "statement"].endswith("the baseline")
    assert verdicts.loc["rcca", "statement"] == "every seed failed (1 of 1)"


def test_welch_p_matches_a_hand_computation() -> None:
    a, b = [0.99, 1.0, 0.98], [0.49, 0.50, 0.51]
    # means 0.99 and 0.50, both variances 1e-4: t = 0.49 / sqrt(2e-4 / 3) = 60.01, df = 4
    from scipy import stats

    t = 0.49 / math.sqrt(2e-4 / 3)
    p, test = welch_greater(a, b)
    assert p == pytest.approx(stats.t.sf(t, 4), rel=1e-6) and test.startswith("Welch")
    assert welch_greater([0.5], b) is None
    # no spread on either side: the exact rank test; 3 seeds above 3 seeds is 1 of C(6, 3) = 20 orders
    p, test = welch_greater([1.0, 1.0, 1.0], [0.5, 0.5, 0.5])
    assert p == pytest.approx(1 / 20) and "Mann-Whitney" in test
    assert welch_greater([0.5, 0.5], [0.5, 0.5])[0] > 0.5
    verdicts = probe_verdicts(frame()).set_index("block")
    assert verdicts.loc["nl", "p_vs_baseline"] == pytest.approx(stats.t.sf(t, 4), rel=1e-6)


def test_steps_to_target_reads_the_validation_curve_or_the_old_test_curve() -> None:
    curve = [{"step": 250, "test_accuracy": 0.6}, {"step": 500, "test_accuracy": 0.9}]
    assert steps_to_target(curve, 0.85) == 500
    curve = [{"step": 200, "validation_accuracy": 0.86, "test_accuracy": None},
             {"step": 400, "validation_accuracy": 0.9, "test_accuracy": 0.2}]
    assert steps_to_target(curve, 0.85) == 200
    assert steps_to_target(curve, 0.95) is None and steps_to_target(None, 0.85) is None


def test_no_baseline_is_said_and_a_legacy_run_gets_the_old_budget() -> None:
    rows = [{k: v for k, v in record("nl", s, 0.9, [(250, 0.9)]).items()
             if k not in ("target_accuracy", "short_budget_steps", "max_steps")} for s in (0, 1)]
    verdicts = probe_verdicts(pd.DataFrame(rows))
    assert verdicts.iloc[0]["verdict"] == "learns" and verdicts.iloc[0]["target_accuracy"] == 0.85
    assert "no 'local' baseline in this run" in verdicts.iloc[0]["statement"]
    assert probe_verdicts(pd.DataFrame()).empty
