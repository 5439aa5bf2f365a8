"""The "Where the cost goes" section: FLOPs and MACs by operator class and by module,
from the attribution every schema-2 case carries (synthetic runs with exactly known
costs, see synthetic_runs.attribution_modules)."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import pytest

from nlbench import store
from nlbench.report import Report, build_report, render_html, render_markdown
from nlbench.report.render import PNG_SIGNATURE, render_plots
from nlbench.report.tables import attributed_cases, module_costs, share_column
from nlbench.vocabulary import MAC_OP_CLASSES, OP_CLASSES, ROOT_MODULE_TEXT
from synthetic_runs import SIZES, case_record, standard_records, with_attribution

KEY = "cost-attribution"
CLASS_TABLE = "Share of FLOPs and MACs by operator class"


def nl_costs(channels: int, positions: int) -> dict[str, float]:
    """nl's attributed cost (synthetic_runs.attribution_modules): matmul C·N², two convs C²·N, softmax 3·N²."""
    c, n = channels, positions
    return {"matmul_macs": c * n * n, "conv_macs": 2 * c * c * n, "softmax_flops": 3 * n * n,
            "flops": 2 * (c * n * n + 2 * c * c * n) + 3 * n * n}


@pytest.fixture(scope="module")
def attributed_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """identity, nl and cheap over SIZES at C=16, attributed; nl runs out of memory at 64×64."""
    from synthetic_runs import write_run

    records = [with_attribution(r) for r in standard_records()]
    return write_run(tmp_path_factory.mktemp("results"), "attributed-run", records)


@pytest.fixture(scope="module")
def attributed_report(attributed_run: Path) -> Report:
    return build_report([attributed_run])


def class_table(report: Report):
    return next(t for t in report.section(KEY).tables if t.title.startswith(CLASS_TABLE))


def module_table(report: Report, block: str):
    return next(t for t in report.section(KEY).tables if t.title.startswith(f"{block}: modules by FLOPs"))


def share_sums(table, quantity: str) -> list[float]:
    """Per row, the sum of the table's ``<quantity>: <class>`` share columns (as stored numbers)."""
    columns = [c for c in table.columns if c.startswith(f"{quantity}: ")]
    return [sum(float(row[table.columns.index(c)]) for c in columns) for row in table.cells]


def test_section_sits_after_cost_vs_resolution(attributed_report: Report) -> None:
    keys = [s.key for s in attributed_report.sections]
    assert keys.index(KEY) == keys.index("cost-vs-resolution") + 1
    section = attributed_report.section(KEY)
    assert section.title == "Where the cost goes"
    assert "macs counts multiply-accumulates only" in section.intro  # vocabulary.MACS_CONVENTION
    assert "100 %" in section.intro and ROOT_MODULE_TEXT in section.intro


def test_class_shares_add_to_100_percent_and_match_the_counts(attributed_report: Report) -> None:
    table = class_table(attributed_report)
    assert share_sums(table, "FLOPs") == pytest.approx([1.0, 1.0])
    assert share_sums(table, "MACs") == pytest.approx([1.0, 1.0])
    rows = {row[0]: row for row in table.rows}
    assert set(rows) == {"nl", "cheap"}  # identity did no arithmetic: nothing to split
    assert rows["nl"][table.columns.index("largest N")] == "32×32 (N=1024)"  # 64×64 ran out of memory
    assert rows["cheap"][table.columns.index("largest N")] == "64×64 (N=4096)"
    # Only the classes some block used, in OP_CLASSES order.
    assert [c for c in table.columns if c.startswith("FLOPs: ")] == ["FLOPs: conv", "FLOPs: matmul",
                                                                    "FLOPs: softmax", "FLOPs: elementwise"]
    nl = dict(zip(table.columns, next(row for row in table.cells if row[0] == "nl")))
    cost = nl_costs(16, 32 * 32)
    assert nl["FLOPs: matmul"] == pytest.approx(2 * cost["matmul_macs"] / cost["flops"])
    assert nl["FLOPs: softmax"] == pytest.approx(cost["softmax_flops"] / cost["flops"])
    assert nl["MACs: matmul"] == pytest.approx(cost["matmul_macs"] / (cost["matmul_macs"] + cost["conv_macs"]))


def test_module_table_lists_the_costliest_module_first(attributed_report: Report) -> None:
    nl = module_table(attributed_report, "nl")
    assert nl.title == "nl: modules by FLOPs at 32×32 (N=1024)"
    assert nl.column("module") == (ROOT_MODULE_TEXT, "theta", "g")  # the affinity matmul runs in nl's own forward
    cost = nl_costs(16, 32 * 32)
    assert nl.values("share of FLOPs")[0] == pytest.approx((2 * cost["matmul_macs"] + cost["softmax_flops"])
                                                           / cost["flops"])
    assert sum(nl.values("share of FLOPs")) == pytest.approx(1.0)
    assert nl.column("most of its FLOPs")[0].startswith("matmul (")
    cheap = module_table(attributed_report, "cheap")
    assert cheap.column("module")[0] == "proj" and cheap.column("type")[0] == "Conv2d"
    assert cheap.values("share of MACs")[0] == pytest.approx(1.0)


def test_hand_built_record_top_module_and_the_rest_summed(make_run) -> None:
    def module(name: str, flops: int, macs: int = 0, op_class: str = "conv") -> dict:
        return {"module": name, "type": "T", "calls": 1, "macs": macs, "flops": flops,
                "by_class": {op_class: {"macs": macs, "flops": flops}}}

    modules = [module("", 10, op_class="elementwise"), module("stem", 0), module("mix.b", 30, 15),
               module("attn.qk", 400, 200, "matmul"), module("a", 5), module("b", 4), module("c", 3), module("d", 2)]
    record = with_attribution(case_record("custom", 8, 8), modules)
    frame = module_costs(record["cost_by_module"])
    assert list(frame["module"][:3]) == ["attn.qk", "mix.b", ""]
    assert frame["flops_share"].sum() == pytest.approx(1.0)
    report = build_report([make_run("hand-built", [record])])
    table = module_table(report, "custom")
    assert table.column("module")[:3] == ("attn.qk", "mix.b", ROOT_MODULE_TEXT)
    assert table.values("share of FLOPs")[0] == pytest.approx(400 / 454)
    assert table.column("most of its FLOPs")[0] == "matmul (100 %)"
    # five listed, the two smallest with FLOPs summed; "stem" (no FLOPs, no MACs) is not listed
    assert table.column("module")[-1] == "(2 other modules)" and len(table.rows) == 6
    assert table.values("FLOPs")[-1] == 3 + 2
    assert sum(table.values("share of FLOPs")) == pytest.approx(1.0)


def test_figure_stacks_flops_shares_per_block_against_n(attributed_report: Report) -> None:
    (plot,) = attributed_report.section(KEY).plots
    assert plot.kind == "stacked" and not plot.logx and not plot.logy
    assert [p.label for p in plot.panels] == ["cheap", "nl"]
    assert "identity" in plot.note  # no FLOPs at any size: no panel
    nl = plot.panels[1]
    assert nl.categories == tuple(f"{s}×{s}\nN={s * s}" for s in SIZES)
    assert [s.label for s in nl.stacks] == [c for c in OP_CLASSES if c in ("conv", "matmul", "softmax", "elementwise")]
    assert plot.legend == ("conv", "matmul", "softmax", "elementwise")
    for bar in range(3):
        assert sum(s.values[bar] for s in nl.stacks) == pytest.approx(1.0)
    assert all(math.isnan(s.values[3]) for s in nl.stacks) and nl.missing[3] == "OOM" and nl.above[3] == ""
    assert nl.above[2] == f"{nl_costs(16, 1024)['flops'] / 1e6:.3g} M"
    (drawn,) = [p for p in render_plots(attributed_report) if p.key == plot.key]
    assert drawn.png.startswith(PNG_SIGNATURE) and drawn.legend == plot.legend


def test_attributed_cases_skip_failed_and_uncounted_cases(attributed_run: Path) -> None:
    frame = attributed_cases(store.load(attributed_run))
    assert (frame["status"] == "ok").all() and len(frame) == 11  # 12 cases, nl at 64×64 ran out of memory
    shares = frame[[share_column("flops", c) for c in OP_CLASSES]].sum(axis=1)
    assert shares[frame["block"] != "identity"].to_numpy() == pytest.approx(1.0)
    macs = frame[[share_column("macs", c) for c in MAC_OP_CLASSES]]
    assert macs[frame["block"] == "identity"].isna().all(axis=None)  # 0 MACs: no share, never a made-up one


def test_old_run_says_it_was_recorded_before_schema_2(make_run) -> None:
    run = make_run("old-run", standard_records())  # no cost_by_class
    store.write_manifest(run, {**store.read_manifest(run), "schema_version": 1})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", store.StoreWarning)  # its FLOPs/2 "macs" load as null
        report = build_report([run])
    section = report.section(KEY)
    assert not section.tables and not section.plots
    assert section.notes == ("old-run was recorded before store schema 2 (it has schema 1): its cases carry no "
                             "cost attribution. Re-run its suite to see where the cost goes.",)
    assert "recorded before store schema 2" in render_markdown(report)


def test_a_run_without_flops_says_so(make_run) -> None:
    records = [case_record("nl", 8, s, flops=None) for s in (8, 16)]
    section = build_report([make_run("no-flops", records)]).section(KEY)
    assert not section.tables and "did not count FLOPs" in section.notes[0]


def test_an_old_run_beside_a_new_one_is_named(make_run, attributed_run: Path) -> None:
    old = make_run("old", standard_records())
    store.write_manifest(old, {**store.read_manifest(old), "schema_version": 1})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", store.StoreWarning)
        report = build_report([old, attributed_run])
    section = report.section(KEY)
    assert any(note.startswith("old was recorded before store schema 2") for note in section.notes)
    table = class_table(report)
    assert table.columns[0] == "run" and set(table.column("run")) == {"attributed-run"}
    assert [p.label for p in section.plots[0].panels] == ["cheap [attributed-run]", "nl [attributed-run]"]


def test_block_and_module_names_are_escaped(make_run) -> None:
    block, module = "<b>blk</b>[red]", "<b>mod</b>[red](https://example.invalid/x.png)"
    modules = [{"module": module, "type": "<i>T</i>", "calls": 1, "macs": 10, "flops": 20,
                "by_class": {"conv": {"macs": 10, "flops": 20}}},
               {"module": "", "type": "Root", "calls": 1, "macs": 0, "flops": 4,
                "by_class": {"elementwise": {"macs": 0, "flops": 4}}}]
    records = [with_attribution(case_record(block, 8, s, case_id=f"evil-{s}"), modules) for s in (8, 16)]
    report = build_report([make_run("escape-attribution", records)])
    assert module_table(report, block).column("module") == (module, ROOT_MODULE_TEXT)  # stored as text
    html = render_html(report)
    assert "<b>" not in html and "<i>" not in html
    assert "&lt;b&gt;mod&lt;/b&gt;[red](https://example.invalid/x.png)" in html
    assert "&lt;b&gt;blk&lt;/b&gt;[red]: modules by FLOPs" in html
    markdown = render_markdown(report)
    assert "<b>" not in markdown and "<i>" not in markdown
    assert "](https://example.invalid" not in markdown  # not a link or image
    assert "&lt;b>mod&lt;/b>[red]\\(https://example.invalid/x.png)" in markdown
    assert "### &lt;b>blk&lt;/b>[red]: modules by FLOPs" in markdown
    assert all(p.png.startswith(PNG_SIGNATURE) for p in render_plots(report))  # drawn as text
