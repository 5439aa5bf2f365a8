"""The three ways to run the gate, as functions the CLI calls:

- :func:`gate_against_ref` — measure a suite for ``REF`` (a temporary git worktree) and
  for the working tree, in interleaved rounds on this machine, and compare;
- :func:`gate_against_run` — measure the working tree now on a stored baseline run's
  suite and compare (the cost tier against a committed baseline; ``update`` rewrites
  the baseline with the new counts);
- :func:`gate_stored` — compare two stored runs or two pytest-benchmark JSON files.
"""

from __future__ import annotations

import dataclasses
import shutil
from dataclasses import dataclass
from pathlib import Path
from nlbench import store
from nlbench.case import Case
from nlbench.gate.compare import TIERS, compare_sides
from nlbench.gate.inputs import KIND_RUN, read_side, side_from_run
from nlbench.gate.model import GateResult, Side
from nlbench.gate.paired import BASE, CANDIDATE, Tree, measure_interleaved
from nlbench.gate.worktree import describe_tree, repository_root, worktree
from nlbench.progress import ProgressCallback
from nlbench.suite import Suite, SuiteError, read_gate_settings
from nlbench.vocabulary import COST_MEASUREMENTS, TIER_COST, GateSettings

DEFAULT_SUITE = "gate"


@dataclass(frozen=True)
class GateOptions:
    """What the command line adds to a suite's ``[gate]`` settings."""

    threshold: float | None = None
    alpha: float | None = None
    cost_only: bool = False
    allow_cost_change: bool = False
    strict: bool = False

    def settings(self, base: GateSettings | None) -> GateSettings:
        """``base`` (a suite's settings, or the defaults) with the command line's overrides."""
        overrides = {k: v for k, v in (("threshold", self.threshold), ("alpha", self.alpha)) if v is not None}
        return dataclasses.replace(base or GateSettings(), **overrides)

    @property
    def tiers(self) -> tuple[str, ...]:
        return (TIER_COST,) if self.cost_only else TIERS

    def suite(self, suite: Suite) -> Suite:
        """The suite as the gate measures it: counts only with ``cost_only``."""
        if not self.cost_only:
            return suite
        return dataclasses.replace(suite, measure=tuple(m for m in suite.measure if m in COST_MEASUREMENTS)
                                   or COST_MEASUREMENTS)

    def judge(self, baseline: Side, candidate: Side, settings: GateSettings | None) -> GateResult:
        """The two sides judged with these options over ``settings`` (a suite's, or None)."""
        return compare_sides(baseline, candidate, self.settings(settings), tiers=self.tiers,
                             allow_cost_change=self.allow_cost_change, strict=self.strict)


def gate_against_ref(ref: str, suite: Suite, out_root: Path, options: GateOptions, *,
                     only_blocks: list[str] | None = None, device: str | None = None,
                     plugins: list[str] | None = None,
                     progress: ProgressCallback[Case] | None = None) -> tuple[GateResult, dict[str, Path]]:
    """``ref`` against the working tree of the checkout the command runs in."""
    root = repository_root()
    suite = options.suite(suite)
    with worktree(root, ref) as base_root:
        trees = {BASE: Tree(base_root, describe_tree(base_root, ref)), CANDIDATE: Tree(root, describe_tree(root))}
        runs = measure_interleaved(suite, trees, out_root, only_blocks=only_blocks, device=device,
                                   plugins=plugins, progress=progress)
    result = options.judge(side_from_run(runs[BASE]), side_from_run(runs[CANDIDATE]), suite.gate)
    return result, runs


def gate_against_run(baseline_dir: Path, out_root: Path, options: GateOptions, *, update: bool = False,
                     progress: ProgressCallback[Case] | None = None) -> tuple[GateResult, Path]:
    """Measure the working tree now on ``baseline_dir``'s suite and compare. With
    ``update`` the baseline is rewritten from the new run (the run stays too)."""
    from nlbench.sweep import resume_arguments, run_sweep, start_run

    baseline = read_side(baseline_dir)
    if baseline.kind != KIND_RUN:
        raise SuiteError(str(baseline_dir), "(baseline)", "a stored run directory when one run is given "
                         "(two pytest-benchmark files are compared with `nlbench gate A.json B.json`)")
    suite, only_blocks, device, plugins = resume_arguments(baseline_dir)
    suite = options.suite(suite)
    run_dir = start_run(suite, out_root, only_blocks=only_blocks, device=device, plugins=plugins,
                        name=f"{suite.name}-candidate")
    run_sweep(suite, run_dir, only_blocks=only_blocks, device=device, plugins=plugins, progress=progress)
    result = options.judge(baseline, side_from_run(run_dir), suite.gate)
    if update:
        replace_run(baseline_dir, run_dir)
    return result, run_dir


def replace_run(target: Path, source: Path) -> None:
    """Make ``target`` hold ``source``'s manifest, suite copy and records (its own name kept)."""
    manifest = store.read_manifest(source)
    manifest["run_id"] = Path(target).name
    with store.writer_lock(target):
        for name in (store.RESULTS_FILE, "suite.toml"):
            if (Path(source) / name).exists():
                shutil.copyfile(Path(source) / name, Path(target) / name)
        store.write_manifest(Path(target), manifest)


def gate_stored(baseline: Path, candidate: Path, options: GateOptions) -> GateResult:
    """Two stored runs, or two pytest-benchmark JSON files, compared."""
    settings = read_gate_settings(baseline) if Path(baseline).is_dir() else None
    return options.judge(read_side(baseline), read_side(candidate), settings)
