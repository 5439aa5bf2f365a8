"""What a gate compares, read from disk into a :class:`~nlbench.gate.model.Side`: a
stored run directory (:func:`side_from_run`) or a pytest-benchmark JSON file
(:mod:`nlbench.gate.pytest_benchmark`); :func:`read_side` tells them apart."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Mapping

from nlbench import store
from nlbench.gate.model import MEASURED_ON_HOSTS, CaseResult, Side, Timing
from nlbench.vocabulary import COST_COLUMNS, LATENCY_METRICS, metric

KIND_RUN = "run"
KIND_PYTEST_BENCHMARK = "pytest-benchmark"
#: The facts that must agree for two sides' times to be comparable, as a manifest states them.
MACHINE_FIELDS: tuple[str, ...] = ("host", "cpu_model", "device_name", "torch_version", "threads")



def read_side(path: Path | str) -> Side:
    """A run directory or a pytest-benchmark JSON file as one side of a gate."""
    path = Path(path)
    if path.is_dir():
        return side_from_run(path)
    if path.is_file() and path.suffix == ".json":
        from nlbench.gate.pytest_benchmark import side_from_pytest_benchmark

        return side_from_pytest_benchmark(path)
    if path.is_file():
        raise store.StoreError(f"{path}: expected a run directory or a pytest-benchmark .json file")
    raise FileNotFoundError(f"{path}: no such run directory or pytest-benchmark JSON file")


def machine_of(manifest: Mapping[str, Any]) -> dict[str, Any]:
    """The machine facts of a run's manifest (see :data:`MACHINE_FIELDS`)."""
    environment = manifest.get("environment") or {}
    facts = {name: environment.get(name) for name in MACHINE_FIELDS if name != "threads"}
    facts["threads"] = manifest.get("threads")
    facts["started_at"] = manifest.get("started_at")
    facts["gate_session"] = manifest.get("gate_session")
    return facts


def _finite(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _timing(row: Mapping[str, Any], name: str) -> Timing | None:
    m = metric(name)
    median = _finite(row.get(m.column))
    if median is None:
        return None
    samples = row.get(m.samples_column)
    samples = tuple(float(s) for s in samples) if isinstance(samples, (list, tuple)) else ()
    warnings = row.get(m.warnings_column)
    rounds = row.get(m.rounds_column)
    rounds = tuple(int(r) for r in rounds) if isinstance(rounds, (list, tuple)) and len(rounds) == len(samples) else ()
    return Timing(samples, median, tuple(warnings) if isinstance(warnings, (list, tuple)) else (), rounds)


def side_from_run(run_dir: Path | str) -> Side:
    """A stored run's sweep cases, keyed by case id."""
    manifest = store.read_manifest(run_dir)
    frame = store.sweep_records(store.load(run_dir))
    cases: dict[str, CaseResult] = {}
    for row in frame.to_dict("records"):
        costs = {column: value for column in COST_COLUMNS if (value := _finite(row.get(column))) is not None}
        timings = {name: timing for name in LATENCY_METRICS if (timing := _timing(row, name)) is not None}
        label = row.get("label") if isinstance(row.get("label"), str) else f"{row['block']} {row['case_id']}"
        error = row.get("error") if isinstance(row.get("error"), str) else None
        cases[row["case_id"]] = CaseResult(row["case_id"], label, str(row["block"]), str(row["status"]),
                                           error, costs, timings)
    machine = machine_of(manifest)
    hosts = sorted({h for h in frame.get("host", []) if isinstance(h, str)})
    if len(hosts) > 1:  # a cluster run (--executor ray): its cases were timed on several machines
        machine["host"] = " + ".join(hosts)
        machine[MEASURED_ON_HOSTS] = tuple(hosts)
    return Side(str(run_dir), KIND_RUN, machine, cases)
