"""The probe config: checks, presets, the task data it builds, and the identity of a
block × seed (the sweep's hashing)."""

from __future__ import annotations

import pytest

from nlbench.case import Case, stable_id
from nlbench.probes.config import QUICK_CONFIG, ProbeConfig, probe_config


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


def test_unknown_names_get_close_suggestions() -> None:
    with pytest.raises(ValueError, match="unknown probe task 'pathfnder'. Did you mean 'pathfinder'"):
        ProbeConfig(task="pathfnder")
    with pytest.raises(ValueError, match="Did you mean 'steps'"):
        probe_config("quick", stpes=3)
    with pytest.raises(ValueError, match="Did you mean 'quick'"):
        probe_config("quik")


def test_device_and_dtype_are_config_fields() -> None:
    assert (ProbeConfig().device, ProbeConfig().dtype) == ("cpu", "float32")
    assert ProbeConfig(device="cuda:1", dtype="float64").device == "cuda:1"
    with pytest.raises(ValueError, match="device"):
        ProbeConfig(device="tpu")
    with pytest.raises(ValueError, match="dtype"):
        ProbeConfig(dtype="float8")
    config = probe_config("quick", device="cuda", dtype="bfloat16")
    assert ProbeConfig.from_dict(config.to_dict()) == config
    old_manifest = {k: v for k, v in QUICK_CONFIG.to_dict().items() if k not in ("device", "dtype")}
    assert ProbeConfig.from_dict(old_manifest) == QUICK_CONFIG


def test_open_split_sizes_follow_the_task() -> None:
    generated = QUICK_CONFIG.make_task()
    assert len(generated.train) == QUICK_CONFIG.steps * QUICK_CONFIG.batch_size  # one pass, no repeats
    assert len(generated.test) == QUICK_CONFIG.n_test
    assert QUICK_CONFIG.make_task() is generated, "the latest task is cached"
    digits = probe_config("quick", task="digits", n_test=None, n_validation=None).make_task()
    assert (len(digits.train), len(digits.validation), len(digits.test)) == (1213, 135, 449)  # a tenth held out


def test_a_probe_case_is_the_block_case_plus_task_and_seed() -> None:
    config = probe_config("quick", channels=16, stage=2, device="cuda", dtype="float64")
    case = config.probe_case("nl", 3, {"reduction": 2})
    assert case.case == Case("nl", 16, 8, 8, batch=config.batch_size, dtype="float64", device="cuda",
                             options=(("reduction", 2),))
    assert (case.block, case.seed, case.task, case.options) == ("nl", 3, "same_pair", {"reduction": 2})
    assert case.case_id == stable_id({**case.case.to_dict(), "kind": "probe", "task": "same_pair", "seed": 3})
    assert len(case.case_id) == len(case.case.case_id) == 16
    assert hash(case) == hash(config.probe_case("nl", 3, {"reduction": 2}))
    others = {config.probe_case("nl", 4, {"reduction": 2}).case_id, config.probe_case("nl", 3).case_id,
              probe_config("quick", task="digits", channels=16, stage=2, device="cuda",
                           dtype="float64").probe_case("nl", 3, {"reduction": 2}).case_id,
              case.case.case_id}
    assert case.case_id not in others and len(others) == 4
    assert case.label == "nl reduction=2 seed 3"


def test_case_ids_are_unchanged_by_the_shared_helper() -> None:
    case = Case("nl", 64, 32, 32, options=(("a", 1),))
    assert case.case_id == stable_id(case.to_dict()) == "989c8d8562920801"
