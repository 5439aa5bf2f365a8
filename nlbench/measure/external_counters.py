"""The public counters fvcore and ptflops, run on the same module and inputs as ours.

Their totals are recorded beside :func:`nlbench.measure.flops.count_flops`'s to show
where they disagree: fvcore skips the operators it has no handle for (FFTs, most
elementwise ops) and counts them as zero; ptflops' pytorch backend counts ``nn.Module``
layers plus the functions and tensor methods it patches (``torch.bmm``,
``torch.matmul``, ``F.softmax`` …) and misses what it does not patch (the ``@``
operator, ``einsum``, FFTs).
Nothing is tuned to match them. Both report MACs: fvcore calls its unit "flops" but
counts one per multiply-add.

Both helpers are quiet (their printing, warnings and log messages are swallowed),
return ``None`` when the counter raises or gives up, and leave the module's
train/eval flags as they found them (ptflops switches modules to eval).
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from dataclasses import dataclass
from typing import Iterator

import torch
from torch import Tensor, nn

__all__ = ["CounterMacs", "count_with_public_counters", "fvcore_macs", "ptflops_macs"]

_LOGGERS = ("fvcore", "iopath", "ptflops")


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


def fvcore_macs(module: nn.Module, inputs: tuple[Tensor, ...] | Tensor) -> int | None:
    """fvcore's ``FlopCountAnalysis(...).total()`` (MACs) for these inputs, or None.

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
            return int(analysis.total())
    except Exception:  # noqa: BLE001 - any failure of the external counter is "no number"
        return None


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


def ptflops_macs(module: nn.Module, inputs: tuple[Tensor, ...] | Tensor) -> int | None:
    """ptflops' pytorch-backend total MACs for these inputs (the whole batch), or None."""
    inputs = _as_tuple(inputs)
    try:
        wrapper = _CallWithInputs(module)
        with _quiet(), _keep_training_flags(module), torch.no_grad():
            from ptflops import get_model_complexity_info

            macs, _params = get_model_complexity_info(
                wrapper,
                tuple(inputs[0].shape),
                input_constructor=lambda _res: {"inputs": inputs},
                as_strings=False,
                print_per_layer_stat=False,
                verbose=False,
                backend="pytorch",
            )
        return None if macs is None else int(macs)
    except Exception:  # noqa: BLE001 - any failure of the external counter is "no number"
        return None


@dataclass(frozen=True)
class CounterMacs:
    """The MACs fvcore and ptflops report for one forward (None: the counter gave up)."""

    fvcore_macs: int | None
    ptflops_macs: int | None

    def columns(self) -> dict[str, int | None]:
        return {"fvcore_macs": self.fvcore_macs, "ptflops_macs": self.ptflops_macs}


def count_with_public_counters(module: nn.Module, inputs: tuple[Tensor, ...] | Tensor) -> CounterMacs:
    """Both public counters on the same module and inputs."""
    return CounterMacs(fvcore_macs(module, inputs), ptflops_macs(module, inputs))
