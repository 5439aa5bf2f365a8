"""Training-accuracy probes: short, seeded trainings on tasks that only long-range
interaction solves, and a gradient receptive-field check, to show whether a block
delivers global context next to what it costs. Importing builds nothing.

- :mod:`~nlbench.probes.tasks`: the task data (generated or read from local files);
- :mod:`~nlbench.probes.network`: the probe network and its backbone's receptive field;
- :mod:`~nlbench.probes.config`: the training budget (presets) and a block × seed's identity;
- :mod:`~nlbench.probes.training`: training and measuring one block × seed;
- :mod:`~nlbench.probes.runs`: per block a rate sweep, then its seeds, in memory or into the results store (resumable);
- :mod:`~nlbench.probes.workers`: several trainings at once, each in its own process;
- :mod:`~nlbench.probes.receptive_field`: which input pixels reach one output position.
"""

from nlbench.probes.config import (
    DEFAULT_CONFIG,
    PRESETS,
    QUICK_CONFIG,
    TASK_ALIASES,
    ProbeCase,
    ProbeConfig,
    canonical_task,
    probe_config,
)
from nlbench.probes.network import ProbeNet, ReceptiveField, backbone_receptive_field, build_probe_net, feature_size
from nlbench.probes.receptive_field import ReceptiveFieldResult, receptive_field_probe, save_heatmap
from nlbench.probes.runs import (
    LrChoice,
    ProbeRun,
    ProbeSummary,
    StepCallback,
    aggregate,
    block_cases,
    choose_lr,
    config_from_manifest,
    default_probe_jobs,
    lr_trial_cases,
    pending_probe_cases,
    probe_cases,
    resume_probe_arguments,
    run_probe,
    run_probe_into,
    start_probe_run,
)
from nlbench.probes.tasks import TASKS, Split, TaskData, load_cifar, make_task
from nlbench.probes.training import CurvePoint, ProbeResult, train_probe

__all__ = [
    "DEFAULT_CONFIG",
    "PRESETS",
    "QUICK_CONFIG",
    "TASKS",
    "TASK_ALIASES",
    "CurvePoint",
    "LrChoice",
    "ProbeCase",
    "ProbeConfig",
    "ProbeNet",
    "ProbeResult",
    "ProbeRun",
    "ProbeSummary",
    "ReceptiveField",
    "ReceptiveFieldResult",
    "Split",
    "StepCallback",
    "TaskData",
    "aggregate",
    "backbone_receptive_field",
    "block_cases",
    "build_probe_net",
    "canonical_task",
    "choose_lr",
    "config_from_manifest",
    "default_probe_jobs",
    "feature_size",
    "load_cifar",
    "lr_trial_cases",
    "make_task",
    "pending_probe_cases",
    "probe_cases",
    "probe_config",
    "receptive_field_probe",
    "resume_probe_arguments",
    "run_probe",
    "run_probe_into",
    "save_heatmap",
    "start_probe_run",
    "train_probe",
]
