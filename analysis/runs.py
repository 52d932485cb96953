"""Run folders as the analysis reads them: their config.yaml and their TensorBoard curves."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from agents.run_dir import CONFIG_NAME, load_run_config
from common.errors import UsageError

DEFAULT_TAG = "charts/episodic_return"


EVENT_GLOB = "events.out.tfevents.*"


MAX_TAGS_LISTED = 10


# Keys of config.yaml that do not split groups: the seed is what a group averages over, and the
# others cannot change what an agent learns or how it is scored.
NOT_GROUPED = (
    "seed",  # the seeds of one configuration are what a group's statistics run across
    "device",  # cpu or cuda: the same computation, only its speed differs
    "num_threads",  # ale-py's emulator threads: how fast the same games are stepped
    "checkpoint_freq",  # how often model files are saved: training does not read them
    "save_replay_buffer",  # whether a replay buffer is saved with them: likewise
    "config_file",  # a path; the hyperparameters it held are in `hyperparams`
    "vec_env",  # SB3 sub-envs in one process or several: the same games, stepped alike
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

    `settings` is its group key: the flattened config without NOT_GROUPED (see group_settings);
    `run_dir` its folder.
    """

    name: str
    config: RunConfig
    steps: np.ndarray
    values: np.ndarray
    settings: Mapping[str, Any] = field(default_factory=dict)
    run_dir: Path | None = None


def find_run_dirs(root: Path) -> list[Path]:
    """Folders under `root` (itself included) that hold a config.yaml, sorted."""
    return sorted(p.parent for p in root.rglob(CONFIG_NAME) if p.is_file())


def _run_config(data: Mapping[str, Any]) -> RunConfig:
    return RunConfig(*(data[k] for k in ("env", "algo", "extractor", "with_r", "seed")))


def group_settings(data: Mapping[str, Any]) -> dict[str, Any]:
    """A run's group key: its config flattened, without NOT_GROUPED, missing defaults filled.

    Keys of `hyperparams` keep their own names (a name that is also a top-level key is written
    `hyperparams.<name>`); any other nested mapping is flattened to dotted names. Keys are sorted.
    """
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
        data = load_run_config(run_dir / CONFIG_NAME)
        configs.append((run_dir, _run_config(data), group_settings(data)))
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
        runs.append(Run(name, config, steps, values, settings, run_dir))
    if not runs:
        raise UsageError(f"no run under {root} logged tag {tag!r}; {_tags_hint(all_tags)}")
    for name in empty:
        warn(f"run {name} has no points for tag {tag!r}; skipped")
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


def warn(message: str) -> None:
    """One warning line on stderr, as the analysis reports what it leaves out."""
    print(f"warning: {message}", file=sys.stderr)
