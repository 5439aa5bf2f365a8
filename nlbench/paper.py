"""Paper-table comparisons: sum the blocks a paper inserted, per input size, and set
our counts beside the paper's with the relative error. Pure pandas, from the store."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from nlbench.store import normalise
from nlbench.vocabulary import KIND_SWEEP, STATUS_OK

if TYPE_CHECKING:
    from nlbench.suite import PaperTable


def paper_comparison(df: pd.DataFrame, table: "PaperTable") -> pd.DataFrame:
    """One row per paper row: paper and measured G-MACs (in the table's G) and params.

    ``ours_gmacs`` sums multiply-add MACs over the maps the paper inserts blocks at,
    divided by the table's ``giga`` (2³⁰ for the SRL paper); ``ours_gflops_1e9`` sums
    every FLOP (2·MACs + softmax, elementwise, norms, biases) over 10⁹; params are summed
    and given in millions (10⁶). A row whose cases are missing or failed has null
    measurements, not zeros.
    """
    frame = normalise(df)
    ok = frame.loc[(frame["kind"] == KIND_SWEEP) & (frame["status"] == STATUS_OK)]
    sizes = pd.MultiIndex.from_frame(ok[["height", "width"]])
    rows = []
    for paper_row in table.rows:
        maps = table.maps[paper_row.input]
        selected = ok.loc[(ok["block"] == paper_row.block).to_numpy() & sizes.isin(maps)]
        complete = len(selected) == len(maps) and selected[["macs", "flops", "params"]].notna().all(axis=None)
        macs = float(selected["macs"].sum()) if complete else None
        flops = float(selected["flops"].sum()) if complete else None
        params = float(selected["params"].sum()) if complete else None
        ours_g = macs / table.giga if macs is not None else None
        ours_m = params / 1e6 if params is not None else None
        rows.append({
            "input": paper_row.input,
            "block": paper_row.block,
            "maps": " + ".join(f"{h}×{w}" for h, w in maps),
            "paper_gmacs": paper_row.gflops,
            "ours_gmacs": ours_g,
            "gmacs_rel_error": _relative_error(ours_g, paper_row.gflops),
            "paper_params_m": paper_row.params_m,
            "ours_params_m": ours_m,
            "params_rel_error": _relative_error(ours_m, paper_row.params_m),
            "ours_gflops_1e9": flops / 1e9 if flops is not None else None,
        })
    return pd.DataFrame(rows)


def _relative_error(ours: float | None, paper: float) -> float | None:
    """ours / paper − 1, or None when either side is missing or the paper's is 0."""
    return (ours - paper) / paper if ours is not None and paper else None
