"""Fault injection on suites, blocks and the sweep, through the CLI as a user runs it:
hostile text, non-finite numbers, files that are not what they seem, option values of
the wrong type, workers that die or hang, two writers, odd but valid input. Each
asserts the message, the exit code and that nothing finished is lost or duplicated."""

from __future__ import annotations

import json
import textwrap
import time
import warnings
from pathlib import Path

import pytest

from nlbench import store
from nlbench.blocks import load_plugin
from nlbench.cli import main
from nlbench.suite import SuiteError, load_suite, parse_suite
from nlbench.sweep import run_sweep, start_run

PLUGIN = textwrap.dedent(
    """
    import os, signal, sys, time
    import torch
    from torch import nn
    from nlbench.blocks import ClaimedComplexity, register_block

    CLAIM = ClaimedComplexity("O(C·HW)", n_exponent=1.0, c_exponent=1.0)

    class _Base(nn.Module):
        def __init__(self, channels):
            super().__init__()
            self.conv = nn.Conv2d(channels, channels, 1)

    @register_block("fault_segfault", family="test", paper="tests", claimed=CLAIM)
    class Segfault(_Base):
        def forward(self, x):
            os.kill(os.getpid(), signal.SIGSEGV)

    @register_block("fault_exit0", family="test", paper="tests", claimed=CLAIM)
    class ExitZero(_Base):
        def forward(self, x):
            sys.exit(0)

    @register_block("fault_hang", family="test", paper="tests", claimed=CLAIM)
    class Hang(_Base):
        def forward(self, x):
            time.sleep(3600)

    @register_block("fault_sleepy", family="test", paper="tests", claimed=CLAIM)
    class Sleepy(_Base):
        def forward(self, x):
            time.sleep(0.002)  # off the CPU for most of every call: reads as a starved sample
            return x + 0 * self.conv(x)

    @register_block("fault_not_a_tensor", family="test", paper="tests", claimed=CLAIM)
    class NotATensor(_Base):
        def forward(self, x):
            return {"y": x}

    @register_block("fault[/]markup[red]", family="test $x^2$", paper="[bold]tests", claimed=CLAIM)
    class Markup(_Base):
        def forward(self, x):
            return x + 0 * self.conv(x)
    """
)


@pytest.fixture()
def plugin(install_plugin) -> str:
    """The fault blocks' module, on the path but not imported: the CLI loads it."""
    return install_plugin("nlbench_fault_blocks", PLUGIN, load=False)


def write_suite(directory: Path, text: str, name: str = "suite.toml") -> Path:
    path = directory / name
    path.write_text(textwrap.dedent(text))
    return path


def only_run(out: Path) -> Path:
    runs = [p for p in out.iterdir() if p.is_dir()]
    assert len(runs) == 1, runs
    return runs[0]


def records(run_dir: Path) -> list[dict]:
    with warnings.catch_warnings():
        warnings.simplefilter("error", store.StoreWarning)  # no duplicate, no damaged line
        return store.read_records(run_dir)


def test_dying_and_hanging_workers_are_recorded_as_what_happened(plugin: str, tmp_path: Path, capsys) -> None:
    suite = write_suite(tmp_path, """
        name = "faults"
        blocks = ["fault_segfault", "fault_exit0", "fault_hang", "fault_not_a_tensor", "identity"]
        channels = [4]
        resolutions = [4]
        measure = ["params", "flops", "latency_fwd"]
        [latency]
        warmup = 0
        min_run_time_s = 0.0
        min_samples = 2
        [limits]
        case_timeout_s = 2
    """)
    out = tmp_path / "out"
    started = time.perf_counter()
    assert main(["run", "--suite", str(suite), "--out", str(out), "--plugin", plugin]) == 0
    elapsed = time.perf_counter() - started
    by_block = {r["block"]: r for r in records(only_run(out))}
    assert by_block["fault_segfault"]["status"] == "error"
    assert "signal SIGSEGV (11)" in by_block["fault_segfault"]["error"]
    assert by_block["fault_exit0"]["status"] == "error"
    assert "exit code 0" in by_block["fault_exit0"]["error"]
    assert by_block["fault_hang"]["status"] == "timeout"
    assert "time limit of 2 s" in by_block["fault_hang"]["error"]
    assert 1.5 < by_block["fault_hang"]["duration_s"] < 6, "the limit a user sets is the limit applied"
    assert by_block["fault_not_a_tensor"]["status"] == "error"
    assert "forward returned dict" in by_block["fault_not_a_tensor"]["error"]
    assert by_block["identity"]["status"] == "ok"
    assert elapsed < 60, f"a 2 s limit must not cost a minute per case ({elapsed:.0f} s)"
    assert "Traceback" not in capsys.readouterr().out


def test_markup_and_mathtext_in_user_text_print_as_text(plugin: str, tmp_path: Path, capsys) -> None:
    assert main(["list", "--plugin", plugin, "fault*"]) == 0
    assert "fault[/]markup[red]" in capsys.readouterr().out
    suite = write_suite(tmp_path, """
        name = "[red]x[/]"
        blocks = ["fault[/]markup[red]"]
        channels = [4]
        resolutions = [4]
        measure = ["params"]
    """)
    out = tmp_path / "out"
    assert main(["run", "--suite", str(suite), "--out", str(out), "--plugin", plugin, "--report"]) == 0
    printed = capsys.readouterr().out
    run_dir = only_run(out)
    assert str(run_dir) in printed, "the printed run path is the one that exists"
    assert "[red]x[/]" in printed
    assert records(run_dir)[0]["status"] == "ok"


@pytest.mark.parametrize("table, value, field", [
    ("limits", "case_timeout_s = nan", "limits.case_timeout_s"),
    ("limits", "case_timeout_s = inf", "limits.case_timeout_s"),
    ("limits", "max_memory_gib = inf", "limits.max_memory_gib"),
    ("limits", "max_memory_gib = nan", "limits.max_memory_gib"),
    ("latency", "min_run_time_s = inf", "latency.min_run_time_s"),
    ("latency", "min_run_time_s = -1.0", "latency.min_run_time_s"),
    ("latency", "warmup = 1.5", "latency.warmup"),
    ("latency", "threads = true", "latency.threads"),
])
def test_non_finite_and_out_of_range_settings_are_rejected(tmp_path: Path, capsys, table, value, field) -> None:
    suite = write_suite(tmp_path, f"""
        name = "x"
        blocks = ["identity"]
        channels = [4]
        resolutions = [4]
        [{table}]
        {value}
    """)
    assert main(["run", "--suite", str(suite), "--out", str(tmp_path / "out")]) == 2
    printed = capsys.readouterr().out
    assert f"field '{field}'" in printed and str(suite) in printed
    assert not (tmp_path / "out").exists(), "nothing runs before the suite is valid"


@pytest.mark.parametrize("option, message", [
    ("spectral_relu = \"yes\"", "option 'spectral_relu' expects a boolean, got 'yes'"),
    ("spectral_relu = 1979-05-27", "expects a boolean, got datetime.date"),
    ("groups = 2.5", "option 'groups' expects an integer, got 2.5"),
    ("groups = true", "option 'groups' expects an integer, got True"),
    ("frames = 1979-05-27T07:32:00", "option 'frames' expects an integer or None"),
])
def test_option_values_of_the_wrong_type_are_rejected_before_running(tmp_path: Path, option, message) -> None:
    with pytest.raises(SuiteError, match="options.srl_fft") as caught:
        parse_suite({"name": "x", "blocks": ["srl_fft"], "channels": [4], "resolutions": [4],
                     "options": {"srl_fft": __import__("tomllib").loads(option)}})
    assert message in str(caught.value)


def test_files_that_are_not_what_they_seem(tmp_path: Path, capsys) -> None:
    valid = 'name = "x"\nblocks = ["identity"]\nchannels = [4]\nresolutions = [4]\n'
    (tmp_path / "dir.toml").mkdir()
    (tmp_path / "plain_dir").mkdir()
    (tmp_path / "utf16.toml").write_bytes(valid.encode("utf-16"))
    (tmp_path / "latin1.toml").write_bytes(valid.replace('"x"', '"caf\xe9"').encode("latin-1"))
    regular = tmp_path / "regular_file"
    regular.write_text("not a directory")
    cases = [
        (["run", "--suite", str(tmp_path / "dir.toml")], "not a directory"),
        (["run", "--suite", str(tmp_path / "plain_dir")], "not a directory"),
        (["run", "--suite", str(tmp_path / "utf16.toml")], "UTF-16"),
        (["run", "--suite", str(tmp_path / "latin1.toml")], "UTF-8 text (invalid byte at offset"),
        (["run", "--suite", str(tmp_path / "missing.toml")], "an existing TOML file"),
        (["run", "--suite", "smoke", "--out", str(regular)], "the results root is a file"),
        (["report", str(regular)], "is a file, not a run directory"),
        (["run", "--resume", str(regular)], "is a file, not a run directory"),
    ]
    for argv, message in cases:
        assert main(argv) == 2, argv
        printed = capsys.readouterr().out
        assert message in printed and "Traceback" not in printed, (argv, printed)


def test_odd_but_valid_input(tmp_path: Path, capsys) -> None:
    suite = load_suite(str(write_suite(tmp_path, """
        name = "dup"
        blocks = ["identity", "identity"]
        channels = [8, 8]
        resolutions = [4, 4, [4, 4]]
        measure = ["params"]
    """)))
    assert len(suite.cases()) == 1, "a size listed twice is one case"
    assert main(["run", "--suite", "smoke", "--blocks", ",", "--out", str(tmp_path / "out")]) == 2
    assert "at least one block name" in capsys.readouterr().out
    assert not (tmp_path / "out").exists(), "no empty run is created"


def test_resume_takes_nothing_but_the_run_and_two_writers_are_refused(tmp_path: Path, capsys) -> None:
    suite = write_suite(tmp_path, """
        name = "small"
        blocks = ["identity", "nl"]
        channels = [4]
        resolutions = [4, 6]
        measure = ["params"]
    """)
    out = tmp_path / "out"
    assert main(["run", "--suite", str(suite), "--out", str(out), "--in-process"]) == 0
    run_dir = only_run(out)
    capsys.readouterr()
    assert main(["run", "--resume", str(run_dir), "--suite", "smoke"]) == 2
    assert "field '--suite'" in capsys.readouterr().out
    assert main(["run", "--resume", str(run_dir), "--blocks", "nl"]) == 2
    assert "field '--blocks'" in capsys.readouterr().out
    finished = [json.loads(line) for line in (run_dir / store.RESULTS_FILE).read_text().splitlines()]
    (run_dir / store.RESULTS_FILE).write_text("\n".join(json.dumps(r) for r in finished[:2]) + "\n")
    with store.writer_lock(run_dir):
        assert main(["run", "--resume", str(run_dir), "--in-process"]) == 2
        assert "another nlbench is writing this run" in capsys.readouterr().out
    assert main(["run", "--resume", str(run_dir), "--in-process"]) == 0
    assert sorted(r["case_id"] for r in records(run_dir)) == sorted(r["case_id"] for r in finished)


def test_the_closing_table_fits_80_columns_without_cutting_a_digit(monkeypatch: pytest.MonkeyPatch) -> None:
    from rich.console import Console

    from nlbench import cli
    from nlbench.report.model import Table, number_column, text_column

    sizes = ["8×8", "16×16", "24×24", "32×32", "48×48", "64×64", "96×96", "128×128", "192×192", "256×256"]
    values = [0.00215, 0.121, 0.301, 3.01, 16.0, 71.2, 286.0, 1321.0, 5432.0, 0.000123]
    table = Table("forward latency, median ms", (text_column("block"), *map(number_column, sizes)),
                  (("identity", *map(cli_number, values)), ("srl_fft", *map(cli_number, values))))
    narrow = Console(width=80, record=True)
    monkeypatch.setattr(cli, "console", narrow)
    parts = cli.fitting_tables(table, 80)
    assert len(parts) > 1 and all(part.spec[0].header == "block" for part in parts)
    for part in parts:
        narrow.print(cli.dataframe_table(part))
    text = narrow.export_text()
    assert "…" not in text
    for cell in ("identity", "srl_fft", "0.00215", "1,321", "0.000123", "256×256"):
        assert cell in text
    assert max(len(line) for line in text.splitlines()) <= 80


def cli_number(value: float) -> str:
    from nlbench.report.formatting import num

    return num(value)


def test_a_contended_latency_is_measured_again_later_and_keeps_its_warning(plugin: str, tmp_path: Path) -> None:
    suite = write_suite(tmp_path, """
        name = "retries"
        blocks = ["fault_sleepy", "identity"]
        channels = [4]
        resolutions = [4]
        measure = ["latency_fwd"]
        [latency]
        warmup = 1
        max_warmup_s = 0.0
        min_run_time_s = 0.0
        min_samples = 12
        max_samples = 12
        retries = 2
    """)
    load_plugin(plugin)
    loaded = load_suite(str(suite))
    run_dir = start_run(loaded, tmp_path / "out", only_blocks=None, device=None, plugins=[plugin])
    order = []
    run_sweep(loaded, run_dir, plugins=[plugin], progress=lambda case, record, i, n: order.append(case.block))
    by_block = {r["block"]: r for r in records(run_dir)}
    sleepy = by_block["fault_sleepy"]
    assert "contended" in sleepy["latency_fwd_warnings"] and sleepy["latency_attempts"] == 3
    assert order == ["identity", "fault_sleepy"], "the retries ran after the other cases"
    assert "latency_attempts" not in by_block["identity"]


def test_probe_and_paper_summaries_print_user_text_as_text(tmp_path: Path, capsys) -> None:
    from nlbench import cli
    from nlbench.suite import PaperRow, PaperTable

    run_dir = tmp_path / "probe-run"
    store.write_manifest(run_dir, {"suite": "probe"})
    store.append_record(run_dir, {"kind": "probe", "case_id": "a", "status": "error", "block": "[/]b",
                                  "task": "t[red]", "seed": 0, "error": "[bold]boom[/x]"})
    cli.print_probe_summary(run_dir)
    printed = capsys.readouterr().out
    assert "[/]b" in printed and "t[red]" in printed and "[bold]boom[/x]" in printed
    table = PaperTable("Table [/]9", 2.0**30, {"in[/]": ((8, 8),)}, (PaperRow("in[/]", "[red]nl", 1.0, 1.0),))
    cli.print_paper_comparison(store.load(run_dir), table)
    printed = capsys.readouterr().out
    assert "Table [/]9" in printed and "in[/]" in printed and "[red]nl" in printed
