"""Two source trees measured on the same machine in interleaved rounds.

One isolated worker per tree, each importing nlbench — blocks, measurers, the timing
loop — from its own tree. Every unit of work (a case's first measurement, each later
latency round, each contention retry) runs for both trees back to back, the order
alternating unit by unit (A B, B A, A B, …), so the machine's slow drift and its busy
moments fall on both sides alike. Each side is an ordinary stored run, tagged with a
shared ``gate_session`` and the code it ran; a case is stored on both sides when its
last unit is in, so an interrupted gate keeps every finished pair.
"""

from __future__ import annotations

import collections
import itertools
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from nlbench import store
from nlbench.case import Case
from nlbench.measure.registry import CaseSettings
from nlbench.progress import ProgressCallback
from nlbench.suite import Suite
from nlbench.sweep import IsolatedRunner, PendingCase, advance_case, case_settings, machine_calibration, start_run

BASE, CANDIDATE = "base", "candidate"
SIDES: tuple[str, ...] = (BASE, CANDIDATE)


class GateRunError(RuntimeError):
    """A side's worker cannot run at all (e.g. its tree predates the worker protocol)."""


@dataclass(frozen=True)
class Tree:
    """A source tree a side runs, with what the manifest records about it."""

    root: Path
    description: Mapping[str, Any]


def measure_interleaved(suite: Suite, trees: Mapping[str, Tree], out_root: Path, *,
                        only_blocks: list[str] | None = None, device: str | None = None,
                        plugins: list[str] | None = None,
                        progress: ProgressCallback[Case] | None = None) -> dict[str, Path]:
    """Measure ``suite`` for the base and candidate trees; the two run directories by side."""
    if set(trees) != set(SIDES):
        raise ValueError(f"trees must name exactly the sides {SIDES}, got {sorted(trees)}")
    plugins = plugins or []
    cases = suite.cases(only_blocks=only_blocks, device=device)
    settings = case_settings(suite)
    session = uuid.uuid4().hex[:12]
    calibration = machine_calibration(suite, device or suite.device[0])
    runs = {side: start_run(suite, out_root, only_blocks=only_blocks, device=device, plugins=plugins,
                            name=f"{suite.name}-{side}", calibration=calibration,
                            extra={"gate_session": session, "gate_side": side,
                                   "code": dict(trees[side].description)})
            for side in SIDES}
    runners = {side: IsolatedRunner(settings, plugins, runs[side] / "worker.log", code_root=trees[side].root)
               for side in SIDES}
    try:
        for side in SIDES:
            failure = runners[side].start(cpu=(device or suite.device[0]) == "cpu")
            if failure:
                raise GateRunError(f"the {side} side ({trees[side].root}): {failure}; a tree whose worker cannot "
                                   "run here can still be measured in its own checkout (`nlbench run --suite "
                                   f"{suite.name}`) and compared as a stored run (`nlbench gate BASE_RUN CAND_RUN`)")
        with store.writer_lock(runs[BASE]), store.writer_lock(runs[CANDIDATE]):
            _interleave(cases, settings, runners, runs, progress)
    finally:
        for runner in runners.values():
            runner.close()
    return runs


@dataclass
class _Pair:
    """A case in flight on both sides, and the sides still to finish it."""

    pending: dict[str, PendingCase]
    left: set[str]


def _interleave(cases: list[Case], settings: CaseSettings, runners: Mapping[str, IsolatedRunner],
                runs: Mapping[str, Path], progress: ProgressCallback[Case] | None) -> None:
    queue = collections.deque(_Pair({side: PendingCase(case) for side in SIDES}, set(SIDES)) for case in cases)
    finished = 0
    for step in itertools.count():
        if not queue:
            return
        pair = queue.popleft()
        for side in SIDES if step % 2 == 0 else SIDES[::-1]:
            if side in pair.left and not advance_case(pair.pending[side], settings, runners[side]):
                pair.left.discard(side)
        if pair.left:
            queue.append(pair)  # another round or a retry, after the other cases
            continue
        for side in SIDES:
            store.append_record(runs[side], pair.pending[side].record)
        finished += 1
        if progress:
            progress(pair.pending[CANDIDATE].case, pair.pending[CANDIDATE].record, finished, len(cases))
