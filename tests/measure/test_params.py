"""count_params: trainable vs total, bytes per dtype, buffers apart, sharing counted once."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from nlbench.measure.params import ParamCount, count_params


def test_conv_with_and_without_bias() -> None:
    with_bias = count_params(nn.Conv2d(3, 8, 3, bias=True))
    without_bias = count_params(nn.Conv2d(3, 8, 3, bias=False))
    assert without_bias.total == without_bias.trainable == 8 * 3 * 3 * 3
    assert with_bias.total == with_bias.trainable == 8 * 3 * 3 * 3 + 8
    assert with_bias.total_bytes == with_bias.trainable_bytes == 4 * with_bias.total
    assert with_bias.buffer_bytes == without_bias.buffer_bytes == 0


def test_frozen_parameters_count_in_total_not_trainable() -> None:
    conv = nn.Conv2d(3, 8, 3, bias=True)
    conv.bias.requires_grad_(False)
    count = count_params(conv)
    assert count.total == 8 * 27 + 8
    assert count.trainable == 8 * 27
    assert count.frozen == 8
    assert count.trainable_bytes == 4 * 8 * 27
    assert count.total_bytes == 4 * (8 * 27 + 8)


@pytest.mark.parametrize("dtype, itemsize", [(torch.float64, 8), (torch.float32, 4), (torch.float16, 2)])
def test_bytes_follow_dtype(dtype: torch.dtype, itemsize: int) -> None:
    count = count_params(nn.Linear(5, 7).to(dtype))
    assert count.total == 5 * 7 + 7
    assert count.total_bytes == itemsize * count.total
    assert count.trainable_bytes == itemsize * count.trainable


def test_buffers_are_reported_apart_from_parameters() -> None:
    bn = nn.BatchNorm2d(8)
    count = count_params(bn)
    assert count.total == 16  # weight and bias only
    # running_mean and running_var (float32) + num_batches_tracked (int64)
    assert count.buffer_bytes == 8 * 4 + 8 * 4 + 8
    assert count.total_bytes == 16 * 4


def test_shared_parameters_are_counted_once() -> None:
    linear = nn.Linear(4, 4)
    shared = nn.Sequential(linear, nn.ReLU(), linear)
    assert count_params(shared) == count_params(linear)


def test_parameterless_module_counts_zero() -> None:
    assert count_params(nn.ReLU()) == ParamCount(0, 0, 0, 0, 0)


def test_lazy_module_is_rejected_until_initialised() -> None:
    lazy = nn.LazyLinear(3)
    with pytest.raises(ValueError, match="uninitialised"):
        count_params(lazy)
    lazy(torch.zeros(2, 5))
    assert count_params(lazy).total == 5 * 3 + 3


def test_bad_input_and_inconsistent_values_are_rejected() -> None:
    with pytest.raises(TypeError, match="nn.Module"):
        count_params(torch.zeros(3))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="cannot exceed"):
        ParamCount(trainable=5, total=4, trainable_bytes=0, total_bytes=0, buffer_bytes=0)
    with pytest.raises(ValueError, match="non-negative"):
        ParamCount(trainable=0, total=-1, trainable_bytes=0, total_bytes=0, buffer_bytes=0)
