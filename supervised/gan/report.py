"""conv vs CoordConv GANs on the same images, measured for mode collapse, beside real data."""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from common.reproduce import keeping_files, run_models, seed_cell
from supervised.gan.data import FULL_SIZE, load_gan_data
from supervised.gan.mode_collapse import collapse_scores
from supervised.gan.models import MODELS
from supervised.gan.trainer import GanSettings, check_settings, real_reference, train_gan

# quick: the 3,136 squares for 6 epochs (1,176 steps) with nets at a quarter of the release's
# width, sized for a CPU (docs/results/gan.md says how long it took). In CPU trials at this
# scale the conv GAN drew squares by step 800-1,400, all in one place; the CoordConv GAN
# (balanced first-layer init, supervised/gan/models.py) drew scattered squares from step 200.
# full: the release's run, 50,000 clevr images for 50 epochs at the release's width (156,000
# steps: a GPU's work).
BUDGETS = {
    "quick": GanSettings(data="square", epochs=6, images=3136, width=0.25, eval_samples=1000),
    "full": GanSettings(epochs=50, images=50_000, width=1.0, eval_samples=1000),
}
METRICS = ("validity", "coverage", "js")
HELD_OUT_SEED = 10_000  # real images for the reference row come from seed + this


def budget_settings(budget: str, **overrides: Any) -> GanSettings:
    """The budget's settings with `overrides` (data, epochs, images, eval_samples), checked; on
    square the budget's image count is capped at the 3,136 squares there are."""
    s = replace(BUDGETS[budget], progress=False, **overrides)
    if "images" not in overrides and s.images is not None and s.data in FULL_SIZE:
        s = replace(s, images=min(s.images, FULL_SIZE[s.data]))
    check_settings(s)
    return s


def real_data_scores(s: GanSettings) -> dict[str, Any]:
    """The measure of real images the run did not train on (clevr: a fresh draw; square: a
    random subset, as every position is in the data): what a perfect generator would score."""
    train = load_gan_data(s.data, s.images, s.seed)
    n = min(s.eval_samples, FULL_SIZE[s.data])
    held_out = load_gan_data(s.data, n, s.seed + HELD_OUT_SEED)
    scores = collapse_scores(held_out.batch(range(n)), real_reference(train))
    return {"model": "real data", "data": s.data, "seed": s.seed, "images": n, **scores}


def run_pair(
    budget: str,
    seeds: int,
    device: torch.device,
    progress: Callable[[Iterable], Iterable] = lambda it: it,
    pictures: Path | None = None,
    **overrides: Any,
) -> list[dict[str, Any]]:
    """Both models for each seed (the same seed: the same images), and per seed the real-data
    reference row. With `pictures`, each run's samples.png and interpolation.png land at
    <pictures>_<model>_s<seed>_samples.png and ..._interpolation.png."""
    base = budget_settings(budget, **overrides)
    rows = [real_data_scores(replace(base, seed=seed)) for seed in range(seeds)]
    train = train_gan
    if pictures is not None:
        kept = {"samples.png": "_samples.png", "interpolation.png": "_interpolation.png"}
        train = keeping_files(train_gan, pictures, kept)
    return rows + run_models(train, base, MODELS, seeds, device, progress)


def markdown_table(rows: list[dict[str, Any]]) -> tuple[str, str]:
    """A row per model and one for held-out real data (mean, min-max over seeds), and a summary
    that compares the two GANs seed by seed."""
    lines = [
        "| model | G params | D params | validity | coverage | JS (bits) | seconds | seeds |",
        "|---|---:|---:|---|---|---|---:|---:|",
    ]
    by_model = {m: [r for r in rows if r["model"] == m] for m in ("real data", *MODELS)}
    for model, runs in by_model.items():
        cells = " | ".join(seed_cell([r[k] for r in runs]) for k in METRICS)
        if model == "real data":
            lines.append(f"| real data (held out) | - | - | {cells} | - | {len(runs)} |")
            continue
        seconds = statistics.mean(r["seconds"] for r in runs)
        lines.append(
            f"| {model} | {runs[0]['params_g']:,} | {runs[0]['params_d']:,} | {cells} "
            f"| {seconds:.0f} | {len(runs)} |"
        )
    pairs = list(zip(by_model["conv"], by_model["coordconv"], strict=True))
    lower_js = sum(c["js"] < v["js"] for v, c in pairs)
    more_cover = sum(c["coverage"] > v["coverage"] for v, c in pairs)
    per_seed = "; ".join(
        f"seed {v['seed']}: JS {v['js']:.3f} -> {c['js']:.3f}, coverage "
        f"{v['coverage']:.3f} -> {c['coverage']:.3f}"
        for v, c in pairs
    )
    summary = (
        f"conv -> coordconv per seed: {per_seed}. CoordConv has the lower JS divergence in "
        f"{lower_js} of {len(pairs)} seed(s) and the higher coverage in {more_cover}."
    )
    return "\n".join(lines), summary
