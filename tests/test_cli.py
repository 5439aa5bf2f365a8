"""The command line: list, run, errors with suggestions, plugins."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from rich.console import Console

from nlbench import cli
from nlbench.cli import main

@pytest.fixture(autouse=True)
def wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    """A wide console so table cells are not folded across lines."""
    monkeypatch.setattr(cli, "console", Console(width=240))


BUILTIN = ["a2", "cgnl", "identity", "local", "nl", "ns", "rcca", "snl", "srl_fft", "srl_lo"]


def test_list_shows_all_ten_blocks(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for name in BUILTIN:
        assert f"│ {name} " in out
    assert "O(C·H²W²)" in out and "10 blocks" in out


def test_list_with_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "nlbench_cli_plugin.py").write_text(textwrap.dedent("""
        from torch import nn
        from nlbench.blocks import ClaimedComplexity, register_block

        @register_block("cli_user_block", family="user", paper="me",
                        claimed=ClaimedComplexity("O(C·HW)", n_exponent=1.0, c_exponent=1.0))
        class Mine(nn.Identity):
            def __init__(self, channels):
                super().__init__()
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    from nlbench.blocks import unregister_block

    try:
        assert main(["list", "--plugin", "nlbench_cli_plugin"]) == 0
        out = capsys.readouterr().out
        assert "cli_user_block" in out and "nlbench_cli_plugin" in out and "11 blocks" in out
    finally:
        unregister_block("cli_user_block")
        sys.modules.pop("nlbench_cli_plugin", None)


def test_unknown_block_suggests(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["run", "--suite", "smoke", "--blocks", "srl_ftt", "--out", str(tmp_path)]) == 2
    assert "Did you mean 'srl_fft'" in capsys.readouterr().out


def test_unknown_suite_suggests(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--suite", "smok"]) == 2
    assert "Did you mean 'smoke'" in capsys.readouterr().out


def test_run_prints_summary_and_run_path(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["run", "--suite", "smoke", "--blocks", "nl,identity", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    runs = list(tmp_path.glob("smoke-*"))
    assert len(runs) == 1
    assert "forward latency, median ms" in out and "8×8" in out and "12×10" in out
    assert "run directory" in out and runs[0].name in out.replace("\n", "")
    assert "machine noise floor at the start" in out.replace("\n", " ")


def test_resume_of_a_finished_run_runs_nothing(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["run", "--suite", "smoke", "--blocks", "identity", "--out", str(tmp_path)]) == 0
    run = next(tmp_path.glob("smoke-*"))
    capsys.readouterr()
    assert main(["run", "--resume", str(run)]) == 0
    assert "ran 0 cases" in capsys.readouterr().out


def test_report_command_writes_markdown_and_html(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["run", "--suite", "smoke", "--blocks", "identity,nl", "--out", str(tmp_path / "results")]) == 0
    run = next((tmp_path / "results").glob("smoke-*"))
    capsys.readouterr()
    assert main(["report", str(run), "--out", str(tmp_path / "reports")]) == 0
    out = capsys.readouterr().out
    assert (tmp_path / "reports" / run.name / "report.md").exists()
    assert (tmp_path / "reports" / run.name / "index.html").exists()
    assert "report (md)" in out and "report (html)" in out


def test_report_rejects_unknown_format_and_missing_run(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["report", str(tmp_path / "missing-run")]) == 2
    assert "no such run directory" in capsys.readouterr().out
    assert main(["report", str(tmp_path), "--format", "pdf"]) == 2
    assert "--format" in capsys.readouterr().out
