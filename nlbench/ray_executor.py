"""The ``ray`` executor: a sweep's cases as Ray tasks on a cluster, the records streamed
back to the driver, which alone writes the store.

Ray's CPU resources are logical — it does not stop two tasks from sharing a core — so
measurement interference is designed out with resources:

* a case that times anything (latency, memory) asks for one :data:`MEASURE_SLOT` — a
  custom resource each node offers once (``ray start --resources '{"nlbench_slot": 1}'``;
  a Ray instance this module starts itself has it) — and, on the GPU, one GPU: at most
  one measuring task per node (per GPU on GPU nodes) at a time;
* a counting-only case (``params``, ``flops``, ``counters``) asks for one CPU and no
  slot, so those run as wide as the cluster allows;
* inside the task the measuring threads are pinned as on one machine
  (``latency.threads``, :func:`nlbench.measure.run_case.measure_case`).

Failures are data here too: a task whose worker died or whose node was lost is recorded
as ``error`` with ``lost: true`` — :func:`nlbench.store.finished_case_ids` leaves such a
case to ``--resume`` — a task Ray killed for memory as ``oom``, and a task that
outlives its time limit is cancelled and recorded as ``timeout``.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Callable

from nlbench.vocabulary import LATENCY_MEASUREMENTS, STATUS_ERROR, STATUS_OOM, STATUS_TIMEOUT

if TYPE_CHECKING:
    from nlbench.measure.registry import CaseSettings
    from nlbench.sweep import CaseTask, PendingCase

#: The custom resource a node offers once: one measuring task per node at a time.
MEASURE_SLOT = "nlbench_slot"
#: Measurements that time or watch memory, and so must not share a node with another.
TIMED_MEASUREMENTS: tuple[str, ...] = (*LATENCY_MEASUREMENTS, "memory", "profile")
#: Seconds a task may take to start (a fresh Ray worker imports torch) beyond the case limit.
TASK_STARTUP_S = 120.0


class RayExecutorError(RuntimeError):
    """Ray is missing, unreachable, or the cluster cannot run the suite's tasks."""


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise RayExecutorError("the ray executor needs Ray: pip install 'nlbench[ray]'") from None
    return ray


def connect(address: str | None) -> bool:
    """Connect to the cluster at ``address`` ('auto' or HOST:PORT), or start a local Ray
    instance with one measuring slot; True when this call started or joined it (and so
    must shut it down). An already initialised Ray (a test's, a notebook's) is used as is."""
    ray = _ray()
    if ray.is_initialized():
        return False
    if address:
        try:
            ray.init(address=address, log_to_driver=False)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise RayExecutorError(f"cannot connect to the Ray cluster at {address!r}: {exc}") from None
    else:
        ray.init(resources={MEASURE_SLOT: 1}, log_to_driver=False, include_dashboard=False)
    return True


def cluster_machines() -> list[dict[str, Any]]:
    """The live nodes of the connected cluster: host, address, CPUs, GPUs, slots."""
    ray = _ray()
    machines = []
    for node in ray.nodes():
        if not node.get("Alive"):
            continue
        resources = node.get("Resources", {})
        machines.append({"host": node.get("NodeManagerHostname"), "address": node.get("NodeManagerAddress"),
                         "cpus": resources.get("CPU", 0), "gpus": resources.get("GPU", 0),
                         MEASURE_SLOT: resources.get(MEASURE_SLOT, 0)})
    return machines


def task_resources(settings: "CaseSettings", device: str) -> dict[str, Any]:
    """The Ray resources one task of these settings asks for (see the module docstring)."""
    timed = any(m in TIMED_MEASUREMENTS for m in settings.measure)
    threads = settings.sampling.threads or 1
    if device == "cuda":
        return {"num_cpus": threads if timed else 1, "num_gpus": 1}
    if timed:
        return {"num_cpus": threads, "resources": {MEASURE_SLOT: 1}}
    return {"num_cpus": 1}


def _measure(task: "CaseTask", settings: "CaseSettings", plugins: list[str]) -> dict[str, Any]:
    """The Ray task body: measure one unit of a case on whichever node runs it."""
    from nlbench.blocks import load_plugin
    from nlbench.measure.run_case import measure_case

    for plugin in plugins:
        load_plugin(plugin)
    return measure_case(task.case, task.settings(settings))


def _failed(task: "CaseTask", status: str, message: str, *, lost: bool = False) -> dict[str, Any]:
    from nlbench.measure.run_case import base_record
    from nlbench.store import LOST_FIELD

    record = base_record(task.case)
    record.update(status=status, error=message, duration_s=None)
    if lost:
        record[LOST_FIELD] = True
    return record


def _record_of(ref: Any, task: "CaseTask") -> dict[str, Any]:
    """The task's record, or a failure record saying how Ray lost it."""
    ray = _ray()
    exceptions = ray.exceptions
    try:
        return ray.get(ref)
    except exceptions.OutOfMemoryError as exc:
        return _failed(task, STATUS_OOM, f"Ray killed the task for memory: {str(exc)[:500]}")
    except exceptions.TaskCancelledError:
        return _failed(task, STATUS_TIMEOUT, "cancelled after its time limit")
    except (exceptions.WorkerCrashedError, exceptions.NodeDiedError, exceptions.ActorDiedError,
            exceptions.ObjectLostError) as exc:
        return _failed(task, STATUS_ERROR, f"task lost ({type(exc).__name__}): {str(exc)[:500]}", lost=True)
    except exceptions.RayTaskError as exc:  # the task itself raised (measure_case records failures, so rare)
        return _failed(task, STATUS_ERROR, f"{type(exc).__name__}: {str(exc)[:1500]}")


def run_on_ray(pending: list["PendingCase"], settings: "CaseSettings", plugins: list[str],
               keep: Callable[["PendingCase"], None], *, address: str | None = None) -> None:
    """Run every pending case as Ray tasks (rounds and retries as further tasks), calling
    ``keep`` with each case as it finishes — in this process, so it is the one writer."""
    from nlbench.sweep import absorb, next_task, skipped_record

    ray = _ray()
    started_here = connect(address)
    try:
        remote = ray.remote(max_retries=0)(_measure)
        _check_cluster(settings, pending)
        in_flight: dict[Any, tuple["PendingCase", "CaseTask", float]] = {}
        cancelled: set[Any] = set()
        limit_s = settings.limits.case_timeout_s + TASK_STARTUP_S

        def submit(item: "PendingCase") -> None:
            task = next_task(item, settings)
            ref = remote.options(**task_resources(settings, item.case.device)).remote(task, settings, plugins)
            in_flight[ref] = (item, task, time.monotonic())

        for item in pending:
            skipped = skipped_record(item.case, settings)
            if skipped is not None:
                item.record = skipped
                keep(item)
            else:
                submit(item)
        while in_flight:
            ready, _ = ray.wait(list(in_flight), num_returns=1, timeout=5.0)
            for ref in ready:
                item, task, _ = in_flight.pop(ref)
                cancelled.discard(ref)
                if absorb(item, task, _record_of(ref, task), settings):
                    submit(item)
                else:
                    keep(item)
            now = time.monotonic()
            for ref, (_, _, started) in in_flight.items():
                if now - started > limit_s and ref not in cancelled:  # a hang the case's deadline could not stop
                    ray.cancel(ref, force=True)
                    cancelled.add(ref)
    finally:
        if started_here:
            ray.shutdown()


def _check_cluster(settings: "CaseSettings", pending: list["PendingCase"]) -> None:
    """Refuse a sweep whose timed tasks no node can run (no measuring slot or no GPU)."""
    machines = cluster_machines()
    devices = {item.case.device for item in pending}
    timed = any(m in TIMED_MEASUREMENTS for m in settings.measure)
    if timed and "cpu" in devices and not any(m[MEASURE_SLOT] for m in machines):
        raise RayExecutorError(
            f"no node of the cluster offers the {MEASURE_SLOT!r} resource, so no timed case could run: start "
            f"each node with  ray start ... --resources '{{\"{MEASURE_SLOT}\": 1}}'  (one measuring task per node)")
    if "cuda" in devices and not any(m["gpus"] for m in machines):
        raise RayExecutorError("the suite has CUDA cases but no node of the cluster has a GPU")
