"""Reports from stored results: markdown and one self-contained HTML page.

    from nlbench.report import write_report
    write_report([Path("results/resolution-…")], Path("reports"))
    # -> reports/<run-id>/report.md (+ plots/*.png) and reports/<run-id>/index.html

Everything here reads only the store (results, manifest, suite.toml) and never
imports torch, so a report can be re-rendered on any machine.
"""

from nlbench.report.build import assemble_report, build_report, report_id, summary_findings
from nlbench.report.compare import compare_runs
from nlbench.report.model import FailedPoint, Plot, PlotData, Report, Section, Series, Table
from nlbench.report.render import render_html, render_markdown, write_report
from nlbench.paper import paper_comparison
from nlbench.suite import read_paper_table
from nlbench.report.tables import (
    counter_comparison, delta_vs_identity, latency_noise, probe_summary,
)

__all__ = [
    "FailedPoint", "Plot", "PlotData", "Report", "Section", "Series", "Table", "assemble_report", "build_report",
    "compare_runs", "counter_comparison", "delta_vs_identity", "latency_noise", "paper_comparison", "probe_summary",
    "read_paper_table", "render_html", "render_markdown", "report_id", "summary_findings", "write_report",
]
