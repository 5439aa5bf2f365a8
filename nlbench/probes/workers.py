"""Probe trainings in worker processes, several at once (``nlbench probe --jobs N``).

A probe run is dozens of independent single-threaded trainings; on a small machine
two of them side by side get more done than one training with two threads (measured:
docs/probes.md, "Cost"). Each worker is a spawned process that imports the plugin
modules, builds the task's data once and then trains the jobs it is handed, sending
every learning-curve point and the result back; the parent (the run's one writer)
stores them. Workers keep freed memory (:mod:`nlbench.measure.allocator`), as the
sweep's do: glibc's defaults page-fault NL's N×N buffers in afresh on every step
(6,400 faults a step; 53 ms a step against 41 ms kept, 1 thread). The allocator
changes the speed, not the numbers. A worker that dies takes only its job with it: that job is recorded as
failed (``oom`` when it was killed, most likely by the kernel's out-of-memory killer;
``error`` otherwise, naming the signal or exit code) with the curve it had sent, and a
fresh worker takes the next job. A worker that cannot start (a plugin that does not
import, data that cannot be built) stops the run with that reason: no job could run.
"""

from __future__ import annotations

import multiprocessing as mp
import signal
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from typing import Any, Sequence

from nlbench.probes.config import ProbeConfig
from nlbench.probes.runs import (
    FieldJob, JobOutcome, ProbeJob, StepCallback, TrainJob, execute_job, failed_field_record, job_config,
)
from nlbench.probes.training import CurvePoint, failed_result
from nlbench.measure.allocator import worker_environment
from nlbench.sweep import DYING_WORKER_WAIT_S, describe_exit, die_with_parent, spawn_environment
from nlbench.vocabulary import STATUS_ERROR, STATUS_OOM

__all__ = ["ProbeWorkerError", "ProbeWorkers"]

_READY, _FAILED, _POINT, _RESULT = "ready", "failed", "point", "result"


class ProbeWorkerError(RuntimeError):
    """A probe worker could not start, so no job can run."""


def _worker_main(conn: Connection, config: ProbeConfig, plugins: Sequence[str]) -> None:
    """A worker: load the plugins, build the data, say which blocks it knows, then
    train jobs until told to stop (None) or the parent goes away."""
    die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle: it stops us
    try:
        from nlbench.blocks import list_blocks, load_plugin

        for module in plugins:
            load_plugin(module)
        task = config.make_task()
    except Exception as exc:
        conn.send((_FAILED, f"{type(exc).__name__}: {exc}"))
        return
    conn.send((_READY, tuple(list_blocks())))
    while True:
        try:
            job = conn.recv()
        except EOFError:
            return
        if job is None:
            return
        outcome = execute_job(config, job, task, on_point=lambda point: conn.send((_POINT, point)))
        conn.send((_RESULT, outcome))


@dataclass
class _Worker:
    """One worker process, its pipe, and the job it is training (with the curve so far)."""

    process: Any
    conn: Connection
    ready: bool = False
    job: ProbeJob | None = None
    curve: list[CurvePoint] = field(default_factory=list)


class ProbeWorkers:
    """An :class:`~nlbench.probes.runs.Executor` of ``jobs`` worker processes for
    ``config`` (each training with ``config.threads`` threads). ``blocks`` are
    checked against what the workers can build: a block registered in this process
    only (not by a plugin module) is an error naming it, before anything trains.
    Use as a context manager: leaving it stops the workers."""

    def __init__(self, config: ProbeConfig, jobs: int, *, blocks: Sequence[str] = (), plugins: Sequence[str] = (),
                 on_step: StepCallback | None = None) -> None:
        if jobs < 1:
            raise ValueError(f"ProbeWorkers: jobs must be at least 1, got {jobs}")
        self.jobs = jobs
        self._config, self._plugins, self._blocks, self._on_step = config, tuple(plugins), tuple(blocks), on_step
        self._context = mp.get_context("spawn")
        self._workers: list[_Worker] = []

    def __enter__(self) -> "ProbeWorkers":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def idle_slots(self) -> int:
        return self.jobs - sum(1 for worker in self._workers if worker.job is not None)

    def submit(self, job: ProbeJob) -> None:
        """Hand ``job`` to an idle worker, starting one if needed (the job waits in its
        pipe while it starts)."""
        worker = next((w for w in self._workers if w.job is None), None)
        if worker is None:
            if len(self._workers) >= self.jobs:
                raise RuntimeError("ProbeWorkers.submit: every worker is busy")
            worker = self._start()
        worker.job, worker.curve = job, []
        worker.conn.send(job)

    def _start(self) -> _Worker:
        parent, child = self._context.Pipe()
        process = self._context.Process(target=_worker_main, args=(child, self._config, self._plugins), daemon=True)
        # Freed memory kept, as for sweeps; huge pages not asked for: the probes' tensors are
        # small and their step times were measured without them.
        with spawn_environment(worker_environment(retain_freed_memory=True, huge_pages=False)):
            process.start()
        child.close()
        worker = _Worker(process, parent)
        self._workers.append(worker)
        return worker

    def next_done(self) -> tuple[ProbeJob, JobOutcome]:
        """Wait for a job to finish (passing its curve points to ``on_step``
        meanwhile); a job whose worker died gives a failed outcome."""
        while True:
            busy = [w for w in self._workers if w.job is not None]
            if not busy:
                raise RuntimeError("ProbeWorkers.next_done: no job in flight")
            handles = {w.conn: w for w in busy} | {w.process.sentinel: w for w in busy}
            for handle in wait(list(handles)):
                worker = handles[handle]
                if worker.job is None:  # already finished through its other handle
                    continue
                outcome = self._receive(worker)
                if outcome is not None:
                    job, worker.job = worker.job, None
                    return job, outcome

    def _receive(self, worker: _Worker) -> JobOutcome | None:
        """Handle what ``worker`` sent; its job's outcome once there is one."""
        try:
            while worker.conn.poll():
                tag, payload = worker.conn.recv()
                if tag == _RESULT:
                    return payload
                if tag == _POINT:
                    worker.curve.append(payload)
                    if self._on_step is not None and isinstance(worker.job, TrainJob):
                        self._on_step(worker.job.case, payload)
                elif tag == _READY:
                    worker.ready = True
                    self._check_blocks(payload)
                elif tag == _FAILED:
                    self.close()
                    raise ProbeWorkerError(f"a probe worker could not start: {payload}")
            if worker.process.is_alive():
                return None
        except (EOFError, ConnectionResetError, BrokenPipeError):
            pass
        return self._died(worker)

    def _check_blocks(self, known: Sequence[str]) -> None:
        missing = [block for block in self._blocks if block not in known]
        if missing:
            self.close()
            raise ProbeWorkerError(
                f"block(s) {', '.join(missing)} are registered in this process only: probe workers build blocks "
                "from the registry and plugin modules (--plugin MODULE); train them in this process (jobs=None)")

    def _died(self, worker: _Worker) -> JobOutcome:
        """The failed outcome of the job of a worker that died; the worker is dropped."""
        worker.process.join(DYING_WORKER_WAIT_S)
        killed = worker.process.exitcode == -signal.SIGKILL
        reason = describe_exit(worker.process.exitcode)
        self._drop(worker)
        if not worker.ready:
            self.close()
            raise ProbeWorkerError(f"a probe worker died while starting: {reason}")
        status = STATUS_OOM if killed else STATUS_ERROR
        error = f"the probe worker died: {reason}" + (
            " — most likely the kernel's out-of-memory killer" if killed else "")
        job = worker.job
        if isinstance(job, FieldJob):
            return failed_field_record(self._config, job.block, status, error)
        assert isinstance(job, TrainJob)
        return failed_result(job_config(self._config, job), job.case, status, error, tuple(worker.curve))

    def _drop(self, worker: _Worker) -> None:
        if worker.process.is_alive():
            worker.process.kill()
            worker.process.join(DYING_WORKER_WAIT_S)
        worker.conn.close()
        self._workers.remove(worker)

    def close(self) -> None:
        """Stop every worker (a busy one is killed: its job is not stored)."""
        for worker in list(self._workers):
            try:
                if worker.job is None and worker.process.is_alive():
                    worker.conn.send(None)
                    worker.process.join(5)
            except (BrokenPipeError, OSError):
                pass
            self._drop(worker)

