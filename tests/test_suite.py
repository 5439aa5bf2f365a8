"""Suites: the shipped files validate, bad files are rejected with file, field and
expectation, and suites expand into the right cases."""

from __future__ import annotations

from pathlib import Path

import pytest

from nlbench.blocks import BlockError
from nlbench.suite import SUITES_DIR, SuiteError, load_suite, parse_suite

SHIPPED = ["smoke", "resolution", "channels", "video", "paper-srl-table3", "gate", "exact-forms"]


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_suites_load_and_expand(name: str) -> None:
    suite = load_suite(name)
    cases = suite.cases()
    assert cases, name
    assert len({c.case_id for c in cases}) == len(cases), "case ids must be unique"


def test_resolution_suite_is_the_issue_grid() -> None:
    suite = load_suite("resolution")
    assert suite.channels == (64,) and suite.batch == (1,)
    assert [h for h, _ in suite.resolutions] == [8, 16, 24, 32, 48, 64, 96, 128]
    assert {"latency_fwd", "latency_fwdbwd"} <= set(suite.measure)
    assert len(suite.cases()) == 10 * 8


def test_video_suite_keeps_only_video_blocks_and_frames() -> None:
    cases = load_suite("video").cases()
    assert {c.frames for c in cases} == {1, 2, 4, 8, 16}
    assert all(c.height == c.width == 28 for c in cases)


def test_paper_suite_options_and_table() -> None:
    suite = load_suite("paper-srl-table3")
    assert dict(suite.options["srl_fft"]) == {"spectral_relu": False}
    assert len(suite.paper_table.rows) == 10
    assert suite.paper_table.giga == 2**30


def test_block_filter_and_device_override() -> None:
    cases = load_suite("smoke").cases(only_blocks=["nl"], device="cuda")
    assert {c.block for c in cases} == {"nl"} and {c.device for c in cases} == {"cuda"}


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    return str(path)


GOOD = 'name = "t"\nblocks = ["nl"]\nchannels = [8]\nresolutions = [4]\n'


@pytest.mark.parametrize(
    ("text", "field", "expected"),
    [
        ('blocks = ["nl"]\nchannels = [8]\nresolutions = [4]\n', "name", "a string"),
        (GOOD.replace("[8]", '["eight"]'), "channels", "positive integers"),
        (GOOD.replace("[4]", "[[4, 0]]"), "resolutions", "pair"),
        (GOOD + 'dtype = ["float8"]\n', "dtype", "float32"),
        (GOOD + 'measure = ["speed"]\n', "measure", "latency_fwd"),
        (GOOD + "[latency]\nwarmup = -1\n", "latency.warmup", "integer"),
        (GOOD + "[latency]\nmin_samples = 5\nmax_samples = 2\n", "latency.max_samples", "min_samples"),
        (GOOD + "[latency]\nwarm_up = 1\n", "latency.warm_up", "one of"),
        (GOOD + "[latency]\nhuge_pages = \"yes\"\n", "latency.huge_pages", "true or false"),
        (GOOD + "[options.nl]\nmodee = 'x'\n", "options.nl", "no option 'modee'"),
        (GOOD + "colour = 1\n", "colour", "one of"),
        (GOOD + "variants = 3\n", "variants", "array of tables"),
        (GOOD + "[[variants]]\nblock = 'snl'\nimpl = 'factorized'\n", "variants[0]", "block = NAME and options"),
        (GOOD + "[[variants]]\nblock = 'snl'\noptions = { impl = 'factorised' }\n", "variants[0]", "Did you mean"),
        (GOOD + "[[variants]]\nblock = 'nl'\noptions = { impl = 'factorized' }\n", "variants[0]", "dot_product"),
        ("name = [", "(syntax)", "valid TOML"),
    ],
)
def test_bad_suite_names_file_field_and_expectation(tmp_path: Path, text: str, field: str, expected: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(SuiteError) as info:
        load_suite(path)
    message = str(info.value)
    assert message.startswith(path) and f"'{field}'" in message and expected in message


def test_unknown_block_in_suite_suggests(tmp_path: Path) -> None:
    suite = load_suite(write(tmp_path, GOOD.replace('"nl"', '"srl_ftt"')))
    with pytest.raises(BlockError, match="Did you mean 'srl_fft'"):
        suite.cases()


def test_unknown_suite_name_suggests() -> None:
    with pytest.raises(SuiteError, match="Did you mean 'resolution'"):
        load_suite("resolutoin")


def test_square_and_pair_sizes() -> None:
    suite = parse_suite({"name": "x", "blocks": ["identity"], "channels": [4], "resolutions": [3, [5, 7]]})
    assert suite.resolutions == ((3, 3), (5, 7))


def test_every_shipped_suite_file_is_listed() -> None:
    assert sorted(p.stem for p in SUITES_DIR.glob("*.toml")) == sorted(SHIPPED), \
        "every shipped suite is listed in SHIPPED (so it is loaded and expanded above), and only those"


def test_gate_suite_gates_every_built_in_block_but_identity() -> None:
    from nlbench.blocks import get_spec, list_blocks

    built_in = {n for n in list_blocks() if get_spec(n).source.startswith("nlbench.")}
    suite = load_suite("gate")
    assert set(suite.block_names()) == built_in - {"identity"}
    assert suite.latency.rounds > 1 and suite.latency.threads == 1
    assert {"params", "flops", "latency_fwd", "latency_fwdbwd"} <= set(suite.measure)


@pytest.mark.parametrize("table, field", [
    ({"threshold": -0.1}, "gate.threshold"), ({"alpha": 1.0}, "gate.alpha"), ({"confidence": 0}, "gate.confidence"),
    ({"alhpa": 0.1}, "gate.alhpa"),
])
def test_gate_table_is_validated(table, field) -> None:
    data = {"name": "s", "blocks": ["nl"], "channels": [8], "resolutions": [8], "gate": table}
    with pytest.raises(SuiteError) as info:
        parse_suite(data, source="s.toml")
    assert info.value.field_name == field and "s.toml" in str(info.value)


def test_gate_table_values_reach_the_suite() -> None:
    data = {"name": "s", "blocks": ["nl"], "channels": [8], "resolutions": [8], "gate": {"threshold": 0.2}}
    assert parse_suite(data).gate.threshold == 0.2


def test_variants_add_configurations_after_the_listed_blocks(tmp_path: Path) -> None:
    text = (GOOD + "[options.nl]\nreduction = 4\n"
            "[[variants]]\nblock = 'nl'\noptions = { mode = 'dot_product', impl = 'factorized' }\n"
            "[[variants]]\nblock = 'snl'\noptions = { impl = 'factorized' }\n")
    suite = load_suite(write(tmp_path, text))
    assert [(c.block, dict(c.options)) for c in suite.cases()] == [
        ("nl", {"reduction": 4}),
        ("nl", {"reduction": 4, "mode": "dot_product", "impl": "factorized"}),  # [options.nl] applies too
        ("snl", {"impl": "factorized"}),
    ]
    assert [c.block for c in suite.cases(only_blocks=["snl"])] == ["snl"]


def test_exact_forms_suite_measures_every_implementation() -> None:
    cases = load_suite("exact-forms").cases()
    impls = {(c.block, dict(c.options).get("mode", "embedded_gaussian"), dict(c.options).get("impl", "dense"))
             for c in cases}
    assert impls == {("snl", "embedded_gaussian", "dense"), ("snl", "embedded_gaussian", "factorized"),
                     ("nl", "embedded_gaussian", "dense"), ("nl", "embedded_gaussian", "sdpa"),
                     ("nl", "dot_product", "dense"), ("nl", "dot_product", "factorized"),
                     ("ns", "embedded_gaussian", "dense"), ("ns", "embedded_gaussian", "sdpa")}
