"""MAC and FLOP counting with an audit of every operator that ran, attributed to the
submodule it ran in and to its operator class.

One forward pass runs under a :class:`~torch.utils._python_dispatch.TorchDispatchMode`
that sees every ATen operator after autograd and composite decomposition (``einsum``
and ``matmul`` arrive as ``bmm``/``mm``, ``conv2d`` as ``convolution``, ``linear`` as
``addmm``). Each operator is classified as

* **counted** — a formula below gives its cost from the shapes and arguments;
* **free** — data movement and bookkeeping (views, reshapes, transposes, ``t``,
  ``select``/``slice``/``expand``, ``clone``/``copy_``/``contiguous``, ``cat``/``stack``,
  gathers and padding, tensor creation including random draws, dtype conversion,
  ``view_as_real``/``complex``, nearest-neighbour upsampling, ``tril``/``triu`` masks …)
  cost nothing **by convention**: this counter measures arithmetic, not memory traffic;
* **uncounted** — anything else. It is listed in :attr:`FlopCount.uncounted_ops` and
  never silently taken as zero, so a total with uncounted operators is a lower bound
  and says so.

Conventions (they must not drift; see ``shared/spec/harness.md`` and
:data:`nlbench.vocabulary.MACS_CONVENTION`)
---------------------------------------------------------------------------------
* **MACs are multiply-accumulates only**: convolutions, matrix products (mm, bmm,
  addmm, baddbmm, mv, dot, einsum and matmul, which arrive as these, the two products
  of a fused attention) and dense factorisations built of them (QR), and FFT
  butterflies (:data:`FFT_FORMULA`). A multiply-add is 1 MAC = 2 FLOPs.
* **FLOPs = 2 · MACs + every other floating-point operation**: softmax, elementwise
  ops and activations, norms, reductions, pooling, interpolation, and the **bias
  additions** of convolutions and matrix products (one FLOP per output element; fvcore
  ignores them, ptflops counts one MAC each). Each operator's :class:`Cost` keeps the
  two parts apart, so the identity holds for every operator, module, class and total.
* Complex arithmetic is counted in real operations: a complex matrix product or
  convolution costs 4 real MACs per complex multiply-add; complex elementwise ops count
  in FLOPs (multiply 6, divide 11, complex·real multiply or divide 2, add/subtract 2,
  ``abs`` 4, any other 2 — one per real part, a lower bound for transcendental ops).
* Every operator is attributed to the innermost submodule whose ``forward`` it ran in
  (:attr:`FlopCount.modules`; the block's own forward is
  :data:`~nlbench.vocabulary.ROOT_MODULE`) and to one operator class
  (:data:`~nlbench.vocabulary.OP_CLASSES`), so per-module and per-class costs sum to the
  totals exactly.
* The formulas of every family are in the docstrings of the functions below.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Sequence

import torch
from torch import Tensor, nn
from torch.utils._python_dispatch import TorchDispatchMode

from nlbench.measure.external_counters import fvcore_macs, ptflops_macs
from nlbench.vocabulary import MAC_OP_CLASSES, OP_CLASSES, ROOT_MODULE

__all__ = [
    "FFT_FORMULA",
    "Cost",
    "FlopCount",
    "ModuleCount",
    "OperatorCount",
    "ShapeCount",
    "attention_cost",
    "classify_operator",
    "conv_cost",
    "count_flops",
    "elementwise_flops",
    "fft_cost",
    "fvcore_macs",
    "matmul_cost",
    "norm_flops",
    "op_class_of",
    "pool_flops",
    "ptflops_macs",
    "qr_cost",
    "reduction_flops",
    "softmax_flops",
]

COUNTED = "counted"
FREE = "free"
UNCOUNTED = "uncounted"
OPERATOR_STATUSES = (COUNTED, FREE, UNCOUNTED)

FFT_FORMULA = (
    "FFT over n = product of the transformed dimensions, per batch/channel slice, counted as "
    "radix-2 butterflies: a complex FFT (fft/ifft, aten._fft_c2c) has (n/2)·log2(n) butterflies, "
    "each one complex multiply-add by the twiddle (4 real MACs) and one complex subtract (2 FLOPs): "
    "MACs = 2·n·log2(n), FLOPs = 2·MACs + n·log2(n) = 5·n·log2(n). "
    "A real FFT (rfft/irfft, aten._fft_r2c/_fft_c2r; n the real signal's size) is half of that: "
    "MACs = n·log2(n), FLOPs = 2.5·n·log2(n). "
    "A normalised transform (norm='ortho', or the 1/n side of 'backward'/'forward') adds 1 FLOP "
    "per real output value for the scaling."
)


# --------------------------------------------------------------------------- values


@dataclass(frozen=True)
class Cost:
    """The arithmetic of some work: ``macs`` multiply-accumulates and ``extra_flops``
    floating-point operations that are not part of one; ``flops`` = 2·macs + extra."""

    macs: int = 0
    extra_flops: int = 0

    def __post_init__(self) -> None:
        if self.macs < 0 or self.extra_flops < 0:
            raise ValueError(f"Cost: macs and extra_flops must be >= 0, got {self.macs}, {self.extra_flops}")

    @property
    def flops(self) -> int:
        return 2 * self.macs + self.extra_flops

    def __add__(self, other: "Cost") -> "Cost":
        return Cost(self.macs + other.macs, self.extra_flops + other.extra_flops)

    def as_dict(self) -> dict[str, int]:
        return {"macs": self.macs, "flops": self.flops}


ZERO = Cost()


def _total(costs: Iterable[Cost]) -> Cost:
    total = ZERO
    for cost in costs:
        total = total + cost
    return total


@dataclass(frozen=True)
class OperatorCount:
    """One ATen operator's calls and cost during the counted forward pass."""

    op: str
    calls: int
    macs: int
    flops: int
    status: str
    op_class: str

    def __post_init__(self) -> None:
        if self.status not in OPERATOR_STATUSES:
            raise ValueError(f"status must be 'counted', 'free' or 'uncounted', got {self.status!r}")
        if self.op_class not in OP_CLASSES:
            raise ValueError(f"op_class must be one of {OP_CLASSES}, got {self.op_class!r}")
        if self.flops < 2 * self.macs:
            raise ValueError(f"{self.op}: flops ({self.flops}) must be at least 2·macs ({self.macs})")
        if self.macs and self.op_class not in MAC_OP_CLASSES:
            raise ValueError(f"{self.op}: class {self.op_class!r} counts FLOPs only, got {self.macs} MACs")


@dataclass(frozen=True)
class ShapeCount:
    """One operator at one set of input shapes (the tensor arguments', in order): what a
    profiler's per-shape operator table is joined on."""

    op: str
    input_shapes: tuple[tuple[int, ...], ...]
    calls: int
    macs: int
    flops: int


@dataclass(frozen=True)
class ModuleCount:
    """The cost of the operators that ran directly in one submodule's forward (not in
    its children's), by operator class. ``module`` is the qualified name inside the
    block (:data:`~nlbench.vocabulary.ROOT_MODULE` for the block's own forward)."""

    module: str
    type: str
    calls: int
    macs: int
    flops: int
    by_class: Mapping[str, Cost] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"module": self.module, "type": self.type, "calls": self.calls, "macs": self.macs,
                "flops": self.flops, "by_class": {c: cost.as_dict() for c, cost in self.by_class.items()}}


@dataclass(frozen=True)
class FlopCount:
    """The MACs and FLOPs of one forward pass, with the per-operator audit and the
    attribution to submodules and operator classes.

    ``operators`` lists every operator that ran, sorted by FLOPs, largest first;
    ``modules`` every submodule whose forward ran, in the order they first ran (the
    block itself first); ``shapes`` every counted operator per input shapes.
    """

    macs: int
    flops: int
    operators: tuple[OperatorCount, ...]
    modules: tuple[ModuleCount, ...] = ()
    shapes: tuple[ShapeCount, ...] = ()

    def __post_init__(self) -> None:
        if self.macs != sum(o.macs for o in self.operators) or self.flops != sum(o.flops for o in self.operators):
            raise ValueError(f"FlopCount: macs ({self.macs}) and flops ({self.flops}) must be the sums "
                             "of the operators'")
        if self.modules and (self.macs != sum(m.macs for m in self.modules)
                             or self.flops != sum(m.flops for m in self.modules)):
            raise ValueError("FlopCount: the modules' costs must sum to the totals")

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

    def by_class(self) -> dict[str, Cost]:
        """Operator class -> cost, for every class that did arithmetic, in report order."""
        costs: dict[str, Cost] = {}
        for o in self.operators:
            if o.flops:
                costs[o.op_class] = costs.get(o.op_class, ZERO) + Cost(o.macs, o.flops - 2 * o.macs)
        return {c: costs[c] for c in OP_CLASSES if c in costs}

    def columns(self) -> dict[str, Any]:
        """The record columns: totals, the uncounted operators, the per-operator audit and
        the attribution by class and by module."""
        return {
            "macs": self.macs,
            "flops": self.flops,
            "uncounted_ops": list(self.uncounted_ops),
            "operators": [{"op": o.op, "op_class": o.op_class, "calls": o.calls, "macs": o.macs,
                           "flops": o.flops, "status": o.status} for o in self.operators],
            "cost_by_class": {c: cost.as_dict() for c, cost in self.by_class().items()},
            "cost_by_module": [m.as_dict() for m in self.modules],
        }


# ----------------------------------------------------------------- pure formulas


def conv_cost(
    input_shape: Sequence[int],
    weight_shape: Sequence[int],
    output_shape: Sequence[int],
    *,
    transposed: bool = False,
    bias: bool = False,
    complex_: bool = False,
) -> Cost:
    """Convolution (any dimensionality, grouped too).

    Forward: MACs = N_out_elements · (C_in/groups) · prod(kernel), where
    ``weight_shape = (C_out, C_in/groups, *kernel)``. Transposed: every input element is
    scattered to (C_out/groups) · prod(kernel) outputs, MACs = N_in_elements ·
    ``weight_shape[1]`` · prod(kernel) (weight is (C_in, C_out/groups, *kernel)).
    Complex: 4 real MACs per complex multiply-add. The bias adds one FLOP per output
    element (two when complex), not a MAC.
    """
    kernel = math.prod(weight_shape[2:])
    elements = math.prod(input_shape) if transposed else math.prod(output_shape)
    macs = elements * weight_shape[1] * kernel * (4 if complex_ else 1)
    extra = math.prod(output_shape) * (2 if complex_ else 1) if bias else 0
    return Cost(macs, extra)


def matmul_cost(m: int, k: int, n: int, *, batch: int = 1, add: bool = False, complex_: bool = False) -> Cost:
    """Matrix product of (batch, m, k) by (batch, k, n): MACs = batch·m·k·n (×4 for
    complex); ``add`` (addmm/baddbmm/addmv's added input) adds one FLOP per output
    element (the α/β scalings are folded into it), not a MAC."""
    macs = batch * m * k * n * (4 if complex_ else 1)
    extra = batch * m * n * (2 if complex_ else 1) if add else 0
    return Cost(macs, extra)


def fft_cost(n: int, slices: int, *, real: bool, normalized_outputs: int = 0) -> Cost:
    """FFT of size ``n`` on ``slices`` independent slices; see :data:`FFT_FORMULA`.

    Complex: MACs = 2·n·log2(n), FLOPs = 5·n·log2(n) per slice; ``real``: half of each.
    ``normalized_outputs``: number of real output values scaled by the normalisation
    (one FLOP each). Non-integral totals are rounded to the nearest integer, MACs and
    FLOPs each, so the FLOPs are exactly the rounded 5·n·log2(n) (or 2.5·…) total.
    """
    if n < 1 or slices < 0:
        raise ValueError(f"fft_cost: need n >= 1 and slices >= 0, got n={n}, slices={slices}")
    n_log_n = slices * n * math.log2(n)
    macs = int(round((1.0 if real else 2.0) * n_log_n))
    flops = int(round((2.5 if real else 5.0) * n_log_n))
    return Cost(macs, max(flops - 2 * macs, 0) + normalized_outputs)


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


def qr_cost(m: int, n: int, *, mode: str = "reduced", batch: int = 1, complex_: bool = False) -> Cost:
    """Householder QR of an m×n matrix (Golub & Van Loan), with k = min(m, n).

    FLOPs of the factorisation (R): 2·l·k² − 2k³/3 with l = max(m, n) — (4/3)·n³ for a
    square n×n, 2mn² − 2n³/3 for m ≥ n. Forming Q by backward accumulation costs as much
    again for the reduced m×k Q, and 4·(m²k − mk² + k³/3) for the complete m×m Q. Mode
    ``"r"`` forms no Q. Complex: ×4. Applying a reflector is a dot product and a rank-1
    update, all multiply-adds, so MACs = FLOPs / 2 (rounded down; an odd FLOP is extra).
    """
    if mode not in ("reduced", "complete", "r"):
        raise ValueError(f"qr_cost: mode must be 'reduced', 'complete' or 'r', got {mode!r}")
    k = min(m, n)
    total = _householder_flops(m, n, k)
    if mode == "reduced":
        total += _householder_flops(m, k, k)
    elif mode == "complete":
        total += _householder_flops(m, m, k)
    return _multiply_add_flops(int(round(batch * total * (4 if complex_ else 1))))


def _multiply_add_flops(flops: int) -> Cost:
    """A FLOP count made of multiply-adds, as a Cost (an odd last FLOP stays extra)."""
    return Cost(flops // 2, flops % 2)


def attention_cost(batch: int, queries: int, keys: int, head_dim: int, value_dim: int) -> Cost:
    """Fused scaled-dot-product attention: the two products (MACs batch·L·S·E and
    batch·L·S·Ev) plus the softmax (5 FLOPs per score; the scaling by 1/√E is folded
    into it). One operator, so the softmax's FLOPs stay in the matmul class."""
    return Cost(batch * queries * keys * (head_dim + value_dim), softmax_flops(batch * queries * keys))


# ------------------------------------------------------ adapters: args -> formula

Bound = Mapping[str, Any]
Handler = Callable[[Bound, Any], "Cost | int"]  # an int is FLOPs, no MACs


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


def _conv_handler(bound: Bound, out: Any) -> Cost:
    x, weight = _self(bound), bound["weight"]
    return conv_cost(
        tuple(x.shape),
        tuple(weight.shape),
        tuple(_first_tensor(out).shape),  # type: ignore[union-attr]
        transposed=bool(bound.get("transposed", False)),
        bias=isinstance(bound.get("bias"), Tensor),
        complex_=x.is_complex() or weight.is_complex(),
    )


def _conv_transpose_handler(bound: Bound, out: Any) -> Cost:
    return _conv_handler({**bound, "transposed": True}, out)


def _mm_handler(bound: Bound, out: Any) -> Cost:
    a, b = bound.get("mat1", bound.get("self")), bound.get("mat2")
    m, k = a.shape[-2], a.shape[-1]
    n = b.shape[-1]
    batch = a.shape[0] if a.dim() == 3 else 1
    cost = matmul_cost(m, k, n, batch=batch, add="mat1" in bound, complex_=a.is_complex())
    if bound.get("use_gelu") is not None:  # _addmm_activation: a fused ReLU/GELU per output
        cost = cost + Cost(0, m * n)
    return cost


def _baddbmm_handler(bound: Bound, out: Any) -> Cost:
    a, b = bound["batch1"], bound["batch2"]
    return matmul_cost(a.shape[1], a.shape[2], b.shape[2], batch=a.shape[0], add=True, complex_=a.is_complex())


def _addbmm_handler(bound: Bound, out: Any) -> Cost:
    a, b = bound["batch1"], bound["batch2"]
    cost = matmul_cost(a.shape[1], a.shape[2], b.shape[2], batch=a.shape[0], complex_=a.is_complex())
    return cost + Cost(0, a.shape[0] * a.shape[1] * b.shape[2])  # the sum over the batch and the added input


def _mv_handler(bound: Bound, out: Any) -> Cost:
    a = bound["mat"] if "mat" in bound else bound["self"]
    return matmul_cost(a.shape[0], a.shape[1], 1, add="mat" in bound, complex_=a.is_complex())


def _dot_handler(bound: Bound, out: Any) -> Cost:
    a = _self(bound)
    return matmul_cost(1, a.numel(), 1, complex_=a.is_complex())


def _matmul_handler(bound: Bound, out: Any) -> Cost:
    """aten.matmul / aten.linear if they ever reach dispatch undecomposed."""
    a = _self(bound)
    outputs = _out_numel(out)
    extra = outputs if isinstance(bound.get("bias"), Tensor) else 0
    return Cost(outputs * a.shape[-1] * (4 if a.is_complex() else 1), extra)


def _fft_handler(bound: Bound, out: Any) -> Cost:
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
        return ZERO
    scaled_values = result.numel() * (2 if result.is_complex() else 1) if int(bound.get("normalization") or 0) else 0
    return fft_cost(n, slices, real=real, normalized_outputs=scaled_values)


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


def _qr_handler(bound: Bound, out: Any) -> Cost:
    a = _self(bound)
    m, n = a.shape[-2], a.shape[-1]
    batch = math.prod(a.shape[:-2])
    mode = bound.get("mode") or "reduced"
    tau = bound.get("tau", bound.get("input2"))
    if isinstance(tau, Tensor):  # householder_product / orgqr: apply k reflectors to an m×n matrix
        k = tau.shape[-1]
        return _multiply_add_flops(int(round(batch * _householder_flops(m, n, k) * (4 if a.is_complex() else 1))))
    if "mode" not in bound:  # geqrf: factorisation only
        mode = "r"
    return qr_cost(m, n, mode=mode, batch=batch, complex_=a.is_complex())


def _sdpa_handler(bound: Bound, out: Any) -> Cost:
    q, k, v = bound["query"], bound["key"], bound["value"]
    batch = math.prod(q.shape[:-2])
    return attention_cost(batch, q.shape[-2], k.shape[-2], q.shape[-1], v.shape[-1])


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

_CONV = {
    **dict.fromkeys(
        "convolution _convolution conv1d conv2d conv3d cudnn_convolution mkldnn_convolution miopen_convolution "
        "convolution_overrideable _slow_conv2d_forward thnn_conv2d slow_conv3d _convolution_mode".split(),
        _conv_handler),
    **dict.fromkeys(
        "conv_transpose1d conv_transpose2d conv_transpose3d cudnn_convolution_transpose slow_conv_transpose2d "
        "slow_conv_transpose3d".split(),
        _conv_transpose_handler),
}
_MATMUL: dict[str, Handler] = {
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
    "linalg_qr": _qr_handler,
    "geqrf": _qr_handler,
    "linalg_householder_product": _qr_handler,
    "orgqr": _qr_handler,
    **dict.fromkeys(
        "_scaled_dot_product_flash_attention_for_cpu _scaled_dot_product_flash_attention "
        "_scaled_dot_product_efficient_attention _scaled_dot_product_cudnn_attention "
        "_scaled_dot_product_fused_attention_overrideable".split(),
        _sdpa_handler),
}
_FFT: dict[str, Handler] = dict.fromkeys(("_fft_r2c", "_fft_c2r", "_fft_c2c"), _fft_handler)
_SOFTMAX: dict[str, Handler] = dict.fromkeys(
    ("_softmax", "_log_softmax", "softmax", "log_softmax", "_safe_softmax"), _softmax_handler)
_ELEMENTWISE: dict[str, Handler] = {
    "mul": _mul_handler,
    "div": _div_handler,
    "abs": _abs_handler,
    "pow": _pow_handler,
    **{name: _elementwise(1) for name in _ELEMENTWISE_1},
    **{name: _elementwise(2, complex_per_element=8) for name in _ELEMENTWISE_2},
    **{name: _elementwise(3, complex_per_element=10) for name in _ELEMENTWISE_3},
}
_NORM: dict[str, Handler] = {
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
}
_OTHER: dict[str, Handler] = {
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
    "native_dropout": _dropout_handler,
    **{name: _reduction(1) for name in _REDUCTIONS_1},
    **{name: _reduction(3) for name in _REDUCTIONS_3},
}
_TABLES: dict[str, dict[str, Handler]] = {
    "conv": _CONV, "matmul": _MATMUL, "fft": _FFT, "softmax": _SOFTMAX,
    "elementwise": _ELEMENTWISE, "norm": _NORM, "other": _OTHER,
}
_HANDLERS: dict[str, Handler] = {name: h for table in _TABLES.values() for name, h in table.items()}
_CLASS_OF: dict[str, str] = {name: op_class for op_class, table in _TABLES.items() for name in table}
# Composite names a profiler shows above the dispatched operators (aten::conv2d above
# aten::convolution): which class their time belongs to.
_COMPOSITE_CLASS: dict[str, str] = {
    **dict.fromkeys("conv_tbc conv_transpose2d _conv_depthwise2d".split(), "conv"),
    **dict.fromkeys("einsum tensordot bilinear chain_matmul linalg_matmul".split(), "matmul"),
    **dict.fromkeys("batch_norm group_norm layer_norm instance_norm rms_norm _batch_norm_impl_index".split(), "norm"),
    **dict.fromkeys("softmax_backward_data _softmax_backward_data".split(), "softmax"),
    **dict.fromkeys("dropout feature_dropout".split(), "other"),
}


def _base_name(func: torch._ops.OpOverload) -> str:
    """The operator's name without namespace, overload or in-place underscore."""
    return _strip_name(func.overloadpacket.__name__)


def _strip_name(name: str) -> str:
    if name.endswith("_") and not name.endswith("__"):
        name = name[:-1]
    return name


def op_class_of(name: str) -> str:
    """The operator class (:data:`~nlbench.vocabulary.OP_CLASSES`) of an operator named
    as the dispatcher (``aten.convolution.default``) or a profiler (``aten::conv2d``,
    ``aten::fft_rfft2``) names it; data movement and anything unknown is ``"other"``."""
    base = name.split("::", 1)[-1] if "::" in name else name.split(".")[1] if name.startswith("aten.") else name
    base = _strip_name(base.split(".")[0])
    if base in _CLASS_OF:
        return _CLASS_OF[base]
    if base in _COMPOSITE_CLASS:
        return _COMPOSITE_CLASS[base]
    if base.startswith("fft_"):
        return "fft"
    if base.endswith("_backward"):  # the backward of a counted operator belongs to its class
        return op_class_of(base.removesuffix("_backward"))
    return "other"


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


def operator_cost(func: torch._ops.OpOverload, args: tuple[Any, ...], kwargs: Mapping[str, Any], out: Any) -> Cost:
    """The cost of one call of a *counted* operator (the formula of its family)."""
    handler = _HANDLERS[_base_name(func)]
    try:
        value = handler(_bind(func, args, kwargs), out)
    except Exception as exc:  # a formula that cannot read its arguments is a bug: say which
        raise RuntimeError(f"FLOP formula for {func} failed: {type(exc).__name__}: {exc}") from exc
    return value if isinstance(value, Cost) else Cost(0, int(value))


def _input_shapes(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> tuple[tuple[int, ...], ...]:
    """The shapes of an operator's tensor arguments, in order (tensor lists flattened)."""
    shapes: list[tuple[int, ...]] = []
    for value in (*args, *kwargs.values()):
        items = value if isinstance(value, (list, tuple)) else (value,)
        shapes.extend(tuple(v.shape) for v in items if isinstance(v, Tensor))
    return tuple(shapes)


@dataclass
class _Tally:
    """Mutable accumulator inside the audit; frozen into the value objects at the end."""

    calls: int = 0
    cost: Cost = ZERO


class _AuditMode(TorchDispatchMode):
    """Runs every ATen operator unchanged and records its calls, status, class and cost,
    per operator, per (operator, input shapes) and per (innermost module, class)."""

    def __init__(self, current_module: Callable[[], str]) -> None:
        super().__init__()
        self.current_module = current_module
        self.operators: dict[str, tuple[str, str, _Tally]] = {}  # op -> (status, class, tally)
        self.shapes: dict[tuple[str, tuple[tuple[int, ...], ...]], _Tally] = {}
        self.module_classes: dict[tuple[str, str], Cost] = {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        status = classify_operator(func)
        cost = operator_cost(func, args, kwargs, out) if status == COUNTED else ZERO
        op_class = _CLASS_OF.get(_base_name(func), "other")
        name = str(func)
        _, _, tally = self.operators.setdefault(name, (status, op_class, _Tally()))
        tally.calls += 1
        tally.cost = tally.cost + cost
        if status == COUNTED:
            shaped = self.shapes.setdefault((name, _input_shapes(args, kwargs)), _Tally())
            shaped.calls += 1
            shaped.cost = shaped.cost + cost
        key = (self.current_module(), op_class)
        self.module_classes[key] = self.module_classes.get(key, ZERO) + cost
        return out


class _ModuleStack:
    """Which submodule's forward is running: pre/post forward hooks on every submodule
    keep a stack of qualified names (``always_call`` pops it even when a forward raises)."""

    def __init__(self, module: nn.Module) -> None:
        self.names: list[str] = []
        self.calls: dict[str, int] = {}
        self.types: dict[str, str] = {}
        self.order: list[str] = []
        self._module = module

    def current(self) -> str:
        return self.names[-1] if self.names else ROOT_MODULE

    def __enter__(self) -> "_ModuleStack":
        self._handles = []
        for name, submodule in self._module.named_modules():
            self.types[name] = type(submodule).__name__
            self._handles.append(submodule.register_forward_pre_hook(self._push(name)))
            self._handles.append(submodule.register_forward_hook(self._pop, always_call=True))
        return self

    def __exit__(self, *exc: object) -> None:
        for handle in self._handles:
            handle.remove()

    def _push(self, name: str) -> Callable[..., None]:
        def hook(_module: nn.Module, _args: Any) -> None:
            if name not in self.calls:
                self.order.append(name)
            self.calls[name] = self.calls.get(name, 0) + 1
            self.names.append(name)

        return hook

    def _pop(self, _module: nn.Module, _args: Any, _output: Any) -> None:
        if self.names:
            self.names.pop()


def count_flops(module: nn.Module, inputs: tuple[Tensor, ...] | Tensor) -> FlopCount:
    """Count the MACs and FLOPs of one forward pass, auditing every ATen operator and
    attributing each to the submodule it ran in and to its operator class.

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
    with _ModuleStack(module) as stack:
        mode = _AuditMode(stack.current)
        with torch.no_grad(), mode:
            module(*inputs)
    operators = tuple(
        sorted(
            (OperatorCount(op=op, calls=t.calls, macs=t.cost.macs, flops=t.cost.flops, status=status, op_class=cls)
             for op, (status, cls, t) in mode.operators.items()),
            key=lambda o: (-o.flops, o.op),
        )
    )
    shapes = tuple(ShapeCount(op, shape, t.calls, t.cost.macs, t.cost.flops) for (op, shape), t in mode.shapes.items())
    return FlopCount(
        macs=sum(o.macs for o in operators),
        flops=sum(o.flops for o in operators),
        operators=operators,
        modules=_module_counts(stack, mode.module_classes),
        shapes=shapes,
    )


def _module_counts(stack: _ModuleStack, costs: Mapping[tuple[str, str], Cost]) -> tuple[ModuleCount, ...]:
    """One ModuleCount per submodule that ran (and the block itself), in first-run order."""
    names = list(dict.fromkeys([ROOT_MODULE, *stack.order, *(name for name, _ in costs)]))
    counts = []
    for name in names:
        by_class = {c: costs[(name, c)] for c in OP_CLASSES if (name, c) in costs and costs[(name, c)] != ZERO}
        total = _total(by_class.values())
        counts.append(ModuleCount(module=name, type=stack.types.get(name, ""), calls=stack.calls.get(name, 0),
                                  macs=total.macs, flops=total.flops, by_class=by_class))
    return tuple(counts)
