"""The block registry: specs, wildcard listing, validated construction, plugins.

Every block, built-in or a user's, is registered with :func:`register_block`, which
records a frozen :class:`BlockSpec`. :func:`create_block` is the one constructor the
sweeps, probes and tests use: it checks the name, the options and ``spatial_size``
before the block's own constructor runs, so mistakes get clear messages.
"""

from __future__ import annotations

import difflib
import fnmatch
import importlib
import importlib.metadata
import math
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Callable, Mapping, TypeVar

from torch import nn

ENTRY_POINT_GROUP = "nlbench.blocks"


class BlockError(ValueError):
    """A block name, option or size that the registry cannot accept."""


@dataclass(frozen=True)
class ClaimedComplexity:
    """A claimed time complexity, as text and as exponents the fits can test.

    The cost is claimed to grow as ``N**n_exponent * log(N)**n_log_power`` in the
    number of positions N = H·W (H proportional to W) at fixed C, and as
    ``C**c_exponent`` in the channel count at fixed N.
    """

    text: str
    n_exponent: float
    c_exponent: float
    n_log_power: int = 0

    def n_growth(self, n: float) -> float:
        """The claimed cost at ``n`` positions, up to a constant."""
        return n**self.n_exponent * math.log(n) ** self.n_log_power


@dataclass(frozen=True)
class BlockSpec:
    """What the registry knows about one block."""

    name: str
    family: str
    paper: str
    claimed: ClaimedComplexity
    supports_video: bool
    needs_spatial_size: bool
    default_options: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    factory: Callable[..., nn.Module] | None = field(default=None, compare=False, repr=False)
    source: str = "builtin"


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
    defaults: Mapping[str, Any] | None = None,
) -> Callable[[ModuleT], ModuleT]:
    """Class decorator that registers a block under ``name``.

    The class is constructed as ``cls(channels, spatial_size=..., **options)``; it
    receives ``spatial_size`` only when ``needs_spatial_size`` is true.
    """

    def decorate(cls: ModuleT) -> ModuleT:
        if name in _REGISTRY and _REGISTRY[name].factory is not cls:
            raise BlockError(f"block {name!r} is already registered (by {_REGISTRY[name].source})")
        _REGISTRY[name] = BlockSpec(
            name=name,
            family=family,
            paper=paper,
            claimed=claimed,
            supports_video=supports_video,
            needs_spatial_size=needs_spatial_size,
            default_options=MappingProxyType(dict(defaults or {})),
            factory=cls,
            source=cls.__module__,
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
    return sorted(n for n in _registry() if any(fnmatch.fnmatchcase(n, p) for p in parts))


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
        close = difflib.get_close_matches(name, list(registry), n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise BlockError(f"unknown block {name!r}.{hint} Known blocks: {', '.join(sorted(registry))}.")
    return registry[name]


def resolve_options(name: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """The block's defaults updated with ``options``; unknown options are an error."""
    spec = get_spec(name)
    unknown = sorted(set(options) - set(spec.default_options))
    if unknown:
        valid = ", ".join(sorted(spec.default_options)) or "(none)"
        raise BlockError(f"block {name!r} has no option {', '.join(map(repr, unknown))}; valid options: {valid}.")
    return {**spec.default_options, **options}


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
    if spec.needs_spatial_size and spec_needs_size(spec, merged) and spatial_size is None:
        raise BlockError(
            f"block {name!r} needs spatial_size=(H, W): its parameters depend on the input's size."
        )
    if channels < 1:
        raise BlockError(f"channels must be a positive integer, got {channels}")
    assert spec.factory is not None
    if spec.needs_spatial_size:
        return spec.factory(channels, spatial_size=tuple(spatial_size) if spatial_size else None, **merged)
    return spec.factory(channels, **merged)


def spec_needs_size(spec: BlockSpec, options: Mapping[str, Any]) -> bool:
    """Whether this configuration needs ``spatial_size``.

    ``srl_fft`` needs it only with its spectral ReLU; a block may declare that with a
    ``needs_spatial_size_for`` class attribute naming the boolean option that decides.
    """
    if not spec.needs_spatial_size:
        return False
    deciding_option = getattr(spec.factory, "needs_spatial_size_for", None)
    return bool(options.get(deciding_option, True)) if deciding_option else True
