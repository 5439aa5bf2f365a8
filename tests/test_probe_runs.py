"""Probe runs in the store: results appended per block × seed, receptive fields
recorded, resume trains nothing twice, the CLI and the report show them."""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.console import Console

from nlbench import cli, store
from nlbench.probes.probe import probe_config
from nlbench.probes.runs import canonical_task, config_from_manifest, run_probe_into, start_probe_run

TINY = dict(steps=3, batch_size=8, n_train=32, n_test=16, seeds=(0, 1), warmup_steps=1, log_every=1)


@pytest.fixture(autouse=True)
def wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli, "console", Console(width=240))


def test_task_aliases() -> None:
    assert canonical_task("same-pair") == canonical_task("long-range") == "same_pair"
    assert canonical_task("cifar10") == "cifar10"


def test_probe_run_stores_results_and_receptive_fields_and_resumes(tmp_path: Path) -> None:
    config = probe_config("quick", **TINY)
    run_dir = start_probe_run(config, tmp_path, ["identity", "nl"])
    first = run_probe_into(run_dir, config, ["identity", "nl"])
    assert first.trained == 4 and first.already_done == 0
    df = store.load(run_dir)
    probes = df[df["kind"] == "probe"]
    assert sorted(zip(probes["block"], probes["seed"])) == [("identity", 0), ("identity", 1), ("nl", 0), ("nl", 1)]
    assert probes["accuracy"].between(0, 1).all() and (probes["macs"] > 0).all()
    fields = df[df["kind"] == "receptive_field"].set_index("block")
    assert fields.loc["nl", "fraction_reached"] == 1.0
    assert fields.loc["identity", "fraction_reached"] < 0.1
    restored, blocks = config_from_manifest(run_dir)
    assert restored == config and blocks == ["identity", "nl"]
    again = run_probe_into(run_dir, restored, blocks)
    assert again.trained == 0 and again.already_done == 4
    assert len((run_dir / store.RESULTS_FILE).read_text().splitlines()) == 6


def test_report_shows_probe_accuracy_and_receptive_fields(tmp_path: Path) -> None:
    from nlbench.report import write_report

    config = probe_config("quick", **TINY)
    run_dir = start_probe_run(config, tmp_path, ["identity", "local"])
    run_probe_into(run_dir, config, ["identity", "local"])
    written = write_report([run_dir], tmp_path / "reports")
    markdown = written["md"].read_text()
    assert "## Probe results" in markdown and "## Receptive fields" in markdown
    assert (written["dir"] / "plots" / "receptive-fields.png").read_bytes().startswith(b"\x89PNG")
    assert "Cost vs resolution" in markdown  # sweep sections say they have no data, not crash


def test_probe_cli_quick_and_errors(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert cli.main(["probe", "--task", "pathfnder", "--quick"]) == 2
    assert "Did you mean pathfinder" in capsys.readouterr().out
    assert cli.main(["probe", "--task", "digits", "--blocks", "identity", "--quick", "--steps", "3",
                     "--seeds", "1", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "digits" in out and "identity" in out and "run directory" in out
    assert "1/1" in out, "seeds ok counts probe results only, not the receptive-field record"
    run = next(tmp_path.glob("probe-digits-*"))
    assert cli.main(["probe", "--resume", str(run)]) == 0
    assert "trained 0 block × seed runs (1 already done)" in capsys.readouterr().out
