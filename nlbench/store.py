"""Results on disk: one directory per run, one JSON line per finished case.

Layout of ``results/<run-id>/``::

    manifest.json   environment fingerprint, the suite as run, schema version
    suite.toml      a copy of the suite file
    results.jsonl   one record per finished case, appended and flushed as it completes

A record is written whole with one ``write`` and ``fsync``; a line cut short by a
kill is ignored on load and trimmed before the next append, so an interrupted sweep
loses at most the case in flight. A finished record is never deleted: a line that is
not a record is skipped with a warning naming it, and a run has one writer at a time
(:func:`writer_lock`).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import math
import os
import re
import socket
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

import pandas as pd

from nlbench.vocabulary import (
    KIND_PROBE, KIND_PROBE_LR_TRIAL, KIND_RECEPTIVE_FIELD, KIND_SWEEP, MAC_OP_CLASSES, METRICS, NUMERIC_COLUMNS,
    OP_CLASSES, RECORD_KINDS, SHAPE_INT_COLUMNS, STATUSES, class_cost_column, latency_warnings,
)

#: 2: ``macs`` counts multiply-accumulates only (vocabulary.MACS_CONVENTION), and each case
#: carries its cost by operator class and by module. 1: ``macs`` was FLOPs / 2.
SCHEMA_VERSION = 2
#: The first schema whose ``macs`` are multiply-adds only.
MULTIPLY_ADD_MACS_SCHEMA = 2
RESULTS_FILE = "results.jsonl"
MANIFEST_FILE = "manifest.json"
LOCK_FILE = ".lock"
#: A record field set on a case whose task was lost with its worker or node (the ray
#: executor): it is kept as data, but ``--resume`` measures the case again.
LOST_FIELD = "lost"

# The public columns of `load` (harness spec): reports, gates and users build on them.
PUBLIC_COLUMNS = (
    "block", "options", "channels", "height", "width", "frames", "batch", "device", "dtype",
    "status", "error", "params", "macs", "flops", "uncounted_ops", "fvcore_macs", "ptflops_macs",
    "latency_fwd_ms_median", "latency_fwd_ms_iqr", "latency_fwdbwd_ms_median",
    "latency_fwdbwd_ms_iqr", "latency_fwd_ms_samples", "latency_fwd_warnings", "latency_fwdbwd_warnings",
    "peak_mem_fwd_bytes", "peak_mem_fwdbwd_bytes",
)
# The columns of probe results (harness spec): present in every loaded frame, null elsewhere.
PROBE_COLUMNS = ("task", "seed", "accuracy", "steps", "steps_per_s")
# Columns `load` adds: which run a row came from, its record kind, N = H·W·T, the run's
# calibrated matmul rate, and per latency pass the achieved GFLOP/s and its share of it.
DERIVED_COLUMNS = ("run", "kind", "positions", "calibrated_matmul_gflops", "achieved_gflops_fwd",
                   "peak_fraction_fwd", "achieved_gflops_fwdbwd", "peak_fraction_fwdbwd")
__all__ = ["STATUSES", "PUBLIC_COLUMNS", "load", "create_run", "sweep_records", "probe_records"]


class StoreError(ValueError):
    """A run directory that cannot be read or written, with the path and the reason."""


class StoreWarning(UserWarning):
    """Lines of a results file that were skipped (damaged, foreign) or duplicated."""


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
    if root.exists() and not root.is_dir():
        raise StoreError(f"{root}: the results root is a file; expected a directory (or a path to create one)")
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(f"{root}: cannot create the results root ({exc.strerror or exc})") from None
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


def _run_directory(run_dir: Path | str) -> Path:
    path = Path(run_dir)
    if not path.exists():
        raise StoreError(f"{path}: no such run directory")
    if not path.is_dir():
        raise StoreError(f"{path}: is a file, not a run directory (expected a directory holding {MANIFEST_FILE})")
    return path


def read_manifest(run_dir: Path | str) -> dict[str, Any]:
    """The run's manifest, refused clearly when it cannot be trusted: missing, not
    UTF-8 JSON, not an object, or from a newer schema than this nlbench reads."""
    path = _run_directory(run_dir) / MANIFEST_FILE
    if not path.is_file():
        raise StoreError(f"{run_dir}: no {MANIFEST_FILE} file; not a run directory")
    try:
        manifest = json.loads(path.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise StoreError(f"{path}: not valid UTF-8 JSON ({exc}); the run's manifest cannot be trusted") from None
    if not isinstance(manifest, dict):
        raise StoreError(f"{path}: expected a JSON object, got {type(manifest).__name__}")
    version = manifest.get("schema_version")
    if isinstance(version, bool) or not isinstance(version, int):
        raise StoreError(f"{path}: field 'schema_version': expected an integer, got {version!r}")
    if version > SCHEMA_VERSION:
        raise StoreError(f"{path}: written with store schema {version}, newer than this nlbench reads "
                         f"({SCHEMA_VERSION}); upgrade nlbench to read it")
    return manifest


def manifest_field(run_dir: Path | str, manifest: Mapping[str, Any], name: str, kind: type | tuple[type, ...]) -> Any:
    """A manifest field of the expected type, or a :class:`StoreError` naming it."""
    value = manifest.get(name)
    if not isinstance(value, kind):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise StoreError(f"{Path(run_dir) / MANIFEST_FILE}: field {name!r}: expected {names}, got {value!r}")
    return value


@contextlib.contextmanager
def writer_lock(run_dir: Path | str) -> Iterator[None]:
    """Hold the run directory's one-writer lock (``.lock``, an advisory ``flock``) for
    the block; a second writer gets a clear :class:`StoreError` at once. The lock goes
    with the process, so a killed writer never leaves it stale."""
    path = _run_directory(run_dir) / LOCK_FILE
    handle = path.open("a+")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise StoreError(f"{run_dir}: another nlbench is writing this run ({holder}); "
                             "wait for it to finish, or start a new run") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} on {socket.gethostname()}")
        handle.flush()
        yield
    finally:
        handle.close()


def _repair_tail(path: Path) -> None:
    """Make the file end with a newline before an append. A last line without one is
    kept if it is a whole record (a newline was all that was lost) and cut only if it
    is a fragment (the case in flight when a kill or a full disk stopped the write)."""
    if not path.exists() or path.stat().st_size == 0:
        return
    with path.open("rb+") as handle:
        handle.seek(-1, os.SEEK_END)
        if handle.read(1) == b"\n":
            return
        data = path.read_bytes()
        start = data.rfind(b"\n") + 1
        if _parse_record(data[start:]) is not None:
            handle.seek(0, os.SEEK_END)
            handle.write(b"\n")
        else:
            handle.truncate(start)


def append_record(run_dir: Path, record: Mapping[str, Any]) -> None:
    """Append one finished case to the run, flushed and fsynced before returning.

    A failed write (a full disk) is undone to the last whole record and raised as a
    :class:`StoreError`; every earlier record is kept."""
    path = Path(run_dir) / RESULTS_FILE
    if path.exists() and not path.is_file():
        raise StoreError(f"{path}: expected a file of JSON lines, found a {'directory' if path.is_dir() else 'special file'}")
    _repair_tail(path)
    line = json.dumps(_clean(dict(record)), default=_json_default, sort_keys=True) + "\n"
    size = path.stat().st_size if path.exists() else 0
    try:
        with path.open("a", encoding="utf-8") as handle:
            handle.write(line)
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.truncate(path, size)
        raise StoreError(f"{path}: could not append the record of case {record.get('case_id')!r}: "
                         f"{exc.strerror or exc}. Every earlier record is kept; free the space and "
                         "resume the run") from None


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_list_of(value: Any, check: Any) -> bool:
    return isinstance(value, list) and all(check(v) for v in value)


def _field_problem(record: Mapping[str, Any]) -> str | None:
    """Why a JSON object is not a record this store wrote, or None when it is."""
    if not isinstance(record.get("case_id"), str) or not record["case_id"]:
        return "no case_id"
    if record.get("status") not in STATUSES:
        return f"status {record.get('status')!r}"
    if record.get("kind", KIND_SWEEP) not in RECORD_KINDS:
        return f"kind {record.get('kind')!r}"
    if not isinstance(record.get("options") or {}, dict):
        return "options not an object"
    for column in (*NUMERIC_COLUMNS, *SHAPE_INT_COLUMNS):
        value = record.get(column)
        if value is not None and not _is_number(value):
            return f"{column} not a number"
    lists = {"uncounted_ops": lambda v: isinstance(v, str)}
    for metric in METRICS:
        if metric.sampled:
            lists[metric.samples_column] = _is_number
            lists[metric.warnings_column] = lambda v: isinstance(v, str)
    for column, check in lists.items():
        value = record.get(column)
        if value is not None and not _is_list_of(value, check):
            return f"{column} not a list of the right values"
    by_class = record.get("cost_by_class")
    if by_class is not None and not (isinstance(by_class, dict) and all(
            isinstance(v, dict) and all(_is_number(n) for n in v.values()) for v in by_class.values())):
        return "cost_by_class not an object of {macs, flops} objects"
    if record.get("cost_by_module") is not None and not _is_list_of(record["cost_by_module"],
                                                                      lambda v: isinstance(v, dict)):
        return "cost_by_module not a list of objects"
    return None


def _parse_record(raw: bytes) -> dict[str, Any] | None:
    """A line as a record — a JSON object with a case id, a known status and kind, and
    fields of the types the store writes — or None for anything else (a fragment,
    foreign JSON, bad UTF-8): such a line is never guessed at."""
    try:
        value = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        return None
    if not isinstance(value, dict) or _field_problem(value) is not None:
        return None
    return value


@dataclass(frozen=True)
class StoreScan:
    """What a results file holds: the last record of each case, the lines that are
    not records, and the cases recorded more than once (case id -> count)."""

    records: tuple[dict[str, Any], ...]
    damaged_lines: tuple[int, ...]
    duplicates: Mapping[str, int]


def scan_records(run_dir: Path | str) -> StoreScan:
    """Read every line of a run's results; never raises for a damaged line."""
    path = _run_directory(run_dir) / RESULTS_FILE
    if not path.exists():
        return StoreScan((), (), {})
    if not path.is_file():
        raise StoreError(f"{path}: expected a file of JSON lines, found a directory")
    by_id: dict[str, dict[str, Any]] = {}
    counts: dict[str, int] = {}
    damaged: list[int] = []
    lines = path.read_bytes().split(b"\n")
    for number, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        record = _parse_record(raw)
        if record is None:
            if number < len(lines):  # the last line without a newline is the case in flight
                damaged.append(number)
            continue
        key = record["case_id"]
        if not by_id.get(key, {}).get(LOST_FIELD):  # a lost task's record is replaced by its resume, not doubled
            counts[key] = counts.get(key, 0) + 1
        by_id.pop(key, None)
        by_id[key] = record
    return StoreScan(tuple(by_id.values()), tuple(damaged), {k: n for k, n in counts.items() if n > 1})


def read_records(run_dir: Path | str) -> list[dict[str, Any]]:
    """Every complete record of a run, one per case (the last, if a case was recorded
    twice); damaged lines and duplicates are skipped with a :class:`StoreWarning`
    that names them."""
    result = scan_records(run_dir)
    path = Path(run_dir) / RESULTS_FILE
    if result.damaged_lines:
        shown = ", ".join(map(str, result.damaged_lines[:10])) + (" …" if len(result.damaged_lines) > 10 else "")
        warnings.warn(f"{path}: skipped {len(result.damaged_lines)} line(s) that are not records: line {shown}",
                      StoreWarning, stacklevel=2)
    if result.duplicates:
        warnings.warn(f"{path}: {len(result.duplicates)} case(s) recorded more than once (kept the last): "
                      + ", ".join(f"{k} ×{n}" for k, n in list(result.duplicates.items())[:5]),
                      StoreWarning, stacklevel=2)
    return list(result.records)


def finished_case_ids(run_dir: Path | str) -> set[str]:
    """Ids of cases that have a record (any status) — what `--resume` skips — except
    cases whose task was lost (:data:`LOST_FIELD`), which a resume runs again."""
    return {record["case_id"] for record in scan_records(run_dir).records if not record.get(LOST_FIELD)}


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
        try:
            value = dict(value)
        except (TypeError, ValueError):
            pass  # not pairs: kept as the JSON it is
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
    for column in ("case_id", *PUBLIC_COLUMNS, *PROBE_COLUMNS, "run", "kind", "calibrated_matmul_gflops"):
        if column not in frame.columns:
            frame[column] = None
    for column in NUMERIC_COLUMNS:
        if column in frame.columns:
            frame[column] = pd.to_numeric(frame[column], errors="coerce").astype(float)
    for column in SHAPE_INT_COLUMNS:
        frame[column] = pd.to_numeric(frame[column], errors="coerce").round().astype("Int64")
    frame["positions"] = frame["height"] * frame["width"] * frame["frames"].fillna(1)
    for metric in METRICS:
        if metric.sampled:  # achieved rate: FLOPs per median second, and its share of the calibrated peak
            pass_name = metric.name.removeprefix("latency_").removesuffix("_ms")
            achieved = frame["flops"] / (frame[metric.column] * 1e-3) / 1e9
            frame[f"achieved_gflops_{pass_name}"] = achieved.where(frame[metric.column] > 0)
            frame[f"peak_fraction_{pass_name}"] = frame[f"achieved_gflops_{pass_name}"] / frame["calibrated_matmul_gflops"]
    frame["options"] = frame["options"].map(canonical_options)
    frame["kind"] = frame["kind"].fillna(KIND_SWEEP)
    frame["uncounted_ops"] = frame["uncounted_ops"].map(lambda v: list(v) if isinstance(v, list) else None)
    _class_cost_columns(frame)
    _legacy_warnings(frame)
    return frame


def _class_cost_columns(frame: pd.DataFrame) -> None:
    """The flat ``macs_<class>`` / ``flops_<class>`` columns from each case's
    ``cost_by_class`` (0 for a class that did no arithmetic; null where not counted)."""
    by_class = frame["cost_by_class"] if "cost_by_class" in frame.columns else pd.Series(None, index=frame.index)
    counted = by_class.map(lambda v: isinstance(v, dict))
    for quantity, classes in (("macs", MAC_OP_CLASSES), ("flops", OP_CLASSES)):
        for op_class in classes:
            values = by_class.map(lambda v: float((v.get(op_class) or {}).get(quantity, 0)) if isinstance(v, dict)
                                  else math.nan)
            frame[class_cost_column(quantity, op_class)] = values.where(counted).astype(float)


def load(run_dir: Path | str | Iterable[Path | str]) -> pd.DataFrame:
    """One row per case (and per probe result) of one or more runs, normalised
    (:func:`normalise`).

    Always has the public columns; a measurement not taken is null (NaN/None), never
    zero. ``options`` is canonical JSON text; ``uncounted_ops`` a list (empty when every
    operator was counted, null when FLOPs were not counted at all); ``run`` names the
    run, ``kind`` the record kind (see :func:`sweep_records`, :func:`probe_records`).
    """
    dirs = [Path(run_dir)] if isinstance(run_dir, (str, Path)) else [Path(d) for d in run_dir]
    names = [d.name for d in dirs]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise StoreError(f"run {', '.join(twice)} given more than once (runs are told apart by directory name)")
    rows = []
    for directory in dirs:
        manifest = read_manifest(directory)  # a directory without a trustworthy manifest is not a run
        peak = (manifest.get("calibration") or {}).get("matmul_gflops")
        records = read_records(directory)
        if manifest["schema_version"] < MULTIPLY_ADD_MACS_SCHEMA:
            records = _without_legacy_macs(directory, manifest["schema_version"], records)
        for record in records:
            rows.append({**record, "run": Path(directory).name, "calibrated_matmul_gflops": peak})
    return normalise(pd.DataFrame(rows))


def _without_legacy_macs(directory: Path, version: int, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Records of a run written before MACs meant multiply-adds, with ``macs`` null (and
    a warning saying so): its MACs were FLOPs / 2, softmax, elementwise and norm FLOPs
    included, so they cannot stand beside today's. Its FLOPs follow today's rules."""
    if any(r.get("macs") is not None for r in records):
        warnings.warn(
            f"{directory}: written with store schema {version}, whose 'macs' were FLOPs / 2 (softmax, "
            "elementwise and norm FLOPs included); they load as null, since today's 'macs' count "
            "multiply-adds only. 'flops' are unchanged. Re-run the suite for multiply-add MACs.",
            StoreWarning, stacklevel=3)
    return [{**r, "macs": None, "legacy_macs_flops_half": r.get("macs")} for r in records]


def _of_kind(frame: pd.DataFrame, kind: str) -> pd.DataFrame:
    kinds = frame["kind"] if "kind" in frame.columns else pd.Series(KIND_SWEEP, index=frame.index)
    return frame.loc[kinds.fillna(KIND_SWEEP) == kind].copy()


def sweep_records(frame: pd.DataFrame) -> pd.DataFrame:
    """The sweep cases of a loaded frame."""
    return _of_kind(frame, KIND_SWEEP)


def probe_records(frame: pd.DataFrame) -> pd.DataFrame:
    """The probe results (one per block × seed) of a loaded frame."""
    return _of_kind(frame, KIND_PROBE)


def lr_trial_records(frame: pd.DataFrame) -> pd.DataFrame:
    """The learning-rate trials of probe runs (one per block × rate) in a loaded frame."""
    return _of_kind(frame, KIND_PROBE_LR_TRIAL)


def receptive_field_records(frame: pd.DataFrame) -> pd.DataFrame:
    """The receptive-field measurements of probe runs in a loaded frame."""
    return _of_kind(frame, KIND_RECEPTIVE_FIELD)
