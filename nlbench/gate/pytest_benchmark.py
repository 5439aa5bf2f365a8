"""A pytest-benchmark JSON file (``pytest --benchmark-json=FILE``) as one
:class:`~nlbench.gate.model.Side` of a gate.

nlbench's own benchmarks (``benchmarks/test_blocks_benchmark.py``) record the case and
the pass in ``extra_info``; their entries are keyed by case id, and the forward and
forward+backward entries of one case become one :class:`CaseResult` with the timings
``latency_fwd_ms`` and ``latency_fwdbwd_ms``. Any other benchmark is keyed by its full
name, with one timing called ``time``. The file holds seconds; the side holds ms.

The gate's rank test needs every round's time, which pytest-benchmark writes only with
``--benchmark-save-data``; without it a timing has no samples and carries
:data:`WARNING_NO_RAW_SAMPLES`, so its comparisons are inconclusive. Torch-free.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Mapping

from nlbench.case import Case
from nlbench.gate.inputs import KIND_PYTEST_BENCHMARK, MACHINE_FIELDS
from nlbench.gate.model import CaseResult, Side, Timing
from nlbench.store import StoreError
from nlbench.vocabulary import LATENCY_PASSES, STATUS_OK, latency_warnings

#: A timing read from a file without per-round times (no ``--benchmark-save-data``).
WARNING_NO_RAW_SAMPLES = "no-raw-samples"
#: What to tell the user about :data:`WARNING_NO_RAW_SAMPLES`.
NO_RAW_SAMPLES_HINT = ("the pytest-benchmark JSON holds no per-round times, so the rank test cannot run: "
                       "rerun pytest with --benchmark-save-data (beside --benchmark-json=FILE)")
#: The timing name of a foreign (not nlbench) benchmark.
FOREIGN_METRIC = "time"
#: The ``stats`` fields every entry must hold (seconds).
REQUIRED_STATS: tuple[str, ...] = ("median", "iqr")
#: ``stats`` fields checked when present (seconds).
OPTIONAL_STATS: tuple[str, ...] = ("min", "max", "mean", "stddev", "q1", "q3")


class _Reader:
    """Field checks that raise :class:`StoreError` naming the file and the field."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, field: str, expected: str, got: Any = ...) -> StoreError:
        detail = "" if got is ... else f", got {_short(got)}"
        return StoreError(f"{self.path}: field '{field}': expected {expected}{detail}")

    def obj(self, value: Any, field: str) -> Mapping[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(field, "a JSON object", value)
        return value

    def string(self, data: Mapping[str, Any], key: str, field: str) -> str:
        if key not in data:
            raise self.fail(f"{field}.{key}", "a string (missing)")
        value = data[key]
        if not isinstance(value, str) or not value:
            raise self.fail(f"{field}.{key}", "a non-empty string", value)
        return value

    def seconds(self, value: Any, field: str) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise self.fail(field, "a finite number of seconds", value)
        if value < 0:
            raise self.fail(field, "a time ≥ 0 seconds (negative times cannot be measured)", value)
        return float(value)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _load(path: Path) -> Any:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise StoreError(f"{path}: cannot read the pytest-benchmark JSON file ({exc.strerror or exc})") from None
    try:
        return json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise StoreError(f"{path}: not UTF-8 text (invalid byte at offset {exc.start}); "
                         "expected a pytest-benchmark JSON file") from None
    except json.JSONDecodeError as exc:
        raise StoreError(f"{path}: not JSON ({exc}); expected a pytest-benchmark JSON file "
                         "(pytest --benchmark-json=FILE)") from None


def _timing(reader: _Reader, stats: Mapping[str, Any], field: str) -> Timing:
    """One entry's stats as a Timing in ms, with its latency warnings."""
    values = {name: reader.seconds(stats[name], f"{field}.{name}") if name in stats
              else None for name in (*REQUIRED_STATS, *OPTIONAL_STATS)}
    for name in REQUIRED_STATS:
        if values[name] is None:
            raise reader.fail(f"{field}.{name}", "a number of seconds (missing)")
    rounds = stats.get("rounds")
    if rounds is not None and (isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 0):
        raise reader.fail(f"{field}.rounds", "an integer ≥ 0", rounds)
    median_ms, iqr_ms = values["median"] * 1e3, values["iqr"] * 1e3
    data = stats.get("data")
    if data is None:
        # The file holds no per-round times; judge "few samples" on the rounds taken.
        warnings = latency_warnings(median_ms, iqr_ms, n_samples=rounds)
        return Timing((), median_ms, (*warnings, WARNING_NO_RAW_SAMPLES))
    if not isinstance(data, list):
        raise reader.fail(f"{field}.data", "a list of per-round times in seconds", data)
    samples = tuple(reader.seconds(value, f"{field}.data[{i}]") * 1e3 for i, value in enumerate(data))
    if not samples:
        warnings = latency_warnings(median_ms, iqr_ms, n_samples=0)
        return Timing((), median_ms, (*warnings, WARNING_NO_RAW_SAMPLES))
    return Timing(samples, median_ms, tuple(latency_warnings(median_ms, iqr_ms, n_samples=len(samples))))


def _own(reader: _Reader, extra: Mapping[str, Any], field: str) -> tuple[Case, str]:
    """The case and pass of one of nlbench's own benchmark entries."""
    record = extra["case"]
    if not isinstance(record, dict):
        raise reader.fail(f"{field}.extra_info.case", "a case as a JSON object (Case.to_dict)", record)
    try:
        case = Case.from_dict(record)
        case.case_id, case.label  # noqa: B018 - both must be computable
    except (TypeError, ValueError, AttributeError) as exc:
        raise reader.fail(f"{field}.extra_info.case", f"a case nlbench can read ({exc})", record) from None
    if not isinstance(case.block, str) or not case.block:
        raise reader.fail(f"{field}.extra_info.case.block", "a non-empty string", case.block)
    if "pass" not in extra:
        raise reader.fail(f"{field}.extra_info.pass", f"one of {', '.join(LATENCY_PASSES)} (missing)")
    if extra["pass"] not in LATENCY_PASSES:
        raise reader.fail(f"{field}.extra_info.pass", f"one of {', '.join(LATENCY_PASSES)}", extra["pass"])
    return case, extra["pass"]


def _machine(reader: _Reader, data: Mapping[str, Any], entries: list[Mapping[str, Any]]) -> dict[str, Any]:
    """The machine facts (:data:`~nlbench.gate.inputs.MACHINE_FIELDS`) of the file."""
    info = data.get("machine_info") or {}
    info = reader.obj(info, "machine_info")
    cpu = info.get("cpu") if isinstance(info.get("cpu"), dict) else {}
    extras = [e["extra_info"] for e in entries if isinstance(e.get("extra_info"), dict)]
    facts: dict[str, Any] = dict.fromkeys(MACHINE_FIELDS)
    facts.update(
        host=info.get("node") if isinstance(info.get("node"), str) else None,
        cpu_model=cpu.get("brand_raw") or cpu.get("brand") or None,
        torch_version=next((x["torch_version"] for x in extras if x.get("torch_version") is not None), None),
        threads=next((x["threads"] for x in extras if x.get("threads") is not None), None),
        device_name=None,
    )
    started = data.get("datetime")
    facts["started_at"] = started if isinstance(started, str) else None
    facts["gate_session"] = None
    return facts


def side_from_pytest_benchmark(path: Path | str) -> Side:
    """A pytest-benchmark JSON file as one side of a gate (see the module docstring);
    raises :class:`~nlbench.store.StoreError` naming the file and the field when the
    file is not one, or when the same case and pass appear twice."""
    path = Path(path)
    reader = _Reader(path)
    if path.is_dir():
        raise StoreError(f"{path}: is a directory; expected a pytest-benchmark JSON file")
    data = _load(path)
    if not isinstance(data, dict):
        raise StoreError(f"{path}: expected a JSON object (a pytest-benchmark file), got {type(data).__name__}")
    if "benchmarks" not in data:
        raise reader.fail("benchmarks", "a list of benchmarks (missing; is this a pytest-benchmark "
                                        "--benchmark-json file?)")
    entries = data["benchmarks"]
    if not isinstance(entries, list):
        raise reader.fail("benchmarks", "a list of benchmarks", entries)

    cases: dict[str, CaseResult] = {}
    seen: dict[tuple[str, str], str] = {}  # (key, timing name) -> the entry that gave it
    for index, entry in enumerate(entries):
        field = f"benchmarks[{index}]"
        entry = reader.obj(entry, field)
        name = reader.string(entry, "name", field)
        fullname = reader.string(entry, "fullname", field)
        extra = entry.get("extra_info") or {}
        extra = reader.obj(extra, f"{field}.extra_info")
        if "stats" not in entry:
            raise reader.fail(f"{field}.stats", "a JSON object of timing statistics (missing)")
        stats = reader.obj(entry["stats"], f"{field}.stats")
        if "case" in extra:
            case, pass_name = _own(reader, extra, field)
            key, label, block, timing_name = case.case_id, case.label, case.block, f"latency_{pass_name}_ms"
        else:
            key, label, block, timing_name = fullname, fullname, name.split("[", 1)[0], FOREIGN_METRIC
        timing = _timing(reader, stats, f"{field}.stats")
        here = f"{field} ({fullname})"
        if (key, timing_name) in seen:
            raise StoreError(f"{path}: {seen[key, timing_name]} and {here} both time {timing_name} of "
                             f"{label} (key {key}); expected each benchmark once")
        seen[key, timing_name] = here
        previous = cases.get(key)
        timings = {**(previous.timings if previous else {}), timing_name: timing}
        cases[key] = CaseResult(key, label, block, STATUS_OK, timings=timings)
    return Side(str(path), KIND_PYTEST_BENCHMARK, _machine(reader, data, entries), cases)
