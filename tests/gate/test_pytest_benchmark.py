"""pytest-benchmark JSON files as gate sides: the reader, the comparison of two such
sides, and the benchmark file that writes them (benchmarks/test_blocks_benchmark.py)."""

from __future__ import annotations

import copy
import json
import math
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import pytest

from nlbench.case import Case
from nlbench.gate.compare import compare_sides
from nlbench.gate.inputs import KIND_PYTEST_BENCHMARK, MACHINE_FIELDS, read_side
from nlbench.gate.pytest_benchmark import NO_RAW_SAMPLES_HINT, WARNING_NO_RAW_SAMPLES, side_from_pytest_benchmark
from nlbench.store import StoreError
from nlbench.vocabulary import GATE_INCONCLUSIVE, GATE_PASS, GATE_REGRESSION, STATUS_OK, WARNING_FEW_SAMPLES

REPO = Path(__file__).resolve().parents[2]
BENCH_FILE = "benchmarks/test_blocks_benchmark.py"
CASE = Case("nl", 32, 8, 8)
OTHER = Case("identity", 16, 4, 6, options=())


def _stats(data: list[float], *, save_data: bool = True) -> dict[str, Any]:
    """pytest-benchmark's stats of per-round seconds (``data`` only when saved)."""
    q1, _, q3 = statistics.quantiles(data, n=4) if len(data) > 1 else (data[0], 0, data[0])
    stats = {"min": min(data), "max": max(data), "mean": statistics.mean(data),
             "stddev": statistics.stdev(data) if len(data) > 1 else 0.0, "rounds": len(data),
             "median": statistics.median(data), "iqr": q3 - q1, "q1": q1, "q3": q3, "iqr_outliers": 0,
             "stddev_outliers": 0, "outliers": "0;0", "ld15iqr": min(data), "hd15iqr": max(data),
             "ops": 1 / statistics.mean(data), "total": sum(data), "iterations": 1}
    if save_data:
        stats["data"] = list(data)
    return stats


def _own(case: Case, pass_name: str, data: list[float], **kw: Any) -> dict[str, Any]:
    name = f"test_block[{case.label.replace(' ', '-')}-{pass_name}]"
    return {"group": pass_name, "name": name, "fullname": f"{BENCH_FILE}::{name}",
            "params": {"case_id": case.case_id, "pass_name": pass_name},
            "extra_info": {"case": case.to_dict(), "case_id": case.case_id, "pass": pass_name, "threads": 1,
                           "torch_version": "2.13.0+cpu"},
            "options": {}, "stats": _stats(data, **kw)}


def _foreign(name: str, data: list[float], **kw: Any) -> dict[str, Any]:
    return {"group": None, "name": name, "fullname": f"tests/test_speed.py::{name}", "params": None,
            "extra_info": {}, "options": {}, "stats": _stats(data, **kw)}


def _document(entries: list[dict[str, Any]]) -> dict[str, Any]:
    return {"machine_info": {"node": "ci-runner", "processor": "x86_64", "machine": "x86_64",
                             "python_version": "3.11.9", "system": "Linux",
                             "cpu": {"brand_raw": "AMD EPYC 7B13", "count": 2}},
            "commit_info": {"id": "abc", "dirty": False}, "benchmarks": entries,
            "datetime": "2025-01-02T03:04:05.000000+00:00", "version": "5.1.0"}


def _write(path: Path, document: Any) -> Path:
    path.write_text(json.dumps(document))
    return path


def _rounds(base: float, n: int = 30, noise: float = 0.01) -> list[float]:
    """``n`` deterministic per-round times around ``base`` seconds, ±``noise`` relative."""
    return [base * (1 + noise * math.sin(1.7 * i)) for i in range(n)]


# --------------------------------------------------------------------------- the reader


def test_own_cases_merge_passes_into_one_case_in_ms(tmp_path):
    entries = [_own(CASE, "fwd", [0.002, 0.002, 0.002]), _own(OTHER, "fwd", _rounds(0.001, 12)),
               _own(CASE, "fwdbwd", [0.004, 0.005, 0.006])]
    side = side_from_pytest_benchmark(_write(tmp_path / "bench.json", _document(entries)))

    assert side.kind == KIND_PYTEST_BENCHMARK and side.source == str(tmp_path / "bench.json")
    assert list(side.cases) == [CASE.case_id, OTHER.case_id]
    result = side.cases[CASE.case_id]
    assert (result.key, result.label, result.block, result.status) == (CASE.case_id, "nl C32 8x8 B1", "nl", STATUS_OK)
    assert set(result.timings) == {"latency_fwd_ms", "latency_fwdbwd_ms"}
    fwd, fwdbwd = result.timings["latency_fwd_ms"], result.timings["latency_fwdbwd_ms"]
    assert fwd.median_ms == pytest.approx(2.0) and fwd.samples_ms == pytest.approx((2.0, 2.0, 2.0))
    assert fwdbwd.median_ms == pytest.approx(5.0) and fwdbwd.samples_ms == pytest.approx((4.0, 5.0, 6.0))
    assert WARNING_FEW_SAMPLES in fwd.warnings and WARNING_NO_RAW_SAMPLES not in fwd.warnings
    assert "noisy" in fwdbwd.warnings  # IQR/median = 1.5 ms / 5 ms
    assert side.cases[OTHER.case_id].timings["latency_fwd_ms"].warnings == ()  # 12 quiet rounds
    assert side.machine == {"host": "ci-runner", "cpu_model": "AMD EPYC 7B13", "device_name": None,
                            "torch_version": "2.13.0+cpu", "threads": 1,
                            "started_at": "2025-01-02T03:04:05.000000+00:00", "gate_session": None}
    assert set(MACHINE_FIELDS) <= set(side.machine)


def test_foreign_benchmark_is_keyed_by_full_name(tmp_path):
    entry = _foreign("test_sort[1000]", [0.0001] * 10)
    side = read_side(_write(tmp_path / "foreign.json", _document([entry])))  # read_side dispatches on .json

    assert side.kind == KIND_PYTEST_BENCHMARK
    key = "tests/test_speed.py::test_sort[1000]"
    result = side.cases[key]
    assert (result.key, result.label, result.block, result.status) == (key, key, "test_sort", STATUS_OK)
    assert list(result.timings) == ["time"]
    assert result.timings["time"].median_ms == pytest.approx(0.1)
    assert result.timings["time"].warnings == ()
    assert side.machine["torch_version"] is None and side.machine["threads"] is None


def test_file_without_raw_samples_warns(tmp_path):
    document = _document([_own(CASE, "fwd", _rounds(0.003, 40), save_data=False)])
    document["machine_info"]["cpu"] = {"brand": "Old cpuinfo brand"}
    side = side_from_pytest_benchmark(_write(tmp_path / "nodata.json", document))

    timing = side.cases[CASE.case_id].timings["latency_fwd_ms"]
    assert timing.samples_ms == ()
    assert timing.median_ms == pytest.approx(3.0, rel=0.02)
    assert timing.warnings == (WARNING_NO_RAW_SAMPLES,)  # 40 rounds taken: not few-samples
    assert side.machine["cpu_model"] == "Old cpuinfo brand"
    assert "--benchmark-save-data" in NO_RAW_SAMPLES_HINT


def _set(path: list[Any], value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(document: dict[str, Any]) -> None:
        target = document
        for step in path[:-1]:
            target = target[step]
        target[path[-1]] = value
    return mutate


def _delete(path: list[Any]) -> Callable[[dict[str, Any]], None]:
    def mutate(document: dict[str, Any]) -> None:
        target = document
        for step in path[:-1]:
            target = target[step]
        del target[path[-1]]
    return mutate


MALFORMED = {
    "benchmarks missing": (_delete(["benchmarks"]), "'benchmarks'", "a list of benchmarks"),
    "benchmarks not a list": (_set(["benchmarks"], {"a": 1}), "'benchmarks'", "a list of benchmarks"),
    "entry not an object": (_set(["benchmarks", 1], 7), "'benchmarks[1]'", "a JSON object"),
    "name missing": (_delete(["benchmarks", 0, "name"]), "'benchmarks[0].name'", "a string"),
    "fullname not a string": (_set(["benchmarks", 2, "fullname"], 3), "'benchmarks[2].fullname'", "a non-empty string"),
    "stats missing": (_delete(["benchmarks", 1, "stats"]), "'benchmarks[1].stats'", "missing"),
    "stats not an object": (_set(["benchmarks", 1, "stats"], [1]), "'benchmarks[1].stats'", "a JSON object"),
    "median missing": (_delete(["benchmarks", 2, "stats", "median"]), "'benchmarks[2].stats.median'", "missing"),
    "median not a number": (_set(["benchmarks", 3, "stats", "median"], "fast"), "'benchmarks[3].stats.median'",
                            "a finite number of seconds"),
    "median a bool": (_set(["benchmarks", 0, "stats", "median"], True), "'benchmarks[0].stats.median'",
                      "a finite number of seconds"),
    "median NaN": (_set(["benchmarks", 0, "stats", "median"], math.nan), "'benchmarks[0].stats.median'",
                   "a finite number of seconds"),
    "iqr missing": (_delete(["benchmarks", 0, "stats", "iqr"]), "'benchmarks[0].stats.iqr'", "missing"),
    "negative median": (_set(["benchmarks", 1, "stats", "median"], -0.001), "'benchmarks[1].stats.median'",
                        "≥ 0 seconds"),
    "negative min": (_set(["benchmarks", 1, "stats", "min"], -1e-6), "'benchmarks[1].stats.min'", "≥ 0 seconds"),
    "rounds not an integer": (_set(["benchmarks", 0, "stats", "rounds"], 2.5), "'benchmarks[0].stats.rounds'",
                              "an integer"),
    "data not a list": (_set(["benchmarks", 0, "stats", "data"], "0.1 0.2"), "'benchmarks[0].stats.data'",
                        "a list of per-round times"),
    "data with a non-number": (_set(["benchmarks", 1, "stats", "data", 2], "x"), "'benchmarks[1].stats.data[2]'",
                               "a finite number of seconds"),
    "data with a null": (_set(["benchmarks", 1, "stats", "data", 0], None), "'benchmarks[1].stats.data[0]'",
                         "a finite number of seconds"),
    "negative data": (_set(["benchmarks", 2, "stats", "data", 1], -0.5), "'benchmarks[2].stats.data[1]'",
                      "≥ 0 seconds"),
    "extra_info not an object": (_set(["benchmarks", 0, "extra_info"], [1]), "'benchmarks[0].extra_info'",
                                 "a JSON object"),
    "case not an object": (_set(["benchmarks", 0, "extra_info", "case"], "nl"), "'benchmarks[0].extra_info.case'",
                           "a case as a JSON object"),
    "case with an unknown field": (_set(["benchmarks", 0, "extra_info", "case", "colour"], "red"),
                                   "'benchmarks[0].extra_info.case'", "a case nlbench can read"),
    "case missing a field": (_delete(["benchmarks", 1, "extra_info", "case", "channels"]),
                             "'benchmarks[1].extra_info.case'", "a case nlbench can read"),
    "case options not a table": (_set(["benchmarks", 1, "extra_info", "case", "options"], [1, 2]),
                                 "'benchmarks[1].extra_info.case'", "a case nlbench can read"),
    "pass missing": (_delete(["benchmarks", 0, "extra_info", "pass"]), "'benchmarks[0].extra_info.pass'",
                     "one of fwd, fwdbwd (missing)"),
    "pass unknown": (_set(["benchmarks", 1, "extra_info", "pass"], "bwd"), "'benchmarks[1].extra_info.pass'",
                     "one of fwd, fwdbwd"),
    "machine_info not an object": (_set(["machine_info"], "linux"), "'machine_info'", "a JSON object"),
}


@pytest.mark.parametrize("mutate, field, expected", list(MALFORMED.values()), ids=list(MALFORMED))
def test_malformed_file_names_file_field_and_expectation(tmp_path, mutate, field, expected):
    document = _document([_own(CASE, "fwd", _rounds(0.001, 5)), _own(CASE, "fwdbwd", _rounds(0.002, 5)),
                          _foreign("test_a", _rounds(0.001, 5)), _foreign("test_b", _rounds(0.001, 5))])
    mutate(document)
    path = _write(tmp_path / "bad.json", document)
    with pytest.raises(StoreError) as raised:
        side_from_pytest_benchmark(path)
    message = str(raised.value)
    assert str(path) in message and field in message and expected in message, message


@pytest.mark.parametrize("text, expected", [
    ("{not json", "not JSON"),
    ("", "not JSON"),
    ("[1, 2]", "expected a JSON object"),
    ("\"benchmarks\"", "expected a JSON object"),
    (b"\xff\xfe{\x00}\x00", "not UTF-8"),
], ids=["broken", "empty", "list", "string", "utf-16"])
def test_not_a_pytest_benchmark_document(tmp_path, text, expected):
    path = tmp_path / "bad.json"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(StoreError) as raised:
        side_from_pytest_benchmark(path)
    assert str(path) in str(raised.value) and expected in str(raised.value)


def test_missing_file_and_directory_are_store_errors(tmp_path):
    with pytest.raises(StoreError, match="cannot read"):
        side_from_pytest_benchmark(tmp_path / "absent.json")
    with pytest.raises(StoreError, match="is a directory"):
        side_from_pytest_benchmark(tmp_path)


def test_duplicate_case_and_pass_names_both_entries(tmp_path):
    twice = _own(CASE, "fwd", _rounds(0.001, 5))
    other = copy.deepcopy(twice)
    other["name"] = other["fullname"] = "test_block[again]"
    path = _write(tmp_path / "dup.json", _document([twice, _own(CASE, "fwdbwd", [0.002]), other]))
    with pytest.raises(StoreError) as raised:
        side_from_pytest_benchmark(path)
    message = str(raised.value)
    assert str(path) in message and "benchmarks[0]" in message and "benchmarks[2]" in message
    assert twice["fullname"] in message and "test_block[again]" in message and "latency_fwd_ms" in message


def test_duplicate_foreign_benchmark_is_an_error(tmp_path):
    path = _write(tmp_path / "dup.json", _document([_foreign("test_a", [0.1]), _foreign("test_a", [0.1])]))
    with pytest.raises(StoreError, match=r"benchmarks\[0\].*benchmarks\[1\]"):
        side_from_pytest_benchmark(path)


def test_reader_is_torch_free():
    code = "import sys, nlbench.gate.pytest_benchmark; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], cwd=REPO, timeout=60).returncode == 0


# --------------------------------------------------------------------------- two sides compared


def _pair(tmp_path, scale: float, *, save_data: bool = True):
    def document(factor: float) -> dict[str, Any]:
        return _document([
            _own(CASE, "fwd", [t * factor for t in _rounds(0.002)], save_data=save_data),
            _own(CASE, "fwdbwd", [t * factor for t in _rounds(0.005)], save_data=save_data),
            _foreign("test_sort", [t * factor for t in _rounds(0.0003)], save_data=save_data),
        ])
    baseline = side_from_pytest_benchmark(_write(tmp_path / "base.json", document(1.0)))
    candidate = side_from_pytest_benchmark(_write(tmp_path / "cand.json", document(scale)))
    return compare_sides(baseline, candidate)


def test_identical_files_pass(tmp_path):
    result = _pair(tmp_path, 1.0)
    assert len(result.comparisons) == 3
    assert not result.failures and not result.inconclusive
    assert {c.verdict for c in result.comparisons} == {GATE_PASS}
    assert result.exit_code == 0


def test_candidate_half_again_slower_is_a_regression(tmp_path):
    result = _pair(tmp_path, 1.5)
    verdicts = {(c.key, c.quantity): c.verdict for c in result.comparisons}
    assert verdicts == {(CASE.case_id, "latency_fwd_ms"): GATE_REGRESSION,
                        (CASE.case_id, "latency_fwdbwd_ms"): GATE_REGRESSION,
                        ("tests/test_speed.py::test_sort", "time"): GATE_REGRESSION}
    for row in result.comparisons:
        assert row.ratio == pytest.approx(1.5, rel=0.02) and row.n_baseline == row.n_candidate == 30
    assert result.exit_code == 1


def test_files_without_raw_samples_are_inconclusive(tmp_path):
    result = _pair(tmp_path, 1.5, save_data=False)
    assert len(result.comparisons) == 3
    assert {c.verdict for c in result.comparisons} == {GATE_INCONCLUSIVE}
    assert not result.failures and result.exit_code == 0
    for row in result.comparisons:
        assert any(WARNING_NO_RAW_SAMPLES in warning for warning in row.warnings), row.warnings


# --------------------------------------------------------------------------- the benchmark file


@pytest.mark.slow
def test_benchmark_file_writes_what_the_reader_reads(tmp_path):
    from nlbench.suite import load_suite

    smoke = load_suite("smoke").cases()
    blocks = ("identity", "local")
    env = {**os.environ, "NLBENCH_BENCH_SUITE": "smoke"}
    pytest_cmd = [sys.executable, "-m", "pytest", BENCH_FILE, "-q", "-p", "no:cacheprovider"]

    collected = subprocess.run([*pytest_cmd, "--collect-only"], cwd=REPO, env=env, capture_output=True,
                               text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert collected.returncode == 0, collected.stdout + collected.stderr
    ids = [line for line in collected.stdout.splitlines() if line.startswith(f"{BENCH_FILE}::")]
    assert len(ids) == 2 * len(smoke) and len(set(ids)) == len(ids)

    out = tmp_path / "out.json"
    ran = subprocess.run([*pytest_cmd, "--benchmark-only", "--benchmark-min-rounds=1",
                          "--benchmark-max-time=0.000001", "--benchmark-warmup=off", "--benchmark-save-data",
                          f"--benchmark-json={out}", "-k", " or ".join(blocks)],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=90, stdin=subprocess.DEVNULL)
    assert ran.returncode == 0, ran.stdout[-3000:] + ran.stderr[-3000:]

    expected = {case.case_id for case in smoke if case.block in blocks}
    entries = json.loads(out.read_text())["benchmarks"]
    assert len(entries) == 2 * len(expected)
    assert sorted((e["extra_info"]["case_id"], e["extra_info"]["pass"]) for e in entries) == \
        sorted((case_id, p) for case_id in expected for p in ("fwd", "fwdbwd"))
    for entry in entries:
        assert entry["group"] == entry["extra_info"]["pass"]
        assert len(entry["stats"]["data"]) >= 1 and entry["extra_info"]["threads"] == 1

    side = side_from_pytest_benchmark(out)
    assert set(side.cases) == expected
    for result in side.cases.values():
        assert set(result.timings) == {"latency_fwd_ms", "latency_fwdbwd_ms"}
        assert all(t.samples_ms and t.median_ms > 0 for t in result.timings.values())
    assert side.machine["threads"] == 1 and side.machine["torch_version"]
