"""measure_memory really measures: a known N×N temporary shows, doubling N quadruples
it, backward adds, inputs and parameters allocated before the call are baseline."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from nlbench.measure.memory import CPU_METHOD, MemoryResult, measure_memory, peak_bytes_from_deltas

B, C = 2, 4


class Gram(nn.Module):
    """Builds the B×N×N float32 affinity X^T X, then reduces it to a small B×N output."""

    def forward(self, x: Tensor) -> Tensor:
        f = x.flatten(2)
        return (f.transpose(1, 2) @ f).amax(dim=-1)


class Doubler(nn.Module):
    """Allocates nothing but its output."""

    def forward(self, x: Tensor) -> Tensor:
        return x.mul(2.0)


def gram_bytes(h: int, w: int) -> int:
    n = h * w
    return B * n * n * 4


def test_known_affinity_matrix_is_seen() -> None:
    result = measure_memory(Gram(), (torch.randn(B, C, 16, 16),))
    assert result.method == CPU_METHOD
    assert result.peak_fwd_bytes is not None
    expected = gram_bytes(16, 16)  # 512 KiB
    assert expected <= result.peak_fwd_bytes <= 1.25 * expected


def test_peak_grows_fourfold_when_positions_double() -> None:
    small = measure_memory(Gram(), (torch.randn(B, C, 16, 16),), backward=False).peak_fwd_bytes
    large = measure_memory(Gram(), (torch.randn(B, C, 16, 32),), backward=False).peak_fwd_bytes
    assert small is not None and large is not None
    assert 3.5 <= large / small <= 4.5


def test_forward_backward_peak_is_at_least_forward_peak() -> None:
    conv = nn.Sequential(nn.Conv2d(C, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, C, 1))
    for module in (Gram(), conv):
        result = measure_memory(module, (torch.randn(B, C, 16, 16),))
        assert result.peak_fwd_bytes is not None and result.peak_fwdbwd_bytes is not None
        assert result.peak_fwdbwd_bytes >= result.peak_fwd_bytes > 0


def test_output_only_module_shows_about_the_output_size() -> None:
    x = torch.randn(B, C, 32, 32)
    output_bytes = x.numel() * 4
    peak = measure_memory(Doubler(), (x,), backward=False).peak_fwd_bytes
    assert peak is not None
    assert output_bytes <= peak <= output_bytes + 1024


def test_inputs_and_parameters_allocated_before_the_call_are_baseline() -> None:
    big = torch.randn(B, C, 128, 128)  # 512 KiB input, allocated before the call
    reduced = measure_memory(nn.Flatten(0), (big,), backward=False)  # a view: allocates nothing
    assert reduced.peak_fwd_bytes == 0
    linear = nn.Linear(512, 512, bias=False)  # 1 MiB of weights
    weight_bytes = 512 * 512 * 4
    x = torch.randn(2, 512)
    result = measure_memory(linear, (x,))
    assert result.peak_fwd_bytes is not None and result.peak_fwdbwd_bytes is not None
    assert result.peak_fwd_bytes < weight_bytes / 100  # only the 2×512 output
    # backward allocates the weight's gradient: counted in forward+backward
    assert weight_bytes <= result.peak_fwdbwd_bytes <= 1.25 * weight_bytes


def test_backward_false_is_not_measured_and_state_is_restored() -> None:
    module = nn.Sequential(nn.Conv2d(C, C, 1), nn.BatchNorm2d(C)).train()
    bn = module[1]
    mean_before = bn.running_mean.clone()
    skipped = measure_memory(module, (torch.randn(B, C, 8, 8),), backward=False)
    assert skipped.peak_fwdbwd_bytes is None and skipped.peak_fwd_bytes is not None
    measure_memory(module, (torch.randn(B, C, 8, 8),))
    assert module.training and bn.training
    assert torch.equal(bn.running_mean, mean_before)
    assert all(p.grad is None for p in module.parameters())


def test_peak_of_running_sum() -> None:
    assert peak_bytes_from_deltas([]) == 0
    assert peak_bytes_from_deltas([100, 50, -100, 30, -80]) == 150
    assert peak_bytes_from_deltas([-64, 32, 16]) == 0  # frees of older memory do not go below 0


def test_bad_input_is_rejected() -> None:
    with pytest.raises(ValueError, match="cpu and cuda only"):
        measure_memory(Doubler(), (torch.empty(2, 3, device="meta"),))
    with pytest.raises(TypeError, match="inputs"):
        measure_memory(Doubler(), ("not a tensor",))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="non-negative"):
        MemoryResult(peak_fwd_bytes=-1, peak_fwdbwd_bytes=None, method=CPU_METHOD)
    with pytest.raises(ValueError, match="method"):
        MemoryResult(peak_fwd_bytes=1, peak_fwdbwd_bytes=None, method="")
