"""Property-based fuzzing (hypothesis) of what a user hands nlbench: suite files and
results/manifest files. The property: a clean error (SuiteError, BlockError,
StoreError, CLI exit 2) or a valid result — never a traceback. Marked slow; CI runs
it (`make test` runs every test)."""

from __future__ import annotations

import datetime as dt
import json
import math
import tomllib
import warnings
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nlbench import store
from nlbench.blocks import BlockError
from nlbench.cli import main
from nlbench.suite import TOP_LEVEL_FIELDS, SuiteError, load_suite, parse_suite

pytestmark = pytest.mark.slow
EXAMPLES = settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))

# --- values TOML can hold, with the awkward ones weighted in --------------------------

hostile_text = st.sampled_from(["", "[/]", "[red]x", "$x^2$", "../../x", "/abs", "a\x00b", "x" * 300, "nl",
                                "srl_*", "*", "identity", "é", "float32", "cpu", "cuda", "latency_fwd"])
scalars = st.one_of(
    st.integers(min_value=-3, max_value=70), st.sampled_from([0, 1, 2, 8, 2**31, -1]),
    st.floats(allow_nan=True, allow_infinity=True), st.booleans(), hostile_text, st.text(max_size=12),
    st.datetimes(min_value=dt.datetime(1970, 1, 1), max_value=dt.datetime(2100, 1, 1)), st.dates(),
)
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                        st.dictionaries(st.text(max_size=8) | hostile_text, inner,
                                                                        max_size=4)), max_leaves=10)
VALID: dict[str, Any] = {"name": "fuzz", "blocks": ["identity", "nl"], "channels": [4], "resolutions": [4, [4, 6]],
                         "measure": ["params", "flops"]}
fields = st.sampled_from(sorted(TOP_LEVEL_FIELDS) + ["unknown_field"])
nested = {
    "latency": st.dictionaries(st.sampled_from(["warmup", "min_run_time_s", "min_samples", "max_samples", "threads", "x"]),
                               scalars, max_size=4),
    "limits": st.dictionaries(st.sampled_from(["case_timeout_s", "max_memory_gib", "x"]), scalars, max_size=3),
    "options": st.dictionaries(st.sampled_from(["nl", "srl_fft", "cgnl", "nope", "[/]"]),
                               st.dictionaries(st.sampled_from(["mode", "sub_sample", "reduction", "groups",
                                                                "spectral_relu", "frames", "gamma", "x"]),
                                               scalars, max_size=3), max_size=2),
}


@st.composite
def suites(draw) -> dict[str, Any]:
    """A mostly valid suite with a few fields replaced, removed or added."""
    data = dict(VALID)
    for _ in range(draw(st.integers(0, 3))):
        key = draw(fields)
        if draw(st.booleans()) and key in data:
            del data[key]
        else:
            data[key] = draw(nested[key]) if key in nested else draw(values)
    return data


def clean_parse(data: dict[str, Any]) -> None:
    try:
        suite = parse_suite(data, source="fuzz.toml")
        cases = suite.cases()
    except (SuiteError, BlockError):
        return
    assert all(case.case_id for case in cases)
    assert len({c.case_id for c in cases}) == len(cases)
    assert math.isfinite(suite.limits.case_timeout_s) and math.isfinite(suite.latency.min_run_time_s)


@EXAMPLES
@given(suites())
def test_suite_data_parses_cleanly_or_is_rejected_cleanly(data: dict[str, Any]) -> None:
    clean_parse(data)


def toml_text(data: dict[str, Any]) -> str:
    """A small TOML writer for the fuzzer: JSON arrays and inline tables are TOML too,
    except for dates, non-finite floats and non-ASCII-safe keys, written here."""

    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (dt.datetime, dt.date)):
            return v.isoformat()
        if isinstance(v, float) and not math.isfinite(v):
            return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf")
        if isinstance(v, (int, float)):
            return repr(v)
        if isinstance(v, str):
            return json.dumps(v)
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        return "{" + ", ".join(f"{json.dumps(k)} = {value(x)}" for k, x in v.items()) + "}"

    return "\n".join(f"{json.dumps(k)} = {value(v)}" for k, v in data.items()) + "\n"


@st.composite
def suite_files(draw) -> bytes:
    """Suite file bytes: a written suite, sometimes mangled (cut, bytes flipped, re-encoded)."""
    raw = toml_text(draw(suites())).encode()
    mangle = draw(st.sampled_from(["none", "none", "cut", "flip", "utf16", "bom", "junk"]))
    if mangle == "cut":
        raw = raw[: draw(st.integers(0, len(raw)))]
    elif mangle == "flip":
        at = draw(st.integers(0, max(0, len(raw) - 1)))
        raw = raw[:at] + bytes([draw(st.integers(0, 255))]) + raw[at + 1:]
    elif mangle == "utf16":
        raw = raw.decode().encode("utf-16")
    elif mangle == "bom":
        raw = b"\xef\xbb\xbf" + raw
    elif mangle == "junk":
        raw = draw(st.binary(max_size=64))
    return raw


@EXAMPLES
@given(raw=suite_files())
def test_suite_files_through_the_cli_are_a_dry_run_or_a_clean_error(tmp_path_factory, raw: bytes, capsys) -> None:
    path = tmp_path_factory.mktemp("suite") / "fuzz.toml"
    path.write_bytes(raw)
    code = main(["run", "--suite", str(path), "--dry-run"])
    out = capsys.readouterr().out
    assert code in (0, 2), out
    if code == 2:
        assert out.startswith("error:") and "Traceback" not in out
    else:  # accepted: the same file loads and expands outside the CLI too
        assert load_suite(str(path)).cases()
        tomllib.loads(raw.decode("utf-8"))


# --- results and manifests ---------------------------------------------------------

json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                                      max_size=3), max_leaves=8)
record_like = st.fixed_dictionaries(
    {"case_id": st.text(min_size=1, max_size=6), "status": st.sampled_from(["ok", "oom", "error", "bogus"])},
    optional={"block": hostile_text, "height": json_values, "width": json_values, "frames": json_values,
              "channels": json_values, "macs": json_values, "options": json_values, "kind": json_values,
              "latency_fwd_ms_median": json_values, "uncounted_ops": json_values})
lines = st.one_of(record_like.map(lambda r: json.dumps(r).encode()), json_values.map(lambda v: json.dumps(v).encode()),
                  st.binary(max_size=24))
manifests = st.one_of(st.just(json.dumps({"schema_version": 1, "suite": "x"}).encode()),
                      json_values.map(lambda v: json.dumps(v).encode()), st.binary(max_size=24),
                      st.dictionaries(st.sampled_from(["schema_version", "suite", "suite_source", "plugins"]),
                                      json_values).map(lambda d: json.dumps(d).encode()))


@EXAMPLES
@given(manifest=manifests, body=st.lists(lines, max_size=6), final_newline=st.booleans())
def test_store_files_load_cleanly_or_are_refused_cleanly(tmp_path_factory, manifest: bytes, body: list[bytes],
                                                         final_newline: bool) -> None:
    run_dir = tmp_path_factory.mktemp("run")
    (run_dir / store.MANIFEST_FILE).write_bytes(manifest)
    (run_dir / store.RESULTS_FILE).write_bytes(b"\n".join(body) + (b"\n" if final_newline else b""))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", store.StoreWarning)
        try:
            frame = store.load(run_dir)
        except store.StoreError:
            return
        ids = store.finished_case_ids(run_dir)
    assert set(frame["case_id"]) == ids
    for column in store.PUBLIC_COLUMNS:
        assert column in frame.columns
    before = {r["case_id"] for r in store.scan_records(run_dir).records}
    store.append_record(run_dir, {"case_id": "appended", "status": "ok"})
    after = {r["case_id"] for r in store.scan_records(run_dir).records}
    assert after == before | {"appended"}, "an append never loses a finished record"
