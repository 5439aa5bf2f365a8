"""The values a report is made of: tables of text cells, plot data with its rendered
PNG, sections, and the report itself. All frozen, so a built report can be rendered to
markdown and HTML (or inspected by tests) without being recomputed or mutated."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Table:
    """A table ready to render: column names (with units) and rows of text cells."""

    title: str
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    note: str = ""

    def __post_init__(self) -> None:
        for number, row in enumerate(self.rows):
            if len(row) != len(self.columns):
                raise ValueError(
                    f"table {self.title!r}: row {number} has {len(row)} cells, expected {len(self.columns)}"
                )

    def column(self, name: str) -> tuple[str, ...]:
        """The cells of one column (by name)."""
        if name not in self.columns:
            raise KeyError(f"table {self.title!r} has no column {name!r}; it has {list(self.columns)}")
        index = self.columns.index(name)
        return tuple(row[index] for row in self.rows)


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


@dataclass(frozen=True)
class PlotData:
    """Everything drawn in one plot (log-log unless ``logx``/``logy`` say otherwise)."""

    key: str
    title: str
    xlabel: str
    ylabel: str
    series: tuple[Series, ...]
    note: str = ""
    logx: bool = True
    logy: bool = True
    kind: str = "cost"  # "cost" (lines per block) or "pareto" (points with a front)
    front: tuple[tuple[float, float], ...] = ()


@dataclass(frozen=True)
class Plot:
    """A plot's data, its PNG bytes and the legend entries that were drawn."""

    data: PlotData
    png: bytes
    legend: tuple[str, ...]

    @property
    def key(self) -> str:
        return self.data.key

    @property
    def title(self) -> str:
        return self.data.title


@dataclass(frozen=True)
class Section:
    """One titled part of the report: an intro, bullet notes, tables and plots."""

    key: str
    title: str
    intro: str = ""
    notes: tuple[str, ...] = ()
    tables: tuple[Table, ...] = ()
    plots: tuple[Plot, ...] = ()


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
    def plots(self) -> tuple[Plot, ...]:
        """Every plot of every section, in order."""
        return tuple(plot for section in self.sections for plot in section.plots)
