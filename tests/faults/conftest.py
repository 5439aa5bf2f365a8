"""The CLI prints through one rich console; a wide one keeps messages on one line, so
the tests can look for a whole message."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    from nlbench import cli

    monkeypatch.setattr(cli.console, "width", 400)
