"""Training-accuracy probes: does a block deliver global context, and at what cost?

A small CNN whose own receptive field is known and limited (:func:`backbone_receptive_field`)
gets the block under test after its stem, then global average pooling and a linear
head. It is trained for a fixed budget (:class:`ProbeConfig`) on a task that only
long-range interaction solves (``same_pair`` by default), and its test accuracy is
recorded next to the network's parameters, MACs and training speed
(:class:`ProbeResult`). Everything is seeded: the same seed on the same machine gives
the same accuracy to the last digit.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import statistics
import time
import traceback
from dataclasses import asdict, dataclass, replace
from types import MappingProxyType
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from nlbench.probes.tasks import TaskData, make_task

GENERATED_TASKS = frozenset({"same_pair", "pathfinder"})
"""Tasks drawn on the fly: any number of images (the others have fixed splits)."""

GENERATED_TEST_SIZE = 2000
"""Test images of a generated task when the config leaves ``n_test`` open: the
accuracy's standard error is then at most 1.1 points."""

# ------------------------------------------------------------------------- the network

# (kernel, stride) of every spatial layer before the block, per stage. Each layer is
# a k×k convolution with padding k//2, so output index u is centred on input u·stride.
_STEM_LAYERS: tuple[tuple[int, int], ...] = ((3, 2), (3, 1))
_STAGE_LAYERS: Mapping[int, tuple[tuple[int, int], ...]] = {
    1: _STEM_LAYERS,
    2: _STEM_LAYERS + ((3, 2),),
}


@dataclass(frozen=True)
class ReceptiveField:
    """The input window one feature of the backbone sees: ``size`` × ``size`` input
    pixels, centred on input pixel ``index · stride`` for feature ``index``."""

    size: int
    stride: int


def backbone_receptive_field(stage: int = 1) -> ReceptiveField:
    """The exact receptive field of the probe backbone before the block.

    Stage 1 (default): conv 3×3/2 then conv 3×3/1 — r = 1 + 2·1 + 2·2 = 7 input
    pixels at a stride of 2 (a 16×16 feature map for 32×32 input). Stage 2 adds a
    conv 3×3/2: r = 7 + 2·2 = 11 at stride 4 (8×8 for 32×32). The layers after the
    block (a 1×1 readout) do not widen it.
    """
    if stage not in _STAGE_LAYERS:
        raise ValueError(f"stage must be one of {sorted(_STAGE_LAYERS)}, got {stage!r}")
    size, stride = 1, 1
    for kernel, layer_stride in _STAGE_LAYERS[stage]:
        size += (kernel - 1) * stride
        stride *= layer_stride
    return ReceptiveField(size, stride)


def feature_size(image_size: int, stage: int = 1) -> int:
    """Side of the feature map the block sees for a square ``image_size`` input."""
    side = image_size
    for kernel, stride in _STAGE_LAYERS[stage]:
        side = (side + 2 * (kernel // 2) - kernel) // stride + 1
    return side


def _conv_bn_relu(cin: int, cout: int, kernel: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class ProbeNet(nn.Module):
    """stem (conv-BN-ReLU layers of :data:`_STAGE_LAYERS`) → block → readout
    (1×1 conv-BN-ReLU, receptive field unchanged) → global average pool → linear.

    The readout gives each position a nonlinearity after the block, so a block that
    brings far-away information to a position can be compared with what is there.
    """

    def __init__(
        self,
        block: nn.Module,
        *,
        in_channels: int,
        channels: int,
        num_classes: int,
        stage: int = 1,
        image_size: int | None = None,
    ) -> None:
        super().__init__()
        if stage not in _STAGE_LAYERS:
            raise ValueError(f"ProbeNet: stage must be one of {sorted(_STAGE_LAYERS)}, got {stage!r}")
        self.image_size = image_size  # the input size the block was built for, if it matters
        layers = []
        cin = in_channels
        for kernel, stride in _STAGE_LAYERS[stage]:
            layers.append(_conv_bn_relu(cin, channels, kernel, stride))
            cin = channels
        self.stem = nn.Sequential(*layers)
        self.block = block
        self.readout = _conv_bn_relu(channels, channels, 1, 1)
        self.head = nn.Linear(channels, num_classes)
        self.stage = stage

    def block_output(self, x: Tensor) -> Tensor:
        """The block's output feature map (B, C, h, w)."""
        return self.block(self.stem(x))

    def features(self, x: Tensor) -> Tensor:
        """The feature map just before global average pooling."""
        return self.readout(self.block_output(x))

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x).mean(dim=(2, 3)))


def build_probe_net(
    block_name: str,
    *,
    in_channels: int,
    num_classes: int,
    channels: int,
    image_size: int,
    stage: int = 1,
    block_options: Mapping[str, Any] | None = None,
) -> ProbeNet:
    """A :class:`ProbeNet` with registered block ``block_name`` after the stem."""
    from nlbench.blocks import create_block

    side = feature_size(image_size, stage)
    block = create_block(block_name, channels, spatial_size=(side, side), **dict(block_options or {}))
    return ProbeNet(
        block, in_channels=in_channels, channels=channels, num_classes=num_classes, stage=stage, image_size=image_size
    )


def reorthogonalizers(model: nn.Module) -> list[nn.Module]:
    """Submodules with a ``reorthogonalize()`` method (SRL-LO), to call after every
    optimizer step as the SRL paper does."""
    return [m for m in model.modules() if callable(getattr(m, "reorthogonalize", None))]


# -------------------------------------------------------------------------- the config


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
    images; for the stored data sets (``digits``, CIFAR) their whole splits. ``threads`` is the torch thread count during
    the probe (fixed for reproducibility).
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

    def __post_init__(self) -> None:
        positive = ("steps", "batch_size", "channels", "image_size", "n_train", "n_test", "log_every", "eval_batch_size", "threads")
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
        if self.stage not in _STAGE_LAYERS:
            raise ValueError(f"ProbeConfig.stage must be one of {sorted(_STAGE_LAYERS)}, got {self.stage!r}")
        if not self.seeds or any(isinstance(s, bool) or not isinstance(s, int) for s in self.seeds):
            raise ValueError(f"ProbeConfig.seeds must be a non-empty tuple of integers, got {self.seeds!r}")
        object.__setattr__(self, "seeds", tuple(self.seeds))
        object.__setattr__(self, "task_options", tuple(sorted(dict(self.task_options).items())))

    @property
    def receptive_field(self) -> ReceptiveField:
        return backbone_receptive_field(self.stage)

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

    def to_dict(self) -> dict[str, Any]:
        record = asdict(self)
        record["seeds"] = list(self.seeds)
        record["task_options"] = dict(self.task_options)
        return record


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
        raise ValueError(f"unknown probe preset {preset!r}; known: {', '.join(PRESETS)}")
    unknown = sorted(set(overrides) - set(ProbeConfig.__dataclass_fields__))
    if unknown:
        raise ValueError(f"ProbeConfig has no field {', '.join(map(repr, unknown))}")
    return replace(PRESETS[preset], **overrides)


# ------------------------------------------------------------------------- the results


@dataclass(frozen=True)
class CurvePoint:
    """One point of a learning curve: mean training loss over the last logging
    interval, and the test accuracy when it was measured at this step."""

    step: int
    train_loss: float
    test_accuracy: float | None = None


@dataclass(frozen=True)
class ProbeResult:
    """One block trained with one seed: what it reached and what it cost.

    ``accuracy`` is the final test accuracy in [0, 1] (None when the run failed);
    ``params``, ``macs`` and ``flops`` (= 2·MACs) are those of the whole probe
    network (one forward pass of one image), ``uncounted_ops`` the operators the
    counter had no formula for (the MACs are then a lower bound); ``steps_per_s``
    counts training steps only (not evaluation). ``status`` is "ok" or "error" with
    ``error`` saying why (an error result keeps whatever was measured before it).
    """

    task: str
    block: str
    seed: int
    status: str
    accuracy: float | None
    steps: int
    learning_curve: tuple[CurvePoint, ...]
    steps_per_s: float | None
    params: int | None
    macs: int | None
    flops: int | None
    train_s: float | None
    config: ProbeConfig
    uncounted_ops: tuple[str, ...] = ()
    n_train: int | None = None
    n_test: int | None = None
    block_options: tuple[tuple[str, Any], ...] = ()
    error: str | None = None

    def __post_init__(self) -> None:
        if self.status not in ("ok", "error"):
            raise ValueError(f"ProbeResult.status must be 'ok' or 'error', got {self.status!r}")
        if self.status == "error" and not self.error:
            raise ValueError("ProbeResult: an error result needs an error message")
        if self.accuracy is not None and not 0.0 <= self.accuracy <= 1.0:
            raise ValueError(f"ProbeResult.accuracy must lie in [0, 1], got {self.accuracy}")

    def to_record(self) -> dict[str, Any]:
        """A flat, JSON-friendly dict for the store (one line per block × seed)."""
        side = feature_size(self.config.image_size, self.config.stage)
        return {
            "kind": "probe",
            "task": self.task,
            "block": self.block,
            "options": json.dumps(dict(self.block_options), sort_keys=True),
            "seed": self.seed,
            "status": self.status,
            "error": self.error,
            "accuracy": self.accuracy,
            "steps": self.steps,
            "macs": self.macs,
            "flops": self.flops,
            "uncounted_ops": list(self.uncounted_ops),
            "params": self.params,
            "steps_per_s": self.steps_per_s,
            "train_s": self.train_s,
            "learning_curve": [asdict(point) for point in self.learning_curve],
            "channels": self.config.channels,
            "image_size": self.config.image_size,
            "feature_height": side,
            "feature_width": side,
            "stage": self.config.stage,
            "receptive_field": self.config.receptive_field.size,
            "batch": self.config.batch_size,
            "lr": self.config.lr,
            "schedule": self.config.schedule,
            "n_train": self.n_train,
            "n_test": self.n_test,
            "data_seed": self.config.data_seed,
            "threads": self.config.threads,
            "device": "cpu",
            "dtype": "float32",
            "probe_config": self.config.to_dict(),
        }


@dataclass(frozen=True)
class ProbeSummary:
    """A block's results over seeds: accuracy mean and sample standard deviation
    (None with fewer than two successful seeds), and its cost."""

    task: str
    block: str
    n_seeds: int
    n_ok: int
    accuracy_mean: float | None
    accuracy_std: float | None
    accuracies: tuple[float, ...]
    steps_per_s_mean: float | None
    params: int | None
    macs: int | None
    errors: tuple[str, ...] = ()

    def to_record(self) -> dict[str, Any]:
        record = asdict(self)
        record["accuracies"] = list(self.accuracies)
        record["errors"] = list(self.errors)
        return record


def aggregate(results: Iterable[ProbeResult]) -> list[ProbeSummary]:
    """Mean ± std of accuracy over seeds per (task, block), in first-seen order."""
    groups: dict[tuple[str, str], list[ProbeResult]] = {}
    for result in results:
        groups.setdefault((result.task, result.block), []).append(result)
    summaries = []
    for (task, block), group in groups.items():
        ok = [r for r in group if r.status == "ok" and r.accuracy is not None]
        accuracies = tuple(r.accuracy for r in ok if r.accuracy is not None)
        speeds = [r.steps_per_s for r in ok if r.steps_per_s is not None]
        summaries.append(
            ProbeSummary(
                task=task,
                block=block,
                n_seeds=len(group),
                n_ok=len(ok),
                accuracy_mean=statistics.fmean(accuracies) if accuracies else None,
                accuracy_std=statistics.stdev(accuracies) if len(accuracies) >= 2 else None,
                accuracies=accuracies,
                steps_per_s_mean=statistics.fmean(speeds) if speeds else None,
                params=next((r.params for r in group if r.params is not None), None),
                macs=next((r.macs for r in group if r.macs is not None), None),
                errors=tuple(f"seed {r.seed}: {r.error}" for r in group if r.error),
            )
        )
    return summaries


# ------------------------------------------------------------------------ the training


@contextlib.contextmanager
def deterministic_torch(threads: int) -> Iterator[None]:
    """Deterministic algorithms, a fixed thread count, and a forked RNG for the
    duration; the caller's settings and random state are restored afterwards."""
    previous = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        torch.get_num_threads(),
    )
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(threads)
    try:
        with torch.random.fork_rng(devices=[]):
            yield
    finally:
        torch.use_deterministic_algorithms(previous[0], warn_only=previous[1])
        torch.set_num_threads(previous[2])


def _lr_factor(step: int, config: ProbeConfig) -> float:
    """Linear warm-up, then cosine decay to zero (or constant)."""
    if step < config.warmup_steps:
        return (step + 1) / config.warmup_steps
    if config.schedule == "constant":
        return 1.0
    progress = (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


@torch.no_grad()
def evaluate(model: nn.Module, images: Tensor, labels: Tensor, *, batch_size: int = 250) -> float:
    """Accuracy of ``model`` (in eval mode) on ``images``; the mode is restored."""
    was_training = model.training
    model.eval()
    correct = 0
    for start in range(0, len(labels), batch_size):
        logits = model(images[start : start + batch_size])
        correct += int((logits.argmax(dim=1) == labels[start : start + batch_size]).sum())
    model.train(was_training)
    return correct / len(labels)


def _flop_counter() -> Callable[..., Any]:
    """``nlbench.measure.flops.count_flops``, imported when first needed."""
    try:
        from nlbench.measure.flops import count_flops
    except ImportError as exc:
        raise RuntimeError(
            f"the probe needs nlbench.measure.flops.count_flops for the network's MACs, and it cannot be imported: {exc}"
        ) from exc
    return count_flops


def probe_flops(model: nn.Module, image_shape: tuple[int, int, int]) -> Any:
    """The audited FLOP count (``nlbench.measure.flops.FlopCount``: ``.macs``,
    ``.flops``, ``.uncounted_ops``) of one forward pass of ``model`` in eval mode on
    one image of ``image_shape``; the model's mode is restored."""
    count_flops = _flop_counter()
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            return count_flops(model, (torch.zeros(1, *image_shape),))
    finally:
        model.train(was_training)


ProgressCallback = Callable[["ProbeEvent"], None]


@dataclass(frozen=True)
class ProbeEvent:
    """Progress of :func:`run_probe`: ``kind`` is "start" (a block × seed begins),
    "step" (every ``log_every`` steps, with the latest ``point``) or "done" (with
    its ``result``); ``index`` counts block × seed runs from 0 out of ``total``."""

    kind: str
    block: str
    seed: int
    index: int
    total: int
    step: int = 0
    point: CurvePoint | None = None
    result: ProbeResult | None = None


def train_probe(
    config: ProbeConfig,
    block: str,
    seed: int,
    *,
    task: TaskData | None = None,
    block_options: Mapping[str, Any] | None = None,
    on_point: Callable[[CurvePoint], None] | None = None,
) -> ProbeResult:
    """Train the probe network with ``block`` from ``seed`` and measure it.

    Any exception while building, training or measuring is caught and returned as
    an "error" result (with whatever was measured before it), so a sweep of blocks
    goes on. ``task`` defaults to ``config.make_task()``.
    """
    task = config.make_task() if task is None else task
    options = tuple(sorted(dict(block_options or {}).items()))
    measured: dict[str, Any] = {
        "accuracy": None,
        "steps": 0,
        "steps_per_s": None,
        "params": None,
        "macs": None,
        "flops": None,
        "uncounted_ops": (),
        "train_s": None,
    }
    curve: list[CurvePoint] = []
    status, error = "ok", None
    try:
        with deterministic_torch(config.threads):
            torch.manual_seed(seed)
            model = build_probe_net(
                block,
                in_channels=task.in_channels,
                num_classes=task.num_classes,
                channels=config.channels,
                image_size=config.image_size,
                stage=config.stage,
                block_options=dict(options),
            )
            if task.image_size != (config.image_size, config.image_size):
                raise ValueError(f"task images are {task.image_size}, the config says {config.image_size}")
            measured["params"] = sum(p.numel() for p in model.parameters())
            _train(model, task, config, seed, curve, measured, on_point)
            measured["accuracy"] = evaluate(
                model, task.test.images, task.test.labels, batch_size=config.eval_batch_size
            )
            if curve and curve[-1].step == measured["steps"]:
                curve[-1] = replace(curve[-1], test_accuracy=measured["accuracy"])
            try:
                count = probe_flops(model, tuple(task.train.images.shape[1:]))
            except Exception as exc:  # keep the accuracy; say why the MACs are missing
                raise RuntimeError(f"MAC count failed: {type(exc).__name__}: {exc}") from exc
            measured["macs"], measured["flops"] = int(count.macs), int(count.flops)
            measured["uncounted_ops"] = tuple(count.uncounted_ops)
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as exc:
        status = "error"
        error = f"{type(exc).__name__}: {exc}"
        if not str(exc):
            error += " " + traceback.format_exc(limit=2)
    return ProbeResult(
        task=task.name,
        block=block,
        seed=seed,
        status=status,
        error=error,
        learning_curve=tuple(curve),
        config=config,
        block_options=options,
        n_train=len(task.train),
        n_test=len(task.test),
        **measured,
    )


def _train(
    model: ProbeNet,
    task: TaskData,
    config: ProbeConfig,
    seed: int,
    curve: list[CurvePoint],
    measured: dict[str, Any],
    on_point: Callable[[CurvePoint], None] | None,
) -> None:
    """The training loop; appends to ``curve`` and keeps ``measured`` (steps taken,
    training seconds and speed) up to date, so a diverging run still reports them."""
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: _lr_factor(step, config))
    fix_up = reorthogonalizers(model)
    generator = torch.Generator().manual_seed(seed)
    images, labels = task.train.images, task.train.labels
    n = len(labels)
    order = torch.randperm(n, generator=generator)
    cursor = 0
    losses: list[float] = []
    train_seconds = 0.0
    model.train()
    for step in range(1, config.steps + 1):
        if cursor + config.batch_size > n:
            order, cursor = torch.randperm(n, generator=generator), 0
        index = order[cursor : cursor + config.batch_size]
        cursor += config.batch_size
        start = time.perf_counter()
        loss = F.cross_entropy(model(images[index]), labels[index])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        with torch.no_grad():
            for module in fix_up:
                module.reorthogonalize()
        train_seconds += time.perf_counter() - start
        value = float(loss.detach())
        if not math.isfinite(value):
            raise FloatingPointError(f"the training loss is {value} at step {step}")
        losses.append(value)
        evaluate_now = config.eval_every > 0 and step % config.eval_every == 0
        if step % config.log_every == 0 or evaluate_now or step == config.steps:
            accuracy = (
                evaluate(model, task.test.images, task.test.labels, batch_size=config.eval_batch_size)
                if evaluate_now
                else None
            )
            point = CurvePoint(step, statistics.fmean(losses), accuracy)
            curve.append(point)
            losses = []
            if on_point is not None:
                on_point(point)
        measured["steps"] = step
        measured["train_s"] = train_seconds
        measured["steps_per_s"] = step / train_seconds if train_seconds > 0 else None


def run_probe(
    config: ProbeConfig,
    blocks: Sequence[str] | str,
    *,
    seeds: Sequence[int] | None = None,
    progress_callback: ProgressCallback | None = None,
    block_options: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[ProbeResult]:
    """Train and measure every block (names or wildcards, e.g. ``"all"``) with every
    seed (default ``config.seeds``) on one shared data set; block × seed failures
    are returned as "error" results and the run goes on.

    ``block_options`` maps a block name to its options. The flop counter is checked
    before anything is trained, so a missing counter fails at once.
    """
    from nlbench.blocks import resolve_blocks

    names = resolve_blocks(blocks if isinstance(blocks, str) else list(blocks))
    seeds = tuple(config.seeds if seeds is None else seeds)
    if not seeds:
        raise ValueError("run_probe: no seeds given")
    options = dict(block_options or {})
    stray = sorted(set(options) - set(names))
    if stray:
        raise ValueError(f"run_probe: block_options name blocks that are not probed: {', '.join(stray)}")
    _flop_counter()
    task = config.make_task()
    total = len(names) * len(seeds)
    results: list[ProbeResult] = []
    for block in names:
        for seed in seeds:
            index = len(results)
            emit = progress_callback or (lambda event: None)
            emit(ProbeEvent("start", block, seed, index, total))

            def on_point(point: CurvePoint, block: str = block, seed: int = seed, index: int = index) -> None:
                emit(ProbeEvent("step", block, seed, index, total, step=point.step, point=point))

            result = train_probe(config, block, seed, task=task, block_options=options.get(block), on_point=on_point)
            results.append(result)
            emit(ProbeEvent("done", block, seed, index, total, step=result.steps, result=result))
    return results
