"""Parameter counts and bytes of a built block: what it adds to a network's weights."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn
from torch.nn.parameter import is_lazy


@dataclass(frozen=True)
class ParamCount:
    """Element counts and bytes of a module's parameters and buffers.

    ``total`` counts every parameter, trainable or frozen (``requires_grad=False``);
    ``trainable`` only those that require grad. Buffers (BatchNorm running statistics
    and the like) are not parameters: only their bytes are reported, in
    ``buffer_bytes``. A parameter or buffer shared by several submodules is counted
    once.
    """

    trainable: int
    total: int
    trainable_bytes: int
    total_bytes: int
    buffer_bytes: int

    def __post_init__(self) -> None:
        for name in ("trainable", "total", "trainable_bytes", "total_bytes", "buffer_bytes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"ParamCount.{name} must be a non-negative int, got {value!r}")
        if self.trainable > self.total or self.trainable_bytes > self.total_bytes:
            raise ValueError(
                f"ParamCount: trainable ({self.trainable}, {self.trainable_bytes} B) cannot exceed "
                f"total ({self.total}, {self.total_bytes} B)"
            )

    @property
    def frozen(self) -> int:
        """Parameters that do not require grad."""
        return self.total - self.trainable

    def columns(self) -> dict[str, int]:
        """The record columns: ``params`` is the trainable count (what a block adds)."""
        return {"params": self.trainable, "params_total": self.total,
                "param_bytes": self.total_bytes, "buffer_bytes": self.buffer_bytes}


def _nbytes(tensor: Tensor) -> int:
    return tensor.numel() * tensor.element_size()


def count_params(module: nn.Module) -> ParamCount:
    """Count ``module``'s parameters (trainable and all) and their bytes, and its
    buffers' bytes; each distinct tensor once, in its own dtype."""
    if not isinstance(module, nn.Module):
        raise TypeError(f"count_params: expected a torch.nn.Module, got {type(module).__name__}")
    trainable = total = trainable_bytes = total_bytes = 0
    for name, parameter in module.named_parameters():  # de-duplicated by identity
        if is_lazy(parameter):
            raise ValueError(
                f"count_params: parameter {name!r} is uninitialised (lazy module); "
                "run one forward pass before counting"
            )
        numel, nbytes = parameter.numel(), _nbytes(parameter)
        total += numel
        total_bytes += nbytes
        if parameter.requires_grad:
            trainable += numel
            trainable_bytes += nbytes
    buffer_bytes = 0
    for name, buffer in module.named_buffers():
        if is_lazy(buffer):
            raise ValueError(
                f"count_params: buffer {name!r} is uninitialised (lazy module); "
                "run one forward pass before counting"
            )
        buffer_bytes += _nbytes(buffer)
    return ParamCount(
        trainable=trainable,
        total=total,
        trainable_bytes=trainable_bytes,
        total_bytes=total_bytes,
        buffer_bytes=buffer_bytes,
    )
