"""Across the games of a study: one configuration's human-normalised aggregates (rliable) and
its probability of improvement over the conv baseline.

A kind is one configuration without the game (the run's config except the seed, the game and
NOT_GROUPED), so ``a2c coordconv`` on MsPacman and on Breakout are one kind when their configs
agree in everything else; its label is the per-game label (with the keys that tell kinds apart
appended where labels would clash). Definitions:

- Score matrix of a kind: its runs' human-normalised final returns (analysis.reference_scores),
  runs x games, over the games with reference scores. rliable needs as many runs in every game,
  so each game contributes its lowest `k` seeds, `k` being the kind's smallest seed count over
  its games; the seeds this leaves out are named.
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
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from analysis.groups import group_labels, settings_key
from analysis.reference_scores import human_reference, normalise_scores
from analysis.runs import Run
from analysis.stats import MIN_SEEDS_FOR_IQM, interval_estimates, seed_curves

BASELINE_EXTRACTOR = "conv"


PROFILE_POINTS = 101


@dataclass
class Kind:
    """One configuration across games: its runs per game, seed-sorted, and their final returns
    (`finals`, filled in from each game's summary before aggregating)."""

    first: Run
    runs: dict[str, list[Run]] = field(default_factory=dict)
    finals: dict[str, list[float]] = field(default_factory=dict)
    label: str = ""


@dataclass(frozen=True)
class Aggregates:
    """The across-games numbers of every kind: their study.json entries (profile included), in
    kind order, and the thresholds tau their performance profiles share."""

    entries: list[dict[str, Any]]
    profile_tau: list[float]


@dataclass(frozen=True)
class _Scored:
    """One kind's entry before its profile, and the score matrix behind it (None: no game with
    reference scores)."""

    entry: dict[str, Any]
    matrix: np.ndarray | None


def study_kinds(games: Mapping[str, Mapping[str, list[Run]]]) -> list[Kind]:
    """One kind per configuration without the game, from each game's groups (game: label:
    runs), sorted by algo, extractor, with_r and label, labelled apart."""
    by_key: dict[tuple, Kind] = {}
    for env, groups in games.items():
        for runs in groups.values():
            first = replace(runs[0], settings=_without(runs[0].settings, ("env",)))
            kind = by_key.setdefault(settings_key(first.settings), Kind(first))
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


def is_baseline(run: Run) -> bool:
    """Whether `run` is of the baseline: plain conv, without the r channel."""
    return run.config.extractor == BASELINE_EXTRACTOR and not run.config.with_r


def baseline_of(kind: Kind, kinds: Sequence[Kind]) -> Kind | None:
    """The conv kind with `kind`'s other settings; None for a conv kind or where there is none."""
    if is_baseline(kind.first):
        return None
    rest = settings_key(_without(kind.first.settings, ("extractor", "with_r")))
    for other in kinds:
        if is_baseline(other.first) and (
            settings_key(_without(other.first.settings, ("extractor", "with_r"))) == rest
        ):
            return other
    return None


def aggregate_kinds(kinds: Sequence[Kind], smooth: float, reps: int) -> Aggregates:
    """Each kind's human-normalised IQM, mean and median across games with their CIs, its
    sample-efficiency curve (curves smoothed over `smooth` agent steps) and its performance
    profile; `reps` bootstrap resamples each."""
    scored = [_aggregate(k, smooth, reps) for k in kinds]
    tau = _profile_taus([s.matrix for s in scored if s.matrix is not None])
    entries = [s.entry | {"profile": _profile(s.matrix, tau, reps)} for s in scored]
    return Aggregates(entries=entries, profile_tau=[float(t) for t in tau])


def _score_matrix(kind: Kind, games: Sequence[str]) -> tuple[np.ndarray, dict[str, list[int]]]:
    """Runs x games of `kind`'s human-normalised final returns (`games` must all have reference
    scores), each game's lowest k seeds, k the smallest seed count; plus the seeds used."""
    raw, seeds = _raw_matrix(kind, games)
    for j, g in enumerate(games):
        raw[:, j] = normalise_scores(g, raw[:, j])
    return raw, seeds


def _aggregate(kind: Kind, smooth: float, reps: int) -> _Scored:
    """A kind's human-normalised IQM, mean and median across games with their CIs, and its
    sample-efficiency curve."""
    from rliable import metrics

    config = kind.first.config
    games = [g for g in kind.runs if human_reference(g) is not None]
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
        entry.update(median=None, median_ci95=None, sample_efficiency=None)
        return _Scored(entry, None)
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
    return _Scored(entry, matrix)


def _sample_efficiency(
    kind: Kind, games: Sequence[str], k: int, smooth: float, reps: int
) -> dict[str, Any]:
    """IQM (the mean below MIN_SEEDS_FOR_IQM scores) of the human-normalised curves of the
    runs of the score matrix across runs x games at each step, with its bootstrap band."""
    from scipy.stats import trim_mean

    runs = [r for g in games for r in kind.runs[g][:k]]
    grid, curves = seed_curves(runs, smooth)
    normalised = np.stack(
        [normalise_scores(r.config.env, c) for r, c in zip(runs, curves, strict=True)]
    )
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


def _profile_taus(matrices: Sequence[np.ndarray]) -> np.ndarray:
    """Thresholds from min(0, lowest score) to max(1, highest score): random to human play at
    least, and every score."""
    lo = min([0.0] + [float(m.min()) for m in matrices])
    hi = max([1.0] + [float(m.max()) for m in matrices])
    return np.linspace(lo, hi, PROFILE_POINTS)


def _profile(matrix: np.ndarray | None, tau: np.ndarray, reps: int) -> dict[str, Any] | None:
    """Fraction of the runs x games above each tau (rliable's score distribution), with band."""
    if matrix is None:
        return None

    def fractions(scores: np.ndarray) -> np.ndarray:
        return (scores[..., None] > tau).mean(axis=(0, 1))

    band = None
    if matrix.shape[0] >= 2:
        _, cis = interval_estimates({"p": matrix}, fractions, reps=reps)
        band = cis["p"].tolist()
    return {"fraction": fractions(matrix).tolist(), "ci95": band}


def improvement(kind: Kind, baseline: Kind, reps: int) -> dict[str, Any]:
    """P(kind > baseline) over the games both have, with its CI (`reps` bootstrap resamples)
    and the verdict: study.json's entry of the comparison."""
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


def _raw_matrix(kind: Kind, games: Sequence[str]) -> tuple[np.ndarray, dict[str, list[int]]]:
    """Runs x games of raw final returns, each game's lowest k seeds (k: the smallest count)."""
    k = min(len(kind.runs[g]) for g in games)
    matrix = np.array([kind.finals[g][:k] for g in games], dtype=np.float64).T
    return matrix, {g: [r.config.seed for r in kind.runs[g][:k]] for g in games}
