"""The sweep runner: every case recorded, failures are data, interrupted runs resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from nlbench import store
from nlbench.suite import load_suite, parse_suite
from nlbench.sweep import run_sweep, start_run

REPO = Path(__file__).resolve().parent.parent

FAULTY_PLUGIN = textwrap.dedent(
    """
    import torch
    from torch import nn
    from nlbench.blocks import ClaimedComplexity, register_block

    CLAIM = ClaimedComplexity("O(C·HW)", n_exponent=1.0, c_exponent=1.0)

    @register_block("test_raises_at_12", family="test", paper="tests", claimed=CLAIM)
    class RaisesAt12(nn.Module):
        def __init__(self, channels):
            super().__init__()
            self.conv = nn.Conv2d(channels, channels, 1)

        def forward(self, x):
            if x.shape[-2] == 12:
                raise ValueError("this block refuses height 12")
            return x + self.conv(x)

    @register_block("test_huge_alloc", family="test", paper="tests", claimed=CLAIM)
    class HugeAlloc(nn.Module):
        def __init__(self, channels):
            super().__init__()
            self.conv = nn.Conv2d(channels, channels, 1)

        def forward(self, x):
            waste = torch.ones(64 * 2**30 // 4)  # 64 GiB: over any limit here
            return x + self.conv(x) + waste[0]
    """
)


@pytest.fixture()
def faulty_plugin(install_plugin) -> str:
    return install_plugin("nlbench_faulty_blocks", FAULTY_PLUGIN)


def test_smoke_suite_measures_every_block_with_nothing_uncounted(tmp_path: Path) -> None:
    suite = load_suite("smoke")
    run_dir = start_run(suite, tmp_path, only_blocks=None, device=None, plugins=[])
    result = run_sweep(suite, run_dir)
    df = store.load(run_dir)
    assert result.statuses == {"ok": len(suite.cases())}, df[df.status != "ok"][["label", "error"]].to_string()
    assert len(df) == len(suite.cases())
    assert (df["uncounted_ops"].apply(len) == 0).all()
    measured = df[df.block != "identity"]
    assert (measured["macs"] > 0).all() and (measured["flops"] >= 2 * measured["macs"]).all()
    classes = [c for c in df.columns if c.startswith("flops_")]
    assert (measured[classes].sum(axis=1) == measured["flops"]).all()
    assert (measured[["macs_conv", "macs_matmul", "macs_fft"]].sum(axis=1) == measured["macs"]).all()
    modules = measured["cost_by_module"].map(lambda ms: sum(m["flops"] for m in ms))
    assert (modules == measured["flops"]).all()
    assert (df[df.block == "identity"]["macs"] == 0).all()
    for column in ("latency_fwd_ms_median", "latency_fwdbwd_ms_median", "peak_mem_fwd_bytes", "params"):
        assert df[column].notna().all(), column
    assert (df["latency_fwd_ms_samples"].apply(len) == 3).all()
    assert (df["allocator"].str.contains("mmap_max=0") & df["allocator"].str.contains("hugetlb=1")).all(), \
        "the worker keeps freed memory and asks for huge pages by default"
    manifest = store.read_manifest(run_dir)
    assert manifest["environment"]["torch_version"] and manifest["suite"] == "smoke"
    assert (run_dir / "suite.toml").exists()


def test_failures_are_recorded_and_the_sweep_goes_on(tmp_path: Path, faulty_plugin: str) -> None:
    suite = parse_suite({
        "name": "faulty", "blocks": ["test_raises_at_12", "test_huge_alloc", "identity"], "channels": [4],
        "resolutions": [8, [12, 10]], "measure": ["params", "flops"], "limits": {"max_memory_gib": 4},
    })
    run_dir = start_run(suite, tmp_path, only_blocks=None, device=None, plugins=[faulty_plugin])
    run_sweep(suite, run_dir, plugins=[faulty_plugin])
    df = store.load(run_dir).set_index("label")
    assert len(df) == 6
    failed = df.loc["test_raises_at_12 C4 12x10 B1"]
    assert failed["status"] == "error" and "refuses height 12" in failed["error"]
    assert df.loc["test_raises_at_12 C4 8x8 B1"]["status"] == "ok"
    assert df.loc["test_raises_at_12 C4 8x8 B1"]["macs"] > 0
    for label in ("test_huge_alloc C4 8x8 B1", "test_huge_alloc C4 12x10 B1"):
        assert df.loc[label]["status"] == "oom", df.loc[label]["error"]
        assert df.loc[label]["params"] > 0, "measurements taken before the failure are kept"
    assert (df[df.block == "identity"]["status"] == "ok").all()


def test_cases_over_the_memory_estimate_are_skipped(tmp_path: Path) -> None:
    suite = parse_suite({"name": "big", "blocks": ["nl"], "channels": [8], "resolutions": [4, 256],
                         "measure": ["params"], "limits": {"max_memory_gib": 1}})
    run_dir = start_run(suite, tmp_path, only_blocks=None, device=None, plugins=[])
    run_sweep(suite, run_dir, isolate=False)
    df = store.load(run_dir).set_index("height")
    assert df.loc[4]["status"] == "ok"
    assert df.loc[256]["status"] == "skipped" and "GiB" in df.loc[256]["error"]


def test_sigkill_then_resume_gives_exactly_one_result_per_case(tmp_path: Path) -> None:
    suite_file = tmp_path / "slow.toml"
    suite_file.write_text(textwrap.dedent("""
        name = "slow"
        blocks = ["identity", "local", "nl"]
        channels = [16]
        resolutions = [8, 12, 16]
        measure = ["params", "latency_fwd"]
        [latency]
        warmup = 1
        min_run_time_s = 0.4
        min_samples = 3
        max_samples = 1000000
    """))  # every case samples for 0.4 s, so the kill lands mid-sweep
    out = tmp_path / "results"
    command = [sys.executable, "-m", "nlbench.cli", "run", "--suite", str(suite_file), "--out", str(out)]
    process = subprocess.Popen(command, cwd=REPO, start_new_session=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    results = None
    while time.time() < deadline:
        found = list(out.glob("slow-*/results.jsonl"))
        if found and len(found[0].read_text().splitlines()) >= 2:
            results = found[0]
            break
        time.sleep(0.1)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert results is not None, "the sweep never finished two cases"
    finished_before = len(results.read_text().splitlines())
    assert finished_before < 9, "the kill came too late to test resuming"
    resumed = subprocess.run([sys.executable, "-m", "nlbench.cli", "run", "--resume", str(results.parent)],
                             cwd=REPO, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    lines = results.read_text().splitlines()
    ids = [json.loads(line)["case_id"] for line in lines]
    assert len(ids) == 9 and len(set(ids)) == 9, "exactly one result per case"
    df = store.load(results.parent)
    assert len(df) == 9 and (df["status"] == "ok").all()


def test_rounds_interleave_cases_and_keep_each_samples_round(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from nlbench.sweep import IsolatedRunner

    starts = []
    original_start = IsolatedRunner._start

    def counted_start(self, cpu: bool):  # noqa: ANN001, ANN202
        starts.append(cpu)
        return original_start(self, cpu)

    monkeypatch.setattr(IsolatedRunner, "_start", counted_start)
    suite = parse_suite({"name": "rounds", "blocks": ["identity", "nl"], "channels": [4], "resolutions": [4, 6],
                         "measure": ["params", "latency_fwd"],
                         "latency": {"warmup": 1, "min_run_time_s": 0.0, "min_samples": 3, "max_samples": 3,
                                     "rounds": 3}})
    run_dir = start_run(suite, tmp_path, only_blocks=None, device=None, plugins=[])
    order = []
    result = run_sweep(suite, run_dir, progress=lambda case, record, i, n: order.append(case.label))
    assert result.ran == 4 and result.statuses == {"ok": 4}
    assert len(starts) == 3, "each round in a fresh worker process"
    assert order == [c.label for c in suite.cases()], "records are stored in case order after the last round"
    for _, row in store.load(run_dir).iterrows():
        assert row["latency_fwd_round_samples"] == [0, 0, 0, 1, 1, 1, 2, 2, 2]
        assert len(row["latency_fwd_ms_samples"]) == 9 and row["latency_fwd_warmup_calls"] >= 3, "each round warms up"
        assert row["params"] >= 0, "the first round measured everything; later ones latency only"


def test_a_suite_can_measure_with_glibcs_default_allocator(tmp_path: Path) -> None:
    from nlbench.measure.allocator import ALLOCATOR_DEFAULT

    suite = parse_suite({"name": "plain-malloc", "blocks": ["identity"], "channels": [4], "resolutions": [4],
                         "measure": ["params"], "latency": {"retain_freed_memory": False, "huge_pages": False}})
    run_dir = start_run(suite, tmp_path, only_blocks=None, device=None, plugins=[])
    run_sweep(suite, run_dir)
    assert store.load(run_dir)["allocator"].tolist() == [ALLOCATOR_DEFAULT]


def test_a_run_without_latency_has_no_rounds_to_repeat(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Counts only (e.g. the gate's cost tier on a suite with 20 rounds): one pass per
    case, one worker — later rounds repeat latencies, and there are none."""
    from nlbench.sweep import IsolatedRunner

    starts = []
    original_start = IsolatedRunner._start
    monkeypatch.setattr(IsolatedRunner, "_start", lambda self, cpu: starts.append(cpu) or original_start(self, cpu))
    suite = parse_suite({"name": "counts", "blocks": ["identity", "nl"], "channels": [4], "resolutions": [4],
                         "measure": ["params", "flops"], "latency": {"rounds": 5}})
    run_dir = start_run(suite, tmp_path, only_blocks=None, device=None, plugins=[])
    result = run_sweep(suite, run_dir)
    assert result.statuses == {"ok": 2} and len(starts) == 1
