"""Runs into groups: one group per configuration, seeds inside it, labels that tell groups apart."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from analysis.runs import Run, RunConfig
from common.errors import UsageError

# Keys a group's label already shows; they are not listed again as differences.
LABEL_KEYS = ("env", "algo", "extractor", "with_r")


UNSET = "(unset)"  # how a key that a group's runs lack is shown


def group_runs(runs: Iterable[Run]) -> dict[str, list[Run]]:
    """Runs by group label, one group per distinct `settings`, each group's runs by seed.

    Groups come in a stable order: algo, extractor (by name, which puts conv before coordconv
    before coordconv-all), with_r, then the values of the keys in which groups differ. Labels
    are those of `group_labels`. Raises UsageError naming the group and its runs if a seed
    occurs twice in it.
    """
    by_key: dict[tuple, list[Run]] = {}
    for run in runs:
        by_key.setdefault(settings_key(run.settings), []).append(run)
    groups = list(by_key.values())
    for group in groups:
        group.sort(key=lambda r: (r.config.seed, r.name))
    differing = differing_keys([g[0].settings for g in groups])
    groups.sort(
        key=lambda g: (
            _group_order(g[0].config),
            tuple(_sort_value(g[0].settings, key) for key in differing),
        )
    )
    labels = group_labels([g[0] for g in groups])
    for label, group in zip(labels, groups, strict=True):
        _check_distinct_seeds(label, group)
    return dict(zip(labels, groups, strict=True))


def differing_keys(settings: Sequence[Mapping[str, Any]]) -> list[str]:
    """Sorted keys, other than LABEL_KEYS, whose value (or absence) is not the same in all."""
    keys = sorted(set().union(*settings) - set(LABEL_KEYS))
    return [k for k in keys if len({_hashable(s.get(k, Absent)) for s in settings}) > 1]


def group_labels(firsts: Sequence[Run]) -> list[str]:
    """One label per group, given one run of each: `a2c conv`, with the keys that tell groups
    of the same base label apart appended, e.g. `a2c conv (backend=ale, learning_rate=0.001)`.
    """
    by_base: dict[str, list[int]] = {}
    for i, run in enumerate(firsts):
        by_base.setdefault(run.config.label, []).append(i)
    labels = [run.config.label for run in firsts]
    for base, members in by_base.items():
        if len(members) < 2:
            continue
        keys = differing_keys([firsts[i].settings for i in members])
        for i in members:
            labels[i] = f"{base} ({key_values(firsts[i].settings, keys)})"
    # Distinct groups can still render alike (the string "1" and the number 1): keep labels
    # unique, since they key the groups.
    for i, label in enumerate(labels):
        if label in labels[:i]:
            labels[i] = f"{label} #{labels[: i + 1].count(label)}"
    return labels


def _check_distinct_seeds(label: str, runs: Sequence[Run]) -> None:
    """UsageError naming the group and the runs if two of `runs` (sorted by seed) share a seed."""
    seeds = [r.config.seed for r in runs]
    for seed in seeds:
        if seeds.count(seed) > 1:
            names = [r.name for r in runs if r.config.seed == seed]
            listed = ", ".join(names[:-1]) + " and " + names[-1]
            raise UsageError(
                f"group {label} has seed {seed} in {len(names)} runs: {listed}; runs of one "
                "config must have distinct seeds (move or delete the copies)"
            )


def _group_order(config: RunConfig) -> tuple:
    return (config.algo, config.extractor, config.with_r)


class Absent:
    """Stands for a key that a run's config lacks (None is a value a config can hold)."""


def _hashable(value: Any) -> Any:
    """A hashable stand-in for a config value; equal values (1 and 1.0) give equal ones."""
    if isinstance(value, bool):
        return ("bool", value)  # True == 1 in Python, but `true` and `1` are different settings
    if isinstance(value, float) and np.isnan(value):
        return ("nan",)  # nan != nan would put every run with a nan setting in its own group
    if isinstance(value, list | tuple):
        return ("list", tuple(_hashable(v) for v in value))
    if isinstance(value, Mapping):
        return ("map", tuple(sorted((str(k), _hashable(v)) for k, v in value.items())))
    return value


def settings_key(settings: Mapping[str, Any]) -> tuple:
    """A hashable key of `settings`, equal for settings that are the same config."""
    return tuple(sorted((k, _hashable(v)) for k, v in settings.items()))


def _sort_value(settings: Mapping[str, Any], key: str) -> tuple:
    """Sort key of one setting: unset first, then numbers by value, then the rest as shown."""
    value = settings.get(key, Absent)
    if value is Absent:
        return (0, 0.0, "")
    if isinstance(value, int | float) and not isinstance(value, bool):
        return (1, float(value), "")
    return (2, 0.0, render_value(value))


def render_value(value: Any) -> str:
    """A config value as YAML would show it: strings bare, others as JSON (true, null, [1, 2])."""
    if value is Absent:
        return UNSET
    return value if isinstance(value, str) else json.dumps(value, default=str)


def key_values(settings: Mapping[str, Any], keys: Sequence[str]) -> str:
    """`k=v, k2=v2` for `keys`, UNSET for one that `settings` lacks."""
    return ", ".join(f"{k}={render_value(settings.get(k, Absent))}" for k in keys)
