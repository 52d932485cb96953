"""conv vs CoordConv on the same canvases, beside the paper's +24% IoU: the release's
region-proposal experiment (stage rpn) and the full Faster R-CNN (stage full)."""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from analysis.stats import t_interval
from common.reproduce import keeping_files, run_models, seed_cell
from supervised.detection.models import MODELS
from supervised.detection.trainer import DetectionSettings, train_detection

# full, quick: a CPU-sized canvas set; full, full: the release's data size. rpn, quick: 1 epoch
# of 3,000 canvases; rpn, full: the release's data size, 4 epochs (36,000 steps a run).
# docs/results/detection.md says how long each took.
BUDGETS = {
    "full": {
        "quick": DetectionSettings(epochs=5, train_images=3000, val_images=500),
        "full": DetectionSettings(epochs=20, train_images=9000, val_images=1000),
    },
    "rpn": {
        "quick": DetectionSettings(stage="rpn", epochs=1, train_images=3000, val_images=500),
        "full": DetectionSettings(stage="rpn", epochs=4, train_images=9000, val_images=1000),
    },
}
SEEDS = {"full": 2, "rpn": 3}  # default seeds: the RPN's intervals want at least 3
PAPER_GAIN = 0.24  # CoordConv's relative IoU gain in the paper
# Each stage's measures, as results.json names them, and their table labels.
MEASURES = {
    "full": {
        "mean_iou": "mean IoU",
        "map50": "mAP@0.5",
        "map": "mAP@[.5:.95]",
        "class_accuracy": "class accuracy",
    },
    "rpn": {
        "mean_iou": "mean IoU per true digit, top 5 proposals (the paper's measure)",
        "mean_nms_iou": "mean_nms_iou: all of proposals x truths (the release's)",
        "mean_argmax_nms_iou": "mean_argmax_nms_iou: each proposal's best (the release's)",
        "train_pos_box_iou": "sampled positive boxes in training, last epoch (the release's)",
    },
}


def run_pair(
    stage: str,
    budget: str,
    seeds: int,
    device: torch.device,
    progress: Callable[[Iterable], Iterable] = lambda it: it,
    pictures: Path | None = None,
    **overrides: Any,
) -> list[dict[str, Any]]:
    """Both models for each seed; the same seed gives both the same canvases. With `visualize`
    among the overrides, each run's detections.png lands at <pictures>_<model>_s<seed>.png."""
    base = replace(BUDGETS[stage][budget], progress=False, **overrides)
    train = train_detection
    if base.visualize and pictures is not None:
        train = keeping_files(train, pictures, {"detections.png": ".png"})
    return run_models(train, base, MODELS, seeds, device, progress)


def paired_gains(results: list[dict[str, Any]], measure: str) -> list[float]:
    """CoordConv's relative gain over conv in `measure`, one per seed (seeds whose conv value is
    0 have none)."""
    by_model = {m: [r for r in results if r["model"] == m] for m in MODELS}
    return [
        c[measure] / v[measure] - 1
        for v, c in zip(by_model["conv"], by_model["coordconv"], strict=True)
        if v[measure] > 0
    ]


def _percent_interval(interval: tuple[float, float] | None) -> str:
    return "n/a (one seed)" if interval is None else f"{interval[0]:+.1%} to {interval[1]:+.1%}"


def markdown_table(results: list[dict[str, Any]]) -> tuple[str, str]:
    """The table and summary of one stage's runs (all from one stage)."""
    if results[0]["stage"] == "rpn":
        return rpn_table(results)
    return detector_table(results)


def detector_table(results: list[dict[str, Any]]) -> tuple[str, str]:
    """A row per model (mean, min-max over seeds) and a summary with the IoU gain per seed."""
    by_model = {m: [r for r in results if r["model"] == m] for m in MODELS}
    lines = [
        "| model | params | mean IoU | mAP@0.5 | mAP@[.5:.95] | class accuracy | epochs "
        "| seconds | seeds |",
        "|---|---:|---|---|---|---|---:|---:|---:|",
    ]
    for model, runs in by_model.items():
        cells = " | ".join(seed_cell([r[k] for r in runs]) for k in MEASURES["full"])
        seconds = statistics.mean(r["seconds"] for r in runs)
        lines.append(
            f"| {model} | {runs[0]['params']:,} | {cells} | {runs[0]['epochs']} "
            f"| {seconds:.0f} | {len(runs)} |"
        )
    gains = paired_gains(results, "mean_iou")
    spread = ", ".join(f"{g:+.1%}" for g in gains)
    summary = (
        f"Relative mean-IoU gain of CoordConv over conv: {statistics.mean(gains):+.1%} "
        f"(per seed: {spread}); the paper reports {PAPER_GAIN:+.0%}."
        if gains
        else "No IoU gain can be computed (conv mean IoU is 0)."
    )
    return "\n".join(lines), summary


def rpn_table(results: list[dict[str, Any]]) -> tuple[str, str]:
    """A row per measure: conv and CoordConv (mean over seeds, min-max), CoordConv's relative
    gain (mean of the per-seed gains, paired by seed) with its t 95% interval, and the gain of
    each seed; then a summary that reads the intervals beside the paper's +24%."""
    by_model = {m: [r for r in results if r["model"] == m] for m in MODELS}
    lines = [
        "| measure | conv | coordconv | gain | 95% interval | gain per seed |",
        "|---|---|---|---:|---|---|",
    ]
    sides: dict[str, list[str]] = {"above": [], "below": [], "across": []}
    for key, label in MEASURES["rpn"].items():
        runs = {m: [r[key] for r in rs if key in r] for m, rs in by_model.items()}
        if not all(runs.values()):
            continue  # e.g. no positive box was sampled: nothing to compare
        gains = paired_gains([r for r in results if key in r], key)
        interval = t_interval(gains) if gains else None
        mean_gain = f"{statistics.mean(gains):+.1%}" if gains else "n/a"
        lines.append(
            f"| {label} | {seed_cell(runs['conv'])} | {seed_cell(runs['coordconv'])} "
            f"| {mean_gain} | {_percent_interval(interval)} "
            f"| {', '.join(f'{g:+.1%}' for g in gains)} |"
        )
        if interval is not None:
            side = "above" if interval[0] > 0 else "below" if interval[1] < 0 else "across"
            sides[side].append(key)
    conv, coord = by_model["conv"][0], by_model["coordconv"][0]
    seconds = statistics.mean(r["seconds"] for r in results)
    lines += [
        "",
        f"conv {conv['params']:,} parameters, coordconv {coord['params']:,} (coordinates in "
        f"[{coord['coord_range'].replace(',', ', ')}]); {conv['epochs']} epochs of "
        f"{conv['steps'] // conv['epochs']:,} steps (batch {conv['batch_size']}, Adam at "
        f"{conv['lr']:g}); {seconds:.0f} s per run on average; {len(by_model['conv'])} seeds.",
    ]
    reading = [f"the paper reports {PAPER_GAIN:+.0%} IoU for CoordConv (values unpublished)."]
    words = {
        "above": "CoordConv gains (interval above zero)",
        "below": "CoordConv loses (interval below zero)",
        "across": "No difference resolved (interval across zero)",
    }
    reading += [f"{words[k]}: {', '.join(v)}." for k, v in sides.items() if v]
    summary = (
        "Gains are CoordConv's relative to conv, paired by seed; the interval is a Student t "
        "interval over the per-seed gains; " + " ".join(reading)
    )
    return "\n".join(lines), summary
