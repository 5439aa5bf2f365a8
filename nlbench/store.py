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

import json
import math
import os
from pathlib import Path
from typing import Any, Iterable, Mapping

import pandas as pd

SCHEMA_VERSION = 1
RESULTS_FILE = "results.jsonl"
MANIFEST_FILE = "manifest.json"

# The public columns of `load` (harness spec): reports, gates and users build on them.
PUBLIC_COLUMNS = (
    "block", "options", "channels", "height", "width", "frames", "batch", "device", "dtype",
    "status", "error", "params", "macs", "flops", "uncounted_ops", "fvcore_macs", "ptflops_macs",
    "latency_fwd_ms_median", "latency_fwd_ms_iqr", "latency_fwdbwd_ms_median",
    "latency_fwdbwd_ms_iqr", "latency_fwd_ms_samples", "peak_mem_fwd_bytes", "peak_mem_fwdbwd_bytes",
)
STATUSES = ("ok", "oom", "timeout", "error", "skipped")


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


def load(run_dir: Path | str | Iterable[Path | str]) -> pd.DataFrame:
    """One row per case (and per probe result) of one or more runs.

    Always has the public columns; a measurement not taken is null (NaN/None), never
    zero. ``options`` is JSON text; ``uncounted_ops`` a list (empty when every operator
    was counted, null when FLOPs were not counted at all); ``run`` names the run.
    """
    dirs = [run_dir] if isinstance(run_dir, (str, Path)) else list(run_dir)
    rows = []
    for directory in dirs:
        for record in read_records(directory):
            record = dict(record)
            record["run"] = Path(directory).name
            if isinstance(record.get("options"), dict):
                record["options"] = json.dumps(record["options"], sort_keys=True)
            rows.append(record)
    frame = pd.DataFrame(rows)
    for column in PUBLIC_COLUMNS:
        if column not in frame.columns:
            frame[column] = None
    if len(frame):
        frame["uncounted_ops"] = frame["uncounted_ops"].apply(lambda v: list(v) if isinstance(v, list) else None)
    return frame
