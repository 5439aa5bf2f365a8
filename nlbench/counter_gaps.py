"""Where fvcore and ptflops differ from our counter, by operator class.

Each sweep case that ran the ``counters`` measurement records both tools' MACs by
operator class (``fvcore_macs_by_class``, ``ptflops_macs_by_class``: JSON objects
{class: MACs}, see :mod:`nlbench.measure.external_counters`) beside our own cost by
class (``cost_by_class``, flattened by :func:`nlbench.store.load` into ``macs_<class>``
and ``flops_<class>``). :func:`counter_class_gaps` sets them side by side.

What is compared, per class:

* **MAC classes** (:data:`~nlbench.vocabulary.MAC_OP_CLASSES`: conv, matmul, fft): the
  tool's MACs against ours — the same unit, so a difference is an operator the tool
  skips or counts with another formula (``<tool>_rel`` = tool / ours − 1).
* **FLOP-only classes** (softmax, elementwise, norm, other): we count no MACs there by
  convention (:data:`~nlbench.vocabulary.MACS_CONVENTION`), while both tools put about
  one unit per operation into their MAC totals (fvcore's batch norm in eval is 2 per
  element, our FLOPs too; ptflops counts one per activation output, as our FLOPs do).
  So ``<tool>_rel`` compares the tool's count with our *FLOPs* of the class, which says
  whether it counts the same operations; FLOPs / 2 would compare operations with
  multiply-adds, which these classes do not have.

``<tool>_diff`` = tool − our MACs in every class: the class's share of the gap between
the tool's total and ours (the diffs of a case sum to that gap).

Torch-free and pure: a loaded frame in, a plain frame of numbers out.
"""

from __future__ import annotations

import json
import math
from typing import Any, Mapping

import pandas as pd

from nlbench import store
from nlbench.vocabulary import MAC_OP_CLASSES, OP_CLASSES, SHAPE_KEYS, STATUS_OK, class_cost_column

__all__ = ["COUNTER_GAP_COLUMNS", "COUNTER_TOOLS", "counter_class_gaps", "tool_by_class_column"]

#: The public counters, in the order tables show them.
COUNTER_TOOLS: tuple[str, ...] = ("fvcore", "ptflops")

COUNTER_GAP_COLUMNS: tuple[str, ...] = (
    "run", "case_id", "block", "options", *SHAPE_KEYS, "positions", "label", "op_class", "mac_class",
    "ours_macs", "ours_flops", "ours", "ours_unit",
    *(f"{tool}_{part}" for tool in COUNTER_TOOLS for part in ("macs", "diff", "rel")),
)


def tool_by_class_column(tool: str) -> str:
    """The record column of a tool's MACs by class: ``fvcore_macs_by_class`` …"""
    if tool not in COUNTER_TOOLS:
        raise ValueError(f"unknown counter {tool!r}; known: {', '.join(COUNTER_TOOLS)}")
    return f"{tool}_macs_by_class"


def _by_class(value: Any) -> Mapping[str, float] | None:
    """A stored {class: MACs} object (a dict, or its JSON text), or None when absent."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            return None
    if not isinstance(value, Mapping):
        return None
    out: dict[str, float] = {}
    for op_class, macs in value.items():
        if isinstance(macs, bool) or not isinstance(macs, (int, float)) or not math.isfinite(macs):
            return None
        out[str(op_class)] = float(macs)
    return out


def _relative(tool: float, ours: float) -> float:
    """tool / ours − 1; NaN when either is unknown or ours is 0."""
    if math.isnan(tool) or math.isnan(ours) or ours == 0:
        return math.nan
    return tool / ours - 1.0


def counter_class_gaps(df: pd.DataFrame) -> pd.DataFrame:
    """One row per ok sweep case × operator class where fvcore's or ptflops' MACs
    differ from ours (:data:`COUNTER_GAP_COLUMNS`, cases in frame order, classes in
    :data:`~nlbench.vocabulary.OP_CLASSES` order).

    ``ours`` is the count compared against — our MACs in a MAC class, our FLOPs in a
    FLOP-only class (``ours_unit`` says which); ``<tool>_macs`` is the tool's count (0
    for a class it counted nothing in, NaN when that tool has no by-class record for
    the case), ``<tool>_diff`` the tool's MACs minus ours, ``<tool>_rel`` tool / ours − 1
    (NaN where ours is 0). A case without our cost by class or without either tool's
    by-class record (runs from before they were recorded) gives no rows.
    """
    frame = store.sweep_records(store.normalise(df))
    tool_columns = [tool_by_class_column(tool) for tool in COUNTER_TOOLS]
    if frame.empty or not any(column in frame.columns for column in tool_columns):
        return pd.DataFrame(columns=list(COUNTER_GAP_COLUMNS))
    records = []
    for _, case in frame.loc[frame["status"] == STATUS_OK].iterrows():
        tools = {tool: _by_class(case.get(column)) for tool, column in zip(COUNTER_TOOLS, tool_columns)}
        if all(counts is None for counts in tools.values()):
            continue
        ours_flops_by_class = {c: float(case[class_cost_column("flops", c)]) for c in OP_CLASSES}
        if any(math.isnan(v) for v in ours_flops_by_class.values()):
            continue  # our counter did not attribute this case
        for op_class in OP_CLASSES:
            mac_class = op_class in MAC_OP_CLASSES
            ours_macs = float(case[class_cost_column("macs", op_class)]) if mac_class else 0.0
            ours_flops = ours_flops_by_class[op_class]
            ours = ours_macs if mac_class else ours_flops
            row: dict[str, Any] = {
                "run": case["run"], "case_id": case["case_id"], "block": case["block"], "options": case["options"],
                **{key: case[key] for key in SHAPE_KEYS}, "positions": case["positions"],
                "label": case.get("label"), "op_class": op_class, "mac_class": mac_class,
                "ours_macs": ours_macs, "ours_flops": ours_flops, "ours": ours,
                "ours_unit": "MACs" if mac_class else "FLOPs",
            }
            differs = False
            for tool, counts in tools.items():
                macs = math.nan if counts is None else counts.get(op_class, 0.0)
                diff = macs - ours_macs
                differs = differs or (not math.isnan(diff) and diff != 0)
                row.update({f"{tool}_macs": macs, f"{tool}_diff": diff, f"{tool}_rel": _relative(macs, ours)})
            if differs:
                records.append(row)
    if not records:
        return pd.DataFrame(columns=list(COUNTER_GAP_COLUMNS))
    return pd.DataFrame.from_records(records, columns=list(COUNTER_GAP_COLUMNS))
