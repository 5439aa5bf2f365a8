"""Probe runs: for every block, its learning-rate trials (one seed, each rate of the
config's grid, judged on the validation split), then its seeds at the chosen rate, all
on one shared data set; in the results store each result is appended as it finishes,
so an interrupted probe keeps what it trained and ``--resume`` trains only what is
missing. Records load with :func:`nlbench.store.load` (``kind`` "probe",
"probe_lr_trial" and "receptive_field").

Runs are created by :func:`nlbench.store.create_run` with a manifest carrying the
environment fingerprint, as sweeps are; records are keyed by :class:`ProbeCase`
identities (the sweep's hashing); progress is reported with the sweep's callback
shape (:data:`nlbench.progress.ProgressCallback`).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import math
import os
import statistics
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Collection, Iterable, Iterator, Mapping, Protocol, Sequence

from nlbench import store
from nlbench.measure.run_case import classify_failure
from nlbench.probes.config import ProbeCase, ProbeConfig, record_id
from nlbench.probes.tasks import TaskData
from nlbench.probes.training import CurvePoint, ProbeResult, train_probe
from nlbench.progress import ProgressCallback
from nlbench.vocabulary import KIND_PROBE, KIND_PROBE_LR_TRIAL, KIND_RECEPTIVE_FIELD, STATUS_OK

StepCallback = Callable[[ProbeCase, CurvePoint], None]
"""Called while a block × seed trains, with every learning-curve point as it is logged."""

__all__ = [
    "Executor", "FieldJob", "Finished", "InProcessExecutor", "JobOutcome", "LrChoice", "ProbeJob", "ProbePlan",
    "ProbeRun", "ProbeSummary", "StepCallback", "TrainJob", "aggregate", "block_cases", "choose_lr",
    "config_from_manifest", "default_probe_jobs", "drive", "execute_job", "failed_field_record", "job_config",
    "lr_trial_cases", "pending_probe_cases", "probe_cases", "receptive_field_id", "receptive_field_record",
    "resume_probe_arguments", "run_probe", "run_probe_into", "start_probe_run",
]


# ------------------------------------------------------------------------- in memory


def lr_trial_cases(config: ProbeConfig, block: str, options: Mapping[str, Any] | None = None) -> list[ProbeCase]:
    """The rate sweep of ``block``: seed ``config.sweep_seed`` at each rate of ``config.lr_grid``."""
    case = config.probe_case(block, config.sweep_seed, options)
    return [replace(case, lr=lr) for lr in config.lr_grid]


def probe_cases(config: ProbeConfig, blocks: Sequence[str] | str, *, seeds: Sequence[int] | None = None,
                block_options: Mapping[str, Mapping[str, Any]] | None = None) -> list[ProbeCase]:
    """Every block (names or wildcards, e.g. ``"all"``), block by block: its rate
    trials (:func:`lr_trial_cases`), then its seeds (default ``config.seeds``).
    ``block_options`` maps a block name to its options."""
    from nlbench.blocks import resolve_blocks

    names = resolve_blocks(blocks if isinstance(blocks, str) else list(blocks))
    seeds = tuple(config.seeds if seeds is None else seeds)
    if not seeds:
        raise ValueError("run_probe: no seeds given")
    options = dict(block_options or {})
    stray = sorted(set(options) - set(names))
    if stray:
        raise ValueError(f"run_probe: block_options name blocks that are not probed: {', '.join(stray)}")
    return [case for block in names for case in block_cases(config, block, seeds, options.get(block))]


def block_cases(config: ProbeConfig, block: str, seeds: Sequence[int] | None = None,
                options: Mapping[str, Any] | None = None) -> list[ProbeCase]:
    """What one block of a probe run trains, in order: its rate trials
    (:func:`lr_trial_cases`), then its seeds (default ``config.seeds``)."""
    seeds = config.seeds if seeds is None else seeds
    return [*lr_trial_cases(config, block, options), *(config.probe_case(block, seed, options) for seed in seeds)]


@dataclass(frozen=True)
class LrChoice:
    """The rate a block's seeds train with, and why (a sentence for records and reports)."""

    lr: float
    reason: str


def choose_lr(trials: Sequence[ProbeResult], config: ProbeConfig) -> LrChoice:
    """The rate of the best trial: the highest final validation accuracy; trials within
    ``plateau_min_gain`` of it tie, and a tie goes to the fewest steps to the target
    accuracy, then to the rate nearest ``config.lr`` (on a log scale). Without a grid,
    or without a successful trial, ``config.lr``."""
    if not config.lr_grid:
        return LrChoice(config.lr, "the config's rate (no sweep)")
    scored = [(t, float(t.validation_accuracy)) for t in trials
              if t.status == STATUS_OK and t.validation_accuracy is not None]
    if not scored:
        return LrChoice(config.lr, "the config's rate: no rate trial succeeded")
    best = max(accuracy for _, accuracy in scored)
    tied = [t for t, accuracy in scored if accuracy >= best - config.plateau_min_gain - 1e-12]

    def key(trial: ProbeResult) -> tuple[float, float, float]:
        steps = trial.steps_to_target if trial.steps_to_target is not None else math.inf
        return steps, abs(math.log(trial.config.lr / config.lr)), trial.config.lr

    chosen = min(tied, key=key)
    accuracies = ", ".join(f"{t.config.lr:g}: {100 * accuracy:.1f} %"
                           for t, accuracy in sorted(scored, key=lambda item: item[0].config.lr))
    rule = "best validation accuracy" if len(tied) == 1 else (
        "tie on validation accuracy, fewest steps to target" if chosen.steps_to_target is not None
        else "tie on validation accuracy, nearest the default rate")
    return LrChoice(chosen.config.lr, f"{rule} (validation accuracy by rate: {accuracies})")


@dataclass(frozen=True)
class TrainJob:
    """Train one rate trial (at its own rate; ``lr`` None) or one seed (at its
    block's chosen rate ``lr``)."""

    case: ProbeCase
    lr: float | None = None


@dataclass(frozen=True)
class FieldJob:
    """Measure one block's receptive field in the untrained probe backbone."""

    block: str


ProbeJob = TrainJob | FieldJob
"""One unit of a probe run's work: what an executor is handed."""

JobOutcome = ProbeResult | dict[str, Any]
"""What a job gives: a training its result (a failure is a failed result), a receptive field its record."""


def job_config(config: ProbeConfig, job: TrainJob) -> ProbeConfig:
    """``config`` at the rate ``job`` trains with (a trial's own, or its block's chosen one)."""
    rate = job.case.lr if job.case.is_lr_trial else job.lr
    return config if rate is None else replace(config, lr=rate)


def execute_job(config: ProbeConfig, job: ProbeJob, task: TaskData,
                on_point: Callable[[CurvePoint], None] | None = None) -> JobOutcome:
    """Do ``job`` in this process, on ``task``'s data."""
    if isinstance(job, FieldJob):
        return receptive_field_record(config, job.block, task=task)
    case = job.case
    kind = KIND_PROBE_LR_TRIAL if case.is_lr_trial else KIND_PROBE
    return train_probe(job_config(config, job), case.block, case.seed, task=task, block_options=case.options,
                       on_point=on_point, kind=kind)


@dataclass(frozen=True)
class Finished:
    """A unit of a probe run ready for the store: a trained (or reused) result with
    its case, or a block's receptive-field record (``case`` and ``result`` None)."""

    record: dict[str, Any]
    case: ProbeCase | None = None
    result: ProbeResult | None = None


@dataclass
class _BlockProgress:
    """Where one block of a :class:`ProbePlan` stands (the plan's own mutable state)."""

    index: int
    options: Mapping[str, Any] | None
    trials: list[ProbeCase]
    trial_results: dict[str, ProbeResult]
    field_wanted: bool
    choice: LrChoice | None = None
    seeds_in_training: set[str] = field(default_factory=set)


class ProbePlan:
    """What a probe run has left to do, and in which order, however many trainings
    run at once. Every block's missing rate trials are ready from the start; when a
    block's trials are all done its rate is chosen (:func:`choose_lr`), its sweep
    seed's run at that rate is the trial itself (reused, not retrained) and its other
    seeds become ready; when its seeds are done, its receptive field (if wanted). Of
    the ready jobs the earlier block's go first, so blocks finish in order and an
    interrupted run holds whole blocks; one job at a time, that is the serial order
    (a block's trials, its seeds, its field, then the next block).

    ``known`` holds the results already stored (by case id): they are not retrained.
    """

    def __init__(self, config: ProbeConfig, blocks: Sequence[tuple[str, Mapping[str, Any] | None]],
                 seeds: Sequence[int], known: Mapping[str, ProbeResult], fields: Collection[str] = ()) -> None:
        self._config, self._seeds, self._known = config, tuple(seeds), dict(known)
        self._ready: list[tuple[tuple[int, int], ProbeJob]] = []
        self._in_flight = 0
        self._blocks: dict[str, _BlockProgress] = {}
        for index, (block, options) in enumerate(blocks):
            trials = lr_trial_cases(config, block, options)
            progress = _BlockProgress(index=index, options=options, trials=trials, field_wanted=block in fields,
                                      trial_results={c.case_id: known[c.case_id] for c in trials if c.case_id in known})
            self._blocks[block] = progress
            for order, case in enumerate(trials):
                if case.case_id not in known:
                    self._push(progress, order, TrainJob(case))

    def _push(self, progress: _BlockProgress, order: int, job: ProbeJob) -> None:
        self._ready.append(((progress.index, order), job))
        self._ready.sort(key=lambda item: item[0])

    def start(self) -> list[Finished]:
        """What is ready without training (seeds reused from stored trials); call it once, first."""
        return [done for block in self._blocks for done in self._advance(block)]

    def take(self) -> ProbeJob | None:
        """The next job to hand out (None: none is ready until one in flight finishes)."""
        if not self._ready:
            return None
        self._in_flight += 1
        return self._ready.pop(0)[1]

    @property
    def complete(self) -> bool:
        """Nothing ready and nothing in flight."""
        return not self._ready and not self._in_flight

    def finish(self, job: ProbeJob, outcome: JobOutcome) -> list[Finished]:
        """Take a job's outcome; what is now ready for the store (the outcome first)."""
        self._in_flight -= 1
        if isinstance(job, FieldJob):
            assert isinstance(outcome, dict)
            return [Finished(outcome)]
        assert isinstance(outcome, ProbeResult)
        progress = self._blocks[job.case.block]
        if job.case.is_lr_trial:
            progress.trial_results[job.case.case_id] = outcome
        else:
            assert progress.choice is not None
            progress.seeds_in_training.discard(job.case.case_id)
            outcome = replace(outcome, lr_choice=progress.choice.reason, lr_trial_reused=False)
        return [Finished(outcome.to_record(), job.case, outcome), *self._advance(job.case.block)]

    def _advance(self, block: str) -> list[Finished]:
        """Queue what ``block`` can do next; return the seeds reused from its trials."""
        progress, config = self._blocks[block], self._config
        reused = []
        if progress.choice is None and len(progress.trial_results) == len(progress.trials):
            trials = [progress.trial_results[case.case_id] for case in progress.trials]
            progress.choice = choice = choose_lr(trials, config)
            for order, seed in enumerate(self._seeds, start=len(progress.trials)):
                case = config.probe_case(block, seed, progress.options)
                if case.case_id in self._known:
                    continue
                trial = next((t for t in trials if t.seed == seed and t.status == STATUS_OK
                              and t.config.lr == choice.lr), None)
                if trial is None:
                    progress.seeds_in_training.add(case.case_id)
                    self._push(progress, order, TrainJob(case, choice.lr))
                else:
                    result = replace(trial, kind=KIND_PROBE, lr_choice=choice.reason, lr_trial_reused=True)
                    reused.append(Finished(result.to_record(), case, result))
        if progress.choice is not None and not progress.seeds_in_training and progress.field_wanted:
            progress.field_wanted = False
            self._push(progress, len(progress.trials) + len(self._seeds), FieldJob(block))
        return reused


class Executor(Protocol):
    """Where a plan's jobs run: :class:`InProcessExecutor` (one at a time, here) or
    worker processes (:class:`nlbench.probes.workers.ProbeWorkers`)."""

    jobs: int
    """How many jobs it runs at once."""

    @property
    def idle_slots(self) -> int:
        """How many more jobs it can take now."""
        ...

    def submit(self, job: ProbeJob) -> None: ...

    def next_done(self) -> tuple[ProbeJob, JobOutcome]:
        """Wait for a job in flight to finish; the job and its outcome."""
        ...


class InProcessExecutor:
    """Runs a plan's jobs one at a time in this process (blocks registered here work)."""

    jobs = 1

    def __init__(self, config: ProbeConfig, task: TaskData, on_step: StepCallback | None = None) -> None:
        self._config, self._task, self._on_step = config, task, on_step
        self._job: ProbeJob | None = None

    @property
    def idle_slots(self) -> int:
        return 0 if self._job is not None else 1

    def submit(self, job: ProbeJob) -> None:
        self._job = job

    def next_done(self) -> tuple[ProbeJob, JobOutcome]:
        job, self._job = self._job, None
        assert job is not None, "next_done without a job in flight"
        on_point = None
        if self._on_step is not None and isinstance(job, TrainJob):
            on_step, case = self._on_step, job.case
            on_point = lambda point: on_step(case, point)  # noqa: E731
        return job, execute_job(self._config, job, self._task, on_point)


def drive(plan: ProbePlan, executor: Executor) -> Iterator[Finished]:
    """Run ``plan`` on ``executor`` with its slots kept busy, yielding every unit as it
    is ready for the store; each result records how many trainings ran at once (``jobs``)."""
    yield from plan.start()
    while not plan.complete:
        while executor.idle_slots:
            job = plan.take()
            if job is None:
                break
            executor.submit(job)
        job, outcome = executor.next_done()
        if isinstance(outcome, ProbeResult):
            outcome = replace(outcome, jobs=executor.jobs)
        yield from plan.finish(job, outcome)


def run_probe(
    config: ProbeConfig,
    blocks: Sequence[str] | str,
    *,
    seeds: Sequence[int] | None = None,
    progress: ProgressCallback[ProbeCase] | None = None,
    on_step: StepCallback | None = None,
    block_options: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[ProbeResult]:
    """Every block's rate trials and seeds (:func:`probe_cases`) on one shared data
    set, in memory; failures are returned as failed results and the run goes on.
    The results hold the trials (``kind`` "probe_lr_trial") and the seeds ("probe").

    ``progress(case, record, index, total)`` follows each result (the record is
    :meth:`ProbeResult.to_record`); ``on_step(case, point)`` follows its training.
    """
    cases = probe_cases(config, blocks, seeds=seeds, block_options=block_options)
    seeds = tuple(config.seeds if seeds is None else seeds)
    names = list(dict.fromkeys(case.block for case in cases))
    plan = ProbePlan(config, [(block, dict(block_options or {}).get(block)) for block in names], seeds, {})
    results: list[ProbeResult] = []
    for done in drive(plan, InProcessExecutor(config, config.make_task(), on_step)):
        assert done.result is not None and done.case is not None
        results.append(done.result)
        if progress:
            progress(done.case, done.record, len(results), len(cases))
    return results


@dataclass(frozen=True)
class ProbeSummary:
    """A block's results over seeds: accuracy mean and sample standard deviation
    (None with fewer than two successful seeds), and its cost."""

    task: str
    block: str
    n_seeds: int
    n_ok: int
    accuracy_mean: float | None
    accuracy_std: float | None
    accuracies: tuple[float, ...]
    steps_per_s_mean: float | None
    params: int | None
    macs: int | None
    errors: tuple[str, ...] = ()

    def to_record(self) -> dict[str, Any]:
        record = asdict(self)
        record["accuracies"] = list(self.accuracies)
        record["errors"] = list(self.errors)
        return record


def aggregate(results: Iterable[ProbeResult]) -> list[ProbeSummary]:
    """Mean ± std of accuracy over seeds per (task, block), in first-seen order (rate
    trials are left out)."""
    groups: dict[tuple[str, str], list[ProbeResult]] = {}
    for result in (r for r in results if r.kind == KIND_PROBE):
        groups.setdefault((result.task, result.block), []).append(result)
    summaries = []
    for (task, block), group in groups.items():
        ok = [r for r in group if r.status == STATUS_OK and r.accuracy is not None]
        accuracies = tuple(r.accuracy for r in ok if r.accuracy is not None)
        speeds = [r.steps_per_s for r in ok if r.steps_per_s is not None]
        summaries.append(
            ProbeSummary(
                task=task,
                block=block,
                n_seeds=len(group),
                n_ok=len(ok),
                accuracy_mean=statistics.fmean(accuracies) if accuracies else None,
                accuracy_std=statistics.stdev(accuracies) if len(accuracies) >= 2 else None,
                accuracies=accuracies,
                steps_per_s_mean=statistics.fmean(speeds) if speeds else None,
                params=next((r.params for r in group if r.params is not None), None),
                macs=next((r.macs for r in group if r.macs is not None), None),
                errors=tuple(f"seed {r.seed}: {r.error}" for r in group if r.error),
            )
        )
    return summaries


# ------------------------------------------------------------------------- in the store


def default_probe_jobs(config: ProbeConfig) -> int:
    """Trainings to run at once by default: the cores this process may use ÷ the
    config's threads (at least 1); one on a GPU, which the trainings would share."""
    if config.device != "cpu":
        return 1
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    return max(1, cores // config.threads)


@dataclass(frozen=True)
class ProbeRun:
    """Where a probe run wrote and what it trained."""

    run_dir: Path
    trained: int
    already_done: int


def start_probe_run(config: ProbeConfig, out_root: Path, blocks: Sequence[str], *,
                    plugins: Sequence[str] = ()) -> Path:
    """A new ``out_root/probe-<task>-<timestamp>`` run (through the store) with its
    manifest: the config, blocks and plugins, and the environment fingerprint of the
    config's device, as a sweep's."""
    from nlbench.environment import fingerprint

    return store.create_run(out_root, f"probe-{config.task.replace('_', '-')}", {
        "kind": KIND_PROBE,
        "started_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "suite": f"probe-{config.task}",
        "probe_config": config.to_dict(),
        "blocks": list(blocks),
        "plugins": list(plugins),
        "environment": fingerprint(config.device),
        "dtypes": [config.dtype],
        "threads": config.threads,
    })


def config_from_manifest(run_dir: Path) -> tuple[ProbeConfig, list[str]]:
    """The config and blocks a probe run was started with."""
    config, blocks, _ = resume_probe_arguments(run_dir)
    return config, blocks


def resume_probe_arguments(run_dir: Path) -> tuple[ProbeConfig, list[str], list[str]]:
    """The config, blocks and plugins a probe run was started with (for ``--resume``)."""
    manifest = store.read_manifest(run_dir)
    if manifest.get("kind") != KIND_PROBE:
        raise store.StoreError(f"{run_dir}: not a probe run")
    plugins = list(manifest.get("plugins") or [])
    return ProbeConfig.from_dict(manifest["probe_config"]), list(manifest["blocks"]), plugins


def pending_probe_cases(run_dir: Path, config: ProbeConfig, blocks: Sequence[str]) -> list[ProbeCase]:
    """The rate trials and seeds of ``config`` that ``run_dir`` holds no result for yet, block by block."""
    done = store.finished_case_ids(run_dir)
    return [case for block in blocks for case in block_cases(config, block) if case.case_id not in done]


def _known_results(run_dir: Path) -> dict[str, ProbeResult]:
    """The finished probe results and rate trials of ``run_dir`` by case id (the last
    record of a case wins, as in :func:`nlbench.store.finished_case_ids`)."""
    done = store.finished_case_ids(run_dir)
    known = {}
    for record in store.read_records(run_dir):
        if record.get("kind") in (KIND_PROBE, KIND_PROBE_LR_TRIAL) and record["case_id"] in done:
            known[record["case_id"]] = ProbeResult.from_record(record)
    return known


def run_probe_into(run_dir: Path, config: ProbeConfig, blocks: Sequence[str], *,
                   progress: ProgressCallback[ProbeCase] | None = None,
                   on_step: StepCallback | None = None, jobs: int | None = None,
                   plugins: Sequence[str] = ()) -> ProbeRun:
    """Train every rate trial and seed not yet in ``run_dir`` (:func:`pending_probe_cases`),
    appending each result when done, and each block's receptive field after its seeds.
    The run directory is held with the store's one-writer lock meanwhile: this
    process writes every record, whatever trains it.

    ``jobs`` None trains one at a time in this process (blocks registered here
    work); ``jobs`` = N trains N at once, each in a worker process
    (:class:`~nlbench.probes.workers.ProbeWorkers`, which import ``plugins`` for
    their blocks and keep freed memory) with ``config.threads`` threads. Every
    training is seeded, so the results are the same either way; only their order in
    the store and their speed differ.

    ``progress(case, record, index, total)`` follows each stored result; ``index``
    and ``total`` count the results this call adds (a reused trial counts, untrained).
    """
    if jobs is not None and jobs < 1:
        raise ValueError(f"run_probe_into: jobs must be at least 1, got {jobs}")
    with store.writer_lock(run_dir):
        done = store.finished_case_ids(run_dir)
        todo = [case for block in blocks for case in block_cases(config, block) if case.case_id not in done]
        fields = [block for block in blocks if receptive_field_id(config, block) not in done]
        already_done = sum(len(block_cases(config, block)) for block in blocks) - len(todo)
        if not todo and not fields:
            return ProbeRun(run_dir, 0, already_done)
        plan = ProbePlan(config, [(block, None) for block in blocks], config.seeds, _known_results(run_dir), fields)
        with contextlib.ExitStack() as stack:
            if jobs is None:
                executor: Executor = InProcessExecutor(config, config.make_task(), on_step)
            else:
                from nlbench.probes.workers import ProbeWorkers

                executor = stack.enter_context(ProbeWorkers(config, jobs, blocks=blocks, plugins=plugins,
                                                            on_step=on_step))
            index = 0
            for finished in drive(plan, executor):
                store.append_record(run_dir, finished.record)
                if finished.case is not None:
                    index += 1
                    if progress:
                        progress(finished.case, finished.record, index, len(todo))
    return ProbeRun(run_dir, len(todo), already_done)


def receptive_field_id(config: ProbeConfig, block: str) -> str:
    """The store identity of a block's receptive-field measurement in a probe run."""
    return record_id(KIND_RECEPTIVE_FIELD, config.block_case(block), task=config.task)


def receptive_field_record(config: ProbeConfig, block: str, *, task: TaskData | None = None) -> dict[str, Any]:
    """The receptive field of ``block`` in the probe backbone (perturbed, untrained):
    what the head sees of the input from the centre position, with its heat map.
    The input channels are the task's (``task`` defaults to ``config.make_task()``).
    A block that cannot be measured gives a failed record, not an exception."""
    from nlbench.probes.receptive_field import receptive_field_probe

    task = config.make_task() if task is None else task
    try:
        result = receptive_field_probe(block, channels=config.channels, image_size=config.image_size,
                                       in_channels=task.in_channels, stage=config.stage, target="features")
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as exc:
        return failed_field_record(config, block, classify_failure(exc), f"{type(exc).__name__}: {exc}")
    record = result.to_record()
    # 3 significant digits, not fixed decimals: the heat map is drawn on a log scale.
    heatmap = [[float(f"{v:.3g}") for v in row] for row in result.heatmap]
    record.update(_field_identity(config, block), status=STATUS_OK, heatmap=heatmap)
    return record


def _field_identity(config: ProbeConfig, block: str) -> dict[str, Any]:
    return {"case_id": receptive_field_id(config, block), "task": config.task}


def failed_field_record(config: ProbeConfig, block: str, status: str, error: str) -> dict[str, Any]:
    """The record of a receptive field that could not be measured, and why."""
    return {"kind": KIND_RECEPTIVE_FIELD, "block": block, **_field_identity(config, block), "status": status,
            "error": error}
