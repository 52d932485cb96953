"""Self-describing run folders: runs/<Game>/<algo>_<extractor>_s<seed>[_N]/."""

from __future__ import annotations

import platform
import shlex
import sys
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml

from common.errors import UsageError
from common.files import atomic_write_json, atomic_write_text

if TYPE_CHECKING:  # run folders are read (analysis, compare_runs) without importing torch
    import torch

CONFIG_NAME = "config.yaml"
RESULT_NAME = "train_result.json"  # how the run ended; written last
# train_result.json's "status": a run's whole total trained, stopped by Ctrl-C (model saved),
# stopped by a NaN or infinite loss or weight (model not saved), or a resume with nothing to do.
TrainStatus = Literal["finished", "interrupted", "diverged", "unchanged"]


def default_run_name(
    algo: str, extractor: str, with_r: bool, seed: int, precision: str = "fp32"
) -> str:
    """`a2c_coordconv_s0`; `_r` marks the radius channel, `_bf16` a bf16 run:
    `a2c_coordconv_r_bf16_s0`."""
    bf16 = "" if precision == "fp32" else f"_{precision}"
    return f"{algo}_{extractor}{'_r' if with_r else ''}{bf16}_s{seed}"


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


def write_run_metadata(
    run_dir: Path, config: dict[str, Any], argv: list[str], device: torch.device
) -> None:
    """config.yaml (fully resolved), command.txt and versions.json (library versions and
    `device_record(device)`, the device this session trains on), each written atomically.

    `argv` is the command line from the program on: a script (`scripts/train_atari.py`) is
    recorded run by the interpreter, an installed command (`coordconv-train-atari`) alone."""
    from common.devices import device_record  # training imports torch; reading runs does not

    atomic_write_text(run_dir / CONFIG_NAME, yaml.safe_dump(config, sort_keys=False))
    interpreter = [Path(sys.executable).name] if argv[0].endswith(".py") else []
    command = shlex.join([*interpreter, *argv])
    previous = (run_dir / "command.txt").read_text() if (run_dir / "command.txt").exists() else ""
    atomic_write_text(run_dir / "command.txt", previous + command + "\n")
    atomic_write_json(run_dir / "versions.json", {**versions(), "device": device_record(device)})


# What every run's config.yaml holds, whoever reads it (resume, evaluate, export, analysis).
REQUIRED_KEYS = ("env", "algo", "extractor", "with_r", "seed", "hyperparams")


def upgrade_config(config: dict[str, Any]) -> dict[str, Any]:
    """A config.yaml of an older run in today's keys, in place: before `backend` had its own key,
    `vec_env` named the backend (ale or sb3), and runs older still used the sb3 one; runs from
    before `precision` trained in fp32, and before `tf32` with TF32 off (the suite never
    turned it on)."""
    config.setdefault("precision", "fp32")
    config.setdefault("tf32", False)
    if "backend" not in config:
        config["backend"] = config.pop("vec_env", "sb3")
        config["vec_env"] = "dummy"
    return config


def load_run_config(path: str | Path) -> dict[str, Any]:
    """A run's config.yaml, checked and upgraded (`upgrade_config`); UsageError naming the file
    and the bad key if it is unreadable, not a mapping, or lacks or mistypes a required key."""
    path = Path(path)
    try:
        config = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        raise UsageError(f"cannot read {path}: {' '.join(str(err).split())}") from None
    if not isinstance(config, dict):
        raise UsageError(f"{path} is not a YAML mapping")
    missing = [k for k in REQUIRED_KEYS if k not in config]
    if missing:
        raise UsageError(f"{path} lacks required key(s) {', '.join(repr(k) for k in missing)}")
    for key in ("env", "algo", "extractor"):
        if not isinstance(config[key], str) or not config[key]:
            raise UsageError(f"{path}: key {key!r} must be a non-empty string, got {config[key]!r}")
    if not isinstance(config["with_r"], bool):
        raise UsageError(f"{path}: key 'with_r' must be true or false, got {config['with_r']!r}")
    # bool is an int subclass, and `seed: true` is a typo, not seed 1.
    if not isinstance(config["seed"], int) or isinstance(config["seed"], bool):
        raise UsageError(f"{path}: key 'seed' must be an integer, got {config['seed']!r}")
    if not isinstance(config["hyperparams"], dict):
        raise UsageError(f"{path}: key 'hyperparams' must be a mapping")
    return upgrade_config(config)


def read_run_config(run_dir: str | Path) -> dict[str, Any]:
    """The resolved config of an existing run folder (`load_run_config`); a missing folder or
    config raises UsageError."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UsageError(f"run folder not found: {run_dir}")
    if not (run_dir / CONFIG_NAME).is_file():
        raise UsageError(f"not a run folder (no {CONFIG_NAME}): {run_dir}")
    return load_run_config(run_dir / CONFIG_NAME)
