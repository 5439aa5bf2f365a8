"""Number and label formatting shared by the report's tables, plots and prose, and by
the CLI's closing summary.

Conventions (harness spec): one multiply-add = 1 MAC = 2 FLOPs; decimal prefixes
(k = 10³, M = 10⁶, G = 10⁹) unless a column says 2³⁰; the unit is in every column name.
Metric names, units and labels come from :mod:`nlbench.vocabulary`; this module only
turns values into text.
"""

from __future__ import annotations

import json
import math
from typing import Any, Iterable

import pandas as pd

from nlbench.vocabulary import Metric

DECIMAL_PREFIXES: tuple[tuple[float, str, str], ...] = (
    (1e9, "G", "10⁹"),
    (1e6, "M", "10⁶"),
    (1e3, "k", "10³"),
    (1.0, "", ""),
)


def is_missing(value: Any) -> bool:
    """True for None, NaN and pandas' missing markers (``pd.NA``, ``NaT``)."""
    if value is None:
        return True
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):  # a list or array: not a missing scalar
        return False


def as_float(value: Any) -> float:
    """``value`` as a float, NaN when missing or not numeric."""
    if is_missing(value):
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def pick_prefix(values: Iterable[Any]) -> tuple[float, str, str]:
    """(factor, prefix, power text) of the largest decimal prefix ≤ the largest |value|."""
    finite = [abs(v) for v in (as_float(x) for x in values) if math.isfinite(v)]
    top = max(finite) if finite else 0.0
    for factor, prefix, power in DECIMAL_PREFIXES:
        if top >= factor:
            return factor, prefix, power
    return DECIMAL_PREFIXES[-1]


def prefixed_unit(factor_prefix_power: tuple[float, str, str], unit: str) -> str:
    """``k = 10³ MACs`` for a prefix chosen by :func:`pick_prefix` (just ``unit`` without one)."""
    _, prefix, power = factor_prefix_power
    return f"{prefix} = {power} {unit}" if prefix else unit


def metric_label(metric: Metric) -> str:
    """A metric's title with its unit: ``forward latency [ms]``, ``MACs``."""
    return metric.title if metric.unit == metric.title else f"{metric.title} [{metric.unit}]"


def num(value: Any, digits: int = 3) -> str:
    """A number with ``digits`` significant digits; "—" when missing."""
    v = as_float(value)
    if not math.isfinite(v):
        return "—"
    if v == 0:
        return "0"
    if abs(v) >= 10 ** digits:
        return f"{v:,.0f}"
    return f"{v:.{digits}g}"


def scaled(value: Any, factor: float, digits: int = 3) -> str:
    """``value / factor`` formatted by :func:`num`."""
    v = as_float(value)
    return num(v / factor if math.isfinite(v) else v, digits)


def short_count(value: Any, digits: int = 3) -> str:
    """A count with its own decimal prefix, for a label where no column names the unit:
    ``1.51 M``, ``820 k``, ``12``; "—" when missing."""
    v = as_float(value)
    if not math.isfinite(v):
        return "—"
    v = float(f"{v:.{digits}g}")  # round first, so 999 999 reads "1 M", not "1e+03 k"
    factor, prefix, _ = pick_prefix([v])
    return f"{num(v / factor, digits)} {prefix}".rstrip()


def signed(value: Any, factor: float = 1.0, digits: int = 3) -> str:
    """A signed difference (``+1.2``, ``−0.5``)."""
    v = as_float(value)
    if not math.isfinite(v):
        return "—"
    v /= factor
    text = num(abs(v), digits)
    if v > 0:
        return "+" + text
    if v < 0:
        return "−" + text
    return text


def percent(value: Any, digits: int = 1, sign: bool = False) -> str:
    """A fraction as a percentage."""
    v = as_float(value)
    if not math.isfinite(v):
        return "—"
    return f"{v * 100:+.{digits}f} %" if sign else f"{v * 100:.{digits}f} %"


def interval(value: Any, low: Any, high: Any, digits: int = 2) -> str:
    """``value [low, high]`` (the CI omitted when not finite)."""
    v, lo, hi = as_float(value), as_float(low), as_float(high)
    if not math.isfinite(v):
        return "—"
    if math.isfinite(lo) and math.isfinite(hi):
        return f"{v:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"
    return f"{v:.{digits}f}"


def fixed(value: Any, decimals: int = 1) -> str:
    """A number with ``decimals`` digits after the point; "—" when missing."""
    v = as_float(value)
    return f"{v:.{decimals}f}" if math.isfinite(v) else "—"


def integer(value: Any) -> str:
    """A count as a whole number; "—" when missing."""
    v = as_float(value)
    return str(int(round(v))) if math.isfinite(v) else "—"


def options_text(options: Any) -> str:
    """Options JSON as compact ``k=v, …`` text ("" for the defaults)."""
    if is_missing(options):
        return ""
    if isinstance(options, dict):
        data = options
    else:
        try:
            data = json.loads(str(options))
        except (TypeError, ValueError):
            return str(options)
    if not isinstance(data, dict):
        return str(data)
    return ", ".join(f"{key}={json.dumps(value)}" for key, value in sorted(data.items()))


def block_label(block: Any, options: Any = None, run: str | None = None) -> str:
    """``block``, ``block {k=v}`` when it has non-default options, ``… [run]`` when given."""
    text = str(block)
    extra = options_text(options)
    if extra:
        text += f" {{{extra}}}"
    if run:
        text += f" [{run}]"
    return text


def size_text(height: Any, width: Any, frames: Any = None) -> str:
    """``H×W`` (``T·H×W`` for video)."""
    h, w = as_float(height), as_float(width)
    if not (math.isfinite(h) and math.isfinite(w)):
        return "—"
    prefix = "" if is_missing(frames) else f"T{int(as_float(frames))}·"
    return f"{prefix}{int(h)}×{int(w)}"


def case_text(row: Any) -> str:
    """``C32 · 16×16`` (with batch and dtype when not 1 / float32)."""
    parts = [f"C{int(as_float(row['channels']))}", size_text(row["height"], row["width"], row.get("frames"))]
    batch = as_float(row.get("batch"))
    if math.isfinite(batch) and batch != 1:
        parts.append(f"B{int(batch)}")
    dtype = row.get("dtype")
    if isinstance(dtype, str) and dtype != "float32":
        parts.append(dtype)
    return " · ".join(parts)


def first_line(text: Any, limit: int = 160) -> str:
    """The first line of an error message, cut to ``limit`` characters."""
    if is_missing(text):
        return ""
    line = str(text).strip().splitlines()[0] if str(text).strip() else ""
    return line if len(line) <= limit else line[: limit - 1] + "…"
