"""A run's config.yaml as one typed, frozen value: what train, resume, evaluate and export read."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agents.run_dir import read_run_config

# RL Zoo's Atari stack (and make_atari_vec_env's): what a config without the key trains with.
DEFAULT_FRAME_STACK = 4

# What a key an older (or hand-written) config.yaml lacks reads as, on top of the keys
# agents.run_dir.upgrade_config fills (precision, tf32, backend, vec_env), which analysis groups
# by. These are not written back: resuming an older run leaves its config.yaml's keys as they were.
UPGRADE_DEFAULTS: dict[str, Any] = {
    "num_threads": None,  # before the ale backend: no emulator threads to set
    "sticky_actions": False,  # Machado et al.'s sticky actions are opt-in
    # Runs saved before the key existed evaluated greedily; they resume sampling, as RL Zoo.
    "deterministic_eval": False,
    "save_replay_buffer": False,  # before off-policy runs: no buffer to keep
    # Every config the suite wrote holds the next four; a hand-written one reads as a run
    # started with train_atari's defaults.
    "eval_freq": 100_000,
    "eval_episodes": 5,
    "checkpoint_freq": 500_000,
    "config_file": None,
    "device": "auto",  # what runs recorded before they named the device they resolved
}


@dataclass(frozen=True)
class AgentRunConfig:
    """The resolved settings of one Atari run, one field per key of its config.yaml, in the
    file's order. `hyperparams` is SB3's kwargs plus the suite's own keys (agents.config
    SUITE_KEYS), as the file holds them. `device` is None until a session picks one.

    A config read from a run folder (`read_agent_run_config`) remembers that file's keys:
    `to_dict` writes them back in their order, keys the suite does not know included, and adds
    only the keys this session changed from their upgrade defaults."""

    env: str
    backend: str
    vec_env: str
    num_threads: int | None
    algo: str
    extractor: str
    with_r: bool
    precision: str
    tf32: bool
    seed: int
    sticky_actions: bool
    eval_freq: int
    eval_episodes: int
    deterministic_eval: bool
    checkpoint_freq: int
    save_replay_buffer: bool
    config_file: str | None
    hyperparams: dict[str, Any]
    device: str | None = None
    # The upgraded mapping this config was read from; None for a new run.
    read_from: Mapping[str, Any] | None = dataclasses.field(default=None, compare=False, repr=False)

    @property
    def n_envs(self) -> int:
        """Parallel games of training."""
        return int(self.hyperparams["n_envs"])

    @property
    def n_timesteps(self) -> int:
        """The run's total of agent steps."""
        return int(self.hyperparams["n_timesteps"])

    @property
    def frame_stack(self) -> int:
        """Frames stacked into one observation."""
        return int(self.hyperparams.get("frame_stack", DEFAULT_FRAME_STACK))

    @classmethod
    def from_mapping(cls, config: Mapping[str, Any]) -> AgentRunConfig:
        """The typed config of a checked, upgraded config.yaml mapping (agents.run_dir
        load_run_config); keys it lacks take their UPGRADE_DEFAULTS."""
        values = {**UPGRADE_DEFAULTS, **{k: v for k, v in config.items() if k in _FIELDS}}
        return cls(**values, read_from=dict(config))

    def to_dict(self) -> dict[str, Any]:
        """config.yaml's mapping: a new run's keys in field order (no `device` while None); a
        read config's keys as its file held them, with this session's changes."""
        values = {name: getattr(self, name) for name in _FIELDS}
        if self.read_from is None:
            if values["device"] is None:
                del values["device"]
            return values
        out = {key: values.get(key, value) for key, value in self.read_from.items()}
        for name, value in values.items():
            # A key the file lacked is added once this session sets it, as `device` on resume.
            if name not in out and value != UPGRADE_DEFAULTS.get(name):
                out[name] = value
        return out


_FIELDS = tuple(f.name for f in dataclasses.fields(AgentRunConfig) if f.name != "read_from")


def read_agent_run_config(run_dir: str | Path) -> AgentRunConfig:
    """The typed config of an existing run folder: its config.yaml checked and upgraded once
    (agents.run_dir.read_run_config), then UPGRADE_DEFAULTS for the keys it lacks; a missing
    folder, config or required key raises UsageError."""
    return AgentRunConfig.from_mapping(read_run_config(run_dir))
