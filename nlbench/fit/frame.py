"""Results frame -> fits: group a results frame into series (one block and options,
one axis swept, everything else fixed), fit each with :func:`fit_series` and return
one row per series.

The frame is read in its normalised form (:func:`nlbench.store.normalise`): typed
shape columns, ``positions`` N = H·W·T, canonical ``options``.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from nlbench.fit.series import fit_series
from nlbench.fit.verdicts import VerdictRule
from nlbench.store import normalise
from nlbench.vocabulary import AXES, METRIC_NAMES, STATUS_OK, ClaimedComplexity, metric

REQUIRED_COLUMNS: tuple[str, ...] = ("block", "channels", "height", "width", "status")

FIT_COLUMNS: tuple[str, ...] = (
    "block", "options", "metric", "axis", "fixed_channels", "fixed_positions", "fixed_height", "fixed_width",
    "frames", "batch", "device", "dtype", "n_points", "n_zero", "x_min", "x_max", "slope", "slope_ci_low",
    "slope_ci_high", "asymptotic_slope", "asymptotic_ci_low", "asymptotic_ci_high", "model_slope_at_max",
    "dominant_term", "model_terms", "term_shares", "model_rel_rmse", "claimed", "claimed_exponent", "verdict",
    "verdict_reason",
)

ClaimLike = Any  # a ClaimedComplexity, a (text, n_exp, c_exp[, n_log_power]) tuple, or an object with those attributes


def ok_rows(df: pd.DataFrame) -> pd.DataFrame:
    """The ``ok`` rows of a results frame, normalised; a frame without the required columns is rejected."""
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"expected a pandas DataFrame of results, got {type(df).__name__}")
    missing = [column for column in REQUIRED_COLUMNS if column not in df.columns]
    if missing:
        raise ValueError(f"results frame lacks required column(s) {missing}; it has {sorted(df.columns)}")
    return normalise(df.loc[df["status"] == STATUS_OK])


def group_keys(axis: str) -> list[str]:
    """What stays fixed while ``axis`` is swept (besides block and options)."""
    common = ["frames", "batch", "device", "dtype"]
    if axis == "N":
        return ["channels", *common]
    return ["height", "width", *common]


def axis_column(axis: str) -> str:
    """The column holding the sizes along ``axis``."""
    return "positions" if axis == "N" else "channels"


def fixed_columns(fixed: Mapping[str, Any]) -> dict[str, Any]:
    """The output columns naming what a series held fixed (the other axis, frames,
    batch, device, dtype), as plain Python values."""
    return {"fixed_channels": plain(fixed.get("channels")), "fixed_height": plain(fixed.get("height")),
            "fixed_width": plain(fixed.get("width")), "frames": plain(fixed["frames"]),
            "batch": plain(fixed["batch"]), "device": plain(fixed["device"]), "dtype": plain(fixed["dtype"])}


def plain(value: Any) -> Any:
    """A group key as a plain Python value for the output (NaN/NA/None -> None)."""
    if pd.isna(value):
        return None
    return value.item() if isinstance(value, np.generic) else value


def _to_claim(value: ClaimLike) -> ClaimedComplexity:
    if isinstance(value, ClaimedComplexity):
        return value
    if isinstance(value, (tuple, list)):
        if len(value) not in (3, 4):
            raise ValueError(f"a claim tuple is (text, n_exponent, c_exponent[, n_log_power]), got {value!r}")
        text, n_exp, c_exp, *rest = value
        return ClaimedComplexity(str(text), float(n_exp), float(c_exp), int(rest[0]) if rest else 0)
    if all(hasattr(value, name) for name in ("text", "n_exponent", "c_exponent")):
        return ClaimedComplexity(str(value.text), float(value.n_exponent), float(value.c_exponent),
                                 int(getattr(value, "n_log_power", 0)))
    raise ValueError(f"cannot read a claimed complexity from {value!r}")


def _claims_from_frame(frame: pd.DataFrame) -> dict[tuple[str, str], ClaimedComplexity]:
    """Claims recorded in the results' ``claimed_*`` columns, one per (block, options):
    a block's implementations (its ``impl`` option) claim different complexities."""
    columns = ("claimed_complexity", "claimed_n_exponent", "claimed_c_exponent")
    if not all(column in frame.columns for column in columns):
        return {}
    claims: dict[tuple[str, str], ClaimedComplexity] = {}
    for (block, options), rows in frame.groupby(["block", "options"], sort=True):
        rows = rows.dropna(subset=list(columns))
        if rows.empty:
            continue
        first = rows.iloc[0]
        log_power = first.get("claimed_n_log_power", 0)
        claims[(str(block), str(options))] = ClaimedComplexity(
            str(first["claimed_complexity"]),
            float(first["claimed_n_exponent"]),
            float(first["claimed_c_exponent"]),
            0 if pd.isna(log_power) else int(log_power),
        )
    return claims


def fit_run(
    df: pd.DataFrame,
    claims: Mapping[str, ClaimLike] | None = None,
    *,
    metrics: Sequence[str] = METRIC_NAMES,
    tolerance: float = 0.15,
    max_ci_halfwidth: float = 0.25,
    min_points: int = 3,
    min_range: float = 4.0,
    tail_points: int = 3,
    max_terms: int = 3,
    confidence: float = 0.95,
) -> pd.DataFrame:
    """Fit every (block, metric, axis, fixed-other-axis group) of a results frame.

    A group is one block with one set of options, swept along one axis while the
    other axis (C for axis N, H and W for axis C), frames, batch, device and dtype
    stay fixed; groups with fewer than two distinct sizes measured are not an axis and
    give no row. Only ``status == "ok"`` rows are used. Claims come from ``claims``
    (block -> ClaimedComplexity or (text, n_exponent, c_exponent, n_log_power)) when
    given, else from the frame's ``claimed_*`` columns. Returns one row per group with
    :data:`FIT_COLUMNS`.
    """
    rule = VerdictRule(tolerance, max_ci_halfwidth, min_points, min_range)
    frame = ok_rows(df)
    recorded = _claims_from_frame(frame)
    given = {str(block): _to_claim(value) for block, value in (claims or {}).items()}
    records: list[dict[str, Any]] = []
    for name in metrics:
        column = metric(name).column
        measured = frame.loc[frame[column].notna()]
        for axis in AXES:
            keys = ["block", "options", *group_keys(axis)]
            x_column = axis_column(axis)
            for key, rows in measured.groupby(keys, dropna=False, sort=True):
                if rows[x_column].nunique() < 2:
                    continue
                fixed = dict(zip(keys, key))
                block = str(fixed["block"])
                fit = fit_series(
                    rows[x_column].to_numpy(float, na_value=np.nan),
                    rows[column].to_numpy(float),
                    axis,
                    given.get(block, recorded.get((block, str(fixed["options"])))),
                    rule=rule,
                    tail_points=tail_points,
                    max_terms=max_terms,
                    confidence=confidence,
                )
                record: dict[str, Any] = {
                    "block": block,
                    "options": fixed["options"],
                    "metric": name,
                    "axis": axis,
                    **fixed_columns(fixed),
                    "fixed_positions": plain(rows["positions"].iloc[0]) if axis == "C" else None,
                }
                record.update(fit.as_record())
                records.append(record)
    return pd.DataFrame.from_records(records, columns=list(FIT_COLUMNS))
