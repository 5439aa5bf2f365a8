"""Where does latency noise come from on this machine? Runs the `resolution` grid
(forward latency only) through the real sweep with one sampling setting changed at a
time, optionally with busy processes beside it, and prints what each change did.

    python benchmarks/noise_study.py --out /tmp/noise [--variants base,threads1,...] [--busy N]

Run it on a quiet machine only (no tests, helpers or other sweeps): it is the
measurement. Results (JSON per variant and a markdown table) go to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from nlbench import store

GRID = """
name = "noise-{name}"
blocks = ["identity", "local", "nl", "a2", "cgnl", "rcca", "ns", "snl", "srl_fft", "srl_lo"]
channels = [64]
resolutions = [8, 16, 24, 32, 48, 64, 96, 128]
measure = ["flops", "latency_fwd"]
[latency]
{latency}
[limits]
case_timeout_s = 120
"""

BEFORE = {"warmup": 1, "min_run_time_s": 0.2, "min_samples": 5, "max_samples": 100, "threads": 2}
VARIANTS: dict[str, dict[str, object]] = {
    "now": {},  # the current defaults (SamplingSettings)
    "block1ms": {"block_ms": 1.0},
    "block2ms": {"block_ms": 2.0},
    "block4ms": {"block_ms": 4.0},
    "before": BEFORE,
    "threads1": {**BEFORE, "threads": 1},
    "retain": {**BEFORE, "threads": 1, "retain_freed_memory": True},
    "stable_warmup": {**BEFORE, "threads": 1, "retain_freed_memory": True, "max_warmup_s": 1.0},
    "blocked": {**BEFORE, "threads": 1, "retain_freed_memory": True, "max_warmup_s": 1.0, "block_ms": 1.0},
}


def toml_value(value: object) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else repr(value)


def run_variant(name: str, latency: dict[str, object], out: Path, busy: int) -> dict[str, object]:
    """One sweep of the grid with these latency settings; its summary statistics."""
    suite = out / f"{name}.toml"
    suite.write_text(GRID.format(name=name, latency="\n".join(f"{k} = {toml_value(v)}" for k, v in latency.items())))
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(busy)]
    started = time.perf_counter()
    try:
        subprocess.run([sys.executable, "-m", "nlbench.cli", "run", "--suite", str(suite), "--out", str(out / "runs")],
                       check=True, capture_output=True)
    finally:
        for hog in hogs:
            hog.kill()
    wall = time.perf_counter() - started
    run_dir = max((out / "runs").glob(f"noise-{name}-*"), key=lambda p: p.stat().st_mtime)
    frame = store.load(run_dir)
    ok = frame[(frame["status"] == "ok") & (frame["latency_fwd_ms_median"] >= 0.1)]
    ratio = ok["latency_fwd_ms_iqr"] / ok["latency_fwd_ms_median"]
    faults = [float(np.median(v)) for v in ok["latency_fwd_minor_faults_samples"] if v]
    return {
        "variant": name, "busy": busy, "run": str(run_dir), "wall_s": round(wall, 1), "cases": int(len(ok)),
        "quiet_share": float((ratio <= 0.10).mean()), "median_iqr_over_median": float(ratio.median()),
        "median_faults_per_call": float(np.median(faults)) if faults else None,
        "contended": int(ok["latency_fwd_warnings"].map(lambda w: "contended" in (w or [])).sum()),
        "medians": dict(zip(ok["label"], ok["latency_fwd_ms_median"].round(4))),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--busy", type=int, default=0, help="busy processes beside the sweep")
    parser.add_argument("--tag", default="", help="suffix for the result file names")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for name in args.variants.split(","):
        summary = run_variant(name, VARIANTS[name], args.out, args.busy)
        (args.out / f"{name}{args.tag}.json").write_text(json.dumps(summary, indent=1))
        print(f"| {name} | busy {args.busy} | {summary['cases']} | {summary['quiet_share']:.0%} | "
              f"{summary['median_iqr_over_median']:.1%} | {summary['median_faults_per_call']} | "
              f"{summary['contended']} | {summary['wall_s']} s |", flush=True)


if __name__ == "__main__":
    main()
