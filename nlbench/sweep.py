"""The sweep runner: cases through the measurers into the store, one isolated worker
process at a time, so that an out-of-memory kill, a hang or a crash in one case is
recorded and the sweep goes on.

Isolation: cases run in a child process (``spawn``). On the CPU the child's address
space is capped (``RLIMIT_AS``) at its start-up size plus the suite's memory limit, so
an oversized allocation fails inside the case as ``oom`` instead of waking the kernel's
OOM killer; if the child dies anyway (SIGKILL), the case in flight is recorded as
``oom`` and a fresh worker takes the next case. A case that outlives its time limit
is killed and recorded as ``timeout``. Cases whose estimated peak memory exceeds the
limit are not run at all but recorded as ``skipped``.
"""

from __future__ import annotations

import datetime as dt
import multiprocessing as mp
import os
import resource
import shutil
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Callable

from nlbench import store
from nlbench.case import DTYPE_BYTES, Case
from nlbench.measure.registry import CaseSettings
from nlbench.measure.run_case import base_record
from nlbench.suite import Suite, load_suite

ProgressCallback = Callable[[Case, dict[str, Any], int, int], None]
GIB = 2**30


@dataclass(frozen=True)
class SweepResult:
    """Where a sweep wrote and how its cases ended."""

    run_dir: Path
    total_cases: int
    ran: int
    skipped_as_done: int
    statuses: dict[str, int]


def case_settings(suite: Suite) -> CaseSettings:
    """The per-case settings of a suite: its measurements, sampling and limits, unchanged."""
    return CaseSettings(measure=suite.measure, sampling=suite.latency, limits=suite.limits)


def estimate_peak_bytes(case: Case) -> int:
    """A deliberately generous estimate of a case's peak memory during forward+backward.

    Blocks with a dense N×N affinity (declared in their spec) keep a few N×N matrices
    per image alive for backward; every block keeps some tens of feature maps.
    """
    from nlbench.blocks import get_spec

    itemsize = DTYPE_BYTES[case.dtype]
    n = case.positions
    dense = get_spec(case.block).dense_affinity
    per_image = (6 * n * n if dense else 0) + 48 * case.channels * n
    return case.batch * per_image * itemsize


def start_run(suite: Suite, out_root: Path, *, only_blocks: list[str] | None, device: str | None,
              plugins: list[str]) -> Path:
    """Create a run directory (through the store) with its manifest and a copy of the suite file."""
    from nlbench.environment import fingerprint

    run_dir = store.create_run(out_root, suite.name, {
        "started_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "suite": suite.name,
        "suite_source": suite.source,
        "only_blocks": only_blocks,
        "device_override": device,
        "plugins": plugins,
        "environment": fingerprint(device or suite.device[0]),
        "dtypes": list(suite.dtype),
        "threads": suite.latency.threads,
        "measure": list(suite.measure),
    })
    if Path(suite.source).exists():
        shutil.copyfile(suite.source, run_dir / "suite.toml")
    return run_dir


def resume_arguments(run_dir: Path) -> tuple[Suite, list[str] | None, str | None, list[str]]:
    """The suite, block filter, device and plugins a run was started with."""
    manifest = store.read_manifest(run_dir)
    suite_path = run_dir / "suite.toml"
    suite = load_suite(str(suite_path if suite_path.exists() else manifest["suite_source"]))
    return suite, manifest.get("only_blocks"), manifest.get("device_override"), manifest.get("plugins") or []


def run_sweep(suite: Suite, run_dir: Path, *, only_blocks: list[str] | None = None, device: str | None = None,
              plugins: list[str] | None = None, progress: ProgressCallback | None = None,
              isolate: bool = True) -> SweepResult:
    """Measure every case of ``suite`` that ``run_dir`` does not hold yet.

    Each finished case is appended to the store before the next starts.
    """
    cases = suite.cases(only_blocks=only_blocks, device=device)
    done = store.finished_case_ids(run_dir)
    todo = [c for c in cases if c.case_id not in done]
    settings = case_settings(suite)
    statuses: dict[str, int] = {}
    runner = _IsolatedRunner(settings, plugins or [], Path(run_dir) / "worker.log") if isolate else None
    try:
        for index, case in enumerate(todo, start=1):
            record = _run_one(case, settings, runner)
            store.append_record(run_dir, record)
            statuses[record["status"]] = statuses.get(record["status"], 0) + 1
            if progress:
                progress(case, record, index, len(todo))
    finally:
        if runner:
            runner.close()
    return SweepResult(run_dir, len(cases), len(todo), len(cases) - len(todo), statuses)


def _run_one(case: Case, settings: CaseSettings, runner: "_IsolatedRunner | None") -> dict[str, Any]:
    max_memory_gib = settings.limits.max_memory_gib
    estimate = estimate_peak_bytes(case)
    if estimate > max_memory_gib * GIB:
        record = base_record(case)
        record.update(status="skipped", duration_s=0.0, estimated_peak_bytes=estimate,
                      error=f"estimated peak memory {estimate / GIB:.1f} GiB exceeds the limit of {max_memory_gib:g} GiB")
        return record
    if runner is None:
        from nlbench.measure.run_case import measure_case

        return measure_case(case, settings)
    return runner.run(case)


# --- the isolated worker -------------------------------------------------------------

def _worker_main(conn: Connection, settings: CaseSettings, plugins: list[str], cap_memory: bool,
                 log_path: str | None) -> None:
    """Child process: cap the address space, then measure the cases it is sent.

    Its stdout and stderr (native libraries' chatter, e.g. the profiler's) go to the
    run's ``worker.log`` so they neither garble the progress bar nor get lost.
    """
    _die_with_parent()
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
    while True:
        try:
            message = conn.recv()
        except EOFError:  # the parent is gone
            return
        if message is None:
            return
        conn.send(measure_case(Case.from_dict(message), settings))


def _die_with_parent() -> None:
    """Ask Linux to kill this worker when the sweep process dies (PR_SET_PDEATHSIG),
    so a killed sweep leaves no orphan measuring on."""
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _cap_address_space(max_memory_gib: float) -> None:
    """Limit virtual memory to the current size plus the budget (Linux only)."""
    try:
        with open("/proc/self/status") as handle:
            vm_kib = next(int(line.split()[1]) for line in handle if line.startswith("VmSize"))
        limit = vm_kib * 1024 + int((max_memory_gib + 2) * GIB)
        resource.setrlimit(resource.RLIMIT_AS, (limit, resource.RLIM_INFINITY))
    except (OSError, StopIteration, ValueError):
        pass


class _IsolatedRunner:
    """Runs cases in a child process; restarts it after a crash or a timeout."""

    def __init__(self, settings: CaseSettings, plugins: list[str], log_path: Path | None = None) -> None:
        self.settings, self.plugins = settings, plugins
        self.log_path = str(log_path) if log_path else None
        self.process: Any = None
        self.conn: Connection | None = None
        self.device_is_cpu: bool | None = None

    def _start(self, cpu: bool) -> None:
        context = mp.get_context("spawn")
        parent, child = context.Pipe()
        self.process = context.Process(target=_worker_main, args=(child, self.settings, self.plugins, cpu, self.log_path),
                                       daemon=True)
        self.process.start()
        child.close()
        self.conn = parent
        self.device_is_cpu = cpu

    def run(self, case: Case) -> dict[str, Any]:
        cpu = case.device == "cpu"
        if self.process is None or not self.process.is_alive() or self.device_is_cpu != cpu:
            self.close()
            self._start(cpu)
        assert self.conn is not None
        started = time.perf_counter()
        self.conn.send(case.to_dict())
        # Start-up (torch import) is not the case's fault: allow a minute on top.
        limit = self.settings.limits.case_timeout_s * 1.5 + 60
        try:
            if self.conn.poll(limit):
                return self.conn.recv()
        except (EOFError, ConnectionResetError, BrokenPipeError):
            pass
        record = base_record(case)
        record["duration_s"] = round(time.perf_counter() - started, 3)
        if self.process.is_alive():
            self.close(kill=True)
            record.update(status="timeout", error=f"case exceeded its time limit ({limit:.0f} s) and was killed")
        else:
            code = self.process.exitcode
            self.close()
            status = "oom" if code in (-9, 137) else "error"
            record.update(status=status, error=f"worker process died with exit code {code}"
                          + (" (SIGKILL: most likely out of memory)" if status == "oom" else ""))
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


def default_results_root() -> Path:
    """``results/`` in the working directory (override with ``NLBENCH_RESULTS``)."""
    return Path(os.environ.get("NLBENCH_RESULTS", "results"))
