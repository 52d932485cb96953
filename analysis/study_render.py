"""study.md of a study report: the tables (runs, per game, across games, probability of
improvement) and the page around them, from study.json's numbers alone."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from analysis.reference_scores import HUMAN_REFERENCE_SOURCE, RL_ZOO_SOURCE
from analysis.reliance import RELIANCE_COLUMN, reliance_cell
from analysis.report import (
    DEFAULT_SMOOTH,
    FINAL_RETURN_DEFINITION,
    STEPS_LABEL,
    escape_cell,
    fmt_interval,
    fmt_number,
    fmt_steps,
)
from analysis.run_progress import RUN_STATE_DEFINITION, run_progress_table
from analysis.stats import MIN_SEEDS_FOR_IQM

# The files of a study report; study.md links the pictures by these names.
OUTPUT_NAMES = ("study.md", "study.json", "study_profiles.png", "study_sample_efficiency.png")


def markdown_tables(summary: dict[str, Any]) -> str:
    """Per game one table (a row per group) and its notes; then the human-normalised aggregates
    per kind and the probabilities of improvement."""
    parts = []
    if "runs" in summary:
        parts.append("### Runs\n\n" + run_progress_table(summary["runs"]))
    for game in summary["games"]:
        parts.append(f"### {game['env']}\n\n{_game_table(game)}")
        if game["notes"]:
            parts.append("\n".join(f"- {escape_cell(n)}" for n in game["notes"]))
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
        finals = ", ".join(f"s{r['seed']} {fmt_number(r['final_return'])}" for r in g["runs"])
        zoo = g["rl_zoo"]
        cells = [
            escape_cell(g["label"]),
            str(g["n_seeds"]),
            fmt_number(g["mean"]),
            fmt_interval(g["ci95"]),
            finals,
            _hns(g["human_normalised_mean"]),
            "-" if zoo is None else f"{fmt_number(zoo['mean'])} +- {fmt_number(zoo['std'])}",
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
            escape_cell(a["label"]),
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
    return table + ("\n\n" + "\n".join(f"- {escape_cell(n)}" for n in notes) if notes else "")


def _improvement_table(summary: dict[str, Any]) -> str:
    if not summary["improvements"]:
        return "No group has a conv baseline with the same other settings: nothing to compare."
    header = ["comparison", "games", "P(X > conv) [95% CI]", "per game", "verdict"]
    lines = ["| " + " | ".join(header) + " |", "|---|---|---|---|---|"]
    for imp in summary["improvements"]:
        p = imp["probability"]
        cells = [
            escape_cell(f"{imp['label']} vs {imp['baseline']}"),
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
        f"smoothed by a trailing mean over {fmt_steps(smooth)} agent steps"
        if smooth
        else "not smoothed"
    )
    refs = ", ".join(
        f"{g} {fmt_number(r['random'])} / {fmt_number(r['human'])}"
        for g, r in summary["human_reference"].items()
    )
    curves = ", ".join(f"[{g['env']}]({g['curves_png']})" for g in summary["games"])
    notes = "".join(f"- {escape_cell(n)}\n" for n in summary["notes"]) or "- none\n"
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
