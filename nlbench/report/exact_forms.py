"""The report's "Exact forms" section: a block measured in several of its exact
implementations (the ``impl`` option) — dense vs factorized vs fused — side by side, and
the plain statement of whose N² is an implementation choice. Pure pandas, from the store
and the fits."""

from __future__ import annotations

import json
import math
from typing import Any

import pandas as pd

from nlbench.report.formatting import block_label, size_text
from nlbench.report.model import Cell, Section, Table, number_column, text_column
from nlbench.vocabulary import IMPL_DENSE as DEFAULT_IMPL
from nlbench.vocabulary import IMPL_OPTION, STATUS_OK, metric
#: The metrics compared, in column order.
EXACT_FORM_METRICS: tuple[str, ...] = ("macs", "latency_fwd_ms", "peak_mem_fwd_bytes")
#: An asymptotic MACs slope along N below this is "not quadratic".
SUBQUADRATIC_SLOPE = 1.5

EXACT_FORM_COLUMNS: tuple[str, ...] = (
    "family", "block", "impl", "options", "height", "width", "positions",
    *(f"{m}_value" for m in EXACT_FORM_METRICS), *(f"{m}_vs_dense" for m in EXACT_FORM_METRICS),
    *(f"{m}_slope" for m in EXACT_FORM_METRICS), "latency_warnings",
)


def _options(value: Any) -> dict[str, Any]:
    try:
        options = json.loads(value) if isinstance(value, str) else dict(value or {})
    except (ValueError, TypeError):
        return {}
    return options if isinstance(options, dict) else {}


def exact_form_table(sweep: pd.DataFrame, fits: pd.DataFrame) -> pd.DataFrame:
    """One row per implementation of every block configuration measured in two or more
    implementations (same block, same other options, same C, batch, frames, device,
    dtype): its cost at the largest N every implementation finished, the ratio to the
    dense form there, and the fitted asymptotic slope along N of each metric."""
    ok = sweep.loc[sweep["status"] == STATUS_OK].copy()
    if ok.empty:
        return pd.DataFrame(columns=EXACT_FORM_COLUMNS)
    parsed = ok["options"].map(_options)
    ok["impl"] = parsed.map(lambda o: str(o.get(IMPL_OPTION, DEFAULT_IMPL)))
    ok["family_options"] = parsed.map(lambda o: json.dumps({k: v for k, v in o.items() if k != IMPL_OPTION},
                                                           sort_keys=True))
    keys = ["block", "family_options", "channels", "batch", "frames", "device", "dtype"]
    rows: list[dict[str, Any]] = []
    for key, family in ok.groupby(keys, dropna=False, sort=False):
        impls = list(dict.fromkeys(family["impl"]))
        if len(impls) < 2 or DEFAULT_IMPL not in impls:
            continue
        shared = set.intersection(*(set(family.loc[family["impl"] == i, "positions"]) for i in impls))
        if not shared:
            continue
        at = family.loc[family["positions"] == max(shared)]
        dense = at.loc[at["impl"] == DEFAULT_IMPL].iloc[0]
        label = block_label(key[0], key[1], None)
        for impl in impls:
            row = at.loc[at["impl"] == impl].iloc[0]
            record: dict[str, Any] = {"family": label, "block": key[0], "impl": impl, "options": row["options"],
                                      "height": row["height"], "width": row["width"],
                                      "positions": row["positions"]}
            for name in EXACT_FORM_METRICS:
                column = metric(name).column
                value, reference = row.get(column), dense.get(column)
                record[f"{name}_value"] = value
                record[f"{name}_vs_dense"] = (value / reference if _finite(value) and _finite(reference) and reference
                                              else math.nan)
                record[f"{name}_slope"] = _slope(fits, key[0], row["options"], name)
            warned = [w for r in (row, dense) for w in (r.get(metric("latency_fwd_ms").warnings_column) or [])]
            record["latency_warnings"] = sorted(set(warned))
            rows.append(record)
    return pd.DataFrame(rows, columns=EXACT_FORM_COLUMNS)


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def _slope(fits: pd.DataFrame, block: str, options: str, name: str) -> float:
    """The fitted asymptotic slope along N of one configuration's metric (NaN if none)."""
    if fits.empty:
        return math.nan
    chosen = fits.loc[(fits["block"] == block) & (fits["options"] == options) & (fits["metric"] == name)
                      & (fits["axis"] == "N"), "asymptotic_slope"]
    return float(chosen.iloc[0]) if len(chosen) else math.nan


def exact_form_findings(table: pd.DataFrame) -> list[str]:
    """Per family, whether its N² belongs to the block or to the implementation."""
    found = []
    for family, rows in table.groupby("family", sort=False):
        dense = rows.loc[rows["impl"] == DEFAULT_IMPL].iloc[0]
        for _, row in rows.loc[rows["impl"] != DEFAULT_IMPL].iterrows():
            slope, dense_slope = row["macs_slope"], dense["macs_slope"]
            where = size_text(row["height"], row["width"])
            speed = (f"{1 / row['latency_fwd_ms_vs_dense']:.3g}× faster" if row["latency_fwd_ms_vs_dense"] < 1
                     else f"{row['latency_fwd_ms_vs_dense']:.3g}× slower") if _finite(row["latency_fwd_ms_vs_dense"]) \
                else "not timed"
            if row["latency_warnings"]:
                speed += f" (a latency it rests on carries warnings: {', '.join(row['latency_warnings'])})"
            memory = (f", peak memory {row['peak_mem_fwd_bytes_vs_dense']:.3g}× the dense form's"
                      if _finite(row["peak_mem_fwd_bytes_vs_dense"]) else "")
            if _finite(slope) and _finite(dense_slope) and slope < SUBQUADRATIC_SLOPE <= dense_slope:
                found.append(f"**{family}**: its N² is an implementation choice — `impl={row['impl']}` computes the "
                             f"same function with MACs growing as N^{slope:.2f} (dense: N^{dense_slope:.2f}); at "
                             f"{where} it is {speed}{memory}.")
            elif _finite(slope):
                mem_slope = row["peak_mem_fwd_bytes_slope"]
                mem_text = (f"; its peak memory grows as N^{mem_slope:.2f} (dense: "
                            f"N^{dense['peak_mem_fwd_bytes_slope']:.2f})" if _finite(mem_slope) else "")
                found.append(f"**{family}**: its N² is not an implementation choice in compute — `impl={row['impl']}` "
                             f"still does MACs growing as N^{slope:.2f}{mem_text}; at {where} it is {speed}{memory}.")
    return found


def exact_forms_section(sweep: pd.DataFrame, fits: pd.DataFrame) -> Section | None:
    """The section, or None when no block was measured in two implementations."""
    table = exact_form_table(sweep, fits)
    if table.empty:
        return None
    spec = [text_column("block"), text_column("impl"), text_column("at"),
            number_column("MACs", "G = 10⁹", scale=1e9), number_column("MACs vs dense"),
            number_column("forward latency", "ms"), number_column("latency vs dense"),
            number_column("peak memory, forward", "MB = 10⁶ bytes", scale=1e6),
            number_column("memory vs dense"),
            number_column("MACs slope along N"), number_column("latency slope along N"),
            number_column("memory slope along N")]
    rows: list[list[Cell]] = [
        [r["family"], r["impl"], size_text(r["height"], r["width"]),
         *(_cell(r[c]) for c in ("macs_value", "macs_vs_dense", "latency_fwd_ms_value", "latency_fwd_ms_vs_dense",
                                 "peak_mem_fwd_bytes_value", "peak_mem_fwd_bytes_vs_dense", "macs_slope",
                                 "latency_fwd_ms_slope", "peak_mem_fwd_bytes_slope"))]
        for _, r in table.iterrows()]
    intro = ("Blocks measured in more than one exact implementation (option `impl`: the same function and "
             "parameters, computed another way), at the largest N every implementation finished, with the "
             "asymptotic log-log slope along N that nlbench.fit fitted to each (2 = quadratic). Latency is the "
             "forward median; memory the forward's peak.")
    return Section("exact-forms", "Exact forms: dense vs factorized vs fused", intro=intro,
                   notes=tuple(exact_form_findings(table)),
                   tables=(Table("Each implementation against the dense form", tuple(spec),
                                 tuple(tuple(r) for r in rows)),))


def _cell(value: Any) -> Cell:
    return float(value) if _finite(value) else None
