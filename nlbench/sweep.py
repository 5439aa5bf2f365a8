"""The sweep runner: cases through the measurers into the store, one isolated worker
process at a time, so that an out-of-memory kill, a hang or a crash in one case is
recorded and the sweep goes on.

Isolation: cases run in a child process (``spawn``). On the CPU the child's address
space is capped (``RLIMIT_AS``) at its start-up size plus the suite's memory limit, so
an oversized allocation fails inside the case as ``oom`` instead of waking the kernel's
OOM killer; if the child dies anyway (SIGKILL), the case in flight is recorded as
``oom``; any other death (a segfault, an ``exit()``) is an ``error`` naming the signal
or exit code, and a fresh worker takes the next case. A case that outlives its time
limit (``limits.case_timeout_s``, counted from when the ready worker receives it; a
worker's own start-up is allowed :data:`WORKER_STARTUP_S` separately) is killed and
recorded as ``timeout``. Cases whose estimated peak memory exceeds the limit are not
run at all but recorded as ``skipped``. A run directory has one writer at a time.

That is the ``local`` executor; ``ray`` (:mod:`nlbench.ray_executor`) runs the same units
of work (:func:`next_task`, folded in by :func:`absorb`) as Ray tasks on a cluster, and
this process still writes every record.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import datetime as dt
import multiprocessing as mp
import os
import resource
import shutil
import signal
import sys
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Callable, Iterator

from nlbench import store
from nlbench.case import DTYPE_BYTES, Case
from nlbench.measure.registry import CaseSettings
from nlbench.measure.run_case import base_record
from nlbench.progress import ProgressCallback
from nlbench.measure.allocator import worker_environment
from nlbench.measure.latency import PASSES, LatencyResult
from nlbench.vocabulary import (
    LATENCY_MEASUREMENTS, STATUS_ERROR, STATUS_OK, STATUS_OOM, STATUS_SKIPPED, STATUS_TIMEOUT, WARNING_CONTENDED,
    metric,
)
from nlbench.suite import Suite, load_suite

GIB = 2**30
EXECUTOR_LOCAL = "local"
EXECUTOR_RAY = "ray"
#: Where a sweep's cases run: one isolated worker here, or Ray tasks on a cluster.
EXECUTORS: tuple[str, ...] = (EXECUTOR_LOCAL, EXECUTOR_RAY)
#: Seconds a fresh worker may take to start (import torch, load plugins) before its
#: first case; not counted against the case's own time limit.
WORKER_STARTUP_S = 120.0
#: Seconds past the case's time limit the parent waits for the worker's own
#: timeout record (the worker checks its deadline between calls) before killing it.
KILL_GRACE_S = 1.0
#: Seconds to wait for a worker that closed its pipe to exit, to record how it ended.
DYING_WORKER_WAIT_S = 10.0
WORKER_READY = "ready"
#: Bumped whenever what the parent and its worker exchange changes, so a gate that
#: runs another tree's worker (``nlbench gate --base REF``) can tell it speaks the same.
WORKER_PROTOCOL = 1


@dataclass(frozen=True)
class SweepResult:
    """Where a sweep wrote and how its cases ended."""

    run_dir: Path
    total_cases: int
    ran: int
    skipped_as_done: int
    statuses: dict[str, int]


def case_settings(suite: Suite, artifacts_dir: Path | str | None = None) -> CaseSettings:
    """The per-case settings of a suite: its measurements, sampling and limits, unchanged;
    ``artifacts_dir`` (the run directory, made absolute) is where file-writing measurers write."""
    return CaseSettings(measure=suite.measure, sampling=suite.latency, limits=suite.limits,
                        artifacts_dir=str(Path(artifacts_dir).resolve()) if artifacts_dir is not None else None)


def estimate_peak_bytes(case: Case) -> int:
    """A deliberately generous estimate of a case's peak memory during forward+backward.

    Blocks with a dense N×N affinity (declared in their spec) keep a few N×N matrices
    per image alive for backward; every block keeps some tens of feature maps.
    """
    from nlbench.blocks import get_spec

    itemsize = DTYPE_BYTES[case.dtype]
    n = case.positions
    dense = get_spec(case.block).dense_affinity_for(dict(case.options))
    per_image = (6 * n * n if dense else 0) + 48 * case.channels * n
    return case.batch * per_image * itemsize


def start_run(suite: Suite, out_root: Path, *, only_blocks: list[str] | None, device: str | None,
              plugins: list[str], name: str | None = None, calibration: dict[str, Any] | None = None,
              extra: dict[str, Any] | None = None) -> Path:
    """Create a run directory (through the store) with its manifest and a copy of the
    suite file. ``name`` replaces the suite's name in the run id; ``calibration`` one
    already taken (the gate's two sides share one); ``extra`` adds manifest fields."""
    from nlbench.environment import fingerprint

    run_device = device or suite.device[0]
    if calibration is None:
        calibration = machine_calibration(suite, run_device)
    run_dir = store.create_run(out_root, name or suite.name, {
        "started_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "suite": suite.name,
        "suite_source": suite.source,
        "only_blocks": only_blocks,
        "device_override": device,
        "plugins": plugins,
        "environment": fingerprint(run_device),
        "dtypes": list(suite.dtype),
        "threads": suite.latency.threads,
        "measure": list(suite.measure),
        "calibration": calibration,
        **(extra or {}),
    })
    if Path(suite.source).exists():
        shutil.copyfile(suite.source, run_dir / "suite.toml")
    return run_dir


def machine_calibration(suite: Suite, device: str) -> dict[str, Any] | None:
    """The machine's matmul and copy rates and its noise floor (in the suite's sample
    blocks) at the suite's thread count, when the suite times anything (None
    otherwise); a calibration that fails says why instead."""
    if not any(name in LATENCY_MEASUREMENTS for name in suite.measure):
        return None
    from nlbench.measure.calibrate import calibrate

    try:
        return calibrate(device, suite.latency.threads, block_ms=suite.latency.block_ms).to_manifest()
    except (RuntimeError, AssertionError) as exc:  # e.g. CUDA asked for on a machine without it
        return {"error": f"{type(exc).__name__}: {exc}"}


def resume_arguments(run_dir: Path) -> tuple[Suite, list[str] | None, str | None, list[str]]:
    """The suite (with the measurements the run took), block filter, device and plugins
    a run was started with. The plugins are loaded first, so the suite's plugin blocks
    and measurers validate."""
    from nlbench.blocks import load_plugin

    manifest = store.read_manifest(run_dir)
    plugins = manifest.get("plugins") or []
    only_blocks = manifest.get("only_blocks")
    device = manifest.get("device_override")
    if not isinstance(plugins, list) or not all(isinstance(p, str) for p in plugins):
        raise store.StoreError(f"{run_dir}/{store.MANIFEST_FILE}: field 'plugins': expected a list of module names")
    if only_blocks is not None and (not isinstance(only_blocks, list) or not all(isinstance(b, str) for b in only_blocks)):
        raise store.StoreError(f"{run_dir}/{store.MANIFEST_FILE}: field 'only_blocks': expected null or a list of names")
    if device is not None and not isinstance(device, str):
        raise store.StoreError(f"{run_dir}/{store.MANIFEST_FILE}: field 'device_override': expected null or a string")
    for plugin in plugins:
        load_plugin(plugin)
    suite_path = Path(run_dir) / "suite.toml"
    source = str(suite_path) if suite_path.exists() else store.manifest_field(run_dir, manifest, "suite_source", str)
    suite = load_suite(source)
    measure = manifest.get("measure")
    if measure is not None:  # the run's measurements, e.g. counts only (`run --measure`, `gate --cost-only`)
        from nlbench.measure.registry import measurer_names

        if not isinstance(measure, list) or not measure or not all(m in measurer_names() for m in measure):
            raise store.StoreError(f"{run_dir}/{store.MANIFEST_FILE}: field 'measure': expected a list drawn from "
                                   f"{', '.join(measurer_names())}")
        suite = dataclasses.replace(suite, measure=tuple(measure))
    return suite, only_blocks, device, plugins


@dataclass(frozen=True)
class CaseTask:
    """One unit of work sent to a worker: a case, the sampling round, and whether only
    its latency is to be measured (later rounds and contention retries)."""

    case: Case
    round_index: int = 0
    latency_only: bool = False

    def settings(self, base: CaseSettings) -> CaseSettings:
        """The case settings for this unit: only latency measurers when ``latency_only``."""
        measure = tuple(m for m in base.measure if m in LATENCY_MEASUREMENTS) if self.latency_only else base.measure
        return dataclasses.replace(base, measure=measure, round_index=self.round_index)


@dataclass
class PendingCase:
    """A case in flight in the runner: its record so far, the next round, the retries spent."""

    case: Case
    record: dict[str, Any] | None = None
    next_round: int = 0
    retries: int = 0


def run_sweep(suite: Suite, run_dir: Path, *, only_blocks: list[str] | None = None, device: str | None = None,
              plugins: list[str] | None = None, progress: ProgressCallback[Case] | None = None,
              isolate: bool = True, executor: str = EXECUTOR_LOCAL, address: str | None = None) -> SweepResult:
    """Measure every case of ``suite`` that ``run_dir`` does not hold yet.

    With ``latency.rounds`` = R > 1 the cases are measured round-robin: every case
    once (all measurements), then R − 1 further rounds of latency only, so slow drift
    hits every block alike; a case's record is stored when its last round is in. A
    case whose latency came out ``contended`` is measured again at the end of the
    queue, up to ``latency.retries`` times, keeping the least contended measurement.
    Each finished case is appended to the store as it completes, by this process only.

    ``executor``: ``local`` (one isolated worker process here) or ``ray`` (Ray tasks on
    the cluster at ``address``, or on a Ray instance started here; see
    :mod:`nlbench.ray_executor`).
    """
    if executor not in EXECUTORS:
        raise ValueError(f"unknown executor {executor!r}; executors: {', '.join(EXECUTORS)}")
    cases = suite.cases(only_blocks=only_blocks, device=device)
    settings = case_settings(suite, artifacts_dir=run_dir)
    statuses: dict[str, int] = {}
    with store.writer_lock(run_dir):
        done = store.finished_case_ids(run_dir)
        todo = [c for c in cases if c.case_id not in done]
        finished = 0

        def keep(item: PendingCase) -> None:
            nonlocal finished
            assert item.record is not None
            store.append_record(run_dir, item.record)
            finished += 1
            statuses[item.record["status"]] = statuses.get(item.record["status"], 0) + 1
            if progress:
                progress(item.case, item.record, finished, len(todo))

        pending = [PendingCase(case) for case in todo]
        if executor == EXECUTOR_RAY:
            from nlbench.ray_executor import run_on_ray

            run_on_ray(pending, settings, plugins or [], keep, address=address)
        else:
            _run_locally(pending, settings, plugins or [], keep, run_dir, isolate)
    return SweepResult(run_dir, len(cases), len(todo), len(cases) - len(todo), statuses)


def _run_locally(pending: list[PendingCase], settings: CaseSettings, plugins: list[str],
                 keep: Callable[[PendingCase], None], run_dir: Path, isolate: bool) -> None:
    """The local executor: one isolated worker, the queue round-robin, each sampling
    round in a fresh worker (a process's heap layout and where its memory landed make a
    case's speed differ from one process to the next by more than its samples spread
    — nl 64×64: 37.6 ms in one run, 31.3 ms in the next, each within 1.5 % — so rounds
    in several processes sample that too)."""
    runner = IsolatedRunner(settings, plugins, Path(run_dir) / "worker.log") if isolate else None
    queue = collections.deque(pending)
    worker_round = 0
    try:
        while queue:
            item = queue.popleft()
            round_index = next_task(item, settings).round_index
            if runner and round_index < latency_rounds(settings) and round_index != worker_round:
                runner.close()  # the next run() starts a fresh worker for this round
                worker_round = round_index
            if advance_case(item, settings, runner):
                queue.append(item)  # another round or a retry, after the other cases
                continue
            keep(item)
    finally:
        if runner:
            runner.close()


def latency_rounds(settings: CaseSettings) -> int:
    """The sampling rounds a case gets: ``latency.rounds`` when it measures a latency,
    else 1 (later rounds repeat only latencies; a counts-only run has none to repeat)."""
    return settings.sampling.rounds if any(m in LATENCY_MEASUREMENTS for m in settings.measure) else 1


def next_task(item: PendingCase, settings: CaseSettings) -> CaseTask:
    """The next unit of work of ``item``: its first measurement, a later round, or a retry."""
    if item.record is None:
        return CaseTask(item.case)
    rounds = latency_rounds(settings)
    if item.next_round < rounds:
        return CaseTask(item.case, item.next_round, latency_only=True)
    return CaseTask(item.case, rounds + item.retries, latency_only=True)


def absorb(item: PendingCase, task: CaseTask, record: dict[str, Any], settings: CaseSettings) -> bool:
    """Fold the record of ``task`` (from :func:`next_task`) into ``item``; True when it
    needs another unit (a round or a retry of a contended latency)."""
    sampling, rounds = settings.sampling, latency_rounds(settings)
    if item.record is None:
        item.record = record
        item.next_round = 1
    elif task.round_index < rounds:
        item.record = merge_rounds(item.record, record)
        item.next_round += 1
    else:  # a retry of a contended latency: all rounds again would double the cost; one will do
        item.retries += 1
        item.record = least_contended(item.record, record)
        item.record["latency_attempts"] = 1 + item.retries
    if item.record["status"] != STATUS_OK:
        return False
    if item.next_round < rounds:
        return True
    return item.retries < sampling.retries and _is_contended(item.record)


def advance_case(item: PendingCase, settings: CaseSettings, runner: "IsolatedRunner | None") -> bool:
    """Run the next unit of ``item`` here; True when it needs another (a round or a retry)."""
    task = next_task(item, settings)
    return absorb(item, task, _run_one(task, settings, runner), settings)


def _latency_passes(record: dict[str, Any]) -> list[str]:
    return [p for p in PASSES if record.get(metric(f"latency_{p}_ms").samples_column) is not None]


def _is_contended(record: dict[str, Any]) -> bool:
    return any(WARNING_CONTENDED in (record.get(metric(f"latency_{p}_ms").warnings_column) or [])
               for p in _latency_passes(record))


def merge_rounds(record: dict[str, Any], later: dict[str, Any]) -> dict[str, Any]:
    """``record`` with a later round's latency samples appended (its statistics and
    warnings recomputed); a failed later round makes the case fail as that round did,
    keeping every measurement taken before."""
    merged = dict(record)
    merged["duration_s"] = round(record.get("duration_s", 0.0) + later.get("duration_s", 0.0), 3)
    if later["status"] != STATUS_OK:
        merged.update(status=later["status"], error=later.get("error"), traceback=later.get("traceback"))
        return merged
    for name in _latency_passes(later):
        if name in _latency_passes(record):
            merged.update(LatencyResult.from_columns(record, name).merged(LatencyResult.from_columns(later, name)).columns())
    return merged


def least_contended(record: dict[str, Any], again: dict[str, Any]) -> dict[str, Any]:
    """Per latency pass, the measurement whose samples were starved least often."""
    chosen = dict(record)
    chosen["duration_s"] = round(record.get("duration_s", 0.0) + again.get("duration_s", 0.0), 3)
    if again["status"] != STATUS_OK:
        return chosen
    for name in _latency_passes(again):
        old, new = LatencyResult.from_columns(record, name), LatencyResult.from_columns(again, name)
        if (new.starved_share or 0.0) < (old.starved_share or 0.0):
            chosen.update(new.columns())
    return chosen


def skipped_record(case: Case, settings: CaseSettings) -> dict[str, Any] | None:
    """The ``skipped`` record of a case whose estimated peak memory exceeds the limit, or None."""
    max_memory_gib = settings.limits.max_memory_gib
    estimate = estimate_peak_bytes(case)
    if estimate <= max_memory_gib * GIB:
        return None
    record = base_record(case)
    record.update(status=STATUS_SKIPPED, duration_s=0.0, estimated_peak_bytes=estimate,
                  error=f"estimated peak memory {estimate / GIB:.1f} GiB exceeds the limit of {max_memory_gib:g} GiB")
    return record


def _run_one(task: CaseTask, settings: CaseSettings, runner: "IsolatedRunner | None") -> dict[str, Any]:
    case = task.case
    skipped = skipped_record(case, settings)
    if skipped is not None:
        return skipped
    if runner is None:
        from nlbench.measure.run_case import measure_case

        return measure_case(case, task.settings(settings))
    return runner.run(task)


# --- the isolated worker -------------------------------------------------------------

def _worker_main(conn: Connection, settings: CaseSettings, plugins: list[str], cap_memory: bool,
                 log_path: str | None) -> None:  # the signature is part of WORKER_PROTOCOL
    """Child process: cap the address space, then measure the cases it is sent.

    Its stdout and stderr (native libraries' chatter, e.g. the profiler's) go to the
    run's ``worker.log`` so they neither garble the progress bar nor get lost.
    """
    die_with_parent()
    if log_path:
        log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(log_fd, 1)
        os.dup2(log_fd, 2)
    from nlbench.blocks import load_plugin
    from nlbench.measure.run_case import measure_case

    for plugin in plugins:
        load_plugin(plugin)
    if cap_memory:  # CUDA reserves huge virtual ranges: cap CPU workers only
        _cap_address_space(settings.limits.max_memory_gib)
    import nlbench

    conn.send((WORKER_READY, WORKER_PROTOCOL, str(Path(nlbench.__file__).resolve().parent)))
    while True:
        try:
            message = conn.recv()
        except EOFError:  # the parent is gone
            return
        if message is None:
            return
        task: CaseTask = message
        conn.send(measure_case(task.case, task.settings(settings)))


def die_with_parent() -> None:
    """Ask Linux to kill this worker when the sweep process dies (PR_SET_PDEATHSIG),
    so a killed sweep leaves no orphan measuring on."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


@contextlib.contextmanager
def spawn_environment(overrides: dict[str, str]) -> Iterator[None]:
    """``os.environ`` with ``overrides`` for the block (a spawned child inherits it)."""
    saved = {key: os.environ.get(key) for key in overrides}
    os.environ.update(overrides)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@contextlib.contextmanager
def _imports_from(code_root: Path | None) -> Iterator[None]:
    """``sys.path`` with ``code_root`` first while a worker is spawned (a spawned child
    takes the parent's ``sys.path``), so the child imports that tree's nlbench."""
    if code_root is None:
        yield
        return
    saved = list(sys.path)
    sys.path.insert(0, str(code_root))
    try:
        yield
    finally:
        sys.path[:] = saved


def _cap_address_space(max_memory_gib: float) -> None:
    """Limit virtual memory to the current size plus the budget (Linux only)."""
    try:
        with open("/proc/self/status") as handle:
            vm_kib = next(int(line.split()[1]) for line in handle if line.startswith("VmSize"))
        limit = vm_kib * 1024 + int((max_memory_gib + 2) * GIB)
        resource.setrlimit(resource.RLIMIT_AS, (limit, resource.RLIM_INFINITY))
    except (OSError, StopIteration, ValueError):
        pass


class IsolatedRunner:
    """Runs cases in a child process; restarts it after a crash or a timeout.

    With ``code_root`` the worker imports nlbench (its blocks and measurers) from that
    source tree instead of this process's — how the gate measures two trees side by side.
    """

    def __init__(self, settings: CaseSettings, plugins: list[str], log_path: Path | None = None,
                 code_root: Path | None = None) -> None:
        self.settings, self.plugins = settings, plugins
        self.log_path = str(log_path) if log_path else None
        self.code_root = Path(code_root).resolve() if code_root else None
        self.process: Any = None
        self.conn: Connection | None = None
        self.device_is_cpu: bool | None = None

    def start(self, cpu: bool) -> str | None:
        """(Re)start the worker now, for CPU or CUDA cases; why it could not, or None."""
        self.close()
        return self._start(cpu)

    def _start(self, cpu: bool) -> str | None:
        """Start a worker and wait until it is ready; the reason it is not, or None."""
        context = mp.get_context("spawn")
        parent, child = context.Pipe()
        self.process = context.Process(target=_worker_main, args=(child, self.settings, self.plugins, cpu, self.log_path),
                                       daemon=True)
        with spawn_environment(worker_environment(self.settings.sampling.retain_freed_memory,
                                                 self.settings.sampling.huge_pages)), _imports_from(self.code_root):
            self.process.start()
        child.close()
        self.conn = parent
        self.device_is_cpu = cpu
        reason = None
        try:
            if parent.poll(WORKER_STARTUP_S):
                reason = self._check_ready(parent.recv())
                if reason is None:
                    return None
        except (EOFError, ConnectionResetError, BrokenPipeError):
            pass
        reason = reason or self._death_reason() or f"worker did not start within {WORKER_STARTUP_S:.0f} s"
        self.close(kill=True)
        return f"could not start a measuring worker: {reason} (see worker.log)"

    def _check_ready(self, message: Any) -> str | None:
        """Why a worker's first message is not a ready worker of our protocol from the
        intended tree (None when it is)."""
        where = f" from {self.code_root}" if self.code_root else ""
        if not (isinstance(message, tuple) and len(message) == 3 and message[0] == WORKER_READY):
            return f"the worker{where} does not speak protocol {WORKER_PROTOCOL} (it predates it?)"
        _, protocol, package_dir = message
        if protocol != WORKER_PROTOCOL:
            return f"the worker{where} speaks protocol {protocol}, this nlbench {WORKER_PROTOCOL}"
        if self.code_root and not Path(package_dir).is_relative_to(self.code_root):
            return f"the worker imported nlbench from {package_dir}, not from {self.code_root}"
        return None

    def _death_reason(self) -> str | None:
        """How the worker ended, if it did (waiting for a dying one to be reaped: one that
        closed its pipe is exiting, and its interpreter's shutdown — torch's included —
        took over 2 s on this 2-core VM under load)."""
        self.process.join(DYING_WORKER_WAIT_S)
        if self.process.is_alive():
            return None
        return describe_exit(self.process.exitcode)

    def run(self, task: CaseTask) -> dict[str, Any]:
        case = task.case
        cpu = case.device == "cpu"
        record = base_record(case)
        if self.process is None or not self.process.is_alive() or self.device_is_cpu != cpu:
            self.close()
            failure = self._start(cpu)
            if failure:
                record.update(status=STATUS_ERROR, error=failure, duration_s=0.0)
                return record
        assert self.conn is not None
        started = time.perf_counter()
        limit = self.settings.limits.case_timeout_s
        try:
            self.conn.send(task)
            if self.conn.poll(limit + KILL_GRACE_S):
                return self.conn.recv()
            reason = None if self.process.is_alive() else describe_exit(self.process.exitcode)
        except (EOFError, ConnectionResetError, BrokenPipeError):  # the pipe closed: the worker died
            reason = self._death_reason() or "it closed its pipe"
        record["duration_s"] = round(time.perf_counter() - started, 3)
        if reason is None:
            self.close(kill=True)
            record.update(status=STATUS_TIMEOUT, error=f"case exceeded its time limit of {limit:g} s and was killed")
        else:
            killed = self.process.exitcode == -signal.SIGKILL
            self.close()
            record.update(status=STATUS_OOM if killed else STATUS_ERROR, error=f"the measuring worker died: {reason}"
                          + (" — most likely the kernel's out-of-memory killer" if killed else ""))
        return record

    def close(self, kill: bool = False) -> None:
        if self.process is None:
            return
        try:
            if not kill and self.process.is_alive() and self.conn is not None:
                self.conn.send(None)
                self.process.join(5)
        except (BrokenPipeError, OSError):
            pass
        if self.process.is_alive():
            self.process.kill()
            self.process.join(5)
        if self.conn is not None:
            self.conn.close()
        self.process, self.conn = None, None


def describe_exit(code: int | None) -> str:
    """A worker's exit status in words: ``signal SIGSEGV (11)`` or ``exit code 0``."""
    if code is None:
        return "still running"
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name} ({-code})"
        except ValueError:
            return f"signal {-code}"
    return f"exit code {code} without sending a result"


def default_results_root() -> Path:
    """``results/`` in the working directory (override with ``NLBENCH_RESULTS``)."""
    return Path(os.environ.get("NLBENCH_RESULTS", "results"))
