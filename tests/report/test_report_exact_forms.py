"""The report's exact-forms section: implementations of one block side by side, ratios
to the dense form, fitted slopes, and the statement of whose N² is an implementation
choice — from hand-made frames with known growth."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from nlbench import store
from nlbench.blocks.registry import IMPL_OPTION as REGISTRY_IMPL_OPTION
from nlbench.fit import fit_run
from nlbench.report.exact_forms import IMPL_OPTION, exact_form_table, exact_forms_section

SIZES = (8, 16, 32, 64)


def _rows(block: str, options: dict, macs_per: float, exponent: float, latency_scale: float,
          memory_exponent: float) -> list[dict]:
    rows = []
    for side in SIZES:
        n = side * side
        rows.append({"case_id": f"{block}-{json.dumps(options)}-{side}", "kind": "sweep", "block": block,
                     "options": json.dumps(options), "channels": 64, "height": side, "width": side, "batch": 1,
                     "device": "cpu", "dtype": "float32", "status": "ok", "macs": macs_per * n ** exponent,
                     "flops": 2 * macs_per * n ** exponent,
                     "latency_fwd_ms_median": latency_scale * n ** exponent, "latency_fwd_ms_iqr": 0.0,
                     "peak_mem_fwd_bytes": 100.0 * n ** memory_exponent,
                     "claimed_complexity": "O(N²)", "claimed_n_exponent": 2.0, "claimed_c_exponent": 1.0})
    return rows


@pytest.fixture()
def sweep() -> pd.DataFrame:
    rows = (_rows("snl", {}, 1.0, 2.0, 1e-6, 2.0) + _rows("snl", {"impl": "factorized"}, 50.0, 1.0, 2e-5, 1.0)
            + _rows("nl", {}, 1.0, 2.0, 1e-6, 2.0) + _rows("nl", {"impl": "sdpa"}, 1.0, 2.0, 5e-7, 1.0)
            + _rows("a2", {}, 10.0, 1.0, 1e-5, 1.0))
    return store.normalise(pd.DataFrame(rows))


def test_the_option_name_is_the_registrys() -> None:
    assert IMPL_OPTION == REGISTRY_IMPL_OPTION


def test_one_row_per_implementation_with_ratios_and_slopes(sweep: pd.DataFrame) -> None:
    table = exact_form_table(sweep, fit_run(sweep)).set_index(["block", "impl"])
    assert set(table.index) == {("snl", "dense"), ("snl", "factorized"), ("nl", "dense"), ("nl", "sdpa")}
    n = 64 * 64
    factorized = table.loc[("snl", "factorized")]
    assert factorized["positions"] == n
    assert factorized["macs_vs_dense"] == pytest.approx(50.0 * n / n**2)
    assert factorized["macs_slope"] == pytest.approx(1.0, abs=0.02)
    assert table.loc[("snl", "dense"), "macs_slope"] == pytest.approx(2.0, abs=0.02)
    assert table.loc[("nl", "sdpa"), "latency_fwd_ms_vs_dense"] == pytest.approx(0.5)
    assert table.loc[("nl", "sdpa"), "peak_mem_fwd_bytes_slope"] == pytest.approx(1.0, abs=0.02)


def test_findings_say_whose_n_squared_is_an_implementation_choice(sweep: pd.DataFrame) -> None:
    section = exact_forms_section(sweep, fit_run(sweep))
    assert section is not None
    snl = next(note for note in section.notes if note.startswith("**snl**"))
    nl = next(note for note in section.notes if note.startswith("**nl**"))
    assert "is an implementation choice" in snl and "N^1.00" in snl
    assert "is not an implementation choice in compute" in nl and "2× faster" in nl
    assert "peak memory grows as N^1.00 (dense: N^2.00)" in nl


def test_no_section_without_two_implementations(sweep: pd.DataFrame) -> None:
    only_dense = sweep.loc[sweep["options"] == "{}"]
    assert exact_forms_section(only_dense, fit_run(only_dense)) is None
