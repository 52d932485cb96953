"""The suite's YAML defaults, shipped inside the installed package: `atari/<algo>.yaml` (RL Zoo's
Atari hyperparameters), `toy/<task>.yaml` (the toy tasks' settings per model) and
`studies/<spec>.yaml` (study specs).

Every reader finds them here, through importlib.resources, so a wheel install outside any checkout
has them too. In a checkout they are the files of this folder, and users spell them from the
repository root (`--config configs/atari/a2c.yaml`); `find_config` lets that spelling work from
any folder.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def shipped_config(relative: str) -> Path:
    """The shipped file `relative` of this package, e.g. "atari/a2c.yaml" (or a folder, "toy").

    The path may not exist; a reader reports it by name."""
    # pip unpacks wheels and an editable install points at the checkout, so the package is a
    # folder on disk: its files are plain paths, for the readers and for the run folders that
    # record which file they read (config.yaml's config_file).
    return Path(str(resources.files(__name__))).joinpath(relative)


def find_config(path: str | Path) -> Path:
    """A config path as a user gives it: an existing file as it is; else a relative
    `configs/<sub>/<name>` (a checkout's spelling) is the shipped file of that name where there
    is one; else `path` unchanged, for the reader to report as not found."""
    path = Path(path)
    if path.is_file() or path.is_absolute() or path.parts[:1] != ("configs",):
        return path
    shipped = shipped_config("/".join(path.parts[1:]))
    return shipped if shipped.is_file() else path
