"""The datasets x variants x seeds grid, and its tables: test accuracy per cell and the paired
difference of each CoordConv variant from conv, each with a Student t 95% interval, beside the
paper's ImageNet result."""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from analysis.stats import t_interval
from supervised.classification.data import DATASETS
from supervised.classification.models import VARIANTS
from supervised.classification.trainer import ClassificationSettings, train_classification

# full: 2 datasets x 3 variants x 5 seeds = 30 runs (docs/results/classification.md says how
# long they took). Two epochs:
# the canvas models are at 15% test accuracy after one epoch of a two-epoch run and at 92% after
# the second.
BUDGETS = {
    "quick": ClassificationSettings(epochs=1, train_images=256, test_images=200),
    "full": ClassificationSettings(epochs=2, train_images=4000, test_images=1000),
}
SEEDS = {"quick": 2, "full": 5}
CONTROL = "conv"
PAPER = (
    "+0.04% top-5 accuracy on ImageNet for ResNet-50 with one extra 1x1 CoordConv layer (8 "
    "outputs) at its input, averaged over 5 runs per treatment, not statistically significant"
)


def run_grid(
    budget: str,
    seeds: int,
    device: torch.device,
    progress: Callable[[Iterable], Iterable] = lambda it: it,
    datasets: Sequence[str] = DATASETS,
    runs: Path | None = None,
    **overrides: Any,
) -> list[dict[str, Any]]:
    """Every variant for each seed of each dataset; one results dict per run. With `runs`,
    each run's folder (TensorBoard events, results.json) is kept as
    <runs>/<dataset>_<variant>_s<seed>; checkpoints are not written."""
    base = replace(BUDGETS[budget], progress=False, checkpoint=False, **overrides)
    grid = [(d, seed, v) for d in datasets for seed in range(seeds) for v in VARIANTS]
    results = []
    for dataset, seed, variant in progress(grid):
        s = replace(base, dataset=dataset, variant=variant, seed=seed)
        if runs is not None:
            s.out = str(runs / f"{dataset}_{variant}_s{seed}")
        results.append(train_classification(s, device))
    return results


def paired_differences(results: list[dict[str, Any]], dataset: str, variant: str) -> list[float]:
    """`variant`'s test accuracy minus conv's, one per seed both ran, in seed order."""
    acc = {
        (r["variant"], r["seed"]): r["test_accuracy"] for r in results if r["dataset"] == dataset
    }
    seeds = sorted(seed for v, seed in acc if v == variant and (CONTROL, seed) in acc)
    return [acc[(variant, seed)] - acc[(CONTROL, seed)] for seed in seeds]


def reading(interval: tuple[float, float] | None) -> str:
    """ "within noise" when the interval holds 0, else which way it lies."""
    if interval is None:
        return "no interval (one seed)"
    if interval[0] > 0:
        return "CoordConv better (interval above 0)"
    if interval[1] < 0:
        return "CoordConv worse (interval below 0)"
    return "within noise (interval holds 0)"


def _points(x: float) -> str:
    return f"{100 * x:+.2f}"


def _interval(interval: tuple[float, float] | None, scale: float = 100, signed: bool = True) -> str:
    if interval is None:
        return "n/a"
    fmt = "+.2f" if signed else ".2f"
    return f"{scale * interval[0]:{fmt}} to {scale * interval[1]:{fmt}}"


def markdown_tables(results: list[dict[str, Any]]) -> tuple[str, str]:
    """The accuracy table (a row per dataset x variant: mean, t 95% interval, per seed, in %),
    the paired-difference table (a row per dataset x CoordConv variant, in percentage points)
    and a summary reading each difference."""
    datasets = [d for d in DATASETS if any(r["dataset"] == d for r in results)]
    lines = [
        "| dataset | variant | params | coordinate weights | test accuracy % (mean) "
        "| 95% interval | per seed |",
        "|---|---|---:|---:|---:|---|---|",
    ]
    for d in datasets:
        for v in VARIANTS:
            runs = sorted((r for r in results if (r["dataset"], r["variant"]) == (d, v)),
                          key=lambda r: r["seed"])  # fmt: skip
            if not runs:
                continue
            acc = [r["test_accuracy"] for r in runs]
            lines.append(
                f"| {d} | {v} | {runs[0]['params']:,} | {runs[0]['coordinate_weights']:,} "
                f"| {100 * statistics.mean(acc):.2f} | {_interval(t_interval(acc), signed=False)} "
                f"| {', '.join(f'{100 * a:.1f}' for a in acc)} |"
            )
    lines += [
        "",
        "| dataset | difference | mean (points) | 95% interval | per seed | reading |",
        "|---|---|---:|---|---|---|",
    ]
    sentences = []
    for d in datasets:
        for v in VARIANTS:
            diffs = paired_differences(results, d, v) if v != CONTROL else []
            if not diffs:
                continue
            interval = t_interval(diffs)
            lines.append(
                f"| {d} | {v} - {CONTROL} | {_points(statistics.mean(diffs))} "
                f"| {_interval(interval)} | {', '.join(_points(x) for x in diffs)} "
                f"| {reading(interval)} |"
            )
            sentences.append(
                f"{d}, {v} - {CONTROL}: {_points(statistics.mean(diffs))} points over "
                f"{len(diffs)} seeds, {reading(interval)}."
            )
    seconds = {d: statistics.mean(r["seconds"] for r in results if r["dataset"] == d)
               for d in datasets}  # fmt: skip
    r0 = results[0]
    lines += [
        "",
        f"{r0['epochs']} epoch(s) of {r0['train_images']:,} training images (batch "
        f"{r0['batch_size']}, Adam at {r0['lr']:g} annealed to 0), tested on "
        f"{r0['test_images']:,}; seconds per run: "
        + ", ".join(f"{d} {s:.0f}" for d, s in seconds.items())
        + ".",
    ]
    summary = (
        " ".join(sentences)
        + f" For reference, the paper: {PAPER}. Differences are paired by seed (same image "
        "weights, same batches); intervals are Student t over the seeds."
    )
    return "\n".join(lines), summary
