"""Training to a plateau and a fair rate per block: the plateau rule on hand-made
histories, the training loop's decay and stop on scripted validation accuracies, the
validation split, the rate choice and the reuse of the sweep seed's trial."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from nlbench import store
from nlbench.probes import ProbeConfig, ProbeResult, probe_config, run_probe, run_probe_into, start_probe_run
from nlbench.probes import training
from nlbench.probes.runs import choose_lr, pending_probe_cases
from nlbench.probes.training import chance_accuracy, plateaued, train_probe


def test_plateau_rule_on_hand_made_histories() -> None:
    assert not plateaued([0.5, 0.5, 0.5], 3, 0.01), "needs window + 1 evaluations"
    assert plateaued([0.5, 0.5, 0.5, 0.5], 3, 0.01)
    assert plateaued([0.50, 0.90, 0.905, 0.91, 0.90], 3, 0.01), "best of the last 3 is 0.91 <= 0.90 + 0.01"
    assert not plateaued([0.50, 0.90, 0.905, 0.92, 0.90], 3, 0.01), "0.92 is a gain of 2 points"
    assert not plateaued([0.9, 0.5, 0.6, 0.95], 2, 0.0)


def test_chance_is_the_majority_share() -> None:
    assert chance_accuracy(torch.tensor([0, 1, 1, 1])) == 0.75
    assert chance_accuracy(torch.tensor([0, 1, 2, 3, 4])) == 0.2


def _scripted(monkeypatch: pytest.MonkeyPatch, accuracies: list[float]) -> list[float]:
    """Make every evaluation (validation during training, test at the end) return
    ``accuracies`` in turn, the last one repeated."""
    script = list(accuracies)
    seen: list[float] = []

    def fake(model, images, labels, *, batch_size=250):
        value = script.pop(0) if len(script) > 1 else script[0]
        seen.append(value)
        return value

    monkeypatch.setattr(training, "evaluate", fake)
    return seen


def test_training_decays_on_the_first_plateau_and_stops_on_the_second(monkeypatch, tiny: ProbeConfig) -> None:
    config = replace(tiny, steps=40, eval_every=2, log_every=2, plateau_window=2, plateau_min_gain=0.01,
                     plateau_decay=0.1, learning_margin=0.1, lr=0.01, warmup_steps=1, stop_on_plateau=True)
    # evaluations at steps 2, 4, …: learning starts at step 4 (0.7 >= chance 0.5 + 0.1), the
    # target 0.85 is reached at step 6, plateau at step 10 (0.9 <= 0.9 + 0.01 over 2 evaluations)
    _scripted(monkeypatch, [0.5, 0.7, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9])
    result = train_probe(config, "local", 0)
    assert result.status == "ok", result.error
    assert result.lr_decay_step == 10 and result.steps_to_target == 6
    assert result.stop_reason == "plateau" and result.steps == 14, "two evaluations after the decay"
    rates = {p.step: p.lr for p in result.learning_curve}
    assert rates[10] == pytest.approx(0.01) and rates[12] == pytest.approx(0.001), "decayed from step 11 on"
    assert result.validation_accuracy == 0.9
    assert [p.validation_accuracy for p in result.learning_curve][:3] == [0.5, 0.7, 0.9]
    assert result.learning_curve[-1].test_accuracy == result.accuracy
    assert result.wall_s >= result.train_s > 0


def test_a_run_that_never_leaves_chance_trains_the_whole_budget(monkeypatch, tiny: ProbeConfig) -> None:
    config = replace(tiny, steps=30, eval_every=2, log_every=2, plateau_window=2, stop_on_plateau=True)
    _scripted(monkeypatch, [0.5, 0.52, 0.49])
    result = train_probe(config, "local", 0)
    assert (result.stop_reason, result.steps, result.lr_decay_step, result.steps_to_target) == (
        "budget", 30, None, None)


def test_the_fixed_budget_mode_never_stops_early(monkeypatch, tiny: ProbeConfig) -> None:
    config = replace(tiny, steps=20, eval_every=2, log_every=2, plateau_window=1, stop_on_plateau=False)
    _scripted(monkeypatch, [0.9])
    result = train_probe(config, "local", 0)
    assert (result.stop_reason, result.steps, result.lr_decay_step, result.steps_to_target) == ("budget", 20, None, 2)


def test_the_validation_split_is_held_out_of_training_and_apart_from_test() -> None:
    config = probe_config("quick", n_train=200, n_validation=50, n_test=40)
    task = config.make_task()
    assert (len(task.train), len(task.validation), len(task.test)) == (200, 50, 40)
    flat = {split: getattr(task, split).images.flatten(1) for split in ("train", "validation", "test")}
    for a, b in (("train", "validation"), ("train", "test"), ("validation", "test")):
        assert not (torch.cdist(flat[a], flat[b]) < 1e-6).any(), f"an image is in both {a} and {b}"
    assert set(task.validation.meta) == set(task.train.meta)
    with pytest.raises(ValueError, match="n_validation"):
        task.with_validation(len(task.train))
    assert replace(config, n_validation=0).make_task().validation is None


def test_config_checks_the_new_fields() -> None:
    for field, value in (("plateau_window", 0), ("plateau_min_gain", 2.0), ("plateau_decay", 0.0),
                         ("target_accuracy", -0.1), ("lr_grid", (1e-3, 1e-3)), ("lr_grid", (0.0,)),
                         ("n_validation", -1), ("stop_on_plateau", "yes")):
        with pytest.raises(ValueError, match=field):
            ProbeConfig(**{field: value})
    with pytest.raises(ValueError, match="cosine"):
        ProbeConfig(schedule="cosine")
    assert ProbeConfig(schedule="cosine", stop_on_plateau=False).schedule == "cosine"


def test_a_manifest_written_before_plateau_training_resumes_as_a_fixed_budget() -> None:
    old = {"task": "same_pair", "steps": 1500, "lr": 4e-3, "schedule": "cosine", "seeds": [0, 1, 2],
           "eval_every": 250}
    config = ProbeConfig.from_dict(old)
    assert (config.stop_on_plateau, config.lr_grid, config.n_validation, config.schedule) == (
        False, (), 0, "cosine")


def _trial(config: ProbeConfig, lr: float, validation: float | None, steps_to_target: int | None,
           status: str = "ok") -> ProbeResult:
    return ProbeResult(task="same_pair", block="nl", seed=0, status=status, accuracy=validation, steps=100,
                       learning_curve=(), steps_per_s=1.0, params=1, macs=1, flops=2, train_s=1.0,
                       config=replace(config, lr=lr), error=None if status == "ok" else "boom",
                       kind="probe_lr_trial", validation_accuracy=validation, steps_to_target=steps_to_target)


def test_the_rate_choice_rule() -> None:
    config = ProbeConfig(lr=4e-3, lr_grid=(1e-3, 4e-3, 1.6e-2), plateau_min_gain=0.01)
    best = choose_lr([_trial(config, 1e-3, 0.80, None), _trial(config, 4e-3, 0.90, 800),
                      _trial(config, 1.6e-2, 0.95, 1200)], config)
    assert best.lr == 1.6e-2 and best.reason.startswith("best validation accuracy")
    assert "0.016: 95.0 %" in best.reason
    faster = choose_lr([_trial(config, 1e-3, 0.995, 400), _trial(config, 4e-3, 1.0, 800)], config)
    assert faster.lr == 1e-3 and "fewest steps" in faster.reason, "within 1 point: a tie, the faster wins"
    chance = choose_lr([_trial(config, 1e-3, 0.50, None), _trial(config, 4e-3, 0.505, None),
                        _trial(config, 1.6e-2, 0.51, None)], config)
    assert chance.lr == 4e-3 and "nearest the default" in chance.reason
    failed = choose_lr([_trial(config, 1e-3, None, None, status="error")], config)
    assert failed.lr == 4e-3 and "no rate trial succeeded" in failed.reason
    assert choose_lr([], replace(config, lr_grid=())).lr == 4e-3


def test_the_sweep_seed_reuses_its_trial_and_the_other_seeds_train_at_the_chosen_rate(tiny: ProbeConfig) -> None:
    config = replace(tiny, seeds=(0, 1), lr_grid=(1e-3, 1e-2), sweep_seed=0)
    results = run_probe(config, ["local"])
    trials = [r for r in results if r.kind == "probe_lr_trial"]
    seeds = [r for r in results if r.kind == "probe"]
    assert [t.config.lr for t in trials] == [1e-3, 1e-2] and [s.seed for s in seeds] == [0, 1]
    chosen = choose_lr(trials, config).lr
    assert all(s.config.lr == chosen for s in seeds)
    reused = next(t for t in trials if t.config.lr == chosen)
    assert seeds[0].lr_trial_reused and not seeds[1].lr_trial_reused
    assert seeds[0].accuracy == reused.accuracy and seeds[0].learning_curve == reused.learning_curve
    assert seeds[0].case.case_id != reused.case.case_id
    record = seeds[1].to_record()
    assert record["lr"] == chosen and record["lr_grid"] == [1e-3, 1e-2] and "validation accuracy" in record["lr_choice"]
    # a fresh run of seed 1 at the chosen rate is the same computation
    alone = train_probe(replace(config, lr=chosen), "local", 1)
    assert alone.accuracy == seeds[1].accuracy


def test_a_result_survives_the_store_round_trip(tiny: ProbeConfig) -> None:
    result = train_probe(tiny, "local", 0)
    again = ProbeResult.from_record(result.to_record())
    assert again == result


def test_resume_keeps_finished_trials_and_trains_the_rest(tmp_path: Path, tiny: ProbeConfig,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    config = replace(tiny, seeds=(0, 1), lr_grid=(1e-3, 1e-2))
    run_dir = start_probe_run(config, tmp_path, ["local"])
    pending = pending_probe_cases(run_dir, config, ["local"])
    assert [(c.lr, c.seed) for c in pending] == [(1e-3, 0), (1e-2, 0), (None, 0), (None, 1)]
    trained = []
    original = training.train_probe

    def interrupt_after_two(*args, **kwargs):
        if len(trained) == 2:
            raise KeyboardInterrupt
        trained.append(args[0].lr)
        return original(*args, **kwargs)

    monkeypatch.setattr("nlbench.probes.runs.train_probe", interrupt_after_two)
    with pytest.raises(KeyboardInterrupt):
        run_probe_into(run_dir, config, ["local"])
    assert len(store.read_records(run_dir)) == 3, "both trials and the reused seed 0 were kept"
    monkeypatch.setattr("nlbench.probes.runs.train_probe", original)
    outcome = run_probe_into(run_dir, config, ["local"])
    assert outcome.trained == 1 and outcome.already_done == 3
    probes = store.probe_records(store.load(run_dir))
    trials = store.lr_trial_records(store.load(run_dir))
    assert sorted(probes["seed"]) == [0, 1] and sorted(trials["lr"]) == [1e-3, 1e-2]
    assert probes["lr"].nunique() == 1 and math.isfinite(probes["accuracy"].sum())
