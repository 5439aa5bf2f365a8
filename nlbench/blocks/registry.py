"""The block registry: specs, wildcard listing, validated construction, plugins.

Every block, built-in or a user's, is registered with :func:`register_block`, which
records a frozen :class:`BlockSpec`. :func:`create_block` is the one constructor the
sweeps, probes and tests use: it checks the name, the options and ``spatial_size``
before the block's own constructor runs, so mistakes get clear messages.
"""

from __future__ import annotations

import fnmatch
import importlib
import importlib.metadata
import inspect
import math
import numbers
import re
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Callable, Mapping, TypeVar

from torch import nn

from nlbench.vocabulary import IMPL_OPTION, ClaimedComplexity, did_you_mean

ENTRY_POINT_GROUP = "nlbench.blocks"


class BlockError(ValueError):
    """A block name, option or size that the registry cannot accept."""


@dataclass(frozen=True)
class Implementation:
    """One exact implementation of a block, selected with its ``impl`` option: the same
    function (and ``state_dict``) as the default, computed another way, so it carries
    its own claimed complexity and memory shape.

    ``requires`` restricts it to option values it is exact for (e.g. the factorised NL
    exists only for ``mode="dot_product"``): (option, allowed values) pairs.
    """

    name: str
    claimed: ClaimedComplexity
    description: str
    dense_affinity: bool = False
    requires: tuple[tuple[str, tuple[Any, ...]], ...] = ()

    def problem(self, block: str, options: Mapping[str, Any]) -> str | None:
        """Why this implementation cannot run with ``options``, or None."""
        for option, allowed in self.requires:
            if options.get(option) not in allowed:
                values = " or ".join(map(repr, allowed))
                return (f"block {block!r}: impl {self.name!r} is exact only for {option}={values}, "
                        f"got {option}={options.get(option)!r}")
        return None


@dataclass(frozen=True)
class BlockSpec:
    """What the registry knows about one block — the one place its needs are declared.

    ``default_options`` are read from the constructor's keyword parameters (declared
    once, in ``__init__``). ``needs_spatial_size``: its parameters depend on (H, W),
    unless ``spatial_size_option`` names a boolean option that turns that off.
    ``needs_frames``: its weights depend on T (the constructor takes ``frames``, which
    the sweep fills in from the case). ``dense_affinity``: it holds N×N matrices, which
    the sweep's memory estimate must know. ``implementations``: the exact alternatives
    its ``impl`` option selects (the default one first); a configuration's claim and
    memory shape are :meth:`claimed_for` and :meth:`dense_affinity_for`.
    """

    name: str
    family: str
    paper: str
    claimed: ClaimedComplexity
    supports_video: bool
    needs_spatial_size: bool
    default_options: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    factory: Callable[..., nn.Module] | None = field(default=None, compare=False, repr=False)
    source: str = "builtin"
    spatial_size_option: str | None = None
    dense_affinity: bool = False
    implementations: tuple[Implementation, ...] = ()

    def implementation(self, options: Mapping[str, Any]) -> Implementation | None:
        """The implementation ``options`` select (None for a block without alternatives)."""
        if not self.implementations:
            return None
        chosen = options.get(IMPL_OPTION, self.default_options.get(IMPL_OPTION))
        return next((i for i in self.implementations if i.name == chosen), None)

    def claimed_for(self, options: Mapping[str, Any]) -> ClaimedComplexity:
        """The claimed complexity of this configuration (its implementation's, if any)."""
        chosen = self.implementation(options)
        return chosen.claimed if chosen is not None else self.claimed

    def dense_affinity_for(self, options: Mapping[str, Any]) -> bool:
        """Whether this configuration holds N×N matrices."""
        chosen = self.implementation(options)
        return chosen.dense_affinity if chosen is not None else self.dense_affinity

    @property
    def needs_frames(self) -> bool:
        """Whether the block's weights depend on the number of frames T."""
        return "frames" in self.default_options

    def needs_size(self, options: Mapping[str, Any]) -> bool:
        """Whether this configuration needs ``spatial_size`` (srl_fft only with its spectral ReLU)."""
        if not self.needs_spatial_size:
            return False
        if self.spatial_size_option is None:
            return True
        return bool(options.get(self.spatial_size_option, self.default_options.get(self.spatial_size_option, True)))


def constructor_defaults(cls: type, name: str) -> dict[str, Any]:
    """The options of a block class: its constructor's keyword parameters and their
    defaults (``spatial_size`` excluded). A parameter without a default is an error."""
    defaults: dict[str, Any] = {}
    parameters = list(inspect.signature(cls.__init__).parameters.values())[2:]  # self, channels
    for parameter in parameters:
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD) or parameter.name == "spatial_size":
            continue
        if parameter.default is parameter.empty:
            raise BlockError(f"block {name!r}: constructor parameter {parameter.name!r} needs a default "
                             "(blocks are built as cls(channels, **options))")
        defaults[parameter.name] = parameter.default
    return defaults


_REGISTRY: dict[str, BlockSpec] = {}
_entry_points_loaded = False

ModuleT = TypeVar("ModuleT", bound=type)


def register_block(
    name: str,
    *,
    family: str,
    paper: str,
    claimed: ClaimedComplexity,
    supports_video: bool = False,
    needs_spatial_size: bool = False,
    spatial_size_option: str | None = None,
    dense_affinity: bool = False,
    implementations: tuple[Implementation, ...] = (),
) -> Callable[[ModuleT], ModuleT]:
    """Class decorator that registers a block under ``name``.

    The class is constructed as ``cls(channels, spatial_size=..., **options)``; it
    receives ``spatial_size`` only when ``needs_spatial_size`` is true. Its options
    and their defaults are its constructor's keyword parameters (see :class:`BlockSpec`).
    ``implementations`` declares the values of its ``impl`` option (the constructor's
    default must be the first one's name).
    """

    def decorate(cls: ModuleT) -> ModuleT:
        if name in _REGISTRY and _REGISTRY[name].factory is not cls:
            raise BlockError(f"block {name!r} is already registered (by {_REGISTRY[name].source})")
        defaults = constructor_defaults(cls, name)
        if implementations and defaults.get(IMPL_OPTION) != implementations[0].name:
            raise BlockError(f"block {name!r}: its constructor's default {IMPL_OPTION}= must be "
                             f"{implementations[0].name!r}, the first implementation declared")
        _REGISTRY[name] = BlockSpec(
            name=name,
            family=family,
            paper=paper,
            claimed=claimed,
            supports_video=supports_video,
            needs_spatial_size=needs_spatial_size,
            default_options=MappingProxyType(defaults),
            factory=cls,
            source=cls.__module__,
            spatial_size_option=spatial_size_option,
            dense_affinity=dense_affinity,
            implementations=tuple(implementations),
        )
        return cls

    return decorate


def unregister_block(name: str) -> None:
    """Remove a block (for tests and interactive sessions)."""
    _REGISTRY.pop(name, None)


def load_plugin(module_path: str) -> None:
    """Import a user's module so that its ``@register_block`` decorators run."""
    try:
        importlib.import_module(module_path)
    except ImportError as exc:
        raise BlockError(f"cannot load plugin module {module_path!r}: {exc}") from exc


def _load_entry_points() -> None:
    """Load the ``nlbench.blocks`` entry points of installed packages, once."""
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    for entry_point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        entry_point.load()


def _registry() -> dict[str, BlockSpec]:
    _load_entry_points()
    return _REGISTRY


def list_blocks(pattern: str = "*") -> list[str]:
    """Registered block names matching a shell-style wildcard (``"srl_*"``), sorted.

    A comma-separated pattern (``"nl,srl_*"``) matches any of its parts.
    """
    parts = [p.strip() for p in pattern.split(",") if p.strip()] or ["*"]
    return sorted(n for n in _registry() if any(n == p or fnmatch.fnmatchcase(n, p) for p in parts))


def resolve_blocks(patterns: list[str] | str) -> list[str]:
    """Expand names and wildcards into block names, in the order given.

    A pattern that matches nothing is an error that suggests the close names.
    """
    if isinstance(patterns, str):
        patterns = [p.strip() for p in patterns.split(",") if p.strip()]
    names: list[str] = []
    for pattern in patterns:
        matched = list_blocks(pattern) if pattern != "all" else list_blocks("*")
        if not matched:
            get_spec(pattern)  # raises with suggestions
        names.extend(n for n in matched if n not in names)
    return names


def get_spec(name: str) -> BlockSpec:
    """The frozen spec of a registered block; unknown names suggest close ones."""
    registry = _registry()
    if name not in registry:
        raise BlockError(f"unknown block {name!r}.{did_you_mean(name, registry)} "
                         f"Known blocks: {', '.join(sorted(registry))}.")
    return registry[name]


def _option_kinds(spec: BlockSpec, option: str) -> tuple[type, ...]:
    """The value types an option accepts, from its default (and, for a None default,
    its annotation): bool only for bools, int (not bool) for ints, int or float for
    floats, str for strings; a None default also accepts None."""
    default = spec.default_options[option]
    if isinstance(default, bool):
        return (bool,)
    if isinstance(default, int):
        return (numbers.Integral,)
    if isinstance(default, float):
        return (numbers.Real,)
    if isinstance(default, str):
        return (str,)
    if default is None:
        hint = _annotation(spec, option)
        named = {"bool": bool, "int": numbers.Integral, "float": numbers.Real, "str": str}
        kinds = tuple(k for word, k in named.items() if re.search(rf"\b{word}\b", hint))
        return (*kinds, type(None)) if kinds else (bool, numbers.Real, str, type(None))
    return (type(default),)


def _annotation(spec: BlockSpec, option: str) -> str:
    """The constructor's annotation of ``option`` as text ("" when there is none)."""
    parameter = inspect.signature(spec.factory.__init__).parameters.get(option) if spec.factory else None
    if parameter is None or parameter.annotation is parameter.empty:
        return ""
    annotation = parameter.annotation
    return annotation if isinstance(annotation, str) else getattr(annotation, "__name__", str(annotation))


def _check_option_value(name: str, option: str, value: Any, kinds: tuple[type, ...]) -> None:
    ok = isinstance(value, kinds) and not (isinstance(value, bool) and bool not in kinds)
    if ok and isinstance(value, numbers.Real) and not math.isfinite(value):
        ok = False
    if not ok:
        words = {type(None): "None", numbers.Integral: "an integer", numbers.Real: "a finite number",
                 bool: "a boolean", str: "a string"}
        expected = " or ".join(words.get(k, k.__name__) for k in kinds)
        raise BlockError(f"block {name!r}: option {option!r} expects {expected}, got {value!r} "
                         f"({type(value).__name__})")


def resolve_options(name: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """The block's defaults updated with ``options``. Unknown options, and values of a
    type the option's default does not have (a string for a boolean, a date, NaN),
    are an error before anything is built."""
    spec = get_spec(name)
    unknown = sorted(set(options) - set(spec.default_options))
    if unknown:
        valid = ", ".join(sorted(spec.default_options)) or "(none)"
        raise BlockError(f"block {name!r} has no option {', '.join(map(repr, unknown))}; valid options: {valid}.")
    for option, value in options.items():
        _check_option_value(name, option, value, _option_kinds(spec, option))
    merged = {**spec.default_options, **options}
    if spec.implementations:
        names = [i.name for i in spec.implementations]
        chosen = spec.implementation(merged)
        if chosen is None:
            raise BlockError(f"block {name!r}: unknown {IMPL_OPTION} {merged.get(IMPL_OPTION)!r}."
                             f"{did_you_mean(str(merged.get(IMPL_OPTION)), names)} Implementations: {', '.join(names)}.")
        problem = chosen.problem(name, merged)
        if problem is not None:
            raise BlockError(problem)
    return merged


def create_block(
    name: str,
    channels: int,
    *,
    spatial_size: tuple[int, int] | None = None,
    **options: Any,
) -> nn.Module:
    """Build a registered block with validated options.

    ``spatial_size=(H, W)`` is required by blocks whose parameters depend on it.
    """
    spec = get_spec(name)
    merged = resolve_options(name, options)
    if spec.needs_size(merged) and spatial_size is None:
        raise BlockError(
            f"block {name!r} needs spatial_size=(H, W): its parameters depend on the input's size."
        )
    if channels < 1:
        raise BlockError(f"channels must be a positive integer, got {channels}")
    assert spec.factory is not None
    if spec.needs_spatial_size:
        return spec.factory(channels, spatial_size=tuple(spatial_size) if spatial_size else None, **merged)
    return spec.factory(channels, **merged)
