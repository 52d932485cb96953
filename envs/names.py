"""Game names: every spelling users bring (MsPacman, ms_pacman, ALE/MsPacman-v5, ...) to one."""

from __future__ import annotations

import difflib
import re
from functools import cache

import ale_py
import gymnasium as gym

from common.errors import UsageError


@cache
def ale_games() -> dict[str, str]:
    """Map a normalised key ('mspacman') to the canonical game name ('MsPacman') for every game
    ale-py registers as ALE/<Game>-v5."""
    gym.register_envs(ale_py)
    games = {}
    for env_id in gym.registry:
        match = re.fullmatch(r"ALE/(\w+)-v5", env_id)
        if match:
            games[_key(match.group(1))] = match.group(1)
    return games


def _key(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def resolve_game(name: str) -> str:
    """Return the canonical game name ('MsPacman') for any common spelling of it.

    Accepts 'MsPacman', 'ms_pacman', 'mspacman', 'ALE/MsPacman-v5', 'MsPacmanNoFrameskip-v4',
    'MsPacman-v4' and 'MsPacmanDeterministic-v4'. An unknown name raises UsageError listing the
    nearest valid names.
    """
    stem = re.sub(r"^ALE/", "", name.strip())
    stem = re.sub(r"-v\d+$", "", stem)
    stem = re.sub(r"(NoFrameskip|Deterministic)$", "", stem)
    games = ale_games()
    key = _key(stem)
    if key in games:
        return games[key]
    near = difflib.get_close_matches(key, list(games), n=3, cutoff=0.6)
    hint = ", ".join(games[k] for k in near) if near else "see ale_py.roms.get_all_rom_ids()"
    raise UsageError(f"unknown Atari game {name!r}; nearest valid names: {hint}")
