"""The ``nlbench`` command: parses arguments, shows progress, prints. The work is done
by package functions (registry, suite, sweep, store, report, probes)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

console = Console()


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    from nlbench.blocks import BlockError
    from nlbench.store import StoreError
    from nlbench.suite import SuiteError

    try:
        return args.handler(args)
    except (BlockError, SuiteError, StoreError, FileNotFoundError) as exc:
        console.print(f"[bold red]error:[/] {exc}", highlight=False)
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
                        help="import MODULE first so its @register_block blocks are listed (repeatable)")
    p_list.add_argument("-v", "--verbose", action="store_true", help="also show each block's default options")
    p_list.set_defaults(handler=cmd_list)

    p_run = sub.add_parser("run", help="sweep a suite into a results directory")
    p_run.add_argument("--suite", help="suite name (suites/NAME.toml) or path to a TOML file")
    p_run.add_argument("--blocks", help="only these blocks: names or wildcards, comma-separated")
    p_run.add_argument("--device", choices=["cpu", "cuda"], help="override the suite's device axis")
    p_run.add_argument("--out", type=Path, default=None, help="results root (default: results/)")
    p_run.add_argument("--resume", type=Path, metavar="RUN", help="finish the missing cases of RUN")
    p_run.add_argument("--plugin", action="append", default=[], metavar="MODULE",
                       help="import MODULE so its blocks can be swept (repeatable)")
    p_run.add_argument("--in-process", action="store_true",
                       help="measure in this process (no isolation; for debugging)")
    p_run.add_argument("--report", action="store_true",
                       help="write the run's report (markdown + HTML) to reports/ when the sweep ends")
    p_run.set_defaults(handler=cmd_run)

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
    p_probe.add_argument("--steps", type=int, default=None, help="training steps (default: the preset's)")
    p_probe.add_argument("--quick", action="store_true", help="a tiny budget that checks the machinery")
    p_probe.add_argument("--data-dir", default=None, help="CIFAR binary files (cifar10/cifar100 only)")
    p_probe.add_argument("--out", type=Path, default=None, help="results root (default: results/)")
    p_probe.add_argument("--resume", type=Path, metavar="RUN", help="finish the missing block × seeds of RUN")
    p_probe.add_argument("--plugin", action="append", default=[], metavar="MODULE",
                         help="import MODULE so its blocks can be probed (repeatable)")
    p_probe.add_argument("--report", action="store_true", help="write the run's report when done")
    p_probe.set_defaults(handler=cmd_probe)
    return parser


def cmd_list(args: argparse.Namespace) -> int:
    from nlbench.blocks import get_spec, list_blocks, load_plugin

    for module in args.plugin:
        load_plugin(module)
    table = Table(title="nlbench block registry", show_lines=False)
    headers = ["name", "family", "claimed complexity", "video", "needs size", "from"]
    for header in headers + (["default options"] if args.verbose else []):
        table.add_column(header, overflow="fold")
    names = list_blocks(args.pattern)
    for name in names:
        spec = get_spec(name)
        source = "built-in" if spec.source.startswith("nlbench.") else spec.source
        row = [name, spec.family, spec.claimed.text, "yes" if spec.supports_video else "no",
               "yes" if spec.needs_spatial_size else "no", source]
        if args.verbose:
            row.append(", ".join(f"{k}={v!r}" for k, v in spec.default_options.items()))
        table.add_row(*row)
    console.print(table)
    console.print(f"{len(names)} blocks")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from nlbench import store
    from nlbench.blocks import load_plugin, resolve_blocks
    from nlbench.suite import SuiteError, load_suite
    from nlbench.sweep import default_results_root, resume_arguments, run_sweep, start_run

    if args.resume:
        suite, only_blocks, device, plugins = resume_arguments(args.resume)
        for module in plugins:
            load_plugin(module)
        run_dir = args.resume
    else:
        if not args.suite:
            raise SuiteError("(command line)", "--suite", "a suite name or path (or --resume RUN)")
        plugins = args.plugin
        for module in plugins:
            load_plugin(module)
        suite = load_suite(args.suite)
        only_blocks = resolve_blocks(args.blocks) if args.blocks else None
        device = args.device
        run_dir = start_run(suite, args.out or default_results_root(), only_blocks=only_blocks,
                            device=device, plugins=plugins)
    total = len(suite.cases(only_blocks=only_blocks, device=device))
    done_before = len(store.finished_case_ids(run_dir))
    console.print(f"[bold]{suite.name}[/]: {total} cases → {run_dir}"
                  + (f" ({done_before} already done)" if done_before else ""))
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("starting", total=total, completed=done_before)

        def on_case(case, record, index, count):
            mark = "" if record["status"] == "ok" else f" [red]{record['status']}[/]"
            progress.update(task, advance=1, description=f"{case.label}{mark}")

        result = run_sweep(suite, run_dir, only_blocks=only_blocks, device=device, plugins=plugins,
                           progress=on_case, isolate=not args.in_process)
    print_run_summary(run_dir, suite)
    statuses = ", ".join(f"{k}: {v}" for k, v in sorted(result.statuses.items())) or "nothing left to run"
    console.print(f"ran {result.ran} cases ({statuses}); run directory: [bold]{run_dir}[/]")
    if args.report:
        print_report_paths([run_dir], Path("reports"), ("md", "html"))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    formats = tuple(f.strip() for f in args.format.split(",") if f.strip())
    unknown = [f for f in formats if f not in ("md", "html")]
    if unknown or not formats:
        console.print(f"[bold red]error:[/] --format: expected md, html or md,html, got {args.format!r}")
        return 2
    print_report_paths(args.runs, args.out, formats)
    return 0


def cmd_probe(args: argparse.Namespace) -> int:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from nlbench.blocks import load_plugin, resolve_blocks
    from nlbench.probes.probe import aggregate, probe_config
    from nlbench.probes.runs import canonical_task, config_from_manifest, run_probe_into, start_probe_run
    from nlbench.sweep import default_results_root

    for module in args.plugin:
        load_plugin(module)
    if args.resume:
        config, blocks = config_from_manifest(args.resume)
        run_dir = args.resume
    else:
        overrides: dict = {"task": canonical_task(args.task)}
        if args.seeds is not None:
            if args.seeds < 1:
                console.print("[bold red]error:[/] --seeds: expected a positive number of seeds")
                return 2
            overrides["seeds"] = tuple(range(args.seeds))
        if args.steps is not None:
            overrides["steps"] = args.steps
        if args.data_dir:
            overrides["data_dir"] = args.data_dir
        from nlbench.probes.tasks import TASKS

        if overrides["task"] not in TASKS:
            import difflib

            close = difflib.get_close_matches(overrides["task"], list(TASKS), n=2, cutoff=0.5)
            hint = f" Did you mean {', '.join(close)}?" if close else ""
            console.print(f"[bold red]error:[/] unknown task {args.task!r}.{hint} Known: {', '.join(TASKS)}, "
                          "same-pair (= long-range)")
            return 2
        try:
            config = probe_config("quick" if args.quick else "default", **overrides)
        except ValueError as exc:
            console.print(f"[bold red]error:[/] {exc}")
            return 2
        blocks = resolve_blocks(args.blocks)
        run_dir = start_probe_run(config, args.out or default_results_root(), blocks)
    total = len(blocks) * len(config.seeds)
    console.print(f"[bold]probe {config.task}[/]: {len(blocks)} blocks × {len(config.seeds)} seeds, "
                  f"{config.steps} steps each → {run_dir}")
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn())
    with Progress(*columns, console=console) as progress:
        bar = progress.add_task("starting", total=total)

        def on_event(event) -> None:
            if event.kind == "start":
                progress.update(bar, description=f"{event.block} seed {event.seed}")
            elif event.kind == "step":
                progress.update(bar, description=f"{event.block} seed {event.seed} step {event.step}")
            elif event.kind == "done":
                progress.update(bar, advance=1)

        try:
            outcome = run_probe_into(run_dir, config, blocks, progress=on_event)
        except ValueError as exc:
            console.print(f"[bold red]error:[/] {exc}")
            return 2
        progress.update(bar, completed=total)
    print_probe_summary(run_dir, aggregate)
    console.print(f"trained {outcome.trained} block × seed runs ({outcome.already_done} already done); "
                  f"run directory: [bold]{run_dir}[/]")
    if args.report:
        print_report_paths([run_dir], Path("reports"), ("md", "html"))
    return 0


def print_probe_summary(run_dir: Path, aggregate) -> None:
    """Accuracy (mean ± std over seeds), cost and speed per block, from the store."""
    from nlbench import store

    df = store.load(run_dir)
    df = df[df["kind"] == "probe"] if "kind" in df else df.iloc[0:0]
    if df.empty:
        return
    table = Table()
    for header in ("task", "block", "accuracy mean ± std", "seeds ok", "probe MACs (M)", "params", "steps/s"):
        table.add_column(header, justify="right")
    for (task, block), group in df.groupby(["task", "block"], sort=False):
        ok = group[group["status"] == "ok"]
        acc = ok["accuracy"].astype(float)
        spread = f" ± {100 * acc.std():.1f}" if len(acc) > 1 else ""
        accuracy = f"{100 * acc.mean():.1f}{spread} %" if len(acc) else "failed"
        macs = group["macs"].dropna()
        params = group["params"].dropna()
        speed = ok["steps_per_s"].dropna()
        table.add_row(task, block, accuracy, f"{len(ok)}/{len(group)}",
                      f"{macs.iloc[0] / 1e6:.1f}" if len(macs) else "—",
                      f"{int(params.iloc[0]):,}" if len(params) else "—",
                      f"{speed.median():.1f}" if len(speed) else "—")
    console.print(table)
    for _, row in df[df["status"] != "ok"].iterrows():
        console.print(f"[red]{row['block']} seed {row['seed']}[/]: {row['error']}")


def print_report_paths(runs: list[Path], out: Path, formats: tuple[str, ...]) -> None:
    from nlbench.report import write_report

    written = write_report(runs, out, formats)
    for kind in formats:
        console.print(f"report ({kind}): [bold]{written[kind]}[/]")

def print_run_summary(run_dir: Path, suite) -> None:
    """The closing table (block × size, the headline metric) and, for a paper suite,
    the paper comparison."""
    from nlbench import store
    from nlbench.report.tables import latency_noise
    from nlbench.summary import headline_metric, summary_table

    df = store.load(run_dir)
    if df.empty:
        return
    column, title = headline_metric(df)
    console.print(f"[bold]{suite.name}: {title}[/]")
    console.print(dataframe_table(summary_table(df, column), index_header="block"))
    for _, noise in latency_noise(df).iterrows():
        if noise["n_timed"]:
            what = "forward" if noise["latency"] == "fwd" else "forward+backward"
            console.print(f"{what} latency noise: IQR/median > 10 % in {noise['n_noisy']} of "
                          f"{noise['n_timed']} cases of ≥ 1 ms")
    uncounted = df[df["uncounted_ops"].apply(bool)]
    if len(uncounted):
        console.print(f"[yellow]{len(uncounted)} cases ran operators the counter has no formula for[/]: "
                      + ", ".join(sorted({op for ops in uncounted["uncounted_ops"] for op in ops})))
    if suite.paper_table is not None:
        print_paper_comparison(df, suite.paper_table)


def print_paper_comparison(df, paper_table) -> None:
    from nlbench.paper import paper_comparison

    comparison = paper_comparison(df, paper_table)
    console.print(f"[bold]{paper_table.title}[/]\nGMACs = multiply-adds / 2^30 (the paper's 'GFLOPs'); "
                  "params in millions (10^6); error = ours / paper − 1")
    table = Table()
    for header in ("input", "block", "paper GMACs", "ours GMACs", "error", "paper params M",
                   "ours params M", "error", "ours GFLOPs (2·MACs/10⁹)"):
        table.add_column(header, justify="right")

    def fmt(value, spec):
        return "—" if value is None or value != value else format(value, spec)

    for _, row in comparison.iterrows():
        table.add_row(row["input"], row["block"], fmt(row["paper_gmacs"], ".2f"), fmt(row["ours_gmacs"], ".3f"),
                      fmt(row["gmacs_rel_error"], "+.1%"), fmt(row["paper_params_m"], ".2f"),
                      fmt(row["ours_params_m"], ".3f"), fmt(row["params_rel_error"], "+.1%"),
                      fmt(row["ours_gflops_1e9"], ".3f"))
    console.print(table)


def dataframe_table(frame, *, index_header: str) -> Table:
    """A pandas DataFrame as a rich Table (index as the first column)."""
    table = Table()
    table.add_column(index_header)
    for column in frame.columns:
        table.add_column(str(column), justify="right")
    for index, row in frame.iterrows():
        table.add_row(str(index), *[str(v) for v in row])
    return table


if __name__ == "__main__":
    sys.exit(main())
