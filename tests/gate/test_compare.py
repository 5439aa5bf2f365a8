"""The gate's decision on hand-made sides: every verdict, the exit code, the correction."""

from __future__ import annotations

import pytest

from nlbench.gate.compare import NothingComparable, compare_sides, machine_warnings
from nlbench.gate.model import CaseResult, Side, Timing
from nlbench.vocabulary import (
    GATE_COST_ALLOWED, GATE_COST_CHANGED, GATE_COST_SAME, GATE_FAILED, GATE_IMPROVEMENT, GATE_INCONCLUSIVE,
    GATE_MISSING, GATE_NEW, GATE_PASS, GATE_REGRESSION, TIER_COST, TIER_TIME, GateSettings,
)

from tests.gate.gate_runs import samples


def case(key: str, *, ms: float = 2.0, params: float = 100.0, status: str = "ok", warnings: tuple[str, ...] = (),
         n: int = 30, seed: int = 0, spread: float = 0.01) -> CaseResult:
    values = tuple(samples(ms, n, spread, seed))
    timing = Timing(values, sorted(values)[n // 2], warnings)
    return CaseResult(key, f"{key} C16 16x16", key.split("-")[0], status, None if status == "ok" else "boom",
                      {"params": params, "macs": 10.0 * params}, {"latency_fwd_ms": timing} if status == "ok" else {})


def side(*cases: CaseResult, session: str | None = "s", host: str = "h") -> Side:
    return Side("side", "run", {"host": host, "threads": 1, "gate_session": session}, {c.key: c for c in cases})


def verdicts(result, tier=None):
    return {(c.key, c.quantity): c.verdict for c in result.comparisons if tier is None or c.tier == tier}


def test_a_and_a_passes_with_exit_0():
    result = compare_sides(side(case("nl"), case("a2", seed=5)), side(case("nl", seed=1), case("a2", seed=6)))
    assert result.exit_code == 0 and not result.failures
    assert set(verdicts(result, TIER_TIME).values()) == {GATE_PASS}
    assert set(verdicts(result, TIER_COST).values()) == {GATE_COST_SAME}
    assert result.warnings == ()  # same machine, same session


def test_a_significant_slowdown_beyond_the_threshold_is_a_regression_naming_the_case():
    result = compare_sides(side(case("nl"), case("a2")), side(case("nl", ms=2.5, seed=1), case("a2", seed=1)))
    assert verdicts(result, TIER_TIME)[("nl", "latency_fwd_ms")] == GATE_REGRESSION
    assert verdicts(result, TIER_TIME)[("a2", "latency_fwd_ms")] == GATE_PASS
    assert result.exit_code == 1
    row = result.failures[0]
    assert row.label.startswith("nl") and row.ratio == pytest.approx(1.25, rel=0.02)
    assert row.ci_low < 1.25 < row.ci_high and row.p_adjusted < 0.01


def test_a_significant_slowdown_below_the_threshold_passes():
    result = compare_sides(side(case("nl", spread=0.002)), side(case("nl", ms=2.1, seed=1, spread=0.002)))
    row = next(c for c in result.comparisons if c.tier == TIER_TIME)
    assert row.p_adjusted < 1e-6 and row.ratio == pytest.approx(1.05, rel=0.01)
    assert row.verdict == GATE_PASS
    lowered = compare_sides(side(case("nl", spread=0.002)), side(case("nl", ms=2.1, seed=1, spread=0.002)),
                            GateSettings(threshold=0.02))
    assert verdicts(lowered, TIER_TIME)[("nl", "latency_fwd_ms")] == GATE_REGRESSION


def test_large_but_insignificant_difference_is_inconclusive_not_a_regression():
    # 3 samples a side cannot reach p < 0.01 (the smallest one-sided p is 1/20)
    result = compare_sides(side(case("nl", n=3)), side(case("nl", ms=3.0, n=3, seed=1)))
    row = next(c for c in result.comparisons if c.tier == TIER_TIME)
    assert row.verdict == GATE_INCONCLUSIVE and "not ruled out" in row.reason
    assert result.exit_code == 0


def test_correction_for_many_comparisons():
    # 5 v 5 completely separated: exact one-sided p = 1/C(10, 5) = 1/252 ≈ 0.004 < α = 0.01 alone …
    slow_base, slow_cand = case("nl", n=5), case("nl", ms=3.0, n=5, seed=1)
    alone = compare_sides(side(slow_base), side(slow_cand))
    row = next(c for c in alone.comparisons if c.tier == TIER_TIME)
    assert row.p_value == pytest.approx(1 / 252) and row.verdict == GATE_REGRESSION
    # … but among 11 comparisons Holm multiplies it by 11: 0.044 > α, not a regression
    others_b = [case(f"b{i}", seed=i) for i in range(10)]
    others_c = [case(f"b{i}", seed=100 + i) for i in range(10)]
    many = compare_sides(side(slow_base, *others_b), side(slow_cand, *others_c))
    row = next(c for c in many.comparisons if c.tier == TIER_TIME and c.key == "nl")
    assert row.p_adjusted == pytest.approx(11 / 252) and row.verdict == GATE_INCONCLUSIVE


def test_improvement_is_reported_and_passes():
    result = compare_sides(side(case("nl")), side(case("nl", ms=1.0, seed=1)))
    assert verdicts(result, TIER_TIME)[("nl", "latency_fwd_ms")] == GATE_IMPROVEMENT
    assert result.exit_code == 0


def test_contended_samples_are_inconclusive_never_passed_or_failed():
    result = compare_sides(side(case("nl", warnings=("contended",))), side(case("nl", ms=4.0, seed=1)))
    row = next(c for c in result.comparisons if c.tier == TIER_TIME)
    assert row.verdict == GATE_INCONCLUSIVE and "contended (baseline)" in row.reason
    assert row.ratio == pytest.approx(2.0, rel=0.02)  # the estimate is still reported
    assert result.exit_code == 0
    strict = compare_sides(side(case("nl", warnings=("contended",))), side(case("nl", seed=1)), strict=True)
    assert strict.exit_code == 1


def test_noisy_samples_are_judged_on_their_spread_and_said_to_be_noisy():
    wide = compare_sides(side(case("nl", spread=0.3, warnings=("noisy",))),
                         side(case("nl", spread=0.3, seed=1, warnings=("noisy",))))
    row = next(c for c in wide.comparisons if c.tier == TIER_TIME)
    assert row.verdict == GATE_INCONCLUSIVE and "noisy" in row.reason and row.ci_high > 1.1
    clear = compare_sides(side(case("nl", spread=0.01, warnings=("noisy",))), side(case("nl", ms=3.0, seed=1)))
    assert verdicts(clear, TIER_TIME)[("nl", "latency_fwd_ms")] == GATE_REGRESSION


def rounds_case(key: str, levels: list[float], *, per_round: int = 3, slowdown: float = 1.0, seed: int = 0) -> CaseResult:
    """A case sampled in rounds whose levels differ (fresh instances), tight within a round."""
    values, labels = [], []
    for r, level in enumerate(levels):
        values += samples(level * slowdown, per_round, 0.005, seed + r)
        labels += [r] * per_round
    timing = Timing(tuple(values), sorted(values)[len(values) // 2], (), tuple(labels))
    return CaseResult(key, key, key, "ok", None, {}, {"latency_fwd_ms": timing})


LEVELS = [8.7, 12.7, 8.6, 12.9, 8.8, 8.6, 12.8, 8.7, 12.6, 8.9, 8.7, 12.7]  # rcca's two levels, measured


def test_paired_rounds_see_through_levels_that_both_sides_share():
    base, cand = rounds_case("rcca", LEVELS), rounds_case("rcca", LEVELS, slowdown=1.15, seed=50)
    paired = compare_sides(side(base), side(cand))
    row = next(c for c in paired.comparisons if c.tier == TIER_TIME)
    assert row.unit == "paired rounds" and row.n_baseline == len(LEVELS)
    assert row.verdict == GATE_REGRESSION and row.ratio == pytest.approx(1.15, rel=0.01)
    # the same numbers from two unrelated runs: rounds unpaired, the levels swamp 15 %
    unpaired = compare_sides(side(base, session=None), side(cand, session=None))
    row = next(c for c in unpaired.comparisons if c.tier == TIER_TIME)
    assert row.unit == "rounds" and row.verdict == GATE_INCONCLUSIVE


def test_samples_of_one_round_are_not_independent_replicates():
    # every sample of a round repeats its level: 36 samples, but only 12 replicates
    base, cand = rounds_case("x", LEVELS, per_round=3), rounds_case("x", LEVELS, per_round=3, seed=9)
    row = next(c for c in compare_sides(side(base), side(cand)).comparisons if c.tier == TIER_TIME)
    assert (row.n_baseline, row.n_candidate) == (12, 12) and row.verdict == GATE_PASS


def test_cost_change_fails_unless_allowed():
    base, cand = side(case("nl")), side(case("nl", params=101.0, seed=1))
    result = compare_sides(base, cand)
    assert verdicts(result, TIER_COST)[("nl", "params")] == GATE_COST_CHANGED
    assert verdicts(result, TIER_COST)[("nl", "macs")] == GATE_COST_CHANGED
    assert "100 → 101 (+1.00%)" in next(c.reason for c in result.comparisons if c.quantity == "params")
    assert result.exit_code == 1
    allowed = compare_sides(base, cand, allow_cost_change=True)
    assert verdicts(allowed, TIER_COST)[("nl", "params")] == GATE_COST_ALLOWED and allowed.exit_code == 0
    cost_only = compare_sides(base, cand, tiers=("cost",))
    assert not [c for c in cost_only.comparisons if c.tier == TIER_TIME] and cost_only.warnings == ()


def test_missing_failed_new_and_both_failed_cases():
    base = side(case("gone"), case("broke"), case("bothbad", status="oom"), case("fixed", status="error"))
    cand = side(case("broke", status="timeout"), case("bothbad", status="oom"), case("fixed"), case("added"))
    result = compare_sides(base, cand)
    got = {c.key: c.verdict for c in result.comparisons if c.tier == "case"}
    assert got == {"gone": GATE_MISSING, "broke": GATE_FAILED, "bothbad": GATE_INCONCLUSIVE,
                   "fixed": GATE_NEW, "added": GATE_NEW}
    assert result.exit_code == 1
    assert "timeout" in next(c.reason for c in result.comparisons if c.key == "broke")


def test_nothing_in_common_is_an_error():
    with pytest.raises(NothingComparable, match="no case in common"):
        compare_sides(side(case("a")), side(case("b")))


def test_machine_warnings_name_the_difference_and_the_missing_interleaving():
    found = machine_warnings(side(case("a"), host="ci-1"), side(case("a"), host="ci-2"))
    assert any("host: ci-1 (baseline) vs ci-2 (candidate)" in w for w in found)
    found = machine_warnings(side(case("a"), session=None), side(case("a"), session=None))
    assert any("different times" in w for w in found)


def test_settings_are_validated():
    from nlbench.vocabulary import SettingsError

    for bad in ({"threshold": -0.1}, {"alpha": 0.0}, {"alpha": 1.5}, {"confidence": 1.0}, {"threshold": "x"}):
        with pytest.raises(SettingsError):
            GateSettings(**bad)


def test_a_cost_recorded_on_one_side_only_is_a_warning_not_a_silent_skip():
    """A baseline from store schema 1 has no multiply-add MACs: say so, compare the rest."""
    from dataclasses import replace

    old = case("nl-1")
    old = replace(old, costs={"params": old.costs["params"]})  # schema 1: macs load as null
    result = compare_sides(side(old), side(case("nl-1")), tiers=("cost",))
    assert verdicts(result, "cost") == {("nl-1", "params"): GATE_COST_SAME}
    assert len(result.warnings) == 1
    assert "macs not compared for 1 case(s): not recorded in the baseline" in result.warnings[0]


def test_a_side_timed_on_several_machines_is_warned_about():
    from dataclasses import replace

    from nlbench.gate.model import MEASURED_ON_HOSTS

    cluster = side(case("nl-1"))
    cluster = replace(cluster, machine={**cluster.machine, MEASURED_ON_HOSTS: ("node-a", "node-b")})
    result = compare_sides(cluster, side(case("nl-1")))
    assert any("timed on 2 machines (node-a, node-b)" in w for w in result.warnings)
