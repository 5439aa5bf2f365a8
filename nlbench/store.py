"""Results on disk: one directory per run, one JSON line per finished case.

Layout of ``results/<run-id>/``::

    manifest.json   environment fingerprint, the suite as run, schema version
    suite.toml      a copy of the suite file
    results.jsonl   one record per finished case, appended and flushed as it completes

A record is written whole with one ``write`` and ``fsync``; a line cut short by a
kill is ignored on load and trimmed before the next append, so an interrupted sweep
loses at most the case in flight.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import re
from pathlib import Path
from typing import Any, Iterable, Mapping

import pandas as pd

from nlbench.vocabulary import (
    KIND_PROBE, KIND_RECEPTIVE_FIELD, KIND_SWEEP, METRICS, NUMERIC_COLUMNS, SHAPE_INT_COLUMNS, STATUSES,
    latency_warnings,
)

SCHEMA_VERSION = 1
RESULTS_FILE = "results.jsonl"
MANIFEST_FILE = "manifest.json"

# The public columns of `load` (harness spec): reports, gates and users build on them.
PUBLIC_COLUMNS = (
    "block", "options", "channels", "height", "width", "frames", "batch", "device", "dtype",
    "status", "error", "params", "macs", "flops", "uncounted_ops", "fvcore_macs", "ptflops_macs",
    "latency_fwd_ms_median", "latency_fwd_ms_iqr", "latency_fwdbwd_ms_median",
    "latency_fwdbwd_ms_iqr", "latency_fwd_ms_samples", "latency_fwd_warnings", "latency_fwdbwd_warnings",
    "peak_mem_fwd_bytes", "peak_mem_fwdbwd_bytes",
)
# Columns `load` adds: which run a row came from, its record kind and N = H·W·T.
DERIVED_COLUMNS = ("run", "kind", "positions")
__all__ = ["STATUSES", "PUBLIC_COLUMNS", "load", "create_run", "sweep_records", "probe_records"]


class StoreError(ValueError):
    """A run directory that cannot be read."""


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, (set, tuple)):
        return list(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _clean(value: Any) -> Any:
    """NaN/inf become null so the file stays strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
MAX_RUN_NAME = 80


def safe_run_name(name: str) -> str:
    """A directory-name-safe form of a suite or task name: letters, digits, ``._-``
    only, no leading dot, at most :data:`MAX_RUN_NAME` characters ("run" if nothing is left)."""
    slug = _UNSAFE.sub("-", name).strip("-.")[:MAX_RUN_NAME].strip("-.")
    return slug or "run"


def create_run(root: Path | str, name: str, manifest: Mapping[str, Any]) -> Path:
    """Create a fresh run directory ``root/<safe name>-<timestamp>`` (suffixed if
    taken), always inside ``root``, and write its manifest (with ``run_id``)."""
    root = Path(root)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    base = f"{safe_run_name(name)}-{stamp}"
    root.mkdir(parents=True, exist_ok=True)
    for suffix in range(1, 10_000):
        candidate = root / (base if suffix == 1 else f"{base}-{suffix}")
        try:
            candidate.mkdir()
        except FileExistsError:
            continue
        write_manifest(candidate, {"run_id": candidate.name, **manifest})
        return candidate
    raise StoreError(f"{root}: could not find a free run directory name for {base!r}")


def write_manifest(run_dir: Path, manifest: Mapping[str, Any]) -> None:
    """Write the run's manifest atomically (temp file + rename)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    tmp = run_dir / (MANIFEST_FILE + ".tmp")
    tmp.write_text(json.dumps({"schema_version": SCHEMA_VERSION, **manifest}, indent=2, default=_json_default))
    os.replace(tmp, run_dir / MANIFEST_FILE)


def read_manifest(run_dir: Path | str) -> dict[str, Any]:
    path = Path(run_dir) / MANIFEST_FILE
    if not path.exists():
        raise StoreError(f"{run_dir}: no {MANIFEST_FILE}; not a run directory")
    return json.loads(path.read_text())


def _trim_partial_line(path: Path) -> None:
    """Cut a trailing line that a kill left without its newline."""
    if not path.exists() or path.stat().st_size == 0:
        return
    with path.open("rb+") as handle:
        handle.seek(-1, os.SEEK_END)
        if handle.read(1) == b"\n":
            return
        data = path.read_bytes()
        handle.truncate(data.rfind(b"\n") + 1)


def append_record(run_dir: Path, record: Mapping[str, Any]) -> None:
    """Append one finished case to the run, flushed and fsynced before returning."""
    path = Path(run_dir) / RESULTS_FILE
    _trim_partial_line(path)
    line = json.dumps(_clean(dict(record)), default=_json_default, sort_keys=True) + "\n"
    with path.open("a", encoding="utf-8") as handle:
        handle.write(line)
        handle.flush()
        os.fsync(handle.fileno())


def read_records(run_dir: Path | str) -> list[dict[str, Any]]:
    """Every complete record of a run; the last record of a case wins (resume, retries)."""
    path = Path(run_dir) / RESULTS_FILE
    if not Path(run_dir).is_dir():
        raise StoreError(f"{run_dir}: no such run directory")
    if not path.exists():
        return []
    by_id: dict[str, dict[str, Any]] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut short by a kill: that case is simply not finished
        key = record.get("case_id") or f"line-{number}"
        by_id.pop(key, None)
        by_id[key] = record
    return list(by_id.values())


def finished_case_ids(run_dir: Path | str) -> set[str]:
    """Ids of cases that have a record (any status) — what `--resume` skips."""
    return {r["case_id"] for r in read_records(run_dir) if "case_id" in r}


def canonical_options(value: Any) -> str:
    """Options as one canonical JSON text (sorted keys): from a dict, a pair list,
    JSON text, or nothing ("{}")."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "{}"
    if isinstance(value, str):
        try:
            value = json.loads(value) if value.strip() else {}
        except json.JSONDecodeError:
            return value  # not JSON: keep the text as it was written
    if isinstance(value, (list, tuple)):
        value = dict(value)
    return json.dumps(value, sort_keys=True, default=str)


def _legacy_warnings(frame: pd.DataFrame) -> None:
    """Records written before warnings were stored get them from the one noise rule;
    a case without that latency keeps null."""
    for metric in METRICS:
        if not metric.sampled:
            continue
        if metric.warnings_column not in frame.columns:
            frame[metric.warnings_column] = None
        missing = frame[metric.warnings_column].isna() & frame[metric.column].notna()
        frame.loc[missing, metric.warnings_column] = pd.Series(
            [latency_warnings(m, q) for m, q in zip(frame.loc[missing, metric.column],
                                                    frame.loc[missing, metric.iqr_column])],
            index=frame.index[missing], dtype=object)


def normalise(frame: pd.DataFrame) -> pd.DataFrame:
    """The typed form every consumer reads: public columns present, numbers numeric
    (NaN where not measured), shape integers nullable (``frames`` null for images),
    options canonical JSON, ``kind`` filled and ``positions`` N = H·W·T derived once."""
    frame = frame.copy()
    for column in (*PUBLIC_COLUMNS, "run", "kind"):
        if column not in frame.columns:
            frame[column] = None
    for column in NUMERIC_COLUMNS:
        if column in frame.columns:
            frame[column] = pd.to_numeric(frame[column], errors="coerce").astype(float)
    for column in SHAPE_INT_COLUMNS:
        frame[column] = pd.to_numeric(frame[column], errors="coerce").round().astype("Int64")
    frame["positions"] = frame["height"] * frame["width"] * frame["frames"].fillna(1)
    frame["options"] = frame["options"].map(canonical_options)
    frame["kind"] = frame["kind"].fillna(KIND_SWEEP)
    frame["uncounted_ops"] = frame["uncounted_ops"].map(lambda v: list(v) if isinstance(v, list) else None)
    _legacy_warnings(frame)
    return frame


def load(run_dir: Path | str | Iterable[Path | str]) -> pd.DataFrame:
    """One row per case (and per probe result) of one or more runs, normalised
    (:func:`normalise`).

    Always has the public columns; a measurement not taken is null (NaN/None), never
    zero. ``options`` is canonical JSON text; ``uncounted_ops`` a list (empty when every
    operator was counted, null when FLOPs were not counted at all); ``run`` names the
    run, ``kind`` the record kind (see :func:`sweep_records`, :func:`probe_records`).
    """
    dirs = [run_dir] if isinstance(run_dir, (str, Path)) else list(run_dir)
    rows = []
    for directory in dirs:
        for record in read_records(directory):
            rows.append({**record, "run": Path(directory).name})
    return normalise(pd.DataFrame(rows))


def _of_kind(frame: pd.DataFrame, kind: str) -> pd.DataFrame:
    kinds = frame["kind"] if "kind" in frame.columns else pd.Series(KIND_SWEEP, index=frame.index)
    return frame.loc[kinds.fillna(KIND_SWEEP) == kind].copy()


def sweep_records(frame: pd.DataFrame) -> pd.DataFrame:
    """The sweep cases of a loaded frame."""
    return _of_kind(frame, KIND_SWEEP)


def probe_records(frame: pd.DataFrame) -> pd.DataFrame:
    """The probe results (one per block × seed) of a loaded frame."""
    return _of_kind(frame, KIND_PROBE)


def receptive_field_records(frame: pd.DataFrame) -> pd.DataFrame:
    """The receptive-field measurements of probe runs in a loaded frame."""
    return _of_kind(frame, KIND_RECEPTIVE_FIELD)
