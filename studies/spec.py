"""Study specs: a YAML file naming games x algos x extractors x with_r x seeds, and its runs.

A spec's top-level keys (other tools read them, so the names are the contract):

    games:        [MsPacman, Breakout]     # any spelling resolve_game takes
    algos:        [a2c]                    # agents.config.ALGOS: a2c, ppo, dqn, qrdqn
    extractors:   [conv, coordconv]        # policies.registry.EXTRACTORS
    with_r:       [false]                  # true adds the radius channel (CoordConv only)
    seeds:        [0, 1, 2]
    timesteps:    500000                   # agent steps per run
    set:          []                       # KEY=VALUE hyperparameter overrides, as --set
    eval_freq:    100000                   # 0: no evaluation during training
    cpus_per_run: 2                        # Ray resources of one run
    gpus_per_run: 0                        # fractions share a GPU: 0.25 runs four per GPU

and optionally `checkpoint_freq` (agent steps; default 100,000 or a tenth of the run, whichever
is larger, so that a preempted run loses little), `precision` (a list of fp32 and/or bf16,
as train_atari.py's --precision; default [fp32]), `save_replay_buffer` (true or false, as
train_atari.py's --save-replay-buffer, for the dqn and qrdqn runs: a preempted one then resumes
with its buffer, 2.82 GB on disk per run; default false) and `tf32` (true or false, as
train_atari.py's --tf32, for runs that land on a GPU; default false). The runs are the product
of the lists; conv with with_r true is no model and is left out of the product.

A run's device follows its resources: `gpus_per_run: 0` trains on the CPU (never on a GPU that
Ray did not give it), more trains on `cuda`, the GPU Ray gives the task (Ray sets
CUDA_VISIBLE_DEVICES to it, so cuda means cuda:0 there). A run trains on one device, so
`gpus_per_run` is at most 1.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from agents.config import ALGOS, is_off_policy
from agents.run_dir import default_run_name
from agents.train import TrainSettings, resolve_config
from common.errors import UsageError
from configs import find_config
from envs.names import resolve_game
from policies.precision import PRECISIONS
from policies.registry import EXTRACTORS, policy_kwargs_for

REQUIRED_KEYS = (
    "games", "algos", "extractors", "with_r", "seeds", "timesteps", "set", "eval_freq",
    "cpus_per_run", "gpus_per_run",
)  # fmt: skip
_LISTS = ("games", "algos", "extractors", "with_r", "seeds", "set")
OPTIONAL_KEYS = ("checkpoint_freq", "precision", "save_replay_buffer", "tf32")
MIN_CHECKPOINT_FREQ = 100_000


@dataclass(frozen=True)
class StudySpec:
    """A checked study spec (see the module docstring)."""

    name: str
    games: tuple[str, ...]
    algos: tuple[str, ...]
    extractors: tuple[str, ...]
    with_r: tuple[bool, ...]
    seeds: tuple[int, ...]
    timesteps: int
    set: tuple[str, ...]
    eval_freq: int
    cpus_per_run: float
    gpus_per_run: float
    checkpoint_freq: int
    precision: tuple[str, ...] = ("fp32",)
    save_replay_buffer: bool = False
    tf32: bool = False


@dataclass(frozen=True)
class PlannedRun:
    """One run of a study: its settings and the folder it trains in."""

    settings: TrainSettings
    run_dir: Path

    @property
    def label(self) -> str:
        return f"{self.settings.env}/{self.run_dir.name}"


def load_spec(path: str | Path) -> StudySpec:
    """Read and check a spec (a path, or configs/studies/<name>.yaml from any folder: see
    configs.find_config); every mistake raises UsageError naming the key or value."""
    path = find_config(path)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise UsageError(f"study spec not found: {path}") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        raise UsageError(f"study spec {path} is not readable YAML: {err}".splitlines()[0]) from None
    if not isinstance(data, dict):
        raise UsageError(f"study spec {path} must be a mapping of {', '.join(REQUIRED_KEYS)}")
    unknown = [k for k in data if k not in REQUIRED_KEYS + OPTIONAL_KEYS]
    if unknown:
        valid = ", ".join(REQUIRED_KEYS + OPTIONAL_KEYS)
        raise UsageError(f"unknown key {unknown[0]!r} in study spec {path}; valid: {valid}")
    missing = [k for k in REQUIRED_KEYS if k not in data]
    if missing:
        raise UsageError(f"study spec {path} lacks {missing[0]!r}")
    for key in _LISTS:
        if not isinstance(data[key], list) or (key != "set" and not data[key]):
            raise UsageError(f"{key} in study spec {path} must be a non-empty list")
    games = tuple(resolve_game(str(g)) for g in data["games"])
    for key, valid in (("algos", ALGOS), ("extractors", EXTRACTORS)):
        for name in data[key]:
            if name not in valid:
                raise UsageError(
                    f"unknown {key[:-1]} {name!r} in {path}; valid: {', '.join(valid)}"
                )
    _check_items(path, "with_r", data["with_r"], bool, "true or false")
    _check_items(path, "seeds", data["seeds"], int, "whole numbers >= 0", minimum=0)
    _check_items(path, "set", data["set"], str, "KEY=VALUE strings")
    timesteps = _number(path, data, "timesteps", int, 1)
    precision = data.get("precision", ["fp32"])
    if not isinstance(precision, list) or not precision:
        raise UsageError(f"precision in study spec {path} must be a non-empty list")
    for name in precision:
        if name not in PRECISIONS:
            valid = ", ".join(PRECISIONS)
            raise UsageError(f"unknown precision {name!r} in {path}; valid: {valid}")
    return StudySpec(
        name=path.stem,
        games=games,
        algos=tuple(data["algos"]),
        extractors=tuple(data["extractors"]),
        with_r=tuple(data["with_r"]),
        seeds=tuple(data["seeds"]),
        timesteps=timesteps,
        set=tuple(data["set"]),
        eval_freq=_number(path, data, "eval_freq", int, 0),
        cpus_per_run=_number(path, data, "cpus_per_run", float, 0, positive=True),
        gpus_per_run=_gpus_per_run(path, data),
        checkpoint_freq=_number(
            path,
            {"checkpoint_freq": max(MIN_CHECKPOINT_FREQ, timesteps // 10), **data},
            "checkpoint_freq",
            int,
            0,
        ),
        precision=tuple(precision),
        save_replay_buffer=_flag(path, data, "save_replay_buffer"),
        tf32=_flag(path, data, "tf32"),
    )


def _gpus_per_run(path: Path, data: dict[str, Any]) -> float:
    gpus = _number(path, data, "gpus_per_run", float, 0)
    if gpus > 1:  # SB3 trains on one device: a second GPU would sit idle, held by the run
        raise UsageError(
            f"gpus_per_run in study spec {path} must be at most 1 (a run trains on one GPU; "
            f"0.25 shares one between four runs), got {data['gpus_per_run']!r}"
        )
    return gpus


def _flag(path: Path, data: dict[str, Any], key: str) -> bool:
    value = data.get(key, False)
    if not isinstance(value, bool):
        raise UsageError(f"{key} in study spec {path} must be true or false, got {value!r}")
    return value


def _check_items(path: Path, key: str, items: list, kind: type, words: str, minimum=None) -> None:
    for item in items:
        ok = isinstance(item, kind) and (kind is bool or not isinstance(item, bool))
        if not ok or (minimum is not None and item < minimum):
            raise UsageError(f"{key} in study spec {path} must hold {words}, got {item!r}")


def _number(
    path: Path, data: dict[str, Any], key: str, kind: type, minimum: float, positive: bool = False
) -> Any:
    value = data[key]
    whole = isinstance(value, int) or (isinstance(value, float) and value.is_integer())
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or (kind is int and not whole) or value < minimum or (positive and value == 0):
        sign = ">" if positive else ">="
        what = "a whole number" if kind is int else "a number"
        raise UsageError(
            f"{key} in study spec {path} must be {what} {sign} {minimum}, got {value!r}"
        )
    return kind(value)


def run_device(spec: StudySpec) -> str:
    """The device a run of the study trains on: `cuda` (the GPU Ray gives its task) when it
    asks for a GPU, else `cpu`, so that a CPU run on a GPU node stays off the GPUs Ray gives
    other runs."""
    return "cuda" if spec.gpus_per_run > 0 else "cpu"


def plan_runs(spec: StudySpec, logdir: str | Path) -> list[PlannedRun]:
    """The study's runs, each checked as train_atari.py checks its flags (bad `set` values,
    ...), in an order that keeps partial results paired: seed by seed, game by game."""
    runs = []
    for seed, game, algo, extractor, with_r, precision in itertools.product(
        spec.seeds, spec.games, spec.algos, spec.extractors, spec.with_r, spec.precision
    ):
        try:
            policy_kwargs_for(extractor, with_r)
        except UsageError:
            continue  # the radius channel belongs to CoordConv layers: conv takes none
        settings = TrainSettings(
            env=game,
            algo=algo,
            extractor=extractor,
            with_r=with_r,
            precision=precision,
            seed=seed,
            timesteps=spec.timesteps,
            logdir=str(logdir),
            sets=list(spec.set),
            eval_freq=spec.eval_freq,
            checkpoint_freq=spec.checkpoint_freq,
            num_threads=max(1, int(spec.cpus_per_run)),
            device=run_device(spec),
            save_replay_buffer=spec.save_replay_buffer and is_off_policy(algo),
            tf32=spec.tf32,
            progress=False,
        )
        resolve_config(settings)  # every mistake before Ray starts
        name = default_run_name(algo, extractor, with_r, seed, precision)
        runs.append(PlannedRun(replace(settings, run_name=name), Path(logdir) / game / name))
    if not runs:
        raise UsageError(f"study {spec.name} has no runs (conv takes no with_r)")
    return runs
