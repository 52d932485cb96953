"""Statistics across seeds: final returns, t intervals, the IQM with rliable's bootstrap, curves."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from analysis.runs import Run

FINAL_FRACTION = 0.1


CURVE_POINTS = 100


BOOTSTRAP_REPS = 2000


BOOTSTRAP_SEED = 0


# Below 5 seeds the 25% trimmed mean drops at most one seed per side: no robust estimate.
MIN_SEEDS_FOR_IQM = 5


def final_return(steps: np.ndarray, values: np.ndarray, fraction: float = FINAL_FRACTION) -> float:
    """Mean of the values whose step lies in the last `fraction` of the step range."""
    return float(np.mean(values[final_window(steps, fraction)]))


def final_window(steps: np.ndarray, fraction: float = FINAL_FRACTION) -> np.ndarray:
    """Which points `final_return` averages: those whose step lies in the last `fraction` of the
    step range (steps >= last - fraction * (last - first)), as a boolean mask."""
    first, last = float(np.min(steps)), float(np.max(steps))
    return steps >= last - fraction * (last - first)


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
    from rliable import metrics

    points, intervals = interval_estimates(
        {"iqm": x[:, None]},
        lambda scores: np.array([metrics.aggregate_iqm(scores)]),
        seed=seed,
        reps=reps,
    )
    lo, hi = intervals["iqm"][:, 0]
    return float(points["iqm"][0]), (float(lo), float(hi))


def interval_estimates(
    score_dict: Mapping[str, Any],
    func: Callable[..., Any],
    seed: int = BOOTSTRAP_SEED,
    reps: int = BOOTSTRAP_REPS,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """rliable's `get_interval_estimates` (95% stratified bootstrap, percentile intervals),
    reproducible: the same inputs and `seed` give the same intervals, and NumPy's global RNG is
    left as it was.

    `score_dict` maps a name to a (runs x tasks [x ...]) array, or to a list of such arrays
    resampled independently (e.g. two algorithms' scores for the probability of improvement).
    Returns rliable's point estimates and (2 x ...) intervals, by name.
    """
    from rliable import library as rly

    # rliable 1.2 resamples with NumPy's global RNG (its random_state argument does not reach
    # the resampling), so seed that for a reproducible interval and leave it as it was.
    saved = np.random.get_state()
    np.random.seed(seed)
    try:
        return rly.get_interval_estimates(score_dict, func, reps=reps)
    finally:
        np.random.set_state(saved)


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
    return (grid, *mean_band(curves))


def mean_band(curves: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
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
