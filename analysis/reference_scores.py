"""Reference scores of the Atari games: random and human play (human-normalised scores) and RL
Zoo's published results, apart from the runs they are compared with (as RL Zoo keeps them in
plots/score_normalization.py).

Human-normalised score: (score - random) / (human - random) with HUMAN_REFERENCE's per-game
random and human scores. Every function takes any usual spelling of a game (ALE/MsPacman-v5,
MsPacmanNoFrameskip-v4, ms_pacman) and answers None where the tables have no entry.
"""

from __future__ import annotations

import re

import numpy as np

# Random-play and human scores per game (no-op starts, games capped at 108,000 frames): the
# Atari-57 reference table of Badia et al. 2020, "Agent57: Outperforming the Atari Human
# Benchmark" (ICML), appendix, also used by DQN Zoo and rliable (Agarwal et al. 2021). The random
# scores are those of Mnih et al. 2015, "Human-level control through deep reinforcement
# learning" (Nature 518, Extended Data Table 2); for some games the human scores are DeepMind's
# later measurements, not the Nature table's (Ms. Pac-Man: 6951.6 here, 15,693 there).
HUMAN_REFERENCE: dict[str, tuple[float, float]] = {  # game: (random, human)
    "Asteroids": (719.1, 47388.7),
    "BeamRider": (363.9, 16926.5),
    "Breakout": (1.7, 30.5),
    "Enduro": (0.0, 860.5),
    "MsPacman": (307.3, 6951.6),
    "Pong": (-20.7, 14.6),
    "Qbert": (163.9, 13455.0),
    "Seaquest": (68.4, 42054.7),
    "SpaceInvaders": (148.0, 1668.7),
}


HUMAN_REFERENCE_SOURCE = (
    "random and human scores of the Atari-57 table in Badia et al. 2020 (Agent57), the random "
    "ones from Mnih et al. 2015 (Nature DQN)"
)


HUMAN_NORMALISED = "(score - random) / (human - random)"


# RL Zoo's published scores, (mean, std) over its evaluation games: benchmark.md of
# DLR-RM/rl-baselines3-zoo, one run per game trained for 10M agent steps on <Game>NoFrameskip-v4,
# the final agent evaluated with sampled actions.
RL_ZOO_SCORES: dict[str, dict[str, tuple[float, float]]] = {
    "MsPacman": {"a2c": (1671.73, 612.92), "ppo": (1754.36, 172.78)},
    "Breakout": {"a2c": (279.79, 122.18), "ppo": (398.03, 33.33)},
    "Pong": {"a2c": (17.29, 3.21), "ppo": (20.99, 0.11)},
    "SpaceInvaders": {"a2c": (627.16, 201.97), "ppo": (960.33, 425.36)},
    "Seaquest": {"a2c": (1721.49, 105.34), "ppo": (1783.64, 34.10)},
    "Qbert": {"a2c": (3882.35, 1223.33), "ppo": (15627.11, 3313.54)},
    "BeamRider": {"a2c": (2890.30, 1379.14), "ppo": (3397.00, 1662.37)},
    "Enduro": {"a2c": (0.00, 0.00), "ppo": (996.36, 176.09)},
    "Asteroids": {"a2c": (1286.55, 423.75), "ppo": (2156.17, 744.64)},
}


RL_ZOO_SOURCE = (
    "RL Zoo benchmark.md (DLR-RM/rl-baselines3-zoo): one run per game, 10M agent steps, "
    "NoFrameskip-v4, the final agent evaluated with sampled actions"
)


RL_ZOO_STEPS = 10_000_000


def human_reference(game: str) -> tuple[float, float] | None:
    """`game`'s (random, human) scores from HUMAN_REFERENCE; None for a game without them."""
    return HUMAN_REFERENCE.get(_canonical(game))


def human_normalised(game: str, score: float) -> float | None:
    """(score - random) / (human - random) with HUMAN_REFERENCE; None for a game without one."""
    ref = human_reference(game)
    if ref is None:
        return None
    random, human = ref
    return (score - random) / (human - random)


def normalise_scores(game: str, scores: np.ndarray) -> np.ndarray:
    """`human_normalised` of an array of one game's scores; KeyError for a game without
    reference scores (callers pick the games that have them)."""
    random, human = HUMAN_REFERENCE[_canonical(game)]
    return (scores - random) / (human - random)


def published_score(game: str, algo: str) -> tuple[float, float] | None:
    """RL Zoo's (mean, std) for `game` and `algo` after 10M steps; None where none is published."""
    return RL_ZOO_SCORES.get(_canonical(game), {}).get(algo.lower())


def has_published_scores(game: str) -> bool:
    """Whether RL Zoo publishes a score of `game` for any algo."""
    return bool(RL_ZOO_SCORES.get(_canonical(game)))


def _canonical(game: str) -> str:
    """The key of the reference tables for any usual spelling of a game: ALE/MsPacman-v5,
    MsPacmanNoFrameskip-v4, ms_pacman -> MsPacman (without ale-py's registry: tables only)."""
    stem = re.sub(r"^ALE/", "", game.strip())
    stem = re.sub(r"(NoFrameskip|Deterministic)?(-v\d+)?$", "", stem)
    key = re.sub(r"[^a-z0-9]", "", stem.lower())
    for name in {*HUMAN_REFERENCE, *RL_ZOO_SCORES}:
        if name.lower() == key:
            return name
    return game
