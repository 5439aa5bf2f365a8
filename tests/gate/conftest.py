"""Every test here reads whole CLI messages: a wide console (tests/conftest.py)."""

import pytest


@pytest.fixture(autouse=True)
def _wide(wide_console: None) -> None:
    """Applies ``wide_console`` to every test of this directory."""
