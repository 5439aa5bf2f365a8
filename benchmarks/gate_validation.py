"""Validate `nlbench gate` on this machine: the false-alarm rate of A/A gate runs and
the detection rate of real, injected slowdowns.

Run on a quiet machine (nothing else running) from a checkout whose HEAD has the gate:

    .venv/bin/python benchmarks/gate_validation.py --pairs 6 --out results/gate-validation

It makes a detached worktree of HEAD (the "candidate" checkout) and alternates two
kinds of gate runs, each `nlbench gate --base HEAD --suite gate` run inside it:

- **A/A**: the candidate checkout unchanged — the same code on both sides;
- **slowed**: the candidate's `Case.build` (uncommitted change) registers a forward
  hook that copies the block's output tensor into a buffer, extra work that changes no
  count (copies count 0 MACs/FLOPs), sized per block to cost 10 % or 25 % of its
  forward. Half the blocks get 10 %, half 25 %, swapped from one slowed run to the next.

Calibration (how the slowdown's size is set): in a child process with the measuring
worker's allocator settings, at 1 thread, each gate case's forward median over 15
calls and the hook's own cost per copied element (the same hook, copying 2 M elements
from that case's output) give the elements to copy: fraction × forward time / cost per
element. The size actually realised is what the gate itself measures (its
Hodges-Lehmann forward ratio), reported beside the detection rate.

Writes every gate run's JSON result and `summary.json` / `summary.md` to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FRACTIONS = (0.10, 0.25)
HOOK_MARK = "# gate-validation: injected slowdown"


def calibrate(suite_name: str) -> dict:
    """Per block: forward median (ms) and the hook's cost per copied element (ns), at 1
    thread, in a child process with the measuring worker's allocator settings (the
    forward of the N×N blocks is 2-3× slower without them)."""
    from nlbench.measure.allocator import worker_environment
    from nlbench.vocabulary import SamplingSettings

    defaults = SamplingSettings()
    env = {**__import__("os").environ, **worker_environment(defaults.retain_freed_memory, defaults.huge_pages)}
    done = subprocess.run([sys.executable, __file__, "--calibrate-only", "--suite", suite_name],
                          capture_output=True, text=True, env=env, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def _calibrate_here(suite_name: str) -> dict:
    import torch

    from nlbench.suite import load_suite

    torch.set_num_threads(1)

    def median_s(call, repeats: int) -> float:
        for _ in range(3):
            call()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            call()
            times.append(time.perf_counter() - start)
        return statistics.median(times)

    forward_ms, hook_ns = {}, {}
    namespace: dict = {}
    exec(hook_source({"probe": 2_000_000}), namespace)  # the very hook the candidate runs
    for case in load_suite(suite_name).cases():
        module, x = case.build().eval(), case.make_input()
        with torch.no_grad():
            out = module(x)
            forward_ms[case.block] = 1e3 * median_s(lambda: module(x), 15)
            hook = namespace["_gate_validation_slowdown"]("probe")
            hook_ns[case.block] = 1e9 * median_s(lambda: hook(module, (x,), out), 15) / 2_000_000
    return {"forward_ms": forward_ms, "hook_ns_per_element": hook_ns}


def hook_source(extra_elements: dict[str, int]) -> str:
    """Source appended to the candidate's nlbench/case.py: the slowdown hook."""
    return f'''

{HOOK_MARK}
_GATE_VALIDATION_EXTRA = {extra_elements!r}


def _gate_validation_slowdown(block):
    extra = _GATE_VALIDATION_EXTRA.get(block, 0)
    buffer = {{}}

    def hook(module, inputs, output):
        import torch

        flat = output.detach().reshape(-1)
        if "b" not in buffer:
            buffer["b"] = torch.empty_like(flat)
        left = extra
        while left > 0:
            n = min(left, flat.numel())
            buffer["b"][:n].copy_(flat[:n])
            left -= n
    return hook
'''


def patch_candidate(checkout: Path, extra_elements: dict[str, int] | None) -> None:
    """Restore the candidate's case.py, then inject the slowdown when asked."""
    subprocess.run(["git", "checkout", "--", "nlbench/case.py"], cwd=checkout, check=True)
    if not extra_elements:
        return
    path = checkout / "nlbench" / "case.py"
    text = path.read_text()
    anchor = "        return module.to(device=self.device, dtype=torch_dtype(self.dtype))"
    assert anchor in text, "Case.build changed: update the validation's patch"
    text = text.replace(anchor, "        module.register_forward_hook(_gate_validation_slowdown(self.block))\n" + anchor)
    path.write_text(text + hook_source(extra_elements))


def gate_run(checkout: Path, out: Path, name: str, suite: str) -> dict:
    """One `nlbench gate --base HEAD` in the candidate checkout; its JSON, exit code and wall time."""
    json_path = out / f"{name}.json"
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "nlbench.cli", "gate", "--base", "HEAD", "--suite", suite,
                           "--out", str(out / "runs"), "--json", str(json_path)],
                          cwd=checkout, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode == 2 or not json_path.exists():
        raise RuntimeError(f"gate run {name} failed (exit {done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    data = json.loads(json_path.read_text())
    data["wall_s"] = wall
    json_path.write_text(json.dumps(data, indent=1))
    return data


def rejudged(run: dict, threshold: float, runs_dir: Path) -> list[dict]:
    """The time comparisons of one gate run judged again, from its two stored runs (by
    name under ``runs_dir``, so a moved results folder still reads), by the gate's own
    decision at ``threshold`` (the run's other settings unchanged)."""
    from nlbench.gate.compare import compare_sides
    from nlbench.gate.inputs import side_from_run
    from nlbench.gate.output import gate_json
    from nlbench.vocabulary import GateSettings

    gate = run["gate"]
    settings = GateSettings(**{**{k: gate["settings"][k] for k in ("alpha", "confidence")}, "threshold": threshold})
    base, cand = (side_from_run(runs_dir / Path(gate[side]).name) for side in ("baseline", "candidate"))
    result = compare_sides(base, cand, settings)
    return [row for row in gate_json(result)["comparisons"] if row["tier"] == "time"]


def summarise(results: list[dict], alpha: float, runs_dir: Path) -> dict:
    """False alarms of the A/A runs and detections of the slowed runs at thresholds of
    5 % and 10 %; per case at 10 % (:func:`by_case`)."""
    summary: dict = {"alpha": alpha, "runs": {}}
    for threshold in (0.05, 0.10):
        judged = [(r, rejudged(r, threshold, runs_dir)) for r in results]
        aa = [rows for r, rows in judged if r["kind"] == "aa"]
        slowed = [(r, rows) for r, rows in judged if r["kind"] == "slowed"]
        aa_rows = [row for rows in aa for row in rows]
        entry: dict = {
            "aa_gate_runs": len(aa),
            "aa_runs_with_false_alarm": sum(any(row["verdict"] == "regression" for row in rows) for rows in aa),
            "aa_comparisons": len(aa_rows),
            "aa_false_alarms": sum(row["verdict"] == "regression" for row in aa_rows),
            "aa_inconclusive": sum(row["verdict"] == "inconclusive" for row in aa_rows),
        }
        for fraction in FRACTIONS:
            for quantity in ("latency_fwd_ms", "latency_fwdbwd_ms"):
                rows = [row for r, run_rows in slowed for row in run_rows
                        if r["fractions"].get(row["block"]) == fraction and row["quantity"] == quantity
                        and (row["baseline"] or 0) >= 1.0]
                ratios = [row["ratio"] for row in rows if row["ratio"] is not None]
                entry[f"slowed_{fraction:.2f}_{quantity}"] = {
                    "comparisons": len(rows), "detected": sum(row["verdict"] == "regression" for row in rows),
                    "inconclusive": sum(row["verdict"] == "inconclusive" for row in rows),
                    "realised_ratio_median": statistics.median(ratios) if ratios else math.nan,
                    "realised_ratio_min": min(ratios) if ratios else math.nan,
                }
        summary["runs"][f"threshold_{threshold:.2f}"] = entry
        if threshold == 0.10:
            summary["by_case"] = by_case(slowed)
    summary["wall_s"] = {kind: [round(r["gate"]["wall_s"], 1) for r in results if r["kind"] == kind]
                         for kind in ("aa", "slowed")}
    return summary


def by_case(slowed: list[tuple[dict, list[dict]]]) -> list[dict]:
    """Per block, injected fraction and pass: the slowdown's realised size (the median of
    the gate's own ratio estimates over the slowed runs that gave the block that
    fraction) and how many of those runs flagged it."""
    groups: dict[tuple[str, float, str], list[dict]] = {}
    for run, rows in slowed:
        for row in rows:
            fraction = run["fractions"].get(row["block"])
            if fraction is not None:
                groups.setdefault((row["block"], fraction, row["quantity"]), []).append(row)
    table = []
    for (block, fraction, quantity), rows in sorted(groups.items()):
        ratios = [r["ratio"] for r in rows if r["ratio"] is not None]
        table.append({"block": block, "fraction": fraction, "quantity": quantity, "runs": len(rows),
                      "baseline_ms": statistics.median(r["baseline"] for r in rows),
                      "realised": statistics.median(ratios) if ratios else math.nan,
                      "detected": sum(r["verdict"] == "regression" for r in rows),
                      "inconclusive": sum(r["verdict"] == "inconclusive" for r in rows)})
    return table


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=6, help="A/A + slowed pairs of gate runs")
    parser.add_argument("--aa-only", action="store_true", help="only the A/A runs of each pair (false alarms)")
    parser.add_argument("--suite", default="gate")
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "gate-validation")
    parser.add_argument("--calibrate-only", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--summarise-only", action="store_true",
                        help="recompute summary.json from the results.json already in --out")
    args = parser.parse_args()
    if args.summarise_only:
        results = json.loads((args.out / "results.json").read_text())
        summary = summarise(results, results[0]["gate"]["settings"]["alpha"], args.out / "runs")
        (args.out / "summary.json").write_text(json.dumps(summary, indent=1))
        print(json.dumps(summary, indent=1))
        return 0
    if args.calibrate_only:
        print(json.dumps(_calibrate_here(args.suite)))
        return 0
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    calibration = calibrate(args.suite)
    forward_ms, hook_ns = calibration["forward_ms"], calibration["hook_ns_per_element"]
    blocks = sorted(forward_ms)
    (out / "calibration.json").write_text(json.dumps(calibration, indent=1))
    results = []
    with tempfile.TemporaryDirectory(prefix="gate-validation-") as parent:
        checkout = Path(parent) / "candidate"
        subprocess.run(["git", "worktree", "add", "--detach", "--quiet", str(checkout), "HEAD"], cwd=ROOT, check=True)
        try:
            for pair in range(args.pairs):
                patch_candidate(checkout, None)
                results.append({"kind": "aa", "fractions": {}, "gate": gate_run(checkout, out, f"aa-{pair}", args.suite)})
                if args.aa_only:
                    print(f"A/A {pair}: exit {results[-1]['gate']['exit_code']} in {results[-1]['gate']['wall_s']:.0f} s",
                          flush=True)
                    (out / "results.json").write_text(json.dumps(results, indent=1))
                    continue
                fractions = {b: FRACTIONS[(i + pair) % 2] for i, b in enumerate(blocks)}
                extra = {b: int(round(fractions[b] * forward_ms[b] * 1e6 / hook_ns[b])) for b in blocks}
                patch_candidate(checkout, extra)
                results.append({"kind": "slowed", "fractions": fractions, "extra_elements": extra,
                                "gate": gate_run(checkout, out, f"slowed-{pair}", args.suite)})
                print(f"pair {pair}: A/A exit {results[-2]['gate']['exit_code']} in {results[-2]['gate']['wall_s']:.0f} s, "
                      f"slowed exit {results[-1]['gate']['exit_code']} in {results[-1]['gate']['wall_s']:.0f} s",
                      flush=True)
                (out / "results.json").write_text(json.dumps(results, indent=1))
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(checkout)], cwd=ROOT)
    alpha = results[0]["gate"]["settings"]["alpha"]  # every run used the suite's settings
    summary = summarise(results, alpha, out / "runs")
    summary["calibration"] = calibration
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    print(json.dumps(summary["runs"], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
