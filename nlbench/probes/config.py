"""What a probe is: its fixed training budget and setting (:class:`ProbeConfig`, with
the ``default`` and ``quick`` presets), the task data a config trains on, and the
identity of one block × seed (:class:`ProbeCase`), made the way sweep cases are."""

from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass, replace
from types import MappingProxyType
from typing import Any, Mapping

from nlbench.case import DTYPE_BYTES, Case, stable_id
from nlbench.probes.network import ReceptiveField, backbone_receptive_field, check_stage, feature_size
from nlbench.probes.tasks import TASKS, TaskData, make_task
from nlbench.suite import DEVICES
from nlbench.vocabulary import KIND_PROBE, did_you_mean

GENERATED_TASKS = frozenset({"same_pair", "pathfinder"})
"""Tasks drawn on the fly: any number of images (the others have fixed splits)."""

GENERATED_TEST_SIZE = 2000
"""Test images of a generated task when the config leaves ``n_test`` open: the
accuracy's standard error is then at most 1.1 points."""

TASK_ALIASES: Mapping[str, str] = MappingProxyType({"same-pair": "same_pair", "long-range": "same_pair"})


def canonical_task(name: str) -> str:
    """The task's registry name (``same-pair`` and ``long-range`` mean ``same_pair``)."""
    return TASK_ALIASES.get(name, name.replace("-", "_"))


def _check_task(name: Any) -> None:
    if name not in TASKS:
        aliases = ", ".join(f"{alias} = {task}" for alias, task in TASK_ALIASES.items())
        raise ValueError(f"ProbeConfig.task: unknown probe task {name!r}."
                         f"{did_you_mean(str(name), [*TASKS, *TASK_ALIASES])} "
                         f"Known tasks: {', '.join(TASKS)} (aliases: {aliases}).")


def _check_device(device: Any) -> None:
    kind, _, index = device.partition(":") if isinstance(device, str) else ("", "", "")
    if kind not in DEVICES or (index and not (kind == "cuda" and index.isdigit())):
        raise ValueError(f"ProbeConfig.device must be one of {', '.join(DEVICES)} (or cuda:N), got {device!r}")


@dataclass(frozen=True)
class ProbeConfig:
    """The fixed training budget and setting of a probe.

    Adam (``lr``, ``weight_decay``) with a cosine (or constant) schedule after
    ``warmup_steps`` of linear warm-up; ``steps`` steps of ``batch_size`` images
    drawn in seeded random order; the test accuracy is measured every
    ``eval_every`` steps (0: only at the end) and the mean training loss logged
    every ``log_every`` steps. ``data_seed`` fixes the data set (the same for every
    block and seed, so comparisons are paired); each of ``seeds`` fixes the weights'
    initialisation and the batch order. ``n_train``/``n_test`` of None mean: for
    the generated tasks (``same_pair``, ``pathfinder``) ``steps · batch_size``
    training images — every one seen once, so the probe measures what a block
    generalises, not what it memorises — and :data:`GENERATED_TEST_SIZE` test
    images; for the stored data sets (``digits``, CIFAR) their whole splits.
    ``threads`` is the torch thread count during the probe (fixed for
    reproducibility); the network trains on ``device`` in ``dtype``.
    """

    task: str = "same_pair"
    steps: int = 1500
    batch_size: int = 32
    lr: float = 4e-3
    weight_decay: float = 0.0
    schedule: str = "cosine"
    warmup_steps: int = 50
    channels: int = 32
    image_size: int = 32
    stage: int = 1
    n_train: int | None = None
    n_test: int | None = None
    data_seed: int = 0
    seeds: tuple[int, ...] = (0, 1, 2)
    eval_every: int = 250
    log_every: int = 50
    eval_batch_size: int = 250
    threads: int = 2
    task_options: tuple[tuple[str, Any], ...] = ()
    data_dir: str | None = None
    device: str = "cpu"
    dtype: str = "float32"

    def __post_init__(self) -> None:
        _check_task(self.task)
        positive = ("steps", "batch_size", "channels", "image_size", "n_train", "n_test", "log_every",
                    "eval_batch_size", "threads")
        for name in positive:
            value = getattr(self, name)
            if value is None and name in ("n_train", "n_test"):
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"ProbeConfig.{name} must be a positive integer, got {value!r}")
        for name in ("eval_every", "warmup_steps", "data_seed"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"ProbeConfig.{name} must be a non-negative integer, got {value!r}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"ProbeConfig.lr must be a positive number, got {self.lr!r}")
        if self.weight_decay < 0:
            raise ValueError(f"ProbeConfig.weight_decay must be >= 0, got {self.weight_decay!r}")
        if self.schedule not in ("cosine", "constant"):
            raise ValueError(f"ProbeConfig.schedule must be 'cosine' or 'constant', got {self.schedule!r}")
        check_stage(self.stage, "ProbeConfig.stage")
        if not self.seeds or any(isinstance(s, bool) or not isinstance(s, int) for s in self.seeds):
            raise ValueError(f"ProbeConfig.seeds must be a non-empty tuple of integers, got {self.seeds!r}")
        _check_device(self.device)
        if self.dtype not in DTYPE_BYTES:
            raise ValueError(f"ProbeConfig.dtype must be one of {', '.join(DTYPE_BYTES)}, got {self.dtype!r}"
                             f"{did_you_mean(str(self.dtype), DTYPE_BYTES)}")
        object.__setattr__(self, "seeds", tuple(self.seeds))
        object.__setattr__(self, "task_options", tuple(sorted(dict(self.task_options).items())))

    @property
    def receptive_field(self) -> ReceptiveField:
        return backbone_receptive_field(self.stage)

    @property
    def feature_size(self) -> int:
        """Side of the (square) feature map the block sees."""
        return feature_size(self.image_size, self.stage)

    def make_task(self) -> TaskData:
        """The task's data for this config (deterministic from ``data_seed``; the
        latest one is cached, so probing blocks one call at a time builds it once)."""
        n_train, n_test = self.n_train, self.n_test
        if self.task in GENERATED_TASKS:
            n_train = self.steps * self.batch_size if n_train is None else n_train
            n_test = GENERATED_TEST_SIZE if n_test is None else n_test
        fields = (self.task, n_train, n_test, self.image_size, self.data_seed,
                  self.receptive_field.size, self.task_options, self.data_dir)
        try:
            hash(fields)
        except TypeError:  # unhashable task options: build without the cache
            return _build_task(*fields)
        return _cached_task(*fields)

    def block_case(self, block: str, options: Mapping[str, Any] | None = None) -> Case:
        """The block's :class:`~nlbench.case.Case` inside the probe network: its
        channels, the feature map it sees, the training batch, device and dtype."""
        side = self.feature_size
        return Case(block=block, channels=self.channels, height=side, width=side, batch=self.batch_size,
                    dtype=self.dtype, device=self.device, options=Case.normalise_options(dict(options or {})))

    def probe_case(self, block: str, seed: int, options: Mapping[str, Any] | None = None) -> "ProbeCase":
        """The identity of training ``block`` (with ``options``) from ``seed`` on this config's task."""
        return ProbeCase(task=self.task, seed=seed, case=self.block_case(block, options))

    def to_dict(self) -> dict[str, Any]:
        record = asdict(self)
        record["seeds"] = list(self.seeds)
        record["task_options"] = dict(self.task_options)
        return record

    @classmethod
    def from_dict(cls, fields: Mapping[str, Any]) -> "ProbeConfig":
        """The config :meth:`to_dict` wrote (a run's manifest); fields added since
        take their defaults."""
        values = dict(fields)
        values["seeds"] = tuple(values.get("seeds", cls.seeds))
        values["task_options"] = tuple(sorted(dict(values.get("task_options") or {}).items()))
        return cls(**values)


def _build_task(
    task: str,
    n_train: int | None,
    n_test: int | None,
    image_size: int,
    data_seed: int,
    receptive_field: int,
    task_options: tuple[tuple[str, Any], ...],
    data_dir: str | None,
) -> TaskData:
    """Build a task from the data fields of a :class:`ProbeConfig` (see ``make_task``)."""
    options: dict[str, Any] = dict(image_size=image_size, seed=data_seed)
    if n_train is not None:
        options["n_train"] = n_train
    if n_test is not None:
        options["n_test"] = n_test
    if task == "same_pair":
        options["receptive_field"] = receptive_field
    if task.startswith("cifar"):
        options["data_dir"] = data_dir
    options.update(dict(task_options))
    return make_task(task, **options)


_cached_task = functools.lru_cache(maxsize=1)(_build_task)


DEFAULT_CONFIG = ProbeConfig()
"""The full probe on ``same_pair``. Measured on 2 shared CPU cores (torch 2.13):
all 10 blocks × 3 seeds in 883 s; 10–75 s of training per block × seed. Test
accuracy (mean ± std over seeds 0–2): a2 99.9 ± 0.1 %, ns 99.1 ± 0.6, nl 97.8 ± 2.0,
snl 70.8 ± 14.2, cgnl 50.6 ± 1.3, rcca 50.3 ± 1.0, srl_lo 49.9 ± 0.3, srl_fft
49.8 ± 0.2, local 49.7 ± 0.3, identity 49.3 ± 1.0."""

QUICK_CONFIG = ProbeConfig(
    steps=60, batch_size=16, warmup_steps=5, n_test=200, seeds=(0,), eval_every=0, log_every=20, threads=1
)
"""A smoke run (about a second per block): checks the machinery, not the blocks.
One thread, because on a busy machine two OpenMP threads can be ten times slower."""

PRESETS: Mapping[str, ProbeConfig] = MappingProxyType({"default": DEFAULT_CONFIG, "quick": QUICK_CONFIG})


def probe_config(preset: str = "default", **overrides: Any) -> ProbeConfig:
    """A preset (``default`` or ``quick``) with some fields replaced."""
    if preset not in PRESETS:
        raise ValueError(f"unknown probe preset {preset!r};{did_you_mean(preset, PRESETS)} known: {', '.join(PRESETS)}")
    fields = ProbeConfig.__dataclass_fields__
    unknown = sorted(set(overrides) - set(fields))
    if unknown:
        hints = "".join(did_you_mean(name, fields) for name in unknown)
        raise ValueError(f"ProbeConfig has no field {', '.join(map(repr, unknown))}.{hints}")
    return replace(PRESETS[preset], **overrides)


# ----------------------------------------------------------------------------- identity


def record_id(kind: str, case: Case, **identity: Any) -> str:
    """The store identity of a probe-run record of ``kind`` about the block of
    ``case``: the same :func:`~nlbench.case.stable_id` hash as a sweep case's, over
    the case's fields plus the kind and ``identity`` (task, seed)."""
    return stable_id({**case.to_dict(), "kind": kind, **identity})


@dataclass(frozen=True)
class ProbeCase:
    """One block × seed of a probe run: the block's :class:`~nlbench.case.Case`
    inside the probe network (:meth:`ProbeConfig.block_case`), the task and the
    seed. Hashable; ``case_id`` is its identity in the store, as for sweep cases."""

    task: str
    seed: int
    case: Case

    @property
    def block(self) -> str:
        return self.case.block

    @property
    def options(self) -> dict[str, Any]:
        return self.case.options_dict

    @property
    def case_id(self) -> str:
        return record_id(KIND_PROBE, self.case, task=self.task, seed=self.seed)

    @property
    def label(self) -> str:
        """Short human label, e.g. ``nl seed 0``."""
        opts = "".join(f" {k}={v}" for k, v in self.case.options)
        return f"{self.block}{opts} seed {self.seed}"
