"""Saving and finding SB3 models and replay buffers: atomic writes, checkpoint names, which model
to load."""

from __future__ import annotations

import json
import os
import re
import sys
import zipfile
from pathlib import Path
from typing import Any

import torch
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm

from agents.config import ALGOS
from common.errors import UsageError
from common.files import atomic_path

CHECKPOINT_DIR = "checkpoints"
_CHECKPOINT = re.compile(r"model_(\d+)_steps\.zip")
_REPLAY_BUFFER_GLOB = "replay_buffer_*_steps.pkl"


def load_agent(algo: str, path: Path, **kwargs: Any) -> BaseAlgorithm:
    """`ALGOS[algo].load(path, **kwargs)`: SB3's load of a saved agent.

    A file SB3 cannot read (not its zip, a missing entry, saved by an incompatible version)
    raises UsageError naming the file, the error's type and its message, with the error as its
    cause. Running out of memory is not the file's fault and propagates as it is."""
    try:
        return ALGOS[algo].load(path, **kwargs)
    except (MemoryError, torch.OutOfMemoryError):
        raise
    except Exception as err:
        detail = str(err).strip().splitlines()
        message = f"{type(err).__name__}: {detail[0]}" if detail else type(err).__name__
        raise UsageError(f"cannot load model {path}: {message}") from err


def save_model_atomic(model: BaseAlgorithm, path: str | Path) -> Path:
    """model.save() to a temporary file beside `path`, then rename over it.

    SB3's own save (and its Checkpoint/Eval callbacks) write in place, so a crash mid-save
    would leave a broken zip where the last good model was.
    """
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        model.save(f)
        f.flush()
        os.fsync(f.fileno())
    return Path(path)


def replay_buffer_path(run_dir: Path, steps: int) -> Path:
    """RUN_DIR/replay_buffer_<steps>_steps.pkl: an off-policy run's replay buffer as it was when
    its model of `steps` steps (model.zip or a checkpoint) was saved."""
    return run_dir / f"replay_buffer_{steps}_steps.pkl"


def save_replay_buffer_atomic(model: OffPolicyAlgorithm, run_dir: Path) -> Path:
    """model.save_replay_buffer() to replay_buffer_<steps>_steps.pkl atomically, then delete the
    run's older buffers: each is gigabytes (2.82 GB for the default DQN buffer), so only the one
    matching the newest saved model is kept."""
    path = replay_buffer_path(run_dir, model.num_timesteps)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        model.save_replay_buffer(f)
        f.flush()
        os.fsync(f.fileno())
    for other in run_dir.glob(_REPLAY_BUFFER_GLOB):
        if other != path:
            other.unlink(missing_ok=True)
    return path


def checkpoint_path(run_dir: Path, steps: int) -> Path:
    """checkpoints/model_<steps>_steps.zip, SB3 CheckpointCallback's naming."""
    return run_dir / CHECKPOINT_DIR / f"model_{steps}_steps.zip"


def list_checkpoints(run_dir: Path) -> dict[int, Path]:
    """Saved checkpoints by step count."""
    found = {}
    for path in (run_dir / CHECKPOINT_DIR).glob("model_*_steps.zip"):
        match = _CHECKPOINT.fullmatch(path.name)
        if match:
            found[int(match.group(1))] = path
    return dict(sorted(found.items()))


def model_path(run_dir: Path, which: str) -> Path:
    """`best`, `final` or a checkpoint's step count -> the model file; missing raises UsageError."""
    if which == "best":
        path = run_dir / "best_model.zip"
    elif which == "final":
        path = run_dir / "model.zip"
    elif which.isdigit():
        checkpoints = list_checkpoints(run_dir)
        if int(which) not in checkpoints:
            have = ", ".join(map(str, checkpoints)) or "none"
            raise UsageError(f"no checkpoint at step {which} in {run_dir} (have: {have})")
        path = checkpoints[int(which)]
    else:
        raise UsageError(f"--checkpoint must be best, final or a step count, got {which!r}")
    if not path.is_file():
        raise UsageError(f"model file not found: {path}")
    if not zipfile.is_zipfile(path):
        raise UsageError(f"corrupt model file (not a zip): {path}")
    return path


def saved_steps(path: Path) -> int:
    """The agent steps an SB3 model file was saved at; UsageError if the file is not a whole,
    readable SB3 zip (a truncated or corrupt file)."""
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()  # every member's CRC: a file cut short fails here or above
            if bad is not None:
                raise zipfile.BadZipFile(f"bad member {bad}")
            return int(json.loads(archive.read("data"))["num_timesteps"])
    except (OSError, zipfile.BadZipFile, KeyError, ValueError, TypeError) as err:
        raise UsageError(f"unreadable model file {path}: {type(err).__name__}") from None


def newest_model(run_dir: Path) -> tuple[Path, int]:
    """The run's model to resume from: the one with the most steps among model.zip (saved at the
    end or on Ctrl-C) and the checkpoints. Unreadable ones are skipped with a warning on stderr;
    UsageError if none is readable."""
    candidates = list(list_checkpoints(run_dir).items())
    final = run_dir / "model.zip"
    if final.is_file():
        # Its step count is inside the file; a broken one sorts first and is reported there.
        try:
            candidates.append((saved_steps(final), final))
        except UsageError:
            candidates.append((sys.maxsize, final))
    skipped = []
    for _, path in sorted(candidates, key=lambda c: c[0], reverse=True):
        try:
            steps = saved_steps(path)
        except UsageError as err:
            skipped.append(str(err))
            continue
        for reason in skipped:
            print(f"warning: {reason}; resuming from an older one", file=sys.stderr)
        return path, steps
    found = f" ({'; '.join(skipped)})" if skipped else ""
    raise UsageError(f"no readable model to resume from in {run_dir}{found}")
