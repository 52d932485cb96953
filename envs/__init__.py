"""Atari vector environments for SB3: game-name resolution and the preprocessing protocol."""

from envs.atari import make_atari_vec_env
from envs.names import resolve_game

__all__ = ["make_atari_vec_env", "resolve_game"]
