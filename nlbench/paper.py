"""Paper-table comparisons: sum the blocks a paper inserted, per input size, and set
our counts beside the paper's with the relative error. Pure pandas, from the store."""

from __future__ import annotations

import pandas as pd

from nlbench.suite import PaperTable


def paper_comparison(df: pd.DataFrame, table: PaperTable) -> pd.DataFrame:
    """One row per paper row: paper and measured G-MACs (in the table's G) and params.

    ``ours_gmacs`` sums MACs over the maps the paper inserts blocks at, divided by the
    table's ``giga`` (2³⁰ for the SRL paper); params are summed and given in millions
    (10⁶). A row whose cases are missing or failed has null measurements, not zeros.
    """
    ok = df[(df["status"] == "ok")] if len(df) else df
    rows = []
    for paper_row in table.rows:
        maps = table.maps[paper_row.input]
        selected = ok[(ok["block"] == paper_row.block)
                      & ok.apply(lambda r: (int(r["height"]), int(r["width"])) in maps, axis=1)] if len(ok) else ok
        complete = len(selected) == len(maps) and selected["macs"].notna().all() and selected["params"].notna().all()
        macs = float(selected["macs"].sum()) if complete else None
        params = float(selected["params"].sum()) if complete else None
        ours_g = macs / table.giga if macs is not None else None
        ours_m = params / 1e6 if params is not None else None
        rows.append({
            "input": paper_row.input,
            "block": paper_row.block,
            "maps": " + ".join(f"{h}×{w}" for h, w in maps),
            "paper_gmacs": paper_row.gflops,
            "ours_gmacs": ours_g,
            "gmacs_rel_error": (ours_g - paper_row.gflops) / paper_row.gflops if ours_g is not None else None,
            "paper_params_m": paper_row.params_m,
            "ours_params_m": ours_m,
            "params_rel_error": (ours_m - paper_row.params_m) / paper_row.params_m if ours_m is not None else None,
            "ours_gflops_1e9": 2 * macs / 1e9 if macs is not None else None,
        })
    return pd.DataFrame(rows)
