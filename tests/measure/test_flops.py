"""Tests of the FLOP/MAC counter: hand-computed counts per operator family, the audit
(free, counted, uncounted; every operator listed), complex tensors, the external
counters, and zero uncounted operators in every registered block."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils._python_dispatch import TorchDispatchMode

from nlbench.blocks import create_block, get_spec, list_blocks
from nlbench.measure.flops import (
    FFT_FORMULA,
    Cost,
    FlopCount,
    OperatorCount,
    conv_cost,
    count_flops,
    fft_cost,
    fvcore_macs,
    matmul_cost,
    op_class_of,
    pow_flops_per_element,
    ptflops_macs,
    qr_cost,
)
from nlbench.vocabulary import MAC_OP_CLASSES, OP_CLASSES, ROOT_MODULE


class Fn(nn.Module):
    """Wraps a function of the inputs as a module, so count_flops can run it."""

    def __init__(self, fn) -> None:  # type: ignore[no-untyped-def]
        super().__init__()
        self.fn = fn

    def forward(self, *inputs: Tensor) -> object:
        return self.fn(*inputs)


def op(count: FlopCount, name: str) -> OperatorCount:
    matches = [o for o in count.operators if o.op == name]
    assert matches, f"{name} did not run; ran: {[o.op for o in count.operators]}"
    return matches[0]


def flops_of(count: FlopCount, status: str = "counted") -> int:
    return sum(o.flops for o in count.operators if o.status == status)


# ----------------------------------------------------------------- convolution


def test_conv2d_without_bias_is_out_elements_times_cin_times_kernel() -> None:
    conv = nn.Conv2d(4, 6, 3, padding=1, bias=False)
    count = count_flops(conv, (torch.randn(2, 4, 5, 7),))
    # 2·6·5·7 = 420 outputs, each 4·3·3 = 36 MACs
    assert count.macs == 420 * 36 == 15120
    assert count.flops == 2 * 15120
    assert op(count, "aten.convolution.default").calls == 1


def test_conv2d_bias_adds_one_flop_per_output() -> None:
    conv = nn.Conv2d(4, 6, 3, padding=1, bias=True)
    count = count_flops(conv, (torch.randn(2, 4, 5, 7),))
    assert count.flops == 2 * 15120 + 420  # the bias: one FLOP per output, no MAC
    assert count.macs == 15120
    assert count.by_class() == {"conv": Cost(15120, 420)}


def test_grouped_and_strided_conv() -> None:
    conv = nn.Conv2d(8, 12, 3, padding=1, stride=2, groups=4, bias=False)
    count = count_flops(conv, (torch.randn(1, 8, 6, 6),))
    # output 1·12·3·3 = 108 elements, each (8/4)·9 = 18 MACs
    assert count.macs == 108 * 18


def test_transposed_and_3d_conv() -> None:
    deconv = nn.ConvTranspose2d(4, 6, 2, stride=2, bias=False)
    # stride = kernel: each of 6·6·6 outputs gets 4 input channels × 1 tap
    assert count_flops(deconv, (torch.randn(1, 4, 3, 3),)).macs == 216 * 4
    conv3d = nn.Conv3d(2, 3, 3, bias=False)
    out_elements = 1 * 3 * 2 * 3 * 4
    assert count_flops(conv3d, (torch.randn(1, 2, 4, 5, 6),)).macs == out_elements * 2 * 27


def test_conv_formula_function() -> None:
    assert conv_cost((1, 4, 5, 5), (6, 4, 3, 3), (1, 6, 5, 5)) == Cost(150 * 36, 0)
    with_bias = conv_cost((1, 4, 5, 5), (6, 4, 3, 3), (1, 6, 5, 5), bias=True)
    assert with_bias == Cost(150 * 36, 150) and with_bias.flops == 2 * 150 * 36 + 150
    # complex: 4 real MACs per complex multiply-add, 2 FLOPs per complex bias add
    assert conv_cost((1, 4, 5, 5), (6, 4, 1, 1), (1, 6, 5, 5), bias=True, complex_=True) == Cost(4 * 150 * 4, 300)


# ------------------------------------------------------------ matrix products


def test_nl_style_two_bmms_are_2_b_n2_cprime_macs() -> None:
    b, n, c = 2, 12, 5

    def attention(theta: Tensor, phi: Tensor, g: Tensor) -> Tensor:
        return torch.bmm(torch.bmm(theta, phi), g)

    count = count_flops(Fn(attention), (torch.randn(b, n, c), torch.randn(b, c, n), torch.randn(b, n, c)))
    assert count.macs == 2 * b * n * n * c
    assert op(count, "aten.bmm.default").calls == 2
    assert count.uncounted_ops == ()


def test_einsum_decomposes_to_bmm_and_is_counted() -> None:
    count = count_flops(Fn(lambda a, b: torch.einsum("bnc,bcm->bnm", a, b)), (torch.randn(3, 4, 5), torch.randn(3, 5, 6)))
    assert op(count, "aten.bmm.default").flops == 2 * 3 * 4 * 5 * 6
    assert count.macs == 3 * 4 * 5 * 6


def test_broadcast_matmul_and_linear() -> None:
    # SRL-LO style P·X: (H, H) @ (B, C, H, W)
    count = count_flops(Fn(lambda p, x: p @ x), (torch.randn(6, 6), torch.randn(2, 3, 6, 5)))
    assert count.macs == 2 * 3 * 6 * 6 * 5
    linear = nn.Linear(5, 3)
    count = count_flops(linear, (torch.randn(4, 5),))
    assert op(count, "aten.addmm.default").flops == 2 * 4 * 5 * 3 + 4 * 3
    assert op(count, "aten.addmm.default").macs == 4 * 5 * 3
    assert matmul_cost(4, 5, 3, add=True) == Cost(60, 12)
    assert matmul_cost(4, 5, 3, batch=2, complex_=True) == Cost(4 * 120, 0)


# ------------------------------------------------------------------------ FFT


def test_rfft2_and_irfft2_are_2p5_n_log2_n_per_channel() -> None:
    h, w, channels = 8, 16, 3
    n = h * w
    per_channel = 2.5 * n * math.log2(n)
    x = torch.randn(1, channels, h, w)
    forward = count_flops(Fn(lambda t: torch.fft.rfft2(t)), (x,))  # "backward": forward unscaled
    assert op(forward, "aten._fft_r2c.default").flops == channels * per_channel == 6720
    # MACs: n·log2(n) per channel (half a complex FFT's 2·n·log2(n) butterfly multiply-adds)
    assert op(forward, "aten._fft_r2c.default").macs == channels * n * 7 == 2688
    assert forward.by_class() == {"fft": Cost(2688, 6720 - 2 * 2688)}
    spectrum = torch.fft.rfft2(x)
    inverse = count_flops(Fn(lambda f: torch.fft.irfft2(f, s=(h, w), norm="forward")), (spectrum,))
    assert op(inverse, "aten._fft_c2r.default").flops == 6720
    assert inverse.uncounted_ops == ()


def test_normalised_fft_adds_one_flop_per_real_output() -> None:
    x = torch.randn(1, 2, 4, 8)
    count = count_flops(Fn(lambda t: torch.fft.rfft2(t, norm="ortho")), (x,))
    complex_outputs = 2 * 4 * 5
    assert op(count, "aten._fft_r2c.default").flops == 2 * 2.5 * 32 * 5 + 2 * complex_outputs


def test_complex_fft_is_5_n_log2_n() -> None:
    z = torch.randn(2, 16, dtype=torch.complex64)
    count = count_flops(Fn(lambda t: torch.fft.fft(t)), (z,))
    assert op(count, "aten._fft_c2c.default").flops == 2 * 5 * 16 * 4
    # 2 slices · (16/2)·4 butterflies = 64 butterflies, each 4 MACs + a complex subtract (2 FLOPs)
    assert fft_cost(16, 2, real=False) == Cost(256, 128) and fft_cost(16, 2, real=False).flops == 640
    assert op(count, "aten._fft_c2c.default").macs == 256
    assert "2.5·n·log2(n)" in FFT_FORMULA and "5·n·log2(n)" in FFT_FORMULA


# ------------------------------------------------- softmax, elementwise, norms


def test_softmax_is_five_flops_per_element() -> None:
    count = count_flops(Fn(lambda t: torch.softmax(t, dim=-1)), (torch.randn(2, 3, 4),))
    assert count.flops == 5 * 24
    assert count.macs == 0  # not a multiply-add: FLOPs only
    assert count.by_class() == {"softmax": Cost(0, 120)}


def test_elementwise_add_is_one_flop_per_output_element() -> None:
    count = count_flops(Fn(lambda a, b: a + b), (torch.randn(3, 1), torch.randn(1, 4)))
    assert count.flops == 12  # broadcast: 3·4 outputs
    assert count.macs == 0
    assert count.by_class() == {"elementwise": Cost(0, 12)}


def test_pow_reductions_and_pooling() -> None:
    x = torch.randn(1, 2, 4, 4)
    assert count_flops(Fn(lambda t: t**3), (x,)).flops == 2 * 32
    assert count_flops(Fn(lambda t: t.abs() ** 0.5), (x,)).flops == 32 + 32
    assert pow_flops_per_element(-2) == 2 and pow_flops_per_element(1) == 1
    assert count_flops(Fn(lambda t: t.sum(dim=(2, 3))), (x,)).flops == 32  # per input element
    assert count_flops(Fn(lambda t: F.max_pool2d(t, 2)), (x,)).flops == 8 * 4  # outputs × window


def test_batch_norm_eval_vs_training_and_group_norm() -> None:
    x = torch.randn(2, 4, 3, 3)
    bn = nn.BatchNorm2d(4).eval()
    assert count_flops(bn, (x,)).flops == 2 * 72
    bn.train()
    training = count_flops(bn, (x,))
    assert bn.training, "count_flops must leave the module's mode alone"
    assert flops_of(training) >= 5 * 72
    assert count_flops(nn.GroupNorm(2, 4), (x,)).flops == 5 * 72
    assert count_flops(nn.GroupNorm(2, 4), (x,)).by_class() == {"norm": Cost(0, 360)}


def test_qr_flops() -> None:
    a = torch.randn(6, 6)
    n = 6
    assert count_flops(Fn(lambda t: torch.linalg.qr(t, mode="r")), (a,)).flops == round(4 / 3 * n**3)
    reduced = count_flops(Fn(lambda t: torch.linalg.qr(t)), (a,))
    assert reduced.flops == round(8 / 3 * n**3)
    assert reduced.macs == round(8 / 3 * n**3) // 2  # Householder updates are multiply-adds
    assert qr_cost(10, 4, mode="r").flops == round(2 * 10 * 16 - 2 * 64 / 3)


# ------------------------------------------------------------------ complex


def test_complex_elementwise_ops_are_counted_in_real_flops() -> None:
    z = torch.randn(3, 4, dtype=torch.complex64)
    r = torch.randn(3, 4)
    assert count_flops(Fn(lambda a: a * a), (z,)).flops == 6 * 12
    assert count_flops(Fn(lambda a, b: a * b), (z, r)).flops == 2 * 12
    assert count_flops(Fn(lambda a: a + a), (z,)).flops == 2 * 12
    assert count_flops(Fn(lambda a: a.abs()), (z,)).flops == 4 * 12
    stacked = count_flops(Fn(lambda a: torch.cat([a.real, a.imag], 0)), (z,))
    assert stacked.flops == 0 and stacked.uncounted_ops == ()
    assert {o.status for o in stacked.operators} == {"free"}
    rebuilt = count_flops(Fn(lambda a, b: torch.complex(a, b)), (r, r))
    assert op(rebuilt, "aten.complex.default").status == "free"


# ---------------------------------------------------------------------- audit


def test_unsupported_operator_is_reported_not_zeroed_silently() -> None:
    count = count_flops(Fn(lambda a: torch.linalg.svdvals(a) + 1), (torch.randn(4, 4),))
    assert count.uncounted_ops == ("aten._linalg_svd.default",)
    svd = op(count, "aten._linalg_svd.default")
    assert svd.status == "uncounted" and svd.flops == 0
    assert op(count, "aten.add.Tensor").status == "counted"


def test_views_are_listed_as_free() -> None:
    def reshape(t: Tensor) -> Tensor:
        return t.view(2, 12).transpose(0, 1).reshape(4, 6).permute(1, 0).unsqueeze(0).contiguous()

    count = count_flops(Fn(reshape), (torch.randn(2, 3, 4),))
    assert count.flops == 0 and count.macs == 0
    assert count.operators, "the views must be listed even though they are free"
    assert all(o.status == "free" and o.flops == 0 for o in count.operators)
    assert "aten.transpose.int" in count.free_ops


class _Recorder(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.calls: dict[str, int] = {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        self.calls[str(func)] = self.calls.get(str(func), 0) + 1
        return func(*args, **(kwargs or {}))


def test_every_operator_that_ran_is_listed_and_totals_are_consistent() -> None:
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 4 * 4, 2)).eval()
    x = torch.randn(2, 3, 6, 6)
    recorder = _Recorder()
    with torch.no_grad(), recorder:
        model(x)
    count = count_flops(model, (x,))
    assert {o.op: o.calls for o in count.operators} == recorder.calls
    assert count.flops == sum(count.by_operator().values())
    assert count.macs == sum(o.macs for o in count.operators)
    classes = count.by_class()
    assert sum(c.macs for c in classes.values()) == count.macs
    assert sum(c.flops for c in classes.values()) == count.flops
    # conv 3→4, 3×3 on 6×6 → 4×4 outputs; linear 64→2; both batch 2
    assert classes["conv"] == Cost(2 * 4 * 16 * 27, 2 * 4 * 16)
    assert classes["matmul"] == Cost(2 * 64 * 2, 2 * 2)
    assert count.flops == 2 * count.macs + sum(c.extra_flops for c in classes.values())
    flops = [o.flops for o in count.operators]
    assert flops == sorted(flops, reverse=True)


def test_flop_count_rejects_inconsistent_totals_and_bad_inputs() -> None:
    with pytest.raises(ValueError, match="macs"):
        FlopCount(macs=3, flops=10, operators=())
    with pytest.raises(ValueError, match="status"):
        OperatorCount(op="aten.add.Tensor", calls=1, macs=0, flops=1, status="maybe", op_class="elementwise")
    with pytest.raises(ValueError, match="FLOPs only"):
        OperatorCount(op="aten.add.Tensor", calls=1, macs=1, flops=2, status="counted", op_class="elementwise")
    with pytest.raises(ValueError, match="2·macs"):
        OperatorCount(op="aten.mm.default", calls=1, macs=2, flops=3, status="counted", op_class="matmul")
    with pytest.raises(TypeError, match="tuple of tensors"):
        count_flops(nn.ReLU(), [torch.randn(2)])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="nn.Module"):
        count_flops(torch.relu, (torch.randn(2),))  # type: ignore[arg-type]


def test_nl_paper_configuration_matches_the_analytic_count() -> None:
    """`nl` at C=256, 64×48: MACs are exactly 2·N²·C' + 4·N·C·C' (the two products and
    the four 1×1 convolutions); softmax, BN and the biases are FLOPs only."""
    if "nl" not in list_blocks():
        pytest.skip("nl is not registered yet")
    n, c, inner = 64 * 48, 256, 128
    analytic = 2 * n * n * inner + 4 * n * c * inner
    block = create_block("nl", c).eval()
    x = torch.randn(1, c, 64, 48)
    count = count_flops(block, (x,))
    assert count.uncounted_ops == ()
    assert count.macs == analytic
    softmax = 5 * n * n
    biases = 3 * n * inner + n * c
    assert count.by_class()["softmax"] == Cost(0, softmax)
    assert count.by_class()["conv"] == Cost(4 * n * c * inner, biases)


# --------------------------------------------------------- external counters


def test_external_counters_on_a_conv_count_the_whole_batch(capsys: pytest.CaptureFixture[str]) -> None:
    conv = nn.Conv2d(4, 6, 3, padding=1)
    conv.train()
    x = torch.randn(2, 4, 5, 7)
    assert fvcore_macs(conv, (x,)) == 15120  # fvcore: conv MACs, bias ignored
    assert ptflops_macs(conv, (x,)) == 15120 + 420  # ptflops: one MAC per bias add, whole batch
    assert conv.training, "ptflops switches to eval; the helper must restore the mode"
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


def test_external_counters_on_nl_like_and_fft_modules() -> None:
    class NLLike(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.theta, self.phi, self.g = (nn.Conv2d(8, 4, 1) for _ in range(3))

        def forward(self, x: Tensor) -> Tensor:
            t = self.theta(x).flatten(2).transpose(1, 2)
            a = torch.softmax(t @ self.phi(x).flatten(2), dim=-1)
            return x + (a @ self.g(x).flatten(2).transpose(1, 2)).sum()

    x = torch.randn(1, 8, 4, 4)
    ours = count_flops(NLLike(), (x,))
    for external in (fvcore_macs(NLLike(), (x,)), ptflops_macs(NLLike(), (x,))):
        assert isinstance(external, int) and 0 < external <= ours.macs
    fft = Fn(lambda t: torch.fft.irfft2(torch.fft.rfft2(t), s=t.shape[-2:]))
    assert count_flops(fft, (x,)).macs > 0
    assert isinstance(fvcore_macs(fft, (x,)), int)


def test_external_counters_return_none_when_the_module_raises() -> None:
    def broken(t: Tensor) -> Tensor:
        raise RuntimeError("broken forward")

    assert fvcore_macs(Fn(broken), (torch.randn(2),)) is None
    assert ptflops_macs(Fn(broken), (torch.randn(2),)) is None


# --------------------------------------------------------- every registered block


def _block_cases() -> list[tuple[str, bool]]:
    cases = []
    for name in list_blocks():
        cases.append((name, False))
        if get_spec(name).supports_video:
            cases.append((name, True))
    return cases


def _build(name: str, video: bool, **options: object) -> tuple[nn.Module, Tensor]:
    """The block at 16 channels in eval mode, and an input for it."""
    if video and "frames" in get_spec(name).default_options:
        options["frames"] = 3
    block = create_block(name, 16, spatial_size=(8, 6), **options).eval()
    shape = (2, 16, 3, 8, 6) if video else (2, 16, 8, 6)
    return block, torch.randn(shape, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize(("name", "video"), _block_cases(), ids=lambda v: str(v))
def test_every_block_is_fully_counted(name: str, video: bool) -> None:
    block, x = _build(name, video)
    count = count_flops(block, (x,))
    assert count.uncounted_ops == (), f"{name}: operators without a formula: {count.uncounted_ops}"
    if name == "identity":
        assert count.macs == 0
    else:
        assert count.macs > 0


_VARIANTS = [
    ("nl", {"sub_sample": True}),
    ("nl", {"mode": "gaussian"}),
    ("nl", {"mode": "dot_product"}),
    ("a2", {"distribute_softmax": "positions"}),
    ("cgnl", {"kernel": "dot"}),
    ("snl", {"order": 2}),
    ("ns", {"stage_num": 2}),
    ("srl_fft", {"spectral_relu": False}),
    ("srl_lo", {"reorthogonalize_in_forward": True}),
]


@pytest.mark.parametrize(("name", "options"), _VARIANTS, ids=lambda v: str(v))
def test_block_variants_are_fully_counted(name: str, options: dict[str, object]) -> None:
    if name not in list_blocks() or not set(options) <= set(get_spec(name).default_options):
        pytest.skip(f"{name} with {options} is not available")
    block, x = _build(name, False, **options)
    count = count_flops(block, (x,))
    assert count.uncounted_ops == ()
    assert count.macs > 0


# --------------------------------------------------------------- attribution


class _Parent(nn.Module):
    """A child conv, then a product in the parent's own forward, then a child norm."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Conv2d(4, 2, 1, bias=False)
        self.inner = nn.Sequential(nn.BatchNorm2d(4), nn.ReLU())

    def forward(self, x: Tensor) -> Tensor:
        p = self.proj(x).flatten(2)  # (1, 2, 9)
        gram = torch.bmm(p, p.transpose(1, 2))  # (1, 2, 2): 2·2·9 MACs, in the parent
        return self.inner(x) + gram.sum()


def test_operators_are_attributed_to_the_innermost_module() -> None:
    model = _Parent().eval()
    count = count_flops(model, (torch.randn(1, 4, 3, 3),))
    modules = {m.module: m for m in count.modules}
    assert list(modules) == [ROOT_MODULE, "proj", "inner", "inner.0", "inner.1"]
    assert modules["proj"].by_class == {"conv": Cost(2 * 9 * 4, 0)} and modules["proj"].type == "Conv2d"
    assert modules["inner.0"].by_class == {"norm": Cost(0, 2 * 36)}  # eval BN: scale and shift
    assert modules["inner.1"].by_class == {"elementwise": Cost(0, 36)}
    assert modules["inner"].flops == 0  # a container does nothing itself
    # the parent's own work: the bmm, the sum (18 inputs) and the broadcast add (36 outputs)
    assert modules[ROOT_MODULE].by_class == {"matmul": Cost(36, 0), "elementwise": Cost(0, 36), "other": Cost(0, 4)}
    assert sum(m.macs for m in count.modules) == count.macs
    assert sum(m.flops for m in count.modules) == count.flops
    assert all(m.calls == 1 for m in count.modules)


def test_a_module_called_twice_accumulates_and_hooks_are_removed() -> None:
    conv = nn.Conv2d(3, 3, 1, bias=False)
    model = Fn(lambda t: conv(conv(t)))
    model.conv = conv
    count = count_flops(model, (torch.randn(1, 3, 2, 2),))
    shared = next(m for m in count.modules if m.module == "conv")
    assert shared.calls == 2 and shared.macs == 2 * 4 * 3 * 3
    assert not conv._forward_hooks and not conv._forward_pre_hooks


def test_a_forward_that_raises_leaves_no_hooks_behind() -> None:
    class Broken(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(2, 2, 1)

        def forward(self, x: Tensor) -> Tensor:
            self.conv(x)
            raise RuntimeError("boom")

    model = Broken()
    with pytest.raises(RuntimeError, match="boom"):
        count_flops(model, (torch.randn(1, 2, 2, 2),))
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())


def test_counted_calls_are_kept_per_input_shapes() -> None:
    count = count_flops(Fn(lambda a, b: torch.bmm(a, b) @ torch.bmm(a, b).transpose(1, 2)),
                        (torch.randn(2, 3, 4), torch.randn(2, 4, 5)))
    by_shape = {(s.op, s.input_shapes): s for s in count.shapes}
    first = by_shape[("aten.bmm.default", ((2, 3, 4), (2, 4, 5)))]
    assert first.calls == 2 and first.macs == 2 * 2 * 3 * 4 * 5
    assert sum(s.macs for s in count.shapes) == count.macs
    assert sum(s.flops for s in count.shapes) == count.flops


def test_record_columns_carry_the_attribution() -> None:
    columns = count_flops(_Parent().eval(), (torch.randn(1, 4, 3, 3),)).columns()
    assert set(columns["cost_by_class"]) <= set(OP_CLASSES)
    assert columns["cost_by_class"]["matmul"] == {"macs": 36, "flops": 72}
    assert sum(m["flops"] for m in columns["cost_by_module"]) == columns["flops"]
    assert all(o["macs"] == 0 for o in columns["operators"] if o["op_class"] not in MAC_OP_CLASSES)


@pytest.mark.parametrize(("name", "expected"), [
    ("aten.convolution.default", "conv"), ("aten::conv2d", "conv"), ("aten::mkldnn_convolution", "conv"),
    ("aten::einsum", "matmul"), ("aten.bmm.default", "matmul"), ("aten::fft_rfft2", "fft"),
    ("aten::_fft_c2r", "fft"), ("aten::_softmax", "softmax"), ("aten::add_", "elementwise"),
    ("aten::batch_norm", "norm"), ("aten::native_batch_norm_backward", "norm"),
    ("aten::convolution_backward", "conv"), ("aten::copy_", "other"), ("aten::sum", "other"),
    ("nlbench.something", "other"),
])
def test_operator_classes_by_name(name: str, expected: str) -> None:
    assert op_class_of(name) == expected
