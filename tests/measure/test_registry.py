"""The measurer registry: built-ins in order, unknown names suggested, a user's
measurer registered from a plugin module and run by the sweep (isolated worker too)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from nlbench import store
from nlbench.measure.registry import MeasurerError, get_measurer, measurer_names
from nlbench.suite import SuiteError, parse_suite
from nlbench.sweep import run_sweep, start_run
from nlbench.vocabulary import DEFAULT_MEASUREMENTS

PLUGIN = textwrap.dedent(
    """
    from dataclasses import dataclass
    from nlbench.measure.registry import register_measurer

    @dataclass(frozen=True)
    class OutputNorm:
        value: float

        def columns(self):
            return {"output_norm": self.value}

    @register_measurer("output_norm", description="L2 norm of the output (test plugin)")
    def output_norm(module, inputs, case, settings):
        return OutputNorm(float(module(*inputs).detach().norm()))
    """
)


def test_builtins_are_registered_in_canonical_order() -> None:
    assert measurer_names()[:6] == DEFAULT_MEASUREMENTS == (
        "params", "flops", "counters", "latency_fwd", "latency_fwdbwd", "memory")


def test_unknown_measurer_suggests_close_names() -> None:
    with pytest.raises(MeasurerError, match="Did you mean 'latency_fwd'"):
        get_measurer("latency_fw")
    with pytest.raises(SuiteError, match="field 'measure'"):
        parse_suite({"name": "x", "blocks": ["identity"], "channels": [4], "resolutions": [4],
                     "measure": ["parms"]})


@pytest.fixture()
def measurer_plugin(install_plugin) -> str:
    return install_plugin("nlbench_norm_measurer", PLUGIN)


@pytest.mark.parametrize("isolate", [False, True])
def test_plugin_measurer_runs_in_the_sweep(measurer_plugin: str, tmp_path: Path, isolate: bool) -> None:
    suite = parse_suite({"name": "plugin-measurer", "blocks": ["identity", "nl"], "channels": [4],
                         "resolutions": [4], "measure": ["params", "output_norm"]})
    run_dir = start_run(suite, tmp_path, only_blocks=None, device=None, plugins=[measurer_plugin])
    run_sweep(suite, run_dir, plugins=[measurer_plugin], isolate=isolate)
    df = store.load(run_dir).set_index("block")
    assert list(df["status"]) == ["ok", "ok"]
    # identity and a fresh nl (zero-initialised BN) both return their input exactly
    assert df.loc["identity", "output_norm"] == pytest.approx(df.loc["nl", "output_norm"])
    assert df.loc["identity", "params"] == 0 and df.loc["nl", "params"] > 0
    assert df["macs"].isna().all(), "flops was not asked for: null, never zero"
