"""conv vs CoordConv Faster R-CNN on the same canvases, beside the paper's +24% IoU."""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from common.reproduce import keeping_files, run_models, seed_cell
from supervised.detection.models import MODELS
from supervised.detection.trainer import DetectionSettings, train_detection

# quick: both models, two seeds, on this 2-core CPU in 13 minutes (measured); full: the
# release's data size.
BUDGETS = {
    "quick": DetectionSettings(epochs=5, train_images=3000, val_images=500),
    "full": DetectionSettings(epochs=20, train_images=9000, val_images=1000),
}
PAPER_GAIN = 0.24  # CoordConv's relative IoU gain in the paper
METRICS = ("mean_iou", "map50", "map", "class_accuracy")


def run_pair(
    budget: str,
    seeds: int,
    device: torch.device,
    progress: Callable[[Iterable], Iterable] = lambda it: it,
    pictures: Path | None = None,
    **overrides: Any,
) -> list[dict[str, Any]]:
    """Both models for each seed; the same seed gives both the same canvases. With `visualize`
    among the overrides, each run's detections.png lands at <pictures>_<model>_s<seed>.png."""
    base = replace(BUDGETS[budget], progress=False, **overrides)
    train = train_detection
    if base.visualize and pictures is not None:
        train = keeping_files(train, pictures, {"detections.png": ".png"})
    return run_models(train, base, MODELS, seeds, device, progress)


def markdown_table(results: list[dict[str, Any]]) -> tuple[str, str]:
    """A row per model (mean, min-max over seeds) and a summary with the IoU gain per seed."""
    by_model = {m: [r for r in results if r["model"] == m] for m in MODELS}
    lines = [
        "| model | params | mean IoU | mAP@0.5 | mAP@[.5:.95] | class accuracy | epochs "
        "| seconds | seeds |",
        "|---|---:|---|---|---|---|---:|---:|---:|",
    ]
    for model, runs in by_model.items():
        cells = " | ".join(seed_cell([r[k] for r in runs]) for k in METRICS)
        seconds = statistics.mean(r["seconds"] for r in runs)
        lines.append(
            f"| {model} | {runs[0]['params']:,} | {cells} | {runs[0]['epochs']} "
            f"| {seconds:.0f} | {len(runs)} |"
        )
    gains = [
        c["mean_iou"] / v["mean_iou"] - 1
        for v, c in zip(by_model["conv"], by_model["coordconv"], strict=True)
        if v["mean_iou"] > 0
    ]
    spread = ", ".join(f"{g:+.1%}" for g in gains)
    summary = (
        f"Relative mean-IoU gain of CoordConv over conv: {statistics.mean(gains):+.1%} "
        f"(per seed: {spread}); the paper reports {PAPER_GAIN:+.0%}."
        if gains
        else "No IoU gain can be computed (conv mean IoU is 0)."
    )
    return "\n".join(lines), summary
