"""The public counters fvcore and ptflops, run on the same module and inputs as ours.

Their totals, and their totals by operator class (:data:`nlbench.vocabulary.OP_CLASSES`),
are recorded beside :func:`nlbench.measure.flops.count_flops`'s to show where they
disagree: fvcore skips the operators it has no handle for (FFTs, most elementwise ops)
and counts them as zero; ptflops' pytorch backend counts ``nn.Module`` layers plus the
functions and tensor methods it patches (``torch.bmm``, ``torch.matmul``,
``F.softmax`` …) and misses what it does not patch (the ``@`` operator, ``einsum``,
FFTs). Both count a ``matmul`` of a 2-D matrix with a batched tensor as if the batch
were one matrix. Nothing is tuned to match them. Both report MACs: fvcore calls its
unit "flops" but counts one per multiply-add; for norms, pooling, upsampling,
activations and softmax both count about one per operation, which our convention
counts as FLOPs, not MACs.

How the by-class split is read off each counter
-----------------------------------------------
* fvcore: :meth:`FlopCountAnalysis.by_operator` — one count per handle name
  (``conv``, ``matmul``, ``einsum``, ``batch_norm``, ``upsample_bilinear2d`` …),
  classed by :data:`FVCORE_HANDLE_CLASS` and otherwise by
  :func:`nlbench.measure.flops.op_class_of` (an unknown name is ``"other"``).
* ptflops (0.7.5): its total is the per-module counts of the outermost modules it has
  a hook for, divided by the batch it saw (1 here, see :class:`_CallWithInputs`), plus
  one count per call of each function or tensor method it patches. The module counts
  are read with recording wrappers around ptflops' own hooks (passed as its
  ``custom_modules_hooks``) and classed by module type (:func:`ptflops_module_class`);
  the function counts with recording wrappers put, for the run only, in place of the
  handlers in ptflops' ``FUNCTIONAL_MAPPING`` and ``TENSOR_OPS_MAPPING``, so each call
  is known by its function's name and classed by :func:`ptflops_function_class`.
  Nothing ptflops computes is changed.

A by-class split is recorded only when it adds up to the counter's total exactly;
otherwise (a counter version whose internals differ) it is None and the total stays.

Both helpers are quiet (their printing, warnings and log messages are swallowed),
return ``None`` when the counter raises or gives up, and leave the module's
train/eval flags as they found them (ptflops switches modules to eval).
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Mapping, MutableMapping

import torch
from torch import Tensor, nn

from nlbench.vocabulary import OP_CLASSES

__all__ = [
    "FVCORE_HANDLE_CLASS",
    "CounterMacs",
    "PublicCount",
    "count_with_public_counters",
    "fvcore_count",
    "fvcore_handle_class",
    "fvcore_macs",
    "ptflops_count",
    "ptflops_function_class",
    "ptflops_macs",
    "ptflops_module_class",
]

_LOGGERS = ("fvcore", "iopath", "ptflops")

#: fvcore handle names whose class :func:`~nlbench.measure.flops.op_class_of` does not
#: give (it names ATen operators; fvcore names its convolution handle ``conv``).
#: ``op_class_of`` classes the other default handles: matmul, mm, bmm, addmm, linear,
#: einsum → matmul; batch_norm, group_norm, layer_norm, instance_norm → norm;
#: upsample_*, adaptive_avg_pool2d, grid_sampler → other.
FVCORE_HANDLE_CLASS: Mapping[str, str] = {"conv": "conv", "_convolution": "conv"}


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Swallow stdout, stderr, warnings and the counters' log records."""
    loggers = [logging.getLogger(name) for name in _LOGGERS]
    levels = [logger.level for logger in loggers]
    sink = io.StringIO()
    try:
        for logger in loggers:
            logger.setLevel(logging.CRITICAL + 1)
        with warnings.catch_warnings(), contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            warnings.simplefilter("ignore")
            yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


@contextlib.contextmanager
def _keep_training_flags(module: nn.Module) -> Iterator[None]:
    """Restore every submodule's ``training`` flag afterwards."""
    flags = [(m, m.training) for m in module.modules()]
    try:
        yield
    finally:
        for submodule, flag in flags:
            submodule.training = flag


def _as_tuple(inputs: tuple[Tensor, ...] | Tensor) -> tuple[Tensor, ...]:
    if isinstance(inputs, Tensor):
        return (inputs,)
    if not isinstance(inputs, tuple) or not all(isinstance(t, Tensor) for t in inputs):
        raise TypeError(f"inputs must be a tuple of tensors, got {type(inputs).__name__}")
    return inputs


# --------------------------------------------------------------------------- values


@dataclass(frozen=True)
class PublicCount:
    """One public counter's MACs for one forward: the total and, when the counter's
    counts could be split exactly, the MACs by operator class (classes with no MACs
    left out; the values sum to ``total``)."""

    total: int
    by_class: Mapping[str, int] | None = None

    def __post_init__(self) -> None:
        if self.by_class is None:
            return
        unknown = set(self.by_class) - set(OP_CLASSES)
        if unknown:
            raise ValueError(f"PublicCount: unknown operator classes {sorted(unknown)}")
        if sum(self.by_class.values()) != self.total:
            raise ValueError(f"PublicCount: by_class sums to {sum(self.by_class.values())}, not {self.total}")


def _split(total: int, by_class: Mapping[str, float]) -> PublicCount:
    """The count with its by-class split, or without it when the rounded parts do not
    add up to the total exactly."""
    rounded = {c: int(round(by_class[c])) for c in OP_CLASSES if by_class.get(c)}
    if sum(rounded.values()) != total or any(v < 0 for v in rounded.values()):
        return PublicCount(total)
    return PublicCount(total, {c: v for c, v in rounded.items() if v})


# --------------------------------------------------------------------------- fvcore


def fvcore_handle_class(name: str) -> str:
    """The operator class of an fvcore handle name (a key of ``by_operator()``)."""
    if name in FVCORE_HANDLE_CLASS:
        return FVCORE_HANDLE_CLASS[name]
    from nlbench.measure.flops import op_class_of  # flops imports this module: not at import time

    op_class = op_class_of(name)
    return op_class if op_class in OP_CLASSES else "other"


def fvcore_count(module: nn.Module, inputs: tuple[Tensor, ...] | Tensor) -> PublicCount | None:
    """fvcore's ``FlopCountAnalysis`` (MACs) for these inputs, in total and by class, or None.

    fvcore traces the module with ``torch.jit.trace``; operators it has no handle for
    (FFTs, most elementwise ops) it skips — they count as zero in its total.
    """
    inputs = _as_tuple(inputs)
    try:
        with _quiet(), _keep_training_flags(module), torch.no_grad():
            from fvcore.nn import FlopCountAnalysis

            analysis = FlopCountAnalysis(module, inputs)
            analysis.unsupported_ops_warnings(False)
            analysis.uncalled_modules_warnings(False)
            analysis.tracer_warnings("none")
            total = int(analysis.total())
            by_operator = dict(analysis.by_operator())  # traced once: fvcore caches its statistics
    except Exception:  # noqa: BLE001 - any failure of the external counter is "no number"
        return None
    by_class: dict[str, float] = {}
    for name, macs in by_operator.items():
        op_class = fvcore_handle_class(name)
        by_class[op_class] = by_class.get(op_class, 0.0) + float(macs)
    return _split(total, by_class)


def fvcore_macs(module: nn.Module, inputs: tuple[Tensor, ...] | Tensor) -> int | None:
    """fvcore's ``FlopCountAnalysis(...).total()`` (MACs) for these inputs, or None."""
    count = fvcore_count(module, inputs)
    return None if count is None else count.total


# --------------------------------------------------------------------------- ptflops


class _CallWithInputs(nn.Module):
    """Calls the wrapped module on a tuple passed as a keyword argument.

    ptflops divides its module counts by the batch size it reads from the first
    positional argument (and does not divide its functional counts); called with a
    keyword argument it assumes a batch of one, so its total is for the whole input.
    """

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, inputs: tuple[Tensor, ...]) -> object:
        return self.module(*inputs)


def ptflops_module_class(module_type: type) -> str:
    """The operator class of a module ptflops has a hook for, by its type.

    Convolutions (transposed and deformable too) → conv; Linear, MultiheadAttention,
    RNNs and attention modules → matmul (their hooks add the softmax and scaling into
    the same count); norms → norm; softmax modules → softmax; activations → elementwise;
    pooling, upsampling and anything else → other.
    """
    name = module_type.__name__
    if issubclass(module_type, nn.modules.conv._ConvNd) or "Conv" in name:
        return "conv"
    if issubclass(module_type, (nn.Linear, nn.MultiheadAttention, nn.RNNBase, nn.RNNCellBase)) or "Attention" in name:
        return "matmul"
    if issubclass(module_type, (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)):
        return "norm"
    if issubclass(module_type, (nn.Softmax, nn.LogSoftmax, nn.Softmax2d, nn.Softmin)):
        return "softmax"
    if module_type.__module__ == nn.modules.activation.__name__:
        return "elementwise"
    return "other"


def ptflops_function_class(name: str) -> str:
    """The operator class of a function or tensor method ptflops patches, by its name
    (``matmul``, ``bmm``, ``addmm``, ``relu``, ``softmax``, ``interpolate`` …):
    :func:`~nlbench.measure.flops.op_class_of`'s (pooling and interpolation → other)."""
    from nlbench.measure.flops import op_class_of  # flops imports this module: not at import time

    op_class = op_class_of(name)
    return op_class if op_class in OP_CLASSES else "other"


def _recording_hook(hook: Callable[..., Any], counts: MutableMapping[int, float]) -> Callable[..., None]:
    """ptflops' module hook, unchanged, noting what it adds to the module's count."""

    def recording(module: nn.Module, inputs: Any, output: Any) -> None:
        before = getattr(module, "__flops__", 0)
        hook(module, inputs, output)
        counts[id(module)] = counts.get(id(module), 0.0) + float(getattr(module, "__flops__", 0) - before)

    return recording


def _recording_handler(handler: Callable[..., Any], name: str,
                       counts: MutableMapping[str, float]) -> Callable[..., Any]:
    """ptflops' function handler, unchanged, noting its count under the function's name."""

    def recording(*args: Any, **kwargs: Any) -> Any:
        macs = handler(*args, **kwargs)
        counts[name] = counts.get(name, 0.0) + float(macs)
        return macs

    return recording


@contextlib.contextmanager
def _recording_functions(mappings: tuple[MutableMapping[Any, Any], ...],
                         counts: MutableMapping[str, float]) -> Iterator[None]:
    """For the run only, ptflops' function handlers replaced by recording wrappers."""
    saved = [dict(mapping) for mapping in mappings]
    try:
        for mapping, original in zip(mappings, saved):
            for function, handler in original.items():
                mapping[function] = _recording_handler(handler, getattr(function, "__name__", str(function)), counts)
        yield
    finally:
        for mapping, original in zip(mappings, saved):
            for function, handler in original.items():
                mapping[function] = handler


def _counted_modules(module: nn.Module, supported: Mapping[type, Any]) -> Iterator[nn.Module]:
    """The modules ptflops' total adds up: the outermost ones it has a hook for
    (its ``accumulate_flops`` does not look inside a module it has a hook for)."""
    if type(module) in supported:
        yield module
        return
    for child in module.children():
        yield from _counted_modules(child, supported)


def ptflops_count(module: nn.Module, inputs: tuple[Tensor, ...] | Tensor) -> PublicCount | None:
    """ptflops' pytorch-backend MACs for these inputs (the whole batch), in total and by
    class, or None."""
    inputs = _as_tuple(inputs)
    module_counts: dict[int, float] = {}
    function_counts: dict[str, float] = {}
    try:
        wrapper = _CallWithInputs(module)
        with _quiet(), _keep_training_flags(module), torch.no_grad():
            from ptflops import get_model_complexity_info, pytorch_ops

            hooks = {t: _recording_hook(h, module_counts) for t, h in pytorch_ops.MODULES_MAPPING.items()}
            with _recording_functions((pytorch_ops.FUNCTIONAL_MAPPING, pytorch_ops.TENSOR_OPS_MAPPING),
                                      function_counts):
                macs, _params = get_model_complexity_info(
                    wrapper,
                    tuple(inputs[0].shape),
                    input_constructor=lambda _res: {"inputs": inputs},
                    as_strings=False,
                    print_per_layer_stat=False,
                    verbose=False,
                    backend="pytorch",
                    custom_modules_hooks=hooks,  # ptflops' own hooks, recording what they count
                )
        if macs is None:
            return None
        total = int(macs)
        batch = getattr(wrapper, "__batch_counter__", 1) or 1
        by_class: dict[str, float] = {}
        for counted in _counted_modules(wrapper, hooks):
            op_class = ptflops_module_class(type(counted))
            by_class[op_class] = by_class.get(op_class, 0.0) + module_counts.get(id(counted), 0.0) / batch
        for name, value in function_counts.items():
            op_class = ptflops_function_class(name)
            by_class[op_class] = by_class.get(op_class, 0.0) + value
        if not all(math.isfinite(v) for v in by_class.values()):
            return PublicCount(total)
        return _split(total, by_class)
    except Exception:  # noqa: BLE001 - any failure of the external counter is "no number"
        return None


def ptflops_macs(module: nn.Module, inputs: tuple[Tensor, ...] | Tensor) -> int | None:
    """ptflops' pytorch-backend total MACs for these inputs (the whole batch), or None."""
    count = ptflops_count(module, inputs)
    return None if count is None else count.total


# --------------------------------------------------------------------------- both


@dataclass(frozen=True)
class CounterMacs:
    """The MACs fvcore and ptflops report for one forward, in total and by operator
    class (None: the counter gave up, or its counts could not be split exactly)."""

    fvcore_macs: int | None
    ptflops_macs: int | None
    fvcore_by_class: Mapping[str, int] | None = None
    ptflops_by_class: Mapping[str, int] | None = None

    def __post_init__(self) -> None:
        for tool in ("fvcore", "ptflops"):
            total, by_class = getattr(self, f"{tool}_macs"), getattr(self, f"{tool}_by_class")
            if by_class is not None and (total is None or sum(by_class.values()) != total):
                raise ValueError(f"CounterMacs: {tool}_by_class must sum to {tool}_macs ({total})")

    def columns(self) -> dict[str, Any]:
        """Record columns: the totals, and the by-class MACs as JSON objects {class: MACs}."""
        return {
            "fvcore_macs": self.fvcore_macs,
            "ptflops_macs": self.ptflops_macs,
            "fvcore_macs_by_class": None if self.fvcore_by_class is None else dict(self.fvcore_by_class),
            "ptflops_macs_by_class": None if self.ptflops_by_class is None else dict(self.ptflops_by_class),
        }


def count_with_public_counters(module: nn.Module, inputs: tuple[Tensor, ...] | Tensor) -> CounterMacs:
    """Both public counters on the same module and inputs, each run once."""
    fvcore, ptflops = fvcore_count(module, inputs), ptflops_count(module, inputs)
    return CounterMacs(
        fvcore_macs=None if fvcore is None else fvcore.total,
        ptflops_macs=None if ptflops is None else ptflops.total,
        fvcore_by_class=None if fvcore is None else fvcore.by_class,
        ptflops_by_class=None if ptflops is None else ptflops.by_class,
    )
