"""The measuring worker's allocator: the environment it is started with, and how a
record names it."""

from __future__ import annotations

from pathlib import Path

import pytest

from nlbench.measure.allocator import (
    ALLOCATOR_DEFAULT,
    HUGE_PAGES_TUNABLE,
    RETAIN_TUNABLES,
    describe_allocator,
    transparent_huge_pages_mode,
    worker_environment,
)


def test_worker_environment_composes_the_tunables_asked_for() -> None:
    assert worker_environment(False, False) == {}
    assert worker_environment(True, False) == {"GLIBC_TUNABLES": RETAIN_TUNABLES}
    assert worker_environment(False, True) == {"GLIBC_TUNABLES": HUGE_PAGES_TUNABLE}
    both = worker_environment(True, True)["GLIBC_TUNABLES"].split(":")
    assert both == [*RETAIN_TUNABLES.split(":"), HUGE_PAGES_TUNABLE]


@pytest.mark.parametrize(("text", "mode"), [
    ("always [madvise] never\n", "madvise"),
    ("[always] madvise never\n", "always"),
    ("always madvise [never]\n", "never"),
    ("no brackets here\n", None),
    ("", None),
])
def test_the_kernels_huge_page_mode_is_the_bracketed_word(tmp_path: Path, text: str, mode: str | None) -> None:
    mode_file = tmp_path / "enabled"
    mode_file.write_text(text)
    assert transparent_huge_pages_mode(mode_file) == mode


def test_a_kernel_without_the_mode_file_reports_none(tmp_path: Path) -> None:
    assert transparent_huge_pages_mode(tmp_path / "missing") is None


def test_the_description_names_the_tunables_and_whether_huge_pages_are_granted(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import nlbench.measure.allocator as allocator

    mode_file = tmp_path / "enabled"
    mode_file.write_text("always madvise [never]\n")
    monkeypatch.setattr(allocator, "THP_MODE_FILE", mode_file)
    monkeypatch.delenv("GLIBC_TUNABLES", raising=False)
    assert describe_allocator() == ALLOCATOR_DEFAULT
    monkeypatch.setenv("GLIBC_TUNABLES", RETAIN_TUNABLES)
    assert describe_allocator() == f"glibc malloc, GLIBC_TUNABLES={RETAIN_TUNABLES}", "no huge pages asked for"
    monkeypatch.setenv("GLIBC_TUNABLES", worker_environment(True, True)["GLIBC_TUNABLES"])
    described = describe_allocator()
    assert HUGE_PAGES_TUNABLE in described and described.endswith("transparent huge pages: never")
    monkeypatch.setattr(allocator, "THP_MODE_FILE", tmp_path / "missing")
    assert describe_allocator().endswith("transparent huge pages: not reported by the kernel")
