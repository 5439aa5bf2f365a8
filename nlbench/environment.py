"""The environment fingerprint a run's manifest records, so numbers can be traced."""

from __future__ import annotations

import platform
import subprocess
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent


def cpu_model() -> str:
    """The CPU's model name (Linux /proc/cpuinfo, else platform.processor())."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def device_name(device: str = "cpu") -> str:
    """What a case runs on: the GPU's name for a CUDA device, else the CPU model."""
    import torch

    if device.startswith("cuda") and torch.cuda.is_available():
        return torch.cuda.get_device_name(torch.device(device))
    return cpu_model()


def git_commit() -> str | None:
    """HEAD of the repository nlbench runs from, with ``-dirty`` if it has changes."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True,
                                text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO_ROOT,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return commit + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def fingerprint(device: str = "cpu") -> dict[str, Any]:
    """torch version, device name, CPU model, threads, commit, host, Python."""
    import torch

    import nlbench

    info: dict[str, Any] = {
        "nlbench_version": nlbench.__version__,
        "torch_version": torch.__version__,
        "python_version": platform.python_version(),
        "platform": platform.platform(),
        "host": platform.node(),
        "cpu_model": cpu_model(),
        "cpu_count": __import__("os").cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "commit": git_commit(),
        "device": device,
        "device_name": device_name(device),
    }
    if device.startswith("cuda") and torch.cuda.is_available():
        info["cuda_version"] = torch.version.cuda
    return info
