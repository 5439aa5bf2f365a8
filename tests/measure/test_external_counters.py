"""Tests of the public counters' by-class split (nlbench.measure.external_counters):
hand-computed counts per class for fvcore and ptflops, the classes of every handle,
patched function and hooked module type they know, the splits summing to their
totals on every registered block, each counter running once per case, and ptflops'
tables and the module's train/eval flags left as they were."""

from __future__ import annotations

import json
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nlbench.blocks import create_block, get_spec, list_blocks
from nlbench.measure import external_counters
from nlbench.measure.external_counters import (
    CounterMacs,
    PublicCount,
    count_with_public_counters,
    fvcore_count,
    fvcore_handle_class,
    ptflops_count,
    ptflops_function_class,
    ptflops_module_class,
)
from nlbench.vocabulary import OP_CLASSES


class Mixed(nn.Module):
    """A patched matmul, F.softmax, torch.add, an nn.ReLU (which calls the patched
    F.relu), a Linear, a BatchNorm1d and F.interpolate: one of each way ptflops counts."""

    def __init__(self) -> None:
        super().__init__()
        self.relu = nn.ReLU()
        self.linear = nn.Linear(5, 3)
        self.bn = nn.BatchNorm1d(4)

    def forward(self, x: Tensor) -> Tensor:  # x: (2, 4, 5)
        y = torch.add(F.softmax(torch.matmul(x, torch.ones(5, 6)), dim=-1), 1.0)
        z = self.bn(self.linear(self.relu(x)))
        w = F.interpolate(x, scale_factor=2)
        return y.sum() + z.sum() + w.sum()


def test_ptflops_by_class_separates_modules_and_patched_functions() -> None:
    module = Mixed().train()
    count = ptflops_count(module, (torch.randn(2, 4, 5),))
    assert count is not None
    matmul = 2 * 4 * 5 * 6 + 2 * 4 * (5 * 3 + 3)  # torch.matmul; Linear with one MAC per bias add
    elementwise = 2 * 4 * 6 + 2 * (2 * 4 * 5)  # torch.add; ReLU counted by its hook and again as F.relu
    assert count.by_class == {"matmul": matmul, "softmax": 2 * 4 * 6, "elementwise": elementwise,
                              "norm": 2 * (2 * 4 * 3), "other": 2 * 4 * 5 * 2}  # BN affine: 2 per element
    assert sum(count.by_class.values()) == count.total
    assert module.training and all(m.training for m in module.modules())


def test_fvcore_by_class_from_its_handles() -> None:
    module = Mixed().train()
    count = fvcore_count(module, (torch.randn(2, 4, 5),))
    assert count is not None
    # matmul and linear (bias ignored); batch norm in training: 5 per element; nearest 1-d interpolation,
    # softmax, add and relu have no handle
    assert count.by_class == {"matmul": 2 * 4 * 5 * 6 + 2 * 4 * 5 * 3, "norm": 5 * 2 * 4 * 3}
    assert count.total == sum(count.by_class.values())


def test_a_conv_by_class(capsys: pytest.CaptureFixture[str]) -> None:
    conv = nn.Conv2d(4, 6, 3, padding=1)
    x = torch.randn(2, 4, 5, 7)
    counts = count_with_public_counters(conv, (x,))
    macs = 2 * 5 * 7 * 6 * 4 * 9
    assert counts.fvcore_by_class == {"conv": macs}
    assert counts.ptflops_by_class == {"conv": macs + 2 * 6 * 5 * 7}  # one MAC per bias add
    assert capsys.readouterr().out == ""


def test_every_fvcore_default_handle_has_its_class() -> None:
    from fvcore.nn.flop_count import _DEFAULT_SUPPORTED_OPS

    expected = {"addmm": "matmul", "bmm": "matmul", "_convolution": "conv", "einsum": "matmul", "matmul": "matmul",
                "mm": "matmul", "linear": "matmul", "batch_norm": "norm", "group_norm": "norm", "layer_norm": "norm",
                "instance_norm": "norm", "upsample_nearest2d": "other", "upsample_bilinear2d": "other",
                "adaptive_avg_pool2d": "other", "grid_sampler": "other"}
    names = {name.split("::")[-1] for name in _DEFAULT_SUPPORTED_OPS}
    assert names <= set(expected), f"fvcore has new handles: {sorted(names - set(expected))}"
    for name in names:
        assert fvcore_handle_class(name) == expected[name], name
    assert fvcore_handle_class("conv") == "conv"  # the name conv_flop_jit reports its count under
    assert fvcore_handle_class("some_new_op") == "other"


def test_every_ptflops_function_and_module_type_has_its_class() -> None:
    from ptflops import pytorch_ops

    matmul = {"linear", "matmul", "mm", "bmm", "addmm", "baddbmm"}
    elementwise = {"relu", "prelu", "elu", "relu6", "gelu", "silu", "mul", "add"}
    softmax = {"softmax"}
    functions = [*pytorch_ops.FUNCTIONAL_MAPPING, *pytorch_ops.TENSOR_OPS_MAPPING]
    for function in functions:
        name = function.__name__
        expected = ("matmul" if name in matmul else "elementwise" if name in elementwise
                    else "softmax" if name in softmax else "other")  # pooling, interpolate, upsample
        assert ptflops_function_class(name) == expected, name
    assert ptflops_function_class("einsum") == "matmul"
    types = {nn.Conv2d: "conv", nn.ConvTranspose2d: "conv", nn.Linear: "matmul", nn.MultiheadAttention: "matmul",
             nn.LSTM: "matmul", nn.GRUCell: "matmul", nn.BatchNorm2d: "norm", nn.InstanceNorm2d: "norm",
             nn.GroupNorm: "norm", nn.LayerNorm: "norm", nn.ReLU: "elementwise", nn.LeakyReLU: "elementwise",
             nn.GELU: "elementwise", nn.Softmax: "softmax", nn.MaxPool2d: "other", nn.AdaptiveAvgPool2d: "other",
             nn.Upsample: "other"}
    for module_type, expected in types.items():
        assert ptflops_module_class(module_type) == expected, module_type
    for module_type in pytorch_ops.MODULES_MAPPING:
        assert ptflops_module_class(module_type) in OP_CLASSES


def _small_block(name: str) -> tuple[nn.Module, Tensor]:
    spec = get_spec(name)
    options = dict(spec.default_options)
    torch.manual_seed(0)
    block = create_block(name, 16, spatial_size=(8, 8)) if spec.needs_size(options) else create_block(name, 16)
    return block.eval(), torch.randn(1, 16, 8, 8)


@pytest.mark.parametrize("name", list_blocks())
def test_the_splits_sum_to_the_totals_on_every_block(name: str) -> None:
    block, x = _small_block(name)
    counts = count_with_public_counters(block, (x,))
    for tool in ("fvcore", "ptflops"):
        total, by_class = getattr(counts, f"{tool}_macs"), getattr(counts, f"{tool}_by_class")
        assert total is not None and by_class is not None, tool
        assert sum(by_class.values()) == total and set(by_class) <= set(OP_CLASSES), (tool, by_class)


def test_each_counter_runs_once_per_case(monkeypatch: pytest.MonkeyPatch) -> None:
    import fvcore.nn
    import ptflops

    calls = {"fvcore": 0, "ptflops": 0}
    analysis, complexity = fvcore.nn.FlopCountAnalysis, ptflops.get_model_complexity_info

    def counting_analysis(*args: Any, **kwargs: Any) -> Any:
        calls["fvcore"] += 1
        return analysis(*args, **kwargs)

    def counting_complexity(*args: Any, **kwargs: Any) -> Any:
        calls["ptflops"] += 1
        return complexity(*args, **kwargs)

    monkeypatch.setattr(fvcore.nn, "FlopCountAnalysis", counting_analysis)
    monkeypatch.setattr(ptflops, "get_model_complexity_info", counting_complexity)
    block, x = _small_block("srl_lo")
    counts = count_with_public_counters(block, (x,))
    assert calls == {"fvcore": 1, "ptflops": 1}
    assert counts.fvcore_by_class is not None and counts.ptflops_by_class is not None


def test_ptflops_tables_and_functions_are_restored_even_when_the_forward_fails() -> None:
    from ptflops import pytorch_ops

    tables = (pytorch_ops.FUNCTIONAL_MAPPING, pytorch_ops.TENSOR_OPS_MAPPING, pytorch_ops.MODULES_MAPPING)
    before = [dict(table) for table in tables]
    functions = (F.relu, F.softmax, torch.matmul, torch.Tensor.matmul, torch.add)

    class Broken(nn.Module):
        def forward(self, x: Tensor) -> Tensor:
            torch.matmul(x, x)
            raise RuntimeError("broken forward")

    assert ptflops_count(Broken(), (torch.randn(3, 3),)) is None
    assert fvcore_count(Broken(), (torch.randn(3, 3),)) is None
    assert ptflops_count(Mixed(), (torch.randn(2, 4, 5),)) is not None
    assert [dict(table) for table in tables] == before
    assert (F.relu, F.softmax, torch.matmul, torch.Tensor.matmul, torch.add) == functions


def test_a_split_that_does_not_add_up_is_dropped_not_forced() -> None:
    assert external_counters._split(10, {"conv": 4.0, "matmul": 5.0}) == PublicCount(10)
    assert external_counters._split(9, {"conv": 4.0, "matmul": 5.0, "norm": 0.0}) == PublicCount(
        9, {"conv": 4, "matmul": 5})
    with pytest.raises(ValueError, match="sums to"):
        PublicCount(3, {"conv": 2})
    with pytest.raises(ValueError, match="unknown operator classes"):
        PublicCount(3, {"bogus": 3})


def test_counter_macs_columns_are_json_objects() -> None:
    counts = CounterMacs(10, None, {"conv": 4, "matmul": 6}, None)
    columns = counts.columns()
    assert columns == {"fvcore_macs": 10, "ptflops_macs": None,
                       "fvcore_macs_by_class": {"conv": 4, "matmul": 6}, "ptflops_macs_by_class": None}
    assert json.loads(json.dumps(columns)) == columns
    with pytest.raises(ValueError, match="must sum to"):
        CounterMacs(10, None, {"conv": 4}, None)
    with pytest.raises(ValueError, match="must sum to"):
        CounterMacs(None, None, {"conv": 4}, None)
