"""Coordinate reliance of saved agents: the score change when their coordinates are ablated.

`measure_reliance` plays a run's agent as trained and under each ablation (agents.evaluate,
coordconv.coordinates) on the same game seeds and writes RUN_DIR/reliance.json: per ablation,
the per-game score changes (ablated - as trained, paired by game), their mean and Student t 95%
interval. `group_reliance` pools a group's runs for compare_runs and the study report.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from analysis.stats import t_interval
from common.files import atomic_write_json

RELIANCE_NAME = "reliance.json"

RELIANCE_COLUMN = "coordinates ablated: score change [95% CI]"


def measure_reliance(s: Any) -> dict[str, Any]:
    """`agents.evaluate.evaluate_run(s)` (eval.json), and with ablations in `s.coords` also
    RUN_DIR/reliance.json; returns the evaluation with `reliance` (the reliance.json content,
    or None) added."""
    # Imported here: compare_runs and the study report read reliance.json without loading
    # SB3, the emulator and torch.
    from agents.evaluate import evaluate_run

    result = evaluate_run(s)
    result["reliance"] = None
    if len(result["coords"]) > 1:
        result["reliance"] = reliance_record(result)
        atomic_write_json(Path(s.run_dir) / RELIANCE_NAME, result["reliance"])
    return result


def reliance_record(result: Mapping[str, Any]) -> dict[str, Any]:
    """reliance.json from an evaluation that played several coordinate modes, the as-trained
    agent first."""
    plays = result["coords"]
    first, *ablated = plays
    base = np.asarray(plays[first]["episode_rewards"], dtype=float)
    changes = {}
    for mode in ablated:
        play = plays[mode]
        diff = np.asarray(play["episode_rewards"], dtype=float) - base
        ci = t_interval(diff)
        changes[mode] = {
            "mean_reward": play["mean_reward"],
            "change": float(diff.mean()),
            "ci95": list(ci) if ci is not None else None,
            "relative_change": float(diff.mean() / base.mean()) if base.mean() else None,
            "per_game": diff.tolist(),
        }
    keep = ("run_dir", "model", "env", "algo", "extractor", "episodes", "deterministic")
    keep += ("precision", "seed", "device", "device_model")
    return {
        **{k: result[k] for k in keep if k in result},
        "as_trained": {
            "mean_reward": float(base.mean()),
            "episode_rewards": base.tolist(),
        },
        "modes": dict(plays),
        "changes": changes,
        "definition": (
            "change = score with the coordinates ablated - score as trained, paired by game "
            "(game i of every mode starts from env and action seed seed + i); 95% CI: "
            "Student t over the games"
        ),
    }


def read_reliance(run_dir: Path) -> dict[str, Any] | None:
    """A run folder's reliance.json, or None when it has none or it cannot be read."""
    try:
        return json.loads((run_dir / RELIANCE_NAME).read_text())
    except (OSError, ValueError):
        return None


def group_reliance(records: Sequence[Mapping[str, Any] | None]) -> dict[str, Any] | None:
    """Per ablation mode over a group's runs that have reliance.json: how many runs, their mean
    score change and relative change, and the t 95% CI across runs (two or more; with one run,
    that run's own CI across games). None when no run has one."""
    present = [r for r in records if r is not None]
    if not present:
        return None
    modes = sorted({m for r in present for m in r["changes"]})
    out: dict[str, Any] = {}
    for mode in modes:
        rows = [r["changes"][mode] for r in present if mode in r["changes"]]
        changes = [row["change"] for row in rows]
        relative = [row["relative_change"] for row in rows if row["relative_change"] is not None]
        ci = t_interval(changes) if len(rows) > 1 else rows[0]["ci95"]
        out[mode] = {
            "runs": len(rows),
            "games": sum(len(row["per_game"]) for row in rows),
            "change": float(np.mean(changes)),
            "ci95": list(ci) if ci is not None else None,
            "relative_change": float(np.mean(relative)) if relative else None,
        }
    return out


def reliance_cell(reliance: Mapping[str, Any] | None) -> str:
    """The table cell of a group's reliance: `zero -120.5 [-200.1, -40.9] (-18%, 2 runs)` per
    mode, or "-" without."""
    if not reliance:
        return "-"
    parts = []
    for mode, r in reliance.items():
        ci = "" if r["ci95"] is None else f" [{r['ci95'][0]:.1f}, {r['ci95'][1]:.1f}]"
        rel = "" if r["relative_change"] is None else f"{r['relative_change']:+.0%}, "
        runs = f"{r['runs']} run" + ("s" if r["runs"] != 1 else "")
        parts.append(f"{mode} {r['change']:+.1f}{ci} ({rel}{runs})")
    return "; ".join(parts)
