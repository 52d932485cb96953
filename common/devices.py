"""The `--device auto|cpu|cuda` choice, made once for every CLI."""

from __future__ import annotations

import platform

import torch

from common.errors import UsageError


def resolve_device(name: str) -> torch.device:
    """Map auto|cpu|cuda[:N] to a torch.device; auto means cuda when one is available."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise UsageError(f"--device {name}: no CUDA device is available (use auto or cpu)")
        return torch.device(name)
    raise UsageError(f"--device {name!r} is not one of auto, cpu, cuda")


def describe_device(device: torch.device) -> str:
    """A human name for the machine behind `device`, for result files."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{cpu}, {torch.get_num_threads()} torch threads"
