"""Tests of nlbench.counter_gaps: where fvcore and ptflops differ from our counter, by
operator class — on hand-made frames, and on real counts for the three blocks whose
gaps the counters are known for (every number below is computed from the shapes)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import torch

from nlbench import store
from nlbench.blocks import create_block
from nlbench.counter_gaps import COUNTER_GAP_COLUMNS, counter_class_gaps
from nlbench.measure.external_counters import count_with_public_counters
from nlbench.measure.flops import count_flops


def _record(case_id: str = "b-1", *, cost: dict[str, dict[str, int]] | None = None, **extra: Any) -> dict[str, Any]:
    return {"kind": "sweep", "case_id": case_id, "run": "r", "block": "b", "options": {}, "channels": 4,
            "height": 8, "width": 8, "frames": None, "batch": 1, "device": "cpu", "dtype": "float32",
            "status": "ok", "macs": 150, "flops": 400,
            "cost_by_class": cost if cost is not None else {
                "conv": {"macs": 100, "flops": 210}, "matmul": {"macs": 50, "flops": 100},
                "norm": {"macs": 0, "flops": 60}, "elementwise": {"macs": 0, "flops": 30}},
            **extra}


def _row(gaps: pd.DataFrame, op_class: str, case_id: str = "b-1") -> pd.Series:
    rows = gaps.loc[(gaps["op_class"] == op_class) & (gaps["case_id"] == case_id)]
    assert len(rows) == 1, f"expected one {op_class} row, got {len(rows)}"
    return rows.iloc[0]


# --------------------------------------------------------------------------- hand-made frames


def test_one_row_per_class_where_a_counter_differs() -> None:
    frame = pd.DataFrame([_record(fvcore_macs_by_class={"conv": 100, "matmul": 25, "norm": 60},
                                  ptflops_macs_by_class={"conv": 110, "matmul": 50, "elementwise": 15})])
    gaps = counter_class_gaps(frame)
    assert list(gaps.columns) == list(COUNTER_GAP_COLUMNS)
    assert list(gaps["op_class"]) == ["conv", "matmul", "elementwise", "norm"]  # OP_CLASSES order
    conv = _row(gaps, "conv")
    assert conv["fvcore_diff"] == 0 and conv["ptflops_diff"] == 10 and conv["ptflops_rel"] == pytest.approx(0.1)
    matmul = _row(gaps, "matmul")
    assert (matmul["ours"], matmul["ours_unit"], matmul["fvcore_rel"], matmul["ptflops_rel"]) == (50, "MACs", -0.5, 0)
    # a FLOP-only class: we count no MACs there, so the tool's count is compared with our FLOPs
    norm = _row(gaps, "norm")
    assert (norm["ours_macs"], norm["ours_flops"], norm["ours"], norm["ours_unit"]) == (0, 60, 60, "FLOPs")
    assert (norm["fvcore_diff"], norm["fvcore_rel"], norm["ptflops_macs"], norm["ptflops_rel"]) == (60, 0, 0, -1)
    elementwise = _row(gaps, "elementwise")
    assert elementwise["ptflops_rel"] == pytest.approx(15 / 30 - 1) and elementwise["fvcore_macs"] == 0
    # the diffs of a case add up to the gap between the tool's total and ours
    assert gaps["fvcore_diff"].sum() == (100 + 25 + 60) - 150
    assert gaps["ptflops_diff"].sum() == (110 + 50 + 15) - 150


def test_cases_without_by_class_records_give_no_rows() -> None:
    agreeing = _record("agree", fvcore_macs_by_class={"conv": 100, "matmul": 50},
                       ptflops_macs_by_class=json.dumps({"conv": 100, "matmul": 50}))  # JSON text is read too
    older = _record("older", fvcore_macs=75)  # totals only: a run from before the by-class columns
    uncounted = _record("uncounted", fvcore_macs_by_class={"conv": 1})
    uncounted.pop("cost_by_class")  # our counter did not attribute it
    failed = _record("failed", status="oom", fvcore_macs_by_class={"conv": 1})
    assert counter_class_gaps(pd.DataFrame([agreeing, older, uncounted, failed])).empty
    empty = counter_class_gaps(pd.DataFrame([_record("older", fvcore_macs=75)]))  # no by-class column at all
    assert empty.empty and list(empty.columns) == list(COUNTER_GAP_COLUMNS)


def test_a_counter_without_a_split_is_unknown_not_zero() -> None:
    frame = pd.DataFrame([_record(fvcore_macs_by_class={"conv": 100, "matmul": 40}, ptflops_macs_by_class=None)])
    gaps = counter_class_gaps(frame)
    assert list(gaps["op_class"]) == ["matmul"]
    row = _row(gaps, "matmul")
    assert row["fvcore_diff"] == -10 and math.isnan(row["ptflops_macs"]) and math.isnan(row["ptflops_rel"])


def test_a_tool_counting_macs_where_we_count_none_has_no_relative_difference() -> None:
    frame = pd.DataFrame([_record(cost={"conv": {"macs": 100, "flops": 200}},
                                  fvcore_macs_by_class={"conv": 100, "fft": 7},
                                  ptflops_macs_by_class={"conv": 100, "softmax": 3})])
    gaps = counter_class_gaps(frame)
    assert list(gaps["op_class"]) == ["fft", "softmax"]
    assert _row(gaps, "fft")["fvcore_diff"] == 7 and math.isnan(_row(gaps, "fft")["fvcore_rel"])
    assert _row(gaps, "softmax")["ptflops_diff"] == 3 and math.isnan(_row(gaps, "softmax")["ptflops_rel"])


# --------------------------------------------------------------------------- real counts


def _loaded(tmp_path: Path, name: str, block: torch.nn.Module, x: torch.Tensor) -> pd.DataFrame:
    """A one-case run of ``block`` on ``x`` — our counts and both counters' — written
    and loaded through the store, as a sweep would."""
    b, c, h, w = x.shape
    record = {"kind": "sweep", "case_id": f"{name}-1", "block": name, "options": {}, "channels": c, "height": h,
              "width": w, "frames": None, "batch": b, "device": "cpu", "dtype": "float32", "status": "ok",
              **count_flops(block, (x,)).columns(), **count_with_public_counters(block, (x,)).columns()}
    run = tmp_path / name
    store.write_manifest(run, {"run_id": name, "suite": "test"})
    store.append_record(run, record)
    return store.load(run)


def test_srl_lo_matmul_of_a_2d_matrix_with_a_batched_input_is_undercounted_by_both(tmp_path: Path) -> None:
    b, c, h, w = 2, 4, 6, 10
    torch.manual_seed(0)
    block = create_block("srl_lo", c, spatial_size=(h, w)).eval()
    gaps = counter_class_gaps(_loaded(tmp_path, "srl_lo", block, torch.randn(b, c, h, w)))
    assert list(gaps["op_class"]) == ["conv", "matmul", "norm"]
    matmul = _row(gaps, "matmul", "srl_lo-1")
    # ours: P·X and Pᵀ·Z (P H×H on every batch item and channel), X·Q and Z·Qᵀ (Q W×W)
    ours = 2 * b * c * h * h * w + 2 * b * c * h * w * w
    # the tools: P's size times X's last dimension for P·X (H·H·W, as if B·C were 1); X·Q counted right
    theirs = 2 * h * h * w + 2 * b * c * h * w * w
    assert matmul["ours_macs"] == ours
    assert matmul["fvcore_macs"] == theirs and matmul["ptflops_macs"] == theirs
    assert matmul["fvcore_rel"] == pytest.approx(theirs / ours - 1)  # −32.8 % at this shape
    conv_macs = b * h * w * c * (c // 2)  # φ's grouped 1×1 conv (2 groups)
    conv = _row(gaps, "conv", "srl_lo-1")
    assert (conv["ours_macs"], conv["fvcore_diff"], conv["ptflops_diff"]) == (conv_macs, 0, b * c * h * w)  # bias
    norm = _row(gaps, "norm", "srl_lo-1")  # BatchNorm in eval: scale and shift, 2 per element in all three
    assert norm["ours_flops"] == norm["fvcore_macs"] == norm["ptflops_macs"] == 2 * b * c * h * w


class CrissCrossEinsums(torch.nn.Module):
    """rcca's criss-cross attention in the einsum form it had before it moved to bmm:
    column and row energies of a two-channel q with itself, one softmax, and v (all of
    x) aggregated along the column and the row. (With one q channel torch would run
    the energies as broadcast multiplies, not products.)"""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, v, h = x[:, :2], x, x.shape[2]
        col = torch.einsum("bchw,bcgw->bhwg", q, q)
        row = torch.einsum("bchw,bchv->bhwv", q, q)
        att = torch.softmax(torch.cat([col, row], dim=-1), dim=-1)
        return torch.einsum("bcgw,bhwg->bchw", v, att[..., :h]) + torch.einsum("bchv,bhwv->bchw", v, att[..., h:])


def test_rcca_einsums_are_missed_by_ptflops(tmp_path: Path) -> None:
    b, c, h, w = 2, 3, 6, 10
    gaps = counter_class_gaps(_loaded(tmp_path, "rcca_einsum", CrissCrossEinsums(), torch.randn(b, c, h, w)))
    assert list(gaps["op_class"]) == ["matmul"]  # softmax: torch.softmax is counted by neither (F.softmax is)
    matmul = _row(gaps, "matmul", "rcca_einsum-1")
    ours = b * h * w * (h + w) * (2 + c)  # energies over the column and the row (2 channels), then v's c channels
    assert matmul["ours_macs"] == ours
    assert matmul["ptflops_macs"] == 0 and matmul["ptflops_rel"] == -1  # einsum is not patched
    assert matmul["fvcore_diff"] == 0  # fvcore's einsum handle (exact at this size)


def test_rcca_bmm_is_counted_by_both_and_ptflops_adds_bias_and_activations(tmp_path: Path) -> None:
    b, c, h, w = 2, 32, 6, 10
    inner, qk, recurrence = c // 4, max(1, (c // 4) // 8), 2
    torch.manual_seed(0)
    block = create_block("rcca", c).eval()
    frame = _loaded(tmp_path, "rcca", block, torch.randn(b, c, h, w))
    gaps = counter_class_gaps(frame)
    # per recurrence: energies q·k over the column (H) and the row (W), then v aggregated the same way
    matmul = recurrence * b * h * w * (h + w) * (qk + inner)
    case = frame.iloc[0]
    assert case["macs_matmul"] == matmul
    assert case["fvcore_macs_by_class"]["matmul"] == case["ptflops_macs_by_class"]["matmul"] == matmul
    assert list(gaps["op_class"]) == ["conv", "elementwise", "norm"]  # no matmul row: torch.bmm is patched
    conv = _row(gaps, "conv", "rcca-1")
    assert conv["fvcore_diff"] == 0 and conv["ptflops_diff"] == recurrence * b * h * w * (2 * qk + inner)  # bias
    elementwise = _row(gaps, "elementwise", "rcca-1")  # the two LeakyReLU modules; fvcore has no handle
    assert elementwise["ptflops_macs"] == b * h * w * (inner + c) and elementwise["fvcore_macs"] == 0


def test_srl_fft_ffts_are_skipped_by_both(tmp_path: Path) -> None:
    b, c, h, w = 2, 4, 8, 8
    torch.manual_seed(0)
    block = create_block("srl_fft", c, spatial_size=(h, w)).eval()
    gaps = counter_class_gaps(_loaded(tmp_path, "srl_fft", block, torch.randn(b, c, h, w)))
    assert list(gaps["op_class"]) == ["conv", "fft", "norm"]
    fft = _row(gaps, "fft", "srl_fft-1")
    n = h * w  # rfft2 and irfft2, each n·log2(n) MACs per (batch, channel) slice
    assert fft["ours_macs"] == 2 * b * c * n * math.log2(n)
    assert fft["fvcore_macs"] == fft["ptflops_macs"] == 0 and fft["fvcore_rel"] == fft["ptflops_rel"] == -1
    spectral = b * 2 * c * h * (w // 2 + 1)  # the 2C-channel half spectrum
    conv = _row(gaps, "conv", "srl_fft-1")  # φ's 1×1 conv with as many groups as channels
    assert (conv["ours_macs"], conv["fvcore_diff"], conv["ptflops_diff"]) == (spectral, 0, spectral)
