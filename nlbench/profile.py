"""torch.profiler traces of one case, with per-operator and per-module tables joined to
the counter's MACs and FLOPs — what ``nlbench profile`` and the ``profile``
measurement write (docs/profile.md describes every file and column).

One case is built once and stepped under ``torch.profiler.profile`` with a
``schedule(wait, warmup, active, repeat=1)``: a step is one forward under ``no_grad`` in
eval mode, or with ``backward`` one forward + ``sum`` loss + backward in train mode with
the gradients cleared first (the step the forward+backward latency times). Every
submodule's forward runs inside a ``record_function`` range named after its qualified
name, so the trace, the operator table and the module table all say where time went.

Everything is reported *per step* (the totals of the ``active`` steps divided by their
number); MACs and FLOPs are the counter's (:func:`nlbench.measure.flops.count_flops`)
for one forward of the same module, never the profiler's own estimates.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import json
import math
import re
import shutil
import traceback
from collections import defaultdict
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Mapping, Sequence

from nlbench.vocabulary import ROOT_MODULE, ROOT_MODULE_TEXT, STATUS_OK

if TYPE_CHECKING:
    from torch import Tensor, nn

    from nlbench.case import Case
    from nlbench.measure.flops import FlopCount

# --------------------------------------------------------------------------- names

#: What every file of a case's profile directory is called (the TensorBoard run's trace
#: is ``<worker>.<timestamp>`` + :data:`TENSORBOARD_TRACE_SUFFIX`, the plugin's layout).
TRACE_FILE = "trace.json.gz"
OPS_FILE = "ops.csv"
MODULES_FILE = "modules.csv"
STACKS_FILE = "stacks.txt"
SUMMARY_FILE = "profile.json"
TENSORBOARD_TRACE_SUFFIX = ".pt.trace.json.gz"
#: Where the ``profile`` measurement writes under a run directory (one folder per case id).
PROFILES_DIR = "profiles"
#: The ``record_function`` range around a submodule's forward: this prefix + its name.
MODULE_RANGE_PREFIX = "module: "
#: The modules.csv row of backward time no forward op of the block created.
UNATTRIBUTED_BACKWARD = "(backward, unattributed)"
#: Where an operator ran: in the block's forward, in the backward pass, or around them
#: (the loss, the backward's seed gradient, …).
PHASE_FORWARD, PHASE_BACKWARD, PHASE_OTHER = "forward", "backward", "other"
PHASES: tuple[str, ...] = (PHASE_FORWARD, PHASE_BACKWARD, PHASE_OTHER)
#: The autograd engine's range around one backward node (its sequence_nr is the node's).
BACKWARD_NODE_PREFIX = "autograd::engine::evaluate_function: "
#: The folded-stacks metric of stacks.txt.
STACKS_METRIC = "self_cpu_time_total"

OPS_COLUMNS: tuple[str, ...] = (
    "phase", "operator", "op_class", "input_shapes", "calls_per_step", "self_cpu_ms_per_step",
    "total_cpu_ms_per_step", "self_cuda_ms_per_step", "total_cuda_ms_per_step", "counted_calls_per_forward",
    "macs_per_forward", "flops_per_forward",
)
MODULES_COLUMNS: tuple[str, ...] = (
    "module", "type", "calls_per_step", "fwd_self_ms_per_step", "fwd_total_ms_per_step", "fwd_self_share",
    "fwd_self_cuda_ms_per_step", "bwd_self_ms_per_step", "bwd_total_ms_per_step", "bwd_self_share",
    "macs_self_per_forward", "flops_self_per_forward", "flops_self_share",
)


# --------------------------------------------------------------------------- values


@dataclass(frozen=True)
class ProfileSettings:
    """How a case is profiled: the profiler's schedule and whether a step includes the
    backward pass."""

    backward: bool = False
    wait: int = 1
    warmup: int = 2
    active: int = 3

    def __post_init__(self) -> None:
        if not isinstance(self.backward, bool):
            raise ValueError(f"backward must be true or false, got {self.backward!r}")
        for name, minimum in (("wait", 0), ("warmup", 0), ("active", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise ValueError(f"{name} must be an integer ≥ {minimum}, got {value!r}")

    @property
    def steps(self) -> int:
        """The steps to run: the schedule's one cycle."""
        return self.wait + self.warmup + self.active


@dataclass(frozen=True)
class OperatorRow:
    """One (operator, input shapes) in one phase, per step (ms), with the counter's MACs
    and FLOPs per forward where it counted this operator at these shapes (None: not
    counted here — composites above and kernels below a counted operator, data
    movement, backward operators)."""

    phase: str
    operator: str
    op_class: str
    input_shapes: str
    calls_per_step: float
    self_cpu_ms: float | None
    total_cpu_ms: float | None
    self_cuda_ms: float | None = None
    total_cuda_ms: float | None = None
    counted_calls: int | None = None
    macs: int | None = None
    flops: int | None = None

    def csv_row(self) -> list[Any]:
        return [self.phase, self.operator, self.op_class, self.input_shapes, _number(self.calls_per_step),
                _number(self.self_cpu_ms), _number(self.total_cpu_ms), _number(self.self_cuda_ms),
                _number(self.total_cuda_ms), _number(self.counted_calls), _number(self.macs), _number(self.flops)]


@dataclass(frozen=True)
class ModuleRow:
    """One submodule (or the block itself, or the unattributed backward time): its
    forward time per step (self: without its child modules'), its backward time per
    step (the autograd nodes its own forward ops created), its own MACs and FLOPs per
    forward, and its shares of the totals."""

    module: str
    type: str
    calls_per_step: float
    fwd_self_ms: float | None
    fwd_total_ms: float | None
    fwd_self_share: float | None
    fwd_self_cuda_ms: float | None
    bwd_self_ms: float | None
    bwd_total_ms: float | None
    bwd_self_share: float | None
    macs: int
    flops: int
    flops_share: float | None

    @property
    def label(self) -> str:
        """How the module reads in a table (the block itself has no qualified name)."""
        return ROOT_MODULE_TEXT if self.module == ROOT_MODULE else self.module

    def csv_row(self) -> list[Any]:
        return [self.label, self.type, _number(self.calls_per_step), _number(self.fwd_self_ms),
                _number(self.fwd_total_ms), _number(self.fwd_self_share), _number(self.fwd_self_cuda_ms),
                _number(self.bwd_self_ms), _number(self.bwd_total_ms), _number(self.bwd_self_share),
                self.macs, self.flops, _number(self.flops_share)]


@dataclass(frozen=True)
class ProfileResult:
    """One case's profile: where it was written, its totals per step, its operator
    rows (sorted by self CPU time, largest first), its module rows, and the files
    written (kind → path). A failed case has ``status`` ≠ ok and an ``error``; what was
    written before the failure is still listed. ``stacks_note`` says why stacks.txt is
    empty when it is."""

    case: "Case"
    directory: Path
    settings: ProfileSettings
    status: str = STATUS_OK
    error: str | None = None
    steps: int = 0
    step_ms: float | None = None
    fwd_ms: float | None = None
    bwd_ms: float | None = None
    macs: int | None = None
    flops: int | None = None
    operators: tuple[OperatorRow, ...] = ()
    modules: tuple[ModuleRow, ...] = ()
    files: Mapping[str, Path] = field(default_factory=dict)
    stacks_note: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == STATUS_OK

    def top_operators(self, n: int = 10) -> tuple[OperatorRow, ...]:
        """The ``n`` operator rows with the most self CPU time per step."""
        return self.operators[:n]

    def measurement(self, relative_to: Path) -> "ProfileColumns":
        """The record columns of this profile, its directory relative to ``relative_to``."""
        directory = Path(self.directory).resolve()
        try:
            shown = directory.relative_to(Path(relative_to).resolve())
        except ValueError:
            shown = directory
        top = self.operators[0].operator if self.operators else None
        return ProfileColumns(profile_dir=str(shown), fwd_ms=self.fwd_ms, bwd_ms=self.bwd_ms, step_ms=self.step_ms,
                              top_operator=top)


@dataclass(frozen=True)
class ProfileColumns:
    """What the ``profile`` measurement adds to a case's record."""

    profile_dir: str
    fwd_ms: float | None
    bwd_ms: float | None
    step_ms: float | None
    top_operator: str | None

    def columns(self) -> dict[str, Any]:
        return {"profile_dir": self.profile_dir, "profile_fwd_ms": self.fwd_ms, "profile_bwd_ms": self.bwd_ms,
                "profile_step_ms": self.step_ms, "profile_top_op": self.top_operator}


def _number(value: float | int | None) -> Any:
    """A CSV cell: empty for None, integers as written, floats to 6 significant digits."""
    if value is None:
        return ""
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.6g}"
    return value


# --------------------------------------------------------------------------- entry points


def case_directory_name(case: "Case") -> str:
    """A file-system- and TensorBoard-safe name for a case (its label, e.g.
    ``nl_C64_64x64_B1``): letters, digits, ``_`` and ``-`` only, so the plugin's
    ``<worker>.<timestamp>.pt.trace.json`` pattern reads the worker name back whole."""
    return re.sub(r"[^A-Za-z0-9_-]+", "_", case.label).strip("_") or case.case_id


def profile_case(case: "Case", out_dir: Path | str, *, backward: bool = False, wait: int = 1, warmup: int = 2,
                 active: int = 3, name: str | None = None) -> ProfileResult:
    """Build ``case``'s block once and profile it into ``out_dir/<name>/`` (default name:
    :func:`case_directory_name`). Never raises for a failing case: an exception or an
    out-of-memory is recorded in the result (and in profile.json), so a multi-case run
    goes on."""
    import torch

    from nlbench.measure.run_case import classify_failure

    settings = ProfileSettings(backward=backward, wait=wait, warmup=warmup, active=active)
    directory = Path(out_dir) / (name or case_directory_name(case))
    if directory.is_dir():
        _remove_stale_files(directory)  # a failure before profiling starts must not leave old tables behind
    try:
        torch.manual_seed(0)
        module = case.build().eval()
        inputs = (case.make_input(seed=0),)
        return profile_module(module, inputs, case, directory, settings)
    except Exception as exc:  # noqa: BLE001 — a failing case is data, the next case still runs
        result = ProfileResult(case=case, directory=directory, settings=settings, status=classify_failure(exc),
                               error=f"{type(exc).__name__}: {exc}"[:2000])
        with contextlib.suppress(OSError):
            directory.mkdir(parents=True, exist_ok=True)
            written = replace(result, files={**_existing_files(directory), "summary": directory / SUMMARY_FILE})
            _write_summary(written, traceback_text=traceback.format_exc(limit=6)[-4000:])
            result = written
        return result


def profile_cases(cases: Iterable["Case"], out_dir: Path | str, *, backward: bool = False, wait: int = 1,
                  warmup: int = 2, active: int = 3) -> Iterator[ProfileResult]:
    """Profile each case into its own directory of ``out_dir``, one after the other,
    yielding each result as it is done (a failed case is a result too)."""
    for case in cases:
        yield profile_case(case, out_dir, backward=backward, wait=wait, warmup=warmup, active=active)


def profile_module(module: "nn.Module", inputs: "tuple[Tensor, ...]", case: "Case", directory: Path | str,
                   settings: ProfileSettings = ProfileSettings()) -> ProfileResult:
    """Profile ``module`` (``case``'s block, built) into ``directory`` and write every
    file there; raises when profiling fails. The module's modes, gradients and buffers
    are restored afterwards."""
    import torch

    from nlbench.measure.flops import count_flops
    from nlbench.measure.latency import as_input_tuple, inputs_for_backward, preserved_module_state

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    _remove_stale_files(directory)
    xs = as_input_tuple(inputs)
    if settings.backward:
        xs = inputs_for_backward(module, xs)
    with preserved_module_state(module):
        module.train(settings.backward)  # the counted forward is the profiled one (train-mode norms too)
        count = count_flops(module, xs)
        types = {name: type(sub).__name__ for name, sub in module.named_modules()}
        prof, tensorboard_trace = run_profiler(module, xs, directory, settings, worker=directory.name)
    events = list(prof.events())
    cuda = xs[0].device.type == "cuda"
    analysis = analyse_events(events, count, types, settings, cuda=cuda)
    files: dict[str, Path] = {"tensorboard_trace": tensorboard_trace}
    shutil.copyfile(tensorboard_trace, directory / TRACE_FILE)  # kineto saves a trace once: copy, do not re-export
    files["trace"] = directory / TRACE_FILE
    write_ops_csv(directory / OPS_FILE, analysis.operators)
    files["ops"] = directory / OPS_FILE
    write_modules_csv(directory / MODULES_FILE, analysis.modules)
    files["modules"] = directory / MODULES_FILE
    stacks_note = _write_stacks(prof, directory / STACKS_FILE)
    files["stacks"] = directory / STACKS_FILE
    files["summary"] = directory / SUMMARY_FILE
    result = ProfileResult(
        case=case, directory=directory, settings=settings, steps=analysis.steps, step_ms=analysis.step_ms,
        fwd_ms=analysis.fwd_ms, bwd_ms=analysis.bwd_ms, macs=count.macs, flops=count.flops,
        operators=analysis.operators, modules=analysis.modules, files=files, stacks_note=stacks_note,
    )
    _write_summary(result, uncounted_ops=count.uncounted_ops, threads=torch.get_num_threads())
    return result


# --------------------------------------------------------------------------- profiling


@contextlib.contextmanager
def module_ranges(module: "nn.Module") -> Iterator[dict[str, str]]:
    """Wrap every submodule's forward (and the block's own) in a ``record_function``
    range named :data:`MODULE_RANGE_PREFIX` + its qualified name (the block itself:
    :data:`~nlbench.vocabulary.ROOT_MODULE_TEXT`); yields range name → qualified name.
    The post-hooks run even when a forward raises (``always_call``), and every hook is
    removed on exit, on error too."""
    from torch.autograd.profiler import record_function

    names: dict[str, str] = {}
    open_ranges: dict[str, list[Any]] = defaultdict(list)
    handles = []

    def enter(range_name: str):  # noqa: ANN202
        def hook(_module: Any, _args: Any) -> None:
            scope = record_function(range_name)
            scope.__enter__()
            open_ranges[range_name].append(scope)

        return hook

    def leave(range_name: str):  # noqa: ANN202
        def hook(_module: Any, _args: Any, _output: Any) -> None:
            if open_ranges[range_name]:
                open_ranges[range_name].pop().__exit__(None, None, None)

        return hook

    try:
        for name, submodule in module.named_modules():
            range_name = MODULE_RANGE_PREFIX + (name if name != ROOT_MODULE else ROOT_MODULE_TEXT)
            names[range_name] = name
            handles.append(submodule.register_forward_pre_hook(enter(range_name)))
            handles.append(submodule.register_forward_hook(leave(range_name), always_call=True))
        yield names
    finally:
        for handle in handles:
            handle.remove()
        for scopes in open_ranges.values():  # a forward that raised between pre- and post-hook
            while scopes:
                with contextlib.suppress(Exception):
                    scopes.pop().__exit__(None, None, None)


def run_profiler(module: "nn.Module", xs: "tuple[Tensor, ...]", directory: Path, settings: ProfileSettings, *,
                  worker: str) -> tuple[Any, Path]:
    """Step the module under the profiler; the finished profiler and the TensorBoard
    trace file its ``tensorboard_trace_handler`` wrote."""
    import torch
    from torch.profiler import ProfilerActivity, profile, schedule, tensorboard_trace_handler

    from nlbench.measure.latency import clear_grads, forward_backward, synchronize_if_cuda

    device = xs[0].device
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    before = set(directory.glob("*" + TENSORBOARD_TRACE_SUFFIX))
    handler = tensorboard_trace_handler(str(directory), worker_name=worker, use_gzip=True)

    def step() -> None:
        if settings.backward:
            clear_grads(module, xs)
            with torch.enable_grad():
                output = forward_backward(module, xs)
        else:
            with torch.no_grad():
                output = module(*xs)
        del output
        synchronize_if_cuda(device)

    with module_ranges(module), profile(
        activities=activities, schedule=schedule(wait=settings.wait, warmup=settings.warmup, active=settings.active,
                                                 repeat=1),
        on_trace_ready=handler, record_shapes=True, profile_memory=True, with_stack=True,
        **_stack_config(),
    ) as prof:
        for _ in range(settings.steps):
            step()
            prof.step()
    if settings.backward:
        clear_grads(module, xs)
    written = sorted(set(directory.glob("*" + TENSORBOARD_TRACE_SUFFIX)) - before)
    if not written:
        raise RuntimeError(f"the profiler wrote no trace into {directory}")
    return prof, written[-1]


def _stack_config() -> dict[str, Any]:
    """The profiler option that makes ``with_stack`` keep each event's Python stack:
    without ``_ExperimentalConfig(verbose=True)`` this torch records no stacks and
    ``export_stacks`` writes an empty file."""
    try:
        from torch._C._profiler import _ExperimentalConfig

        return {"experimental_config": _ExperimentalConfig(verbose=True)}
    except (ImportError, TypeError):
        return {}


def _write_stacks(prof: Any, path: Path) -> str | None:
    """Folded stacks (``export_stacks``); why the file is empty when it is (None: it is not)."""
    try:
        prof.export_stacks(str(path), STACKS_METRIC)
    except Exception as exc:  # noqa: BLE001 — the other files are still worth having
        path.write_text("")
        return f"export_stacks failed: {type(exc).__name__}: {exc}"
    if path.stat().st_size == 0:
        return ("export_stacks wrote nothing: the profiler recorded no Python stacks (with_stack needs "
                "_ExperimentalConfig(verbose=True) on this torch)")
    return None


def _remove_stale_files(directory: Path) -> None:
    """Remove an earlier profile's files from ``directory``, so what is there is this
    profile's (the plugin would also show every old trace as another span of the run)."""
    for old in [*directory.glob("*" + TENSORBOARD_TRACE_SUFFIX),
                *(directory / name for name in (TRACE_FILE, OPS_FILE, MODULES_FILE, STACKS_FILE, SUMMARY_FILE))]:
        old.unlink(missing_ok=True)


# --------------------------------------------------------------------------- analysis


@dataclass(frozen=True)
class EventAnalysis:
    """The per-step tables and totals read from one profile's events."""

    steps: int
    step_ms: float | None
    fwd_ms: float | None
    bwd_ms: float | None
    operators: tuple[OperatorRow, ...]
    modules: tuple[ModuleRow, ...]


@dataclass(frozen=True)
class _Span:
    """An event's place in time on its thread, and what it is (for nesting)."""

    thread: int
    start: float
    end: float
    index: int  # into the event list

    @property
    def duration(self) -> float:
        return self.end - self.start


def _span(event: Any, index: int) -> _Span:
    return _Span(int(event.thread), float(event.time_range.start), float(event.time_range.end), index)


def _enclosing(ranges: Sequence[_Span], points: Sequence[_Span]) -> tuple[dict[int, int | None], dict[int, int | None]]:
    """The innermost range enclosing each range and each point (event index → range
    index, None when none), per thread. Ranges nest properly, as ``record_function``
    ranges and the engine's backward-node ranges on one thread do."""
    parent_of_range: dict[int, int | None] = {}
    range_of_point: dict[int, int | None] = {}
    by_thread: dict[int, list[tuple[float, int, float, _Span]]] = defaultdict(list)
    for r in ranges:
        by_thread[r.thread].append((r.start, 0, -r.end, r))
    for p in points:
        by_thread[p.thread].append((p.start, 1, -p.end, p))
    for items in by_thread.values():
        items.sort(key=lambda item: (item[0], item[1], item[2]))
        stack: list[_Span] = []
        for _, kind, _, span in items:
            while stack and stack[-1].end <= span.start:
                stack.pop()
            enclosing = stack[-1].index if stack else None
            if kind == 0:
                parent_of_range[span.index] = enclosing
                stack.append(span)
            else:
                range_of_point[span.index] = enclosing
    return parent_of_range, range_of_point


def _is_operator(event: Any) -> bool:
    """A CPU-side operator event (not a Python frame, a user range, a kernel)."""
    kind = getattr(event, "activity_type", None)
    if kind is not None:
        return str(kind) == "cpu_op"
    return not getattr(event, "is_python_function", False) and not event.is_user_annotation


def _is_user_range(event: Any) -> bool:
    kind = getattr(event, "activity_type", None)
    return str(kind) == "user_annotation" if kind is not None else bool(event.is_user_annotation)


def _counted_shapes(shapes: Iterable[Sequence[int]]) -> tuple[tuple[int, ...], ...]:
    """The join key's shapes: non-empty ones only, since the profiler writes ``[]`` for
    every non-tensor argument (and for 0-d tensors), the counter only tensors'."""
    return tuple(tuple(int(d) for d in s) for s in shapes if isinstance(s, (list, tuple)) and len(s) > 0)


def _dispatch_name(op: str) -> str:
    """``aten.bmm.default`` → ``bmm`` (the packet name, in-place underscore kept)."""
    parts = op.split(".")
    return parts[1] if len(parts) >= 2 and parts[0] == "aten" else op


def analyse_events(events: Sequence[Any], count: "FlopCount", module_types: Mapping[str, str],
                   settings: ProfileSettings, *, cuda: bool = False) -> EventAnalysis:
    """Read the per-step operator and module tables from a profile's events.

    Module ranges nest by time on their thread; an operator belongs to the innermost
    range it ran in (:data:`PHASE_FORWARD`), to a backward node's range
    (:data:`PHASE_BACKWARD`), or to neither (:data:`PHASE_OTHER`). A backward node's
    time goes to the module whose forward created the node: the forward operator with
    the node's ``sequence_nr`` that started last (an operator that creates no node
    still carries the next number; the one that creates it is the last to start before
    the counter moves on).
    """
    steps = sum(1 for e in events if _is_user_range(e) and e.name.startswith("ProfilerStep"))
    per_step = 1.0 / (steps or settings.active)
    step_us = [e.time_range.elapsed_us() for e in events if _is_user_range(e) and e.name.startswith("ProfilerStep")]
    ranges = [i for i, e in enumerate(events) if _is_user_range(e) and e.name.startswith(MODULE_RANGE_PREFIX)]
    nodes = [i for i, e in enumerate(events) if _is_operator(e) and e.name.startswith(BACKWARD_NODE_PREFIX)]
    operators = [i for i, e in enumerate(events) if _is_operator(e) and not e.name.startswith(BACKWARD_NODE_PREFIX)]
    spans = {i: _span(events[i], i) for i in (*ranges, *nodes, *operators)}
    parent_of, enclosing = _enclosing([spans[i] for i in (*ranges, *nodes)], [spans[i] for i in operators])
    module_of_range = {i: _range_module(events[i].name) for i in ranges}
    node_set = set(nodes)
    # Top-level backward nodes only (a re-entrant backward nests them): their time is the backward's.
    top_nodes = [i for i in nodes if parent_of.get(i) not in node_set]

    def phase_of(index: int) -> str:
        where = enclosing.get(index)
        if where is None:
            return PHASE_OTHER
        return PHASE_BACKWARD if where in node_set else PHASE_FORWARD

    phases = {i: phase_of(i) for i in operators}
    # Which module's forward created each autograd node: key (forward thread, sequence_nr).
    creator: dict[tuple[int, int], tuple[float, str | None]] = {}
    for i in operators:
        event = events[i]
        if phases[i] == PHASE_BACKWARD or event.sequence_nr is None or event.sequence_nr < 0:
            continue
        where = enclosing.get(i)
        module = module_of_range.get(where) if where is not None else None
        key = (int(event.thread), int(event.sequence_nr))
        if key not in creator or spans[i].start >= creator[key][0]:
            creator[key] = (spans[i].start, module)

    operator_rows = _operator_rows(events, operators, phases, count, per_step, cuda=cuda)
    module_rows, fwd_us, bwd_us = _module_rows(events, ranges, top_nodes, operators, phases, enclosing, parent_of,
                                               module_of_range, creator, count, module_types, per_step,
                                               backward=settings.backward, cuda=cuda)
    return EventAnalysis(
        steps=steps,
        step_ms=(sum(step_us) / len(step_us) / 1e3) if step_us else None,
        fwd_ms=fwd_us * per_step / 1e3 if ranges else None,
        bwd_ms=bwd_us * per_step / 1e3 if settings.backward else None,
        operators=operator_rows,
        modules=module_rows,
    )


def _range_module(range_name: str) -> str:
    """The qualified name a module range stands for."""
    name = range_name.removeprefix(MODULE_RANGE_PREFIX)
    return ROOT_MODULE if name == ROOT_MODULE_TEXT else name


def _operator_rows(events: Sequence[Any], operators: Sequence[int], phases: Mapping[int, str], count: "FlopCount",
                   per_step: float, *, cuda: bool) -> tuple[OperatorRow, ...]:
    """One row per (phase, operator, input shapes), aggregated as ``key_averages(
    group_by_input_shape=True)`` aggregates (``FunctionEventAvg``), with the counter's
    MACs and FLOPs joined on (name, non-empty input shapes) in the forward phase. A
    counted operator the join misses gets a row of its own, so the MACs and FLOPs
    columns always sum to the counter's totals."""
    from torch.autograd.profiler_util import FunctionEventAvg

    from nlbench.measure.flops import op_class_of

    groups: dict[tuple[str, str, str], FunctionEventAvg] = defaultdict(FunctionEventAvg)
    for i in operators:
        event = events[i]
        groups[(phases[i], event.key, str(event.input_shapes))].add(event)
    # The counter's (operator, shapes): assign each to the forward row of most calls.
    counted: dict[tuple[str, tuple[tuple[int, ...], ...]], list[Any]] = defaultdict(list)
    for shape in count.shapes:
        counted[(_dispatch_name(shape.op), _counted_shapes(shape.input_shapes))].append(shape)
    candidates: dict[tuple[str, tuple[tuple[int, ...], ...]], tuple[str, str, str]] = {}
    for key, average in groups.items():
        phase, name, _ = key
        if phase != PHASE_FORWARD or not name.startswith("aten::"):
            continue
        join = (name.removeprefix("aten::"), _counted_shapes(average.input_shapes or []))
        if join in counted and (join not in candidates or average.count > groups[candidates[join]].count):
            candidates[join] = key
    joined = {group_key: join for join, group_key in candidates.items()}

    def ms(us: float) -> float:
        return us * per_step / 1e3

    rows = []
    for key, average in groups.items():
        phase, name, shapes_text = key
        join = joined.get(key)
        shapes = counted.get(join, []) if join else []
        rows.append(OperatorRow(
            phase=phase, operator=name, op_class=op_class_of(name), input_shapes=_shapes_text(average.input_shapes),
            calls_per_step=average.count * per_step, self_cpu_ms=ms(average.self_cpu_time_total),
            total_cpu_ms=ms(average.cpu_time_total),
            self_cuda_ms=ms(average.self_device_time_total) if cuda else None,
            total_cuda_ms=ms(average.device_time_total) if cuda else None,
            counted_calls=sum(s.calls for s in shapes) if shapes else None,
            macs=sum(s.macs for s in shapes) if shapes else None,
            flops=sum(s.flops for s in shapes) if shapes else None,
        ))
    for join, shapes in counted.items():
        if join in candidates:
            continue
        op = shapes[0].op
        rows.append(OperatorRow(
            phase=PHASE_FORWARD, operator="aten::" + _dispatch_name(op), op_class=op_class_of(op),
            input_shapes=_shapes_text(shapes[0].input_shapes), calls_per_step=0.0, self_cpu_ms=None,
            total_cpu_ms=None, counted_calls=sum(s.calls for s in shapes), macs=sum(s.macs for s in shapes),
            flops=sum(s.flops for s in shapes),
        ))
    rows.sort(key=lambda r: (-(r.self_cpu_ms or 0.0), PHASES.index(r.phase), r.operator, r.input_shapes))
    return tuple(rows)


def _shapes_text(shapes: Any) -> str:
    """Input shapes as JSON text, e.g. ``[[1, 64, 32], [1, 32, 64]]`` (``[]`` for a
    non-tensor argument, as the profiler writes them)."""
    return json.dumps([list(s) if isinstance(s, (list, tuple)) else s for s in (shapes or [])])


def _module_rows(events: Sequence[Any], ranges: Sequence[int], top_nodes: Sequence[int], operators: Sequence[int],
                 phases: Mapping[int, str], enclosing: Mapping[int, int | None],
                 parent_of: Mapping[int, int | None], module_of_range: Mapping[int, str],
                 creator: Mapping[tuple[int, int], tuple[float, str | None]], count: "FlopCount",
                 module_types: Mapping[str, str], per_step: float, *, backward: bool,
                 cuda: bool) -> tuple[tuple[ModuleRow, ...], float, float]:
    """One row per module that ran (the block itself first, then in first-run order),
    plus :data:`UNATTRIBUTED_BACKWARD` when some backward time had no creator in the
    block; with the forward and backward totals (µs over all active steps)."""
    fwd_total: dict[str, float] = defaultdict(float)
    fwd_self: dict[str, float] = defaultdict(float)
    calls: dict[str, int] = defaultdict(int)
    order: list[str] = [ROOT_MODULE]
    range_set = set(ranges)
    for i in sorted(ranges, key=lambda i: events[i].time_range.start):
        module = module_of_range[i]
        duration = events[i].time_range.elapsed_us()
        fwd_total[module] += duration
        fwd_self[module] += duration
        calls[module] += 1
        if module not in order:
            order.append(module)
        parent = parent_of.get(i)
        if parent in range_set:
            fwd_self[module_of_range[parent]] -= duration
    fwd_us = fwd_total.get(ROOT_MODULE, 0.0)

    cuda_self: dict[str, float] = defaultdict(float)
    if cuda:
        for i in operators:
            where = enclosing.get(i)
            if phases[i] == PHASE_FORWARD and where in range_set:
                cuda_self[module_of_range[where]] += events[i].self_device_time_total

    bwd_self: dict[str | None, float] = defaultdict(float)
    for i in top_nodes:
        event = events[i]
        thread = int(getattr(event, "fwd_thread", 0) or event.thread)
        owner = creator.get((thread, int(event.sequence_nr))) if event.sequence_nr is not None else None
        bwd_self[owner[1] if owner else None] += event.time_range.elapsed_us()
    bwd_us = sum(bwd_self.values())

    flops_of = {m.module: m for m in count.modules}
    for m in count.modules:
        if m.module not in order and (m.macs or m.flops):
            order.append(m.module)

    def ms(us: float | None) -> float | None:
        return None if us is None else us * per_step / 1e3

    def share(part: float, whole: float) -> float | None:
        return part / whole if whole > 0 else None

    rows = []
    for module in order:
        own = flops_of.get(module)
        macs, flops = (own.macs, own.flops) if own else (0, 0)
        bwd_tree = sum(v for k, v in bwd_self.items() if k is not None and _within(k, module)) if backward else None
        rows.append(ModuleRow(
            module=module, type=module_types.get(module, own.type if own else ""),
            calls_per_step=calls.get(module, 0) * per_step,
            fwd_self_ms=ms(fwd_self.get(module, 0.0)), fwd_total_ms=ms(fwd_total.get(module, 0.0)),
            fwd_self_share=share(fwd_self.get(module, 0.0), fwd_us),
            fwd_self_cuda_ms=ms(cuda_self.get(module, 0.0)) if cuda else None,
            bwd_self_ms=ms(bwd_self.get(module, 0.0)) if backward else None,
            bwd_total_ms=ms(bwd_tree),
            bwd_self_share=share(bwd_self.get(module, 0.0), bwd_us) if backward else None,
            macs=macs, flops=flops, flops_share=share(flops, count.flops),
        ))
    if backward and bwd_self.get(None, 0.0) > 0:
        rows.append(ModuleRow(
            module=UNATTRIBUTED_BACKWARD, type="", calls_per_step=0.0, fwd_self_ms=None, fwd_total_ms=None,
            fwd_self_share=None, fwd_self_cuda_ms=None, bwd_self_ms=ms(bwd_self[None]), bwd_total_ms=ms(bwd_self[None]),
            bwd_self_share=share(bwd_self[None], bwd_us), macs=0, flops=0, flops_share=None,
        ))
    return tuple(rows), fwd_us, bwd_us


def _within(module: str, ancestor: str) -> bool:
    """Whether ``module`` is ``ancestor`` or below it in the qualified-name tree."""
    return ancestor == ROOT_MODULE or module == ancestor or module.startswith(ancestor + ".")


# --------------------------------------------------------------------------- files


def write_ops_csv(path: Path, rows: Sequence[OperatorRow]) -> None:
    """ops.csv: :data:`OPS_COLUMNS`, one row per (phase, operator, input shapes)."""
    with Path(path).open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(OPS_COLUMNS)
        writer.writerows(row.csv_row() for row in rows)


def write_modules_csv(path: Path, rows: Sequence[ModuleRow]) -> None:
    """modules.csv: :data:`MODULES_COLUMNS`, one row per module."""
    with Path(path).open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(MODULES_COLUMNS)
        writer.writerows(row.csv_row() for row in rows)


def _existing_files(directory: Path) -> dict[str, Path]:
    """The profile files already in ``directory`` (after a failure part-way)."""
    known = {"trace": TRACE_FILE, "ops": OPS_FILE, "modules": MODULES_FILE, "stacks": STACKS_FILE}
    found = {kind: directory / name for kind, name in known.items() if (directory / name).exists()}
    traces = sorted(directory.glob("*" + TENSORBOARD_TRACE_SUFFIX))
    if traces:
        found["tensorboard_trace"] = traces[-1]
    return found


def _write_summary(result: ProfileResult, *, uncounted_ops: Sequence[str] = (), threads: int | None = None,
                   traceback_text: str | None = None) -> None:
    """profile.json: the case, the settings, the totals and the files written."""
    import torch

    directory = Path(result.directory)
    summary: dict[str, Any] = {
        "case": result.case.to_dict(), "case_id": result.case.case_id, "label": result.case.label,
        "status": result.status, "error": result.error,
        "created": dt.datetime.now().isoformat(timespec="seconds"),
        "settings": {"backward": result.settings.backward, "wait": result.settings.wait,
                     "warmup": result.settings.warmup, "active": result.settings.active,
                     "record_shapes": True, "profile_memory": True, "with_stack": True,
                     "activities": ["cpu", "cuda"] if result.case.device == "cuda" else ["cpu"]},
        "environment": {"torch": torch.__version__, "threads": threads},
        "totals": {"steps": result.steps, "step_ms": result.step_ms, "fwd_ms": result.fwd_ms,
                   "bwd_ms": result.bwd_ms, "macs": result.macs, "flops": result.flops,
                   "uncounted_ops": list(uncounted_ops)},
        "top_operators": [{"phase": r.phase, "operator": r.operator, "input_shapes": r.input_shapes,
                           "self_cpu_ms_per_step": r.self_cpu_ms} for r in result.top_operators(10)],
        "files": {kind: _relative(path, directory) for kind, path in result.files.items()},
        "stacks_note": result.stacks_note,
    }
    if traceback_text:
        summary["traceback"] = traceback_text
    (directory / SUMMARY_FILE).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")


def _relative(path: Path, directory: Path) -> str:
    try:
        return str(Path(path).relative_to(directory))
    except ValueError:
        return str(path)
