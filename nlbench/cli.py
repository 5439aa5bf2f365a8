"""The ``nlbench`` command: parses arguments, shows progress, prints. The work is done
by package functions (registry, suite, sweep, store, report, probes)."""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import sys
from pathlib import Path
from typing import Callable, Iterator

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

console = Console()


def say(markup: str, *values: object) -> None:
    """Print one line: ``markup`` is ours (rich markup, ``{}`` placeholders); the
    values are user text (block, suite, option names, paths, messages), escaped so
    they print as written and can never be read as markup."""
    console.print(markup.format(*(escape(str(v)) for v in values)), highlight=False)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    from nlbench.blocks import BlockError
    from nlbench.store import StoreError
    from nlbench.suite import SuiteError

    from nlbench.ray_executor import RayExecutorError

    try:
        return args.handler(args)
    except (BlockError, SuiteError, StoreError, RayExecutorError, FileNotFoundError) as exc:
        say("[bold red]error:[/] {}", exc)
        return 2
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/]: every finished case is in the store; --resume RUN finishes the rest")
        return 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nlbench", description="Benchmark non-local neural-network blocks.")
    sub = parser.add_subparsers(dest="command")

    p_list = sub.add_parser("list", help="show the block registry")
    p_list.add_argument("pattern", nargs="?", default="*", help="wildcard, e.g. 'srl_*'")
    p_list.add_argument("--plugin", action="append", default=[], metavar="MODULE",
                        help="import MODULE first so its registered blocks and measurers are listed (repeatable)")
    p_list.add_argument("-v", "--verbose", action="store_true", help="also show each block's default options")
    p_list.set_defaults(handler=cmd_list)

    p_run = sub.add_parser("run", help="sweep a suite into a results directory")
    p_run.add_argument("--suite", help="a shipped suite by name (see nlbench/suites/) or a path to a TOML file")
    p_run.add_argument("--blocks", help="only these blocks: names or wildcards, comma-separated")
    p_run.add_argument("--device", choices=["cpu", "cuda"], help="override the suite's device axis")
    p_run.add_argument("--out", type=Path, default=None, help="results root (default: results/)")
    p_run.add_argument("--resume", type=Path, metavar="RUN", help="finish the missing cases of RUN")
    p_run.add_argument("--plugin", action="append", default=[], metavar="MODULE",
                       help="import MODULE so its blocks and measurers can be used (repeatable)")
    p_run.add_argument("--in-process", action="store_true",
                       help="measure in this process (no isolation; for debugging)")
    p_run.add_argument("--report", action="store_true",
                       help="write the run's report (markdown + HTML) to reports/ when the sweep ends")
    p_run.add_argument("--measure", metavar="LIST",
                       help="only these measurements, comma-separated (e.g. params,flops: counts only)")
    p_run.add_argument("--dry-run", action="store_true",
                       help="validate and expand the suite, print the cases with estimated memory and time; measure nothing")
    p_run.add_argument("--executor", choices=["local", "ray"], default=None,
                       help="where cases run: one isolated worker here (local, the default) or Ray tasks (ray)")
    p_run.add_argument("--address", metavar="auto|HOST:PORT",
                       help="with --executor ray: the Ray cluster to use (default: start a local Ray instance)")
    p_run.set_defaults(handler=cmd_run)

    p_gate = sub.add_parser(
        "gate", help="CI regression gate: cost (exact counts) and time (significant and > threshold)",
        description="Compare a candidate with a baseline. `--base REF`: measure REF (a temporary git worktree) and "
                    "the working tree in interleaved rounds on this machine. `BASELINE CANDIDATE`: two stored runs or "
                    "two pytest-benchmark JSON files. `BASELINE` alone: measure the working tree now on that run's "
                    "suite. Exit 0: no regression; 1: a regression, cost change, missing or failed case; "
                    "2: bad input or nothing comparable.")
    p_gate.add_argument("sides", nargs="*", type=Path, metavar="RUN_OR_JSON",
                        help="BASELINE [CANDIDATE]: run directories or pytest-benchmark JSON files")
    p_gate.add_argument("--base", metavar="GIT_REF", help="the baseline code: a commit, branch or tag of this checkout")
    p_gate.add_argument("--suite", help="the suite to measure with --base (default: gate)")
    p_gate.add_argument("--blocks", help="only these blocks (with --base): names or wildcards, comma-separated")
    p_gate.add_argument("--device", choices=["cpu", "cuda"], help="override the suite's device axis (with --base)")
    p_gate.add_argument("--plugin", action="append", default=[], metavar="MODULE",
                        help="import MODULE in both trees' workers (repeatable)")
    p_gate.add_argument("--threshold", type=float, help="smallest slowdown that fails, e.g. 0.1 for 10 %% "
                        "(default: the suite's [gate] threshold, else 0.1)")
    p_gate.add_argument("--alpha", type=float, help="family-wise significance level (default: the suite's, else 0.01)")
    p_gate.add_argument("--cost-only", action="store_true", help="compare (and measure) params, MACs and FLOPs only")
    p_gate.add_argument("--allow-cost-change", action="store_true",
                        help="report changed counts without failing on them")
    p_gate.add_argument("--strict", action="store_true", help="inconclusive comparisons fail the gate too")
    p_gate.add_argument("--update-baseline", action="store_true",
                        help="with one BASELINE run: rewrite it from the new measurement")
    p_gate.add_argument("--json", type=Path, metavar="FILE", help="write the result as JSON")
    p_gate.add_argument("--markdown", type=Path, metavar="FILE",
                        help="write a markdown summary (also appended to $GITHUB_STEP_SUMMARY when set)")
    p_gate.add_argument("--all", action="store_true", help="list every comparison, unchanged counts included")
    p_gate.add_argument("--out", type=Path, default=None, help="results root for measured runs (default: results/)")
    p_gate.set_defaults(handler=cmd_gate)

    p_report = sub.add_parser("report", help="render markdown and HTML reports from stored runs")
    p_report.add_argument("runs", nargs="+", type=Path, metavar="RUN",
                          help="run directories; two or more are also compared case by case")
    p_report.add_argument("--format", default="md,html", help="comma-separated: md, html (default both)")
    p_report.add_argument("--out", type=Path, default=Path("reports"), help="reports root (default: reports/)")
    p_report.set_defaults(handler=cmd_report)

    p_probe = sub.add_parser("probe", help="short training-accuracy probes: does a block buy global context?")
    p_probe.add_argument("--task", default="same-pair",
                         help="same-pair (alias long-range), pathfinder, digits, cifar10, cifar100")
    p_probe.add_argument("--blocks", default="all", help="names or wildcards, comma-separated (default: all)")
    p_probe.add_argument("--seeds", type=int, default=None, help="number of seeds (default: the preset's)")
    p_probe.add_argument("--steps", type=int, default=None,
                         help="a fixed budget of N steps per run (no plateau stop), for comparisons at equal cost")
    p_probe.add_argument("--max-steps", type=int, default=None,
                         help="the most steps a run trains before its plateau (default: the preset's)")
    p_probe.add_argument("--lr", type=float, default=None,
                         help="one learning rate for every block (default: the preset's sweep picks one per block)")
    p_probe.add_argument("--quick", action="store_true", help="a tiny budget that checks the machinery")
    p_probe.add_argument("--jobs", type=int, default=None, metavar="N",
                         help="trainings at once, each in its own worker process (default: the usable "
                              "cores ÷ the config's threads)")
    p_probe.add_argument("--data-dir", default=None, help="CIFAR binary files (cifar10/cifar100 only)")
    p_probe.add_argument("--out", type=Path, default=None, help="results root (default: results/)")
    p_probe.add_argument("--resume", type=Path, metavar="RUN", help="finish the missing block × seeds of RUN")
    p_probe.add_argument("--plugin", action="append", default=[], metavar="MODULE",
                         help="import MODULE so its blocks can be probed (repeatable)")
    p_probe.add_argument("--report", action="store_true", help="write the run's report when done")
    p_probe.set_defaults(handler=cmd_probe)

    p_profile = sub.add_parser(
        "profile", help="torch.profiler traces (TensorBoard, Perfetto) and per-operator / per-module tables",
        description="Profile each block at one input shape: a TensorBoard profiler run, a Perfetto trace, "
                    "ops.csv, modules.csv, folded stacks and profile.json per case (docs/profile.md). "
                    "Exit 0: every case profiled; 1: some case failed (recorded, the others still ran); 2: bad input.")
    p_profile.add_argument("--blocks", required=True, help="names or wildcards, comma-separated (or 'all')")
    p_profile.add_argument("--channels", type=int, default=64, help="C (default 64)")
    p_profile.add_argument("--size", default="64", metavar="H[xW]", help="spatial size: H or HxW (default 64)")
    p_profile.add_argument("--batch", type=int, default=1, help="B (default 1)")
    p_profile.add_argument("--frames", type=int, default=None, help="T for video input (video blocks only)")
    p_profile.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="default cpu")
    p_profile.add_argument("--backward", action="store_true",
                           help="profile forward + sum loss + backward in train mode (default: forward, eval)")
    p_profile.add_argument("--steps", type=int, default=3, help="profiled (active) steps per case (default 3)")
    p_profile.add_argument("--threads", type=int, default=None,
                           help="torch.set_num_threads for the profile (default: leave the process's count)")
    p_profile.add_argument("--out", type=Path, default=None, help="output directory (default: profiles/<timestamp>)")
    p_profile.add_argument("--plugin", action="append", default=[], metavar="MODULE",
                           help="import MODULE so its blocks can be profiled (repeatable)")
    p_profile.set_defaults(handler=cmd_profile)
    return parser


def cmd_list(args: argparse.Namespace) -> int:
    from nlbench.blocks import get_spec, list_blocks, load_plugin
    from nlbench.measure.registry import measurer_names

    for module in args.plugin:
        load_plugin(module)
    table = Table(title="nlbench block registry", show_lines=False)
    headers = ["name", "family", "claimed complexity", "video", "needs size", "from"]
    for header in headers + (["default options", "implementations (impl=)"] if args.verbose else []):
        table.add_column(header, overflow="fold")
    names = list_blocks(args.pattern)
    for name in names:
        spec = get_spec(name)
        source = "built-in" if spec.source.startswith("nlbench.") else spec.source
        row = [name, spec.family, spec.claimed.text, "yes" if spec.supports_video else "no",
               "yes" if spec.needs_spatial_size else "no", source]
        if args.verbose:
            row.append(", ".join(f"{k}={v!r}" for k, v in spec.default_options.items()))
            row.append("; ".join(f"{i.name}: {i.claimed.text}" + ("" if i.dense_affinity or not spec.dense_affinity
                                                                   else ", no N×N matrix")
                                 for i in spec.implementations) or "—")
        table.add_row(*map(Text, row))  # plugin text is text, never markup
    console.print(table)
    console.print(f"{len(names)} blocks")
    console.print(f"measurements a suite can ask for: {', '.join(measurer_names())}", markup=False, highlight=False)
    return 0


@contextlib.contextmanager
def case_progress(total: int | None, completed: int = 0) -> Iterator[Callable[..., None]]:
    """A progress bar over cases; yields the sweep's progress callback."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("starting", total=total, completed=completed)

        def on_case(case, record, index, count) -> None:
            mark = "" if record["status"] == "ok" else f" [red]{escape(record['status'])}[/]"
            progress.update(task, advance=1, description=escape(case.label) + mark)

        yield on_case


def cmd_run(args: argparse.Namespace) -> int:
    from nlbench import store
    from nlbench.blocks import load_plugin, resolve_blocks
    from nlbench.suite import SuiteError, load_suite
    from nlbench.sweep import default_results_root, resume_arguments, start_run

    if args.resume:
        given = [flag for flag, value in (("--suite", args.suite), ("--blocks", args.blocks),
                                          ("--device", args.device), ("--plugin", args.plugin),
                                          ("--measure", args.measure)) if value]
        if given:
            raise SuiteError("(command line)", given[0],
                             "nothing beside --resume RUN (a run is finished with the suite, blocks, device and "
                             "plugins it was started with)")
        suite, only_blocks, device, plugins = resume_arguments(args.resume)
        run_dir = args.resume
        manifest = store.read_manifest(run_dir)
        executor = args.executor or manifest.get("executor") or "local"
        address = args.address if args.address is not None else manifest.get("address")
    else:
        executor, address = args.executor or "local", args.address
        if not args.suite:
            raise SuiteError("(command line)", "--suite", "a suite name or path (or --resume RUN)")
        plugins = args.plugin
        for module in plugins:
            load_plugin(module)
        suite = load_suite(args.suite)
        if args.measure is not None:
            suite = with_measurements(suite, args.measure)
        only_blocks = None
        if args.blocks is not None:
            if not [p for p in args.blocks.split(",") if p.strip()]:
                raise SuiteError("(command line)", "--blocks", "at least one block name or wildcard", args.blocks)
            only_blocks = resolve_blocks(args.blocks)
        device = args.device
        if not suite.cases(only_blocks=only_blocks, device=device):
            raise SuiteError(suite.source, "blocks", "a selection that leaves at least one case to run")
        if args.dry_run:
            print_dry_run(suite, only_blocks, device)
            return 0
    if address and executor != "ray":
        raise SuiteError("(command line)", "--address", "only with --executor ray", address)
    with ray_session(executor, address) as cluster:
        if not args.resume:
            run_dir = start_run(suite, args.out or default_results_root(), only_blocks=only_blocks,
                                device=device, plugins=plugins,
                                extra={"executor": executor, "address": address, "cluster": cluster})
        return sweep_and_report(args, suite, run_dir, only_blocks, device, plugins, executor, address)


@contextlib.contextmanager
def ray_session(executor: str, address: str | None) -> Iterator[list | None]:
    """With the ray executor: connected to (or running) Ray for the whole command, and the
    cluster's machines for the manifest; otherwise nothing."""
    if executor != "ray":
        yield None
        return
    import ray

    from nlbench.ray_executor import cluster_machines, connect

    started = connect(address)
    try:
        yield cluster_machines()
    finally:
        if started:
            ray.shutdown()


def sweep_and_report(args: argparse.Namespace, suite, run_dir: Path, only_blocks, device, plugins,
                     executor: str, address: str | None) -> int:
    from nlbench import store
    from nlbench.sweep import run_sweep

    cases = suite.cases(only_blocks=only_blocks, device=device)
    done_before = len(store.finished_case_ids(run_dir))
    say("[bold]{}[/]: {} cases → {}" + (" ({} already done)" if done_before else ""),
        suite.name, len(cases), run_dir, done_before)
    with case_progress(len(cases), done_before) as on_case:
        result = run_sweep(suite, run_dir, only_blocks=only_blocks, device=device, plugins=plugins,
                           progress=on_case, isolate=not args.in_process, executor=executor, address=address)
    print_run_summary(run_dir, suite)
    statuses = ", ".join(f"{k}: {v}" for k, v in sorted(result.statuses.items())) or "nothing left to run"
    say("ran {} cases ({}); run directory: [bold]{}[/]", result.ran, statuses, run_dir)
    if args.report:
        print_report_paths([run_dir], Path("reports"), ("md", "html"))
    return 0


def with_measurements(suite, text: str):
    """``suite`` measuring only the comma-separated measurements of ``--measure``."""
    import dataclasses

    from nlbench.measure.registry import measurer_names
    from nlbench.suite import SuiteError
    from nlbench.vocabulary import did_you_mean

    names = [n.strip() for n in text.split(",") if n.strip()]
    known = measurer_names()
    for name in names:
        if name not in known:
            raise SuiteError("(command line)", "--measure", f"measurements from {', '.join(known)}."
                             f"{did_you_mean(name, known)}", name)
    if not names:
        raise SuiteError("(command line)", "--measure", "at least one measurement", text)
    return dataclasses.replace(suite, measure=tuple(dict.fromkeys(names)))


def print_dry_run(suite, only_blocks: list[str] | None, device: str | None) -> None:
    """The cases a run would measure, with the sweep's memory estimate and a lower
    bound on the time the sampling rules imply; nothing is built or measured."""
    from nlbench.report.formatting import pick_prefix, scaled
    from nlbench.sweep import GIB, estimate_peak_bytes
    from nlbench.vocabulary import LATENCY_MEASUREMENTS

    cases = suite.cases(only_blocks=only_blocks, device=device)
    passes = sum(name in LATENCY_MEASUREMENTS for name in suite.measure) * suite.latency.rounds
    floor_s = passes * suite.latency.min_run_time_s
    limit_gib = suite.limits.max_memory_gib
    table = Table(title=Text(f"{suite.name}: {len(cases)} cases (dry run: nothing is measured)"))
    for header in ("case", "est. peak memory", "est. time", "note"):
        table.add_column(header, overflow="fold")
    for case in cases:
        peak = estimate_peak_bytes(case)
        factor, prefix, _ = pick_prefix([peak])
        note = f"skipped: over the {limit_gib:g} GiB limit" if peak > limit_gib * GIB else ""
        table.add_row(Text(case.label), f"{scaled(peak, factor)} {prefix}B", "0 s" if note else f"≥ {floor_s:.3g} s",
                      note)
    console.print(table)
    say("estimated time ≥ {} s: each latency pass samples for at least latency.min_run_time_s = {} s "
        "(slow cases take longer, up to limits.case_timeout_s = {} s each)",
        f"{floor_s * len(cases):.3g}", suite.latency.min_run_time_s, suite.limits.case_timeout_s)


def cmd_gate(args: argparse.Namespace) -> int:
    from nlbench.blocks import load_plugin, resolve_blocks
    from nlbench.gate.commands import DEFAULT_SUITE, GateOptions, gate_against_ref, gate_against_run, gate_stored
    from nlbench.gate.compare import NothingComparable
    from nlbench.gate.paired import GateRunError
    from nlbench.gate.worktree import GitError
    from nlbench.suite import SuiteError, load_suite
    from nlbench.sweep import default_results_root
    from nlbench.vocabulary import GATE_EXIT_BAD_INPUT, SettingsError

    def bad(flag: str, expected: str) -> int:
        say("[bold red]error:[/] {}: {}", flag, expected)
        return GATE_EXIT_BAD_INPUT

    sides = list(args.sides)
    if args.base and sides:
        return bad("--base", "either --base GIT_REF or stored BASELINE [CANDIDATE], not both")
    if not args.base and not 1 <= len(sides) <= 2:
        return bad("gate", "--base GIT_REF, or BASELINE [CANDIDATE] (run directories or pytest-benchmark JSON files)")
    if args.update_baseline and len(sides) != 1:
        return bad("--update-baseline", "exactly one BASELINE run (it is rewritten from the new measurement)")
    measured_only = [flag for flag, value in (("--suite", args.suite), ("--blocks", args.blocks),
                                              ("--device", args.device)) if value]
    if measured_only and not args.base:
        return bad(measured_only[0], "only with --base (a stored baseline is measured on its own suite)")
    try:
        options = GateOptions(threshold=args.threshold, alpha=args.alpha, cost_only=args.cost_only,
                              allow_cost_change=args.allow_cost_change, strict=args.strict)
        options.settings(None)  # out-of-range --threshold / --alpha fail before anything is measured
    except SettingsError as exc:
        return bad("--" + exc.field.removeprefix("gate."), f"expected {exc.expected}, got {exc.got!r}")
    out_root = args.out or default_results_root()
    try:
        if args.base:
            for module in args.plugin:
                load_plugin(module)
            suite = load_suite(args.suite or DEFAULT_SUITE)
            only_blocks = resolve_blocks(args.blocks) if args.blocks else None
            cases = suite.cases(only_blocks=only_blocks, device=args.device)
            if not cases:
                raise SuiteError(suite.source, "blocks", "a selection that leaves at least one case to run")
            say("[bold]gate[/]: {} ({} cases) for {} and the working tree, interleaved", suite.name, len(cases),
                args.base)
            with case_progress(len(cases)) as on_case:
                result, runs = gate_against_ref(args.base, suite, out_root, options, only_blocks=only_blocks,
                                                device=args.device, plugins=args.plugin, progress=on_case)
            say("runs: [bold]{}[/] (base) and [bold]{}[/] (candidate)", runs["base"], runs["candidate"])
        elif len(sides) == 1:
            with case_progress(None) as on_case:
                result, run_dir = gate_against_run(sides[0], out_root, options, update=args.update_baseline,
                                                   progress=on_case)
            say("candidate run: [bold]{}[/]", run_dir)
            if args.update_baseline:
                say("baseline [bold]{}[/] rewritten from it", sides[0])
        else:
            result = gate_stored(sides[0], sides[1], options)
    except (NothingComparable, GitError, GateRunError) as exc:
        say("[bold red]error:[/] {}", exc)
        return GATE_EXIT_BAD_INPUT
    print_gate_result(result, everything=args.all)
    write_gate_outputs(result, args.json, args.markdown)
    return result.exit_code


def print_gate_result(result, *, everything: bool = False) -> None:
    """The gate's table (the rows worth reading, or all), its warnings and headline."""
    from nlbench.gate.output import TABLE_HEADERS, headline, settings_text, table_rows
    from nlbench.gate.pytest_benchmark import NO_RAW_SAMPLES_HINT, WARNING_NO_RAW_SAMPLES
    from nlbench.vocabulary import GATE_FAILING, GATE_IMPROVEMENT, GATE_INCONCLUSIVE

    table = Table(title=Text(f"nlbench gate: {result.candidate} vs {result.baseline}"))
    for header in TABLE_HEADERS:
        table.add_column(header, overflow="fold")
    styles = {**dict.fromkeys(GATE_FAILING, "red"), GATE_INCONCLUSIVE: "yellow", GATE_IMPROVEMENT: "green"}
    rows = table_rows(result, everything=everything)
    for row in rows:
        table.add_row(*(Text(cell) for cell in row), style=styles.get(row[0], ""))
    if rows:
        console.print(table)
    say("{}", settings_text(result))
    for warning in result.warnings:
        say("[yellow]warning:[/] {}", warning)
    if any(WARNING_NO_RAW_SAMPLES in w for row in result.comparisons for w in row.warnings):
        say("[yellow]hint:[/] {}", NO_RAW_SAMPLES_HINT)
    style = "bold red" if result.exit_code else "bold green"
    say(f"[{style}]{{}}[/]", headline(result))


def write_gate_outputs(result, json_path: Path | None, markdown_path: Path | None) -> None:
    """JSON and markdown where asked; the markdown also goes to $GITHUB_STEP_SUMMARY."""
    from nlbench.gate.output import gate_json, gate_markdown

    if json_path:
        json_path.write_text(json.dumps(gate_json(result), indent=2) + "\n")
        say("JSON: [bold]{}[/]", json_path)
    markdown = gate_markdown(result)
    if markdown_path:
        markdown_path.write_text(markdown)
        say("markdown: [bold]{}[/]", markdown_path)
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        with open(summary, "a", encoding="utf-8") as handle:
            handle.write(markdown + "\n")


def cmd_report(args: argparse.Namespace) -> int:
    formats = tuple(f.strip() for f in args.format.split(",") if f.strip())
    unknown = [f for f in formats if f not in ("md", "html")]
    if unknown or not formats:
        say("[bold red]error:[/] --format: expected md, html or md,html, got {}", repr(args.format))
        return 2
    print_report_paths(args.runs, args.out, formats)
    return 0


def cmd_probe(args: argparse.Namespace) -> int:
    from rich.markup import escape
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from nlbench.blocks import load_plugin, resolve_blocks
    from nlbench.probes import (
        block_cases, canonical_task, default_probe_jobs, pending_probe_cases, probe_config, resume_probe_arguments,
        run_probe_into, start_probe_run,
    )
    from nlbench.probes.workers import ProbeWorkerError
    from nlbench.sweep import default_results_root
    from nlbench.vocabulary import STATUS_OK

    if args.jobs is not None and args.jobs < 1:
        say("[bold red]error:[/] --jobs: expected at least 1 job")
        return 2
    if args.resume:
        config, blocks, plugins = resume_probe_arguments(args.resume)
        plugins = list(dict.fromkeys([*plugins, *args.plugin]))
        run_dir = args.resume
    else:
        plugins = list(args.plugin)
        overrides: dict = {"task": canonical_task(args.task)}
        if args.seeds is not None:
            if args.seeds < 1:
                console.print("[bold red]error:[/] --seeds: expected a positive number of seeds")
                return 2
            overrides["seeds"] = tuple(range(args.seeds))
        if args.steps is not None and args.max_steps is not None:
            say("[bold red]error:[/] --steps (a fixed budget) and --max-steps (a plateau's limit) exclude each other")
            return 2
        if args.steps is not None:
            overrides.update(steps=args.steps, stop_on_plateau=False)
        if args.max_steps is not None:
            overrides["steps"] = args.max_steps
        if args.lr is not None:
            overrides.update(lr=args.lr, lr_grid=())
        if args.data_dir:
            overrides["data_dir"] = args.data_dir
        try:
            config = probe_config("quick" if args.quick else "default", **overrides)
        except ValueError as exc:
            say("[bold red]error:[/] {}", exc)
            return 2
    for module in plugins:
        load_plugin(module)
    if not args.resume:
        blocks = resolve_blocks(args.blocks)
        run_dir = start_probe_run(config, args.out or default_results_root(), blocks, plugins=plugins)
    jobs = args.jobs or default_probe_jobs(config)
    total = sum(len(block_cases(config, block)) for block in blocks)
    done_before = total - len(pending_probe_cases(run_dir, config, blocks))
    budget = (f"to a plateau or {config.steps} steps" if config.stop_on_plateau and config.eval_every
              else f"{config.steps} steps each")
    rates = (f"rate sweep {'/'.join(f'{lr:g}' for lr in config.lr_grid)} on seed {config.sweep_seed}"
             if config.lr_grid else f"lr {config.lr:g}")
    say("[bold]probe {}[/]: {} blocks × {} seeds, {}, {}, {} at once × {} thread(s) → {}", config.task,
        len(blocks), len(config.seeds), rates, budget, jobs, config.threads, run_dir)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn())
    with Progress(*columns, console=console) as progress:
        bar = progress.add_task("starting", total=total, completed=done_before)

        def on_step(case, point) -> None:
            progress.update(bar, description=f"{escape(case.label)} step {point.step}")

        def on_done(case, record, index, count) -> None:
            mark = "" if record["status"] == STATUS_OK else f" [red]{escape(record['status'])}[/]"
            progress.update(bar, advance=1, description=f"{escape(case.label)}{mark}")

        try:
            outcome = run_probe_into(run_dir, config, blocks, progress=on_done, on_step=on_step, jobs=jobs,
                                     plugins=plugins)
        except (ValueError, ProbeWorkerError) as exc:
            say("[bold red]error:[/] {}", exc)
            return 2
    print_probe_summary(run_dir)
    say("trained {} runs ({} already done); run directory: [bold]{}[/]", outcome.trained,
        outcome.already_done, run_dir)
    if args.report:
        print_report_paths([run_dir], Path("reports"), ("md", "html"))
    return 0


def parse_size(text: str) -> tuple[int, int]:
    """``--size``: ``H`` (square) or ``HxW``, positive integers."""
    from nlbench.suite import SuiteError

    parts = text.lower().replace("×", "x").split("x")
    if len(parts) in (1, 2) and all(p.strip().isdigit() and int(p) > 0 for p in parts):
        height, width = int(parts[0]), int(parts[-1])
        return height, width
    raise SuiteError("(command line)", "--size", "H or HxW (positive integers, e.g. 64 or 32x48)", text)


def cmd_profile(args: argparse.Namespace) -> int:
    import datetime as dt

    from nlbench.blocks import get_spec, load_plugin, resolve_blocks
    from nlbench.case import Case
    from nlbench.measure.latency import intra_op_threads
    from nlbench.suite import SuiteError

    for module in args.plugin:
        load_plugin(module)
    for flag, value, minimum in (("--channels", args.channels, 1), ("--batch", args.batch, 1),
                                 ("--steps", args.steps, 1), ("--frames", args.frames, 1),
                                 ("--threads", args.threads, 1)):
        if value is not None and value < minimum:
            raise SuiteError("(command line)", flag, f"an integer ≥ {minimum}", value)
    height, width = parse_size(args.size)
    if not [p for p in args.blocks.split(",") if p.strip()]:
        raise SuiteError("(command line)", "--blocks", "at least one block name or wildcard", args.blocks)
    blocks = resolve_blocks(args.blocks)
    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            say("[bold red]error:[/] --device cuda: CUDA is not available here (torch {}, no CUDA device); "
                "profile on the CPU with --device cpu", torch.__version__)
            return 2
    if args.frames is not None:
        still_images = [b for b in blocks if not get_spec(b).supports_video]
        for block in still_images:
            say("[yellow]skipped[/] {}: it takes no video input (--frames)", block)
        blocks = [b for b in blocks if b not in still_images]
        if not blocks:
            raise SuiteError("(command line)", "--blocks", "at least one block that takes video input (--frames)",
                             args.blocks)
    out = args.out or Path("profiles") / dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    cases = [Case(block, args.channels, height, width, batch=args.batch, frames=args.frames, device=args.device)
             for block in blocks]
    say("[bold]profile[/]: {} cases, {} per case → {}", len(cases),
        f"{args.steps} steps of forward+backward" if args.backward else f"{args.steps} steps of forward", out)
    failed = 0
    with intra_op_threads(args.threads):
        for case in cases:
            result = profile_one(case, out, backward=args.backward, active=args.steps)
            failed += not result.ok
            print_profile_result(result)
    say("\nopen the traces: [bold]tensorboard --logdir {}[/] (one run per case; needs the {} extra: {})", out,
        "profile", "pip install 'nlbench[profile]'")
    say("or load a case's [bold]trace.json.gz[/] at https://ui.perfetto.dev (chrome://tracing works too); "
        "stacks.txt is folded stacks for flamegraph.pl or https://speedscope.app")
    if failed:
        say("[red]{} of {} cases failed[/] (see their profile.json)", failed, len(cases))
    return 1 if failed else 0


def profile_one(case, out: Path, *, backward: bool, active: int):
    """Profile one case after a one-line progress note (no spinner: the profiler traces
    every Python thread, and a spinner's would show up in the trace and the stacks)."""
    from nlbench.profile import profile_case

    say("[dim]profiling {} …[/]", case.label)
    return profile_case(case, out, backward=backward, active=active)


def print_profile_result(result, *, top: int = 8) -> None:
    """One case: its totals, its top operators by self time, its modules, its files."""
    from nlbench.report.formatting import short_count
    from nlbench.vocabulary import STATUS_CELL

    case = result.case
    if not result.ok:
        say("[bold red]{}[/] {}: {}", case.label, STATUS_CELL.get(result.status, result.status), result.error)
        if "summary" in result.files:
            say("  details: {}", result.files["summary"])
        return
    backward = result.settings.backward
    parts = [f"step {result.step_ms:.3f} ms" if result.step_ms is not None else None,
             f"forward {result.fwd_ms:.3f} ms" if result.fwd_ms is not None else None,
             f"backward {result.bwd_ms:.3f} ms" if result.bwd_ms is not None else None,
             f"{short_count(result.macs)} MACs, {short_count(result.flops)} FLOPs per forward"]
    say("\n[bold]{}[/]: {} (per step, {} steps, under the profiler)", case.label,
        ", ".join(p for p in parts if p), result.steps)

    def ms(value) -> str:
        return "—" if value is None else f"{value:.3f}"

    ops = Table(title=Text(f"top {top} operators by self CPU time"), title_justify="left")
    headers = (["phase"] if backward else []) + ["operator", "class", "input shapes", "calls", "self ms", "total ms",
                                                 "MACs"]
    for header in headers:
        ops.add_column(header, justify="left" if header in ("phase", "operator", "class", "input shapes") else "right",
                       overflow="fold")
    for row in result.top_operators(top):
        cells = ([row.phase] if backward else []) + [row.operator, row.op_class, compact_shapes(row.input_shapes),
                                                     f"{row.calls_per_step:g}", ms(row.self_cpu_ms),
                                                     ms(row.total_cpu_ms), "" if row.macs is None else short_count(row.macs)]
        ops.add_row(*map(Text, cells))
    console.print(ops)
    modules = Table(title=Text("modules (self = without child modules)"), title_justify="left")
    headers = ["module", "type", "fwd self ms", "fwd total ms", "fwd share"] + (
        ["bwd self ms", "bwd share"] if backward else []) + ["FLOPs self", "FLOPs share"]
    for header in headers:
        modules.add_column(header, justify="left" if header in ("module", "type") else "right", overflow="fold")

    def pct(value) -> str:
        return "—" if value is None else f"{100 * value:.1f} %"

    for row in result.modules:
        cells = [row.label, row.type, ms(row.fwd_self_ms), ms(row.fwd_total_ms), pct(row.fwd_self_share)] + (
            [ms(row.bwd_self_ms), pct(row.bwd_self_share)] if backward else []) + [short_count(row.flops),
                                                                                   pct(row.flops_share)]
        modules.add_row(*map(Text, cells))
    console.print(modules)
    say("  files: {} ({})", result.directory, ", ".join(sorted(p.name for p in result.files.values())))
    if result.stacks_note:
        say("  [yellow]stacks.txt[/]: {}", result.stacks_note)


def compact_shapes(text: str) -> str:
    """An ops.csv input-shapes cell as a terminal reads it best: the tensors' shapes
    only, ``1×64×32, 1×32×64`` (the CSV keeps the profiler's full list)."""
    try:
        shapes = json.loads(text)
    except ValueError:
        return text
    return ", ".join("×".join(map(str, s)) for s in shapes if isinstance(s, list) and s)


def print_probe_summary(run_dir: Path) -> None:
    """Per block: the verdict, accuracy (mean ± std over seeds), steps to the target,
    the rate, cost and time, from the store; then each verdict as a sentence."""
    from nlbench import store
    from nlbench.probe_verdicts import probe_verdicts
    from nlbench.vocabulary import PROBE_BASELINE_BLOCK, STATUS_OK

    df = store.load(run_dir)
    probes = store.probe_records(df)
    if probes.empty:
        return
    verdicts = probe_verdicts(probes)
    target = f"{100 * verdicts['target_accuracy'].iloc[0]:g} %"
    table = Table()
    for header in ("block", "verdict", "accuracy mean ± std", f"seeds ≥ {target}", f"steps to {target}",
                   "lr", "steps trained", "wall (s)", f"p vs {PROBE_BASELINE_BLOCK}", "probe MACs (M)", "params"):
        table.add_column(header, justify="right")

    def number(value: float, spec: str) -> str:
        return format(value, spec) if isinstance(value, (int, float)) and math.isfinite(value) else "—"

    for _, row in verdicts.iterrows():
        group = probes.loc[(probes["task"] == row["task"]) & (probes["block"] == row["block"])
                           & (probes["options"] == row["options"])]
        spread = f" ± {100 * row['accuracy_std']:.1f}" if math.isfinite(row["accuracy_std"]) else ""
        accuracy = f"{100 * row['accuracy_mean']:.1f}{spread} %" if row["n_ok"] else "failed"
        macs, params = group["macs"].dropna(), group["params"].dropna()
        table.add_row(Text(str(row["block"])), Text(str(row["verdict"])),
                      accuracy, f"{row['n_learned']}/{row['n_seeds']}", number(row["steps_to_target_median"], ".0f"),
                      number(row["lr"], "g"), number(row["steps_median"], ".0f"), number(row["wall_s_total"], ".0f"),
                      number(row["p_vs_baseline"], ".2g"),
                      f"{macs.iloc[0] / 1e6:.1f}" if len(macs) else "—",
                      f"{int(params.iloc[0]):,}" if len(params) else "—")
    console.print(table)
    for _, row in verdicts.iterrows():
        console.print(Text(f"{row['task']} · {row['block']}: {row['statement']}"))
    for frame in (probes, store.lr_trial_records(df)):
        for _, row in frame[frame["status"] != STATUS_OK].iterrows():
            rate = f" lr {row['lr']:g}" if frame is not probes and isinstance(row.get("lr"), float) else ""
            say("[red]{}{} seed {}[/]: {}", row["block"], rate, int(row["seed"]), row["error"])


def print_report_paths(runs: list[Path], out: Path, formats: tuple[str, ...]) -> None:
    from nlbench.report import write_report

    written = write_report(runs, out, formats)
    for kind in formats:
        say("report ({}): [bold]{}[/]", kind, written[kind])

def print_run_summary(run_dir: Path, suite) -> None:
    """The closing table (block × size, the headline metric) and, for a paper suite,
    the paper comparison."""
    from nlbench import store
    from nlbench.report import latency_noise
    from nlbench.summary import headline_metric, summary_table
    from nlbench.vocabulary import NOISY_IQR_OVER_MEDIAN, metric
    from rich.markup import escape

    df = store.load(run_dir)
    if df.empty:
        return
    table = summary_table(df, headline_metric(df))
    console.print(f"[bold]{escape(suite.name)}: {escape(table.title)}[/]", highlight=False)
    for part in fitting_tables(table, console.width):
        console.print(dataframe_table(part))
    rule = f"IQR/median > {NOISY_IQR_OVER_MEDIAN:.0%}".replace("%", " %")
    for _, noise in latency_noise(df).iterrows():
        if noise["n_timed"]:
            console.print(f"{metric(noise['metric']).title}: {noise['n_warned']} of {noise['n_timed']} cases of "
                          f"≥ {noise['min_ms']:g} ms carry a warning — noisy ({rule}) {noise['n_noisy']}, "
                          f"contended {noise['n_contended']}, few-samples {noise['n_few_samples']}")
    floor = machine_noise_floor(store.read_manifest(run_dir).get("calibration") or {})
    if floor:
        console.print(floor, highlight=False)
    uncounted = df[df["uncounted_ops"].apply(lambda ops: isinstance(ops, list) and len(ops) > 0)]
    if len(uncounted):
        console.print(f"[yellow]{len(uncounted)} cases ran operators the counter has no formula for[/]: "
                      + escape(", ".join(sorted({op for ops in uncounted["uncounted_ops"] for op in ops}))),
                      highlight=False)
    if suite.paper_table is not None:
        print_paper_comparison(df, suite.paper_table)


def machine_noise_floor(calibration: dict) -> str:
    """The run's noise-floor line (empty when the calibration has none): the spread of
    the machine itself, so a reader can tell a noisy machine from a noisy block."""
    matmul, copy = calibration.get("noise_matmul_iqr_over_median"), calibration.get("noise_copy_iqr_over_median")
    if not all(isinstance(v, (int, float)) for v in (matmul, copy)):
        return ""
    return (f"machine noise floor at the start (a fixed matmul and copy, {calibration.get('noise_block_ms', 0):g} ms "
            f"blocks, {calibration.get('noise_seconds', 0):g} s): IQR/median {matmul:.1%} and {copy:.1%}").replace("%", " %")


def print_paper_comparison(df, paper_table) -> None:
    from nlbench.paper import paper_comparison

    comparison = paper_comparison(df, paper_table)
    say("[bold]{}[/]\nGMACs = multiply-adds / 2^30 (the paper's 'GFLOPs'); "
        "params in millions (10^6); error = ours / paper − 1", paper_table.title)
    table = Table()
    for header in ("input", "block", "paper GMACs", "ours GMACs", "error", "paper params M",
                   "ours params M", "error", "ours GFLOPs (all FLOPs/10⁹)"):
        table.add_column(header, justify="right")

    def fmt(value, spec):
        return "—" if value is None or value != value else format(value, spec)

    for _, row in comparison.iterrows():
        table.add_row(Text(str(row["input"])), Text(str(row["block"])), fmt(row["paper_gmacs"], ".2f"), fmt(row["ours_gmacs"], ".3f"),
                      fmt(row["gmacs_rel_error"], "+.1%"), fmt(row["paper_params_m"], ".2f"),
                      fmt(row["ours_params_m"], ".3f"), fmt(row["params_rel_error"], "+.1%"),
                      fmt(row["ours_gflops_1e9"], ".3f"))
    console.print(table)


def fitting_tables(table, width: int) -> list:
    """A typed table split into several with the same first column, each narrow enough
    for ``width`` characters, so no cell is ever cut (numbers keep all their digits)."""
    from nlbench.report.model import Table as TypedTable

    def column_width(index: int) -> int:  # content, one space each side, one border
        return max(len(table.spec[index].header), *(len(row[index]) for row in table.rows)) + 3

    first, parts, current, used = column_width(0) + 1, [], [], 0
    for index in range(1, len(table.spec)):
        need = column_width(index)
        if current and first + used + need > width:
            parts.append(current)
            current, used = [], 0
        current.append(index)
        used += need
    if current or not parts:
        parts.append(current)
    return [TypedTable(table.title, (table.spec[0], *(table.spec[i] for i in part)),
                       tuple((row[0], *(row[i] for i in part)) for row in table.rows)) for part in parts]


def dataframe_table(frame, *, index_header: str = "") -> Table:
    """A typed report table (:class:`nlbench.report.model.Table`: number columns
    right-aligned, cells formatted by their column) or a pandas DataFrame (index as the
    first column) as a rich Table."""

    from nlbench.report.model import Table as TypedTable

    table = Table()
    if isinstance(frame, TypedTable):
        for index, column in enumerate(frame.spec):
            content = max(len(column.header), *(len(row[index]) for row in frame.rows)) if frame.rows else 1
            table.add_column(Text(column.header), justify="right" if column.numeric else "left",
                             min_width=content, no_wrap=True)
        for row in frame.rows:
            table.add_row(*map(Text, row))  # block names are text, never markup
        return table
    table.add_column(index_header)
    for column in frame.columns:
        table.add_column(str(column), justify="right")
    for index, row in frame.iterrows():
        table.add_row(Text(str(index)), *[Text(str(v)) for v in row])
    return table


if __name__ == "__main__":
    sys.exit(main())
