"""Synthetic run directories for the report tests: written through nlbench.store, so
the report reads them exactly as it reads a real sweep. (Helpers, imported by the
tests and by conftest.py; a uniquely named module so it cannot clash with other
conftest modules.)"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Iterable

from nlbench import store

CLAIMS = {
    # block -> (text, n_exponent, c_exponent)
    "identity": ("O(1)", 0.0, 0.0),
    "nl": ("O(C·H²W²)", 2.0, 1.0),
    "cheap": ("O(C·HW)", 1.0, 1.0),
}


def case_record(block: str, channels: int, size: int, *, status: str = "ok", run_scale: float = 1.0,
                error: str | None = None, device: str = "cpu", **overrides: Any) -> dict[str, Any]:
    """One sweep record with exactly known costs (N = size²):

    identity: 0 MACs, 0.01 ms, 4·C·N bytes; nl: C·N² + 2·C²·N MACs; cheap: C·N MACs
    (fvcore counts half of cheap, ptflops 90 %). Latency is MACs / 1e6 ms + 0.01 with
    five samples spread ±2 %; memory is 4·(C·N + N²) for nl, 8·C·N for cheap.
    """
    n = size * size
    macs = {"identity": 0, "nl": channels * n * n + 2 * channels**2 * n, "cheap": channels * n}.get(block, channels * n)
    memory = {"identity": 4 * channels * n, "nl": 4 * (channels * n + n * n)}.get(block, 8 * channels * n)
    latency = (macs / 1e6 + 0.01) * run_scale
    samples = [latency * f for f in (0.98, 0.99, 1.0, 1.01, 1.02)]
    text, n_exp, c_exp = CLAIMS.get(block, ("O(C·HW)", 1.0, 1.0))
    record: dict[str, Any] = {
        "kind": "sweep", "case_id": f"{block}-{channels}-{size}-{device}", "block": block, "options": {},
        "channels": channels, "height": size, "width": size, "frames": None, "batch": 1, "device": device,
        "dtype": "float32", "status": status, "error": error, "label": f"{block} C{channels} {size}x{size}",
        "claimed_complexity": text, "claimed_n_exponent": n_exp, "claimed_c_exponent": c_exp,
        "claimed_n_log_power": 0, "family": "test", "memory_method": "synthetic",
    }
    if status == "ok":
        record.update({
            "params": 100 * channels, "macs": macs, "flops": 2 * macs, "uncounted_ops": [],
            "fvcore_macs": macs * (0.5 if block == "cheap" else 1.0),
            "ptflops_macs": macs * (0.9 if block == "cheap" else 1.0),
            "latency_fwd_ms_median": latency, "latency_fwd_ms_iqr": latency * 0.02,
            "latency_fwd_ms_samples": samples,
            "latency_fwdbwd_ms_median": 3 * latency, "latency_fwdbwd_ms_iqr": 3 * latency * 0.02,
            "latency_fwdbwd_ms_samples": [3 * s for s in samples],
            "peak_mem_fwd_bytes": memory, "peak_mem_fwdbwd_bytes": 2 * memory,
        })
    record.update(overrides)
    return record


def write_run(root: Path, name: str, records: Iterable[dict[str, Any]], *, host: str = "testhost",
              suite_toml: str | None = None, suite: str = "synthetic") -> Path:
    """A run directory with a manifest, the records, and optionally a suite.toml."""
    run_dir = root / name
    store.write_manifest(run_dir, {
        "run_id": name, "started_at": "2026-01-01T00:00:00+00:00", "suite": suite,
        "suite_source": "synthetic.toml", "only_blocks": None, "device_override": None, "plugins": [],
        "environment": {"torch_version": "2.13.0+cpu", "python_version": "3.11", "platform": "Linux",
                        "host": host, "cpu_model": "Test CPU", "cpu_count": 2, "torch_threads": 2,
                        "commit": "abc123", "device": "cpu", "device_name": "Test CPU", "nlbench_version": "0.1.0"},
        "dtypes": ["float32"], "threads": 2, "measure": ["params", "flops", "latency_fwd", "memory"],
    })
    for record in records:
        store.append_record(run_dir, record)
    if suite_toml is not None:
        (run_dir / "suite.toml").write_text(suite_toml)
    return run_dir


SIZES = (8, 16, 32, 64)


def standard_records(*, channels: int = 16, run_scale: float = 1.0, device: str = "cpu",
                     oom_at: int | None = 64) -> list[dict[str, Any]]:
    """identity, nl and cheap over SIZES at one C; nl runs out of memory at ``oom_at``."""
    records = []
    for block in ("identity", "nl", "cheap"):
        for size in SIZES:
            if block == "nl" and size == oom_at:
                records.append(case_record(block, channels, size, status="oom", device=device,
                                           error="RuntimeError: CPU out of memory: tried to allocate 1 GiB"))
            else:
                records.append(case_record(block, channels, size, run_scale=run_scale, device=device))
    return records


def channel_records(size: int = 16) -> list[dict[str, Any]]:
    """identity, nl and cheap over C in (8, 16, 32, 64) at one size."""
    return [case_record(block, c, size) for block in ("identity", "nl", "cheap") for c in (8, 32, 64)]


def finite(value: Any) -> bool:
    return value is not None and isinstance(value, (int, float)) and math.isfinite(value)


def attribution_modules(block: str, channels: int, size: int) -> list[dict[str, Any]]:
    """A cost_by_module (store schema 2) with exactly known costs (N = size²): nl runs the
    affinity matmul (C·N² MACs) and a softmax (3·N² FLOPs) in its own forward ("") and two
    1×1 convs ("theta", "g": C²·N MACs each); cheap a C·N-MAC conv ("proj") and C·N
    elementwise FLOPs in its own forward; identity nothing."""
    n = size * size

    def module(name: str, type_: str, **by_class: tuple[int, int]) -> dict[str, Any]:
        classes = {c: {"macs": macs, "flops": flops} for c, (macs, flops) in by_class.items()}
        return {"module": name, "type": type_, "calls": 1, "macs": sum(v["macs"] for v in classes.values()),
                "flops": sum(v["flops"] for v in classes.values()), "by_class": classes}

    c2n = channels * channels * n
    if block == "nl":
        return [module("", "NonLocal", matmul=(channels * n * n, 2 * channels * n * n), softmax=(0, 3 * n * n)),
                module("theta", "Conv2d", conv=(c2n, 2 * c2n)), module("g", "Conv2d", conv=(c2n, 2 * c2n))]
    if block == "cheap":
        return [module("", "Cheap", elementwise=(0, channels * n)),
                module("proj", "Conv2d", conv=(channels * n, 2 * channels * n))]
    return [module("", "Identity")]


def with_attribution(record: dict[str, Any], modules: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """``record`` with ``cost_by_module`` (``modules``, or :func:`attribution_modules`),
    the ``cost_by_class`` they sum to, and macs / flops their totals; a failed case is
    returned as it is (failed cases have no counts)."""
    if record["status"] != "ok":
        return record
    if modules is None:
        modules = attribution_modules(record["block"], record["channels"], record["height"])
    by_class: dict[str, dict[str, int]] = {}
    for entry in modules:
        for op_class, cost in entry["by_class"].items():
            total = by_class.setdefault(op_class, {"macs": 0, "flops": 0})
            total["macs"] += cost["macs"]
            total["flops"] += cost["flops"]
    macs = sum(v["macs"] for v in by_class.values())
    flops = sum(v["flops"] for v in by_class.values())
    return {**record, "cost_by_module": modules, "cost_by_class": by_class, "macs": macs, "flops": flops,
            "fvcore_macs": macs, "ptflops_macs": macs}
