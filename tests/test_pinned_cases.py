"""Behaviour pinned across refactors: the smoke and paper-table suites keep the same
case ids, parameter counts and FLOPs as before the vocabulary rework
(``tests/data/pinned_cases.json``, computed by the code before it; its FLOPs were
checked unchanged, to the FLOP, when MACs became multiply-adds only in store schema 2,
and its MACs re-pinned then)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from nlbench.measure.flops import count_flops
from nlbench.measure.params import count_params
from nlbench.suite import load_suite

PINNED = json.loads((Path(__file__).parent / "data" / "pinned_cases.json").read_text())


@pytest.mark.parametrize("suite_name", ["smoke", "paper-srl-table3"])
def test_case_ids_params_and_macs_are_unchanged(suite_name: str) -> None:
    expected = {case_id: row for case_id, row in PINNED.items() if row["suite"] == suite_name}
    cases = load_suite(suite_name).cases()
    assert {c.case_id for c in cases} == set(expected)
    for case in cases:
        torch.manual_seed(0)
        module = case.build().eval()
        row = expected[case.case_id]
        assert case.label == row["label"]
        assert count_params(module).trainable == row["params"], case.label
        count = count_flops(module, (case.make_input(seed=0),))
        assert (count.macs, count.flops) == (row["macs"], row["flops"]), case.label
