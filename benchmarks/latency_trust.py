"""Is latency trustworthy? Compare runs of the same suite: the share of forward cases
(median ≥ 0.1 ms) with IQR/median ≤ 10 %, the share of cases on which two runs agree
within 10 %, and — for a run made beside a busy process — whether every case is within
15 % of the quiet run or carries `contended`.

    python benchmarks/latency_trust.py QUIET_RUN [SECOND_QUIET_RUN] [--busy BUSY_RUN]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from nlbench import store


def forward_cases(run: Path) -> pd.DataFrame:
    frame = store.sweep_records(store.load(run))
    ok = frame[(frame["status"] == "ok") & (frame["latency_fwd_ms_median"] >= 0.1)]
    return ok.set_index("case_id")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("quiet", type=Path)
    parser.add_argument("second", type=Path, nargs="?")
    parser.add_argument("--busy", type=Path)
    args = parser.parse_args()
    quiet = forward_cases(args.quiet)
    ratio = quiet["latency_fwd_ms_iqr"] / quiet["latency_fwd_ms_median"]
    warned = quiet["latency_fwd_warnings"].map(bool)
    print(f"{args.quiet.name}: {len(quiet)} forward cases >= 0.1 ms; IQR/median <= 10 %: {(ratio <= 0.10).mean():.0%}; "
          f"median IQR/median {ratio.median():.1%}; with a warning: {warned.mean():.0%}")
    for name, frame in (("second", args.second), ("busy", args.busy)):
        if frame is None:
            continue
        other = forward_cases(frame)
        both = quiet.index.intersection(other.index)
        change = (other.loc[both, "latency_fwd_ms_median"] / quiet.loc[both, "latency_fwd_ms_median"] - 1).abs()
        if name == "second":
            print(f"{frame.name}: agrees within 10 % on {(change <= 0.10).mean():.0%} of {len(both)} cases "
                  f"(median |change| {change.median():.1%})")
        else:
            contended = other.loc[both, "latency_fwd_warnings"].map(lambda w: "contended" in (w or []))
            silent = (change > 0.15) & ~contended
            print(f"{frame.name}: within 15 % {(change <= 0.15).mean():.0%}, contended {contended.mean():.0%}, "
                  f"off by > 15 % without 'contended': {int(silent.sum())} of {len(both)}")
            for case_id in silent[silent].index:
                print(f"   {quiet.loc[case_id, 'label']}: {quiet.loc[case_id, 'latency_fwd_ms_median']:.3g} -> "
                      f"{other.loc[case_id, 'latency_fwd_ms_median']:.3g} ms, warnings {other.loc[case_id, 'latency_fwd_warnings']}")


if __name__ == "__main__":
    main()
