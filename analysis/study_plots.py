"""The study report's pictures across games: performance profiles and sample efficiency, from
study.json's numbers alone (the per-game learning curves are analysis.report.plot_curves)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from analysis.report import STEPS_LABEL, fmt_steps, save_png_atomic


def plot_profiles(summary: dict[str, Any], path: Path) -> Path:
    """Performance profiles, one line per group with its bootstrap band; PNG saved atomically."""
    fig, ax, colors = _figure()
    tau = np.array(summary["profile_tau"])
    drawn = False
    for i, agg in enumerate(summary["aggregates"]):
        profile = agg["profile"]
        if profile is None:
            continue
        color = colors[i % len(colors)]
        if profile["ci95"] is not None:
            lo, hi = profile["ci95"]
            ax.fill_between(tau, lo, hi, color=color, alpha=0.2, linewidth=0)
        runs = agg["n_seeds_used"] * len(agg["games"])
        label = f"{agg['label']} ({runs} scores: runs x games)"
        ax.plot(tau, profile["fraction"], color=color, linewidth=2, label=label)
        drawn = True
    _finish(ax, drawn, "human-normalised final return tau", "fraction of runs with score > tau")
    ax.set_title("Performance profiles")
    return save_png_atomic(fig, path)


def plot_sample_efficiency(summary: dict[str, Any], path: Path, smooth: float) -> Path:
    """IQM human-normalised score against agent steps per group, with its bootstrap band; PNG
    saved atomically. `smooth` (the curves' trailing window) is named on the x axis."""
    fig, ax, colors = _figure()
    drawn = False
    for i, agg in enumerate(summary["aggregates"]):
        curve = agg["sample_efficiency"]
        if curve is None:
            continue
        color = colors[i % len(colors)]
        if curve["ci95"] is not None:
            lo, hi = curve["ci95"]
            ax.fill_between(curve["steps"], lo, hi, color=color, alpha=0.2, linewidth=0)
        statistic = "IQM" if curve["statistic"] == "iqm" else "mean"
        label = f"{agg['label']} ({statistic}, {len(agg['games'])} games)"
        ax.plot(curve["steps"], curve["values"], color=color, linewidth=2, label=label)
        drawn = True
    note = f"; trailing mean over {fmt_steps(smooth)} steps" if smooth else ""
    _finish(ax, drawn, STEPS_LABEL + note, "human-normalised return, IQM across runs x games")
    ax.set_title("Sample efficiency")
    return save_png_atomic(fig, path)


def _figure() -> tuple[Any, Any, list[str]]:
    # The object API with the Agg canvas: no pyplot state, no display needed.
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 5), layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.subplots(), matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]


def _finish(ax: Any, drawn: bool, xlabel: str, ylabel: str) -> None:
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    if drawn:
        ax.legend()
    else:  # an empty picture still explains itself rather than leaving a dangling link
        ax.text(
            0.5, 0.5, "no game with human reference scores", ha="center", transform=ax.transAxes
        )
