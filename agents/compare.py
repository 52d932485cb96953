"""Compare conv and CoordConv runs of one game from their TensorBoard logs.

A run is any folder under the root that holds a ``config.yaml`` (keys ``env``, ``algo``,
``extractor``, ``with_r``, ``seed``) next to its TensorBoard event files. Runs are grouped by
(algo, extractor, with_r), labelled e.g. ``a2c conv`` or ``ppo coordconv-all+r``.

Definitions used in every output:

- Final return of a run: the mean of the tag's values whose step lies in the last 10% of that
  run's step range, i.e. steps >= last - 0.1 * (last - first).
- Per group: the mean of its runs' final returns with a Student t 95% confidence interval across
  seeds (none with one seed), and for 3 seeds or more the interquartile mean (IQM) with a 95%
  stratified bootstrap percentile interval (rliable, 2000 resamples, fixed seed).
- Learning curves: each run is linearly interpolated onto 100 evenly spaced steps, from the
  group's smallest first step to its smallest last step; the band is the t 95% interval across
  seeds.

Event files: every ``events.out.tfevents.*`` in a run folder is read. A resumed run adds a file
that continues the same step axis; a file that starts after the earlier ones stopped writing
replaces their points from its first step on (what a crashed session logged past its last
checkpoint), and where a step occurs in several files the point written last is kept. Points
within one file are all kept: several games can end at the same step. Non-finite values
(TensorBoard's NaN before the first game ends) are dropped.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from agents.run_dir import CONFIG_NAME
from common.errors import UsageError
from common.files import atomic_path, atomic_write_json, atomic_write_text

DEFAULT_TAG = "charts/episodic_return"
EVENT_GLOB = "events.out.tfevents.*"
REQUIRED_KEYS = ("env", "algo", "extractor", "with_r", "seed")
FINAL_FRACTION = 0.1
CURVE_POINTS = 100
BOOTSTRAP_REPS = 2000
BOOTSTRAP_SEED = 0
MIN_SEEDS_FOR_IQM = 3
MAX_TAGS_LISTED = 10
EXTRACTOR_ORDER = ("conv", "coordconv", "coordconv-all")
OUTPUT_NAMES = ("comparison.md", "comparison.json", "comparison.png")

FINAL_RETURN_DEFINITION = (
    f"the mean of the tag's values whose step lies in the last {FINAL_FRACTION:.0%} of the "
    f"run's step range (steps >= last - {FINAL_FRACTION} * (last - first))"
)


@dataclass(frozen=True)
class RunConfig:
    """The keys of a run's config.yaml that identify its game, method and seed."""

    env: str
    algo: str
    extractor: str
    with_r: bool
    seed: int

    @property
    def label(self) -> str:
        """Group label, e.g. `a2c coordconv` or `ppo coordconv-all+r`."""
        return f"{self.algo} {self.extractor}" + ("+r" if self.with_r else "")


@dataclass(frozen=True)
class Point:
    """One scalar as TensorBoard stored it."""

    wall_time: float
    step: int
    value: float


@dataclass(frozen=True)
class Run:
    """One run's config and its merged curve for the compared tag."""

    name: str
    config: RunConfig
    steps: np.ndarray
    values: np.ndarray


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
) -> Comparison:
    """Compare the runs under `root` on `tag`; write comparison.{md,json,png} into `out`.

    `out` defaults to `root/comparison`. Raises UsageError for a missing root, no runs, a bad
    config.yaml, or a tag that no run logged. Runs without points for the tag are skipped with a
    warning on stderr.
    """
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
    png = plot_curves(groups, f"{root.resolve().name}: {tag}", tag, out_dir / png_name)
    md = atomic_write_text(out_dir / md_name, markdown_report(summary, table, png_name))
    js = atomic_write_json(out_dir / json_name, summary)
    return Comparison(summary=summary, table=table, files=(md, js, png))


# ---------------------------------------------------------------------------- reading runs


def find_run_dirs(root: Path) -> list[Path]:
    """Folders under `root` (itself included) that hold a config.yaml, sorted."""
    return sorted(p.parent for p in root.rglob(CONFIG_NAME) if p.is_file())


def read_config(path: Path) -> RunConfig:
    """The identifying keys of one config.yaml; UsageError naming the file if unusable."""
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        raise UsageError(f"cannot read {path}: {_one_line(err)}") from None
    if not isinstance(data, dict):
        raise UsageError(f"{path} is not a YAML mapping")
    missing = [k for k in REQUIRED_KEYS if k not in data]
    if missing:
        keys = ", ".join(repr(k) for k in missing)
        raise UsageError(f"{path} lacks required key(s) {keys}")
    for key in ("env", "algo", "extractor"):
        if not isinstance(data[key], str) or not data[key]:
            raise UsageError(f"{path}: key {key!r} must be a non-empty string, got {data[key]!r}")
    if not isinstance(data["with_r"], bool):
        raise UsageError(f"{path}: key 'with_r' must be true or false, got {data['with_r']!r}")
    # bool is an int subclass, and `seed: true` is a typo, not seed 1.
    if not isinstance(data["seed"], int) or isinstance(data["seed"], bool):
        raise UsageError(f"{path}: key 'seed' must be an integer, got {data['seed']!r}")
    return RunConfig(
        env=data["env"],
        algo=data["algo"],
        extractor=data["extractor"],
        with_r=data["with_r"],
        seed=data["seed"],
    )


def read_event_files(run_dir: Path, tag: str) -> tuple[list[list[Point]], set[str]]:
    """Per event file in `run_dir`, its points for `tag`; plus every scalar tag seen."""
    # Imported here so that `--help` and input errors do not pay for TensorBoard's import.
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    segments: list[list[Point]] = []
    tags: set[str] = set()
    for path in sorted(run_dir.glob(EVENT_GLOB)):
        if not path.is_file():
            continue
        acc = EventAccumulator(str(path), size_guidance={"scalars": 0})
        acc.Reload()
        file_tags = acc.Tags().get("scalars", [])
        tags.update(file_tags)
        if tag in file_tags:
            segments.append(
                [Point(e.wall_time, int(e.step), float(e.value)) for e in acc.Scalars(tag)]
            )
    return segments, tags


def merge_segments(segments: Iterable[Sequence[Point]]) -> list[Point]:
    """One curve from the points of several event files of one run, sorted by step.

    Files are taken in the order they began writing. A file that began after all earlier
    points were written is a resumed session: it replaces the earlier points from its first
    step on. A step found in several files keeps the point written last. Within one file every
    point is kept, and non-finite values are dropped.
    """
    finite = [[p for p in s if np.isfinite(p.value)] for s in segments]
    ordered = sorted((s for s in finite if s), key=lambda s: min(p.wall_time for p in s))
    kept: list[tuple[int, Point]] = []
    for i, segment in enumerate(ordered):
        # A session that starts after the earlier ones stopped resumed from a checkpoint:
        # what they logged from its first step on was trained over again, so it is stale.
        if kept and min(p.wall_time for p in segment) >= max(p.wall_time for _, p in kept):
            first_step = min(p.step for p in segment)
            kept = [(j, p) for j, p in kept if p.step < first_step]
        kept.extend((i, p) for p in segment)
    # Overlapping writers: a step logged by several files is kept from the one that wrote last.
    writer: dict[int, tuple[float, int]] = {}
    for i, p in kept:
        writer[p.step] = max(writer.get(p.step, (p.wall_time, i)), (p.wall_time, i))
    return sorted((p for i, p in kept if writer[p.step][1] == i), key=lambda p: p.step)


def load_runs(root: Path, tag: str, progress: bool = True) -> list[Run]:
    """Every run under `root` that has points for `tag`; UsageError if there is none."""
    run_dirs = find_run_dirs(root)
    if not run_dirs:
        raise UsageError(f"no run folders (with a {CONFIG_NAME}) under {root}")
    configs = [(d, read_config(d / CONFIG_NAME)) for d in run_dirs]
    envs = sorted({c.env for _, c in configs})
    if len(envs) > 1:
        # Pooling seeds of different games would average incomparable scores.
        raise UsageError(f"runs under {root} mix games ({', '.join(envs)}); pass one game's folder")

    from tqdm import tqdm

    runs: list[Run] = []
    empty: list[str] = []
    all_tags: set[str] = set()
    # disable=None: tqdm shows the bar only on a terminal, never in logs or captured stderr.
    for run_dir, config in tqdm(configs, desc="runs", disable=None if progress else True):
        segments, tags = read_event_files(run_dir, tag)
        all_tags |= tags
        points = merge_segments(segments)
        name = _run_name(root, run_dir)
        if not points:
            empty.append(name)
            continue
        steps = np.array([p.step for p in points], dtype=np.int64)
        values = np.array([p.value for p in points], dtype=np.float64)
        runs.append(Run(name=name, config=config, steps=steps, values=values))
    if not runs:
        raise UsageError(f"no run under {root} logged tag {tag!r}; {_tags_hint(all_tags)}")
    for name in empty:
        _warn(f"run {name} has no points for tag {tag!r}; skipped")
    return runs


def _run_name(root: Path, run_dir: Path) -> str:
    """The run's path relative to the root (the root's own name if it is the run)."""
    rel = run_dir.relative_to(root).as_posix()
    return root.resolve().name if rel == "." else rel


def _tags_hint(tags: set[str]) -> str:
    """One phrase listing up to MAX_TAGS_LISTED scalar tags that do exist."""
    if not tags:
        return "no scalar tags found (no event files?)"
    listed = sorted(tags)
    more = f", ... ({len(listed) - MAX_TAGS_LISTED} more)" if len(listed) > MAX_TAGS_LISTED else ""
    return "scalar tags found: " + ", ".join(listed[:MAX_TAGS_LISTED]) + more


# ---------------------------------------------------------------------------- statistics


def final_return(steps: np.ndarray, values: np.ndarray, fraction: float = FINAL_FRACTION) -> float:
    """Mean of the values whose step lies in the last `fraction` of the step range."""
    first, last = float(np.min(steps)), float(np.max(steps))
    keep = steps >= last - fraction * (last - first)
    return float(np.mean(values[keep]))


def t_interval(samples: Sequence[float], confidence: float = 0.95) -> tuple[float, float] | None:
    """Student t confidence interval of the mean; None with fewer than two samples."""
    from scipy import stats

    x = np.asarray(samples, dtype=np.float64)
    if x.size < 2:
        return None
    half = stats.t.ppf(0.5 + confidence / 2, x.size - 1) * x.std(ddof=1) / np.sqrt(x.size)
    return float(x.mean() - half), float(x.mean() + half)


def iqm_interval(
    samples: Sequence[float], seed: int = BOOTSTRAP_SEED, reps: int = BOOTSTRAP_REPS
) -> tuple[float, tuple[float, float]] | None:
    """Interquartile mean and its 95% stratified bootstrap interval (rliable); None below 3."""
    x = np.asarray(samples, dtype=np.float64)
    if x.size < MIN_SEEDS_FOR_IQM:
        return None
    from rliable import library as rly
    from rliable import metrics

    # rliable 1.2 resamples with NumPy's global RNG (its random_state argument does not reach
    # the resampling), so seed that for a reproducible interval and leave it as it was.
    saved = np.random.get_state()
    np.random.seed(seed)
    try:
        points, intervals = rly.get_interval_estimates(
            {"iqm": x[:, None]},
            lambda scores: np.array([metrics.aggregate_iqm(scores)]),
            reps=reps,
        )
    finally:
        np.random.set_state(saved)
    lo, hi = intervals["iqm"][:, 0]
    return float(points["iqm"][0]), (float(lo), float(hi))


def group_runs(runs: Iterable[Run]) -> dict[str, list[Run]]:
    """Runs by group label, groups in a stable order (algo, extractor, with_r), runs by seed."""
    by_label: dict[str, list[Run]] = {}
    for run in runs:
        by_label.setdefault(run.config.label, []).append(run)
    for label, members in by_label.items():
        members.sort(key=lambda r: (r.config.seed, r.name))
        seeds = [r.config.seed for r in members]
        for seed in sorted({s for s in seeds if seeds.count(s) > 1}):
            names = ", ".join(r.name for r in members if r.config.seed == seed)
            _warn(f"group {label} has seed {seed} more than once ({names}); all are counted")
    return dict(sorted(by_label.items(), key=lambda item: _group_order(item[1][0].config)))


def _group_order(config: RunConfig) -> tuple:
    """conv before coordconv before coordconv-all; unknown extractors after, by name."""
    known = EXTRACTOR_ORDER.index(config.extractor) if config.extractor in EXTRACTOR_ORDER else None
    rank = (0, known, "") if known is not None else (1, 0, config.extractor)
    return (config.algo, rank, config.with_r)


def summarize(root: Path, tag: str, groups: dict[str, list[Run]]) -> dict[str, Any]:
    """The numbers of comparison.json: per group, seeds, mean, t CI, IQM and per-run finals."""
    env = next(iter(groups.values()))[0].config.env
    return {
        "tag": tag,
        "root": str(root),
        "env": env,
        "final_return": FINAL_RETURN_DEFINITION,
        "groups": [_group_summary(label, runs) for label, runs in groups.items()],
    }


def _group_summary(label: str, runs: list[Run]) -> dict[str, Any]:
    """One group's entry of comparison.json."""
    finals = [final_return(r.steps, r.values) for r in runs]
    ci = t_interval(finals)
    iqm = iqm_interval(finals)
    config = runs[0].config
    return {
        "label": label,
        "algo": config.algo,
        "extractor": config.extractor,
        "with_r": config.with_r,
        "n_seeds": len(runs),
        "mean": float(np.mean(finals)),
        "ci95": list(ci) if ci is not None else None,
        "iqm": iqm[0] if iqm is not None else None,
        "iqm_ci95": list(iqm[1]) if iqm is not None else None,
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


# ---------------------------------------------------------------------------- reports


def markdown_table(summary: dict[str, Any]) -> str:
    """One row per group: seeds, final return mean, t 95% CI, IQM [95% CI], run names."""
    lines = [
        "| group | seeds | final return mean | 95% CI | IQM [95% CI] | runs |",
        "|---|---:|---:|---|---|---|",
    ]
    for g in summary["groups"]:
        ci = _fmt_interval(g["ci95"])
        iqm = "-" if g["iqm"] is None else f"{_fmt(g['iqm'])} {_fmt_interval(g['iqm_ci95'])}"
        runs = ", ".join(_escape(r["name"]) for r in g["runs"])
        cells = [_escape(g["label"]), str(g["n_seeds"]), _fmt(g["mean"]), ci, iqm, runs]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def markdown_report(summary: dict[str, Any], table: str, png_name: str) -> str:
    """comparison.md: what was compared, how the numbers are defined, the table, the curves."""
    return (
        f"# Conv vs CoordConv: {summary['env']}\n\n"
        f"Runs under `{summary['root']}`, TensorBoard tag `{summary['tag']}`.\n\n"
        f"Final return of a run: {FINAL_RETURN_DEFINITION}. "
        'The 95% CI is Student t across seeds ("-" with one seed); the IQM (interquartile mean '
        f"across seeds, {MIN_SEEDS_FOR_IQM} seeds or more) has a 95% stratified bootstrap CI "
        f"(rliable, {BOOTSTRAP_REPS} resamples, seed {BOOTSTRAP_SEED}).\n\n"
        f"{table}\n\n"
        f"![learning curves, mean and t 95% band across seeds]({png_name})\n"
    )


def _fmt(x: float) -> str:
    """Two decimals for game scores, significant digits for tiny values (losses, rates)."""
    return f"{x:.2f}" if abs(x) >= 0.01 or x == 0 else f"{x:.3g}"


def _fmt_interval(interval: Sequence[float] | None) -> str:
    return "-" if interval is None else f"[{_fmt(interval[0])}, {_fmt(interval[1])}]"


def _escape(text: str) -> str:
    """A pipe inside a cell would split the markdown row."""
    return text.replace("|", "\\|")


# ---------------------------------------------------------------------------- curves


def curve_band(runs: Sequence[Run]) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Common step grid, mean curve across seeds, and t 95% band (None with one seed)."""
    from scipy import stats

    start = min(int(r.steps.min()) for r in runs)
    stop = min(int(r.steps.max()) for r in runs)
    grid = np.linspace(min(start, stop), stop, CURVE_POINTS)
    curves = np.stack([np.interp(grid, *_mean_per_step(r)) for r in runs])
    mean = curves.mean(axis=0)
    if len(runs) < 2:
        return grid, mean, None
    half = stats.t.ppf(0.975, len(runs) - 1) * curves.std(axis=0, ddof=1) / np.sqrt(len(runs))
    return grid, mean, np.stack([mean - half, mean + half])


def _mean_per_step(run: Run) -> tuple[np.ndarray, np.ndarray]:
    """Strictly increasing steps for np.interp: games ending at the same step are averaged."""
    steps, inverse = np.unique(run.steps, return_inverse=True)
    sums = np.bincount(inverse, weights=run.values)
    return steps.astype(np.float64), sums / np.bincount(inverse)


def plot_curves(groups: dict[str, list[Run]], title: str, ylabel: str, path: Path) -> Path:
    """Mean learning curve and t 95% band per group, saved as a PNG at `path` atomically."""
    # The object API with the Agg canvas: no pyplot state, no display needed.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 5), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    for label, runs in groups.items():
        grid, mean, band = curve_band(runs)
        seeds = f"{len(runs)} seed" + ("s" if len(runs) != 1 else "")
        (line,) = ax.plot(grid, mean, label=f"{label} ({seeds})")
        if band is not None:
            ax.fill_between(grid, band[0], band[1], color=line.get_color(), alpha=0.2)
    ax.set_title(title)
    ax.set_xlabel("environment steps")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend()
    return _save_png_atomic(fig, path)


def _save_png_atomic(fig: Any, path: Path) -> Path:
    """Save under a temporary name in the same folder, then rename: never a half-written PNG."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    return path


# ---------------------------------------------------------------------------- helpers


def _warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


def _one_line(err: BaseException) -> str:
    """Error text on one line (YAML errors span several)."""
    return " ".join(str(err).split())
