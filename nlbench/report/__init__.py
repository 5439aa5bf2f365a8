"""Reports from stored results: markdown and one self-contained HTML page.

    from nlbench.report import write_report
    write_report([Path("results/resolution-…")], Path("reports"))
    # -> reports/<run-id>/report.md (+ plots/*.png) and reports/<run-id>/index.html

Along its seams: :mod:`~nlbench.report.tables` (frame → DataFrame views),
:mod:`~nlbench.report.sections` (→ typed tables and plot data),
:mod:`~nlbench.report.prose` (summary sentences), :mod:`~nlbench.report.assemble`
(run directories → a frozen :class:`Report`), :mod:`~nlbench.report.render` (markdown,
HTML; draws the plots with :mod:`~nlbench.report.plots`). Metrics, statuses and labels
are :mod:`nlbench.vocabulary`'s. Everything here reads only the store (results,
manifest, suite.toml) and never imports torch, so a report can be re-rendered on any
machine.
"""

from nlbench.paper import paper_comparison
from nlbench.report.assemble import assemble_report, build_report, report_id
from nlbench.report.compare import compare_runs
from nlbench.report.model import (
    BarPanel, Column, FailedPoint, Heatmap, Interval, Plot, PlotData, Report, Section, Series, Stack, Table,
)
from nlbench.report.plots import render_png
from nlbench.report.prose import summary_findings
from nlbench.report.render import render_html, render_markdown, render_plots, write_report
from nlbench.report.tables import (
    attributed_cases, counter_comparison, delta_vs_identity, latency_noise, module_costs, probe_summary,
)
from nlbench.suite import read_paper_table

__all__ = [
    "BarPanel", "Column", "FailedPoint", "Heatmap", "Interval", "Plot", "PlotData", "Report", "Section", "Series",
    "Stack", "Table", "assemble_report", "attributed_cases", "build_report", "compare_runs", "counter_comparison",
    "delta_vs_identity", "latency_noise", "module_costs", "paper_comparison", "probe_summary", "read_paper_table",
    "render_html", "render_markdown", "render_plots", "render_png", "report_id", "summary_findings", "write_report",
]
