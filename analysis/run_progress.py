"""Where the runs of a study stand (the study report's "Runs" table), from the run folders.

Per game and run kind (the run folder's name without its seed): finished (train_result.json
says finished at the run's total), running (its progress.json, or else its newest file, changed
in the last RUNNING_WINDOW_S seconds), stopped (a folder otherwise: interrupted, diverged or its
worker gone; the next study command resumes it) and to do (planned by the spec, no folder yet;
known only when the planned runs are given, as study.py gives them).
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from agents.run_dir import RESULT_NAME, load_run_config
from analysis.report import escape_cell
from analysis.runs import CONFIG_NAME, find_run_dirs
from common.errors import UsageError

# agents.callbacks.ProgressFile.NAME (not imported: that module needs SB3 and torch).
PROGRESS_NAME = "progress.json"


# A training run rewrites its progress.json every few seconds; an evaluation of a few full games
# pauses that for a minute or two. Ten quiet minutes: the run is not training.
RUNNING_WINDOW_S = 600


RUN_STATES = ("finished", "running", "stopped", "to do")


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
        cells = [escape_cell(g["game"]), escape_cell(g["kind"])]
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
