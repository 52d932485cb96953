"""Self-describing run folders: runs/<Game>/<algo>_<extractor>_s<seed>[_N]/."""

from __future__ import annotations

import platform
import shlex
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml

from common.errors import UsageError
from common.files import atomic_write_json, atomic_write_text

CONFIG_NAME = "config.yaml"


def default_run_name(algo: str, extractor: str, with_r: bool, seed: int) -> str:
    """`a2c_coordconv_s0`; `_r` marks the radius channel: `a2c_coordconv_r_s0`."""
    return f"{algo}_{extractor}{'_r' if with_r else ''}_s{seed}"


def create_run_dir(logdir: str | Path, game: str, name: str) -> Path:
    """Make a new, empty run folder; a taken name gets a suffix _2, _3, ... (never reused)."""
    if not name or "/" in name or name.startswith("."):
        raise UsageError(f"--run-name {name!r} must be a plain folder name")
    parent = Path(logdir) / game
    parent.mkdir(parents=True, exist_ok=True)
    for n in range(1, 10_000):
        path = parent / (name if n == 1 else f"{name}_{n}")
        try:
            path.mkdir()  # atomic: two runs started together cannot share a folder
        except FileExistsError:
            continue
        return path
    raise UsageError(f"too many runs named {name!r} in {parent}")


def versions() -> dict[str, str]:
    """Versions of the libraries a run's numbers depend on."""
    out = {"python": platform.python_version()}
    for dist in ("torch", "stable-baselines3", "gymnasium", "ale-py", "numpy"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "not installed"
    return out


def write_run_metadata(run_dir: Path, config: dict[str, Any], argv: list[str]) -> None:
    """config.yaml (fully resolved), command.txt and versions.json, each written atomically."""
    atomic_write_text(run_dir / CONFIG_NAME, yaml.safe_dump(config, sort_keys=False))
    command = shlex.join([Path(sys.executable).name, *argv])
    previous = (run_dir / "command.txt").read_text() if (run_dir / "command.txt").exists() else ""
    atomic_write_text(run_dir / "command.txt", previous + command + "\n")
    atomic_write_json(run_dir / "versions.json", versions())


def read_run_config(run_dir: str | Path) -> dict[str, Any]:
    """The resolved config of an existing run; a missing or corrupt one raises UsageError."""
    path = Path(run_dir) / CONFIG_NAME
    if not Path(run_dir).is_dir():
        raise UsageError(f"run folder not found: {run_dir}")
    try:
        config = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise UsageError(f"not a run folder (no {CONFIG_NAME}): {run_dir}") from None
    except (OSError, yaml.YAMLError, UnicodeDecodeError):
        raise UsageError(f"corrupt run config: {path}") from None
    required = ("env", "algo", "extractor", "seed", "hyperparams")
    if not isinstance(config, dict) or any(k not in config for k in required):
        raise UsageError(f"corrupt run config (needs {', '.join(required)}): {path}")
    return config
