"""Build a :class:`~nlbench.report.model.Report` from stored run directories only.

:func:`build_report` reads the store (``results.jsonl``, ``manifest.json``,
``suite.toml``); :func:`assemble_report` is pure: it fits the loaded frame with
:mod:`nlbench.fit` and puts the sections together (typed tables, prose, plot data).
Nothing here draws or writes: :mod:`nlbench.report.render` does. Torch is never
imported, so a report can be rebuilt on any machine that holds the results.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from nlbench import store
from nlbench.counter_gaps import counter_class_gaps
from nlbench.fit import crossovers, fit_run
from nlbench.report import sections
from nlbench.report.exact_forms import exact_forms_section
from nlbench.report.model import Report
from nlbench.report.prose import summary_findings
from nlbench.report.tables import counter_comparison
from nlbench.suite import read_paper_table
from nlbench.vocabulary import AXES, METRICS


def run_ids(run_dirs: Sequence[Path | str]) -> tuple[str, ...]:
    """The run ids (directory names) of ``run_dirs``, as :func:`nlbench.store.load` names them."""
    return tuple(Path(d).name for d in run_dirs)


def report_id(run_dirs: Sequence[Path | str]) -> str:
    """``<run>`` for one run, ``<runA>-vs-<runB>`` (…) for several."""
    ids = run_ids(run_dirs)
    if not ids:
        raise ValueError("report_id needs at least one run directory")
    return "-vs-".join(ids)


def _check_run_dirs(run_dirs: Iterable[Path | str] | Path | str) -> list[Path]:
    if isinstance(run_dirs, (str, Path)):
        run_dirs = [run_dirs]
    dirs = [Path(d) for d in run_dirs]
    if not dirs:
        raise ValueError("build_report needs at least one run directory")
    names = [d.name for d in dirs]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"run directories must have distinct names (the run id); repeated: {duplicates}")
    return dirs


def build_report(run_dirs: Sequence[Path | str] | Path | str) -> Report:
    """Read one or more run directories and build the report (tables, prose, plot data).

    With several runs the first is the baseline and each later one a candidate in
    the run-comparison section; plots and tables label series by run.
    """
    dirs = _check_run_dirs(run_dirs)
    manifests = {d.name: store.read_manifest(d) for d in dirs}  # the store refuses what is not a run
    frame = store.load(dirs)
    paper_tables = {d.name: read_paper_table(d) for d in dirs}
    return assemble_report(frame, manifests, paper_tables, run_order=[d.name for d in dirs])


# ----------------------------------------------------------------------------------
# Fits per run
# ----------------------------------------------------------------------------------


def _per_run(sweep: pd.DataFrame, order: Sequence[str], compute: Callable[[pd.DataFrame], pd.DataFrame]) -> pd.DataFrame:
    parts = []
    for run in order:
        rows = sweep.loc[sweep["run"] == run]
        if rows.empty:
            continue
        result = compute(rows)
        if len(result):
            parts.append(result.assign(run=run))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def _run_crossovers(rows: pd.DataFrame) -> pd.DataFrame:
    parts = [crossovers(rows, m.name, axis) for m in METRICS if rows[m.column].notna().any() for axis in AXES]
    parts = [part for part in parts if len(part)]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def fits_and_crossovers(sweep: pd.DataFrame, order: Sequence[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """:func:`nlbench.fit.fit_run` and every metric's crossovers along N and C, per run."""
    if sweep.empty:
        return pd.DataFrame(), pd.DataFrame()
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        return _per_run(sweep, order, fit_run), _per_run(sweep, order, _run_crossovers)


# ----------------------------------------------------------------------------------
# The report
# ----------------------------------------------------------------------------------


def assemble_report(
    df: pd.DataFrame,
    manifests: Mapping[str, Mapping[str, Any]],
    paper_tables: Mapping[str, Any] | None = None,
    *,
    run_order: Sequence[str] | None = None,
) -> Report:
    """The report of a results frame (``run`` naming each run; a frame built by hand is
    normalised first), its runs' manifests and paper tables. Pure: no file is read or
    written, nothing is drawn."""
    order = list(run_order or manifests.keys())
    if not order:
        raise ValueError("assemble_report needs at least one run")
    frame = store.normalise(df)
    if len(order) == 1:
        frame["run"] = frame["run"].fillna(order[0])
    paper_tables = paper_tables or {}
    several = len(order) > 1
    sweep = store.sweep_records(frame)
    probes = store.probe_records(frame)
    fields = store.receptive_field_records(frame)
    fits, crossings = fits_and_crossovers(sweep, order)
    counters = counter_comparison(sweep)
    parts = [
        sections.environment_section(sweep, probes, manifests, order),
        sections.cost_section(sweep, "N", several),
        sections.attribution_section(sweep, manifests, order, several),
        sections.cost_section(sweep, "C", several),
        sections.verdict_section(fits, several),
        *([exact] if (exact := exact_forms_section(sweep, fits)) is not None else []),
        sections.crossover_section(crossings, several),
        sections.delta_section(sweep, several),
        sections.failure_section(sweep, several),
        sections.counter_section(counters, several, gaps=counter_class_gaps(sweep)),
    ]
    for run in order:
        table = paper_tables.get(run)
        if table is not None:
            parts.append(sections.paper_section(sweep.loc[sweep["run"] == run], table, run, several))
    if not probes.empty:
        parts.append(sections.probe_section(probes, several, store.lr_trial_records(frame)))
    if not fields.empty:
        parts.append(sections.receptive_field_section(fields))
    parts.append(sections.noise_section(sweep))
    parts.append(sections.quality_section(sweep, manifests, order, several))
    if several:
        parts.append(sections.comparison_section(sweep, order))
    findings = summary_findings(sweep, fits, counters)
    suites = sorted({str(m.get("suite", "?")) for m in manifests.values()})
    title = f"nlbench report: {' vs '.join(order)}"
    if suites:
        title += f" (suite{'s' if len(suites) > 1 else ''} {', '.join(suites)})"
    return Report("-vs-".join(order), title, tuple(order), tuple(findings),
                  (sections.summary_section(findings), *parts))
