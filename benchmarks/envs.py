"""Random-action stepping speed of the Atari vec env backends, timed side by side."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from envs.atari import make_atari_vec_env

# backend label -> make_atari_vec_env arguments
VARIANTS: dict[str, dict[str, Any]] = {
    "sb3-dummy": {"backend": "sb3", "vec_env": "dummy"},
    "sb3-subproc": {"backend": "sb3", "vec_env": "subproc"},
    "ale": {"backend": "ale"},
}


def steps_per_second(env, steps: int, rng: np.random.Generator) -> float:
    """Agent steps (summed over sub-envs) per second under uniformly random actions."""
    n = env.num_envs
    actions = rng.integers(0, env.action_space.n, size=(steps // n + 1, n))
    start = time.perf_counter()
    for a in actions:
        env.step(a)
    return len(actions) * n / (time.perf_counter() - start)


def measure(
    game: str,
    n_envs: int,
    steps: int,
    rounds: int,
    seed: int = 0,
    progress: Callable[[Iterable], Iterable] = lambda it: it,
) -> dict[str, Any]:
    """Median steps/s per backend over `rounds` interleaved rounds, and each one's ratio to
    sb3-subproc. Each round builds, times and closes one backend at a time: idle workers and
    threads of the others must not share the two cores with the one being timed."""
    rng = np.random.default_rng(seed)
    rates: dict[str, list[float]] = {name: [] for name in VARIANTS}
    for _ in progress(range(rounds)):
        for name, kwargs in VARIANTS.items():
            env = make_atari_vec_env(game, n_envs, seed, **kwargs)
            try:
                env.reset()
                steps_per_second(env, 4 * n_envs, rng)  # warm-up: workers and threads running
                rates[name].append(steps_per_second(env, steps, rng))
            finally:
                env.close()
    median = {name: statistics.median(r) for name, r in rates.items()}
    return {
        "env": game,
        "n_envs": n_envs,
        "steps_per_second": median,
        "over_sb3_subproc": {k: v / median["sb3-subproc"] for k, v in median.items()},
    }


def markdown_table(rows: list[dict[str, Any]]) -> str:
    names = list(VARIANTS)
    head = " | ".join(f"{n} steps/s" for n in names)
    ratios = " | ".join(f"{n} / sb3-subproc" for n in names if n != "sb3-subproc")
    lines = [f"| envs | {head} | {ratios} |", "|---:" * (1 + 2 * len(names) - 1) + "|"]
    for r in rows:
        rates = " | ".join(f"{r['steps_per_second'][n]:,.0f}" for n in names)
        rel = " | ".join(f"{r['over_sb3_subproc'][n]:.2f}" for n in names if n != "sb3-subproc")
        lines.append(f"| {r['n_envs']} | {rates} | {rel} |")
    return "\n".join(lines)
