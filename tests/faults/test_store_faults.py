"""Fault injection on the store: damaged, foreign and hostile results and manifests,
two writers, a full disk, hostile run names. Each asserts the message, and that no
finished record is lost or duplicated."""

from __future__ import annotations

import errno
import json
import os
import warnings
from pathlib import Path

import pytest

from nlbench import store
from nlbench.case import Case
from nlbench.cli import main


def record(case: Case, **fields) -> dict:
    return {"kind": "sweep", "case_id": case.case_id, **case.to_dict(), "status": "ok", "error": None, **fields}


CASES = [Case("nl", 8, size, size) for size in (4, 5, 6, 7, 8)]


@pytest.fixture()
def run(tmp_path: Path) -> Path:
    """A finished run of five records (no suite file: the store alone)."""
    run_dir = tmp_path / "run"
    store.write_manifest(run_dir, {"suite": "t", "suite_source": "smoke"})
    for case in CASES:
        store.append_record(run_dir, record(case, macs=case.height))
    return run_dir


def results(run_dir: Path) -> Path:
    return run_dir / store.RESULTS_FILE


def quiet_ids(run_dir: Path) -> set[str]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", store.StoreWarning)
        return {r["case_id"] for r in store.read_records(run_dir)}


def test_a_lost_final_newline_keeps_the_last_record_on_the_next_append(run: Path) -> None:
    """The data-loss fault: damage a middle line, strip the final newline, append."""
    lines = results(run).read_bytes().split(b"\n")[:-1]
    lines[2] = lines[2][:25]  # a damaged middle record
    results(run).write_bytes(b"\n".join(lines))  # and no final newline
    with pytest.warns(store.StoreWarning, match=r"skipped 1 line\(s\).*line 3"):
        assert len(store.read_records(run)) == 4
    extra = Case("nl", 8, 9, 9)
    store.append_record(run, record(extra))
    assert quiet_ids(run) == {c.case_id for c in CASES if c.height != 6} | {extra.case_id}
    assert results(run).read_bytes().endswith(b"\n")


def test_a_fragment_at_the_end_is_the_case_in_flight_and_is_cut(run: Path) -> None:
    with results(run).open("ab") as handle:
        handle.write(b'{"case_id": "in-flight", "sta')
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an unfinished last line is not damage: no warning
        assert len(store.read_records(run)) == 5
    store.append_record(run, record(Case("nl", 8, 9, 9)))
    assert b"in-flight" not in results(run).read_bytes()
    assert len(quiet_ids(run)) == 6


@pytest.mark.parametrize("line", [b"42", b"null", b"{}", b"[1, 2]", b'"text"', b'{"case_id": 3, "status": "ok"}',
                                  b'{"case_id": "x", "status": "fine"}', b"\xff\xfe not utf-8", b"{not json"])
def test_lines_that_are_not_records_are_skipped_and_named(run: Path, line: bytes) -> None:
    data = results(run).read_bytes().split(b"\n")
    data.insert(1, line)
    results(run).write_bytes(b"\n".join(data))
    with pytest.warns(store.StoreWarning, match="line 2"):
        frame = store.load(run)
    assert len(frame) == 5 and set(frame["case_id"]) == {c.case_id for c in CASES}


def test_results_file_that_is_a_directory(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    store.write_manifest(run_dir, {"suite": "t"})
    results(run_dir).mkdir()
    with pytest.raises(store.StoreError, match="found a directory"):
        store.load(run_dir)
    with pytest.raises(store.StoreError, match="found a directory"):
        store.append_record(run_dir, record(CASES[0]))


@pytest.mark.parametrize("content, message", [
    (b"{broken", "not valid UTF-8 JSON"),
    (b"\xff\xfe{}", "not valid UTF-8 JSON"),
    (b"[1, 2]", "expected a JSON object, got list"),
    (b'{"suite": "t"}', "field 'schema_version': expected an integer"),
    (b'{"schema_version": "1"}', "field 'schema_version': expected an integer"),
    (json.dumps({"schema_version": store.SCHEMA_VERSION + 1}).encode(), "newer than this nlbench reads"),
])
def test_a_manifest_that_cannot_be_trusted_is_refused(run: Path, content: bytes, message: str) -> None:
    (run / store.MANIFEST_FILE).write_bytes(content)
    with pytest.raises(store.StoreError, match=message):
        store.load(run)


def test_load_without_manifest_or_twice_says_so(run: Path, tmp_path: Path) -> None:
    bare = tmp_path / "bare"
    bare.mkdir()
    with pytest.raises(store.StoreError, match="no manifest.json"):
        store.load(bare)
    with pytest.raises(store.StoreError, match="given more than once"):
        store.load([run, run])
    with pytest.raises(store.StoreError, match="is a file"):
        store.load(results(run))


def test_one_writer_at_a_time(run: Path) -> None:
    with store.writer_lock(run):
        with pytest.raises(store.StoreError, match=rf"another nlbench is writing this run \(pid {os.getpid()}"):
            with store.writer_lock(run):
                pass
    with store.writer_lock(run):  # released: the next writer gets it
        pass


def test_a_full_disk_keeps_every_earlier_record(run: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before = results(run).read_bytes()

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(store.StoreError, match="No space left on device.*Every earlier record is kept"):
        store.append_record(run, record(Case("nl", 8, 9, 9)))
    monkeypatch.undo()
    assert results(run).read_bytes() == before, "the partial line is undone"
    assert len(quiet_ids(run)) == 5


@pytest.mark.parametrize("name", ["../../escape", "/tmp/absolute", "a\x00b", "x" * 300, "[red]x[/]", "..", "", "é/ü"])
def test_run_directories_stay_inside_the_root_with_safe_names(tmp_path: Path, name: str) -> None:
    root = tmp_path / "out"
    run_dir = store.create_run(root, name, {"suite": name})
    assert run_dir.parent == root and run_dir.is_dir()
    assert len(run_dir.name) <= store.MAX_RUN_NAME + 20
    assert all(ch.isalnum() or ch in "._-" for ch in run_dir.name) and not run_dir.name.startswith(".")
    assert store.read_manifest(run_dir)["suite"] == name  # the real name is kept, as data


def test_cli_report_and_resume_on_damaged_runs_exit_2_without_traceback(run: Path, tmp_path: Path, capsys) -> None:
    (run / store.MANIFEST_FILE).write_text("[]")
    assert main(["report", str(run), "--out", str(tmp_path / "reports")]) == 2
    assert "expected a JSON object" in capsys.readouterr().out
    assert main(["run", "--resume", str(run)]) == 2
    assert "expected a JSON object" in capsys.readouterr().out
    assert main(["report", str(results(run)), "--out", str(tmp_path / "reports")]) == 2
    assert "is a file" in capsys.readouterr().out
    store.write_manifest(run, {"suite": "t"})  # valid, but without the fields a resume needs
    assert main(["run", "--resume", str(run)]) == 2
    assert "field 'suite_source'" in capsys.readouterr().out
