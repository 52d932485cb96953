"""One report across the games of a study: study.md, study.json and pictures, from the run
folders alone.

Layout: LOGDIR/<Game>/<run folder>/ (as ``agents/train.py`` writes a study: the run folder holds
``config.yaml`` and TensorBoard event files, possibly nested deeper, as ``compare_runs`` reads
them). Every immediate subfolder of LOGDIR that holds run folders is one game; the report's own
folder and folders without runs are passed over. A game folder that cannot be read (its runs
have logged no point for the tag yet, a config.yaml is broken) is left out and named, with the
reason, in the report.

Per game: the runs are read and grouped as ``compare_runs`` does (``load_runs``, ``group_runs``,
``summarize``: one implementation of each), and each group's final return (mean, Student t 95% CI,
per seed) stands beside RL Zoo's published score for that game and algo.

Across games: a group kind is one configuration without the game (the run's config except the
seed, the game and NOT_GROUPED), so ``a2c coordconv`` on MsPacman and on Breakout are one kind
when their configs agree in everything else; its label is the per-game label (with the keys that
tell kinds apart appended where labels would clash). Definitions:

- Human-normalised score: (score - random) / (human - random) with HUMAN_REFERENCE's per-game
  random and human scores; games without reference scores are reported raw and left out of the
  normalised aggregates.
- Score matrix of a kind: its runs' human-normalised final returns, runs x games. rliable needs
  as many runs in every game, so each game contributes its lowest `k` seeds, `k` being the
  kind's smallest seed count over its games; the report names the seeds this leaves out.
- IQM (25% trimmed mean over all runs x games), mean and median (of the per-game means) of a
  kind's matrix, with 95% stratified bootstrap percentile intervals (rliable: runs resampled
  within each game, BOOTSTRAP_REPS resamples, fixed seed). The IQM needs MIN_SEEDS_FOR_IQM scores
  in all, an interval two seeds per game.
- Probability of improvement P(X > conv): per game, the probability that a run of X scores above
  a run of the conv kind with the same other settings (Mann-Whitney U / (n_x n_conv), ties half),
  averaged over the games both have (rliable's probability_of_improvement). Being rank-based per
  game it needs no normalisation, so games without reference scores count too. Its 95% CI
  resamples X's and conv's runs independently within each game.
- Performance profile: the fraction of a kind's runs x games whose human-normalised final return
  exceeds tau, for tau over the range of scores, with a bootstrap band.
- Sample efficiency: each run's curve smoothed and interpolated onto one step grid (``seed_curves``
  over all the kind's runs: from their smallest first step to their smallest last step),
  human-normalised, then the IQM across runs x games at each step, with a bootstrap band.

Where the runs stand (``run_progress``, the report's "Runs" table), per game and run kind (the
run folder's name without its seed): finished (train_result.json says finished at the run's
total), running (its progress.json, or else its newest file, changed in the last
RUNNING_WINDOW_S seconds), stopped (a folder otherwise: interrupted, diverged or its worker
gone; the next study command resumes it) and to do (planned by the spec, no folder yet; known
only when the planned runs are given, as study.py gives them).
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from agents.run_dir import RESULT_NAME, load_run_config
from analysis.groups import _settings_key, group_labels, group_runs
from analysis.reliance import RELIANCE_COLUMN, reliance_cell
from analysis.report import (
    DEFAULT_SMOOTH,
    FINAL_RETURN_DEFINITION,
    FRAME_SKIP,
    STEPS_LABEL,
    _escape,
    _fmt,
    _fmt_interval,
    _fmt_steps,
    _save_png_atomic,
    plot_curves,
    summarize,
)
from analysis.runs import CONFIG_NAME, DEFAULT_TAG, Run, find_run_dirs, load_runs, warn
from analysis.stats import (
    BOOTSTRAP_REPS,
    BOOTSTRAP_SEED,
    FINAL_FRACTION,
    MIN_SEEDS_FOR_IQM,
    final_window,
    interval_estimates,
    seed_curves,
)
from common.errors import UsageError, check_at_least
from common.files import atomic_write_json, atomic_write_text

# Random-play and human scores per game (no-op starts, games capped at 108,000 frames): the
# Atari-57 reference table of Badia et al. 2020, "Agent57: Outperforming the Atari Human
# Benchmark" (ICML), appendix, also used by DQN Zoo and rliable (Agarwal et al. 2021). The random
# scores are those of Mnih et al. 2015, "Human-level control through deep reinforcement
# learning" (Nature 518, Extended Data Table 2); for some games the human scores are DeepMind's
# later measurements, not the Nature table's (Ms. Pac-Man: 6951.6 here, 15,693 there).
HUMAN_REFERENCE: dict[str, tuple[float, float]] = {  # game: (random, human)
    "Asteroids": (719.1, 47388.7),
    "BeamRider": (363.9, 16926.5),
    "Breakout": (1.7, 30.5),
    "Enduro": (0.0, 860.5),
    "MsPacman": (307.3, 6951.6),
    "Pong": (-20.7, 14.6),
    "Qbert": (163.9, 13455.0),
    "Seaquest": (68.4, 42054.7),
    "SpaceInvaders": (148.0, 1668.7),
}


HUMAN_REFERENCE_SOURCE = (
    "random and human scores of the Atari-57 table in Badia et al. 2020 (Agent57), the random "
    "ones from Mnih et al. 2015 (Nature DQN)"
)


# RL Zoo's published scores, (mean, std) over its evaluation games: benchmark.md of
# DLR-RM/rl-baselines3-zoo, one run per game trained for 10M agent steps on <Game>NoFrameskip-v4,
# the final agent evaluated with sampled actions.
RL_ZOO_SCORES: dict[str, dict[str, tuple[float, float]]] = {
    "MsPacman": {"a2c": (1671.73, 612.92), "ppo": (1754.36, 172.78)},
    "Breakout": {"a2c": (279.79, 122.18), "ppo": (398.03, 33.33)},
    "Pong": {"a2c": (17.29, 3.21), "ppo": (20.99, 0.11)},
    "SpaceInvaders": {"a2c": (627.16, 201.97), "ppo": (960.33, 425.36)},
    "Seaquest": {"a2c": (1721.49, 105.34), "ppo": (1783.64, 34.10)},
    "Qbert": {"a2c": (3882.35, 1223.33), "ppo": (15627.11, 3313.54)},
    "BeamRider": {"a2c": (2890.30, 1379.14), "ppo": (3397.00, 1662.37)},
    "Enduro": {"a2c": (0.00, 0.00), "ppo": (996.36, 176.09)},
    "Asteroids": {"a2c": (1286.55, 423.75), "ppo": (2156.17, 744.64)},
}


RL_ZOO_SOURCE = (
    "RL Zoo benchmark.md (DLR-RM/rl-baselines3-zoo): one run per game, 10M agent steps, "
    "NoFrameskip-v4, the final agent evaluated with sampled actions"
)


RL_ZOO_STEPS = 10_000_000


BASELINE_EXTRACTOR = "conv"


OUTPUT_NAMES = ("study.md", "study.json", "study_profiles.png", "study_sample_efficiency.png")


PROFILE_POINTS = 101


# Fewer games than this in a run's final window make its final return one or two games' luck.
MIN_FINAL_GAMES = 3


# A run is unfinished if it stopped more than the final window short of where it should end:
# then its final window does not even overlap the others'.
UNFINISHED_FRACTION = 1 - FINAL_FRACTION


# agents.callbacks.ProgressFile.NAME (not imported: that module needs SB3 and torch).
PROGRESS_NAME = "progress.json"


# A training run rewrites its progress.json every few seconds; an evaluation of a few full games
# pauses that for a minute or two. Ten quiet minutes: the run is not training.
RUNNING_WINDOW_S = 600


RUN_STATES = ("finished", "running", "stopped", "to do")


@dataclass(frozen=True)
class StudyReport:
    """What `study_report` produced: the JSON summary, the markdown tables, the files written."""

    summary: dict[str, Any]
    table: str
    files: tuple[Path, ...]


@dataclass
class _Kind:
    """One configuration across games: its runs and final returns per game, seed-sorted."""

    first: Run
    runs: dict[str, list[Run]] = field(default_factory=dict)
    finals: dict[str, list[float]] = field(default_factory=dict)
    label: str = ""


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
    games, skipped = _read_games(logdir, out_dir, tag, progress)
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


def human_normalised(game: str, score: float) -> float | None:
    """(score - random) / (human - random) with HUMAN_REFERENCE; None for a game without one."""
    ref = HUMAN_REFERENCE.get(_canonical(game))
    if ref is None:
        return None
    random, human = ref
    return (score - random) / (human - random)


def published_score(game: str, algo: str) -> tuple[float, float] | None:
    """RL Zoo's (mean, std) for `game` and `algo` after 10M steps; None where none is published."""
    return RL_ZOO_SCORES.get(_canonical(game), {}).get(algo.lower())


def _canonical(game: str) -> str:
    """The key of the reference tables for any usual spelling of a game: ALE/MsPacman-v5,
    MsPacmanNoFrameskip-v4, ms_pacman -> MsPacman (without ale-py's registry: tables only)."""
    stem = re.sub(r"^ALE/", "", game.strip())
    stem = re.sub(r"(NoFrameskip|Deterministic)?(-v\d+)?$", "", stem)
    key = re.sub(r"[^a-z0-9]", "", stem.lower())
    for name in {*HUMAN_REFERENCE, *RL_ZOO_SCORES}:
        if name.lower() == key:
            return name
    return game


def _read_games(
    logdir: Path, out_dir: Path, tag: str, progress: bool
) -> tuple[dict[str, tuple[Path, dict[str, list[Run]]]], list[dict[str, str]]]:
    """Per game (by its config's env): its folder and groups; plus the folders left out, with why.

    UsageError if no game folder holds runs with points for `tag`.
    """
    out_resolved = out_dir.resolve()
    games: dict[str, tuple[Path, dict[str, list[Run]]]] = {}
    skipped: list[dict[str, str]] = []
    loose = []
    for folder in sorted(p for p in logdir.iterdir() if p.is_dir()):
        if folder.resolve() == out_resolved or folder.name.startswith("."):
            continue
        if (folder / CONFIG_NAME).is_file():
            loose.append(folder.name)
            continue
        if not find_run_dirs(folder):
            continue
        try:
            runs = load_runs(folder, tag, progress)
        except UsageError as err:
            # A game whose runs have not finished a game yet must not stop the others' report.
            skipped.append({"folder": folder.name, "reason": str(err)})
            continue
        groups = group_runs(runs)
        env = runs[0].config.env
        if env in games:
            raise UsageError(
                f"game folders {games[env][0].name} and {folder.name} under {logdir} both hold "
                f"{env} runs; a study has one folder per game"
            )
        games[env] = (folder, groups)
    if loose:
        raise UsageError(
            f"{logdir} holds run folders directly ({loose[0]}): a study's runs are "
            f"LOGDIR/<Game>/<run>/; pass the study's folder (or compare one game with "
            "scripts/compare_runs.py)"
        )
    if not games:
        if skipped:
            first = skipped[0]
            raise UsageError(f"no game under {logdir} could be read: {first['reason']}")
        raise UsageError(f"no run folders under {logdir} (expected LOGDIR/<Game>/<run>/)")
    for entry in skipped:
        warn(f"game folder {entry['folder']} left out: {entry['reason']}")
    return dict(sorted(games.items())), skipped


def _summarize_study(
    logdir: Path,
    tag: str,
    games: Mapping[str, tuple[Path, dict[str, list[Run]]]],
    skipped: Sequence[dict[str, str]],
    smooth: float,
    reps: int,
) -> dict[str, Any]:
    """The numbers of study.json."""
    kinds = _kinds(games)
    baselines = {id(k): _baseline(k, kinds) for k in kinds}
    game_entries = []
    for folder, groups in games.values():
        entry = summarize(folder, tag, groups)
        _add_game_details(entry, groups, kinds, baselines)
        game_entries.append(entry)
    aggregates = [_aggregate(k, smooth, reps) for k in kinds]
    tau = _profile_taus(aggregates)
    for agg in aggregates:
        agg["profile"] = _profile(agg, tau, reps)
        del agg["_matrix"]
    improvements = [
        _improvement(k, baselines[id(k)], reps) for k in kinds if baselines[id(k)] is not None
    ]
    no_baseline = [k.label for k in kinds if baselines[id(k)] is None and not _is_baseline(k.first)]
    without_reference = [env for env in games if human_normalised(env, 0.0) is None]
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
        "human_normalised": "(score - random) / (human - random)",
        "human_reference_source": HUMAN_REFERENCE_SOURCE,
        "human_reference": {
            env: dict(zip(("random", "human"), HUMAN_REFERENCE[_canonical(env)], strict=True))
            for env in games
            if env not in without_reference
        },
        "rl_zoo_source": RL_ZOO_SOURCE,
        "rl_zoo_steps": RL_ZOO_STEPS,
        "bootstrap": {"reps": reps, "seed": BOOTSTRAP_SEED, "confidence": 0.95},
        "smooth": smooth,
        "games": game_entries,
        "skipped_games": list(skipped),
        "aggregates": aggregates,
        "profile_tau": [float(t) for t in tau],
        "improvements": improvements,
        "devices": _devices(games),
        "notes": notes,
    }
    return summary


def _devices(games: Mapping[str, tuple[Path, dict[str, list[Run]]]]) -> list[str]:
    """The devices the study's runs trained on (their versions.json's device record), each
    once, as common.devices.describe_record words them."""
    from common.devices import describe_record  # here: it imports torch, the report need not

    seen: dict[str, None] = {}
    for folder, groups in games.values():
        for runs in groups.values():
            for run in runs:
                try:
                    record = json.loads((folder / run.name / "versions.json").read_text())["device"]
                    label = describe_record(record)
                except (OSError, ValueError, KeyError, TypeError):
                    label = "not recorded (runs from before the device record)"
                seen[label] = None
    return list(seen)


def _kinds(games: Mapping[str, tuple[Path, dict[str, list[Run]]]]) -> list[_Kind]:
    """One kind per configuration without the game, in group order, labelled apart."""
    by_key: dict[tuple, _Kind] = {}
    for env, (_, groups) in games.items():
        for runs in groups.values():
            first = replace(runs[0], settings=_without(runs[0].settings, ("env",)))
            kind = by_key.setdefault(_settings_key(first.settings), _Kind(first))
            kind.runs[env] = runs
    kinds = list(by_key.values())
    for kind, label in zip(kinds, group_labels([k.first for k in kinds]), strict=True):
        kind.label = label
    kinds.sort(key=lambda k: (*_order(k.first), k.label))
    return kinds


def _order(run: Run) -> tuple[str, str, bool]:
    return run.config.algo, run.config.extractor, run.config.with_r


def _without(settings: Mapping[str, Any], keys: Sequence[str]) -> dict[str, Any]:
    return {k: v for k, v in settings.items() if k not in keys}


def _is_baseline(run: Run) -> bool:
    return run.config.extractor == BASELINE_EXTRACTOR and not run.config.with_r


def _baseline(kind: _Kind, kinds: Sequence[_Kind]) -> _Kind | None:
    """The conv kind with `kind`'s other settings; None for a conv kind or where there is none."""
    if _is_baseline(kind.first):
        return None
    rest = _settings_key(_without(kind.first.settings, ("extractor", "with_r")))
    for other in kinds:
        if _is_baseline(other.first) and (
            _settings_key(_without(other.first.settings, ("extractor", "with_r"))) == rest
        ):
            return other
    return None


def _add_game_details(
    entry: dict[str, Any],
    groups: Mapping[str, list[Run]],
    kinds: Sequence[_Kind],
    baselines: Mapping[int, _Kind | None],
) -> None:
    """Add to one game's `summarize` entry: per group RL Zoo's score, human-normalised finals,
    steps reached; per game the curves' PNG name and notes on what is missing or partial."""
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
        if not _is_baseline(runs[0]) and (baseline is None or env not in baseline.runs):
            notes.append(f"no conv baseline for {label} in {env}: no comparison there")
        notes += _run_notes(runs, max(ends))
    for kind in kinds:
        if env not in kind.runs:
            notes.append(f"no {kind.label} runs for {env} (other games have them)")
    if human_normalised(env, 0.0) is None:
        notes.append(f"no human reference scores for {env}: left out of the normalised aggregates")
    if (
        RL_ZOO_SCORES.get(_canonical(env))
        and entry["last_step"] < UNFINISHED_FRACTION * RL_ZOO_STEPS
    ):
        notes.append(
            f"runs reached at most {_fmt_steps(entry['last_step'])} agent steps; RL Zoo's scores "
            f"are after {_fmt_steps(RL_ZOO_STEPS)} steps "
            f"({_fmt_steps(FRAME_SKIP * RL_ZOO_STEPS)} frames) and from evaluating the final "
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
            ends = [f"{_fmt_steps(planned)} planned"] if planned else []
            ends += [f"the longest run of the game reaches {longest:,}"]
            notes.append(
                f"run {run.name} unfinished: last point at step {last:,} ({'; '.join(ends)})"
            )
        games = int(final_window(run.steps).sum())
        if games < MIN_FINAL_GAMES:
            notes.append(f"run {run.name}: final return from only {games} game(s)")
    return notes


def _score_matrix(kind: _Kind, games: Sequence[str]) -> tuple[np.ndarray, dict[str, list[int]]]:
    """Runs x games of `kind`'s human-normalised final returns (`games` must all have reference
    scores), each game's lowest k seeds, k the smallest seed count; plus the seeds used."""
    raw, seeds = _raw_matrix(kind, games)
    for j, g in enumerate(games):
        raw[:, j] = _normalise(g, raw[:, j])
    return raw, seeds


def _aggregate(kind: _Kind, smooth: float, reps: int) -> dict[str, Any]:
    """A kind's human-normalised IQM, mean and median across games with their CIs, and its
    sample-efficiency curve."""
    from rliable import metrics

    config = kind.first.config
    games = [g for g in kind.runs if human_normalised(g, 0.0) is not None]
    entry: dict[str, Any] = {
        "label": kind.label,
        "algo": config.algo,
        "extractor": config.extractor,
        "with_r": config.with_r,
        "config": dict(kind.first.settings),
        "games": games,
        "games_without_reference": [g for g in kind.runs if g not in games],
        "seeds_per_game": {g: len(runs) for g, runs in kind.runs.items()},
    }
    if not games:
        entry.update(n_seeds_used=0, seeds_used={}, seeds_left_out={}, scores=[])
        entry.update({m: None for m in ("iqm", "iqm_ci95", "mean", "mean_ci95")})
        entry.update(median=None, median_ci95=None, sample_efficiency=None, _matrix=None)
        return entry
    matrix, seeds = _score_matrix(kind, games)
    k = matrix.shape[0]
    left_out = {
        g: [r.config.seed for r in kind.runs[g][k:]] for g in games if len(kind.runs[g]) > k
    }
    entry.update(n_seeds_used=k, seeds_used=seeds, seeds_left_out=left_out)
    entry["scores"] = matrix.tolist()
    has_iqm = matrix.size >= MIN_SEEDS_FOR_IQM

    def aggregates(scores: np.ndarray) -> np.ndarray:
        iqm = metrics.aggregate_iqm(scores) if has_iqm else np.nan
        return np.array([iqm, metrics.aggregate_mean(scores), metrics.aggregate_median(scores)])

    points = aggregates(matrix)
    intervals = None
    if k >= 2:  # one run per game leaves the bootstrap nothing to resample
        _, cis = interval_estimates({"m": matrix}, aggregates, reps=reps)
        intervals = cis["m"]
    for i, name in enumerate(("iqm", "mean", "median")):
        value = None if np.isnan(points[i]) else float(points[i])
        entry[name] = value
        entry[f"{name}_ci95"] = (
            None if intervals is None or value is None else [float(x) for x in intervals[:, i]]
        )
    entry["sample_efficiency"] = _sample_efficiency(kind, games, k, smooth, reps)
    entry["_matrix"] = matrix
    return entry


def _sample_efficiency(
    kind: _Kind, games: Sequence[str], k: int, smooth: float, reps: int
) -> dict[str, Any]:
    """IQM (the mean below MIN_SEEDS_FOR_IQM scores) of the human-normalised curves of the
    runs of the score matrix across runs x games at each step, with its bootstrap band."""
    from scipy.stats import trim_mean

    runs = [r for g in games for r in kind.runs[g][:k]]
    grid, curves = seed_curves(runs, smooth)
    normalised = np.stack([_normalise(r.config.env, c) for r, c in zip(runs, curves, strict=True)])
    # games x runs x steps -> runs x games x steps, the layout rliable resamples within games.
    cube = normalised.reshape(len(games), k, grid.size).transpose(1, 0, 2)
    statistic = "iqm" if k * len(games) >= MIN_SEEDS_FOR_IQM else "mean"

    def per_step(scores: np.ndarray) -> np.ndarray:
        flat = scores.reshape(-1, scores.shape[-1])
        # rliable's aggregate_iqm is this 25% trimmed mean over all scores; here per step.
        return trim_mean(flat, 0.25, axis=0) if statistic == "iqm" else flat.mean(axis=0)

    values = per_step(cube)
    band = None
    if k >= 2:
        _, cis = interval_estimates({"c": cube}, per_step, reps=reps)
        band = cis["c"].tolist()
    return {
        "statistic": statistic,
        "steps": grid.tolist(),
        "values": values.tolist(),
        "ci95": band,
    }


def _normalise(game: str, scores: np.ndarray) -> np.ndarray:
    """`human_normalised` of an array of one game's scores."""
    random, human = HUMAN_REFERENCE[_canonical(game)]
    return (scores - random) / (human - random)


def _profile_taus(aggregates: Sequence[dict[str, Any]]) -> np.ndarray:
    """Thresholds from min(0, lowest score) to max(1, highest score): random to human play at
    least, and every score."""
    scores = [a["_matrix"] for a in aggregates if a["_matrix"] is not None]
    lo = min([0.0] + [float(m.min()) for m in scores])
    hi = max([1.0] + [float(m.max()) for m in scores])
    return np.linspace(lo, hi, PROFILE_POINTS)


def _profile(aggregate: dict[str, Any], tau: np.ndarray, reps: int) -> dict[str, Any] | None:
    """Fraction of the runs x games above each tau (rliable's score distribution), with band."""
    matrix = aggregate["_matrix"]
    if matrix is None:
        return None

    def fractions(scores: np.ndarray) -> np.ndarray:
        return (scores[..., None] > tau).mean(axis=(0, 1))

    band = None
    if matrix.shape[0] >= 2:
        _, cis = interval_estimates({"p": matrix}, fractions, reps=reps)
        band = cis["p"].tolist()
    return {"fraction": fractions(matrix).tolist(), "ci95": band}


def _improvement(kind: _Kind, baseline: _Kind, reps: int) -> dict[str, Any]:
    """P(kind > baseline) over the games both have, with its CI and the verdict."""
    from rliable import metrics

    games = [g for g in kind.runs if g in baseline.runs]
    entry: dict[str, Any] = {"label": kind.label, "baseline": baseline.label, "games": games}
    if not games:
        entry.update(probability=None, per_game={}, ci95=None, within_noise=None)
        entry.update(seeds_used={}, baseline_seeds_used={}, verdict="no common game")
        return entry
    x, x_seeds = _raw_matrix(kind, games)
    y, y_seeds = _raw_matrix(baseline, games)
    entry.update(seeds_used=x_seeds, baseline_seeds_used=y_seeds)
    entry["probability"] = float(metrics.probability_of_improvement(x, y))
    entry["per_game"] = {
        g: float(metrics.probability_of_improvement(x[:, [i]], y[:, [i]]))
        for i, g in enumerate(games)
    }
    ci = None
    if x.shape[0] >= 2 and y.shape[0] >= 2:
        _, cis = interval_estimates({"p": [x, y]}, metrics.probability_of_improvement, reps=reps)
        ci = [float(v) for v in np.ravel(cis["p"])]
    entry["ci95"] = ci
    entry["within_noise"] = None if ci is None else bool(ci[0] <= 0.5 <= ci[1])
    if ci is None:
        entry["verdict"] = "no CI: needs 2 seeds per game on both sides"
    elif entry["within_noise"]:
        entry["verdict"] = "within noise: the CI includes 0.5"
    elif ci[0] > 0.5:
        entry["verdict"] = f"{kind.label} better: the CI lies above 0.5"
    else:
        entry["verdict"] = f"{baseline.label} better: the CI lies below 0.5"
    return entry


def _raw_matrix(kind: _Kind, games: Sequence[str]) -> tuple[np.ndarray, dict[str, list[int]]]:
    """Runs x games of raw final returns, each game's lowest k seeds (k: the smallest count)."""
    k = min(len(kind.runs[g]) for g in games)
    matrix = np.array([kind.finals[g][:k] for g in games], dtype=np.float64).T
    return matrix, {g: [r.config.seed for r in kind.runs[g][:k]] for g in games}


def _hns(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"


def _hns_interval(point: float | None, interval: Sequence[float] | None) -> str:
    if point is None:
        return "-"
    return _hns(point) + (
        "" if interval is None else f" [{_hns(interval[0])}, {_hns(interval[1])}]"
    )


def _steps_range(lo: int, hi: int) -> str:
    return f"{lo:,}" if lo == hi else f"{lo:,}-{hi:,}"


RUN_STATE_DEFINITION = (
    "finished: train_result.json says finished at the run's total; running: its progress.json "
    f"(or else its newest file) changed in the last {RUNNING_WINDOW_S // 60} minutes; stopped: "
    "a run folder otherwise (interrupted, diverged or its worker gone; the next study command "
    "resumes it); to do: planned by the spec, no folder yet"
)


def run_progress(
    logdir: str | os.PathLike,
    planned: Mapping[Path, int] | None = None,
    exclude: str | os.PathLike | None = None,
    now: float | None = None,
) -> dict[str, Any]:
    """Where each run of a study stands, and the counts per game and run kind (its folder's name
    without the seed): finished, running, stopped, to do (see RUN_STATE_DEFINITION).

    `planned` maps the study's run folders (LOGDIR/<Game>/<run>) to their total agent steps;
    without it every run folder under `logdir` (but `exclude`, the report's folder) is counted
    at its config's total, and how many are to do is unknown (None). `now` is the time the
    states are judged at (default: now). Reads the folders, never writes.
    """
    logdir = Path(logdir)
    now = time.time() if now is None else now
    if planned is None:
        skip = None if exclude is None else Path(exclude).resolve()
        games = [
            p
            for p in sorted(logdir.iterdir())
            if p.is_dir() and not p.name.startswith(".") and p.resolve() != skip
        ]
        found = {d: _config_total(d) for g in games for d in find_run_dirs(g) if d != g}
    else:
        found = dict(planned)
    runs = []
    for run_dir, total in found.items():
        run_dir = Path(run_dir)
        state, steps = _run_state(run_dir, total, now)
        runs.append(
            {
                "run": f"{run_dir.parent.name}/{run_dir.name}",
                "game": run_dir.parent.name,
                "kind": re.sub(r"_s\d+(_\d+)?$", "", run_dir.name),
                "state": state,
                "steps": steps,
                "total": total,
            }
        )
    counts: dict[tuple[str, str], dict[str, Any]] = {}
    for r in runs:
        entry = counts.setdefault(
            (r["game"], r["kind"]),
            {"game": r["game"], "kind": r["kind"], "runs": 0}
            | {s.replace(" ", "_"): 0 for s in RUN_STATES},
        )
        entry["runs"] += 1
        entry[r["state"].replace(" ", "_")] += 1
    groups = [counts[key] for key in sorted(counts)]
    if planned is None:
        for g in groups:
            g["to_do"] = None
    return {
        "definition": RUN_STATE_DEFINITION,
        "running_window_s": RUNNING_WINDOW_S,
        "planned": planned is not None,
        "groups": groups,
        "runs": runs,
    }


def _config_total(run_dir: Path) -> int | None:
    try:
        return int(load_run_config(run_dir / CONFIG_NAME)["hyperparams"]["n_timesteps"])
    except (UsageError, KeyError, TypeError, ValueError):
        return None


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _run_state(run_dir: Path, total: int | None, now: float) -> tuple[str, int]:
    """One run's state and the agent steps it last reported (see RUN_STATE_DEFINITION)."""
    if not run_dir.is_dir():
        return "to do", 0
    result = _read_json(run_dir / RESULT_NAME)
    progress = _read_json(run_dir / PROGRESS_NAME)
    done = int(result.get("timesteps") or 0)
    steps = max(done, int(progress.get("steps") or 0))
    if result.get("status") == "finished" and (total is None or done >= total):
        return "finished", done
    last = progress.get("time")
    if not isinstance(last, int | float):
        stamps = [p.stat().st_mtime for p in run_dir.rglob("*") if p.is_file()]
        last = max(stamps, default=run_dir.stat().st_mtime)
    return ("running" if now - last <= RUNNING_WINDOW_S else "stopped"), steps


def run_progress_table(progress: dict[str, Any]) -> str:
    """`run_progress` as a markdown table: a row per game and run kind, and a total row."""
    header = ["game", "run kind (folder name without seed)", "runs", *RUN_STATES]
    lines = ["| " + " | ".join(header) + " |", "|---|---|" + "---:|" * (len(header) - 2)]
    keys = ["runs", *(s.replace(" ", "_") for s in RUN_STATES)]
    total = dict.fromkeys(keys, 0)
    for g in progress["groups"]:
        cells = [_escape(g["game"]), _escape(g["kind"])]
        for key in keys:
            value = g[key]
            cells.append("-" if value is None else str(value))
            total[key] = None if value is None or total[key] is None else total[key] + value
        lines.append("| " + " | ".join(cells) + " |")
    cells = ["all", ""] + ["-" if total[k] is None else str(total[k]) for k in keys]
    lines.append("| " + " | ".join(f"**{c}**" if c else c for c in cells) + " |")
    if not progress["planned"]:
        lines.append("\nTo do: unknown without the study's spec (`study.py SPEC --report` has it).")
    return "\n".join(lines)


def markdown_tables(summary: dict[str, Any]) -> str:
    """Per game one table (a row per group) and its notes; then the human-normalised aggregates
    per kind and the probabilities of improvement."""
    parts = []
    if "runs" in summary:
        parts.append("### Runs\n\n" + run_progress_table(summary["runs"]))
    for game in summary["games"]:
        parts.append(f"### {game['env']}\n\n{_game_table(game)}")
        if game["notes"]:
            parts.append("\n".join(f"- {_escape(n)}" for n in game["notes"]))
    parts.append("### Human-normalised final returns across games\n\n" + _aggregate_table(summary))
    parts.append("### Probability of improvement over conv\n\n" + _improvement_table(summary))
    return "\n\n".join(parts) + "\n"


def _game_table(game: dict[str, Any]) -> str:
    reliance = any(g.get("reliance") for g in game["groups"])
    header = [
        "group",
        "seeds",
        "final return mean",
        "95% CI",
        "final return per seed",
        "human-normalised",
        "RL Zoo (10M steps)",
        "agent steps reached",
    ] + ([RELIANCE_COLUMN] if reliance else [])
    align = "|---|---:|---:|---|---|---:|---:|---:|" + ("---|" if reliance else "")
    lines = ["| " + " | ".join(header) + " |", align]
    for g in game["groups"]:
        finals = ", ".join(f"s{r['seed']} {_fmt(r['final_return'])}" for r in g["runs"])
        zoo = g["rl_zoo"]
        cells = [
            _escape(g["label"]),
            str(g["n_seeds"]),
            _fmt(g["mean"]),
            _fmt_interval(g["ci95"]),
            finals,
            _hns(g["human_normalised_mean"]),
            "-" if zoo is None else f"{_fmt(zoo['mean'])} +- {_fmt(zoo['std'])}",
            _steps_range(*g["steps_reached"]),
        ] + ([reliance_cell(g.get("reliance"))] if reliance else [])
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _aggregate_table(summary: dict[str, Any]) -> str:
    header = ["group", "games", "seeds per game", "IQM [95% CI]", "mean [95% CI]"]
    header += ["median [95% CI]"]
    lines = ["| " + " | ".join(header) + " |", "|---|---|---:|---|---|---|"]
    notes = []
    for a in summary["aggregates"]:
        if a["iqm"] is None and a["games"]:
            iqm = f"needs {MIN_SEEDS_FOR_IQM} scores"
        else:
            iqm = _hns_interval(a["iqm"], a["iqm_ci95"])
        cells = [
            _escape(a["label"]),
            ", ".join(a["games"]) or "-",
            str(a["n_seeds_used"]),
            iqm,
            _hns_interval(a["mean"], a["mean_ci95"]),
            _hns_interval(a["median"], a["median_ci95"]),
        ]
        lines.append("| " + " | ".join(cells) + " |")
        for g, seeds in a["seeds_left_out"].items():
            notes.append(
                f"{a['label']}: {a['n_seeds_used']} seed(s) per game in the aggregates; {g}'s "
                f"seed(s) {', '.join(map(str, seeds))} left out"
            )
        if a["games_without_reference"]:
            notes.append(
                f"{a['label']}: {', '.join(a['games_without_reference'])} without reference "
                "scores, left out"
            )
    table = "\n".join(lines)
    return table + ("\n\n" + "\n".join(f"- {_escape(n)}" for n in notes) if notes else "")


def _improvement_table(summary: dict[str, Any]) -> str:
    if not summary["improvements"]:
        return "No group has a conv baseline with the same other settings: nothing to compare."
    header = ["comparison", "games", "P(X > conv) [95% CI]", "per game", "verdict"]
    lines = ["| " + " | ".join(header) + " |", "|---|---|---|---|---|"]
    for imp in summary["improvements"]:
        p = imp["probability"]
        cells = [
            _escape(f"{imp['label']} vs {imp['baseline']}"),
            ", ".join(imp["games"]) or "-",
            "-" if p is None else _hns_interval(p, imp["ci95"]),
            ", ".join(f"{g} {v:.2f}" for g, v in imp["per_game"].items()) or "-",
            imp["verdict"],
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def markdown_report(summary: dict[str, Any], table: str, smooth: float = DEFAULT_SMOOTH) -> str:
    """study.md: what was read, the definitions, the tables, the pictures, what is missing."""
    boot = summary["bootstrap"]
    smoothing = (
        f"smoothed by a trailing mean over {_fmt_steps(smooth)} agent steps"
        if smooth
        else "not smoothed"
    )
    refs = ", ".join(
        f"{g} {_fmt(r['random'])} / {_fmt(r['human'])}"
        for g, r in summary["human_reference"].items()
    )
    curves = ", ".join(f"[{g['env']}]({g['curves_png']})" for g in summary["games"])
    notes = "".join(f"- {_escape(n)}\n" for n in summary["notes"]) or "- none\n"
    return (
        f"# CoordConv study: {Path(summary['logdir']).resolve().name}\n\n"
        f"Runs under `{summary['logdir']}`, TensorBoard tag `{summary['tag']}`; per game grouped "
        "as compare_runs does (whole config except the seed and settings that cannot change "
        "learning). Trained on: "
        f"{'; '.join(summary['devices']) or 'no runs'}.\n\n"
        "## Definitions\n\n"
        f"- Final return of a run: {FINAL_RETURN_DEFINITION}. Per group: mean and Student t 95% "
        'CI across seeds ("-" with one seed).\n'
        f"- RL Zoo: {RL_ZOO_SOURCE}. Its scores come from evaluating the final agent; ours are "
        "training games' returns. Runs far shorter than 10M steps are not comparable with it.\n"
        f"- Human-normalised score: {summary['human_normalised']}, with the "
        f"{HUMAN_REFERENCE_SOURCE} (random / human: {refs or 'no game of this study has them'}).\n"
        "- Across games a group is its config without the game. rliable needs as many runs per "
        "game: each game gives its lowest k seeds, k the group's smallest seed count.\n"
        f"- IQM: the 25% trimmed mean over runs x games ({MIN_SEEDS_FOR_IQM} scores at least); "
        "mean and median of the per-game means. 95% CIs: stratified bootstrap (runs resampled "
        f"within each game), percentile, {boot['reps']} resamples, seed {boot['seed']}; they need "
        "two seeds per game, and with few seeds they understate the uncertainty.\n"
        "- P(X > conv): per game the chance that a run of X beats a run of conv (ties count "
        "half), averaged over the games both have; rank-based, so on raw scores. Its CI "
        "resamples both sides' runs within each game; a CI that includes 0.5 is within noise.\n"
        "- Performance profile: the fraction of runs x games whose human-normalised final "
        "return exceeds tau, with a bootstrap band.\n"
        f"- Runs: {RUN_STATE_DEFINITION}.\n"
        "- Sample efficiency: each run's curve "
        f"{smoothing}, interpolated onto one grid of 100 agent steps per group (up to its "
        "shortest run's last point), human-normalised; the IQM across runs x games at each step "
        f"(the mean below {MIN_SEEDS_FOR_IQM} scores), with a bootstrap band.\n\n"
        "## Results\n\n"
        f"{table}\n"
        "## Pictures\n\n"
        f"![performance profiles]({OUTPUT_NAMES[2]})\n\n"
        f"![IQM of human-normalised score against agent steps]({OUTPUT_NAMES[3]})\n\n"
        f"Learning curves per game (mean and t 95% band across seeds, {STEPS_LABEL}): "
        f"{curves}.\n\n"
        "## Missing or partial\n\n"
        "Per-game notes stand under each game's table.\n\n"
        f"{notes}"
    )


def _figure() -> tuple[Any, Any, list[str]]:
    # The object API with the Agg canvas: no pyplot state, no display needed.
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 5), layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.subplots(), matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]


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
    return _save_png_atomic(fig, path)


def plot_sample_efficiency(summary: dict[str, Any], path: Path, smooth: float) -> Path:
    """IQM human-normalised score against agent steps per group, with its bootstrap band."""
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
    note = f"; trailing mean over {_fmt_steps(smooth)} steps" if smooth else ""
    _finish(ax, drawn, STEPS_LABEL + note, "human-normalised return, IQM across runs x games")
    ax.set_title("Sample efficiency")
    return _save_png_atomic(fig, path)


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
