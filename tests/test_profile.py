"""`nlbench profile`: the files a case's profile writes, the joins that must add up
(operator MACs to the counter's total, module self values to the totals), backward
attribution, failures as data, the CLI, the `profile` measurement in a sweep, and
torch-tb-profiler reading the run back."""

from __future__ import annotations

import csv
import gzip
import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from torch import nn

from nlbench.case import Case
from nlbench.cli import main
from nlbench.measure.flops import count_flops
from nlbench.profile import (
    MODULES_COLUMNS, OPS_COLUMNS, PHASE_BACKWARD, PHASE_FORWARD, UNATTRIBUTED_BACKWARD, module_ranges, profile_case,
    profile_cases,
)
from nlbench.vocabulary import ROOT_MODULE_TEXT

FAST = {"wait": 0, "warmup": 1, "active": 2}


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def number(cell: str) -> float:
    return float(cell) if cell else 0.0


@pytest.fixture(scope="module")
def profiled(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """nl and srl_fft profiled once (forward) for the tests that only read the files."""
    out = tmp_path_factory.mktemp("profiles")
    return {block: profile_case(Case(block, 8, 8, 8), out, **FAST) for block in ("nl", "srl_fft")}


def test_a_case_writes_a_tensorboard_run_a_trace_tables_stacks_and_a_summary(profiled) -> None:
    result = profiled["nl"]
    assert result.ok, result.error
    directory = result.directory
    assert directory.name == "nl_C8_8x8_B1"
    names = sorted(p.name for p in directory.iterdir())
    runs = [n for n in names if n.endswith(".pt.trace.json.gz")]
    assert len(runs) == 1 and re.fullmatch(r"nl_C8_8x8_B1\.\d+\.pt\.trace\.json\.gz", runs[0])
    assert {"trace.json.gz", "ops.csv", "modules.csv", "stacks.txt", "profile.json"} <= set(names)
    with gzip.open(directory / "trace.json.gz", "rt") as handle:
        trace = json.load(handle)
    assert any(e.get("name") == f"module: {ROOT_MODULE_TEXT}" for e in trace["traceEvents"])
    assert any(e.get("name") == "module: theta" for e in trace["traceEvents"])
    assert (directory / "stacks.txt").stat().st_size > 0 and result.stacks_note is None
    folded = (directory / "stacks.txt").read_text().splitlines()
    assert all(re.fullmatch(r"\S+ \d+", line) for line in folded)
    assert list(read_csv(directory / "ops.csv")[0]) == list(OPS_COLUMNS)
    assert list(read_csv(directory / "modules.csv")[0]) == list(MODULES_COLUMNS)
    summary = json.loads((directory / "profile.json").read_text())
    assert summary["status"] == "ok" and summary["case"]["block"] == "nl"
    assert summary["settings"] == {"backward": False, "wait": 0, "warmup": 1, "active": 2, "record_shapes": True,
                                   "profile_memory": True, "with_stack": True, "activities": ["cpu"]}
    assert summary["totals"]["steps"] == 2 and summary["totals"]["fwd_ms"] > 0
    assert summary["totals"]["macs"] == result.macs
    assert set(summary["files"]) == {"tensorboard_trace", "trace", "ops", "modules", "stacks", "summary"}
    assert all((directory / name).exists() for name in summary["files"].values())


@pytest.mark.parametrize("block", ["nl", "srl_fft"])
def test_the_ops_macs_and_flops_columns_sum_to_the_counters_totals(profiled, block: str) -> None:
    result = profiled[block]
    case = result.case
    torch.manual_seed(0)
    count = count_flops(case.build().eval(), (case.make_input(seed=0),))
    rows = read_csv(result.directory / "ops.csv")
    assert sum(int(r["macs_per_forward"]) for r in rows if r["macs_per_forward"]) == count.macs > 0
    assert sum(int(r["flops_per_forward"]) for r in rows if r["flops_per_forward"]) == count.flops
    counted = [r for r in rows if r["macs_per_forward"]]
    # Every counted operator was found in the profile at its shapes, with its calls.
    assert all(r["phase"] == PHASE_FORWARD and number(r["calls_per_step"]) == number(r["counted_calls_per_forward"])
               for r in counted), counted
    # The composite above (conv2d) and the kernels below (mkldnn/thnn) carry no MACs.
    assert not any(r["macs_per_forward"] for r in rows if r["operator"] in ("aten::conv2d", "aten::_convolution"))
    if block == "nl":
        assert any(r["operator"] == "aten::bmm" and r["op_class"] == "matmul" for r in counted)
    else:
        assert {"aten::_fft_r2c", "aten::_fft_c2r"} <= {r["operator"] for r in counted}
    forward_self = sum(number(r["self_cpu_ms_per_step"]) for r in rows if r["phase"] == PHASE_FORWARD)
    assert 0 < forward_self <= result.fwd_ms * 1.001


@pytest.mark.parametrize("block", ["nl", "srl_fft"])
def test_module_self_values_sum_to_the_totals(profiled, block: str) -> None:
    result = profiled[block]
    rows = read_csv(result.directory / "modules.csv")
    root = rows[0]
    assert root["module"] == ROOT_MODULE_TEXT
    assert sum(int(r["flops_self_per_forward"]) for r in rows) == result.flops
    assert sum(int(r["macs_self_per_forward"]) for r in rows) == result.macs
    fwd_total = number(root["fwd_total_ms_per_step"])
    assert fwd_total == pytest.approx(result.fwd_ms, rel=1e-3)
    assert sum(number(r["fwd_self_ms_per_step"]) for r in rows) == pytest.approx(fwd_total, rel=0.01)
    assert sum(number(r["fwd_self_share"]) for r in rows) == pytest.approx(1.0, rel=0.01)
    assert sum(number(r["flops_self_share"]) for r in rows) == pytest.approx(1.0, rel=1e-4)
    assert all(number(r["fwd_self_ms_per_step"]) > 0 for r in rows)
    assert sum(m.flops for m in result.modules) == result.flops


def test_backward_time_goes_to_the_modules_whose_forward_created_the_nodes(tmp_path: Path) -> None:
    result = profile_case(Case("nl", 8, 8, 8), tmp_path, backward=True, **FAST)
    assert result.ok, result.error
    rows = {r["module"]: r for r in read_csv(result.directory / "modules.csv")}
    convs = [r for r in rows.values() if r["type"] == "Conv2d"]
    assert len(convs) == 4 and all(number(r["bwd_self_ms_per_step"]) > 0 for r in convs)
    assert number(rows["bn"]["bwd_self_ms_per_step"]) > 0
    assert number(rows[ROOT_MODULE_TEXT]["bwd_self_ms_per_step"]) > 0  # the bmm, softmax … nodes
    self_total = sum(number(r["bwd_self_ms_per_step"]) for r in rows.values())
    assert self_total == pytest.approx(result.bwd_ms, rel=0.01)
    assert number(rows[ROOT_MODULE_TEXT]["bwd_total_ms_per_step"]) + number(
        rows.get(UNATTRIBUTED_BACKWARD, {}).get("bwd_self_ms_per_step", "")) == pytest.approx(result.bwd_ms, rel=0.01)
    ops = read_csv(result.directory / "ops.csv")
    assert any(r["phase"] == PHASE_BACKWARD and r["operator"] == "aten::convolution_backward" for r in ops)
    assert not any(r["macs_per_forward"] for r in ops if r["phase"] != PHASE_FORWARD)
    assert sum(int(r["macs_per_forward"]) for r in ops if r["macs_per_forward"]) == result.macs
    assert json.loads((result.directory / "profile.json").read_text())["totals"]["bwd_ms"] > 0


def test_the_phase_split_operator_rows_add_up_to_key_averages(tmp_path: Path) -> None:
    from nlbench.measure.latency import inputs_for_backward
    from nlbench.profile import ProfileSettings, analyse_events, run_profiler

    case = Case("srl_fft", 8, 8, 8)
    module = case.build().train()
    xs = inputs_for_backward(module, (case.make_input(seed=0),))
    settings = ProfileSettings(backward=True, **FAST)
    count = count_flops(module, xs)
    prof, _ = run_profiler(module, xs, tmp_path, settings, worker="w")
    analysis = analyse_events(list(prof.events()), count, {n: type(m).__name__ for n, m in module.named_modules()},
                              settings)
    ours: dict[tuple[str, str], list[float]] = {}
    for row in analysis.operators:
        total = ours.setdefault((row.operator, row.input_shapes), [0.0, 0.0])
        total[0] += row.calls_per_step * settings.active
        total[1] += (row.self_cpu_ms or 0.0) * settings.active
    theirs = {(e.key, json.dumps([list(s) for s in e.input_shapes])): (e.count, e.self_cpu_time_total / 1e3)
              for e in prof.key_averages(group_by_input_shape=True)}
    assert {row.phase for row in analysis.operators} == {"forward", "backward", "other"}
    for key, (calls, self_ms) in ours.items():
        assert key in theirs, key
        assert calls == theirs[key][0] and self_ms == pytest.approx(theirs[key][1], rel=1e-9, abs=1e-9), key


class _Raises(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.conv(x)
        raise RuntimeError("this block refuses to run")


def test_the_module_ranges_are_removed_even_when_the_forward_raises() -> None:
    module = _Raises(4)
    with pytest.raises(RuntimeError, match="refuses"):
        with module_ranges(module):
            module(torch.zeros(1, 4, 2, 2))
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in module.modules())


def test_a_failing_case_is_recorded_and_the_next_case_is_still_profiled(tmp_path: Path) -> None:
    from nlbench.blocks import ClaimedComplexity, register_block, unregister_block

    register_block("test_profile_raises", family="test", paper="tests",
                   claimed=ClaimedComplexity("O(C·HW)", n_exponent=1.0, c_exponent=1.0))(_Raises)
    try:
        results = list(profile_cases([Case("test_profile_raises", 4, 8, 8), Case("identity", 4, 8, 8)], tmp_path,
                                     **FAST))
    finally:
        unregister_block("test_profile_raises")
    failed, fine = results
    assert failed.status == "error" and "refuses to run" in failed.error
    summary = json.loads((failed.directory / "profile.json").read_text())
    assert summary["status"] == "error" and "refuses to run" in summary["error"] and summary["traceback"]
    assert fine.ok and (fine.directory / "ops.csv").exists() and fine.macs == 0


def test_the_cli_profiles_prints_and_says_how_to_open_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "p"
    assert main(["profile", "--blocks", "nl,identity", "--channels", "8", "--size", "8x6", "--steps", "1",
                 "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "tensorboard --logdir" in text and "ui.perfetto.dev" in text and "top 8 operators" in text
    assert (out / "nl_C8_8x6_B1" / "ops.csv").exists() and (out / "identity_C8_8x6_B1" / "modules.csv").exists()


def test_the_cli_rejects_bad_input_with_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["profile", "--blocks", "srl_ftt", "--out", str(tmp_path)]) == 2
    assert "Did you mean 'srl_fft'" in capsys.readouterr().out
    assert main(["profile", "--blocks", "nl", "--size", "8y8", "--out", str(tmp_path)]) == 2
    assert "--size" in capsys.readouterr().out
    if not torch.cuda.is_available():
        assert main(["profile", "--blocks", "nl", "--device", "cuda", "--out", str(tmp_path)]) == 2
        assert "CUDA is not available" in capsys.readouterr().out
    assert not any(tmp_path.iterdir()), "nothing is written for bad input"


def test_the_profile_measurement_writes_under_the_run_directory(tmp_path: Path) -> None:
    from nlbench import store
    from nlbench.suite import parse_suite
    from nlbench.sweep import run_sweep, start_run

    suite = parse_suite({"name": "profiled", "blocks": ["srl_fft"], "channels": [8], "resolutions": [8],
                         "measure": ["params", "profile"]})
    run_dir = start_run(suite, tmp_path, only_blocks=None, device=None, plugins=[])
    run_sweep(suite, run_dir)  # in the isolated worker: the settings carry the run directory there
    record = store.load(run_dir).iloc[0]
    assert record["status"] == "ok", record["error"]
    assert record["profile_dir"] == f"profiles/{record['case_id']}"
    assert (run_dir / record["profile_dir"] / "ops.csv").exists()
    assert record["profile_fwd_ms"] > 0 and record["params"] > 0


def test_the_profile_measurement_needs_a_run_directory() -> None:
    from nlbench.measure.registry import CaseSettings, get_measurer

    case = Case("identity", 4, 8, 8)
    with pytest.raises(ValueError, match="artifacts_dir"):
        get_measurer("profile").function(case.build(), (case.make_input(),), case, CaseSettings(measure=("profile",)))


LOAD_RUN = textwrap.dedent(
    """
    import json, os, sys

    def main(logdir):
        from torch_tb_profiler import io, utils
        from torch_tb_profiler.profiler.loader import RunLoader

        run_dirs = sorted(root for root, _, files in os.walk(logdir) if any(utils.is_chrome_trace_file(f) for f in files))
        runs = {}
        for run_dir in run_dirs:
            traces = [f for f in os.listdir(run_dir) if utils.is_chrome_trace_file(f)]
            run = RunLoader(os.path.basename(run_dir), run_dir, io.Cache()).load()
            runs[os.path.basename(run_dir)] = {"traces": traces, "workers": list(run.workers) if run.profiles else [],
                                               "views": [v.display_name for v in run.views]}
        print(json.dumps(runs))

    if __name__ == "__main__":  # the loader parses each worker in a spawned process
        main(sys.argv[1])
    """
)


def test_torch_tb_profiler_loads_one_run_per_case_with_its_views(profiled, tmp_path: Path) -> None:
    pytest.importorskip("torch_tb_profiler")
    logdir = profiled["nl"].directory.parent
    script = tmp_path / "load_run.py"
    script.write_text(LOAD_RUN)
    done = subprocess.run([sys.executable, str(script), str(logdir)], capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    runs = json.loads(done.stdout.strip().splitlines()[-1])
    assert sorted(runs) == ["nl_C8_8x8_B1", "srl_fft_C8_8x8_B1"]
    for name, run in runs.items():
        assert len(run["traces"]) == 1 and run["traces"][0].endswith(".pt.trace.json.gz"), run  # not trace.json.gz
        assert run["workers"] == [name]
        assert {"Overview", "Operator", "Trace", "Memory"} <= set(run["views"]), run


def test_profiling_a_case_again_replaces_its_earlier_files(tmp_path: Path) -> None:
    first = profile_case(Case("identity", 4, 8, 8), tmp_path, **FAST)
    second = profile_case(Case("identity", 4, 8, 8), tmp_path, **FAST)
    assert first.directory == second.directory and second.ok
    assert len(list(second.directory.glob("*.pt.trace.json.gz"))) == 1
