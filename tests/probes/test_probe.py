"""The training probe: backbone geometry, config checks, determinism, the quick run,
SRL-LO's re-orthogonalisation hook, failures as data, and aggregation."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import pytest
import torch
from torch import Tensor, nn

from nlbench.blocks import ClaimedComplexity, register_block, unregister_block
from nlbench.probes.probe import (
    QUICK_CONFIG,
    ProbeConfig,
    ProbeResult,
    aggregate,
    backbone_receptive_field,
    build_probe_net,
    feature_size,
    probe_config,
    run_probe,
    train_probe,
)

TINY = replace(
    QUICK_CONFIG, steps=12, batch_size=8, n_train=64, n_test=32, log_every=4, eval_every=8, warmup_steps=2, threads=1
)

RECORD_KEYS = {
    "kind", "task", "block", "seed", "accuracy", "steps", "macs", "params", "steps_per_s",
    "learning_curve", "status", "error",
}


def test_backbone_receptive_field_and_feature_size() -> None:
    assert backbone_receptive_field(1) == backbone_receptive_field()
    assert (backbone_receptive_field(1).size, backbone_receptive_field(1).stride) == (7, 2)
    assert (backbone_receptive_field(2).size, backbone_receptive_field(2).stride) == (11, 4)
    assert feature_size(32, 1) == 16 and feature_size(32, 2) == 8
    net = build_probe_net("identity", in_channels=1, num_classes=2, channels=32, image_size=32)
    assert net.block_output(torch.zeros(2, 1, 32, 32)).shape == (2, 32, 16, 16)
    assert net(torch.zeros(2, 1, 32, 32)).shape == (2, 2)
    with pytest.raises(ValueError, match="stage"):
        backbone_receptive_field(3)


def test_config_rejects_bad_values() -> None:
    with pytest.raises(ValueError, match="steps"):
        ProbeConfig(steps=0)
    with pytest.raises(ValueError, match="schedule"):
        ProbeConfig(schedule="linear")
    with pytest.raises(ValueError, match="seeds"):
        ProbeConfig(seeds=())
    with pytest.raises(ValueError, match="lr"):
        ProbeConfig(lr=-1.0)
    with pytest.raises(ValueError, match="no field 'stpes'"):
        probe_config("quick", stpes=3)
    with pytest.raises(ValueError, match="preset"):
        probe_config("huge")
    assert probe_config("quick", steps=7).steps == 7


def test_open_split_sizes_follow_the_task() -> None:
    generated = QUICK_CONFIG.make_task()
    assert len(generated.train) == QUICK_CONFIG.steps * QUICK_CONFIG.batch_size  # one pass, no repeats
    assert len(generated.test) == QUICK_CONFIG.n_test
    assert QUICK_CONFIG.make_task() is generated, "the latest task is cached"
    digits = probe_config("quick", task="digits", n_test=None).make_task()
    assert (len(digits.train), len(digits.test)) == (1348, 449)  # the whole fixed splits


def test_same_seed_gives_the_same_accuracy_to_the_last_digit() -> None:
    deterministic_before, threads_before = torch.are_deterministic_algorithms_enabled(), torch.get_num_threads()
    rng_before = torch.get_rng_state()
    first = train_probe(TINY, "local", 3)
    second = train_probe(TINY, "local", 3)
    assert first.status == "ok", first.error
    assert first.accuracy == second.accuracy
    assert [p.train_loss for p in first.learning_curve] == [p.train_loss for p in second.learning_curve]
    other = train_probe(TINY, "local", 4)
    assert [p.train_loss for p in other.learning_curve] != [p.train_loss for p in first.learning_curve]
    # the caller's torch settings and random state are left alone
    assert torch.are_deterministic_algorithms_enabled() == deterministic_before
    assert torch.get_num_threads() == threads_before
    assert torch.equal(torch.get_rng_state(), rng_before)


def test_quick_probe_runs_identity_and_local() -> None:
    events = []
    results = run_probe(QUICK_CONFIG, ["identity", "local"], progress_callback=events.append)
    assert [(r.block, r.seed) for r in results] == [("identity", 0), ("local", 0)]
    identity, local = results
    for result in results:
        assert result.status == "ok", result.error
        assert result.task == "same_pair" and result.steps == QUICK_CONFIG.steps
        assert 0.0 <= result.accuracy <= 1.0
        assert result.steps_per_s > 0 and result.params > 0 and result.macs > 0
        assert result.flops == 2 * result.macs or result.flops == 2 * result.macs - 1
        assert result.learning_curve[-1].step == QUICK_CONFIG.steps
        assert result.learning_curve[-1].test_accuracy == result.accuracy
        assert all(math.isfinite(p.train_loss) for p in result.learning_curve)
        record = result.to_record()
        assert RECORD_KEYS <= set(record) and record["kind"] == "probe" and record["status"] == "ok"
        json.dumps(record)  # store-friendly
    # the local block adds a 3×3 conv branch: more parameters and MACs than no block
    assert local.params > identity.params and local.macs > identity.macs
    kinds = [e.kind for e in events]
    assert kinds[0] == "start" and kinds.count("done") == 2 and "step" in kinds
    assert events[-1].result is local and events[-1].total == 2


class _CountingBlock(nn.Module):
    """A tiny trainable residual block that counts reorthogonalize() calls."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.zeros(()))
        self.calls = 0

    def forward(self, x: Tensor) -> Tensor:
        return x + self.scale * x.mean(dim=(2, 3), keepdim=True)

    def reorthogonalize(self) -> None:
        self.calls += 1


class _BrokenBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()

    def forward(self, x: Tensor) -> Tensor:
        raise RuntimeError("this block is broken on purpose")


@pytest.fixture()
def test_blocks():
    claimed = ClaimedComplexity("O(1)", n_exponent=0.0, c_exponent=0.0)
    register_block("probe_test_counting", family="test", paper="-", claimed=claimed)(_CountingBlock)
    register_block("probe_test_broken", family="test", paper="-", claimed=claimed)(_BrokenBlock)
    yield
    unregister_block("probe_test_counting")
    unregister_block("probe_test_broken")


def test_reorthogonalize_runs_after_every_optimizer_step(test_blocks, monkeypatch) -> None:
    seen = []
    original = _CountingBlock.reorthogonalize

    def spy(self) -> None:
        seen.append(float(self.scale.detach()))
        original(self)

    monkeypatch.setattr(_CountingBlock, "reorthogonalize", spy)
    result = train_probe(TINY, "probe_test_counting", 0)
    assert result.status == "ok", result.error
    assert len(seen) == TINY.steps
    assert seen[0] != 0.0, "called after the optimizer moved the weights"


def test_a_failing_block_is_recorded_and_the_run_goes_on(test_blocks) -> None:
    results = run_probe(TINY, ["probe_test_broken", "identity"])
    broken, identity = results
    assert broken.status == "error" and "broken on purpose" in broken.error and broken.accuracy is None
    assert broken.to_record()["status"] == "error"
    assert identity.status == "ok"


def _result(block: str, seed: int, accuracy: float | None, status: str = "ok") -> ProbeResult:
    return ProbeResult(
        task="same_pair", block=block, seed=seed, status=status, accuracy=accuracy, steps=10,
        learning_curve=(), steps_per_s=5.0, params=100, macs=1000, flops=2000, train_s=2.0,
        config=TINY, error=None if status == "ok" else "boom",
    )


def test_aggregate_gives_mean_and_sample_std_over_seeds() -> None:
    results = [_result("nl", 0, 0.8), _result("nl", 1, 0.9), _result("nl", 2, None, "error"), _result("local", 0, 0.5)]
    nl, local = aggregate(results)
    assert (nl.block, nl.n_seeds, nl.n_ok) == ("nl", 3, 2)
    assert nl.accuracy_mean == pytest.approx(0.85)
    assert nl.accuracy_std == pytest.approx(math.sqrt(0.005))
    assert nl.errors == ("seed 2: boom",)
    assert local.accuracy_mean == 0.5 and local.accuracy_std is None
    json.dumps(nl.to_record())
