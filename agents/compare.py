"""Compare conv and CoordConv runs of one game from their TensorBoard logs.

A run is any folder under the root that holds a ``config.yaml`` (as ``agents/train.py`` writes
it: ``env``, ``algo``, ``extractor``, ``with_r``, ``seed`` and the rest of the resolved config)
next to its TensorBoard event files.

Groups: runs are grouped by their whole config except the keys in NOT_GROUPED (the seed, and
settings that cannot change what an agent learns or how it is scored). Hyperparameters are
flattened to their own names (``learning_rate``; a nested mapping as ``policy_kwargs.net_arch``;
a name that is also a top-level key keeps the prefix ``hyperparams.``); a key a run lacks is
absent from its group key, except ``vec_env``, which older runs lack and read as ``sb3``. A
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

import json
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from agents.run_dir import CONFIG_NAME
from common.errors import UsageError, check_at_least
from common.files import atomic_path, atomic_write_json, atomic_write_text

DEFAULT_TAG = "charts/episodic_return"
EVENT_GLOB = "events.out.tfevents.*"
REQUIRED_KEYS = ("env", "algo", "extractor", "with_r", "seed")
FINAL_FRACTION = 0.1
CURVE_POINTS = 100
BOOTSTRAP_REPS = 2000
BOOTSTRAP_SEED = 0
# Below 5 seeds the 25% trimmed mean drops at most one seed per side: no robust estimate.
MIN_SEEDS_FOR_IQM = 5
# Curves' trailing window in agent steps: 1% of a 10M-step run, one grid step of its curve.
DEFAULT_SMOOTH = 100_000
FRAME_SKIP = 4  # emulator frames per agent step in the suite's Atari protocol
STEPS_LABEL = f"agent steps (1 step = {FRAME_SKIP} frames)"
MAX_TAGS_LISTED = 10
EXTRACTOR_ORDER = ("conv", "coordconv", "coordconv-all")
OUTPUT_NAMES = ("comparison.md", "comparison.json", "comparison.png")
# Keys of config.yaml that do not split groups: the seed is what a group averages over, and the
# others cannot change what an agent learns or how it is scored.
NOT_GROUPED = (
    "seed",  # the seeds of one configuration are what a group's statistics run across
    "device",  # cpu or cuda: the same computation, only its speed differs
    "num_threads",  # ale-py's emulator threads: how fast the same games are stepped
    "checkpoint_freq",  # how often model files are saved: training does not read them
    "config_file",  # a path; the hyperparameters it held are in `hyperparams`
)
# Keys a group's label already shows; they are not listed again as differences.
LABEL_KEYS = ("env", "algo", "extractor", "with_r")
# Values of keys that older runs lack: runs saved before the backend was recorded used SB3's.
MISSING_DEFAULTS = {"vec_env": "sb3"}
UNSET = "(unset)"  # how a key that a group's runs lack is shown

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
    """One run's config and its merged curve for the compared tag.

    `settings` is its group key: the flattened config without NOT_GROUPED (see group_settings).
    """

    name: str
    config: RunConfig
    steps: np.ndarray
    values: np.ndarray
    settings: Mapping[str, Any] = field(default_factory=dict)


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


# ---------------------------------------------------------------------------- reading runs


def find_run_dirs(root: Path) -> list[Path]:
    """Folders under `root` (itself included) that hold a config.yaml, sorted."""
    return sorted(p.parent for p in root.rglob(CONFIG_NAME) if p.is_file())


def read_config(path: Path) -> RunConfig:
    """The identifying keys of one config.yaml; UsageError naming the file if unusable."""
    return _run_config(path, _read_mapping(path))


def _read_mapping(path: Path) -> dict[str, Any]:
    """config.yaml as a mapping; UsageError naming the file if it is not one."""
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        raise UsageError(f"cannot read {path}: {_one_line(err)}") from None
    if not isinstance(data, dict):
        raise UsageError(f"{path} is not a YAML mapping")
    return data


def _run_config(path: Path, data: Mapping[str, Any]) -> RunConfig:
    """The identifying keys of a config mapping read from `path`, checked."""
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


def group_settings(data: Mapping[str, Any]) -> dict[str, Any]:
    """A run's group key: its config flattened, without NOT_GROUPED, missing defaults filled.

    Keys of `hyperparams` keep their own names (a name that is also a top-level key is written
    `hyperparams.<name>`); any other nested mapping is flattened to dotted names. Keys are sorted.
    """
    data = {**MISSING_DEFAULTS, **data}
    flat: dict[str, Any] = {}
    for key, value in data.items():
        key = str(key)
        if key in NOT_GROUPED:
            continue
        if key == "hyperparams" and isinstance(value, Mapping):
            for name, hp in value.items():
                name = str(name)
                # A hyperparameter named like a run setting must not overwrite or merge with it.
                _flatten(f"hyperparams.{name}" if name in data else name, hp, flat)
        else:
            _flatten(key, value, flat)
    return dict(sorted(flat.items()))


def _flatten(key: str, value: Any, into: dict[str, Any]) -> None:
    """`value` under `key`, a non-empty mapping as `key.sub` entries, recursively."""
    if isinstance(value, Mapping) and value:
        for sub, inner in value.items():
            _flatten(f"{key}.{sub}", inner, into)
    else:
        into[key] = value


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
    configs = []
    for run_dir in run_dirs:
        data = _read_mapping(run_dir / CONFIG_NAME)
        configs.append((run_dir, _run_config(run_dir / CONFIG_NAME, data), group_settings(data)))
    envs = sorted({c.env for _, c, _ in configs})
    if len(envs) > 1:
        # Pooling seeds of different games would average incomparable scores.
        raise UsageError(f"runs under {root} mix games ({', '.join(envs)}); pass one game's folder")

    from tqdm import tqdm

    runs: list[Run] = []
    empty: list[str] = []
    all_tags: set[str] = set()
    # disable=None: tqdm shows the bar only on a terminal, never in logs or captured stderr.
    for run_dir, config, settings in tqdm(configs, desc="runs", disable=None if progress else True):
        segments, tags = read_event_files(run_dir, tag)
        all_tags |= tags
        points = merge_segments(segments)
        name = _run_name(root, run_dir)
        if not points:
            empty.append(name)
            continue
        steps = np.array([p.step for p in points], dtype=np.int64)
        values = np.array([p.value for p in points], dtype=np.float64)
        runs.append(Run(name, config, steps, values, settings))
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
    """Interquartile mean and its 95% stratified bootstrap interval (rliable).

    None with fewer than MIN_SEEDS_FOR_IQM samples.
    """
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


# ---------------------------------------------------------------------------- groups


def group_runs(runs: Iterable[Run]) -> dict[str, list[Run]]:
    """Runs by group label, one group per distinct `settings`, each group's runs by seed.

    Groups come in a stable order: algo, extractor (conv, coordconv, coordconv-all, others by
    name), with_r, then the values of the keys in which groups differ. Labels are those of
    `group_labels`. Raises UsageError naming the group and its runs if a seed occurs twice in it.
    """
    by_key: dict[tuple, list[Run]] = {}
    for run in runs:
        by_key.setdefault(_settings_key(run.settings), []).append(run)
    groups = list(by_key.values())
    for group in groups:
        group.sort(key=lambda r: (r.config.seed, r.name))
    differing = differing_keys([g[0].settings for g in groups])
    groups.sort(
        key=lambda g: (
            _group_order(g[0].config),
            tuple(_sort_value(g[0].settings, key) for key in differing),
        )
    )
    labels = group_labels([g[0] for g in groups])
    for label, group in zip(labels, groups, strict=True):
        _check_distinct_seeds(label, group)
    return dict(zip(labels, groups, strict=True))


def differing_keys(settings: Sequence[Mapping[str, Any]]) -> list[str]:
    """Sorted keys, other than LABEL_KEYS, whose value (or absence) is not the same in all."""
    keys = sorted(set().union(*settings) - set(LABEL_KEYS))
    return [k for k in keys if len({_hashable(s.get(k, _Absent)) for s in settings}) > 1]


def group_labels(firsts: Sequence[Run]) -> list[str]:
    """One label per group, given one run of each: `a2c conv`, with the keys that tell groups
    of the same base label apart appended, e.g. `a2c conv (learning_rate=0.001, vec_env=ale)`.
    """
    by_base: dict[str, list[int]] = {}
    for i, run in enumerate(firsts):
        by_base.setdefault(run.config.label, []).append(i)
    labels = [run.config.label for run in firsts]
    for base, members in by_base.items():
        if len(members) < 2:
            continue
        keys = differing_keys([firsts[i].settings for i in members])
        for i in members:
            labels[i] = f"{base} ({_key_values(firsts[i].settings, keys)})"
    # Distinct groups can still render alike (the string "1" and the number 1): keep labels
    # unique, since they key the groups.
    for i, label in enumerate(labels):
        if label in labels[:i]:
            labels[i] = f"{label} #{labels[: i + 1].count(label)}"
    return labels


def _check_distinct_seeds(label: str, runs: Sequence[Run]) -> None:
    """UsageError naming the group and the runs if two of `runs` (sorted by seed) share a seed."""
    seeds = [r.config.seed for r in runs]
    for seed in seeds:
        if seeds.count(seed) > 1:
            names = [r.name for r in runs if r.config.seed == seed]
            listed = ", ".join(names[:-1]) + " and " + names[-1]
            raise UsageError(
                f"group {label} has seed {seed} in {len(names)} runs: {listed}; runs of one "
                "config must have distinct seeds (move or delete the copies)"
            )


def _group_order(config: RunConfig) -> tuple:
    """conv before coordconv before coordconv-all; unknown extractors after, by name."""
    known = EXTRACTOR_ORDER.index(config.extractor) if config.extractor in EXTRACTOR_ORDER else None
    rank = (0, known, "") if known is not None else (1, 0, config.extractor)
    return (config.algo, rank, config.with_r)


class _Absent:
    """Stands for a key that a run's config lacks (None is a value a config can hold)."""


def _hashable(value: Any) -> Any:
    """A hashable stand-in for a config value; equal values (1 and 1.0) give equal ones."""
    if isinstance(value, bool):
        return ("bool", value)  # True == 1 in Python, but `true` and `1` are different settings
    if isinstance(value, float) and np.isnan(value):
        return ("nan",)  # nan != nan would put every run with a nan setting in its own group
    if isinstance(value, list | tuple):
        return ("list", tuple(_hashable(v) for v in value))
    if isinstance(value, Mapping):
        return ("map", tuple(sorted((str(k), _hashable(v)) for k, v in value.items())))
    return value


def _settings_key(settings: Mapping[str, Any]) -> tuple:
    return tuple(sorted((k, _hashable(v)) for k, v in settings.items()))


def _sort_value(settings: Mapping[str, Any], key: str) -> tuple:
    """Sort key of one setting: unset first, then numbers by value, then the rest as shown."""
    value = settings.get(key, _Absent)
    if value is _Absent:
        return (0, 0.0, "")
    if isinstance(value, int | float) and not isinstance(value, bool):
        return (1, float(value), "")
    return (2, 0.0, _render(value))


def _render(value: Any) -> str:
    """A config value as YAML would show it: strings bare, others as JSON (true, null, [1, 2])."""
    if value is _Absent:
        return UNSET
    return value if isinstance(value, str) else json.dumps(value, default=str)


def _key_values(settings: Mapping[str, Any], keys: Sequence[str]) -> str:
    """`k=v, k2=v2` for `keys`, UNSET for one that `settings` lacks."""
    return ", ".join(f"{k}={_render(settings.get(k, _Absent))}" for k in keys)


# ---------------------------------------------------------------------------- summary


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
    """One row per group: seeds, final return mean, t 95% CI, IQM [95% CI], final return per
    seed, (config: the differing keys that vary within one algo), run names; then the line
    naming the keys in which groups differ.
    """
    groups = summary["groups"]
    in_column, by_algo = _split_differences(groups, summary["differing_keys"])
    header = ["group", "seeds", "final return mean", "95% CI", "IQM [95% CI]"]
    header += ["final return per seed"] + (["config"] if in_column else []) + ["runs"]
    align = ["---", "---:", "---:", "---", "---", "---"] + (["---"] if in_column else []) + ["---"]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|"]
    for g in groups:
        ci = _fmt_interval(g["ci95"])
        if g["iqm"] is None:
            iqm = f"needs {MIN_SEEDS_FOR_IQM} seeds"
        else:
            iqm = f"{_fmt(g['iqm'])} {_fmt_interval(g['iqm_ci95'])}"
        finals = ", ".join(f"s{r['seed']} {_fmt(r['final_return'])}" for r in g["runs"])
        cells = [_escape(g["label"]), str(g["n_seeds"]), _fmt(g["mean"]), ci, iqm, finals]
        if in_column:
            cells.append(_escape(_key_values(g["config"], in_column)))
        cells.append(", ".join(_escape(r["name"]) for r in g["runs"]))
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
        values = {g["algo"]: _render(g["config"].get(key, _Absent)) for g in groups}
        per_algo.append(f"{key} ({', '.join(f'{a} {v}' for a, v in values.items())})")
    if per_algo:
        line += " Between algos only: " + "; ".join(per_algo) + "."
    return line


def markdown_report(
    summary: dict[str, Any], table: str, png_name: str, smooth: float = DEFAULT_SMOOTH
) -> str:
    """comparison.md: what was compared, how the numbers are defined, the table, the curves."""
    smoothing = (
        f"each run smoothed by a trailing mean over {_fmt_steps(smooth)} agent steps"
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


def _fmt(x: float) -> str:
    """Two decimals for game scores, significant digits for tiny values (losses, rates)."""
    return f"{x:.2f}" if abs(x) >= 0.01 or x == 0 else f"{x:.3g}"


def _fmt_interval(interval: Sequence[float] | None) -> str:
    return "-" if interval is None else f"[{_fmt(interval[0])}, {_fmt(interval[1])}]"


def _fmt_steps(steps: float) -> str:
    """100,000 for a whole number of steps, else as given."""
    return f"{int(steps):,}" if float(steps).is_integer() else f"{steps:g}"


def _escape(text: str) -> str:
    """A pipe inside a cell would split the markdown row."""
    return text.replace("|", "\\|")


# ---------------------------------------------------------------------------- curves


def smooth_curve(steps: np.ndarray, values: np.ndarray, window: float) -> np.ndarray:
    """Trailing moving average in step space: each value becomes the mean of the values whose
    step lies in (step - window, step], so points at one step all get the same value.

    `window` 0 returns the values unchanged. The result is in the order of `steps`.
    """
    values = np.asarray(values, dtype=np.float64)
    if window <= 0 or values.size == 0:
        return values.copy()
    order = np.argsort(steps, kind="stable")
    s = np.asarray(steps, dtype=np.float64)[order]
    total = np.concatenate([[0.0], np.cumsum(values[order])])
    lo = np.searchsorted(s, s - window, side="right")
    hi = np.searchsorted(s, s, side="right")
    smoothed = np.empty_like(values)
    smoothed[order] = (total[hi] - total[lo]) / (hi - lo)
    return smoothed


def seed_curves(runs: Sequence[Run], smooth: float = 0) -> tuple[np.ndarray, np.ndarray]:
    """Common step grid of a group and each run's curve on it (rows), smoothed over `smooth`
    agent steps first (`smooth_curve`).

    The grid has CURVE_POINTS steps from the group's smallest first step to its smallest last.
    """
    start = min(int(r.steps.min()) for r in runs)
    stop = min(int(r.steps.max()) for r in runs)
    grid = np.linspace(min(start, stop), stop, CURVE_POINTS)
    curves = [
        np.interp(grid, *_mean_per_step(r.steps, smooth_curve(r.steps, r.values, smooth)))
        for r in runs
    ]
    return grid, np.stack(curves)


def curve_band(
    runs: Sequence[Run], smooth: float = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Common step grid, mean curve across seeds, and t 95% band (None with one seed)."""
    grid, curves = seed_curves(runs, smooth)
    return (grid, *_mean_band(curves))


def _mean_band(curves: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """Mean over the rows and its t 95% band (None with one row)."""
    from scipy import stats

    n = curves.shape[0]
    mean = curves.mean(axis=0)
    if n < 2:
        return mean, None
    half = stats.t.ppf(0.975, n - 1) * curves.std(axis=0, ddof=1) / np.sqrt(n)
    return mean, np.stack([mean - half, mean + half])


def _mean_per_step(steps: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Strictly increasing steps for np.interp: games ending at the same step are averaged."""
    unique, inverse = np.unique(steps, return_inverse=True)
    sums = np.bincount(inverse, weights=values)
    return unique.astype(np.float64), sums / np.bincount(inverse)


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
        mean, band = _mean_band(curves)
        if len(runs) > 1:  # one seed's thin line would only repeat its mean
            for curve in curves:
                ax.plot(grid, curve, color=color, alpha=0.3, linewidth=0.7)
        if band is not None:
            ax.fill_between(grid, band[0], band[1], color=color, alpha=0.2, linewidth=0)
        seeds = f"{len(runs)} seed" + ("s" if len(runs) != 1 else "")
        ax.plot(grid, mean, color=color, linewidth=2, label=f"{label} ({seeds})")
    ax.set_title(title)
    note = f"; trailing mean over {_fmt_steps(smooth)} steps" if smooth else ""
    ax.set_xlabel(STEPS_LABEL + note)
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
