"""One report across the games of a study: study.md, study.json and pictures, from the run
folders alone.

The parts, one module each: the game folders and how they are read (analysis.study_read), the
reference scores (analysis.reference_scores), the aggregates across games (analysis.aggregate),
where the runs stand (analysis.run_progress), study.md (analysis.study_render) and the pictures
across games (analysis.study_plots). This module makes the per-game numbers and writes the
report.

Per game: the runs are read and grouped as ``compare_runs`` does (``load_runs``, ``group_runs``,
``summarize``: one implementation of each), and each group's final return (mean, Student t 95% CI,
per seed) stands beside RL Zoo's published score for that game and algo and its human-normalised
score: (score - random) / (human - random) with HUMAN_REFERENCE's per-game random and human
scores; games without reference scores are reported raw and left out of the normalised
aggregates. Notes name what is missing or partial: seeds other groups have, games without a conv
baseline, unfinished runs, final returns from fewer than MIN_FINAL_GAMES games, runs too short
to compare with RL Zoo.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from analysis.aggregate import (
    Kind,
    aggregate_kinds,
    baseline_of,
    improvement,
    is_baseline,
    study_kinds,
)
from analysis.reference_scores import (
    HUMAN_NORMALISED,
    HUMAN_REFERENCE_SOURCE,
    RL_ZOO_SOURCE,
    RL_ZOO_STEPS,
    has_published_scores,
    human_normalised,
    human_reference,
    published_score,
)
from analysis.report import (
    DEFAULT_SMOOTH,
    FINAL_RETURN_DEFINITION,
    FRAME_SKIP,
    fmt_steps,
    plot_curves,
    summarize,
)
from analysis.run_progress import run_progress
from analysis.runs import DEFAULT_TAG, Run
from analysis.stats import BOOTSTRAP_REPS, BOOTSTRAP_SEED, FINAL_FRACTION, final_window
from analysis.study_plots import plot_profiles, plot_sample_efficiency
from analysis.study_read import GameFolders, read_games, study_devices
from analysis.study_render import OUTPUT_NAMES, markdown_report, markdown_tables
from common.errors import UsageError, check_at_least
from common.files import atomic_write_json, atomic_write_text

# Fewer games than this in a run's final window make its final return one or two games' luck.
MIN_FINAL_GAMES = 3


# A run is unfinished if it stopped more than the final window short of where it should end:
# then its final window does not even overlap the others'.
UNFINISHED_FRACTION = 1 - FINAL_FRACTION


@dataclass(frozen=True)
class StudyReport:
    """What `study_report` produced: the JSON summary, the markdown tables, the files written."""

    summary: dict[str, Any]
    table: str
    files: tuple[Path, ...]


def study_report(
    logdir: str | os.PathLike,
    out: str | os.PathLike | None = None,
    tag: str = DEFAULT_TAG,
    progress: bool = True,
    smooth: float = DEFAULT_SMOOTH,
    reps: int = BOOTSTRAP_REPS,
    planned: Mapping[Path, int] | None = None,
) -> StudyReport:
    """Report on every game under `logdir` (LOGDIR/<Game>/<run>/) on `tag`; write study.md,
    study.json, study_profiles.png, study_sample_efficiency.png and curves_<Game>.png into `out`.

    `out` defaults to `logdir/report`. `smooth` is the curves' trailing window in agent steps (0:
    none): it changes the pictures and the sample-efficiency numbers, never a final return.
    `reps` is the number of bootstrap resamples. `planned` maps each run folder the study
    plans to its total agent steps: then the "Runs" table counts the runs still to do (see
    `run_progress`). A partial study (unfinished or missing runs,
    games without a baseline) gives a report that says what is missing. Raises UsageError,
    before any output folder is made, for a missing `logdir`, one without runs, run folders
    directly under it, two game folders of one game, or two runs with one seed in a group.
    """
    check_at_least("--smooth", smooth, 0)
    check_at_least("--reps", reps, 1)
    logdir = Path(logdir)
    if not logdir.is_dir():
        raise UsageError(f"study folder {str(logdir)!r} does not exist or is not a folder")
    out_dir = Path(out) if out is not None else logdir / "report"
    games, skipped = read_games(logdir, out_dir, tag, progress)
    summary = _summarize_study(logdir, tag, games, skipped, smooth, reps)
    summary["runs"] = run_progress(logdir, planned, exclude=out_dir)
    table = markdown_tables(summary)
    out_dir.mkdir(parents=True, exist_ok=True)
    md_name, json_name, profiles_name, efficiency_name = OUTPUT_NAMES
    pngs = [
        plot_profiles(summary, out_dir / profiles_name),
        plot_sample_efficiency(summary, out_dir / efficiency_name, smooth),
    ]
    for game in summary["games"]:
        pngs.append(
            plot_curves(
                games[game["env"]][1],
                f"{game['env']}: {tag}",
                tag,
                out_dir / game["curves_png"],
                smooth=smooth,
            )
        )
    report = markdown_report(summary, table, smooth)
    md = atomic_write_text(out_dir / md_name, report)
    js = atomic_write_json(out_dir / json_name, summary)
    return StudyReport(summary=summary, table=table, files=(md, js, *pngs))


def _summarize_study(
    logdir: Path,
    tag: str,
    games: GameFolders,
    skipped: Sequence[dict[str, str]],
    smooth: float,
    reps: int,
) -> dict[str, Any]:
    """The numbers of study.json."""
    kinds = study_kinds({env: groups for env, (_, groups) in games.items()})
    baselines = {id(k): baseline_of(k, kinds) for k in kinds}
    game_entries = []
    for folder, groups in games.values():
        entry = summarize(folder, tag, groups)
        _add_game_details(entry, groups, kinds, baselines)
        game_entries.append(entry)
    aggregates = aggregate_kinds(kinds, smooth, reps)
    improvements = [
        improvement(k, baselines[id(k)], reps) for k in kinds if baselines[id(k)] is not None
    ]
    no_baseline = [k.label for k in kinds if baselines[id(k)] is None and not is_baseline(k.first)]
    without_reference = [env for env in games if human_reference(env) is None]
    notes = []
    if without_reference:
        notes.append(
            f"no human reference scores for {', '.join(without_reference)}: reported raw, left "
            "out of the human-normalised aggregates"
        )
    for label in no_baseline:
        notes.append(f"no conv baseline for {label} in any game: no probability of improvement")
    for entry in skipped:
        notes.append(f"game folder {entry['folder']} left out: {entry['reason']}")
    summary = {
        "tag": tag,
        "logdir": str(logdir),
        "final_return": FINAL_RETURN_DEFINITION,
        "human_normalised": HUMAN_NORMALISED,
        "human_reference_source": HUMAN_REFERENCE_SOURCE,
        "human_reference": {
            env: dict(zip(("random", "human"), human_reference(env), strict=True))
            for env in games
            if env not in without_reference
        },
        "rl_zoo_source": RL_ZOO_SOURCE,
        "rl_zoo_steps": RL_ZOO_STEPS,
        "bootstrap": {"reps": reps, "seed": BOOTSTRAP_SEED, "confidence": 0.95},
        "smooth": smooth,
        "games": game_entries,
        "skipped_games": list(skipped),
        "aggregates": aggregates.entries,
        "profile_tau": aggregates.profile_tau,
        "improvements": improvements,
        "devices": study_devices(games),
        "notes": notes,
    }
    return summary


def _add_game_details(
    entry: dict[str, Any],
    groups: Mapping[str, list[Run]],
    kinds: Sequence[Kind],
    baselines: Mapping[int, Kind | None],
) -> None:
    """Add to one game's `summarize` entry: per group RL Zoo's score, human-normalised finals,
    steps reached; per game the curves' PNG name and notes on what is missing or partial. Fills
    in each kind's final returns of this game."""
    env = entry["env"]
    kind_of = {id(runs): k for k in kinds for e, runs in k.runs.items() if e == env}
    ends = [int(r.steps.max()) for runs in groups.values() for r in runs]
    entry["last_step"] = max(ends)
    entry["curves_png"] = f"curves_{re.sub(r'[^A-Za-z0-9_.-]', '_', env)}.png"
    notes: list[str] = []
    all_seeds = sorted({r.config.seed for runs in groups.values() for r in runs})
    for group, (label, runs) in zip(entry["groups"], groups.items(), strict=True):
        kind = kind_of[id(runs)]
        kind.finals[env] = [r["final_return"] for r in group["runs"]]
        group["kind"] = kind.label
        zoo = published_score(env, group["algo"])
        group["rl_zoo"] = None if zoo is None else {"mean": zoo[0], "std": zoo[1]}
        hns = human_normalised(env, group["mean"])
        group["human_normalised_mean"] = hns
        lasts = [r["last_step"] for r in group["runs"]]
        group["steps_reached"] = [min(lasts), max(lasts)]
        for summary_run, run in zip(group["runs"], runs, strict=True):
            summary_run["human_normalised"] = human_normalised(env, summary_run["final_return"])
            summary_run["final_games"] = int(final_window(run.steps).sum())
        missing = [s for s in all_seeds if s not in {r.config.seed for r in runs}]
        if missing:
            notes.append(
                f"{label} lacks seed(s) {', '.join(map(str, missing))} that other groups of "
                f"{env} have"
            )
        baseline = baselines[id(kind)]
        if not is_baseline(runs[0]) and (baseline is None or env not in baseline.runs):
            notes.append(f"no conv baseline for {label} in {env}: no comparison there")
        notes += _run_notes(runs, max(ends))
    for kind in kinds:
        if env not in kind.runs:
            notes.append(f"no {kind.label} runs for {env} (other games have them)")
    if human_reference(env) is None:
        notes.append(f"no human reference scores for {env}: left out of the normalised aggregates")
    if has_published_scores(env) and entry["last_step"] < UNFINISHED_FRACTION * RL_ZOO_STEPS:
        notes.append(
            f"runs reached at most {fmt_steps(entry['last_step'])} agent steps; RL Zoo's scores "
            f"are after {fmt_steps(RL_ZOO_STEPS)} steps "
            f"({fmt_steps(FRAME_SKIP * RL_ZOO_STEPS)} frames) and from evaluating the final "
            "agent: not comparable"
        )
    entry["notes"] = notes


def _run_notes(runs: Sequence[Run], longest: int) -> list[str]:
    """Unfinished runs and runs whose final return rests on few games."""
    notes = []
    for run in runs:
        last = int(run.steps.max())
        planned = run.settings.get("n_timesteps")
        if not isinstance(planned, int | float) or isinstance(planned, bool):
            planned = None
        if last < UNFINISHED_FRACTION * max(longest, planned or 0):
            ends = [f"{fmt_steps(planned)} planned"] if planned else []
            ends += [f"the longest run of the game reaches {longest:,}"]
            notes.append(
                f"run {run.name} unfinished: last point at step {last:,} ({'; '.join(ends)})"
            )
        games = int(final_window(run.steps).sum())
        if games < MIN_FINAL_GAMES:
            notes.append(f"run {run.name}: final return from only {games} game(s)")
    return notes
