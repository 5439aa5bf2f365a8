"""Suites: TOML files that say what to sweep, validated into a frozen :class:`Suite`
and expanded into :class:`~nlbench.case.Case` values.

A bad file is rejected before anything runs, with the file, the field and what was
expected. Example (``nlbench/suites/smoke.toml``)::

    name = "smoke"
    blocks = ["*"]
    channels = [32]
    resolutions = [[8, 8], [12, 10]]
    measure = ["params", "flops", "latency_fwd", "memory"]
    [latency]
    warmup = 1
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping

from nlbench.case import DTYPE_BYTES, Case
from nlbench.vocabulary import DEFAULT_MEASUREMENTS, GateSettings, Limits, SamplingSettings, SettingsError, did_you_mean

# The shipped suites are package data (nlbench/suites/*.toml), so a suite is found by
# name from any install: editable, a wheel, a plain `pip install .`.
SUITES_DIR = Path(__file__).resolve().parent / "suites"
DEVICES = ("cpu", "cuda")
TOP_LEVEL_FIELDS = {
    "name", "description", "blocks", "channels", "resolutions", "batch", "frames", "dtype",
    "device", "measure", "latency", "limits", "gate", "options", "variants", "paper_table",
}


class SuiteError(ValueError):
    """A suite file that cannot be run, with the file, the field and what was expected."""

    def __init__(self, source: str, field_name: str, expected: str, got: Any = None) -> None:
        detail = f", got {got!r}" if got is not None else ""
        super().__init__(f"{source}: field '{field_name}': expected {expected}{detail}")
        self.source, self.field_name, self.expected = source, field_name, expected


@dataclass(frozen=True)
class PaperRow:
    """One row of a paper's cost table: the blocks' summed extra cost at one input."""

    input: str
    block: str
    gflops: float
    params_m: float


@dataclass(frozen=True)
class PaperTable:
    """A paper table to compare against: which maps are summed per input size."""

    title: str
    giga: float
    maps: Mapping[str, tuple[tuple[int, int], ...]]
    rows: tuple[PaperRow, ...]


@dataclass(frozen=True)
class Suite:
    """A validated suite: the axes to sweep, what to measure and how."""

    name: str
    source: str
    description: str
    blocks: tuple[str, ...]
    channels: tuple[int, ...]
    resolutions: tuple[tuple[int, int], ...]
    batch: tuple[int, ...] = (1,)
    frames: tuple[int, ...] = ()
    dtype: tuple[str, ...] = ("float32",)
    device: tuple[str, ...] = ("cpu",)
    measure: tuple[str, ...] = DEFAULT_MEASUREMENTS
    latency: SamplingSettings = field(default_factory=SamplingSettings)
    limits: Limits = field(default_factory=Limits)
    gate: GateSettings = field(default_factory=GateSettings)
    options: Mapping[str, Mapping[str, Any]] = field(default_factory=lambda: MappingProxyType({}))
    variants: tuple[tuple[str, Mapping[str, Any]], ...] = ()
    paper_table: PaperTable | None = None

    def block_names(self) -> list[str]:
        """The blocks this suite selects, wildcards expanded against the registry."""
        from nlbench.blocks import get_spec, resolve_blocks

        names = resolve_blocks(list(self.blocks))
        if self.frames:
            names = [n for n in names if get_spec(n).supports_video]
        return names

    def configurations(self) -> list[tuple[str, dict[str, Any]]]:
        """(block, options) pairs in order: each selected block with its ``[options]``
        table, then each ``[[variants]]`` entry (a block again, other options)."""
        from nlbench.blocks import get_spec

        found = [(name, dict(self.options.get(name, {}))) for name in self.block_names()]
        for name, options in self.variants:
            if not self.frames or get_spec(name).supports_video:
                found.append((name, {**self.options.get(name, {}), **options}))
        return found

    def cases(self, *, only_blocks: list[str] | None = None, device: str | None = None) -> list[Case]:
        """Every case of the suite, in a stable order (configuration-major)."""
        from nlbench.blocks import resolve_options

        configurations = self.configurations()
        if only_blocks is not None:
            configurations = [(n, o) for n, o in configurations if n in only_blocks]
        frames_axis: tuple[int | None, ...] = self.frames or (None,)
        devices = (device,) if device else self.device
        cases = []
        for (name, options), dev, dtype, channels, batch, frames, (height, width) in itertools.product(
            configurations, devices, self.dtype, self.channels, self.batch, frames_axis, self.resolutions
        ):
            options = dict(options)
            resolve_options(name, options)  # unknown options fail before anything runs
            cases.append(Case(name, channels, height, width, batch=batch, frames=frames,
                              dtype=dtype, device=dev, options=Case.normalise_options(options)))
        return list(dict.fromkeys(cases))  # a size listed twice is one case, measured once


def find_suite(name_or_path: str) -> Path:
    """A suite by path (an existing file, or anything ending in ``.toml`` or with a folder
    in it) or by name: a shipped suite, ``nlbench/suites/NAME.toml``, from any install."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    if path.suffix == ".toml" or len(path.parts) > 1:
        if path.is_dir():
            raise SuiteError(str(path), "(file)", "a TOML file, not a directory")
        raise SuiteError(str(path), "(file)", "an existing TOML file")
    candidate = SUITES_DIR / f"{name_or_path}.toml"
    if not candidate.exists() and path.is_dir():
        raise SuiteError(str(path), "(file)", "a TOML file, not a directory")
    if not candidate.exists():
        known = sorted(p.stem for p in SUITES_DIR.glob("*.toml"))
        hint = did_you_mean(name_or_path, known)
        raise SuiteError(name_or_path, "(suite)", f"a suite name ({', '.join(known)}) or a path to a .toml file.{hint}")
    return candidate


def load_suite(name_or_path: str) -> Suite:
    """Read and validate a suite; raises :class:`SuiteError` on any problem."""
    path = find_suite(name_or_path)
    return parse_suite(read_toml(path), source=str(path))


def read_toml(path: Path) -> dict[str, Any]:
    """A TOML file's data; unreadable files, other encodings (UTF-16 …) and syntax
    errors are a :class:`SuiteError` naming the file."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise SuiteError(str(path), "(file)", f"a readable TOML file ({exc.strerror or exc})") from None
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise SuiteError(str(path), "(encoding)", "UTF-8 text (this file is UTF-16: save it as UTF-8)")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SuiteError(str(path), "(encoding)", f"UTF-8 text (invalid byte at offset {exc.start})") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SuiteError(str(path), "(syntax)", f"valid TOML ({exc})") from None


def read_paper_table(run_dir: Path | str) -> PaperTable | None:
    """The ``paper_table`` of the suite a run was run with (``run_dir/suite.toml``),
    or None. Reads only that table, so no block (and no torch) is needed."""
    path = Path(run_dir) / "suite.toml"
    if not path.is_file():
        return None
    data = read_toml(path)
    return _Validator(str(path)).paper_table(data["paper_table"]) if "paper_table" in data else None


def read_gate_settings(run_dir: Path | str) -> GateSettings | None:
    """The ``[gate]`` settings of the suite a run was run with (``run_dir/suite.toml``),
    or None when the run has no suite copy; the defaults when the suite has no table."""
    path = Path(run_dir) / "suite.toml"
    if not path.is_file():
        return None
    return _Validator(str(path)).gate(read_toml(path).get("gate", {}))


def parse_suite(data: Mapping[str, Any], *, source: str = "<suite>") -> Suite:
    """Validate a suite's TOML data into a :class:`Suite`."""
    unknown = sorted(set(data) - TOP_LEVEL_FIELDS)
    if unknown:
        raise SuiteError(source, unknown[0], f"one of {', '.join(sorted(TOP_LEVEL_FIELDS))}")
    from nlbench.measure.registry import measurer_names

    v = _Validator(source)
    name = v.string(data, "name", required=True)
    measure = v.choices(data, "measure", measurer_names(), default=Suite.measure)
    return Suite(
        name=name,
        source=source,
        description=v.string(data, "description", default=""),
        blocks=tuple(v.strings(data, "blocks", required=True)),
        channels=tuple(v.positive_ints(data, "channels", required=True)),
        resolutions=tuple(v.resolutions(data, "resolutions")),
        batch=tuple(v.positive_ints(data, "batch", default=[1], non_empty=True)),
        frames=tuple(v.positive_ints(data, "frames", default=[])),
        dtype=v.choices(data, "dtype", tuple(DTYPE_BYTES), default=("float32",)),
        device=v.choices(data, "device", DEVICES, default=("cpu",)),
        measure=measure,
        latency=v.latency(data.get("latency", {})),
        limits=v.limits(data.get("limits", {})),
        gate=v.gate(data.get("gate", {})),
        options=v.options(data.get("options", {})),
        variants=v.variants(data.get("variants", [])),
        paper_table=v.paper_table(data["paper_table"]) if "paper_table" in data else None,
    )


class _Validator:
    """Field checks that raise :class:`SuiteError` naming the file and the field."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, field_name: str, expected: str, got: Any = None) -> SuiteError:
        return SuiteError(self.source, field_name, expected, got)

    def string(self, data: Mapping[str, Any], key: str, *, required: bool = False, default: str = "") -> str:
        if key not in data:
            if required:
                raise self.fail(key, "a string (missing)")
            return default
        if not isinstance(data[key], str) or not data[key]:
            raise self.fail(key, "a non-empty string", data[key])
        return data[key]

    def strings(self, data: Mapping[str, Any], key: str, *, required: bool = False) -> list[str]:
        value = data.get(key)
        if value is None and required:
            raise self.fail(key, "a list of strings (missing)")
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not value or not all(isinstance(s, str) and s for s in value):
            raise self.fail(key, "a non-empty list of strings", value)
        return value

    def positive_ints(self, data: Mapping[str, Any], key: str, *, required: bool = False,
                      default: list[int] | None = None, non_empty: bool = False) -> list[int]:
        if key not in data:
            if required:
                raise self.fail(key, "a list of positive integers (missing)")
            return list(default or [])
        value = data[key]
        if isinstance(value, int) and not isinstance(value, bool):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(i, int) and not isinstance(i, bool) and i > 0 for i in value):
            raise self.fail(key, "a list of positive integers", value)
        if (required or non_empty) and not value:
            raise self.fail(key, "a non-empty list of positive integers", value)
        return value

    def resolutions(self, data: Mapping[str, Any], key: str) -> list[tuple[int, int]]:
        if key not in data:
            raise self.fail(key, "a list of sizes: S (square) or [H, W] (missing)")
        value = data[key]
        if not isinstance(value, list) or not value:
            raise self.fail(key, "a non-empty list of sizes: S (square) or [H, W]", value)
        sizes = []
        for item in value:
            if isinstance(item, int) and not isinstance(item, bool) and item > 0:
                sizes.append((item, item))
            elif (isinstance(item, list) and len(item) == 2
                  and all(isinstance(i, int) and not isinstance(i, bool) and i > 0 for i in item)):
                sizes.append((item[0], item[1]))
            else:
                raise self.fail(key, "each size a positive integer S or a pair [H, W]", item)
        return sizes

    def choices(self, data: Mapping[str, Any], key: str, allowed: tuple[str, ...], *,
                default: tuple[str, ...]) -> tuple[str, ...]:
        if key not in data:
            return default
        value = data[key]
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not value or any(v not in allowed for v in value):
            raise self.fail(key, f"a list drawn from {', '.join(allowed)}", value)
        return tuple(value)

    def _number(self, table: Mapping[str, Any], key: str, prefix: str, default: float, *,
                integer: bool = False, minimum: float = 0.0) -> Any:
        value = table.get(key, default)
        ok_type = isinstance(value, int) if integer else isinstance(value, (int, float))
        if isinstance(value, bool) or not ok_type or not math.isfinite(value) or value < minimum:
            kind = "an integer" if integer else "a finite number"
            raise self.fail(f"{prefix}.{key}", f"{kind} ≥ {minimum:g}", value)
        return value

    def _table(self, table: Any, prefix: str, allowed: set[str]) -> Mapping[str, Any]:
        if not isinstance(table, dict):
            raise self.fail(prefix, "a table", table)
        unknown = sorted(set(table) - allowed)
        if unknown:
            raise self.fail(f"{prefix}.{unknown[0]}", f"one of {', '.join(sorted(allowed))}")
        return table

    def _settings(self, table: Any, prefix: str, cls: type) -> Any:
        """Build a vocabulary settings value from a TOML table; its own checks name the field."""
        fields = {f.name for f in dataclasses.fields(cls)}
        table = self._table(table, prefix, fields)
        try:
            return cls(**table)
        except SettingsError as exc:
            raise self.fail(exc.field, exc.expected, exc.got) from None

    def latency(self, table: Any) -> SamplingSettings:
        return self._settings(table, "latency", SamplingSettings)

    def limits(self, table: Any) -> Limits:
        return self._settings(table, "limits", Limits)

    def gate(self, table: Any) -> GateSettings:
        return self._settings(table, "gate", GateSettings)

    def options(self, table: Any) -> Mapping[str, Mapping[str, Any]]:
        if not isinstance(table, dict) or not all(isinstance(v, dict) for v in table.values()):
            raise self.fail("options", "a table of per-block option tables, e.g. [options.srl_fft] spectral_relu = false", table)
        from nlbench.blocks import BlockError, resolve_options

        for block, opts in table.items():
            try:
                resolve_options(block, opts)
            except BlockError as exc:
                raise self.fail(f"options.{block}", f"options the block accepts ({exc})") from None
        return MappingProxyType({k: MappingProxyType(dict(v)) for k, v in table.items()})

    def variants(self, entries: Any) -> tuple[tuple[str, Mapping[str, Any]], ...]:
        """``[[variants]]``: more configurations of a block, each ``block = NAME`` and an
        ``options`` table (e.g. ``impl = "factorized"``), swept like the listed blocks."""
        expected = 'an array of tables, e.g. [[variants]] block = "snl" options = { impl = "factorized" }'
        if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
            raise self.fail("variants", expected, entries)
        from nlbench.blocks import BlockError, get_spec, resolve_options

        found = []
        for index, entry in enumerate(entries):
            where = f"variants[{index}]"
            unknown = sorted(set(entry) - {"block", "options"})
            if unknown or not isinstance(entry.get("block"), str) or not isinstance(entry.get("options", {}), dict):
                raise self.fail(where, "a table with block = NAME and options = { … } only", entry)
            try:
                get_spec(entry["block"])
                resolve_options(entry["block"], entry.get("options", {}))
            except BlockError as exc:
                raise self.fail(where, f"a registered block and options it accepts ({exc})") from None
            found.append((entry["block"], MappingProxyType(dict(entry.get("options", {})))))
        return tuple(found)

    def paper_table(self, table: Any) -> PaperTable:
        table = self._table(table, "paper_table", {"title", "giga", "maps", "rows"})
        maps_table = table.get("maps")
        if not isinstance(maps_table, dict) or not maps_table:
            raise self.fail("paper_table.maps", "a table: input size -> list of [H, W] maps summed for it", maps_table)
        maps = {k: tuple(self.resolutions({"paper_table.maps." + k: v}, "paper_table.maps." + k))
                for k, v in maps_table.items()}
        rows = table.get("rows")
        if not isinstance(rows, list) or not rows:
            raise self.fail("paper_table.rows", "a non-empty array of tables {input, block, gflops, params_m}", rows)
        parsed = []
        for i, row in enumerate(rows):
            prefix = f"paper_table.rows[{i}]"
            row = self._table(row, prefix, {"input", "block", "gflops", "params_m"})
            if row.get("input") not in maps:
                raise self.fail(f"{prefix}.input", f"one of the maps' inputs ({', '.join(maps)})", row.get("input"))
            if not isinstance(row.get("block"), str):
                raise self.fail(f"{prefix}.block", "a block name", row.get("block"))
            for key in ("gflops", "params_m"):
                if key not in row:
                    raise self.fail(f"{prefix}.{key}", "a number ≥ 0 (missing)")
            parsed.append(PaperRow(row["input"], row["block"],
                                   float(self._number(row, "gflops", prefix, 0.0)),
                                   float(self._number(row, "params_m", prefix, 0.0))))
        giga = float(self._number(table, "giga", "paper_table", 2.0**30, minimum=1))
        return PaperTable(title=self.string(table, "title", default="paper table"), giga=giga,
                          maps=MappingProxyType(maps), rows=tuple(parsed))
