"""The game folders of a study: their runs, grouped per game, and the devices they trained on.

Layout: LOGDIR/<Game>/<run folder>/ (as ``agents/train.py`` writes a study: the run folder holds
``config.yaml`` and TensorBoard event files, possibly nested deeper, as ``compare_runs`` reads
them). Every immediate subfolder of LOGDIR that holds run folders is one game; the report's own
folder and folders without runs are passed over. A game folder that cannot be read (its runs
have logged no point for the tag yet, a config.yaml is broken) is left out and named, with the
reason.
"""

from __future__ import annotations

import json
from pathlib import Path

from analysis.groups import group_runs
from analysis.runs import CONFIG_NAME, Run, find_run_dirs, load_runs, warn
from common.errors import UsageError

# Per game (its config's env): the game folder and its runs grouped as compare_runs groups them.
GameFolders = dict[str, tuple[Path, dict[str, list[Run]]]]


def read_games(
    logdir: Path, out_dir: Path, tag: str, progress: bool
) -> tuple[GameFolders, list[dict[str, str]]]:
    """Per game (by its config's env, sorted): its folder and groups; plus the folders left
    out, with why (each also warned about on stderr).

    UsageError if no game folder holds runs with points for `tag`, if run folders lie directly
    under `logdir`, or if two game folders hold one game.
    """
    out_resolved = out_dir.resolve()
    games: GameFolders = {}
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


def study_devices(games: GameFolders) -> list[str]:
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
