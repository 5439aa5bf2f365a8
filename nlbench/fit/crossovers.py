"""Crossovers: where one block's cost overtakes another's along an axis —
:func:`find_crossings` on two series, :func:`crossovers` on a results frame."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import pandas as pd

from nlbench.vocabulary import check_axis
from nlbench.fit.frame import axis_column, fixed_columns, group_keys, ok_rows
from nlbench.fit.verdicts import format_size
from nlbench.vocabulary import metric as metric_named


@dataclass(frozen=True)
class Crossing:
    """Where ``log(cost_a / cost_b)`` changes sign between measured sizes.

    ``a_costlier_above`` is true when a costs more than b above ``x``.
    ``interpolated`` is false when the crossing was placed at a measured size (equal
    costs there) or at a geometric midpoint (a zero cost on one side).
    """

    x: float
    a_costlier_above: bool
    interpolated: bool


def find_crossings(
    x: Sequence[float] | np.ndarray, cost_a: Sequence[float] | np.ndarray, cost_b: Sequence[float] | np.ndarray
) -> list[Crossing]:
    """Sign changes of ln(cost_a/cost_b) over sorted ``x``, interpolated in log-log space.

    Costs must be ≥ 0; a zero cost is cheaper than any positive one. Between two
    neighbouring sizes with opposite signs the crossing is the root of the straight
    line through (ln x, ln a − ln b); equal costs at a size between opposite signs
    place the crossing at that size.
    """
    xs = np.asarray(x, dtype=float)
    a = np.asarray(cost_a, dtype=float)
    b = np.asarray(cost_b, dtype=float)
    if not (xs.shape == a.shape == b.shape):
        raise ValueError("x, cost_a and cost_b must have the same length")
    if np.any(xs <= 0) or np.any(a < 0) or np.any(b < 0):
        raise ValueError("find_crossings needs x > 0 and costs >= 0")
    order = np.argsort(xs)
    xs, a, b = xs[order], a[order], b[order]
    with np.errstate(divide="ignore", invalid="ignore"):
        diff = np.log(a) - np.log(b)
    diff = np.where((a == 0) & (b == 0), 0.0, diff)
    sign = np.sign(diff)
    crossings: list[Crossing] = []
    previous: int | None = None
    for i in range(xs.size):
        if sign[i] == 0:
            continue
        if previous is not None and sign[previous] != sign[i]:
            rising = bool(sign[i] > 0)
            if i - previous > 1:
                crossings.append(Crossing(float(xs[previous + 1]), rising, False))
            elif math.isfinite(diff[previous]) and math.isfinite(diff[i]):
                lx0, lx1 = math.log(xs[previous]), math.log(xs[i])
                t = diff[previous] / (diff[previous] - diff[i])
                crossings.append(Crossing(float(math.exp(lx0 + t * (lx1 - lx0))), rising, True))
            else:
                crossings.append(Crossing(float(math.sqrt(xs[previous] * xs[i])), rising, False))
        previous = i
    return crossings


CROSSOVER_COLUMNS: tuple[str, ...] = (
    "metric", "axis", "block_a", "options_a", "block_b", "options_b", "fixed_channels", "fixed_height",
    "fixed_width", "frames", "batch", "device", "dtype", "n_common", "x_min", "x_max", "crossover_x",
    "crossover_resolution", "costlier_above", "interpolated", "direction",
)


def crossovers(df: pd.DataFrame, metric: str = "macs", axis: str = "N") -> pd.DataFrame:
    """Where one block's cost overtakes another's along ``axis``.

    Every pair of series (block + options) measured in the same fixed group (the
    other axis, frames, batch, device, dtype) is compared on the sizes both measured
    (at least two); each sign change of ln(cost_a/cost_b) gives a row, and a pair
    without one gives a row with NaN ``crossover_x`` saying which is always cheaper.
    ``crossover_resolution`` (axis N) is the side of the equivalent square frame,
    sqrt(N / frames). Returns :data:`CROSSOVER_COLUMNS`.
    """
    check_axis(axis)
    column = metric_named(metric).column
    frame = ok_rows(df)
    frame = frame.loc[frame[column] >= 0]
    x_column = axis_column(axis)
    keys = group_keys(axis)
    records: list[dict[str, Any]] = []
    for key, group in frame.groupby(keys, dropna=False, sort=True):
        fixed = dict(zip(keys, key))
        series: dict[tuple[str, str], pd.Series] = {}
        for (block, options), rows in group.groupby(["block", "options"], sort=True):
            series[(str(block), str(options))] = rows.groupby(x_column)[column].median()
        for (id_a, costs_a), (id_b, costs_b) in itertools.combinations(sorted(series.items()), 2):
            common = costs_a.index.intersection(costs_b.index).sort_values()
            if common.size < 2:
                continue
            xs = common.to_numpy(float)
            a, b = costs_a.loc[common].to_numpy(float), costs_b.loc[common].to_numpy(float)
            base = {
                "metric": metric,
                "axis": axis,
                "block_a": id_a[0],
                "options_a": id_a[1],
                "block_b": id_b[0],
                "options_b": id_b[1],
                **fixed_columns(fixed),
                "n_common": int(xs.size),
                "x_min": float(xs.min()),
                "x_max": float(xs.max()),
            }
            name_a, name_b = _series_label(id_a, id_b), _series_label(id_b, id_a)
            found = find_crossings(xs, a, b)
            frames = 1 if base["frames"] is None else base["frames"]
            for crossing in found:
                high, low = (name_a, name_b) if crossing.a_costlier_above else (name_b, name_a)
                side = math.sqrt(crossing.x / frames) if axis == "N" else math.nan
                where = f"{axis}≈{format_size(crossing.x)}" + (f" (≈{side:.1f}² per frame)" if axis == "N" else "")
                records.append({
                    **base,
                    "crossover_x": crossing.x,
                    "crossover_resolution": side,
                    "costlier_above": high,
                    "interpolated": crossing.interpolated,
                    "direction": f"{high} costs more than {low} above {where}; below it {low} costs more",
                })
            if not found:
                records.append({
                    **base,
                    "crossover_x": math.nan,
                    "crossover_resolution": math.nan,
                    "costlier_above": _always_costlier(name_a, name_b, a, b),
                    "interpolated": False,
                    "direction": _no_crossing_text(name_a, name_b, a, b, axis, xs),
                })
    return pd.DataFrame.from_records(records, columns=list(CROSSOVER_COLUMNS))


def _series_label(own: tuple[str, str], other: tuple[str, str]) -> str:
    """The block name, with its options when the pair is one block in two configurations."""
    block, options = own
    return f"{block} {options}" if block == other[0] else block


def _always_costlier(name_a: str, name_b: str, a: np.ndarray, b: np.ndarray) -> str | None:
    if np.all(a >= b) and np.any(a > b):
        return name_a
    if np.all(b >= a) and np.any(b > a):
        return name_b
    return None


def _no_crossing_text(name_a: str, name_b: str, a: np.ndarray, b: np.ndarray, axis: str, xs: np.ndarray) -> str:
    span = f"{axis}∈[{format_size(xs.min())}, {format_size(xs.max())}]"
    costlier = _always_costlier(name_a, name_b, a, b)
    if costlier is None:
        return f"{name_a} and {name_b} cost the same at every measured size ({span})"
    cheaper = name_b if costlier == name_a else name_a
    return f"no crossover: {cheaper} is never costlier than {costlier} in the measured range {span}"
