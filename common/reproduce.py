"""What every reproduce_* script shares: a budget, seeds, a device, a results page, a bar."""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import textwrap
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from common.cli import add_device_argument, add_settings_arguments
from common.errors import check_at_least, check_choice


def add_reproduce_args(
    p: argparse.ArgumentParser, out: str, seeds: int | str, budgets: str
) -> None:
    """--budget, --seeds, --device, --out and --no-progress; `budgets` describes the budgets.
    `seeds` is the default seed count, or the help's words for a default the script fills in
    itself (--seeds then defaults to None)."""
    p.add_argument("--budget", default="quick", help=budgets)
    default = seeds if isinstance(seeds, int) else None
    p.add_argument("--seeds", type=int, default=default, help=f"seeds per cell ({seeds})")
    add_device_argument(p)
    p.add_argument("--out", default=out, help=f"markdown file to update ({out})")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def add_override_args(
    p: argparse.ArgumentParser, settings: type, names: Sequence[str], trainer: str
) -> None:
    """The flags of the fields `names` of the settings dataclass `settings`, as `trainer` (a
    script) declares them, in a group of their own; each defaults to None: given, it replaces
    the budget's value in every run (`given_overrides`)."""
    about = (
        f"{trainer}'s flags: each one given replaces the budget's value in every run (smoke "
        f"runs, other data); unset, every run takes the budget's value, or {trainer}'s default "
        "where the budget sets none."
    )
    # Wrapped here: the scripts' raw-description formatter keeps a group's text as it is.
    group = p.add_argument_group("budget overrides", textwrap.fill(about, 94))
    add_settings_arguments(group, settings, names, unset=True)


def given_overrides(args: argparse.Namespace, names: Sequence[str]) -> dict[str, Any]:
    """The values of `names` given on the command line (not None), by name."""
    return {k: getattr(args, k) for k in names if getattr(args, k) is not None}


def check_reproduce_args(args: argparse.Namespace, budgets: Mapping) -> None:
    check_choice("--budget", args.budget, budgets)
    check_at_least("--seeds", args.seeds)


def progress_bar(args: argparse.Namespace, desc: str) -> Callable[[Iterable], Iterable]:
    """A tqdm bar over a run list, silent with --no-progress."""
    from tqdm import tqdm

    return lambda it: tqdm(list(it), desc=desc, disable=args.no_progress)


def seed_cell(values: list[float], digits: int = 3) -> str:
    """A table cell: the mean over seeds, with the min-max range when there are several."""
    mean = statistics.mean(values)
    if len(values) == 1:
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ({min(values):.{digits}f}-{max(values):.{digits}f})"


def run_models(
    train: Callable[[Any, Any], dict[str, Any]],
    base: Any,
    models: Sequence[str],
    seeds: int,
    device: Any,
    progress: Callable[[Iterable], Iterable] = lambda it: it,
) -> list[dict[str, Any]]:
    """train(replace(base, model=m, seed=s), device) for each seed and model, seed-major: one
    seed gives every model the same data."""
    runs = [(seed, model) for seed in range(seeds) for model in models]
    return [train(replace(base, model=m, seed=seed), device) for seed, m in progress(runs)]


def keeping_files(
    train: Callable[[Any, Any], dict[str, Any]], stem: Path, files: Mapping[str, str]
) -> Callable[[Any, Any], dict[str, Any]]:
    """`train` run in a temporary folder (settings.out), keeping only `files`: each run's
    <name> moves to <stem>_<model>_s<seed><suffix> for each name -> suffix."""

    def run(s: Any, device: Any) -> dict[str, Any]:
        with tempfile.TemporaryDirectory() as tmp:
            result = train(replace(s, out=tmp), device)
            stem.parent.mkdir(parents=True, exist_ok=True)  # --out's folder may not exist yet
            for name, suffix in files.items():
                shutil.move(
                    Path(tmp) / name, stem.with_name(f"{stem.name}_{s.model}_s{s.seed}{suffix}")
                )
        return result

    return run
