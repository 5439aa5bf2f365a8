"""The ray executor: the smoke suite on a local Ray cluster equals the local run case for
case (ids, params, MACs, FLOPs), one record per case, resources keep timed tasks one at a
time, and a task killed mid-way is recorded as lost and measured again by ``--resume``."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")

from nlbench import store  # noqa: E402
from nlbench.cli import main  # noqa: E402
from nlbench.measure.registry import CaseSettings  # noqa: E402
from nlbench.ray_executor import MEASURE_SLOT, RayExecutorError, task_resources  # noqa: E402
from nlbench.suite import load_suite  # noqa: E402
from nlbench.sweep import run_sweep, start_run  # noqa: E402
from nlbench.vocabulary import SamplingSettings  # noqa: E402

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory):
    """A local Ray cluster, once per module: 2 CPUs, one measuring slot, and the repo on
    the workers' path (for the crash plugin)."""
    marker = tmp_path_factory.mktemp("ray") / "crashed"
    ray.init(num_cpus=2, resources={MEASURE_SLOT: 1}, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
                                       "NLBENCH_TEST_CRASH_MARKER": str(marker)}})
    yield marker
    ray.shutdown()


def _by_case(run_dir: Path) -> dict[str, tuple]:
    frame = store.load(run_dir)
    return {row.case_id: (row.status, row.params, row.macs, row.flops) for row in frame.itertuples()}


def test_smoke_on_ray_equals_the_local_run_case_for_case(cluster, tmp_path: Path) -> None:
    suite = load_suite("smoke")
    local = start_run(suite, tmp_path / "local", only_blocks=None, device=None, plugins=[])
    run_sweep(suite, local)
    on_ray = start_run(suite, tmp_path / "ray", only_blocks=None, device=None, plugins=[])
    result = run_sweep(suite, on_ray, executor="ray")
    assert result.statuses == {"ok": len(suite.cases())}
    assert _by_case(on_ray) == _by_case(local)
    scan = store.scan_records(on_ray)
    assert len(scan.records) == len(suite.cases()) and not scan.duplicates and not scan.damaged_lines
    hosts = {r.get("host") for r in scan.records}
    assert hosts == {__import__("socket").gethostname()}, "each record names the host it was measured on"


def test_a_task_killed_mid_way_is_recorded_and_resume_measures_it_again(cluster, tmp_path: Path,
                                                                         capsys: pytest.CaptureFixture[str]) -> None:
    suite_file = tmp_path / "crash.toml"
    suite_file.write_text('name = "crash"\nblocks = ["nl", "a2"]\nchannels = [8]\nresolutions = [6]\n'
                          'measure = ["params", "flops", "crash_once"]\n')
    args = ["run", "--suite", str(suite_file), "--plugin", "tests.ray_crash_plugin", "--executor", "ray",
            "--out", str(tmp_path)]
    assert main(args) == 0
    (run_dir,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    first = store.scan_records(run_dir).records
    lost = [r for r in first if r.get(store.LOST_FIELD)]
    assert len(first) == 2 and len(lost) == 1, "the crashed case is recorded, the other measured"
    assert lost[0]["status"] == "error" and "task lost" in lost[0]["error"]
    assert lost[0]["case_id"] == cluster.read_text(), "the case that crashed is the one recorded as lost"
    assert store.finished_case_ids(run_dir) == {r["case_id"] for r in first if not r.get(store.LOST_FIELD)}
    assert store.read_manifest(run_dir)["executor"] == "ray"
    assert main(["run", "--resume", str(run_dir)]) == 0  # the run's executor, from its manifest
    frame = store.load(run_dir)
    assert sorted(frame["status"]) == ["ok", "ok"] and frame["survived_crash_once"].all()
    assert not store.scan_records(run_dir).duplicates, "a lost record replaced by its resume is no duplicate"


def test_manifest_lists_the_cluster(cluster, tmp_path: Path) -> None:
    assert main(["run", "--suite", "smoke", "--blocks", "identity", "--measure", "params", "--executor", "ray",
                 "--out", str(tmp_path)]) == 0
    (run_dir,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    machines = store.read_manifest(run_dir)["cluster"]
    assert len(machines) == 1 and machines[0]["cpus"] == 2 and machines[0][MEASURE_SLOT] == 1


def test_timed_tasks_take_the_node_slot_and_counting_tasks_one_cpu() -> None:
    timed = CaseSettings(measure=("params", "latency_fwd"), sampling=SamplingSettings(threads=1))
    counting = CaseSettings(measure=("params", "flops", "counters"))
    assert task_resources(timed, "cpu") == {"num_cpus": 1, "resources": {MEASURE_SLOT: 1}}
    assert task_resources(counting, "cpu") == {"num_cpus": 1}
    assert task_resources(timed, "cuda")["num_gpus"] == 1


def test_a_cluster_without_measuring_slots_is_refused_with_the_fix(tmp_path: Path) -> None:
    ray.shutdown()  # the module's cluster is restarted by the next test that needs it? no: keep this last
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    try:
        suite = load_suite("smoke")
        run_dir = start_run(suite, tmp_path, only_blocks=["identity"], device=None, plugins=[])
        with pytest.raises(RayExecutorError, match="--resources"):
            run_sweep(suite, run_dir, only_blocks=["identity"], executor="ray")
    finally:
        ray.shutdown()
