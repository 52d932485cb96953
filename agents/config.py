"""Run configs: YAML hyperparameters, `--set key=value` overrides, and their SB3 kwargs."""

from __future__ import annotations

import collections.abc
import inspect
import math
import re
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import yaml
from sb3_contrib import QRDQN
from stable_baselines3 import A2C, DQN, PPO
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
from stable_baselines3.common.sb2_compat.rmsprop_tf_like import RMSpropTFLike
from stable_baselines3.common.utils import LinearSchedule

from common.errors import UsageError, check_choice
from configs import shipped_config

CONFIG_DIR = shipped_config("atari")
ALGOS: dict[str, type[BaseAlgorithm]] = {"a2c": A2C, "ppo": PPO, "dqn": DQN, "qrdqn": QRDQN}
# Keys the suite itself reads; every other hyperparameter goes to the SB3 algorithm unchanged.
SUITE_KEYS = ("n_envs", "n_timesteps", "frame_stack", "optimizer", "optimizer_eps")
OPTIMIZERS = {
    "RMSpropTFLike": RMSpropTFLike,
    "Adam": torch.optim.Adam,
    "RMSprop": torch.optim.RMSprop,
}
# Set by the run itself, never from a config.
_RESERVED = {"self", "policy", "env", "tensorboard_log", "policy_kwargs", "verbose", "seed"}
_RESERVED |= {"device", "_init_setup_model"}
_LINEAR = re.compile(r"linear\(\s*([^,\s]+)\s*,\s*([^,\s)]+)\s*\)")


def is_off_policy(algo: str) -> bool:
    """Whether `algo` learns from a replay buffer (DQN, QR-DQN) rather than fresh rollouts."""
    return issubclass(ALGOS[algo], OffPolicyAlgorithm)


def default_config_path(algo: str) -> Path:
    """configs/atari/<algo>.yaml."""
    return CONFIG_DIR / f"{algo}.yaml"


def allowed_keys(algo: str) -> set[str]:
    """Hyperparameter names a config or `--set` may use for `algo`."""
    params = set(inspect.signature(ALGOS[algo].__init__).parameters) - _RESERVED
    return params | set(SUITE_KEYS)


def load_hyperparams(path: str | Path, algo: str) -> dict[str, Any]:
    """Read a YAML mapping of hyperparameters and check every key is one `algo` knows."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise UsageError(f"config file not found: {path}") from None
    except (OSError, yaml.YAMLError) as err:
        raise UsageError(
            f"config file {path} is not readable YAML: {err}".splitlines()[0]
        ) from None
    if not isinstance(data, dict):
        raise UsageError(f"config file {path} must hold a mapping of hyperparameters")
    for key in data:
        _check_key(key, algo, f"in {path}")
    return data


def _check_key(key: str, algo: str, where: str) -> None:
    if key not in allowed_keys(algo):
        import difflib

        near = difflib.get_close_matches(key, sorted(allowed_keys(algo)), n=3)
        hint = f"; nearest: {', '.join(near)}" if near else ""
        raise UsageError(f"unknown hyperparameter {key!r} {where} for {algo}{hint}")


def parse_value(text: str) -> Any:
    """A `--set` value: YAML scalar or list, with nan/inf accepted as floats."""
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    if isinstance(value, str):
        try:
            return float(value)  # "nan", "inf", "1e-3" (YAML 1.1 reads 1e-3 as a string)
        except ValueError:
            return value
    return value


def apply_overrides(hyperparams: dict[str, Any], sets: list[str], algo: str) -> dict[str, Any]:
    """Return `hyperparams` updated by `key=value` strings; unknown keys raise UsageError."""
    out = dict(hyperparams)
    for item in sets:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UsageError(f"--set expects key=value, got {item!r}")
        _check_key(key, algo, "in --set")
        out[key] = parse_value(text.strip())
    return out


def schedule(value: Any, key: str) -> Any:
    """A number, or `linear(start, end)` (also RL Zoo's `lin_<start>`), as SB3 takes it."""
    if isinstance(value, str):
        match = _LINEAR.fullmatch(value.strip())
        if match:
            start, end = float(match.group(1)), float(match.group(2))
            return LinearSchedule(start, end, end_fraction=1.0)
        if value.startswith("lin_"):
            return LinearSchedule(float(value[4:]), 0.0, end_fraction=1.0)
        raise UsageError(f"{key}: cannot read schedule {value!r}; use a number or linear(a, b)")
    return value


class ScaledProgress:
    """`schedule` run `1 / scale` times slower: value(p) = schedule(scale * p).

    SB3 evaluates a schedule at progress_remaining = 1 - steps / total. When a run is extended
    to a new total, SB3's progress jumps back up; scaling it keeps the schedule where it was
    and stretches the rest of it over the new total (see agents.train.continue_schedules).
    A module-level class, so saved agents holding it load with plain `A2C.load`.
    """

    def __init__(self, schedule: Callable[[float], float], scale: float) -> None:
        self.schedule = schedule
        self.scale = scale

    def __call__(self, progress_remaining: float) -> float:
        return self.schedule(self.scale * progress_remaining)

    def __repr__(self) -> str:
        return f"ScaledProgress({self.schedule!r}, scale={self.scale})"


def sb3_kwargs(hyperparams: dict[str, Any], algo: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split hyperparameters into (algorithm kwargs, extra policy_kwargs) for SB3."""
    algo_kwargs = {k: v for k, v in hyperparams.items() if k not in SUITE_KEYS}
    for key in ("learning_rate", "clip_range", "clip_range_vf"):
        if algo_kwargs.get(key) is not None:
            algo_kwargs[key] = schedule(algo_kwargs[key], key)
    policy_extra: dict[str, Any] = {}
    name = hyperparams.get("optimizer")
    if name is not None:
        check_choice("optimizer", name, OPTIMIZERS)
        policy_extra["optimizer_class"] = OPTIMIZERS[name]
        if hyperparams.get("optimizer_eps") is not None:
            policy_extra["optimizer_kwargs"] = {"eps": float(hyperparams["optimizer_eps"])}
    return algo_kwargs, policy_extra


# Bounds SB3's constructors assume but do not all check: (low, high, low excluded). Schedules are
# checked at both ends. NaN and inf pass as the floats they are (`--set ent_coef=nan` is how the
# tests make a run diverge on purpose).
_AT_LEAST_ONE, _NON_NEGATIVE, _POSITIVE, _UNIT = (
    (1, None, False),
    (0, None, False),
    (0, None, True),
    (0, 1, False),
)
BOUNDS: dict[str, tuple[float, float | None, bool]] = {
    "n_envs": _AT_LEAST_ONE,
    "n_timesteps": _AT_LEAST_ONE,
    "frame_stack": _AT_LEAST_ONE,
    "n_steps": _AT_LEAST_ONE,
    "batch_size": _AT_LEAST_ONE,
    "n_epochs": _AT_LEAST_ONE,
    "stats_window_size": _AT_LEAST_ONE,
    "sde_sample_freq": (-1, None, False),
    "gamma": _UNIT,
    "gae_lambda": _UNIT,
    "learning_rate": _NON_NEGATIVE,
    "ent_coef": _NON_NEGATIVE,
    "vf_coef": _NON_NEGATIVE,
    "clip_range": _NON_NEGATIVE,
    "clip_range_vf": _NON_NEGATIVE,
    "max_grad_norm": _POSITIVE,
    "rms_prop_eps": _POSITIVE,
    "optimizer_eps": _POSITIVE,
    "target_kl": _POSITIVE,
    # DQN / QR-DQN
    "buffer_size": _AT_LEAST_ONE,
    "learning_starts": _NON_NEGATIVE,
    "tau": _UNIT,
    "train_freq": _AT_LEAST_ONE,
    "gradient_steps": (-1, None, False),  # -1: as many gradient steps as env steps collected
    "target_update_interval": _AT_LEAST_ONE,
    "exploration_fraction": _UNIT,
    "exploration_initial_eps": _UNIT,
    "exploration_final_eps": _UNIT,
}
# The suite's own keys, typed as SB3's signatures type the rest.
SUITE_KEY_TYPES: dict[str, Any] = {
    "n_envs": int,
    "n_timesteps": int,
    "frame_stack": int,
    "optimizer": str,
    "optimizer_eps": float,
}
_KIND_WORDS = {
    "int": "a whole number",
    "float": "a number",
    "bool": "true or false",
    "schedule": "linear(start, end)",
    "none": "null",
    "dict": "a mapping",
    "str": "a name",
}


def _kinds(annotation: Any) -> list[str]:
    """What YAML values a parameter's type annotation admits, as _KIND_WORDS keys."""
    members = typing.get_args(annotation) if _is_union(annotation) else (annotation,)
    kinds = []
    for member in members:
        origin = typing.get_origin(member) or member
        if member is type(None):
            kinds.append("none")
        elif member in (bool, int, float, str):
            kinds.append(member.__name__)
        elif origin is collections.abc.Callable:
            kinds.append("schedule")
        elif origin is dict:
            kinds.append("dict")
        # Anything else (type[RolloutBuffer], ...) has no spelling in a config file.
    return kinds


def _is_union(annotation: Any) -> bool:
    return typing.get_origin(annotation) in (typing.Union, types.UnionType)


def _annotations(algo: str) -> dict[str, Any]:
    params = inspect.signature(ALGOS[algo].__init__).parameters
    return {**{k: p.annotation for k, p in params.items()}, **SUITE_KEY_TYPES}


def _checked_value(key: str, value: Any, kinds: list[str]) -> Any:
    """`value` as SB3 takes it (whole floats as int where an int is due); UsageError if its type
    is not one of `kinds`."""
    if value is None and "none" in kinds:
        return value
    if isinstance(value, bool):
        if "bool" in kinds:
            return value
    elif isinstance(value, int | float):
        if "int" in kinds and not ({"float", "schedule"} & set(kinds)):
            if isinstance(value, float) and not (math.isfinite(value) and value == int(value)):
                raise UsageError(f"{key} must be a whole number, got {value!r}")
            return int(value)
        if "float" in kinds:
            return value
    elif isinstance(value, str):
        if "schedule" in kinds:
            return value  # its syntax is checked by schedule(), in sb3_kwargs
        if "str" in kinds:
            return value
    elif isinstance(value, dict) and "dict" in kinds:
        return value
    words = " or ".join(_KIND_WORDS[k] for k in kinds) or "set by the suite, not a config"
    raise UsageError(f"{key} must be {words}, got {value!r}")


def _check_bounds(key: str, value: Any) -> None:
    if key not in BOUNDS or isinstance(value, bool) or value is None:
        return
    if isinstance(value, str):  # a schedule: both ends
        sched = schedule(value, key)
        ends = [sched.start, sched.end]
    else:
        ends = [value]
    low, high, low_excluded = BOUNDS[key]
    for end in ends:
        # Written so that NaN passes: only a value known to be outside is refused.
        if end < low or (low_excluded and end == low) or (high is not None and end > high):
            if high is not None:
                raise UsageError(f"{key} must be in [{low}, {high}], got {value!r}")
            sign = ">" if low_excluded else ">="
            raise UsageError(f"{key} must be a number {sign} {low}, got {value!r}")


def check_hyperparams(hyperparams: dict[str, Any], algo: str) -> dict[str, Any]:
    """Type- and range-check every hyperparameter against what SB3's `algo` constructor takes
    (its signature's annotations) and the suite's own keys; return them with whole-number
    floats made ints where an int is due. The first bad value raises UsageError naming it."""
    annotations = _annotations(algo)
    out = {}
    for key, value in hyperparams.items():
        _check_key(key, algo, "in the config")
        out[key] = _checked_value(key, value, _kinds(annotations[key]))
        _check_bounds(key, out[key])
    return out
