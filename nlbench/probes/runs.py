"""Probe runs in the results store: each block × seed result is appended as it
finishes, so an interrupted probe keeps what it trained and ``--resume`` trains only
what is missing. Records load with :func:`nlbench.store.load` (``kind == "probe"``)."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from nlbench import store
from nlbench.probes.probe import ProbeConfig, ProbeEvent, ProbeResult, run_probe

TASK_ALIASES = {"same-pair": "same_pair", "long-range": "same_pair"}


def canonical_task(name: str) -> str:
    """The task's registry name (``same-pair`` and ``long-range`` mean ``same_pair``)."""
    return TASK_ALIASES.get(name, name.replace("-", "_"))


def probe_case_id(task: str, block: str, options: str, seed: int) -> str:
    """The store identity of one block × seed probe."""
    return f"probe:{task}:{block}:{options}:{seed}"


@dataclass(frozen=True)
class ProbeRun:
    """Where a probe run wrote and what it trained."""

    run_dir: Path
    trained: int
    already_done: int


def start_probe_run(config: ProbeConfig, out_root: Path, blocks: list[str]) -> Path:
    """A new ``out_root/probe-<task>-<timestamp>`` run with its manifest."""
    from nlbench.environment import fingerprint
    from nlbench.sweep import new_run_dir

    run_dir = new_run_dir(out_root, f"probe-{config.task.replace('_', '-')}")
    run_dir.mkdir(parents=True)
    store.write_manifest(run_dir, {
        "run_id": run_dir.name,
        "kind": "probe",
        "started_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "suite": f"probe-{config.task}",
        "probe_config": config.to_dict(),
        "blocks": blocks,
        "environment": fingerprint("cpu"),
    })
    return run_dir


def config_from_manifest(run_dir: Path) -> tuple[ProbeConfig, list[str]]:
    """The config and blocks a probe run was started with (for ``--resume``)."""
    manifest = store.read_manifest(run_dir)
    if manifest.get("kind") != "probe":
        raise store.StoreError(f"{run_dir}: not a probe run")
    fields: dict[str, Any] = dict(manifest["probe_config"])
    fields["seeds"] = tuple(fields["seeds"])
    fields["task_options"] = tuple(sorted(fields.get("task_options", {}).items()))
    return ProbeConfig(**fields), list(manifest["blocks"])


def run_probe_into(run_dir: Path, config: ProbeConfig, blocks: Sequence[str],
                   progress: Callable[[ProbeEvent], None] | None = None) -> ProbeRun:
    """Train every block × seed not yet in ``run_dir``; append each result when done."""
    done = store.finished_case_ids(run_dir)
    trained = skipped = 0
    for block in blocks:
        seeds = [s for s in config.seeds if probe_case_id(config.task, block, "{}", s) not in done]
        skipped += len(config.seeds) - len(seeds)
        if not seeds:
            continue

        def on_event(event: ProbeEvent) -> None:
            if event.kind == "done" and event.result is not None:
                store.append_record(run_dir, result_record(event.result))
            if progress:
                progress(event)

        trained += len(run_probe(config, [block], seeds=seeds, progress_callback=on_event))
        if receptive_field_id(config.task, block) not in done:
            store.append_record(run_dir, receptive_field_record(config, block))
    return ProbeRun(run_dir, trained, skipped)


def receptive_field_id(task: str, block: str) -> str:
    """The store identity of a block's receptive-field measurement in a probe run."""
    return f"rf:{task}:{block}"


def receptive_field_record(config: ProbeConfig, block: str) -> dict[str, Any]:
    """The receptive field of ``block`` in the probe backbone (perturbed, untrained):
    what the head sees of the input from the centre position, with its heat map."""
    from nlbench.probes.receptive_field import receptive_field_probe

    in_channels = 3 if config.task.startswith("cifar") else 1
    result = receptive_field_probe(block, channels=config.channels, image_size=config.image_size,
                                   in_channels=in_channels, stage=config.stage, target="features")
    record = result.to_record()
    # 3 significant digits, not fixed decimals: the heat map is drawn on a log scale.
    heatmap = [[float(f"{v:.3g}") for v in row] for row in result.heatmap]
    record.update(case_id=receptive_field_id(config.task, block), task=config.task, status="ok", heatmap=heatmap)
    return record


def result_record(result: ProbeResult) -> dict[str, Any]:
    """The store record of one probe result, with its case identity."""
    record = result.to_record()
    options = json.dumps(json.loads(record["options"]), sort_keys=True)
    record["case_id"] = probe_case_id(result.task, result.block, options, result.seed)
    return record
