"""FLOP and MAC counting with an audit of every operator that ran.

One forward pass runs under a :class:`~torch.utils._python_dispatch.TorchDispatchMode`
that sees every ATen operator after autograd and composite decomposition (``einsum``
and ``matmul`` arrive as ``bmm``/``mm``, ``conv2d`` as ``convolution``, ``linear`` as
``addmm``). Each operator is classified as

* **counted** — a formula below gives its FLOPs from the shapes and arguments;
* **free** — data movement and bookkeeping (views, reshapes, transposes, ``t``,
  ``select``/``slice``/``expand``, ``clone``/``copy_``/``contiguous``, ``cat``/``stack``,
  gathers and padding, tensor creation including random draws, dtype conversion,
  ``view_as_real``/``complex``, nearest-neighbour upsampling, ``tril``/``triu`` masks …)
  cost nothing **by convention**: this counter measures arithmetic, not memory traffic;
* **uncounted** — anything else. It is listed in :attr:`FlopCount.uncounted_ops` and
  never silently taken as zero, so a total with uncounted operators is a lower bound
  and says so.

Conventions (they must not drift; see ``shared/spec/harness.md``)
-----------------------------------------------------------------
* **FLOPs = 2 · MACs, by definition, for every total.** A multiply-add is 1 MAC = 2
  FLOPs. For operators that are not multiply-adds (softmax, elementwise, norms,
  FFTs …) the formulas give FLOPs and their MACs are *defined* as FLOPs / 2. The
  per-operator audit is kept in FLOPs (integers; an FFT call's count is rounded to the
  nearest integer); ``FlopCount.flops`` is their exact sum and ``FlopCount.macs`` is
  ``flops / 2``, rounded up to a whole MAC when ``flops`` is odd (half a MAC at most).
* Convolution and matrix-product **bias additions** are counted: one FLOP per output
  element (so half a MAC each). fvcore ignores them; ptflops counts one MAC each.
* Complex arithmetic is counted in real FLOPs: complex·complex multiply 6, divide 11,
  complex·real multiply or divide 2, add/subtract 2, ``abs`` 4, any other complex
  elementwise op 2 (one per real part: a lower bound for transcendental ops); a
  complex matrix product costs 4 real MACs per complex multiply-add.
* See :data:`FFT_FLOPS_FORMULA` for FFTs; the formulas of every other family are in
  the docstrings of the ``*_flops`` functions below.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, Sequence

import torch
from torch import Tensor, nn
from torch.utils._python_dispatch import TorchDispatchMode

from nlbench.measure.external_counters import fvcore_macs, ptflops_macs

__all__ = [
    "FFT_FLOPS_FORMULA",
    "FlopCount",
    "OperatorCount",
    "classify_operator",
    "conv_flops",
    "count_flops",
    "elementwise_flops",
    "fft_flops",
    "fvcore_macs",
    "matmul_flops",
    "norm_flops",
    "pool_flops",
    "ptflops_macs",
    "qr_flops",
    "reduction_flops",
    "softmax_flops",
    "attention_flops",
]

COUNTED = "counted"
FREE = "free"
UNCOUNTED = "uncounted"

FFT_FLOPS_FORMULA = (
    "FFT over n = product of the transformed dimensions, per batch/channel slice: "
    "complex FFT (fft/ifft, aten._fft_c2c) = 5·n·log2(n) real FLOPs; "
    "real FFT (rfft/irfft, aten._fft_r2c/_fft_c2r) = 2.5·n·log2(n) real FLOPs "
    "(n is the real signal's size; half the complex FFT's work). "
    "A normalised transform (norm='ortho', or the 1/n side of 'backward'/'forward') "
    "adds 1 FLOP per real output value for the scaling. MACs = FLOPs / 2."
)


# --------------------------------------------------------------------------- values


@dataclass(frozen=True)
class OperatorCount:
    """One ATen operator's calls and FLOPs during the counted forward pass."""

    op: str
    calls: int
    flops: int
    status: str

    def __post_init__(self) -> None:
        if self.status not in (COUNTED, FREE, UNCOUNTED):
            raise ValueError(f"status must be 'counted', 'free' or 'uncounted', got {self.status!r}")


@dataclass(frozen=True)
class FlopCount:
    """The FLOPs and MACs of one forward pass, with the per-operator audit.

    ``flops`` is the sum of the operators' FLOPs; ``macs`` is FLOPs / 2 (rounded up
    when ``flops`` is odd). ``operators`` lists every operator that ran, sorted by
    FLOPs, largest first.
    """

    macs: int
    flops: int
    operators: tuple[OperatorCount, ...]

    def __post_init__(self) -> None:
        if self.macs != macs_from_flops(self.flops):
            raise ValueError(f"FlopCount: macs ({self.macs}) must be flops / 2 ({self.flops} FLOPs)")

    @property
    def uncounted_ops(self) -> tuple[str, ...]:
        """Operators that ran without a formula: the totals are a lower bound if any."""
        return tuple(sorted(o.op for o in self.operators if o.status == UNCOUNTED))

    @property
    def free_ops(self) -> tuple[str, ...]:
        """Operators that ran and are free by convention (data movement)."""
        return tuple(sorted(o.op for o in self.operators if o.status == FREE))

    def by_operator(self) -> dict[str, int]:
        """Operator name -> FLOPs, for every operator that ran."""
        return {o.op: o.flops for o in self.operators}

    def columns(self) -> dict[str, Any]:
        """The record columns: totals, the uncounted operators and the per-operator audit."""
        return {"macs": self.macs, "flops": self.flops, "uncounted_ops": list(self.uncounted_ops),
                "operators": [{"op": o.op, "calls": o.calls, "flops": o.flops, "status": o.status}
                              for o in self.operators]}


def macs_from_flops(flops: int) -> int:
    """MACs for a FLOP total: FLOPs / 2, rounded up to a whole MAC when odd."""
    return (flops + 1) // 2


# ----------------------------------------------------------------- pure formulas


def conv_flops(
    input_shape: Sequence[int],
    weight_shape: Sequence[int],
    output_shape: Sequence[int],
    *,
    transposed: bool = False,
    bias: bool = False,
    complex_: bool = False,
) -> int:
    """Convolution (any dimensionality, grouped too).

    Forward: MACs = N_out_elements · (C_in/groups) · prod(kernel), where
    ``weight_shape = (C_out, C_in/groups, *kernel)``. Transposed: every input element is
    scattered to (C_out/groups) · prod(kernel) outputs, MACs = N_in_elements ·
    ``weight_shape[1]`` · prod(kernel) (weight is (C_in, C_out/groups, *kernel)).
    FLOPs = 2 · MACs (×4 for complex), plus one FLOP per output element for the bias.
    """
    kernel = math.prod(weight_shape[2:])
    elements = math.prod(input_shape) if transposed else math.prod(output_shape)
    macs = elements * weight_shape[1] * kernel
    flops = 2 * macs * (4 if complex_ else 1)
    if bias:
        flops += math.prod(output_shape) * (2 if complex_ else 1)
    return flops


def matmul_flops(m: int, k: int, n: int, *, batch: int = 1, add: bool = False, complex_: bool = False) -> int:
    """Matrix product of (batch, m, k) by (batch, k, n): MACs = batch·m·k·n.

    FLOPs = 2 · MACs (×4 for complex); ``add`` (addmm/baddbmm/addmv's added input)
    adds one FLOP per output element (the α/β scalings are folded into it).
    """
    factor = 4 if complex_ else 1
    flops = 2 * batch * m * k * n * factor
    if add:
        flops += batch * m * n * (2 if complex_ else 1)
    return flops


def fft_flops(n: int, slices: int, *, real: bool, normalized_outputs: int = 0) -> int:
    """FFT of size ``n`` on ``slices`` independent slices; see :data:`FFT_FLOPS_FORMULA`.

    ``real``: 2.5·n·log2(n) per slice (rfft/irfft), else 5·n·log2(n) (complex).
    ``normalized_outputs``: number of real output values scaled by the normalisation.
    """
    if n < 1 or slices < 0:
        raise ValueError(f"fft_flops: need n >= 1 and slices >= 0, got n={n}, slices={slices}")
    per_slice = (2.5 if real else 5.0) * n * math.log2(n)
    return int(round(slices * per_slice)) + normalized_outputs


def softmax_flops(elements: int) -> int:
    """Softmax / log-softmax: 5 FLOPs per element (max, subtract, exp, sum, divide or log)."""
    return 5 * elements


def elementwise_flops(elements: int, per_element: int = 1) -> int:
    """Elementwise arithmetic: ``per_element`` FLOPs (default 1) per output element."""
    return per_element * elements


def reduction_flops(input_elements: int, per_element: int = 1) -> int:
    """Reductions (sum, mean, amax, max, argmax, cumsum …): one FLOP per *input*
    element; ``per_element`` = 3 for variance, std, norms and logsumexp (a subtract or
    exp, a multiply, an add). The mean's final division (one per output, against one
    per input) is not counted."""
    return per_element * input_elements


def norm_flops(elements: int, *, computes_statistics: bool) -> int:
    """Normalisation layers, per element.

    Applying a norm is a per-channel scale and shift (the mean, 1/σ, γ and β folded
    into one multiply and one add): 2 FLOPs per element — BatchNorm in eval mode.
    Computing the statistics (BatchNorm in training, GroupNorm, LayerNorm) adds 3 per
    element: Σx (1) and Σx² (a multiply and an add, 2). Total 5. Per-channel work
    (running-stat updates, 1/√(var+ε)) is negligible and not counted.
    """
    return (5 if computes_statistics else 2) * elements


def pool_flops(output_elements: int, window: int) -> int:
    """Pooling with a fixed window of ``window`` elements: one FLOP per window element
    per output (max: the comparisons; average: the K−1 adds and one divide).
    Adaptive pooling, whose windows vary, is counted as one FLOP per input element
    (pass the input's element count and ``window=1``)."""
    return output_elements * window


def _householder_flops(m: int, n: int, k: int) -> float:
    """k Householder reflectors applied to an m×n matrix: Σ_{j<k} 4·(m−j)·(n−j)."""
    return 4.0 * (m * n * k - (m + n) * k * k / 2.0 + k**3 / 3.0)


def qr_flops(m: int, n: int, *, mode: str = "reduced", batch: int = 1, complex_: bool = False) -> int:
    """Householder QR of an m×n matrix (Golub & Van Loan), with k = min(m, n).

    Factorisation (R): 2·l·k² − 2k³/3 with l = max(m, n) — (4/3)·n³ for a square n×n,
    2mn² − 2n³/3 for m ≥ n. Forming Q by backward accumulation costs as much again for
    the reduced m×k Q, and 4·(m²k − mk² + k³/3) for the complete m×m Q. Mode ``"r"``
    forms no Q. Complex: ×4.
    """
    if mode not in ("reduced", "complete", "r"):
        raise ValueError(f"qr_flops: mode must be 'reduced', 'complete' or 'r', got {mode!r}")
    k = min(m, n)
    total = _householder_flops(m, n, k)
    if mode == "reduced":
        total += _householder_flops(m, k, k)
    elif mode == "complete":
        total += _householder_flops(m, m, k)
    return int(round(batch * total * (4 if complex_ else 1)))


def attention_flops(batch: int, queries: int, keys: int, head_dim: int, value_dim: int) -> int:
    """Fused scaled-dot-product attention: the two products (MACs batch·L·S·E and
    batch·L·S·Ev, 2 FLOPs each) plus the softmax (5 FLOPs per score; the scaling by
    1/√E is folded into it)."""
    return 2 * batch * queries * keys * (head_dim + value_dim) + softmax_flops(batch * queries * keys)


# ------------------------------------------------------ adapters: args -> formula

Bound = Mapping[str, Any]
Handler = Callable[[Bound, Any], int]


def _is_complex(value: Any) -> bool:
    if isinstance(value, Tensor):
        return value.is_complex()
    return isinstance(value, complex)


def _first_tensor(value: Any) -> Tensor | None:
    if isinstance(value, Tensor):
        return value
    if isinstance(value, (tuple, list)):
        for item in value:
            found = _first_tensor(item)
            if found is not None:
                return found
    return None


def _tensors(bound: Bound) -> Iterable[Tensor]:
    for value in bound.values():
        if isinstance(value, Tensor):
            yield value
        elif isinstance(value, (tuple, list)):
            yield from (v for v in value if isinstance(v, Tensor))


def _self(bound: Bound) -> Tensor:
    for name in ("self", "input", "A", "query"):
        value = bound.get(name)
        if isinstance(value, Tensor):
            return value
    first = next(iter(_tensors(bound)), None)
    if first is None:
        raise ValueError("operator has no tensor argument")
    return first


def _out_numel(out: Any) -> int:
    tensor = _first_tensor(out)
    if tensor is None:
        raise ValueError("operator returned no tensor")
    return tensor.numel()


def _conv_handler(bound: Bound, out: Any) -> int:
    x, weight = _self(bound), bound["weight"]
    transposed = bool(bound.get("transposed", False))
    bias = bound.get("bias")
    return conv_flops(
        tuple(x.shape),
        tuple(weight.shape),
        tuple(_first_tensor(out).shape),  # type: ignore[union-attr]
        transposed=transposed,
        bias=isinstance(bias, Tensor),
        complex_=x.is_complex() or weight.is_complex(),
    )


def _conv_transpose_handler(bound: Bound, out: Any) -> int:
    return _conv_handler({**bound, "transposed": True}, out)


def _mm_handler(bound: Bound, out: Any) -> int:
    a, b = bound.get("mat1", bound.get("self")), bound.get("mat2")
    m, k = a.shape[-2], a.shape[-1]
    n = b.shape[-1]
    batch = a.shape[0] if a.dim() == 3 else 1
    flops = matmul_flops(m, k, n, batch=batch, add="mat1" in bound, complex_=a.is_complex())
    if bound.get("use_gelu") is not None:  # _addmm_activation: a fused ReLU/GELU per output
        flops += m * n
    return flops


def _baddbmm_handler(bound: Bound, out: Any) -> int:
    a, b = bound["batch1"], bound["batch2"]
    return matmul_flops(a.shape[1], a.shape[2], b.shape[2], batch=a.shape[0], add=True, complex_=a.is_complex())


def _addbmm_handler(bound: Bound, out: Any) -> int:
    a, b = bound["batch1"], bound["batch2"]
    flops = matmul_flops(a.shape[1], a.shape[2], b.shape[2], batch=a.shape[0], complex_=a.is_complex())
    return flops + a.shape[0] * a.shape[1] * b.shape[2]  # the sum over the batch and the added input


def _mv_handler(bound: Bound, out: Any) -> int:
    a = bound["mat"] if "mat" in bound else bound["self"]
    return matmul_flops(a.shape[0], a.shape[1], 1, add="mat" in bound, complex_=a.is_complex())


def _dot_handler(bound: Bound, out: Any) -> int:
    a = _self(bound)
    return matmul_flops(1, a.numel(), 1, complex_=a.is_complex())


def _matmul_handler(bound: Bound, out: Any) -> int:
    """aten.matmul / aten.linear if they ever reach dispatch undecomposed."""
    a = _self(bound)
    result = _first_tensor(out)
    k = a.shape[-1]
    flops = 2 * result.numel() * k * (4 if a.is_complex() else 1)  # type: ignore[union-attr]
    if isinstance(bound.get("bias"), Tensor):
        flops += result.numel()  # type: ignore[union-attr]
    return flops


def _fft_handler(bound: Bound, out: Any) -> int:
    x = bound["self"]
    dims = [d % max(x.dim(), 1) for d in bound["dim"]]
    result = _first_tensor(out)
    assert result is not None
    if "last_dim_size" in bound:  # c2r: n is the real output's size over the dims
        n = math.prod(result.shape[d] for d in dims)
        slices = result.numel() // max(n, 1)
        real = True
    elif "onesided" in bound:  # r2c
        n = math.prod(x.shape[d] for d in dims)
        slices = x.numel() // max(n, 1)
        real = True
    else:  # c2c
        n = math.prod(x.shape[d] for d in dims)
        slices = x.numel() // max(n, 1)
        real = False
    if n == 0 or slices == 0:
        return 0
    scaled_values = result.numel() * (2 if result.is_complex() else 1) if int(bound.get("normalization") or 0) else 0
    return fft_flops(n, slices, real=real, normalized_outputs=scaled_values)


def _softmax_handler(bound: Bound, out: Any) -> int:
    return softmax_flops(_self(bound).numel())


def _complex_multiply_factor(bound: Bound, both_complex: int, one_complex: int) -> int:
    operands = [bound.get("self"), bound.get("other")]
    complex_count = sum(_is_complex(v) for v in operands)
    return both_complex if complex_count == 2 else one_complex


def _elementwise(per_element: int = 1, *, complex_per_element: int = 2) -> Handler:
    def handler(bound: Bound, out: Any) -> int:
        result = _first_tensor(out)
        is_complex = (result is not None and result.is_complex()) or any(t.is_complex() for t in _tensors(bound))
        return elementwise_flops(_out_numel(out), complex_per_element if is_complex else per_element)

    return handler


def _mul_handler(bound: Bound, out: Any) -> int:
    if any(_is_complex(v) for v in (bound.get("self"), bound.get("other"), _first_tensor(out))):
        return elementwise_flops(_out_numel(out), _complex_multiply_factor(bound, 6, 2))
    return elementwise_flops(_out_numel(out))


def _div_handler(bound: Bound, out: Any) -> int:
    if any(_is_complex(v) for v in (bound.get("self"), bound.get("other"), _first_tensor(out))):
        return elementwise_flops(_out_numel(out), _complex_multiply_factor(bound, 11, 2))
    return elementwise_flops(_out_numel(out))


def _abs_handler(bound: Bound, out: Any) -> int:
    return elementwise_flops(_out_numel(out), 4 if _self(bound).is_complex() else 1)


def pow_flops_per_element(exponent: Any) -> int:
    """``x ** k``: an integral k with |k| ≥ 2 costs |k| − 1 multiplies per element
    (plus one reciprocal when k < 0); any other exponent (fractional, a tensor, 0, ±1)
    is counted as one FLOP per element."""
    if isinstance(exponent, (int, float)) and not isinstance(exponent, bool) and float(exponent).is_integer():
        k = abs(int(exponent))
        if k >= 2:
            return k - 1 + (1 if exponent < 0 else 0)
    return 1


def _pow_handler(bound: Bound, out: Any) -> int:
    per_element = pow_flops_per_element(bound.get("exponent"))
    if any(t.is_complex() for t in _tensors(bound)):
        per_element *= 6  # a complex multiply per real one
    return elementwise_flops(_out_numel(out), per_element)


def _reduction(per_element: int = 1) -> Handler:
    def handler(bound: Bound, out: Any) -> int:
        if isinstance(bound.get("other"), Tensor):  # max.other, min.other: binary elementwise
            return elementwise_flops(_out_numel(out))
        x = _self(bound)
        return reduction_flops(x.numel() * (2 if x.is_complex() else 1), per_element)

    return handler


def _batch_norm_handler(training: bool | None) -> Handler:
    def handler(bound: Bound, out: Any) -> int:
        is_training = bool(bound.get("training", False)) if training is None else training
        return norm_flops(_self(bound).numel(), computes_statistics=is_training)

    return handler


def _stat_norm_handler(bound: Bound, out: Any) -> int:
    return norm_flops(_self(bound).numel(), computes_statistics=True)


def _window(kernel_size: Sequence[int], spatial_dims: int) -> int:
    sizes = list(kernel_size)
    if len(sizes) == 1:
        sizes = sizes * spatial_dims
    return math.prod(sizes)


def _pool_handler(spatial_dims: int) -> Handler:
    def handler(bound: Bound, out: Any) -> int:
        return pool_flops(_out_numel(out), _window(bound["kernel_size"], spatial_dims))

    return handler


def _adaptive_pool_handler(bound: Bound, out: Any) -> int:
    return pool_flops(_self(bound).numel(), 1)


def _interpolation(macs_per_output: int) -> Handler:
    def handler(bound: Bound, out: Any) -> int:
        return 2 * macs_per_output * _out_numel(out)

    return handler


def _qr_handler(bound: Bound, out: Any) -> int:
    a = _self(bound)
    m, n = a.shape[-2], a.shape[-1]
    batch = math.prod(a.shape[:-2])
    mode = bound.get("mode") or "reduced"
    tau = bound.get("tau", bound.get("input2"))
    if isinstance(tau, Tensor):  # householder_product / orgqr: apply k reflectors to an m×n matrix
        k = tau.shape[-1]
        return int(round(batch * _householder_flops(m, n, k) * (4 if a.is_complex() else 1)))
    if "mode" not in bound:  # geqrf: factorisation only
        mode = "r"
    return qr_flops(m, n, mode=mode, batch=batch, complex_=a.is_complex())


def _sdpa_handler(bound: Bound, out: Any) -> int:
    q, k, v = bound["query"], bound["key"], bound["value"]
    batch = math.prod(q.shape[:-2])
    return attention_flops(batch, q.shape[-2], k.shape[-2], q.shape[-1], v.shape[-1])


def _dropout_handler(bound: Bound, out: Any) -> int:
    if bound.get("train") is False:
        return 0
    return elementwise_flops(_self(bound).numel(), 2)  # mask compare and scale


# ------------------------------------------------------------- the op tables

_ELEMENTWISE_1 = """
add sub rsub neg exp exp2 expm1 log log2 log10 log1p sqrt rsqrt reciprocal relu relu6
leaky_relu threshold hardtanh clamp clamp_min clamp_max maximum minimum fmax fmin sign sgn
sigmoid tanh gelu silu hardsigmoid hardswish elu selu celu softplus mish erf erfc erfinv sin
cos tan asin acos atan atan2 sinh cosh asinh acosh atanh where masked_fill eq ne gt ge lt le
logical_and logical_or logical_not logical_xor bitwise_and bitwise_or bitwise_not bitwise_xor
floor ceil round trunc frac square isnan isinf isfinite nan_to_num heaviside remainder fmod
floor_divide xlogy hypot copysign signbit _prelu_kernel prelu resolve_conj resolve_neg
conj_physical logit nonzero sigmoid_backward threshold_backward
""".split()
_ELEMENTWISE_2 = "addcmul addcdiv".split()  # a multiply (or divide) and an add per element
_ELEMENTWISE_3 = ["lerp"]  # a + w·(b − a): a subtract, a multiply and an add

_REDUCTIONS_1 = """
sum mean amax amin max min argmax argmin aminmax prod nansum nanmean cumsum cumprod cummax
cummin any all count_nonzero
""".split()
_REDUCTIONS_3 = "var std var_mean std_mean linalg_vector_norm norm logsumexp".split()

_FREE = frozenset(
    """
view _unsafe_view _reshape_alias reshape as_strided t transpose permute expand expand_as
view_as unsqueeze squeeze select slice narrow split split_with_sizes unbind chunk flatten
unflatten movedim swapaxes swapdims diagonal unfold alias detach lift_fresh lift_fresh_copy
view_as_real view_as_complex real imag _conj conj _neg_view complex
view_copy _unsafe_view_copy permute_copy transpose_copy t_copy expand_copy squeeze_copy
unsqueeze_copy select_copy slice_copy split_copy split_with_sizes_copy unbind_copy
alias_copy detach_copy view_as_real_copy view_as_complex_copy as_strided_copy diagonal_copy
clone copy _copy_from _copy_from_and_resize contiguous _to_copy to _to_dim_order_copy
empty empty_like empty_strided empty_permuted new_empty new_empty_strided zeros zeros_like
ones ones_like full full_like new_zeros new_ones new_full fill zero scalar_tensor
arange linspace eye rand randn randint rand_like randn_like randint_like randperm normal
uniform bernoulli
cat stack hstack vstack index index_select gather take index_put scatter
masked_select masked_scatter repeat repeat_interleave tile roll flip fliplr flipud rot90
constant_pad_nd reflection_pad1d reflection_pad2d reflection_pad3d replication_pad1d
replication_pad2d replication_pad3d pixel_shuffle pixel_unshuffle channel_shuffle
native_channel_shuffle im2col tril triu diag diag_embed upsample_nearest1d upsample_nearest2d
upsample_nearest3d _upsample_nearest_exact2d
_local_scalar_dense item sym_size sym_stride sym_numel sym_storage_offset set resize
as_strided_scatter slice_scatter select_scatter diagonal_scatter record_stream
_assert_async _assert_scalar _functional_assert_async
""".split()
)

_HANDLERS: dict[str, Handler] = {
    "convolution": _conv_handler,
    "_convolution": _conv_handler,
    "conv1d": _conv_handler,
    "conv2d": _conv_handler,
    "conv3d": _conv_handler,
    "cudnn_convolution": _conv_handler,
    "mkldnn_convolution": _conv_handler,
    "miopen_convolution": _conv_handler,
    "convolution_overrideable": _conv_handler,
    "_slow_conv2d_forward": _conv_handler,
    "thnn_conv2d": _conv_handler,
    "slow_conv3d": _conv_handler,
    "_convolution_mode": _conv_handler,
    "conv_transpose1d": _conv_transpose_handler,
    "conv_transpose2d": _conv_transpose_handler,
    "conv_transpose3d": _conv_transpose_handler,
    "cudnn_convolution_transpose": _conv_transpose_handler,
    "slow_conv_transpose2d": _conv_transpose_handler,
    "slow_conv_transpose3d": _conv_transpose_handler,
    "mm": _mm_handler,
    "bmm": _mm_handler,
    "addmm": _mm_handler,
    "_addmm_activation": _mm_handler,
    "baddbmm": _baddbmm_handler,
    "addbmm": _addbmm_handler,
    "mv": _mv_handler,
    "addmv": _mv_handler,
    "dot": _dot_handler,
    "vdot": _dot_handler,
    "matmul": _matmul_handler,
    "linear": _matmul_handler,
    "_fft_r2c": _fft_handler,
    "_fft_c2r": _fft_handler,
    "_fft_c2c": _fft_handler,
    "_softmax": _softmax_handler,
    "_log_softmax": _softmax_handler,
    "softmax": _softmax_handler,
    "log_softmax": _softmax_handler,
    "_safe_softmax": _softmax_handler,
    "mul": _mul_handler,
    "div": _div_handler,
    "abs": _abs_handler,
    "pow": _pow_handler,
    "native_batch_norm": _batch_norm_handler(None),
    "_native_batch_norm_legit": _batch_norm_handler(None),
    "_native_batch_norm_legit_functional": _batch_norm_handler(None),
    "_native_batch_norm_legit_no_training": _batch_norm_handler(False),
    "_batch_norm_no_update": _batch_norm_handler(False),
    "_batch_norm_with_update": _batch_norm_handler(True),
    "_batch_norm_with_update_functional": _batch_norm_handler(True),
    "cudnn_batch_norm": _batch_norm_handler(None),
    "miopen_batch_norm": _batch_norm_handler(None),
    "native_group_norm": _stat_norm_handler,
    "native_layer_norm": _stat_norm_handler,
    "_fused_rms_norm": _stat_norm_handler,
    "max_pool1d": _pool_handler(1),
    "max_pool2d": _pool_handler(2),
    "max_pool3d": _pool_handler(3),
    "max_pool2d_with_indices": _pool_handler(2),
    "max_pool3d_with_indices": _pool_handler(3),
    "mkldnn_max_pool2d": _pool_handler(2),
    "avg_pool1d": _pool_handler(1),
    "avg_pool2d": _pool_handler(2),
    "avg_pool3d": _pool_handler(3),
    "_adaptive_avg_pool2d": _adaptive_pool_handler,
    "_adaptive_avg_pool3d": _adaptive_pool_handler,
    "adaptive_avg_pool2d": _adaptive_pool_handler,
    "adaptive_max_pool2d": _adaptive_pool_handler,
    "adaptive_max_pool3d": _adaptive_pool_handler,
    "upsample_linear1d": _interpolation(2),
    "upsample_bilinear2d": _interpolation(4),
    "_upsample_bilinear2d_aa": _interpolation(4),
    "upsample_trilinear3d": _interpolation(8),
    "upsample_bicubic2d": _interpolation(16),
    "linalg_qr": _qr_handler,
    "geqrf": _qr_handler,
    "linalg_householder_product": _qr_handler,
    "orgqr": _qr_handler,
    "_scaled_dot_product_flash_attention_for_cpu": _sdpa_handler,
    "_scaled_dot_product_flash_attention": _sdpa_handler,
    "_scaled_dot_product_efficient_attention": _sdpa_handler,
    "_scaled_dot_product_cudnn_attention": _sdpa_handler,
    "_scaled_dot_product_fused_attention_overrideable": _sdpa_handler,
    "native_dropout": _dropout_handler,
    **{name: _elementwise(1) for name in _ELEMENTWISE_1},
    **{name: _elementwise(2, complex_per_element=8) for name in _ELEMENTWISE_2},
    **{name: _elementwise(3, complex_per_element=10) for name in _ELEMENTWISE_3},
    **{name: _reduction(1) for name in _REDUCTIONS_1},
    **{name: _reduction(3) for name in _REDUCTIONS_3},
}


def _base_name(func: torch._ops.OpOverload) -> str:
    """The operator's name without namespace, overload or in-place underscore."""
    name = func.overloadpacket.__name__
    if name.endswith("_") and not name.endswith("__"):
        name = name[:-1]
    return name


def classify_operator(func: torch._ops.OpOverload) -> str:
    """``"counted"``, ``"free"`` or ``"uncounted"`` for an ATen operator overload."""
    if func.namespace != "aten":
        return UNCOUNTED
    name = _base_name(func)
    if name in _FREE:
        return FREE
    if name in _HANDLERS:
        return COUNTED
    return UNCOUNTED


def _bind(func: torch._ops.OpOverload, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """The operator's arguments by schema name, with defaults filled in."""
    bound: dict[str, Any] = {}
    positional = iter(args)
    for argument in func._schema.arguments:
        if not argument.kwarg_only:
            value = next(positional, _MISSING)
            if value is not _MISSING:
                bound[argument.name] = value
                continue
        if argument.name in kwargs:
            bound[argument.name] = kwargs[argument.name]
        elif argument.has_default_value():
            bound[argument.name] = argument.default_value
    return bound


_MISSING = object()


def operator_flops(func: torch._ops.OpOverload, args: tuple[Any, ...], kwargs: Mapping[str, Any], out: Any) -> int:
    """FLOPs of one call of a *counted* operator (the formula of its family)."""
    handler = _HANDLERS[_base_name(func)]
    try:
        return int(handler(_bind(func, args, kwargs), out))
    except Exception as exc:  # a formula that cannot read its arguments is a bug: say which
        raise RuntimeError(f"FLOP formula for {func} failed: {type(exc).__name__}: {exc}") from exc


class _AuditMode(TorchDispatchMode):
    """Runs every ATen operator unchanged and records its calls, status and FLOPs."""

    def __init__(self) -> None:
        super().__init__()
        self.records: dict[str, list[Any]] = {}  # op -> [calls, flops, status]

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        status = classify_operator(func)
        flops = operator_flops(func, args, kwargs, out) if status == COUNTED else 0
        record = self.records.setdefault(str(func), [0, 0, status])
        record[0] += 1
        record[1] += flops
        return out


def count_flops(module: nn.Module, inputs: tuple[Tensor, ...] | Tensor) -> FlopCount:
    """Count the FLOPs and MACs of one forward pass, auditing every ATen operator.

    The forward runs under ``torch.no_grad`` with the module in whatever mode
    (train/eval) it is in; the counter changes nothing, but a forward in training mode
    updates BatchNorm running statistics as any forward does. The formulas read only
    shapes and arguments, so the counts do not depend on the input's values.
    """
    if not isinstance(module, nn.Module):
        raise TypeError(f"count_flops: expected an nn.Module, got {type(module).__name__}")
    if isinstance(inputs, Tensor):
        inputs = (inputs,)
    if not isinstance(inputs, tuple) or not all(isinstance(t, Tensor) for t in inputs):
        raise TypeError(
            "count_flops: inputs must be a tuple of tensors (the forward's positional arguments), "
            f"got {type(inputs).__name__}"
        )
    mode = _AuditMode()
    with torch.no_grad(), mode:
        module(*inputs)
    operators = tuple(
        sorted(
            (OperatorCount(op=op, calls=calls, flops=flops, status=status) for op, (calls, flops, status) in mode.records.items()),
            key=lambda o: (-o.flops, o.op),
        )
    )
    total = sum(o.flops for o in operators)
    return FlopCount(macs=macs_from_flops(total), flops=total, operators=operators)
