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

import datetime as dt
import math
import statistics
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

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
    "LrChoice", "ProbeRun", "ProbeSummary", "StepCallback", "aggregate", "block_cases", "choose_lr",
    "config_from_manifest",
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


def _train(config: ProbeConfig, case: ProbeCase, task: TaskData, on_step: StepCallback | None,
           lr: float | None = None) -> ProbeResult:
    on_point = None if on_step is None else (lambda point: on_step(case, point))
    kind = KIND_PROBE_LR_TRIAL if case.is_lr_trial else KIND_PROBE
    rate = case.lr if case.is_lr_trial else lr
    return train_probe(replace(config, lr=config.lr if rate is None else rate), case.block, case.seed, task=task,
                       block_options=case.options, on_point=on_point, kind=kind)


def _block_results(config: ProbeConfig, block: str, seeds: Sequence[int], task: TaskData,
                   known: Mapping[str, ProbeResult], on_step: StepCallback | None,
                   options: Mapping[str, Any] | None = None) -> Iterator[tuple[ProbeCase, ProbeResult]]:
    """The results of ``block`` that ``known`` (by case id) lacks, in order: its rate
    trials, then its seeds at the chosen rate. The trial at the chosen rate of the
    sweep seed is that seed's run (the same computation): it is reused, not retrained."""
    trials = []
    for case in lr_trial_cases(config, block, options):
        result = known.get(case.case_id)
        if result is None:
            result = _train(config, case, task, on_step)
            yield case, result
        trials.append(result)
    choice = choose_lr(trials, config)
    for seed in seeds:
        case = config.probe_case(block, seed, options)
        if case.case_id in known:
            continue
        reusable = next((t for t in trials if t.seed == seed and t.status == STATUS_OK and t.config.lr == choice.lr),
                        None)
        result = replace(reusable, kind=KIND_PROBE) if reusable else _train(config, case, task, on_step, choice.lr)
        yield case, replace(result, lr_choice=choice.reason, lr_trial_reused=reusable is not None)


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
    task = config.make_task()
    results: list[ProbeResult] = []
    for block in dict.fromkeys(case.block for case in cases):
        options = next(case.options for case in cases if case.block == block)
        for case, result in _block_results(config, block, seeds, task, {}, on_step, options):
            results.append(result)
            if progress:
                progress(case, result.to_record(), len(results), len(cases))
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
                   on_step: StepCallback | None = None) -> ProbeRun:
    """Train every rate trial and seed not yet in ``run_dir`` (:func:`pending_probe_cases`),
    appending each result when done, and each block's receptive field after its seeds.
    The run directory is held with the store's one-writer lock meanwhile.

    ``progress(case, record, index, total)`` follows each stored result; ``index``
    and ``total`` count the results this call adds (a reused trial counts, untrained).
    """
    with store.writer_lock(run_dir):
        done = store.finished_case_ids(run_dir)
        todo = [case for block in blocks for case in block_cases(config, block) if case.case_id not in done]
        fields = [block for block in blocks if receptive_field_id(config, block) not in done]
        already_done = sum(len(block_cases(config, block)) for block in blocks) - len(todo)
        if not todo and not fields:
            return ProbeRun(run_dir, 0, already_done)
        known = _known_results(run_dir)
        task = config.make_task()
        index = 0
        for block in blocks:
            for case, result in _block_results(config, block, config.seeds, task, known, on_step):
                index += 1
                record = result.to_record()
                store.append_record(run_dir, record)
                if progress:
                    progress(case, record, index, len(todo))
            if block in fields:
                store.append_record(run_dir, receptive_field_record(config, block, task=task))
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
    identity = {"case_id": receptive_field_id(config, block), "task": config.task}
    try:
        result = receptive_field_probe(block, channels=config.channels, image_size=config.image_size,
                                       in_channels=task.in_channels, stage=config.stage, target="features")
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as exc:
        return {"kind": KIND_RECEPTIVE_FIELD, "block": block, **identity, "status": classify_failure(exc),
                "error": f"{type(exc).__name__}: {exc}"}
    record = result.to_record()
    # 3 significant digits, not fixed decimals: the heat map is drawn on a log scale.
    heatmap = [[float(f"{v:.3g}") for v in row] for row in result.heatmap]
    record.update(identity, status=STATUS_OK, heatmap=heatmap)
    return record
