"""The blocks' exact alternative implementations (option ``impl``): each computes the
same function as the dense form — forward and gradients, in float64, images and video —
from the same ``state_dict``, is counted without uncounted operators, and carries its
own claimed complexity in the registry."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from nlbench.blocks import BlockError, create_block, get_spec
from nlbench.cli import main
from nlbench.measure.flops import count_flops
from tests.conftest import randomise

C = 8
# (block, options, alternative impl)
ALTERNATIVES = [
    ("snl", {}, "factorized"),
    ("snl", {"order": 2}, "factorized"),
    ("snl", {"order": 3}, "factorized"),
    ("nl", {"mode": "dot_product"}, "factorized"),
    ("nl", {"mode": "dot_product", "sub_sample": True}, "factorized"),
    ("nl", {}, "sdpa"),
    ("nl", {"mode": "gaussian"}, "sdpa"),
    ("nl", {"sub_sample": True}, "sdpa"),
    ("ns", {}, "sdpa"),
    ("ns", {"stage_num": 2}, "sdpa"),
]
SHAPES = [(2, C, 5, 6), (1, C, 2, 4, 4)]


def _pair(name: str, options: dict, impl: str, train: bool) -> tuple[nn.Module, nn.Module]:
    dense = create_block(name, C, **options).double()
    randomise(dense, seed=3)
    alternative = create_block(name, C, impl=impl, **options).double()
    alternative.load_state_dict(dense.state_dict())  # the same parameters, by name and shape
    return (dense.train(), alternative.train()) if train else (dense.eval(), alternative.eval())


def _grads(module: nn.Module, x: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
    x = x.clone().requires_grad_(True)
    module.zero_grad()
    (module(x) * torch.linspace(-1, 1, x.numel(), dtype=x.dtype).reshape(x.shape)).sum().backward()
    return x.grad, {n: p.grad.clone() for n, p in module.named_parameters()}


@pytest.mark.parametrize(("name", "options", "impl"), ALTERNATIVES, ids=lambda v: str(v))
@pytest.mark.parametrize("shape", SHAPES, ids=["image", "video"])
def test_alternative_equals_dense_forward_and_gradients(name: str, options: dict, impl: str,
                                                        shape: tuple[int, ...]) -> None:
    x = torch.randn(shape, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    dense, alternative = _pair(name, options, impl, train=False)
    expected = dense(x)
    assert (expected - x).abs().max() > 1e-2, "the test must exercise the non-local branch"
    torch.testing.assert_close(alternative(x), expected, rtol=1e-10, atol=1e-12)
    dense, alternative = _pair(name, options, impl, train=True)
    x_grad, p_grads = _grads(dense, x)
    alt_x_grad, alt_p_grads = _grads(alternative, x)
    torch.testing.assert_close(alt_x_grad, x_grad, rtol=1e-9, atol=1e-11)
    assert p_grads.keys() == alt_p_grads.keys()
    for key in p_grads:
        torch.testing.assert_close(alt_p_grads[key], p_grads[key], rtol=1e-9, atol=1e-11, msg=key)


@pytest.mark.parametrize(("name", "options", "impl"), ALTERNATIVES, ids=lambda v: str(v))
def test_alternative_is_fully_counted_and_factorized_forms_do_fewer_macs(name: str, options: dict,
                                                                          impl: str) -> None:
    x = torch.randn(1, 16, 16, 16)
    dense = create_block(name, 16, **options).eval()
    alternative = create_block(name, 16, impl=impl, **options).eval()
    counted, reference = count_flops(alternative, (x,)), count_flops(dense, (x,))
    assert counted.uncounted_ops == ()
    if impl == "factorized":
        assert counted.macs < reference.macs
    else:  # fused attention does the same products: the same MACs (stage_num > 1 redoes the softmax)
        assert counted.macs >= reference.macs


def test_factorized_snl_macs_are_linear_in_n_by_hand() -> None:
    """Factorised SNL, order 1: θ, φ, g (3·N·C·C'), W₀, W₁ (2·N·C'·C); the degrees by
    linearity (two N·C' products) and one A·Z through the factors, (B, C', N)·(N, 2C')
    then ·(2C', N): 2·N·C'·2C'."""
    c, inner, h, w = 16, 8, 12, 10
    n = h * w
    count = count_flops(create_block("snl", c, impl="factorized").eval(), (torch.randn(1, c, h, w),))
    assert count.by_class()["conv"].macs == 5 * n * c * inner
    assert count.by_class()["matmul"].macs == 2 * n * inner + 2 * n * inner * 2 * inner
    assert all(shape[-2:] != (n, n) for s in count.shapes for shape in s.input_shapes), "no N×N operand"


def test_registry_carries_each_implementations_claim() -> None:
    snl = get_spec("snl")
    assert [i.name for i in snl.implementations] == ["dense", "factorized"]
    assert snl.claimed_for({"impl": "dense"}).n_exponent == 2
    factorized = snl.claimed_for({"impl": "factorized"})
    assert (factorized.n_exponent, factorized.c_exponent) == (1.0, 2.0)
    assert not snl.dense_affinity_for({"impl": "factorized"}) and snl.dense_affinity_for({})
    nl = get_spec("nl")
    assert nl.claimed_for({"impl": "sdpa"}).n_exponent == 2, "fused attention still does N² work"
    assert not nl.dense_affinity_for({"impl": "sdpa"}), "but holds no N×N matrix"
    assert get_spec("a2").claimed_for({}) == get_spec("a2").claimed


@pytest.mark.parametrize(("name", "options", "message"), [
    ("nl", {"impl": "factorized"}, "exact only for mode='dot_product'"),
    ("nl", {"impl": "sdpa", "mode": "dot_product"}, "exact only for mode="),
    ("snl", {"impl": "sdpa"}, "unknown impl 'sdpa'"),
    ("snl", {"impl": "factorised"}, "Did you mean 'factorized'"),
])
def test_an_impl_that_does_not_apply_is_refused(name: str, options: dict, message: str) -> None:
    with pytest.raises(BlockError, match=message):
        create_block(name, C, **options)


def test_list_verbose_shows_the_implementations(capsys: pytest.CaptureFixture[str], wide_console) -> None:
    assert main(["list", "snl", "-v"]) == 0
    out = capsys.readouterr().out
    assert "factorized" in out and "O(C′²·HW)" in out


@pytest.mark.parametrize("name", ["nl", "ns"])
def test_sdpa_takes_the_fused_kernel_and_forms_no_n_by_n_matrix(name: str) -> None:
    """CPU's flash kernel needs 4-D inputs with a dense last dimension; any other layout
    falls back to the math path, which forms the N×N matrix after all."""
    h = w = 12
    n = h * w
    count = count_flops(create_block(name, 16, impl="sdpa").eval(), (torch.randn(1, 16, h, w),))
    assert any("_scaled_dot_product_flash_attention_for_cpu" in o.op for o in count.operators)
    assert all(shape[-2:] != (n, n) for s in count.shapes for shape in s.input_shapes)
