"""The `--device auto|cpu|cuda[:N]` and `--tf32` choices, made once for every CLI, and the record
of the device a run actually used.

A device is checked before anything starts: a malformed name, a CUDA index past the device
count, or a GPU whose compute capability the installed torch has no kernels for ends the CLI
with one line (UsageError); `auto` falls back to the CPU on such a machine and says so. A tiny
allocation probes the chosen GPU, so a broken driver fails here rather than mid-run.

TF32: cuDNN runs fp32 convolutions in TF32 by default, while CPU results and the layer's own
matrix products are full fp32, so outputs would differ by about 1e-3 between devices. The
suite turns TF32 off (convolutions and matrix products alike) unless `--tf32` asks for it.
"""

from __future__ import annotations

import platform
import re
import sys
from typing import Any

import torch

from common.errors import UsageError

_NAME = re.compile(r"auto|cpu|cuda(?::(\d+))?")


def resolve_device(name: str) -> torch.device:
    """Map auto|cpu|cuda|cuda:N to a checked torch.device with an explicit index (`cuda` is
    cuda:0). UsageError, naming `name`, for a malformed name, a missing or unusable GPU; `auto`
    is cuda:0 when that GPU is usable, else the CPU (with one line on stderr when a GPU is
    present but unusable)."""
    match = _NAME.fullmatch(name)
    if match is None:
        raise UsageError(f"--device {name!r} is not one of auto, cpu, cuda, cuda:N")
    if name == "cpu":
        return torch.device("cpu")
    if name == "auto":
        if not torch.cuda.is_available():
            return torch.device("cpu")
        why = _unusable(0)
        if why:
            print(f"note: --device auto: {why}; using the CPU", file=sys.stderr)
            return torch.device("cpu")
        return torch.device("cuda", 0)
    if not torch.cuda.is_available():
        raise UsageError(f"--device {name}: no CUDA device is available (use auto or cpu)")
    index = int(match.group(1) or 0)
    count = torch.cuda.device_count()
    if index >= count:
        valid = ", ".join(f"cuda:{i}" for i in range(count))
        raise UsageError(f"--device {name}: this machine has {count} CUDA device(s) ({valid})")
    why = _unusable(index)
    if why:
        raise UsageError(f"--device {name}: {why}")
    return torch.device("cuda", index)


def _unusable(index: int) -> str | None:
    """Why cuda:`index` cannot run this torch's kernels, or None when it can."""
    major, minor = torch.cuda.get_device_capability(index)
    arch = torch.cuda.get_arch_list()
    if arch and not kernels_for(major, minor, arch):
        gpu = torch.cuda.get_device_name(index)
        return (
            f"{gpu} (sm_{major}{minor}) has no kernels in this torch {torch.__version__} "
            f"(built for {' '.join(arch)})"
        )
    try:
        torch.empty(1, device=torch.device("cuda", index)).add_(1)
        torch.cuda.synchronize(index)
    except RuntimeError as err:
        return f"a probe allocation failed ({' '.join(str(err).split())[:200]})"
    return None


def kernels_for(major: int, minor: int, arch_list: list[str]) -> bool:
    """Whether a GPU of compute capability major.minor runs a torch built for `arch_list`
    (torch.cuda.get_arch_list()): a cubin sm_XY runs on X.Y and later minors of X, PTX
    compute_XY on X.Y and anything newer. (torch's own check is private and only warns.)"""
    device = 10 * major + minor
    for entry in arch_list:
        kind, _, code = entry.partition("_")
        digits = re.match(r"\d+", code)
        if digits is None:
            continue
        cc = int(digits.group())
        if kind == "sm" and cc // 10 == major and cc <= device:
            return True
        if kind == "compute" and cc <= device:
            return True
    return False


def set_tf32(enabled: bool) -> None:
    """Allow (or forbid) TF32 for CUDA fp32 convolutions (cuDNN's convolutions and RNNs alike)
    and matrix products, for this process."""
    # The `allow_tf32` flags, not torch's newer per-operator `fp32_precision`: torch's own code
    # (torch.export's cuDNN guard) reads the old flag, which raises once the new API has set
    # cuDNN's convolutions and RNNs apart; the old flag sets both.
    torch.backends.cudnn.allow_tf32 = enabled
    torch.backends.cuda.matmul.allow_tf32 = enabled


def tf32_enabled() -> bool:
    """Whether CUDA fp32 convolutions run in TF32 now (cuDNN's default, unless `set_tf32`)."""
    return bool(torch.backends.cudnn.allow_tf32)


def select_device(name: str, tf32: bool = False) -> torch.device:
    """`resolve_device(name)`, then `set_tf32(tf32)`: what every training CLI does first."""
    device = resolve_device(name)
    set_tf32(tf32)
    return device


def device_record(device: torch.device) -> dict[str, Any]:
    """What a run records of the device it used: the resolved name (cpu, cuda:0), the GPU or
    CPU model, the GPU's compute capability (sm_XY), the CUDA and cuDNN versions, TF32 and
    whether cuDNN ran deterministic (None where they do not apply)."""
    cuda = device.type == "cuda"
    capability = torch.cuda.get_device_capability(device) if cuda else None
    return {
        "device": str(device),
        "device_model": _model(device),
        "capability": f"sm_{capability[0]}{capability[1]}" if capability else None,
        "cuda": torch.version.cuda if cuda else None,
        "cudnn": torch.backends.cudnn.version() if cuda else None,
        "tf32": tf32_enabled() if cuda else False,
        "cudnn_deterministic": bool(torch.backends.cudnn.deterministic) if cuda else None,
    }


def _model(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return cpu


def describe_device(device: torch.device) -> str:
    """A human name for the machine behind `device`, for result pages: the CPU model and torch's
    threads, or `describe_record` of the GPU."""
    if device.type != "cuda":
        return f"{_model(device)}, {torch.get_num_threads()} torch threads"
    return describe_record(device_record(device))


def describe_record(r: dict[str, Any]) -> str:
    """One line for a `device_record`: "<CPU model> (cpu)", or the GPU model with its device,
    capability, CUDA, cuDNN, TF32 and determinism."""
    if r.get("cuda") is None:
        return f"{r['device_model']} ({r['device']})"
    on = {True: "on", False: "off"}
    return (
        f"{r['device_model']} ({r['device']}, {r['capability']}), CUDA {r['cuda']}, cuDNN "
        f"{r['cudnn']}, TF32 {on[bool(r['tf32'])]}, cuDNN deterministic "
        f"{on[bool(r['cudnn_deterministic'])]}"
    )
