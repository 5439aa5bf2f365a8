"""Training one probe: the probe network with a block, trained from one seed (Adam,
warm-up then a constant rate, seeded batch order) until its validation accuracy
plateaus or its budget is spent (the rule: :class:`~nlbench.probes.config.ProbeConfig`),
its test accuracy measured once at the end, and its cost taken with the sweep's own
measurers (``count_params``, ``count_flops``). Everything is seeded: the same seed on
the same machine gives the same accuracy to the last digit (on the CPU; CUDA is best
effort).
"""

from __future__ import annotations

import contextlib
import math
import os
import statistics
import time
import traceback
from dataclasses import asdict, dataclass, replace
from typing import Any, Callable, Iterator, Mapping, Sequence

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from nlbench.case import torch_dtype
from nlbench.measure.allocator import describe_allocator
from nlbench.measure.flops import FlopCount, count_flops
from nlbench.measure.params import count_params
from nlbench.measure.run_case import classify_failure
from nlbench.probes.config import ProbeCase, ProbeConfig
from nlbench.probes.network import ProbeNet, build_probe_net, reorthogonalizers
from nlbench.probes.tasks import Split, TaskData
from nlbench.vocabulary import (
    FAILED_STATUSES, KIND_PROBE, KIND_PROBE_LR_TRIAL, STATUS_OK, STATUSES, STOP_BUDGET, STOP_PLATEAU, STOP_REASONS,
)


@dataclass(frozen=True)
class CurvePoint:
    """One point of a learning curve: mean training loss over the last logging
    interval, the learning rate of the step, and the validation accuracy when it was
    measured at this step (the test accuracy only at the last point; runs made before
    the validation split measured the test accuracy along the curve)."""

    step: int
    train_loss: float
    test_accuracy: float | None = None
    validation_accuracy: float | None = None
    lr: float | None = None


@dataclass(frozen=True)
class ProbeResult:
    """One block trained with one seed: what it reached and what it cost.

    ``accuracy`` is the final test accuracy in [0, 1] (None when the run failed);
    ``params`` (trainable) and ``macs`` and ``flops`` (≥ 2·MACs) are those of the
    whole probe network (one forward pass of one image), ``uncounted_ops`` the
    operators the counter had no formula for (the MACs are then a lower bound);
    ``steps_per_s`` counts training steps only (not evaluation); ``train_s`` is the
    time in training steps, ``wall_s`` the whole run's (evaluations included).
    ``stop_reason`` says why training stopped (:data:`~nlbench.vocabulary.STOP_REASONS`),
    ``lr_decay_step`` when the rate was decayed on the first plateau (None: never),
    ``steps_to_target`` the first evaluated step whose validation accuracy reached the
    config's ``target_accuracy`` (None: not within the run), ``validation_accuracy`` the
    final one. The rate trained with is ``config.lr``; ``lr_choice`` says how the
    sweep chose it, ``lr_trial_reused`` that this seed's run is the sweep's trial at
    that rate (not trained again). ``jobs`` is how many trainings ran at once on the
    machine and ``allocator`` the CPU allocator of the process that trained (the speed
    depends on both; the accuracy on neither). ``kind`` is "probe" for a
    reported seed and "probe_lr_trial" for a run of the rate sweep. ``status`` is "ok"
    or a failure status ("error", "oom") with ``error`` saying why (a failed result
    keeps whatever was measured before it).
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
    kind: str = KIND_PROBE
    stop_reason: str | None = None
    lr_decay_step: int | None = None
    steps_to_target: int | None = None
    validation_accuracy: float | None = None
    n_validation: int | None = None
    wall_s: float | None = None
    lr_choice: str | None = None
    lr_trial_reused: bool = False
    jobs: int = 1
    allocator: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in (KIND_PROBE, KIND_PROBE_LR_TRIAL):
            raise ValueError(f"ProbeResult.kind must be {KIND_PROBE!r} or {KIND_PROBE_LR_TRIAL!r}, got {self.kind!r}")
        if self.stop_reason is not None and self.stop_reason not in STOP_REASONS:
            raise ValueError(f"ProbeResult.stop_reason must be one of {', '.join(STOP_REASONS)}, "
                             f"got {self.stop_reason!r}")
        if self.status not in STATUSES:
            raise ValueError(f"ProbeResult.status must be one of {', '.join(STATUSES)}, got {self.status!r}")
        if self.status in FAILED_STATUSES and not self.error:
            raise ValueError(f"ProbeResult: a {self.status!r} result needs an error message")
        if self.accuracy is not None and not 0.0 <= self.accuracy <= 1.0:
            raise ValueError(f"ProbeResult.accuracy must lie in [0, 1], got {self.accuracy}")

    @property
    def case(self) -> ProbeCase:
        """This result's identity (task, seed and the block's case)."""
        case = self.config.block_case(self.block, dict(self.block_options))
        lr = self.config.lr if self.kind == KIND_PROBE_LR_TRIAL else None
        return ProbeCase(task=self.task, seed=self.seed, case=case, lr=lr)

    def to_record(self) -> dict[str, Any]:
        """A flat, JSON-friendly dict for the store (one line per block × seed),
        with its identity ``case_id``."""
        side = self.config.feature_size
        return {
            "kind": self.kind,
            "case_id": self.case.case_id,
            "task": self.task,
            "block": self.block,
            "options": dict(self.block_options),  # an object, as a sweep case's; loads as canonical JSON text
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
            "wall_s": self.wall_s,
            "stop_reason": self.stop_reason,
            "lr_decay_step": self.lr_decay_step,
            "steps_to_target": self.steps_to_target,
            "target_accuracy": self.config.target_accuracy,
            "validation_accuracy": self.validation_accuracy,
            "max_steps": self.config.steps,
            "stop_on_plateau": self.config.stop_on_plateau,
            "short_budget_steps": self.config.short_budget_steps,
            "lr_grid": list(self.config.lr_grid),
            "lr_choice": self.lr_choice,
            "lr_trial_reused": self.lr_trial_reused,
            "jobs": self.jobs,
            "allocator": self.allocator,
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
            "n_validation": self.n_validation,
            "data_seed": self.config.data_seed,
            "threads": self.config.threads,
            "device": self.config.device,
            "dtype": self.config.dtype,
            "probe_config": self.config.to_dict(),
        }

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> "ProbeResult":
        """The result :meth:`to_record` wrote (as the store holds it)."""
        config = ProbeConfig.from_dict(record["probe_config"])
        curve = tuple(CurvePoint(**{k: v for k, v in point.items() if k in CurvePoint.__dataclass_fields__})
                      for point in record.get("learning_curve") or ())
        optional = ("kind", "stop_reason", "lr_decay_step", "steps_to_target", "validation_accuracy",
                    "n_validation", "wall_s", "n_train", "n_test", "lr_choice", "lr_trial_reused", "jobs",
                    "allocator")
        return cls(task=record["task"], block=record["block"], seed=int(record["seed"]), status=record["status"],
                   accuracy=record.get("accuracy"), steps=int(record.get("steps") or 0), learning_curve=curve,
                   steps_per_s=record.get("steps_per_s"), params=record.get("params"), macs=record.get("macs"),
                   flops=record.get("flops"), train_s=record.get("train_s"), config=config,
                   uncounted_ops=tuple(record.get("uncounted_ops") or ()),
                   block_options=tuple(sorted(dict(record.get("options") or {}).items())),
                   error=record.get("error"),
                   **{name: record[name] for name in optional if record.get(name) is not None})


def failed_result(config: ProbeConfig, case: ProbeCase, status: str, error: str,
                  curve: Sequence[CurvePoint] = ()) -> ProbeResult:
    """The result of a training that could not report itself (its process died):
    ``status`` and ``error``, with the learning curve it had logged."""
    return ProbeResult(task=case.task, block=case.block, seed=case.seed, status=status, error=error, accuracy=None,
                       steps=curve[-1].step if curve else 0, learning_curve=tuple(curve), steps_per_s=None,
                       params=None, macs=None, flops=None, train_s=None, config=config,
                       block_options=tuple(sorted(case.options.items())),
                       kind=KIND_PROBE_LR_TRIAL if case.is_lr_trial else KIND_PROBE)


# ------------------------------------------------------------------------ determinism


@contextlib.contextmanager
def deterministic_torch(threads: int, device: str = "cpu") -> Iterator[None]:
    """Deterministic algorithms, a fixed thread count, and a forked RNG (the CPU's,
    and ``device``'s when it is a GPU) for the duration; the caller's settings and
    random state are restored afterwards.

    On CUDA an operator without a deterministic kernel warns instead of failing, and
    cuBLAS gets a fixed workspace (``CUBLAS_WORKSPACE_CONFIG``, unless already set).
    """
    cuda = torch.device(device).type == "cuda"
    previous = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        torch.get_num_threads(),
    )
    if cuda:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True, warn_only=cuda)
    torch.set_num_threads(threads)
    try:
        with torch.random.fork_rng(devices=[torch.device(device).index or 0] if cuda else []):
            yield
    finally:
        torch.use_deterministic_algorithms(previous[0], warn_only=previous[1])
        torch.set_num_threads(previous[2])


# ---------------------------------------------------------------------------- pieces


def lr_factor(step: int, config: ProbeConfig) -> float:
    """The rate's factor at 0-based ``step``: linear warm-up, then constant (or cosine
    decay to zero over ``config.steps``); the decay on a plateau multiplies this."""
    if step < config.warmup_steps:
        return (step + 1) / config.warmup_steps
    if config.schedule == "constant":
        return 1.0
    progress = (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def plateaued(history: Sequence[float], window: int, min_gain: float) -> bool:
    """True when the best of the last ``window`` accuracies is no more than ``min_gain``
    above the best of those before them (False until there are ``window`` + 1)."""
    if len(history) <= window:
        return False
    return max(history[-window:]) <= max(history[:-window]) + min_gain + 1e-12


def chance_accuracy(labels: Tensor) -> float:
    """The accuracy of always answering the most frequent label of ``labels``."""
    return float(torch.bincount(labels).max()) / len(labels) if len(labels) else 0.0


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


def probe_flops(model: nn.Module, image_shape: tuple[int, int, int]) -> FlopCount:
    """The audited FLOP count (:func:`nlbench.measure.flops.count_flops`) of one
    forward pass of ``model`` in eval mode on one image of ``image_shape``, on the
    model's device and in its dtype; the model's mode is restored."""
    reference = next(model.parameters(), None)
    device, dtype = (reference.device, reference.dtype) if reference is not None else (None, None)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            return count_flops(model, (torch.zeros(1, *image_shape, device=device, dtype=dtype),))
    finally:
        model.train(was_training)


def _tensors(split: Split, config: ProbeConfig) -> tuple[Tensor, Tensor]:
    """A split's images and labels on the config's device, images in its dtype
    (the same tensors when they already are)."""
    return (split.images.to(device=config.device, dtype=torch_dtype(config.dtype)),
            split.labels.to(device=config.device))


# ---------------------------------------------------------------------------- training


def train_probe(
    config: ProbeConfig,
    block: str,
    seed: int,
    *,
    task: TaskData | None = None,
    block_options: Mapping[str, Any] | None = None,
    on_point: Callable[[CurvePoint], None] | None = None,
    kind: str = KIND_PROBE,
) -> ProbeResult:
    """Train the probe network with ``block`` from ``seed`` at ``config.lr`` and measure it.

    The network's input channels and classes come from the task's data. Any
    exception while building, training or measuring is caught and returned as a
    failed result ("oom" or "error", with whatever was measured before it), so a
    sweep of blocks goes on. ``task`` defaults to ``config.make_task()``;
    ``on_point`` is called with every learning-curve point as it is logged; ``kind``
    marks the result as a reported seed or a rate trial.
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
        "wall_s": None,
        "stop_reason": None,
        "lr_decay_step": None,
        "steps_to_target": None,
        "validation_accuracy": None,
        "allocator": describe_allocator() if torch.device(config.device).type == "cpu" else None,
    }
    curve: list[CurvePoint] = []
    status, error = STATUS_OK, None
    started = time.perf_counter()
    try:
        with deterministic_torch(config.threads, config.device):
            torch.manual_seed(seed)
            model = build_probe_net(
                block,
                in_channels=task.in_channels,
                num_classes=task.num_classes,
                channels=config.channels,
                image_size=config.image_size,
                stage=config.stage,
                block_options=dict(options),
            ).to(device=config.device, dtype=torch_dtype(config.dtype))
            if task.image_size != (config.image_size, config.image_size):
                raise ValueError(f"task images are {task.image_size}, the config says {config.image_size}")
            measured["params"] = count_params(model).trainable
            _train(model, task, config, seed, curve, measured, on_point)
            test_images, test_labels = _tensors(task.test, config)
            measured["accuracy"] = evaluate(model, test_images, test_labels, batch_size=config.eval_batch_size)
            if curve and curve[-1].step == measured["steps"]:
                curve[-1] = replace(curve[-1], test_accuracy=measured["accuracy"])
            measured["wall_s"] = time.perf_counter() - started
            try:
                count = probe_flops(model, tuple(task.train.images.shape[1:]))
            except Exception as exc:  # keep the accuracy; say why the MACs are missing
                raise RuntimeError(f"MAC count failed: {type(exc).__name__}: {exc}") from exc
            measured["macs"], measured["flops"] = int(count.macs), int(count.flops)
            measured["uncounted_ops"] = tuple(count.uncounted_ops)
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as exc:
        status = classify_failure(exc)
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
        n_validation=len(task.validation) if task.validation is not None else None,
        kind=kind,
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
    training seconds and speed, the plateau's decay and stop, steps to the target)
    up to date, so a diverging run still reports them.

    Evaluations during training use the validation split (the test split when the
    task has none: runs configured before it existed)."""
    # fused: one kernel over all parameters — the per-tensor loop cost 0.5–0.8 ms a step (1 thread), fused 0.15
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay, fused=True)
    decay = 1.0  # the plateau's decay of the rate, applied from the step after the plateau
    fix_up = reorthogonalizers(model)
    generator = torch.Generator().manual_seed(seed)
    images, labels = _tensors(task.train, config)
    held_out = task.validation if task.validation is not None else task.test
    check_images, check_labels = _tensors(held_out, config)
    chance = chance_accuracy(held_out.labels)
    history: list[float] = []
    decayed_at: int | None = None  # evaluations done when the rate was decayed
    n = len(labels)
    order = torch.randperm(n, generator=generator)
    cursor = 0
    losses: list[float] = []
    train_seconds = 0.0
    measured["stop_reason"] = STOP_BUDGET
    model.train()
    for step in range(1, config.steps + 1):
        if cursor + config.batch_size > n:
            order, cursor = torch.randperm(n, generator=generator), 0
        index = order[cursor : cursor + config.batch_size]
        cursor += config.batch_size
        start = time.perf_counter()
        step_lr = config.lr * (lr_factor(step - 1, config) * decay)
        for group in optimizer.param_groups:
            group["lr"] = step_lr
        loss = F.cross_entropy(model(images[index]), labels[index])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            for module in fix_up:
                module.reorthogonalize()
        value = float(loss.detach())  # waits for the device, so the step's time is all in
        train_seconds += time.perf_counter() - start
        measured["steps"] = step
        measured["train_s"] = train_seconds
        measured["steps_per_s"] = step / train_seconds if train_seconds > 0 else None
        if not math.isfinite(value):
            raise FloatingPointError(f"the training loss is {value} at step {step}")
        losses.append(value)
        last = step == config.steps
        evaluate_now = (config.eval_every > 0 and step % config.eval_every == 0) or last
        if not (step % config.log_every == 0 or evaluate_now):
            continue
        accuracy = evaluate(model, check_images, check_labels, batch_size=config.eval_batch_size) \
            if evaluate_now else None
        validation = accuracy if task.validation is not None else None
        point = CurvePoint(step, statistics.fmean(losses), None if validation is not None else accuracy,
                           validation, step_lr)
        curve.append(point)
        losses = []
        if on_point is not None:
            on_point(point)
        if accuracy is None:
            continue
        measured["validation_accuracy"] = validation
        history.append(accuracy)
        if measured["steps_to_target"] is None and accuracy >= config.target_accuracy:
            measured["steps_to_target"] = step
        if not (config.stop_on_plateau and config.eval_every > 0 and max(history) >= chance + config.learning_margin):
            continue
        if decayed_at is None:
            if plateaued(history, config.plateau_window, config.plateau_min_gain):
                decay = config.plateau_decay
                decayed_at, measured["lr_decay_step"] = len(history), step
        elif len(history) - decayed_at >= config.plateau_window and plateaued(
                history, config.plateau_window, config.plateau_min_gain):
            measured["stop_reason"] = STOP_PLATEAU
            break
