"""Probe trainings several at once: the plan's order (serial = block by block, rates
then seeds then the field), worker processes give the very results of the in-process
path, a worker that dies fails only its job, and workers that cannot build a block or
start say so."""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from nlbench import store
from nlbench.probes import ProbeConfig, default_probe_jobs, run_probe_into, start_probe_run
from nlbench.probes.runs import FieldJob, ProbePlan, TrainJob, lr_trial_cases
from nlbench.probes.training import ProbeResult
from nlbench.probes.workers import ProbeWorkerError

HERE = Path(__file__).parent


def _ok(config: ProbeConfig, job: TrainJob, accuracy: float) -> ProbeResult:
    rate = job.case.lr if job.case.is_lr_trial else job.lr
    return ProbeResult(task=config.task, block=job.case.block, seed=job.case.seed, status="ok", accuracy=accuracy,
                       steps=10, learning_curve=(), steps_per_s=1.0, params=1, macs=1, flops=2, train_s=1.0,
                       config=replace(config, lr=rate), validation_accuracy=accuracy,
                       kind="probe_lr_trial" if job.case.is_lr_trial else "probe")


def test_plan_serial_order_and_rate_choice(tiny: ProbeConfig) -> None:
    config = replace(tiny, seeds=(0, 1), lr_grid=(1e-3, 4e-3))
    plan = ProbePlan(config, [("identity", None), ("local", None)], config.seeds, {}, fields={"identity", "local"})
    assert plan.start() == []
    order, stored = [], []
    while not plan.complete:
        job = plan.take()
        assert job is not None
        order.append(job)
        if isinstance(job, FieldJob):
            stored += plan.finish(job, {"kind": "receptive_field", "block": job.block})
        else:  # the higher rate wins on validation accuracy
            stored += plan.finish(job, _ok(config, job, 0.9 if job.case.lr == 4e-3 or job.lr == 4e-3 else 0.6))
    labels = [(j.block, "field") if isinstance(j, FieldJob) else (j.case.block, j.case.lr, j.case.seed, j.lr)
              for j in order]
    assert labels[:4] == [("identity", 1e-3, 0, None), ("identity", 4e-3, 0, None),
                          ("identity", None, 1, 4e-3), ("identity", "field")]
    assert labels[4:] == [("local", 1e-3, 0, None), ("local", 4e-3, 0, None), ("local", None, 1, 4e-3),
                          ("local", "field")]
    # seed 0 at the chosen rate is the sweep's trial, reused: stored without training
    reused = [f for f in stored if f.result is not None and f.result.lr_trial_reused]
    assert [(f.case.block, f.case.seed) for f in reused] == [("identity", 0), ("local", 0)]
    assert all(f.result.kind == "probe" and f.result.config.lr == 4e-3 for f in reused)
    assert len(stored) == 10  # 4 trials + 4 seeds + 2 fields


def test_plan_runs_two_blocks_trials_side_by_side_and_prefers_the_earlier_block(tiny: ProbeConfig) -> None:
    config = replace(tiny, seeds=(0, 1), lr_grid=(1e-3, 4e-3))
    plan = ProbePlan(config, [("identity", None), ("local", None)], config.seeds, {})
    first, second, third = plan.take(), plan.take(), plan.take()
    assert [j.case.block for j in (first, second, third)] == ["identity", "identity", "local"]
    plan.finish(first, _ok(config, first, 0.5))
    plan.finish(second, _ok(config, second, 0.5))  # identity's rate chosen: its seed 1 goes before local's trial
    nxt = plan.take()
    assert (nxt.case.block, nxt.case.seed, nxt.case.lr) == ("identity", 1, None)


def test_plan_skips_what_is_known(tiny: ProbeConfig) -> None:
    config = replace(tiny, seeds=(0, 1), lr_grid=(1e-3, 4e-3))
    known = {}
    for case in lr_trial_cases(config, "identity"):
        job = TrainJob(case)
        known[case.case_id] = _ok(config, job, 0.9 if case.lr == 1e-3 else 0.5)
    plan = ProbePlan(config, [("identity", None)], config.seeds, known)
    reused = plan.start()
    assert [(f.case.seed, f.result.config.lr) for f in reused] == [(0, 1e-3)]
    job = plan.take()
    assert (job.case.seed, job.lr) == (1, 1e-3) and plan.take() is None


def test_workers_give_the_in_process_results(tiny: ProbeConfig, tmp_path: Path) -> None:
    config = replace(tiny, seeds=(0, 1))
    runs = []
    for jobs in (None, 2):
        run_dir = start_probe_run(config, tmp_path / str(jobs), ["identity", "local"])
        run_probe_into(run_dir, config, ["identity", "local"], jobs=jobs)
        runs.append({r["case_id"]: r for r in store.read_records(run_dir)})
    serial, parallel = runs
    assert set(serial) == set(parallel)
    for case_id, record in serial.items():
        other = parallel[case_id]
        if record["kind"] == "receptive_field":
            assert record["heatmap"] == other["heatmap"]
            continue
        assert record["status"] == other["status"] == "ok"
        assert (record["accuracy"], record["learning_curve"], record["lr_choice"]) == (
            other["accuracy"], other["learning_curve"], other["lr_choice"])
        assert (record["jobs"], other["jobs"]) == (1, 2)
        assert "mmap_max=0" in other["allocator"]  # workers keep freed memory


@pytest.fixture()
def crash_plugin(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.syspath_prepend(str(HERE))  # a spawned worker takes this process's sys.path
    yield "probe_crash_plugin"
    sys.modules.pop("probe_crash_plugin", None)


def test_a_dying_worker_fails_only_its_job(tiny: ProbeConfig, tmp_path: Path, crash_plugin: str) -> None:
    config = replace(tiny, seeds=(0,), lr_grid=(4e-3,))
    blocks = ["probe_test_dies", "identity", "probe_test_exits"]
    run_dir = start_probe_run(config, tmp_path, blocks, plugins=[crash_plugin])
    run_probe_into(run_dir, config, blocks, jobs=2, plugins=[crash_plugin])
    records = {(r["block"], r["kind"]): r for r in store.read_records(run_dir)}
    died = records[("probe_test_dies", "probe_lr_trial")]
    assert died["status"] == "oom" and "SIGKILL" in died["error"] and died["accuracy"] is None
    exited = records[("probe_test_exits", "probe_lr_trial")]
    assert exited["status"] == "error" and "exit code 3" in exited["error"]
    assert records[("identity", "probe")]["status"] == "ok"
    # the run is complete: a resume trains nothing
    assert run_probe_into(run_dir, config, blocks, jobs=2, plugins=[crash_plugin]).trained == 0


def test_workers_refuse_a_block_registered_here_only(tiny: ProbeConfig, tmp_path: Path, test_blocks) -> None:
    run_dir = start_probe_run(tiny, tmp_path, ["probe_test_counting"])
    with pytest.raises(ProbeWorkerError, match="probe_test_counting are registered in this process only"):
        run_probe_into(run_dir, tiny, ["probe_test_counting"], jobs=1)
    assert list(store.read_records(run_dir)) == []


def test_a_worker_that_cannot_start_stops_the_run(tiny: ProbeConfig, tmp_path: Path) -> None:
    run_dir = start_probe_run(tiny, tmp_path, ["identity"])
    with pytest.raises(ProbeWorkerError, match="could not start.*no_such_plugin_module"):
        run_probe_into(run_dir, tiny, ["identity"], jobs=1, plugins=["no_such_plugin_module"])


def test_default_jobs_is_cores_over_threads(tiny: ProbeConfig, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {0, 1, 2, 3})
    assert default_probe_jobs(replace(tiny, threads=1)) == 4
    assert default_probe_jobs(replace(tiny, threads=3)) == 1
    assert default_probe_jobs(replace(tiny, threads=8)) == 1
    with pytest.raises(ValueError, match="jobs"):
        run_probe_into(Path("nowhere"), tiny, ["identity"], jobs=0)
