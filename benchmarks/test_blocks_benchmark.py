"""The blocks' forward and forward+backward passes as pytest-benchmark benchmarks, one
per case of a suite (``NLBENCH_BENCH_SUITE``, default the shipped suite ``gate``), so
pytest-benchmark's own tools work on them and ``nlbench gate`` reads their JSON::

    pytest benchmarks/test_blocks_benchmark.py --benchmark-only \\
        --benchmark-json=out.json --benchmark-save-data

``--benchmark-save-data`` keeps every round's time, which the gate's rank test needs.
Each entry's ``extra_info`` holds the case (``Case.to_dict``), its ``case_id``, the
``pass`` (``fwd`` or ``fwdbwd``), the thread count and the torch version; the suite's
``latency.threads`` is in force while a benchmark runs. Not part of the default test
run (``testpaths = ["tests"]``): name this file to run it.
"""

from __future__ import annotations

import os

import pytest
import torch

from nlbench.case import Case
from nlbench.measure.latency import clear_grads, forward_backward, inputs_for_backward, intra_op_threads, \
    synchronize_if_cuda
from nlbench.suite import Suite, SuiteError, load_suite
from nlbench.vocabulary import LATENCY_PASSES

SUITE_ENV = "NLBENCH_BENCH_SUITE"
DEFAULT_SUITE = "gate"


def _suite() -> Suite:
    """The suite named by ``NLBENCH_BENCH_SUITE``; a bad name fails collection with the reason."""
    try:
        return load_suite(os.environ.get(SUITE_ENV) or DEFAULT_SUITE)
    except SuiteError as exc:
        problem = str(exc)
    pytest.fail(f"{SUITE_ENV}: {problem}", pytrace=False)


SUITE = _suite()
#: The suite's cases by case id (the benchmarks' parameter, so the JSON's ``params`` stay plain).
CASES: dict[str, Case] = {case.case_id: case for case in SUITE.cases()}
_LABELS = [case.label for case in CASES.values()]


def _id(case: Case, pass_name: str) -> str:
    """The case's label with dashes for spaces, then the pass; dtype and device join in
    when the label alone does not tell the suite's cases apart."""
    label = case.label if _LABELS.count(case.label) == 1 else f"{case.label} {case.dtype} {case.device}"
    return f"{label.replace(' ', '-')}-{pass_name}"


@pytest.mark.parametrize(("case_id", "pass_name"), [pytest.param(case_id, p, id=_id(case, p))
                                                    for case_id, case in CASES.items() for p in LATENCY_PASSES])
def test_block(benchmark, case_id: str, pass_name: str) -> None:
    """One pass of one case: forward in eval mode under no_grad, or forward + sum loss
    + backward in train mode with gradients cleared before each call."""
    case = CASES[case_id]
    if case.device.startswith("cuda") and not torch.cuda.is_available():
        pytest.skip(f"{case.label}: CUDA is not available")
    benchmark.group = pass_name
    module = case.build()
    xs = (case.make_input(),)
    device = xs[0].device
    with intra_op_threads(SUITE.latency.threads) as threads:
        benchmark.extra_info.update({"case": case.to_dict(), "case_id": case.case_id, "pass": pass_name,
                                     "threads": threads, "torch_version": torch.__version__,
                                     "suite": SUITE.name})
        if pass_name == "fwd":
            module.eval()

            def forward() -> object:
                output = module(*xs)
                synchronize_if_cuda(device)
                return output

            with torch.no_grad():
                benchmark(forward)
        else:
            module.train()
            xs = inputs_for_backward(module, xs)

            def step() -> object:
                clear_grads(module, xs)  # sets .grad = None: cheap, so it may sit in the timed call
                output = forward_backward(module, xs)
                synchronize_if_cuda(device)
                return output

            with torch.enable_grad():
                benchmark(step)
            clear_grads(module, xs)
