"""Timing of CoordConv2d against nn.Conv2d, a naive concat CoordConv and a `coordconvify`d
conv: forward+backward in training mode, and forward only in eval mode under no_grad (where
the layer caches its coordinate term).

`NaiveCoordConv2d` lives here, not in the coordconv package: it is the popular ports' layer,
kept only as the baseline the benchmark times.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
from torch import nn

from benchmarks.timing import interleaved_median_ms
from common.devices import set_tf32
from coordconv.add_coords import AddCoords
from coordconv.convert import coordconvify
from coordconv.layers import CoordConv2d


@dataclass(frozen=True)
class LayerCase:
    """One layer shape to time: a batch of (in_channels, height, width) inputs."""

    name: str
    batch: int
    in_channels: int
    out_channels: int
    size: tuple[int, int]
    kernel: int
    stride: int = 1
    padding: int = 0
    input_grad: bool = True  # False for a network's first layer: its input needs no gradient


CASES = (
    LayerCase("Atari first layer 4x84x84->32 k8 s4", 256, 4, 32, (84, 84), 8, 4, 0, False),
    LayerCase("3x3 64->64 on 32x32", 64, 64, 64, (32, 32), 3, 1, 1),
    LayerCase("toy 1x1 2->32 on 64x64", 16, 2, 32, (64, 64), 1, 1, 0, False),
    LayerCase("toy 1x1 32->64 on 64x64", 16, 32, 64, (64, 64), 1),
)


class NaiveCoordConv2d(nn.Module):
    """The popular ports' CoordConv: concatenate coordinates to every example, then convolve."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, stride: int, padding: int):
        super().__init__()
        self.add_coords = AddCoords(rank=2)
        self.conv = nn.Conv2d(in_channels + 2, out_channels, kernel, stride, padding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(self.add_coords(x))


VARIANTS: dict[str, Callable[[LayerCase], nn.Module]] = {
    "conv": lambda c: nn.Conv2d(c.in_channels, c.out_channels, c.kernel, c.stride, c.padding),
    "coordconv": lambda c: CoordConv2d(
        c.in_channels, c.out_channels, c.kernel, c.stride, c.padding
    ),
    "naive": lambda c: NaiveCoordConv2d(
        c.in_channels, c.out_channels, c.kernel, c.stride, c.padding
    ),
    # A converted layer rounds as the plain conv does (bias in the convolution, no pointwise
    # product), so this column also measures what those faster paths buy.
    "converted": lambda c: coordconvify(
        nn.Conv2d(c.in_channels, c.out_channels, c.kernel, c.stride, c.padding)
    ),
}


MODES = ("train", "forward")  # forward+backward in train mode; forward in eval under no_grad
MODE_TITLES = {
    "train": "Training: forward+backward, train mode",
    "forward": "Inference: forward only, eval mode under torch.no_grad",
}


def _train_step(module: nn.Module, x: torch.Tensor, grad: torch.Tensor) -> Callable[[], None]:
    params = list(module.parameters())

    def step() -> None:
        for p in params:
            p.grad = None
        x.grad = None
        module(x).backward(grad)

    return step


def _forward_step(module: nn.Module, x: torch.Tensor) -> Callable[[], None]:
    def step() -> None:
        with torch.no_grad():
            module(x)

    return step


def time_case(
    case: LayerCase,
    device: torch.device,
    rounds: int = 7,
    iters: int = 10,
    seed: int = 0,
    mode: str = "train",
) -> dict:
    """Median milliseconds per step for each variant, timed in interleaved rounds; a step is a
    forward+backward in train mode ("train") or a forward in eval mode under no_grad
    ("forward")."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    torch.manual_seed(seed)
    x = torch.randn(case.batch, case.in_channels, *case.size, device=device)
    x.requires_grad_(case.input_grad and mode == "train")
    steps = {}
    for name, make in VARIANTS.items():
        module = make(case).to(device)
        if mode == "train":
            with torch.no_grad():
                grad = torch.randn_like(module(x))
            steps[name] = _train_step(module, x, grad)
        else:
            steps[name] = _forward_step(module.eval(), x)
    ms = interleaved_median_ms(steps, device, rounds, iters, warmup=3)
    return {
        **asdict(case),
        "mode": mode,
        "conv_ms": ms["conv"],
        "coordconv_ms": ms["coordconv"],
        "naive_ms": ms["naive"],
        "coordconv_over_conv": ms["coordconv"] / ms["conv"],
        "naive_over_conv": ms["naive"] / ms["conv"],
        "converted_ms": ms["converted"],
        "converted_over_conv": ms["converted"] / ms["conv"],
    }


RATIOS = ("coordconv_over_conv", "naive_over_conv", "converted_over_conv")
TIMES = ("conv_ms", "coordconv_ms", "naive_ms", "converted_ms")


def time_all(
    device: str, rounds: int, iters: int, seed: int, threads: int, tf32: bool = False
) -> list[dict]:
    """Every case in every mode, in this process; `threads` > 0 sets torch's CPU threads, `tf32`
    whether CUDA convolutions and matrix products may run in TF32 (common.devices.set_tf32).
    The unit a repeat runs in a fresh process, which inherits neither setting."""
    if threads:
        torch.set_num_threads(threads)
    set_tf32(tf32)
    return [
        time_case(case, torch.device(device), rounds, iters, seed, mode)
        for mode in MODES
        for case in CASES
    ]


def combine(repeats: list[list[dict]]) -> list[dict]:
    """One row per case and mode over runs repeated in fresh processes: the median of each
    time and ratio, each ratio's (min, max) under `<ratio>_range`, and the count. Times move
    between processes (the page's preamble says why), so the spread between processes is the
    honest error bar."""
    rows = []
    for same in zip(*repeats, strict=True):
        row = dict(same[0])
        for key in TIMES + RATIOS:
            row[key] = statistics.median(r[key] for r in same)
        for key in RATIOS:
            row[f"{key}_range"] = (min(r[key] for r in same), max(r[key] for r in same))
        row["repeats"] = len(same)
        rows.append(row)
    return rows


def _ratio(row: dict, key: str) -> str:
    if row.get("repeats", 1) == 1:
        return f"{row[key]:.3f}"
    low, high = row[f"{key}_range"]
    return f"{row[key]:.3f} ({low:.3f}-{high:.3f})"


def markdown_table(rows: list[dict]) -> str:
    """The measured rows as markdown: one table per mode, each under its title."""
    parts = []
    for mode in MODES:
        lines = [
            f"{MODE_TITLES[mode]}:",
            "",
            "| layer | batch | Conv2d ms | CoordConv2d ms | naive concat ms | coordconvify ms "
            "| CoordConv2d / Conv2d | naive / Conv2d | coordconvify / Conv2d |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r in rows:
            if r["mode"] != mode:
                continue
            lines.append(
                f"| {r['name']} | {r['batch']} | {r['conv_ms']:.2f} | {r['coordconv_ms']:.2f} "
                f"| {r['naive_ms']:.2f} | {r['converted_ms']:.2f} | "
                + " | ".join(_ratio(r, key) for key in RATIOS)
                + " |"
            )
        if len(lines) > 4:
            parts.append("\n".join(lines))
    return "\n\n".join(parts)
