"""The one progress-callback shape of the harness, shared by the sweep and the probes.

A runner calls ``progress(case, record, index, total)`` after each unit of work it
finished and stored: ``case`` is the unit's identity (a :class:`~nlbench.case.Case`
for the sweep, a :class:`~nlbench.probes.ProbeCase` for a probe run), ``record`` the
record appended to the store for it, ``index`` counts the units this call runs from 1
up to ``total`` (units already in the store when resuming are not counted).
"""

from __future__ import annotations

from typing import Any, Callable, TypeVar

CaseT = TypeVar("CaseT")

ProgressCallback = Callable[[CaseT, dict[str, Any], int, int], None]
"""``(case, record, index, total) -> None``; subscript with the case type,
e.g. ``ProgressCallback[Case]``."""

__all__ = ["CaseT", "ProgressCallback"]
