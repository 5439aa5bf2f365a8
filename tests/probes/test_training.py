"""Training one probe: determinism, SRL-LO's re-orthogonalisation hook, cost from the
sweep's measurers, and failures as data."""

from __future__ import annotations

import json

import pytest
import torch

from nlbench.measure.params import count_params
from nlbench.probes.config import ProbeConfig
from nlbench.probes.network import build_probe_net
from nlbench.probes.training import ProbeResult, train_probe


def test_same_seed_gives_the_same_accuracy_to_the_last_digit(tiny: ProbeConfig) -> None:
    deterministic_before, threads_before = torch.are_deterministic_algorithms_enabled(), torch.get_num_threads()
    rng_before = torch.get_rng_state()
    first = train_probe(tiny, "local", 3)
    second = train_probe(tiny, "local", 3)
    assert first.status == "ok", first.error
    assert first.accuracy == second.accuracy
    assert [p.train_loss for p in first.learning_curve] == [p.train_loss for p in second.learning_curve]
    other = train_probe(tiny, "local", 4)
    assert [p.train_loss for p in other.learning_curve] != [p.train_loss for p in first.learning_curve]
    # the caller's torch settings and random state are left alone
    assert torch.are_deterministic_algorithms_enabled() == deterministic_before
    assert torch.get_num_threads() == threads_before
    assert torch.equal(torch.get_rng_state(), rng_before)


def test_channels_params_and_record_come_from_the_task_and_the_measurers(tiny: ProbeConfig) -> None:
    from dataclasses import replace

    digits = replace(tiny, task="digits", n_train=64, n_test=32)
    task = digits.make_task()
    result = train_probe(digits, "local", 0, task=task)
    assert result.status == "ok", result.error
    net = build_probe_net("local", in_channels=task.in_channels, num_classes=task.num_classes,
                          channels=digits.channels, image_size=digits.image_size)
    assert result.params == count_params(net).trainable
    record = result.to_record()
    assert record["case_id"] == result.case.case_id == digits.probe_case("local", 0).case_id
    assert (record["device"], record["dtype"], record["kind"]) == ("cpu", "float32", "probe")
    json.dumps(record)


def test_reorthogonalize_runs_after_every_optimizer_step(tiny: ProbeConfig, test_blocks, monkeypatch) -> None:
    seen = []
    original = test_blocks.reorthogonalize

    def spy(self) -> None:
        seen.append(float(self.scale.detach()))
        original(self)

    monkeypatch.setattr(test_blocks, "reorthogonalize", spy)
    result = train_probe(tiny, "probe_test_counting", 0)
    assert result.status == "ok", result.error
    assert len(seen) == tiny.steps
    assert seen[0] != 0.0, "called after the optimizer moved the weights"


def test_a_failing_block_is_a_failed_result(tiny: ProbeConfig, test_blocks) -> None:
    broken = train_probe(tiny, "probe_test_broken", 0)
    assert broken.status == "error" and "broken on purpose" in broken.error and broken.accuracy is None
    assert broken.params is not None, "what was measured before the failure is kept"
    assert broken.to_record()["status"] == "error"


def test_result_checks_its_status(tiny: ProbeConfig) -> None:
    fields = dict(task="same_pair", block="nl", seed=0, accuracy=None, steps=0, learning_curve=(), steps_per_s=None,
                  params=None, macs=None, flops=None, train_s=None, config=tiny)
    with pytest.raises(ValueError, match="status"):
        ProbeResult(status="fine", **fields)
    with pytest.raises(ValueError, match="error message"):
        ProbeResult(status="oom", **fields)
    assert ProbeResult(status="oom", error="out of memory", **fields).to_record()["status"] == "oom"
