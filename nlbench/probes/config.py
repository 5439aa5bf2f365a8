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
from nlbench.vocabulary import KIND_PROBE, KIND_PROBE_LR_TRIAL, did_you_mean

GENERATED_TASKS = frozenset({"same_pair", "pathfinder"})
"""Tasks drawn on the fly: any number of images (the others have fixed splits)."""

GENERATED_TEST_SIZE = 2000
"""Test images of a generated task when the config leaves ``n_test`` open: the
accuracy's standard error is then at most 1.1 points."""

GENERATED_VALIDATION_SIZE = 1000
"""Validation images of a generated task when the config leaves ``n_validation`` open:
an evaluation's standard error is then at most 1.6 points (1.1 at 85 %)."""

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
    """The training budget and setting of a probe.

    **Budget.** With ``stop_on_plateau`` (the default) a run trains until its
    validation accuracy plateaus or ``steps`` (the maximum budget) is reached: the
    learning rate is warmed up linearly over ``warmup_steps`` and then held constant
    (``schedule`` "constant": its shape does not depend on a budget nobody knows in
    advance); once learning has started (validation accuracy at least
    ``learning_margin`` above chance) and the best of the last ``plateau_window``
    evaluations is no more than ``plateau_min_gain`` above the best before them, the
    rate is multiplied by ``plateau_decay`` once, and at the next such plateau (at
    least ``plateau_window`` evaluations later) the run stops. A run that never
    leaves chance trains the whole budget, so "does not learn" always means "within
    ``steps`` steps". Without ``stop_on_plateau`` a run trains exactly ``steps`` steps
    (the fixed-budget mode, for comparisons at equal cost), with the same schedule
    (or "cosine": warm-up, then cosine decay to zero over ``steps``).

    **Learning rate.** With a non-empty ``lr_grid`` every block first trains seed
    ``sweep_seed`` once per rate of the grid (Adam, ``weight_decay``); the rate with
    the best final validation accuracy is used for the reported seeds (ties within
    ``plateau_min_gain``: the fewest steps to ``target_accuracy``, then the rate
    nearest ``lr``). The sweep run at the chosen rate *is* that seed's run (the same
    computation), so it is reused, not trained twice. With an empty grid every block
    trains at ``lr``.

    **Data.** ``data_seed`` fixes the data set (the same for every block and seed,
    so comparisons are paired); each seed fixes the weights' initialisation and the
    batch order. ``n_validation`` images are held out of the training split for the
    evaluations during training (plateau, steps to target, the rate sweep); the test
    split is used once, at the end. ``n_train``/``n_test``/``n_validation`` of None
    mean: for the generated tasks (``same_pair``, ``pathfinder``) ``steps ·
    batch_size`` training images — every one seen at most once, so the probe
    measures what a block generalises, not what it memorises —,
    :data:`GENERATED_TEST_SIZE` test and :data:`GENERATED_VALIDATION_SIZE`
    validation images; for the stored data sets (``digits``, CIFAR) their whole test
    split and a tenth of the training split held out (``n_validation`` of 0: no
    validation split; the evaluations then use the test split, as runs made before
    it did). The validation accuracy is measured every ``eval_every`` steps (0: only
    at the end, which also turns the plateau rule off), and the mean training loss
    logged every ``log_every`` steps.

    ``target_accuracy`` is the accuracy a verdict calls learned; ``short_budget_steps``
    the budget within which reaching it is "learns" rather than "learns slowly" (the
    fixed budget the probe had before plateau training). ``threads`` is the torch
    thread count of each training (fixed for reproducibility; 1 by default, so the
    result does not depend on the machine's cores and ``--jobs`` trains one per
    core); the network trains on ``device`` in ``dtype``.
    """

    task: str = "same_pair"
    steps: int = 4000
    batch_size: int = 32
    lr: float = 4e-3
    lr_grid: tuple[float, ...] = (1e-3, 4e-3, 1.6e-2)
    sweep_seed: int = 0
    weight_decay: float = 0.0
    schedule: str = "constant"
    warmup_steps: int = 50
    stop_on_plateau: bool = True
    plateau_window: int = 3
    plateau_min_gain: float = 0.01
    plateau_decay: float = 0.1
    learning_margin: float = 0.10
    target_accuracy: float = 0.85
    short_budget_steps: int = 1500
    channels: int = 32
    image_size: int = 32
    stage: int = 1
    n_train: int | None = None
    n_test: int | None = None
    n_validation: int | None = None
    data_seed: int = 0
    seeds: tuple[int, ...] = (0, 1, 2)
    eval_every: int = 200
    log_every: int = 50
    eval_batch_size: int = 250
    threads: int = 1
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
        for name in ("eval_every", "warmup_steps", "data_seed", "n_validation", "sweep_seed", "short_budget_steps"):
            value = getattr(self, name)
            if value is None and name == "n_validation":
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"ProbeConfig.{name} must be a non-negative integer, got {value!r}")
        if isinstance(self.plateau_window, bool) or not isinstance(self.plateau_window, int) or self.plateau_window < 1:
            raise ValueError(f"ProbeConfig.plateau_window must be a positive integer, got {self.plateau_window!r}")
        if not isinstance(self.stop_on_plateau, bool):
            raise ValueError(f"ProbeConfig.stop_on_plateau must be true or false, got {self.stop_on_plateau!r}")
        for name in ("plateau_min_gain", "learning_margin", "target_accuracy"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
                raise ValueError(f"ProbeConfig.{name} must be a fraction in [0, 1], got {value!r}")
        if isinstance(self.plateau_decay, bool) or not isinstance(self.plateau_decay, (int, float)) \
                or not 0.0 < self.plateau_decay <= 1.0:
            raise ValueError(f"ProbeConfig.plateau_decay must lie in (0, 1], got {self.plateau_decay!r}")
        grid = tuple(self.lr_grid)
        if any(isinstance(v, bool) or not isinstance(v, (int, float)) or not (v > 0 and math.isfinite(v))
               for v in grid) or len(set(grid)) != len(grid):
            raise ValueError(f"ProbeConfig.lr_grid must hold distinct positive numbers, got {self.lr_grid!r}")
        object.__setattr__(self, "lr_grid", tuple(float(v) for v in grid))
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"ProbeConfig.lr must be a positive number, got {self.lr!r}")
        if self.weight_decay < 0:
            raise ValueError(f"ProbeConfig.weight_decay must be >= 0, got {self.weight_decay!r}")
        if self.schedule not in ("cosine", "constant"):
            raise ValueError(f"ProbeConfig.schedule must be 'cosine' or 'constant', got {self.schedule!r}")
        if self.stop_on_plateau and self.schedule != "constant":
            raise ValueError("ProbeConfig: training to a plateau needs schedule 'constant' (a cosine schedule "
                             "stretches with the budget); use stop_on_plateau=False for a fixed budget")
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
        """The task's data for this config, with its validation split held out of the
        training split (deterministic from ``data_seed``; the latest one is cached, so
        probing blocks one call at a time builds it once)."""
        n_train, n_test, n_validation = self.n_train, self.n_test, self.n_validation
        if self.task in GENERATED_TASKS:
            n_train = self.steps * self.batch_size if n_train is None else n_train
            n_test = GENERATED_TEST_SIZE if n_test is None else n_test
            n_validation = GENERATED_VALIDATION_SIZE if n_validation is None else n_validation
        fields = (self.task, n_train, n_test, n_validation, self.image_size, self.data_seed,
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
        record["lr_grid"] = list(self.lr_grid)
        record["task_options"] = dict(self.task_options)
        return record

    @classmethod
    def from_dict(cls, fields: Mapping[str, Any]) -> "ProbeConfig":
        """The config :meth:`to_dict` wrote (a run's manifest); fields added since
        take their defaults."""
        values = dict(fields)
        if "stop_on_plateau" not in values:  # written before plateau training: a fixed budget, one rate, no validation
            values.update(stop_on_plateau=False, lr_grid=(), n_validation=0, schedule=values.get("schedule", "cosine"))
        values["seeds"] = tuple(values.get("seeds", cls.seeds))
        values["lr_grid"] = tuple(values.get("lr_grid", cls.lr_grid))
        values["task_options"] = tuple(sorted(dict(values.get("task_options") or {}).items()))
        return cls(**values)


def _build_task(
    task: str,
    n_train: int | None,
    n_test: int | None,
    n_validation: int | None,
    image_size: int,
    data_seed: int,
    receptive_field: int,
    task_options: tuple[tuple[str, Any], ...],
    data_dir: str | None,
) -> TaskData:
    """Build a task from the data fields of a :class:`ProbeConfig` (see ``make_task``):
    ``n_train`` + ``n_validation`` training images are drawn and the validation split
    held out of them; a stored set drawn whole (``n_train`` None) holds out
    ``n_validation`` or a tenth (as does an ``n_train`` without ``n_validation``)."""
    options: dict[str, Any] = dict(image_size=image_size, seed=data_seed)
    if n_train is not None and n_validation is None:
        n_validation = max(1, round(n_train / 10))
    if n_train is not None:
        options["n_train"] = n_train + n_validation
    if n_test is not None:
        options["n_test"] = n_test
    if task == "same_pair":
        options["receptive_field"] = receptive_field
    if task.startswith("cifar"):
        options["data_dir"] = data_dir
    options.update(dict(task_options))
    data = make_task(task, **options)
    if n_validation is None:
        n_validation = max(1, round(len(data.train) / 10))
    return data.with_validation(n_validation) if n_validation else data


_cached_task = functools.lru_cache(maxsize=1)(_build_task)


DEFAULT_CONFIG = ProbeConfig()
"""The full probe on ``same_pair``: a rate sweep of three values on the validation
split, then 3 seeds, each trained to its plateau or 4000 steps (measured figures:
README, "Probes")."""

QUICK_CONFIG = ProbeConfig(
    steps=60, batch_size=16, warmup_steps=5, n_test=200, n_validation=100, seeds=(0,), eval_every=20,
    log_every=20, lr_grid=(4e-3, 1.6e-2), stop_on_plateau=False,
)
"""A smoke run (about two seconds per block, two rates): checks the machinery, not the
blocks. A fixed budget (60 steps), since no block plateaus that early."""

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
    seed, and for a trial of the rate sweep its rate (None for a reported seed,
    whose rate the sweep chooses). Hashable; ``case_id`` is its identity in the
    store, as for sweep cases."""

    task: str
    seed: int
    case: Case
    lr: float | None = None

    @property
    def block(self) -> str:
        return self.case.block

    @property
    def options(self) -> dict[str, Any]:
        return self.case.options_dict

    @property
    def is_lr_trial(self) -> bool:
        return self.lr is not None

    @property
    def case_id(self) -> str:
        if self.lr is None:
            return record_id(KIND_PROBE, self.case, task=self.task, seed=self.seed)
        return record_id(KIND_PROBE_LR_TRIAL, self.case, task=self.task, seed=self.seed, lr=float(self.lr))

    @property
    def label(self) -> str:
        """Short human label, e.g. ``nl seed 0`` or ``nl lr 0.004 seed 0``."""
        opts = "".join(f" {k}={v}" for k, v in self.case.options)
        rate = "" if self.lr is None else f" lr {self.lr:g}"
        return f"{self.block}{opts}{rate} seed {self.seed}"
