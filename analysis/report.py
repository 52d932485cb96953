"""Compare conv and CoordConv runs of one game from their TensorBoard logs.

A run is any folder under the root that holds a ``config.yaml`` (as ``agents/train.py`` writes
it: ``env``, ``algo``, ``extractor``, ``with_r``, ``seed`` and the rest of the resolved config)
next to its TensorBoard event files.

Groups: runs are grouped by their whole config except the keys in NOT_GROUPED (the seed, and
settings that cannot change what an agent learns or how it is scored). Hyperparameters are
flattened to their own names (``learning_rate``; a nested mapping as ``policy_kwargs.net_arch``;
a name that is also a top-level key keeps the prefix ``hyperparams.``); a key a run lacks is
absent from its group key (older configs are read in today's keys: agents.run_dir.upgrade_config). A
group's label is ``<algo> <extractor>[+r]``, e.g. ``a2c conv`` or ``ppo coordconv-all+r``; groups
sharing that label get the keys that tell them apart appended, e.g.
``a2c conv (learning_rate=0.001)``. The table names every key in which groups differ. Two runs
with the same seed in one group are refused (UsageError): they are copies, not seeds.

Definitions used in every output:

- Final return of a run: the mean of the tag's values whose step lies in the last 10% of that
  run's step range, i.e. steps >= last - 0.1 * (last - first). Never smoothed.
- Per group: the mean of its runs' final returns with a Student t 95% confidence interval across
  seeds (none with one seed), and for 5 seeds or more the interquartile mean (IQM) with a 95%
  stratified bootstrap percentile interval (rliable, 2000 resamples, fixed seed); with fewer
  seeds the IQM would trim at most one seed per side, so the table says it needs 5 seeds.
- Learning curves: each run's points are first smoothed by a trailing moving average over
  ``smooth`` agent steps (each point becomes the mean of the run's points in
  (step - smooth, step]; 0 turns it off), then linearly interpolated onto 100 evenly spaced
  steps, from the group's smallest first step to its smallest last step; the plot shows each
  seed thin, the mean bold and the t 95% band across seeds. Steps are agent steps: with the
  suite's frame skip of 4, one step is 4 emulator frames.

Event files: every ``events.out.tfevents.*`` in a run folder is read. A resumed run adds a file
that continues the same step axis; a file that starts after the earlier ones stopped writing
replaces their points from its first step on (what a crashed session logged past its last
checkpoint), and where a step occurs in several files the point written last is kept. Points
within one file are all kept: several games can end at the same step. Non-finite values
(TensorBoard's NaN before the first game ends) are dropped.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from analysis.groups import LABEL_KEYS, Absent, differing_keys, group_runs, key_values, render_value
from analysis.reliance import RELIANCE_COLUMN, group_reliance, read_reliance, reliance_cell
from analysis.runs import DEFAULT_TAG, NOT_GROUPED, Run, load_runs
from analysis.stats import (
    BOOTSTRAP_REPS,
    BOOTSTRAP_SEED,
    FINAL_FRACTION,
    MIN_SEEDS_FOR_IQM,
    final_return,
    iqm_interval,
    mean_band,
    seed_curves,
    t_interval,
)
from common.errors import UsageError, check_at_least
from common.files import atomic_path, atomic_write_json, atomic_write_text

# Curves' trailing window in agent steps: 1% of a 10M-step run, one grid step of its curve.
DEFAULT_SMOOTH = 100_000


FRAME_SKIP = 4  # emulator frames per agent step in the suite's Atari protocol


STEPS_LABEL = f"agent steps (1 step = {FRAME_SKIP} frames)"


OUTPUT_NAMES = ("comparison.md", "comparison.json", "comparison.png")


FINAL_RETURN_DEFINITION = (
    f"the mean of the tag's values whose step lies in the last {FINAL_FRACTION:.0%} of the "
    f"run's step range (steps >= last - {FINAL_FRACTION} * (last - first))"
)


@dataclass(frozen=True)
class Comparison:
    """What `compare_runs` produced: the JSON summary, the markdown table, the files written."""

    summary: dict[str, Any]
    table: str
    files: tuple[Path, ...]


def compare_runs(
    root: str | os.PathLike,
    out: str | os.PathLike | None = None,
    tag: str = DEFAULT_TAG,
    progress: bool = True,
    smooth: float = DEFAULT_SMOOTH,
) -> Comparison:
    """Compare the runs under `root` on `tag`; write comparison.{md,json,png} into `out`.

    `out` defaults to `root/comparison`. `smooth` is the curves' trailing window in agent steps
    (0: none); it changes the PNG only, never a number of the table or the JSON. Raises
    UsageError, before any output folder is made, for a missing root, no runs, a bad
    config.yaml, a tag that no run logged, two runs with the same seed in one group, or a
    negative `smooth`. Runs without points for the tag are skipped with a warning on stderr.
    """
    check_at_least("--smooth", smooth, 0)
    root = Path(root)
    if not root.is_dir():
        raise UsageError(f"run root {str(root)!r} does not exist or is not a folder")
    out_dir = Path(out) if out is not None else root / "comparison"
    runs = load_runs(root, tag, progress)
    groups = group_runs(runs)
    summary = summarize(root, tag, groups)
    table = markdown_table(summary)
    out_dir.mkdir(parents=True, exist_ok=True)
    md_name, json_name, png_name = OUTPUT_NAMES
    title = f"{root.resolve().name}: {tag}"
    png = plot_curves(groups, title, tag, out_dir / png_name, smooth=smooth)
    report = markdown_report(summary, table, png_name, smooth=smooth)
    md = atomic_write_text(out_dir / md_name, report)
    js = atomic_write_json(out_dir / json_name, summary)
    return Comparison(summary=summary, table=table, files=(md, js, png))


def summarize(root: Path, tag: str, groups: dict[str, list[Run]]) -> dict[str, Any]:
    """The numbers of comparison.json: the keys in which groups differ, and per group its
    config, seeds, mean, t CI, IQM and per-run finals.
    """
    env = next(iter(groups.values()))[0].config.env
    differing = differing_keys([runs[0].settings for runs in groups.values()])
    return {
        "tag": tag,
        "root": str(root),
        "env": env,
        "final_return": FINAL_RETURN_DEFINITION,
        "not_grouped": list(NOT_GROUPED),
        "differing_keys": differing,
        "groups": [_group_summary(label, runs, differing) for label, runs in groups.items()],
    }


def _group_summary(label: str, runs: list[Run], differing: Sequence[str]) -> dict[str, Any]:
    """One group's entry of comparison.json; `distinguishing` omits keys the group lacks."""
    finals = [final_return(r.steps, r.values) for r in runs]
    ci = t_interval(finals)
    iqm = iqm_interval(finals)
    config = runs[0].config
    settings = dict(runs[0].settings)
    return {
        "label": label,
        "algo": config.algo,
        "extractor": config.extractor,
        "with_r": config.with_r,
        "distinguishing": {k: settings[k] for k in differing if k in settings},
        "config": settings,
        "n_seeds": len(runs),
        "mean": float(np.mean(finals)),
        "ci95": list(ci) if ci is not None else None,
        "iqm": iqm[0] if iqm is not None else None,
        "iqm_ci95": list(iqm[1]) if iqm is not None else None,
        "reliance": group_reliance(
            [read_reliance(r.run_dir) if r.run_dir is not None else None for r in runs]
        ),
        "runs": [
            {
                "name": r.name,
                "seed": r.config.seed,
                "final_return": final,
                "n_points": int(r.steps.size),
                "last_step": int(r.steps.max()),
            }
            for r, final in zip(runs, finals, strict=True)
        ],
    }


def markdown_table(summary: dict[str, Any]) -> str:
    """One row per group: seeds, final return mean, t 95% CI, IQM [95% CI], final return per
    seed, (config: the differing keys that vary within one algo), run names; then the line
    naming the keys in which groups differ.
    """
    groups = summary["groups"]
    in_column, by_algo = _split_differences(groups, summary["differing_keys"])
    reliance = any(g.get("reliance") for g in groups)
    header = ["group", "seeds", "final return mean", "95% CI", "IQM [95% CI]"]
    header += ["final return per seed"] + (["config"] if in_column else [])
    header += ([RELIANCE_COLUMN] if reliance else []) + ["runs"]
    align = ["---", "---:", "---:", "---", "---", "---"] + (["---"] if in_column else [])
    align += (["---"] if reliance else []) + ["---"]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|"]
    for g in groups:
        ci = fmt_interval(g["ci95"])
        if g["iqm"] is None:
            iqm = f"needs {MIN_SEEDS_FOR_IQM} seeds"
        else:
            iqm = f"{fmt_number(g['iqm'])} {fmt_interval(g['iqm_ci95'])}"
        finals = ", ".join(f"s{r['seed']} {fmt_number(r['final_return'])}" for r in g["runs"])
        cells = [escape_cell(g["label"]), str(g["n_seeds"]), fmt_number(g["mean"]), ci, iqm, finals]
        if in_column:
            cells.append(escape_cell(key_values(g["config"], in_column)))
        if reliance:
            cells.append(reliance_cell(g.get("reliance")))
        cells.append(", ".join(escape_cell(r["name"]) for r in g["runs"]))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n\n" + _differences_line(summary["differing_keys"], by_algo, groups)


def _split_differences(
    groups: Sequence[dict[str, Any]], differing: Sequence[str]
) -> tuple[list[str], list[str]]:
    """Differing keys that vary among one algo's groups (shown per group), and those that only
    vary between algos (shown per algo: each algo's own defaults file sets many of them).
    """
    by_algo: dict[str, list[Mapping[str, Any]]] = {}
    for g in groups:
        by_algo.setdefault(g["algo"], []).append(g["config"])
    within = {k for configs in by_algo.values() for k in differing_keys(configs)}
    return [k for k in differing if k in within], [k for k in differing if k not in within]


def _differences_line(
    differing: Sequence[str], by_algo: Sequence[str], groups: Sequence[dict[str, Any]]
) -> str:
    """`Groups differ in: ...`, with each algo's value of the keys that differ only by algo."""
    if not differing:
        return "Groups differ only in " + ", ".join(LABEL_KEYS[1:]) + "."
    line = f"Groups differ in: {', '.join(differing)}."
    per_algo = []
    for key in by_algo:
        values = {g["algo"]: render_value(g["config"].get(key, Absent)) for g in groups}
        per_algo.append(f"{key} ({', '.join(f'{a} {v}' for a, v in values.items())})")
    if per_algo:
        line += " Between algos only: " + "; ".join(per_algo) + "."
    return line


def markdown_report(
    summary: dict[str, Any], table: str, png_name: str, smooth: float = DEFAULT_SMOOTH
) -> str:
    """comparison.md: what was compared, how the numbers are defined, the table, the curves."""
    smoothing = (
        f"each run smoothed by a trailing mean over {fmt_steps(smooth)} agent steps"
        if smooth
        else "not smoothed"
    )
    return (
        f"# Conv vs CoordConv: {summary['env']}\n\n"
        f"Runs under `{summary['root']}`, TensorBoard tag `{summary['tag']}`, grouped by their "
        f"whole config except {', '.join(NOT_GROUPED)}.\n\n"
        f"Final return of a run: {FINAL_RETURN_DEFINITION}. "
        'The 95% CI is Student t across seeds ("-" with one seed); the IQM (interquartile mean '
        f"across seeds, {MIN_SEEDS_FOR_IQM} seeds or more) has a 95% stratified bootstrap CI "
        f"(rliable, {BOOTSTRAP_REPS} resamples, seed {BOOTSTRAP_SEED}).\n\n"
        f"{table}\n\n"
        f"Curves: each seed thin, the mean across seeds bold with its t 95% band; {smoothing} "
        "(the table's numbers never are). Steps are agent steps: 1 step = "
        f"{FRAME_SKIP} frames.\n\n"
        f"![learning curves, mean and t 95% band across seeds]({png_name})\n"
    )


def fmt_number(x: float) -> str:
    """Two decimals for game scores, significant digits for tiny values (losses, rates)."""
    return f"{x:.2f}" if abs(x) >= 0.01 or x == 0 else f"{x:.3g}"


def fmt_interval(interval: Sequence[float] | None) -> str:
    """`[lo, hi]` with `fmt_number`, "-" for no interval."""
    return "-" if interval is None else f"[{fmt_number(interval[0])}, {fmt_number(interval[1])}]"


def fmt_steps(steps: float) -> str:
    """100,000 for a whole number of steps, else as given."""
    return f"{int(steps):,}" if float(steps).is_integer() else f"{steps:g}"


def escape_cell(text: str) -> str:
    """A pipe inside a cell would split the markdown row."""
    return text.replace("|", "\\|")


def plot_curves(
    groups: dict[str, list[Run]], title: str, ylabel: str, path: Path, smooth: float = 0
) -> Path:
    """Per group: each seed's curve thin, the mean bold over its t 95% band, in one colour;
    runs smoothed over `smooth` agent steps. Saved as a PNG at `path` atomically.
    """
    # The object API with the Agg canvas: no pyplot state, no display needed.
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 5), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    colors = matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (label, runs) in enumerate(groups.items()):
        color = colors[i % len(colors)]
        grid, curves = seed_curves(runs, smooth)
        mean, band = mean_band(curves)
        if len(runs) > 1:  # one seed's thin line would only repeat its mean
            for curve in curves:
                ax.plot(grid, curve, color=color, alpha=0.3, linewidth=0.7)
        if band is not None:
            ax.fill_between(grid, band[0], band[1], color=color, alpha=0.2, linewidth=0)
        seeds = f"{len(runs)} seed" + ("s" if len(runs) != 1 else "")
        ax.plot(grid, mean, color=color, linewidth=2, label=f"{label} ({seeds})")
    ax.set_title(title)
    note = f"; trailing mean over {fmt_steps(smooth)} steps" if smooth else ""
    ax.set_xlabel(STEPS_LABEL + note)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend()
    return save_png_atomic(fig, path)


def save_png_atomic(fig: Any, path: Path) -> Path:
    """Save under a temporary name in the same folder, then rename: never a half-written PNG."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    return path
