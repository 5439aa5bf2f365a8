"""Render a :class:`~nlbench.report.model.Report` to GitHub-flavoured markdown and to
one self-contained HTML page, and write both for a set of run directories.

This is the step that draws: the report holds plot data, and :func:`render_plots` turns
it into PNGs (:func:`nlbench.report.plots.render_png`). Tables are typed: number columns
are right-aligned, text is escaped. The HTML page is made with jinja2 with autoescaping
on, so every string that comes from results (block names, options, host names, error
messages) is escaped; plots are embedded as base64 PNG ``data:`` URIs and the CSS is
inline: the page requests nothing.
"""

from __future__ import annotations

import base64
import os
import re
import struct
from pathlib import Path
from typing import Iterable, Sequence

from jinja2 import Environment, StrictUndefined
from markupsafe import Markup, escape

from nlbench.report.assemble import build_report
from nlbench.report.compare import VERDICT_FAILED, VERDICT_FASTER, VERDICT_SLOWER
from nlbench.report.model import Cell, Column, Plot, Report, Table
from nlbench.report.plots import render_png
from nlbench.vocabulary import FAILED_STATUSES, STATUS_CELL

FORMATS: tuple[str, ...] = ("md", "html")
MARKDOWN_FILE = "report.md"
HTML_FILE = "index.html"
PLOTS_DIR = "plots"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


# ----------------------------------------------------------------------------------
# Shared helpers
# ----------------------------------------------------------------------------------


def render_plots(report: Report) -> tuple[Plot, ...]:
    """Draw every plot of ``report``, in report order."""
    return tuple(render_png(data) for data in report.plots)


def plot_filenames(report: Report) -> tuple[str, ...]:
    """A unique, filesystem-safe PNG file name per plot (from its key), in report order."""
    names: list[str] = []
    used: set[str] = set()
    for plot in report.plots:
        stem = re.sub(r"[^A-Za-z0-9_.-]+", "-", plot.key).strip("-.") or "plot"
        candidate, number = stem, 2
        while candidate in used:
            candidate, number = f"{stem}-{number}", number + 1
        used.add(candidate)
        names.append(candidate + ".png")
    return tuple(names)


def png_size(data: bytes) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR chunk; raises ValueError if not a PNG."""
    if len(data) < 24 or not data.startswith(PNG_SIGNATURE) or data[12:16] != b"IHDR":
        raise ValueError("not a PNG image")
    width, height = struct.unpack(">II", data[16:24])
    return int(width), int(height)


def data_uri(plot: Plot) -> str:
    """The plot as a ``data:image/png;base64,…`` URI."""
    return "data:image/png;base64," + base64.b64encode(plot.png).decode("ascii")


# ----------------------------------------------------------------------------------
# Markdown
# ----------------------------------------------------------------------------------


def md_escape(text: object) -> str:
    """Text safe inside a markdown paragraph or table cell: no raw HTML, no cell breaks, no
    inline link or image (``[x](url)``, ``![x](url)``: the page would link or load it)."""
    value = str(text).replace("\r", " ").replace("\n", " ")
    value = value.replace("<", "&lt;")  # no raw HTML tag can start
    value = value.replace("](", "]\\(")  # "[text](url)" stays text
    return value.replace("|", "\\|")


def markdown_table(table: Table) -> str:
    """A GitHub-flavoured markdown table: number columns right-aligned, text escaped."""
    if not table.spec:
        return ""
    header = "| " + " | ".join(md_escape(c) for c in table.columns) + " |"
    aligns = ["---:" if column.numeric else "---" for column in table.spec]
    lines = [header, "| " + " | ".join(aligns) + " |"]
    lines += ["| " + " | ".join(md_escape(cell) if cell else " " for cell in row) + " |" for row in table.rows]
    return "\n".join(lines)


def render_markdown(report: Report, *, plot_dir: str = PLOTS_DIR) -> str:
    """The report as GitHub-flavoured markdown; plots are linked as ``plot_dir/<key>.png``
    (:func:`write_report` writes those files beside ``report.md``)."""
    files = dict(zip(map(id, report.plots), plot_filenames(report)))
    out = [f"# {md_escape(report.title)}", ""]
    out.append("Built only from stored results (`nlbench report`): "
               + ", ".join(f"`{md_escape(r)}`" for r in report.run_ids) + ".")
    out.append("Conventions: 1 MAC = 1 multiply-add = 2 FLOPs; k/M/G = 10³/10⁶/10⁹ unless a column says 2³⁰; "
               "latency is the median (and IQR) of raw samples.")
    out.append("")
    out.append("**Contents:** " + " · ".join(f"[{md_escape(s.title)}](#{_anchor(s.title)})" for s in report.sections))
    out.append("")
    for section in report.sections:
        out += [f"## {md_escape(section.title)}", ""]
        if section.intro:
            out += [md_escape(section.intro), ""]
        if section.notes:
            out += [f"- {md_escape(note)}" for note in section.notes] + [""]
        for plot in section.plots:
            out += [f"![{md_escape(plot.title)}]({plot_dir}/{files[id(plot)]})", ""]
            if plot.note:
                out += [f"*{md_escape(plot.note)}*", ""]
        for table in section.tables:
            out += [f"### {md_escape(table.title)}", "", markdown_table(table), ""]
            if table.note:
                out += [f"*{md_escape(table.note)}*", ""]
    return "\n".join(out).rstrip() + "\n"


def _anchor(title: str) -> str:
    """GitHub's heading anchor for ``title``."""
    text = re.sub(r"[^\w\- ]", "", title.lower())
    return text.replace(" ", "-")


# ----------------------------------------------------------------------------------
# HTML
# ----------------------------------------------------------------------------------

_CSS = """
:root { --fg: #1d232b; --muted: #5b6572; --line: #d9dee5; --band: #f5f7fa; --accent: #2457a6;
        --ok: #1e7a3c; --bad: #b3261e; --meh: #8a6d00; }
* { box-sizing: border-box; }
body { margin: 0; color: var(--fg); background: #fff;
       font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
header { padding: 28px 40px 16px; border-bottom: 1px solid var(--line); background: var(--band); }
header h1 { margin: 0 0 6px; font-size: 24px; }
header p { margin: 2px 0; color: var(--muted); font-size: 13px; }
nav { padding: 10px 40px; border-bottom: 1px solid var(--line); font-size: 13px; }
nav a { color: var(--accent); text-decoration: none; margin-right: 14px; white-space: nowrap; }
main { padding: 8px 40px 40px; max-width: 1500px; }
section { margin-top: 28px; }
h2 { font-size: 20px; border-bottom: 2px solid var(--line); padding-bottom: 4px; }
.intro { color: var(--muted); max-width: 1000px; }
ul.notes { padding-left: 20px; }
ul.notes li { margin: 4px 0; }
section#summary ul.notes li { font-size: 16px; margin: 8px 0; }
figure { margin: 18px 0; }
figure img { display: block; max-width: 100%; height: auto; border: 1px solid var(--line); }
figcaption { color: var(--muted); font-size: 13px; margin-top: 4px; }
.table-wrap { overflow-x: auto; margin: 10px 0 18px; }
table { border-collapse: collapse; font-size: 13px; }
caption { text-align: left; font-weight: 600; padding: 6px 0; }
th, td { border: 1px solid var(--line); padding: 4px 8px; vertical-align: top; }
th { background: var(--band); text-align: left; }
tbody tr:nth-child(even) td { background: #fafbfc; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.ok { color: var(--ok); font-weight: 600; }
td.bad, td.fail { color: var(--bad); font-weight: 600; }
td.meh { color: var(--meh); }
td.long { min-width: 320px; color: var(--muted); }
code { background: var(--band); padding: 0 3px; border-radius: 3px; }
footer { color: var(--muted); font-size: 12px; padding: 20px 40px; border-top: 1px solid var(--line); }
"""

_TEMPLATE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src data:; style-src 'unsafe-inline'">
<title>{{ report.title }}</title>
<style>{{ css }}</style>
</head>
<body>
<header>
<h1>{{ report.title }}</h1>
<p>Built only from stored results: {% for run in report.run_ids %}<code>{{ run }}</code>{% if not loop.last %}, {% endif %}{% endfor %}.</p>
<p>1 MAC = 1 multiply-add = 2 FLOPs; k/M/G = 10³/10⁶/10⁹ unless a column says 2³⁰; latency is the median (and IQR) of raw samples.</p>
</header>
<nav>{% for section in report.sections %}<a href="#{{ section.key }}">{{ section.title }}</a>{% endfor %}</nav>
<main>
{% for section in report.sections %}
<section id="{{ section.key }}">
<h2>{{ section.title }}</h2>
{% if section.intro %}<p class="intro">{{ section.intro | inline }}</p>{% endif %}
{% if section.notes %}<ul class="notes">{% for note in section.notes %}<li>{{ note | inline }}</li>{% endfor %}</ul>{% endif %}
{% for data in section.plots %}{% set plot = drawn[data_id(data)] %}{% set size = png_size(plot.png) %}
<figure>
<img class="plot" src="{{ data_uri(plot) }}" width="{{ size[0] }}" height="{{ size[1] }}" alt="{{ data.title }}">
<figcaption>{{ data.title }}{% if data.note %} — {{ data.note }}{% endif %}</figcaption>
</figure>
{% endfor %}
{% for table in section.tables %}
<div class="table-wrap"><table>
<caption>{{ table.title }}</caption>
<thead><tr>{% for column in table.columns %}<th>{{ column }}</th>{% endfor %}</tr></thead>
<tbody>
{% for row in table_cells(table) %}<tr>{% for text, css in row %}<td class="{{ css }}">{{ text }}</td>{% endfor %}</tr>
{% endfor %}</tbody>
</table></div>
{% if table.note %}<p class="intro">{{ table.note }}</p>{% endif %}
{% endfor %}
</section>
{% endfor %}
</main>
<footer>nlbench report {{ report.report_id }} — self-contained: no external resources.</footer>
</body>
</html>
"""

_VERDICT_CLASSES = {
    "holds": "ok", VERDICT_FASTER: "ok", "does not hold": "bad", VERDICT_SLOWER: "bad", "inconclusive": "meh",
    VERDICT_FAILED: "fail",
}
_FAILURE_CELLS = frozenset({*FAILED_STATUSES, *(STATUS_CELL[s] for s in FAILED_STATUSES)})


def _cell_class(column: Column, cell: Cell, text: str) -> str:
    """The CSS class of a cell: numbers right-aligned; a status where a number would be,
    a failed status and a negative verdict marked; long text muted."""
    if text in _FAILURE_CELLS or (column.numeric and isinstance(cell, str) and cell.startswith("identity ")):
        return "fail"
    if column.numeric:
        return "num"
    if text in _VERDICT_CLASSES:
        return _VERDICT_CLASSES[text]
    return "long" if len(text) > 80 else ""


def table_cells(table: Table) -> list[list[tuple[str, str]]]:
    """Each row's cells as (text, CSS class), for the HTML template."""
    return [[(text, _cell_class(column, cell, text)) for column, cell, text in zip(table.spec, cells, row)]
            for cells, row in zip(table.cells, table.rows)]


def _inline(text: object) -> Markup:
    """Escape ``text``, then turn the report's own ``**bold**`` and ```code``` into tags."""
    escaped = str(escape(str(text)))
    escaped = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", escaped)
    escaped = re.sub(r"`([^`]+)`", r"<code>\1</code>", escaped)
    return Markup(escaped)


def _environment() -> Environment:
    env = Environment(autoescape=True, undefined=StrictUndefined, trim_blocks=False, lstrip_blocks=False)
    env.filters["inline"] = _inline
    return env


def render_html(report: Report, plots: Sequence[Plot] | None = None) -> str:
    """The report as one self-contained HTML page (inline CSS, plots as data: URIs),
    rendered by jinja2 with autoescaping on. ``plots`` are the report's drawn plots
    (:func:`render_plots`), drawn here when not given."""
    drawn = tuple(plots) if plots is not None else render_plots(report)
    if len(drawn) != len(report.plots):
        raise ValueError(f"expected {len(report.plots)} drawn plots for this report, got {len(drawn)}")
    by_data = {id(data): plot for data, plot in zip(report.plots, drawn)}
    template = _environment().from_string(_TEMPLATE)
    return template.render(report=report, css=Markup(_CSS), data_uri=data_uri, png_size=png_size,
                           table_cells=table_cells, drawn=by_data, data_id=id)


# ----------------------------------------------------------------------------------
# Files
# ----------------------------------------------------------------------------------


def _write_text(path: Path, text: str) -> None:
    """Write ``text`` atomically (temp file + rename)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_report(run_dirs: Sequence[Path | str] | Path | str, out_dir: Path | str,
                 formats: Iterable[str] = FORMATS) -> dict[str, Path]:
    """Build the report of ``run_dirs`` and write it under ``out_dir/<report-id>/``.

    ``md`` writes ``report.md`` and its plots as ``plots/*.png``; ``html`` writes the
    self-contained ``index.html``. The id is the run id, or ``<runA>-vs-<runB>`` for
    several runs. Returns the written paths by format (and ``dir``).
    """
    chosen = tuple(dict.fromkeys(formats))
    unknown = [f for f in chosen if f not in FORMATS]
    if unknown or not chosen:
        raise ValueError(f"formats must be a non-empty selection of {FORMATS}, got {list(formats)!r}")
    dirs = [run_dirs] if isinstance(run_dirs, (str, Path)) else list(run_dirs)
    report = build_report(dirs)
    drawn = render_plots(report)
    target = Path(out_dir) / report.report_id
    target.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {"dir": target}
    if "md" in chosen:
        plots_dir = target / PLOTS_DIR
        plots_dir.mkdir(exist_ok=True)
        files = plot_filenames(report)
        for name, plot in zip(files, drawn):
            (plots_dir / name).write_bytes(plot.png)
        for stale in plots_dir.glob("*.png"):
            if stale.name not in files:
                stale.unlink()
        path = target / MARKDOWN_FILE
        _write_text(path, render_markdown(report))
        written["md"] = path
    if "html" in chosen:
        path = target / HTML_FILE
        _write_text(path, render_html(report, drawn))
        written["html"] = path
    return written
