"""Training-accuracy probes: short, seeded trainings on tasks that only long-range
interaction solves, and a gradient receptive-field check, to show whether a block
delivers global context next to what it costs. Importing builds nothing."""

from nlbench.probes.probe import (
    DEFAULT_CONFIG,
    PRESETS,
    QUICK_CONFIG,
    CurvePoint,
    ProbeConfig,
    ProbeEvent,
    ProbeNet,
    ProbeResult,
    ProbeSummary,
    ReceptiveField,
    aggregate,
    backbone_receptive_field,
    build_probe_net,
    probe_config,
    run_probe,
    train_probe,
)
from nlbench.probes.receptive_field import ReceptiveFieldResult, receptive_field_probe, save_heatmap
from nlbench.probes.tasks import TASKS, Split, TaskData, load_cifar, make_task

__all__ = [
    "DEFAULT_CONFIG",
    "PRESETS",
    "QUICK_CONFIG",
    "TASKS",
    "CurvePoint",
    "ProbeConfig",
    "ProbeEvent",
    "ProbeNet",
    "ProbeResult",
    "ProbeSummary",
    "ReceptiveField",
    "ReceptiveFieldResult",
    "Split",
    "TaskData",
    "aggregate",
    "backbone_receptive_field",
    "build_probe_net",
    "load_cifar",
    "make_task",
    "probe_config",
    "receptive_field_probe",
    "run_probe",
    "save_heatmap",
    "train_probe",
]
