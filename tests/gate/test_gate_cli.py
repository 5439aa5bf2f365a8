"""`nlbench gate` from the command line: exit codes, outputs, the three modes."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from nlbench import store
from nlbench.cli import main

from tests.gate.gate_runs import record, write_run

REPO = Path(__file__).resolve().parents[2]


def runs(tmp_path: Path, base: list[dict], cand: list[dict], **kwargs) -> tuple[str, str]:
    return (str(write_run(tmp_path, "base", base, **kwargs)), str(write_run(tmp_path, "cand", cand)))


def strict_json(path: Path) -> dict:
    def reject(token: str):
        raise ValueError(f"non-standard JSON number {token}")

    return json.loads(path.read_text(), parse_constant=reject)


def test_a_and_a_exits_0_and_writes_json_markdown_and_the_step_summary(tmp_path, monkeypatch, capsys):
    summary = tmp_path / "summary.md"
    summary.write_text("earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    base, cand = runs(tmp_path, [record("nl"), record("a2", seed=3)], [record("nl", seed=1), record("a2", seed=4)])
    code = main(["gate", base, cand, "--json", str(tmp_path / "g.json"), "--markdown", str(tmp_path / "g.md")])
    assert code == 0
    out = capsys.readouterr().out
    assert "PASS" in out
    data = strict_json(tmp_path / "g.json")
    assert data["exit_code"] == 0 and data["counts"]["pass"] == 4 and data["counts"]["same"] == 6
    assert {row["tier"] for row in data["comparisons"]} == {"cost", "time"}
    markdown = (tmp_path / "g.md").read_text()
    assert markdown.startswith("### ✅ nlbench gate: PASS")
    assert summary.read_text() == "earlier step\n" + markdown + "\n"


def test_a_regression_exits_1_and_names_the_block_and_case(tmp_path, capsys):
    base, cand = runs(tmp_path, [record("nl"), record("a2")], [record("nl", slowdown=1.3, seed=1), record("a2", seed=1)])
    assert main(["gate", base, cand, "--json", str(tmp_path / "g.json")]) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out and "nl C16 16x16 B1 (forward latency)" in out
    data = strict_json(tmp_path / "g.json")
    failing = [row for row in data["comparisons"] if row["failing"]]
    assert {(row["block"], row["quantity"]) for row in failing} == {("nl", "latency_fwd_ms"), ("nl", "latency_fwdbwd_ms")}
    assert all(row["ratio"] == pytest.approx(1.3, rel=0.02) for row in failing)


def test_threshold_comes_from_the_baselines_suite_and_the_command_line(tmp_path):
    suite = 'name = "s"\nblocks = ["nl"]\nchannels = [16]\nresolutions = [16]\n[gate]\nthreshold = 0.5\n'
    base, cand = runs(tmp_path, [record("nl")], [record("nl", slowdown=1.3, seed=1)], suite_toml=suite)
    assert main(["gate", base, cand]) == 0  # 30 % < the suite's 50 %
    assert main(["gate", base, cand, "--threshold", "0.2"]) == 1


def test_cost_changes_fail_unless_allowed(tmp_path, capsys):
    base, cand = runs(tmp_path, [record("nl")], [record("nl", params=1001, seed=1)])
    assert main(["gate", base, cand]) == 1
    assert "params 1,000 → 1,001" in capsys.readouterr().out
    assert main(["gate", base, cand, "--allow-cost-change"]) == 0
    assert main(["gate", base, cand, "--cost-only"]) == 1


def test_missing_and_failed_candidate_cases_fail(tmp_path, capsys):
    base, cand = runs(tmp_path, [record("nl"), record("a2"), record("snl")],
                      [record("nl", seed=1), record("snl", status="oom")])
    assert main(["gate", base, cand]) == 1
    out = capsys.readouterr().out
    assert "missing" in out and "a2" in out and "candidate oom" in out


def test_inconclusive_passes_unless_strict(tmp_path):
    base, cand = runs(tmp_path, [record("nl", n=5)], [record("nl", n=5, seed=1)])  # few-samples on both
    assert main(["gate", base, cand]) == 0
    assert main(["gate", base, cand, "--strict"]) == 1


def test_bad_input_exits_2(tmp_path, capsys):
    base, cand = runs(tmp_path, [record("nl")], [record("a2")])
    assert main(["gate", base, cand]) == 2
    assert "no case in common" in capsys.readouterr().out
    assert main(["gate"]) == 2
    assert main(["gate", base, cand, "--base", "HEAD"]) == 2
    assert main(["gate", base, cand, "--threshold", "-1"]) == 2
    assert main(["gate", base, cand, "--alpha", "2"]) == 2
    assert main(["gate", base, cand, "--update-baseline"]) == 2
    assert main(["gate", base, cand, "--suite", "gate"]) == 2
    assert main(["gate", str(tmp_path / "nowhere"), cand]) == 2
    (tmp_path / "notes.txt").write_text("x")
    assert main(["gate", str(tmp_path / "notes.txt"), cand]) == 2
    out = capsys.readouterr().out
    assert "nowhere" in out and "notes.txt" in out


def test_user_text_stays_text_in_the_terminal_and_the_markdown(tmp_path, capsys):
    label = "[red]x[/] <script>alert(1)</script> | cell"
    base, cand = runs(tmp_path, [record("nl", label=label)], [record("nl", label=label, slowdown=1.5, seed=1)])
    assert main(["gate", base, cand, "--markdown", str(tmp_path / "g.md")]) == 1
    assert "[red]x[/]" in capsys.readouterr().out.replace("\n", "")
    markdown = (tmp_path / "g.md").read_text()
    assert "<script>" not in markdown and "&lt;script>" in markdown and "\\| cell" in markdown


@pytest.mark.slow
def test_against_a_stored_baseline_cost_only_and_update(tmp_path, capsys):
    out = tmp_path / "results"
    assert main(["run", "--suite", "smoke", "--blocks", "local", "--measure", "params,flops", "--out", str(out)]) == 0
    (baseline,) = list(out.iterdir())
    assert store.read_manifest(baseline)["measure"] == ["params", "flops"]
    assert main(["gate", str(baseline), "--cost-only", "--out", str(tmp_path / "cand")]) == 0
    # a baseline whose counts differ from what the code now counts: the cost tier fails
    rows = store.read_records(baseline)
    (baseline / store.RESULTS_FILE).write_text("".join(json.dumps({**r, "macs": r["macs"] + 1}) + "\n" for r in rows))
    assert main(["gate", str(baseline), "--cost-only", "--out", str(tmp_path / "cand")]) == 1
    assert "cost changed" in capsys.readouterr().out
    assert main(["gate", str(baseline), "--cost-only", "--update-baseline", "--out", str(tmp_path / "cand")]) == 1
    assert main(["gate", str(baseline), "--cost-only", "--out", str(tmp_path / "cand")]) == 0
    assert store.read_manifest(baseline)["run_id"] == baseline.name


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


@pytest.fixture()
def checkout(tmp_path, monkeypatch) -> Path:
    """A git checkout holding this nlbench tree, committed, as the working directory."""
    root = tmp_path / "checkout"
    shutil.copytree(REPO / "nlbench", root / "nlbench", ignore=shutil.ignore_patterns("__pycache__"))
    _git(root, "init", "-q")
    _git(root, "-c", "user.email=t@t", "-c", "user.name=t", "add", "nlbench")
    _git(root, "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-q", "-m", "base")
    monkeypatch.chdir(root)
    return root


@pytest.mark.slow
def test_base_ref_measures_both_trees_and_catches_a_cost_change(checkout, tmp_path, capsys):
    baselines = checkout / "nlbench" / "blocks" / "baselines.py"
    text = baselines.read_text()
    assert "kernel_size: int = 3" in text
    baselines.write_text(text.replace("kernel_size: int = 3", "kernel_size: int = 5"))  # uncommitted change
    code = main(["gate", "--base", "HEAD", "--suite", "smoke", "--blocks", "local,identity", "--cost-only",
                 "--out", str(tmp_path / "results"), "--json", str(tmp_path / "g.json")])
    assert code == 1
    data = strict_json(tmp_path / "g.json")
    changed = {(r["block"], r["quantity"]) for r in data["comparisons"] if r["verdict"] == "cost changed"}
    assert ("local", "params") in changed and ("local", "macs") in changed
    assert not any(r["block"] == "identity" and r["failing"] for r in data["comparisons"])
    manifests = {store.read_manifest(d)["gate_side"]: store.read_manifest(d) for d in (tmp_path / "results").iterdir()}
    assert manifests["base"]["gate_session"] == manifests["candidate"]["gate_session"]
    assert manifests["base"]["code"]["ref"] == "HEAD" and manifests["base"]["code"]["dirty"] is False
    assert manifests["candidate"]["code"]["dirty"] is True
    assert manifests["candidate"]["code"]["root"] == str(checkout.resolve())
    assert _git(checkout, "worktree", "list").count("\n") == 1  # the temporary worktree is gone


@pytest.mark.slow
def test_base_ref_whose_worker_speaks_another_protocol_is_bad_input(checkout, tmp_path, capsys):
    sweep = checkout / "nlbench" / "sweep.py"
    sweep.write_text(sweep.read_text().replace("WORKER_PROTOCOL = 1", "WORKER_PROTOCOL = 99"))
    _git(checkout, "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-q", "-am", "other protocol")
    sweep.write_text(sweep.read_text().replace("WORKER_PROTOCOL = 99", "WORKER_PROTOCOL = 1"))
    code = main(["gate", "--base", "HEAD", "--suite", "smoke", "--blocks", "identity", "--cost-only",
                 "--out", str(tmp_path / "results")])
    assert code == 2
    assert "speaks protocol 99" in capsys.readouterr().out.replace("\n", "")


def test_unknown_ref_suggests_close_names(checkout, capsys):
    assert main(["gate", "--base", "mastr", "--suite", "smoke", "--cost-only"]) == 2
    out = capsys.readouterr().out
    assert "unknown git ref 'mastr'" in out
