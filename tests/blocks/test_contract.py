"""The contract every built-in block keeps: shapes, dtypes, batch sizes, identity at
initialisation, finite gradients, and the receptive field its family promises."""

from __future__ import annotations

import pytest
import torch

from nlbench.blocks import create_block, get_spec, list_blocks
from nlbench.case import Case
from tests.conftest import perturb_parameters

BLOCKS = list_blocks()
VIDEO_BLOCKS = [name for name in BLOCKS if get_spec(name).supports_video]
GLOBAL_BLOCKS = [name for name in BLOCKS if get_spec(name).family != "baseline"]
CHANNELS = 32


def build(name: str, height: int, width: int, *, frames: int | None = None, dtype: str = "float32", **options):
    case = Case(name, CHANNELS, height, width, frames=frames, dtype=dtype, options=Case.normalise_options(options))
    return case.build()


def test_all_ten_builtin_blocks_are_registered() -> None:
    expected = {"nl", "a2", "cgnl", "rcca", "ns", "snl", "srl_fft", "srl_lo", "identity", "local"}
    assert expected <= set(BLOCKS)


@pytest.mark.parametrize("name", BLOCKS)
@pytest.mark.parametrize("batch", [1, 4])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_image_shape_odd_sizes_and_identity_at_init(name: str, batch: int, dtype: str) -> None:
    block = build(name, 15, 11, dtype=dtype).eval()
    x = torch.randn(batch, CHANNELS, 15, 11, dtype=getattr(torch, dtype))
    with torch.no_grad():
        y = block(x)
    assert y.shape == x.shape and y.dtype == x.dtype
    assert torch.equal(y, x), f"{name} is not the identity at initialisation"


@pytest.mark.parametrize("name", VIDEO_BLOCKS)
@pytest.mark.parametrize("batch", [1, 4])
def test_video_shape_and_identity_at_init(name: str, batch: int) -> None:
    block = build(name, 7, 5, frames=3).eval()
    x = torch.randn(batch, CHANNELS, 3, 7, 5)
    with torch.no_grad():
        y = block(x)
    assert y.shape == x.shape
    assert torch.equal(y, x)


@pytest.mark.parametrize("name", VIDEO_BLOCKS)
def test_video_output_changes_once_perturbed(name: str) -> None:
    block = build(name, 7, 5, frames=3, dtype="float64").eval()
    perturb_parameters(block)
    x = torch.randn(2, CHANNELS, 3, 7, 5, dtype=torch.float64)
    with torch.no_grad():
        y = block(x)
    assert y.shape == x.shape and torch.isfinite(y).all()
    if name != "identity":
        assert not torch.allclose(y, x)


@pytest.mark.parametrize("name", BLOCKS)
def test_backward_gives_finite_gradients_for_every_parameter(name: str) -> None:
    block = build(name, 9, 7, dtype="float64").train()
    perturb_parameters(block)
    x = torch.randn(2, CHANNELS, 9, 7, dtype=torch.float64, requires_grad=True)
    y = block(x)
    (y * torch.randn_like(y)).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    for pname, parameter in block.named_parameters():
        if not parameter.requires_grad:
            continue
        assert parameter.grad is not None, f"{name}.{pname} got no gradient"
        assert torch.isfinite(parameter.grad).all(), f"{name}.{pname} has non-finite gradient"


def input_gradient_support(block: torch.nn.Module, height: int, width: int, row: int, col: int) -> torch.Tensor:
    """Boolean (H, W) map of the input positions the output at (row, col) depends on."""
    x = torch.randn(1, CHANNELS, height, width, dtype=torch.float64, requires_grad=True)
    y = block(x)
    y[0, :, row, col].sum().backward()
    return x.grad.abs().sum(dim=(0, 1)) > 0


@pytest.mark.parametrize("name", GLOBAL_BLOCKS)
def test_global_blocks_reach_every_input_position(name: str) -> None:
    block = build(name, 9, 7, dtype="float64").eval()
    perturb_parameters(block)
    support = input_gradient_support(block, 9, 7, row=2, col=3)
    assert bool(support.all()), f"{name} reaches only {int(support.sum())} of {support.numel()} positions"


def test_local_block_reaches_only_its_window() -> None:
    block = build("local", 9, 7, dtype="float64").eval()
    perturb_parameters(block)
    support = input_gradient_support(block, 9, 7, row=4, col=3)
    expected = torch.zeros(9, 7, dtype=torch.bool)
    expected[3:6, 2:5] = True
    assert torch.equal(support, expected)


def test_identity_reaches_only_itself() -> None:
    block = build("identity", 9, 7, dtype="float64")
    support = input_gradient_support(block, 9, 7, row=4, col=3)
    assert int(support.sum()) == 1 and bool(support[4, 3])


def test_rcca_one_recurrence_sees_its_row_and_column_two_see_everything() -> None:
    one = build("rcca", 9, 7, dtype="float64", recurrence=1).eval()
    perturb_parameters(one)
    # conv_a and conv_b are 3×3, so one recurrence reaches a criss-cross band three
    # wide around the row and column, widened by conv_a's and conv_b's 3×3 windows.
    support = input_gradient_support(one, 9, 7, row=4, col=3)
    band = torch.zeros(9, 7, dtype=torch.bool)
    band[2:7, :] = True
    band[:, 1:6] = True
    assert torch.equal(support, band), "one recurrence must reach only the (widened) row and column"
    two = build("rcca", 9, 7, dtype="float64", recurrence=2).eval()
    perturb_parameters(two)
    assert bool(input_gradient_support(two, 9, 7, row=4, col=3).all())


@pytest.mark.parametrize("name", BLOCKS)
def test_spec_is_complete(name: str) -> None:
    spec = get_spec(name)
    assert spec.name == name and spec.family and spec.paper
    assert spec.claimed.text.startswith("O(")
    assert spec.claimed.n_exponent >= 0 and spec.claimed.c_exponent >= 0


def test_wrong_channel_count_is_a_clear_error() -> None:
    block = create_block("nl", 32)
    with pytest.raises(ValueError, match="channels"):
        block(torch.randn(1, 16, 4, 4))
