"""Fixtures for the report tests (helpers live in synthetic_runs.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterable

import pytest

from nlbench.report import Report, build_report
from synthetic_runs import channel_records, standard_records, write_run


@pytest.fixture(scope="module")
def synthetic_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run: a resolution sweep (C=16, with nl OOM at 64×64) plus a channel sweep at 16×16.
    Module-scoped: tests only read it."""
    return write_run(tmp_path_factory.mktemp("results"), "synthetic-run", standard_records() + channel_records())


@pytest.fixture(scope="module")
def synthetic_report(synthetic_run: Path) -> Report:
    """The report of :func:`synthetic_run` (frozen, so tests can share it)."""
    return build_report([synthetic_run])


@pytest.fixture()
def make_run(tmp_path: Path) -> Callable[..., Path]:
    """Factory: ``make_run(name, records, **write_run_kwargs)`` under a temporary results root."""
    def factory(name: str, records: Iterable[dict[str, Any]], **kwargs: Any) -> Path:
        return write_run(tmp_path / "results", name, records, **kwargs)

    return factory
