"""Run configs: YAML hyperparameters, `--set key=value` overrides, and their SB3 kwargs."""

from __future__ import annotations

import inspect
import math
import re
from pathlib import Path
from typing import Any

import torch
import yaml
from stable_baselines3 import A2C, PPO
from stable_baselines3.common.sb2_compat.rmsprop_tf_like import RMSpropTFLike
from stable_baselines3.common.utils import LinearSchedule

from common.errors import UsageError, check_choice

ALGOS = {"a2c": A2C, "ppo": PPO}
CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs" / "atari"
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


def check_numbers(hyperparams: dict[str, Any]) -> None:
    """Reject impossible sizes early, with the key named."""
    for key in ("n_envs", "n_timesteps", "frame_stack", "n_steps", "batch_size", "n_epochs"):
        value = hyperparams.get(key)
        if value is None:
            continue
        if not isinstance(value, int | float) or isinstance(value, bool) or value < 1:
            raise UsageError(f"{key} must be a number >= 1, got {value!r}")
        if isinstance(value, float) and (math.isnan(value) or value != int(value)):
            raise UsageError(f"{key} must be a whole number, got {value!r}")
