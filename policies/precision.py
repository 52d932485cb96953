"""Which precision a policy's features extractor computes in: fp32, or bf16 under autocast.

The convolutions are nearly all of an Atari agent's compute, so bf16 runs only the features
extractor under `torch.autocast` (CPU or CUDA); its output is cast back to fp32, so the heads,
the losses, the gradients of every weight and the optimizer state stay fp32. Autocast is set
per policy object, not saved with it: a saved agent loads with plain `A2C.load` / `PPO.load`
as the fp32 network it is (its weights are fp32 either way) and plays in bf16 after
`set_precision(model.policy, "bf16")`; DQN / QR-DQN likewise.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import nn

from common.errors import check_choice

PRECISIONS = ("fp32", "bf16")


def set_precision(policy: nn.Module, precision: str) -> None:
    """Run the features extractor(s) of an SB3 policy in `precision` from now on.

    Covers a shared extractor, separate actor/critic ones and the Q-network and target network
    of DQN / QR-DQN alike; calling it again replaces the earlier setting (fp32 restores the
    class's own forward).
    """
    check_choice("precision", precision, PRECISIONS)
    for extractor in _extractors(policy):
        # An instance attribute shadows the class's forward; nn.Module.__call__ looks it up.
        extractor.__dict__.pop("forward", None)
        if precision == "bf16":
            extractor.forward = _bf16_forward(extractor.forward)


def precision_of(policy: nn.Module) -> str:
    """The precision `set_precision` last gave the policy's extractor (fp32 if never)."""
    extractors = _extractors(policy)
    return "bf16" if extractors and "forward" in extractors[0].__dict__ else "fp32"


def _extractors(policy: nn.Module) -> list[BaseFeaturesExtractor]:
    # By type, not by attribute name: DQN's policy holds its extractors inside q_net and
    # q_net_target, A2C/PPO's as features_extractor (the same object as pi_/vf_ when shared);
    # modules() lists a shared one once.
    return [m for m in policy.modules() if isinstance(m, BaseFeaturesExtractor)]


def _bf16_forward(forward: Callable[[torch.Tensor], torch.Tensor]):
    @functools.wraps(forward)
    def run(observations: torch.Tensor) -> torch.Tensor:
        with torch.autocast(observations.device.type, dtype=torch.bfloat16):
            features = forward(observations)
        return features.float()

    return run


def bf16_note(device: torch.device) -> str | None:
    """One line when `device` has no bf16 units (bf16 then runs emulated, usually slower than
    fp32); None when it has them. Asks `device` itself, not the current CUDA device."""
    if device.type == "cuda":
        if cuda_bf16_native(device):
            return None
        index = _cuda_index(device)
        major, minor = torch.cuda.get_device_capability(index)
        name = torch.cuda.get_device_name(index)
        return (
            f"note: {name} (cuda:{index}, sm_{major}{minor}) has no bf16 units (compute "
            "capability below 8.0); bf16 is likely slower there"
        )
    if cpu_bf16_units():
        return None
    return "note: this CPU has no bf16 units (no AVX512-BF16 or AMX); bf16 is likely slower here"


def bf16_support(device: torch.device) -> str:
    """The bf16 support of `device` for result pages: the CPU's bf16 units, or whether the GPU
    has native bf16 (compute capability 8.0 or later)."""
    if device.type == "cuda":
        index = _cuda_index(device)
        major, minor = torch.cuda.get_device_capability(index)
        native = "native" if cuda_bf16_native(device) else "emulated"
        return f"GPU bf16: {native} (cuda:{index}, sm_{major}{minor})"
    return f"CPU bf16 units: {', '.join(cpu_bf16_units()) or 'none (bf16 is emulated)'}"


def cuda_bf16_native(device: torch.device) -> bool:
    """Whether the CUDA device `device` (not the current one) computes bf16 natively: compute
    capability 8.0 (Ampere) or later; ROCm GPUs that torch runs all do."""
    # torch.cuda.is_bf16_supported() would answer for the current device, which need not be
    # the one a run was given (cuda:1 while cuda:0 is current).
    if torch.version.hip:
        return True
    return bf16_native_major(torch.cuda.get_device_capability(_cuda_index(device))[0])


def bf16_native_major(major: int) -> bool:
    """Whether NVIDIA GPUs of compute capability major `major` compute bf16 natively (Ampere,
    8.x, and later)."""
    return major >= 8


def _cuda_index(device: torch.device) -> int:
    """The index of a CUDA device; a bare `cuda` means the current device, as torch reads it."""
    return torch.cuda.current_device() if device.index is None else device.index


def cpu_bf16_units() -> list[str]:
    """The CPU's bf16 instruction sets that oneDNN uses: AMX and/or AVX512-BF16 ([] if none)."""
    # torch.cpu's checks are private but are what oneDNN itself dispatches on; a torch without
    # them reports none rather than failing.
    checks = {"AMX": "_is_amx_tile_supported", "AVX512-BF16": "_is_avx512_bf16_supported"}
    return [name for name, fn in checks.items() if getattr(torch.cpu, fn, lambda: False)()]
