"""Synthetic costs with known exponents and terms, as sizes and as results-frame rows."""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np
import pandas as pd

N_GRID = 64 * 2.0 ** np.arange(9)  # 64 .. 16384: two and a half decades
SIDES = [8, 16, 32, 64, 128]  # square frames: N = 64 .. 16384
CHANNELS = [16, 32, 64, 128, 256, 512]

CLAIMS = {
    "nl": ("O(C·H²W²)", 2.0, 1.0, 0),
    "a2": ("O(C²·HW)", 1.0, 2.0, 0),
    "cgnl": ("O(C·HW)", 1.0, 1.0, 0),
    "srl_fft": ("O(C·HW·log(HW))", 1.0, 1.0, 1),
    "identity": ("O(1)", 0.0, 0.0, 0),
}


def case_row(block: str, channels: int, height: int, width: int, macs: float, **extra: Any) -> dict[str, Any]:
    """One hand-made results row (not normalised), its claim in the ``claimed_*`` columns."""
    text, n_exp, c_exp, log_power = CLAIMS.get(block, ("?", math.nan, math.nan, 0))
    row = {
        "block": block,
        "options": "{}",
        "channels": channels,
        "height": height,
        "width": width,
        "frames": None,
        "batch": 1,
        "device": "cpu",
        "dtype": "float32",
        "status": "ok",
        "macs": macs,
        "latency_fwd_ms_median": math.nan,
        "latency_fwdbwd_ms_median": math.nan,
        "peak_mem_fwd_bytes": math.nan,
        "peak_mem_fwdbwd_bytes": math.nan,
        "claimed_complexity": text,
        "claimed_n_exponent": n_exp,
        "claimed_c_exponent": c_exp,
        "claimed_n_log_power": log_power,
    }
    row.update(extra)
    return row


def sweep_rows(block: str, cost: Callable[[float, float], float], *, fixed_c: int = 64,
               fixed_side: int = 32) -> list[dict]:
    """A resolution sweep at C=fixed_c and a channel sweep at fixed_side², costs from cost(N, C)."""
    rows = [case_row(block, fixed_c, s, s, cost(s * s, fixed_c)) for s in SIDES]
    rows += [case_row(block, c, fixed_side, fixed_side, cost(fixed_side**2, c)) for c in CHANNELS if c != fixed_c]
    return rows


def only_row(result: pd.DataFrame, **where: Any) -> pd.Series:
    """The one row of ``result`` matching ``where`` (fails unless exactly one does)."""
    mask = np.ones(len(result), dtype=bool)
    for column, value in where.items():
        mask &= (result[column] == value).to_numpy()
    chosen = result.loc[mask]
    assert len(chosen) == 1, f"expected one row for {where}, got {len(chosen)}:\n{chosen}"
    return chosen.iloc[0]
