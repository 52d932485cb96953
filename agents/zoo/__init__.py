"""The suite's Atari setups as RL Baselines3 Zoo hyperparameters.

RL Zoo's trainer takes a Python module as its config (`--conf-file agents.zoo.a2c_coordconv`):
it imports the module and reads a dict `hyperparams` keyed by env id, falling back to the key
"atari" for any Atari id. Each module beside this one is one (algorithm, extractor) pair:

    python -m rl_zoo3.train --algo a2c --env MsPacmanNoFrameskip-v4 \
        --conf-file agents.zoo.a2c_coordconv

The numbers come from configs/atari/<algo>.yaml (which are RL Zoo's own Atari entries) and the
extractor from policies.policy_kwargs_for, so a Zoo-trained agent and a train_atari.py agent
build the same network with the same optimizer.
"""

from __future__ import annotations

from typing import Any

from stable_baselines3.common.utils import LinearSchedule

from agents.config import (
    ALGOS,
    SUITE_KEYS,
    default_config_path,
    load_hyperparams,
    sb3_kwargs,
    schedule,
)
from common.errors import UsageError, check_choice
from policies.registry import EXTRACTORS, policy_kwargs_for

ATARI_WRAPPER = "stable_baselines3.common.atari_wrappers.AtariWrapper"
# The keys RL Zoo turns into schedule objects itself; it takes only numbers and "lin_<start>".
ZOO_SCHEDULE_KEYS = ("learning_rate", "clip_range", "clip_range_vf")
# (module name, algorithm, extractor) of the config modules in this package.
CONFIG_MODULES = [
    (f"agents.zoo.{algo}_{extractor.replace('-', '_')}", algo, extractor)
    for algo in ALGOS
    for extractor in EXTRACTORS
]


def zoo_schedule(value: Any, key: str, strict: bool = True) -> Any:
    """A suite schedule (number or `linear(start, 0)`) in RL Zoo's spelling (number or
    `lin_<start>`); None stays None. Another line (a non-zero end) raises UsageError, or with
    `strict=False` is kept in the suite's spelling (for a config that is read, not run)."""
    if value is None or not isinstance(value, str):
        return value
    parsed = schedule(value, key)
    if isinstance(parsed, LinearSchedule) and parsed.end == 0:
        return f"lin_{float(parsed.start)}"
    if strict:
        raise UsageError(
            f"{key}: RL Zoo's schedules decay linearly to 0 (lin_<start>); cannot write {value!r}"
        )
    return value


def zoo_entry(
    algo: str,
    extractor: str,
    hyperparams: dict[str, Any] | None = None,
    with_r: bool = False,
    strict: bool = True,
) -> dict[str, Any]:
    """One RL Zoo hyperparameter entry (what its a2c.yml/ppo.yml hold under "atari") for the
    suite's `algo` with the named features extractor.

    `hyperparams` are a run's resolved hyperparameters (default: configs/atari/<algo>.yaml).
    RL Zoo's Atari protocol is kept (AtariWrapper, frame stacking, CnnPolicy); the suite's
    optimizer keys and the extractor become policy_kwargs holding the classes themselves, which
    a Python config may do and RL Zoo's YAML files cannot. `strict` as in `zoo_schedule`.
    """
    check_choice("algorithm", algo, ALGOS)
    if hyperparams is None:
        hyperparams = load_hyperparams(default_config_path(algo), algo)
    _, optimizer_kwargs = sb3_kwargs(hyperparams, algo)
    entry: dict[str, Any] = {
        "env_wrapper": [ATARI_WRAPPER],
        "frame_stack": int(hyperparams.get("frame_stack", 4)),
        "policy": "CnnPolicy",
        "n_envs": int(hyperparams.get("n_envs", 1)),
        "n_timesteps": float(hyperparams["n_timesteps"]),
    }
    for key, value in hyperparams.items():
        if key in SUITE_KEYS:
            continue
        if key in ZOO_SCHEDULE_KEYS:
            value = zoo_schedule(value, key, strict)
            if value is None:
                continue  # RL Zoo rejects None; SB3's default (no clipping) is what None means
        entry[key] = value
    entry["policy_kwargs"] = policy_kwargs_for(extractor, with_r, **optimizer_kwargs)
    return entry


def zoo_hyperparams(algo: str, extractor: str) -> dict[str, dict[str, Any]]:
    """The `hyperparams` dict of an RL Zoo config module: one "atari" entry, which RL Zoo uses
    for every Atari env id (MsPacmanNoFrameskip-v4, BreakoutNoFrameskip-v4, ...)."""
    return {"atari": zoo_entry(algo, extractor)}
