"""Probe runs: blocks × seeds in memory (the quick run, failures as data, aggregation,
the sweep's progress shape) and in the store (results appended per block × seed,
receptive fields recorded, resume trains nothing twice, the manifest, the CLI and the
report show them)."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
from rich.console import Console

from nlbench import cli, store
from nlbench.probes import (
    QUICK_CONFIG,
    ProbeConfig,
    ProbeResult,
    aggregate,
    canonical_task,
    config_from_manifest,
    pending_probe_cases,
    probe_config,
    resume_probe_arguments,
    run_probe,
    run_probe_into,
    start_probe_run,
)

TINY = dict(steps=3, batch_size=8, n_train=32, n_test=16, seeds=(0, 1), warmup_steps=1, log_every=1)

RECORD_KEYS = {
    "kind", "task", "block", "seed", "accuracy", "steps", "macs", "params", "steps_per_s",
    "learning_curve", "status", "error",
}


@pytest.fixture(autouse=True)
def wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli, "console", Console(width=240))


# ------------------------------------------------------------------------- in memory


def test_quick_probe_runs_identity_and_local() -> None:
    events = []
    results = run_probe(QUICK_CONFIG, ["identity", "local"],
                        progress=lambda case, record, index, total: events.append(("done", case, record, index, total)),
                        on_step=lambda case, point: events.append(("step", case, point)))
    grid = QUICK_CONFIG.lr_grid
    assert [(r.block, r.kind, r.config.lr if r.kind != "probe" else None) for r in results] == [
        *(("identity", "probe_lr_trial", lr) for lr in grid), ("identity", "probe", None),
        *(("local", "probe_lr_trial", lr) for lr in grid), ("local", "probe", None)]
    identity, local = (r for r in results if r.kind == "probe")
    for result in results:
        assert result.status == "ok", result.error
        assert result.task == "same_pair" and result.steps == QUICK_CONFIG.steps
        assert 0.0 <= result.accuracy <= 1.0 and 0.0 <= result.validation_accuracy <= 1.0
        assert result.steps_per_s > 0 and result.params > 0 and result.macs > 0
        assert result.flops > 2 * result.macs  # multiply-adds, plus the norms, ReLUs and biases
        assert result.learning_curve[-1].step == QUICK_CONFIG.steps
        assert result.learning_curve[-1].test_accuracy == result.accuracy
        assert all(math.isfinite(p.train_loss) for p in result.learning_curve)
        record = result.to_record()
        assert RECORD_KEYS <= set(record) and record["status"] == "ok"
        json.dumps(record)  # store-friendly
    assert identity.lr_trial_reused and identity.config.lr in grid
    # the local block adds a 3×3 conv branch: more parameters and MACs than no block
    assert local.params > identity.params and local.macs > identity.macs
    # the sweep's progress shape: (case, record, index, total) after each result,
    # with training steps reported in between
    kinds = [e[0] for e in events]
    assert kinds[0] == "step" and kinds.count("done") == len(results) and kinds[-1] == "done"
    done = [e[1:] for e in events if e[0] == "done"]
    assert [(case.block, case.lr, index, total) for case, _, index, total in done] == [
        (block, lr, index + 1 + offset, 6) for offset, block in ((0, "identity"), (3, "local"))
        for index, lr in enumerate((*grid, None))]
    assert done[-1][1]["case_id"] == local.case.case_id == done[-1][0].case_id
    assert done[-1][1]["accuracy"] == local.accuracy
    trained_local = [e[2].step for e in events if e[0] == "step" and e[1].block == "local"]
    assert trained_local == [p.step for r in results if r.block == "local" and r.kind != "probe"
                             for p in r.learning_curve], "the reused seed is not trained again"


def test_a_failing_block_is_recorded_and_the_run_goes_on(tiny: ProbeConfig, test_blocks) -> None:
    results = [r for r in run_probe(tiny, ["probe_test_broken", "identity"]) if r.kind == "probe"]
    broken, identity = results
    assert broken.status == "error" and "broken on purpose" in broken.error and broken.accuracy is None
    assert broken.to_record()["status"] == "error"
    assert identity.status == "ok"


def test_run_probe_checks_its_arguments(tiny: ProbeConfig) -> None:
    with pytest.raises(ValueError, match="no seeds"):
        run_probe(tiny, ["identity"], seeds=())
    with pytest.raises(ValueError, match="not probed"):
        run_probe(tiny, ["identity"], block_options={"nl": {}})


def _result(config: ProbeConfig, block: str, seed: int, accuracy: float | None, status: str = "ok") -> ProbeResult:
    return ProbeResult(
        task="same_pair", block=block, seed=seed, status=status, accuracy=accuracy, steps=10,
        learning_curve=(), steps_per_s=5.0, params=100, macs=1000, flops=2000, train_s=2.0,
        config=config, error=None if status == "ok" else "boom",
    )


def test_aggregate_gives_mean_and_sample_std_over_seeds(tiny: ProbeConfig) -> None:
    results = [_result(tiny, "nl", 0, 0.8), _result(tiny, "nl", 1, 0.9), _result(tiny, "nl", 2, None, "error"),
               _result(tiny, "local", 0, 0.5)]
    nl, local = aggregate(results)
    assert (nl.block, nl.n_seeds, nl.n_ok) == ("nl", 3, 2)
    assert nl.accuracy_mean == pytest.approx(0.85)
    assert nl.accuracy_std == pytest.approx(math.sqrt(0.005))
    assert nl.errors == ("seed 2: boom",)
    assert local.accuracy_mean == 0.5 and local.accuracy_std is None
    json.dumps(nl.to_record())


# ------------------------------------------------------------------------- in the store


def test_task_aliases() -> None:
    assert canonical_task("same-pair") == canonical_task("long-range") == "same_pair"
    assert canonical_task("cifar10") == "cifar10"


def test_probe_run_manifest_has_the_sweep_s_environment_fields(tmp_path: Path) -> None:
    from nlbench.environment import fingerprint

    config = probe_config("quick", **TINY)
    run_dir = start_probe_run(config, tmp_path / "results", ["identity"], plugins=["my_blocks"])
    assert run_dir.parent == tmp_path / "results" and run_dir.name.startswith("probe-same-pair-")
    manifest = store.read_manifest(run_dir)
    assert manifest["run_id"] == run_dir.name and manifest["kind"] == "probe"
    assert set(manifest["environment"]) == set(fingerprint("cpu"))
    assert manifest["dtypes"] == ["float32"] and manifest["threads"] == config.threads
    assert resume_probe_arguments(run_dir) == (config, ["identity"], ["my_blocks"])
    with pytest.raises(store.StoreError, match="not a probe run"):
        store.write_manifest(tmp_path / "sweep", {"suite": "smoke"})
        config_from_manifest(tmp_path / "sweep")


def test_probe_run_stores_results_and_receptive_fields_and_resumes(tmp_path: Path) -> None:
    config = probe_config("quick", **TINY)
    grid = config.lr_grid
    run_dir = start_probe_run(config, tmp_path, ["identity", "nl"])
    assert [(c.block, c.lr, c.seed) for c in pending_probe_cases(run_dir, config, ["identity", "nl"])] == [
        (block, lr, seed) for block in ("identity", "nl") for lr, seed in ((grid[0], 0), (grid[1], 0), (None, 0),
                                                                           (None, 1))]
    first = run_probe_into(run_dir, config, ["identity", "nl"])
    assert first.trained == 8 and first.already_done == 0
    df = store.load(run_dir)
    probes = df[df["kind"] == "probe"]
    assert sorted(zip(probes["block"], probes["seed"])) == [("identity", 0), ("identity", 1), ("nl", 0), ("nl", 1)]
    assert probes["accuracy"].between(0, 1).all() and (probes["macs"] > 0).all()
    assert set(probes["case_id"]) == {config.probe_case(b, s).case_id for b in ("identity", "nl") for s in (0, 1)}
    assert len(store.lr_trial_records(df)) == 4
    fields = df[df["kind"] == "receptive_field"].set_index("block")
    assert fields.loc["nl", "fraction_reached"] == 1.0
    assert fields.loc["identity", "fraction_reached"] < 0.1
    restored, blocks = config_from_manifest(run_dir)
    assert restored == config and blocks == ["identity", "nl"]
    assert pending_probe_cases(run_dir, restored, blocks) == []
    again = run_probe_into(run_dir, restored, blocks)
    assert again.trained == 0 and again.already_done == 8
    assert len((run_dir / store.RESULTS_FILE).read_text().splitlines()) == 10


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
    assert "Did you mean 'pathfinder'" in capsys.readouterr().out
    assert cli.main(["probe", "--task", "digits", "--blocks", "identity", "--quick", "--steps", "3",
                     "--seeds", "1", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "digits" in out and "identity" in out and "run directory" in out
    assert re.search(r"│\s*0/1\s*│", out), \
        "the seeds column counts the probe's seeds, not its rate trials or the receptive-field record"
    assert "identity: does not learn within 3 steps" in out
    run = next(tmp_path.glob("probe-digits-*"))
    assert cli.main(["probe", "--task", "digits", "--blocks", "identity", "--quick", "--max-steps", "5", "--lr",
                     "0.01", "--seeds", "1", "--out", str(tmp_path / "one-rate")]) == 0
    assert "lr 0.01, 5 steps each" in capsys.readouterr().out
    one_rate, _ = config_from_manifest(next((tmp_path / "one-rate").glob("probe-digits-*")))
    assert (one_rate.lr, one_rate.lr_grid, one_rate.steps) == (0.01, (), 5)
    assert cli.main(["probe", "--task", "digits", "--steps", "3", "--max-steps", "9", "--quick"]) == 2
    assert "exclude each other" in capsys.readouterr().out
    assert cli.main(["probe", "--resume", str(run)]) == 0
    assert "trained 0 runs (3 already done)" in capsys.readouterr().out
    assert cli.main(["probe", "--quick", "--jobs", "0", "--out", str(tmp_path / "no-jobs")]) == 2
    assert "--jobs: expected at least 1 job" in capsys.readouterr().out
    assert not (tmp_path / "no-jobs").exists(), "a refused --jobs leaves no run directory behind"
