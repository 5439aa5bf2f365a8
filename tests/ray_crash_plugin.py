"""A plugin for tests/test_ray_executor.py: the measurement ``crash_once`` kills the
process measuring it the first time it runs (a marker file, named by the environment
variable NLBENCH_TEST_CRASH_MARKER, says it has), and measures nothing afterwards."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from nlbench.measure.registry import register_measurer


@dataclass(frozen=True)
class Survived:
    def columns(self) -> dict[str, bool]:
        return {"survived_crash_once": True}


@register_measurer("crash_once", description="test plugin: kills its process the first time it runs")
def crash_once(module, inputs, case, settings) -> Survived:  # type: ignore[no-untyped-def]
    marker = Path(os.environ["NLBENCH_TEST_CRASH_MARKER"])
    if not marker.exists():
        marker.write_text(case.case_id)
        os._exit(1)  # the worker dies mid-case, as a killed or crashed one does
    return Survived()
