"""The values a report is made of, all frozen: typed tables (each column says whether it
holds numbers or text, so a renderer formats the one and escapes the other), plot data
(what to draw, not pixels), sections and the report itself. A built report is pure
data: rendering (:mod:`nlbench.report.render`) turns it into markdown and HTML and is the
only step that draws."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property
from typing import Union

from nlbench.report.formatting import fixed, integer, interval, is_missing, num, percent, scaled, signed
from nlbench.vocabulary import STATUS_TEXT

# ----------------------------------------------------------------------------------
# Tables
# ----------------------------------------------------------------------------------

NUMBER = "number"
TEXT = "text"
COLUMN_KINDS: tuple[str, ...] = (NUMBER, TEXT)

#: How a number column writes its values (see :meth:`Column.text`).
NUMBER_STYLES: tuple[str, ...] = ("sig", "signed", "percent", "signed_percent", "fixed", "integer", "interval")


@dataclass(frozen=True)
class Interval:
    """An estimate with its confidence interval, shown ``value [low, high]``."""

    value: float
    low: float
    high: float


#: A table cell: text; a number (or None/NaN: not measured); an :class:`Interval`. In a
#: number column a ``str`` stands where a number would (a status such as ``OOM``).
Cell = Union[str, float, int, Interval, None]


@dataclass(frozen=True)
class Column:
    """A table column: its name, whether it holds numbers or text, and its unit.

    The header is ``name [unit]`` (just ``name`` without a unit). Number columns write
    their values in ``style`` with ``digits`` significant digits (``decimals`` for
    ``fixed``/``percent``) after dividing by ``scale`` (a k/M/G prefix named in the unit).
    """

    name: str
    kind: str = TEXT
    unit: str = ""
    style: str = "sig"
    digits: int = 3
    decimals: int = 1
    scale: float = 1.0

    def __post_init__(self) -> None:
        if self.kind not in COLUMN_KINDS:
            raise ValueError(f"column {self.name!r}: kind must be one of {COLUMN_KINDS}, got {self.kind!r}")
        if self.style not in NUMBER_STYLES:
            raise ValueError(f"column {self.name!r}: style must be one of {NUMBER_STYLES}, got {self.style!r}")
        if not (math.isfinite(self.scale) and self.scale > 0):
            raise ValueError(f"column {self.name!r}: scale must be a positive number, got {self.scale!r}")

    @property
    def header(self) -> str:
        return f"{self.name} [{self.unit}]" if self.unit else self.name

    @property
    def numeric(self) -> bool:
        return self.kind == NUMBER

    def text(self, value: Cell) -> str:
        """The cell as text: numbers formatted, text as it is, "—" for a missing value."""
        if isinstance(value, str):
            return value
        if isinstance(value, Interval):
            return interval(value.value, value.low, value.high)
        if value is None or is_missing(value):
            return "—"
        if not self.numeric:
            return str(value)
        style, v = self.style, float(value)
        if style == "signed":
            return signed(v, self.scale, self.digits)
        if style in ("percent", "signed_percent"):
            return percent(v / self.scale, self.decimals, sign=style == "signed_percent")
        if style == "fixed":
            return fixed(v / self.scale, self.decimals)
        if style == "integer":
            return integer(v / self.scale)
        return scaled(v, self.scale, self.digits) if self.scale != 1 else num(v, self.digits)


def text_column(name: str) -> Column:
    """A column of text (labels, sizes, verdicts, messages)."""
    return Column(name, TEXT)


def number_column(name: str, unit: str = "", **format_: object) -> Column:
    """A column of numbers; ``format_`` as :class:`Column` (style, digits, decimals, scale)."""
    return Column(name, NUMBER, unit, **format_)  # type: ignore[arg-type]


def _text_cell(title: str, column: Column, cell: Cell) -> str | None:
    """A text column's cell: text, or None for a missing value (shown "—")."""
    if isinstance(cell, str):
        return cell
    if cell is None or is_missing(cell):
        return None
    raise TypeError(f"table {title!r}: text column {column.name!r} got {cell!r} ({type(cell).__name__}); "
                    "make it a number column or pass text")


@dataclass(frozen=True)
class Table:
    """A table: typed columns and rows of cells. ``columns`` are the headers and
    ``rows`` the cells as text (what a reader sees); ``spec`` and ``cells`` keep the
    types, so a renderer aligns numbers and escapes text."""

    title: str
    spec: tuple[Column, ...]
    cells: tuple[tuple[Cell, ...], ...]
    note: str = ""

    def __post_init__(self) -> None:
        spec = tuple(self.spec)
        rows = []
        for number, row in enumerate(self.cells):
            row = tuple(row)
            if len(row) != len(spec):
                raise ValueError(f"table {self.title!r}: row {number} has {len(row)} cells, expected {len(spec)}")
            rows.append(tuple(_text_cell(self.title, column, cell) if not column.numeric else cell
                              for column, cell in zip(spec, row)))
        object.__setattr__(self, "spec", spec)
        object.__setattr__(self, "cells", tuple(rows))

    @property
    def columns(self) -> tuple[str, ...]:
        """The column headers (names with units)."""
        return tuple(column.header for column in self.spec)

    @cached_property
    def rows(self) -> tuple[tuple[str, ...], ...]:
        """Every cell as text, formatted by its column."""
        return tuple(tuple(column.text(cell) for column, cell in zip(self.spec, row)) for row in self.cells)

    def _index(self, name: str) -> int:
        if name not in self.columns:
            raise KeyError(f"table {self.title!r} has no column {name!r}; it has {list(self.columns)}")
        return self.columns.index(name)

    def column(self, name: str) -> tuple[str, ...]:
        """The cells of one column (by header), as text."""
        index = self._index(name)
        return tuple(row[index] for row in self.rows)

    def values(self, name: str) -> tuple[Cell, ...]:
        """The cells of one column (by header), as stored (numbers stay numbers)."""
        index = self._index(name)
        return tuple(row[index] for row in self.cells)


# ----------------------------------------------------------------------------------
# Plot data
# ----------------------------------------------------------------------------------

PLOT_KINDS: tuple[str, ...] = ("cost", "pareto", "heatmaps", "stacked")


@dataclass(frozen=True)
class FailedPoint:
    """A case that did not produce a measurement, drawn as an ✕ at its size.

    ``y`` is where the marker sits: the fitted cost model extrapolated to ``x`` when
    there is one, else the series' largest measured cost. ``size`` names the failed
    size along the plot's axis (``64×64`` for N, ``C=8`` for C).
    """

    x: float
    y: float
    status: str
    size: str
    error: str = ""


@dataclass(frozen=True)
class Series:
    """One line of a cost plot: a block (with options, and run when several) along an axis."""

    label: str
    x: tuple[float, ...]
    y: tuple[float, ...]
    y_low: tuple[float, ...] = ()
    y_high: tuple[float, ...] = ()
    fit_x: tuple[float, ...] = ()
    fit_y: tuple[float, ...] = ()
    fit_terms: str = ""
    failed: tuple[FailedPoint, ...] = ()
    zero_x: tuple[float, ...] = ()
    warnings: tuple[str, ...] = ()  # per point: why its latency cannot be trusted ("" when it can)

    @property
    def warned_points(self) -> tuple[tuple[float, float, str], ...]:
        """(x, y, warnings) of the points drawn as not trustworthy."""
        return tuple((x, y, w) for x, y, w in zip(self.x, self.y, self.warnings) if w)


@dataclass(frozen=True)
class Heatmap:
    """One panel of a heat-map grid: a label and rows of values in [0, 1]."""

    label: str
    values: tuple[tuple[float, ...], ...]


@dataclass(frozen=True)
class Stack:
    """One layer of a stacked bar chart: its label and its height on each bar (NaN: no bar)."""

    label: str
    values: tuple[float, ...]


@dataclass(frozen=True)
class BarPanel:
    """One panel of a stacked-bar grid: a title, the bars' category labels, the stacks
    (bottom first, every panel of a plot in the same order), the text written above each
    bar (the total a share is of) and in place of a bar that has no data (a status)."""

    label: str
    categories: tuple[str, ...]
    stacks: tuple[Stack, ...]
    above: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        n = len(self.categories)
        for name, values in (("above", self.above), ("missing", self.missing),
                             *((f"stack {s.label!r}", s.values) for s in self.stacks)):
            if values and len(values) != n:
                raise ValueError(f"bar panel {self.label!r}: {name} has {len(values)} values for {n} bars")


@dataclass(frozen=True)
class LegendEntry:
    """One legend line and what it stands for: a series (``series`` is its index), its
    failed points of one ``status``, the Pareto front, or the fitted-model line style."""

    label: str
    role: str  # "series" | "failed" | "front" | "fit" | "panel" | "warned" | "stack"
    series: int = -1
    status: str = ""


FIT_LEGEND = "dotted: fitted cost model (nlbench.fit)"
FRONT_LEGEND = "Pareto front"
WARNED_LEGEND = "ringed: latency not trustworthy"


def failure_legend(label: str, points: tuple[FailedPoint, ...]) -> str:
    """``nl: ✕ out of memory at 64×64`` for a series' failed points of one status."""
    status = points[0].status
    sizes = ", ".join(p.size for p in points[:3]) + (" …" if len(points) > 3 else "")
    return f"{label}: ✕ {STATUS_TEXT.get(status, status)} at {sizes}"


def failed_by_status(series: Series) -> dict[str, tuple[FailedPoint, ...]]:
    """A series' failed points grouped by status, in the order they first appear."""
    groups: dict[str, list[FailedPoint]] = {}
    for point in series.failed:
        groups.setdefault(point.status, []).append(point)
    return {status: tuple(points) for status, points in groups.items()}


@dataclass(frozen=True)
class PlotData:
    """Everything drawn in one plot (log-log unless ``logx``/``logy`` say otherwise):
    lines per block (``cost``), points with a front (``pareto``), a grid of heat
    maps (``heatmaps``) or a grid of stacked-bar panels (``stacked``). Pure data:
    :func:`nlbench.report.plots.render_png` draws it."""

    key: str
    title: str
    xlabel: str
    ylabel: str
    series: tuple[Series, ...] = ()
    note: str = ""
    logx: bool = True
    logy: bool = True
    kind: str = "cost"
    front: tuple[tuple[float, float], ...] = ()
    heatmaps: tuple[Heatmap, ...] = ()
    panels: tuple[BarPanel, ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in PLOT_KINDS:
            raise ValueError(f"plot {self.key!r}: kind must be one of {PLOT_KINDS}, got {self.kind!r}")

    @property
    def legend_entries(self) -> tuple[LegendEntry, ...]:
        """The legend, in drawing order: each block, then its failures; the front; the fit style."""
        if self.kind == "heatmaps":
            return tuple(LegendEntry(panel.label, "panel", number) for number, panel in enumerate(self.heatmaps))
        if self.kind == "stacked":  # one shared legend: every stack label, in stacking order
            labels = dict.fromkeys(stack.label for panel in self.panels for stack in panel.stacks)
            return tuple(LegendEntry(label, "stack") for label in labels)
        entries = []
        for number, series in enumerate(self.series):
            if series.x:
                label = series.label + (f"  (fit: {series.fit_terms})" if series.fit_terms else "")
                entries.append(LegendEntry(label, "series", number))
            for status, points in failed_by_status(series).items():
                entries.append(LegendEntry(failure_legend(series.label, points), "failed", number, status))
        if self.front:
            entries.append(LegendEntry(FRONT_LEGEND, "front"))
        warned = sorted({word for s in self.series for _, _, w in s.warned_points for word in w.split(", ")})
        if warned:
            entries.append(LegendEntry(f"{WARNED_LEGEND} ({', '.join(warned)})", "warned"))
        if self.kind == "cost" and any(s.fit_x for s in self.series):
            entries.append(LegendEntry(FIT_LEGEND, "fit"))
        return tuple(entries)

    @property
    def legend(self) -> tuple[str, ...]:
        """The legend's text (failures included, e.g. "nl: ✕ out of memory at 64×64")."""
        return tuple(entry.label for entry in self.legend_entries)


@dataclass(frozen=True)
class Plot:
    """A drawn plot: its data, the PNG bytes and the legend entries drawn."""

    data: PlotData
    png: bytes
    legend: tuple[str, ...]

    @property
    def key(self) -> str:
        return self.data.key

    @property
    def title(self) -> str:
        return self.data.title


# ----------------------------------------------------------------------------------
# Sections and the report
# ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Section:
    """One titled part of the report: an intro, bullet notes, tables and plot data."""

    key: str
    title: str
    intro: str = ""
    notes: tuple[str, ...] = ()
    tables: tuple[Table, ...] = ()
    plots: tuple[PlotData, ...] = ()


@dataclass(frozen=True)
class Report:
    """A whole report, built only from stored results (see :func:`build_report`)."""

    report_id: str
    title: str
    run_ids: tuple[str, ...]
    summary: tuple[str, ...]
    sections: tuple[Section, ...] = field(default_factory=tuple)

    def section(self, key: str) -> Section:
        """A section by key (``summary``, ``environment``, ``verdicts`` …)."""
        for section in self.sections:
            if section.key == key:
                return section
        raise KeyError(f"report has no section {key!r}; it has {[s.key for s in self.sections]}")

    def has_section(self, key: str) -> bool:
        return any(section.key == key for section in self.sections)

    @property
    def plots(self) -> tuple[PlotData, ...]:
        """Every plot of every section, in order."""
        return tuple(plot for section in self.sections for plot in section.plots)
