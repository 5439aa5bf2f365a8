"""Synthetic gate inputs: run directories written through nlbench.store with raw
latency samples drawn from a seeded log-normal, so a known slowdown is a known ratio.
(A uniquely named helper module, imported by the gate tests.)"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

import numpy as np

from nlbench import store
from nlbench.vocabulary import latency_warnings


def samples(median_ms: float, n: int = 30, spread: float = 0.01, seed: int = 0) -> list[float]:
    """``n`` log-normal samples around ``median_ms`` with relative spread ``spread``."""
    rng = np.random.default_rng(seed)
    return [float(v) for v in median_ms * np.exp(rng.normal(0.0, spread, n))]


def record(block: str, *, size: int = 16, fwd_ms: float = 2.0, slowdown: float = 1.0, params: int = 1000,
           macs: int = 50_000, seed: int = 0, n: int = 30, spread: float = 0.01, status: str = "ok",
           **overrides: Any) -> dict[str, Any]:
    """One sweep record whose forward takes ``fwd_ms × slowdown`` (forward+backward 3×)."""
    row: dict[str, Any] = {
        "kind": "sweep", "case_id": f"{block}-{size}", "block": block, "options": {}, "channels": 16,
        "height": size, "width": size, "frames": None, "batch": 1, "device": "cpu", "dtype": "float32",
        "status": status, "label": f"{block} C16 {size}x{size} B1", "error": None if status == "ok" else "boom",
    }
    if status == "ok":
        row.update(params=params, macs=macs, flops=2 * macs)
        for name, scale in (("fwd", 1.0), ("fwdbwd", 3.0)):
            values = samples(fwd_ms * scale * slowdown, n, spread, seed + (0 if name == "fwd" else 1000))
            median = float(np.median(values))
            iqr = float(np.subtract(*np.percentile(values, [75, 25])))
            row.update({f"latency_{name}_ms_samples": values, f"latency_{name}_ms_median": median,
                        f"latency_{name}_ms_iqr": iqr,
                        f"latency_{name}_warnings": latency_warnings(median, iqr, n_samples=len(values))})
    row.update(overrides)
    return row


def write_run(root: Path, name: str, records: Iterable[dict[str, Any]], *, host: str = "testhost",
              session: str | None = "s1", threads: int = 1, suite_toml: str | None = None) -> Path:
    """A run directory holding ``records``, with a manifest naming the machine."""
    run_dir = Path(root) / name
    store.write_manifest(run_dir, {
        "run_id": name, "started_at": "2026-01-01T00:00:00+00:00", "suite": "synthetic",
        "suite_source": "synthetic.toml", "only_blocks": None, "device_override": None, "plugins": [],
        "environment": {"torch_version": "2.13.0+cpu", "host": host, "cpu_model": "Test CPU",
                        "device_name": "Test CPU", "device": "cpu"},
        "threads": threads, "gate_session": session, "measure": ["params", "flops", "latency_fwd", "latency_fwdbwd"],
    })
    for row in records:
        store.append_record(run_dir, row)
    if suite_toml is not None:
        (run_dir / "suite.toml").write_text(suite_toml)
    return run_dir
