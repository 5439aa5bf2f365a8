"""The results store: round trips, null-not-zero, cut lines, last record wins."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from nlbench import store
from nlbench.case import Case


@pytest.fixture()
def run(tmp_path: Path) -> Path:
    """An empty run directory with its manifest."""
    store.write_manifest(tmp_path, {"suite": "t"})
    return tmp_path


def make_record(case: Case, **fields) -> dict:
    return {"kind": "sweep", "case_id": case.case_id, **case.to_dict(), "status": "ok", "error": None, **fields}


def test_round_trip_keeps_values_and_public_columns(tmp_path: Path) -> None:
    store.write_manifest(tmp_path, {"suite": "t"})
    case = Case("nl", 8, 4, 6, options=Case.normalise_options({"mode": "dot_product"}))
    store.append_record(tmp_path, make_record(case, macs=123, latency_fwd_ms_samples=[1.0, 2.0],
                                              uncounted_ops=["aten.foo"]))
    df = store.load(tmp_path)
    assert list(df["block"]) == ["nl"]
    row = df.iloc[0]
    assert row["macs"] == 123 and row["height"] == 4 and row["width"] == 6
    assert json.loads(row["options"]) == {"mode": "dot_product"}
    assert row["latency_fwd_ms_samples"] == [1.0, 2.0]
    assert row["uncounted_ops"] == ["aten.foo"]
    for column in (*store.PUBLIC_COLUMNS, *store.DERIVED_COLUMNS):
        assert column in df.columns
    assert row["positions"] == 24 and row["kind"] == "sweep" and pd.isna(row["frames"])
    assert pd.isna(row["peak_mem_fwd_bytes"]), "a measurement not taken is null, never zero"
    assert store.read_manifest(tmp_path)["schema_version"] == store.SCHEMA_VERSION


def test_nan_is_stored_as_null(run: Path) -> None:
    case = Case("nl", 8, 4, 4)
    store.append_record(run, make_record(case, latency_fwd_ms_median=float("nan")))
    line = (run / store.RESULTS_FILE).read_text()
    assert "NaN" not in line and '"latency_fwd_ms_median": null' in line


def test_cut_line_is_ignored_then_trimmed(run: Path) -> None:
    first, second = Case("nl", 8, 4, 4), Case("nl", 8, 8, 8)
    store.append_record(run, make_record(first))
    with (run / store.RESULTS_FILE).open("a") as handle:
        handle.write('{"case_id": "cut-short", "block": "n')  # a kill mid-write
    assert store.finished_case_ids(run) == {first.case_id}
    store.append_record(run, make_record(second))
    lines = (run / store.RESULTS_FILE).read_text().splitlines()
    assert len(lines) == 2 and all(json.loads(line) for line in lines)


def test_a_duplicated_case_is_reported_and_the_last_record_wins(run: Path) -> None:
    case = Case("nl", 8, 4, 4)
    store.append_record(run, make_record(case, status="error", error="boom"))
    store.append_record(run, make_record(case, macs=5))
    with pytest.warns(store.StoreWarning, match=r"1 case\(s\) recorded more than once.*×2"):
        df = store.load(run)
    assert len(df) == 1 and df.iloc[0]["status"] == "ok" and df.iloc[0]["macs"] == 5


def test_case_identity_is_stable_and_option_order_free() -> None:
    a = Case("nl", 8, 4, 4, options=Case.normalise_options({"mode": "gaussian", "sub_sample": True}))
    b = Case("nl", 8, 4, 4, options=Case.normalise_options({"sub_sample": True, "mode": "gaussian"}))
    assert a.case_id == b.case_id and a == b
    assert Case.from_dict(a.to_dict()) == a
    assert a.case_id != Case("nl", 8, 4, 5).case_id


def test_load_several_runs(tmp_path: Path) -> None:
    for name in ("run-a", "run-b"):
        store.write_manifest(tmp_path / name, {"suite": name})
        store.append_record(tmp_path / name, make_record(Case("nl", 8, 4, 4)))
    df = store.load([tmp_path / "run-a", tmp_path / "run-b"])
    assert sorted(df["run"]) == ["run-a", "run-b"]


def test_uncounted_ops_is_null_when_flops_were_not_counted(run: Path) -> None:
    """An empty list means "everything was counted"; a case never counted must not say so."""
    store.append_record(run, make_record(Case("nl", 8, 4, 4), params=10))
    store.append_record(run, make_record(Case("nl", 8, 8, 8), macs=5, uncounted_ops=[]))
    df = store.load(run).set_index("height")
    assert df.loc[4, "uncounted_ops"] is None
    assert df.loc[8, "uncounted_ops"] == []


def test_class_costs_become_flat_columns(run: Path) -> None:
    counted, uncounted = Case("nl", 8, 4, 4), Case("nl", 8, 8, 8)
    store.append_record(run, make_record(counted, macs=10, flops=27, cost_by_class={
        "conv": {"macs": 4, "flops": 9}, "matmul": {"macs": 6, "flops": 12}, "softmax": {"macs": 0, "flops": 6}}))
    store.append_record(run, make_record(uncounted))
    df = store.load(run).set_index("height")
    assert df.loc[4, "macs_conv"] == 4 and df.loc[4, "macs_matmul"] == 6 and df.loc[4, "macs_fft"] == 0
    assert df.loc[4, "flops_softmax"] == 6 and df.loc[4, "flops_norm"] == 0
    assert sum(df.loc[4, c] for c in df.columns if c.startswith("flops_")) == 27
    assert pd.isna(df.loc[8, "macs_conv"]) and pd.isna(df.loc[8, "flops_other"]), "not counted: null, not zero"


def test_a_schema_1_run_loads_with_its_macs_null_and_kept_aside(tmp_path: Path) -> None:
    """Schema 1 stored FLOPs / 2 as 'macs': they must not pass for multiply-adds."""
    store.write_manifest(tmp_path, {"suite": "t"})
    manifest = json.loads((tmp_path / store.MANIFEST_FILE).read_text())
    (tmp_path / store.MANIFEST_FILE).write_text(json.dumps({**manifest, "schema_version": 1}))
    store.append_record(tmp_path, make_record(Case("nl", 8, 4, 4), macs=60, flops=120))
    with pytest.warns(store.StoreWarning, match="schema 1.*FLOPs / 2"):
        df = store.load(tmp_path)
    row = df.iloc[0]
    assert pd.isna(row["macs"]) and row["flops"] == 120 and row["legacy_macs_flops_half"] == 60


def test_a_malformed_class_cost_is_not_a_record(run: Path) -> None:
    case = Case("nl", 8, 4, 4)
    with (run / store.RESULTS_FILE).open("w") as handle:
        handle.write(json.dumps(make_record(case, cost_by_class={"conv": 5})) + "\n")
        handle.write(json.dumps(make_record(Case("nl", 8, 6, 6))) + "\n")
    with pytest.warns(store.StoreWarning, match="line 1"):
        df = store.load(run)
    assert list(df["height"]) == [6]
