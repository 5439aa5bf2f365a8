"""The measurer registry: what a suite's ``measure`` list can name.

A measurer is a name and a function ``(module, inputs, case, settings) -> value``;
the value is a frozen object whose ``columns()`` says what it adds to the case's
record. The built-in measurers register themselves in :mod:`nlbench.measure.builtin`;
a user registers one with :func:`register_measurer` from a plugin module
(``nlbench run --plugin MODULE``), exactly as blocks are registered.
"""

from __future__ import annotations

import importlib
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Mapping, Protocol

from nlbench.vocabulary import Limits, SamplingSettings, did_you_mean

if TYPE_CHECKING:
    from torch import Tensor, nn

    from nlbench.case import Case


class Measurement(Protocol):
    """A measurer's value: it knows the record columns it fills."""

    def columns(self) -> Mapping[str, Any]: ...


@dataclass(frozen=True)
class CaseSettings:
    """What to measure for a case and how, taken unchanged from the suite.

    ``deadline`` is the ``time.perf_counter()`` reading by which the case must be
    done; the runner sets it when the case starts (None: no limit). ``round_index`` is
    the sweep round the latency samples are taken in (see ``latency.rounds``).
    ``artifacts_dir`` is the run directory measurers that write files (``profile``)
    write under; the sweep sets it (a plain string: the settings travel to the
    measuring worker process), None when there is no run directory.
    """

    measure: tuple[str, ...]
    sampling: SamplingSettings = field(default_factory=SamplingSettings)
    limits: Limits = field(default_factory=Limits)
    deadline: float | None = None
    round_index: int = 0
    artifacts_dir: str | None = None

    def remaining_s(self) -> float | None:
        """Seconds left before the case's deadline (None: no limit); raises
        :class:`~nlbench.measure.latency.MeasurementTimeout` once it has passed."""
        if self.deadline is None:
            return None
        left = self.deadline - time.perf_counter()
        if left <= 0:
            from nlbench.measure.latency import MeasurementTimeout

            raise MeasurementTimeout("case time limit reached before the measurement started")
        return left


MeasureFunction = Callable[["nn.Module", "tuple[Tensor, ...]", "Case", CaseSettings], Measurement]


@dataclass(frozen=True)
class Measurer:
    """A registered measurement."""

    name: str
    function: MeasureFunction = field(compare=False, repr=False)
    description: str = ""
    source: str = "builtin"


_MEASURERS: dict[str, Measurer] = {}
_BUILTINS = "nlbench.measure.builtin"


class MeasurerError(ValueError):
    """An unknown or doubly registered measurer."""


def register_measurer(name: str, *, description: str = "") -> Callable[[MeasureFunction], MeasureFunction]:
    """Function decorator that registers a measurer under ``name``."""

    def decorate(function: MeasureFunction) -> MeasureFunction:
        existing = _MEASURERS.get(name)
        if existing is not None and existing.function is not function:
            raise MeasurerError(f"measurer {name!r} is already registered (by {existing.source})")
        _MEASURERS[name] = Measurer(name, function, description, function.__module__)
        return function

    return decorate


def unregister_measurer(name: str) -> None:
    """Remove a measurer (for tests and interactive sessions)."""
    _MEASURERS.pop(name, None)


def _registry() -> dict[str, Measurer]:
    importlib.import_module(_BUILTINS)  # registers the built-ins on first use
    return _MEASURERS


def measurer_names() -> tuple[str, ...]:
    """Every registered measurer, built-ins first in their canonical order."""
    return tuple(_registry())


def get_measurer(name: str) -> Measurer:
    """The measurer called ``name``; an unknown name suggests close ones."""
    registry = _registry()
    if name not in registry:
        raise MeasurerError(f"unknown measurement {name!r}.{did_you_mean(name, registry)} "
                            f"Known measurements: {', '.join(registry)}.")
    return registry[name]
