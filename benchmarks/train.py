"""Training throughput of A2C/PPO with conv, CoordConv and RL Zoo's own setup, side by side."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterable
from typing import Any

from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.env_util import make_atari_env
from stable_baselines3.common.vec_env import VecFrameStack

from agents.config import ALGOS, default_config_path, load_hyperparams, sb3_kwargs
from envs.atari import make_atari_vec_env
from envs.names import resolve_game
from policies.registry import policy_kwargs_for

# coordconv-ale: the coordconv extractor on the `ale` vec env backend (the others use `sb3`).
VARIANTS = ("zoo", "conv", "coordconv", "coordconv-ale")


def build_model(
    variant: str,
    algo: str,
    hyperparams: dict[str, Any],
    game: str,
    n_envs: int,
    seed: int,
    device: str,
):
    """An untrained model of one variant on the algorithm's RL Zoo hyperparameters.

    `zoo` is what RL Zoo runs: SB3's make_atari_env on <Game>NoFrameskip-v4 and plain
    CnnPolicy. `conv` and `coordconv` are this suite's env and extractors, `coordconv-ale` the
    latter on ale-py's native vector env.
    """
    algo_kwargs, policy_extra = sb3_kwargs(hyperparams, algo)
    if variant == "zoo":
        env = VecFrameStack(make_atari_env(f"{game}NoFrameskip-v4", n_envs, seed), n_stack=4)
        policy_kwargs = policy_extra or None
    else:
        backend = "ale" if variant.endswith("-ale") else "sb3"
        env = make_atari_vec_env(game, n_envs, seed, backend=backend)
        policy_kwargs = policy_kwargs_for(variant.removesuffix("-ale"), **policy_extra)
    return ALGOS[algo](
        "CnnPolicy", env, policy_kwargs=policy_kwargs, seed=seed, device=device, **algo_kwargs
    )


def measure(
    algo: str,
    env: str,
    steps: int,
    rounds: int,
    device: str,
    n_envs: int | None = None,
    seed: int = 0,
    progress: Callable[[Iterable], Iterable] = lambda it: it,
) -> dict[str, Any]:
    """Median training steps/s of each variant, timed in interleaved rounds of `steps` steps."""
    game = resolve_game(env)
    hyperparams = load_hyperparams(default_config_path(algo), algo)
    n_envs = n_envs or int(hyperparams["n_envs"])
    models: dict[str, BaseAlgorithm] = {
        v: build_model(v, algo, hyperparams, game, n_envs, seed, device) for v in VARIANTS
    }
    for model in models.values():  # warm-up: first rollout, allocator, kernel choice
        model.learn(steps // 2 or 1)
    rates: dict[str, list[float]] = {v: [] for v in VARIANTS}
    for _ in progress(range(rounds)):
        for variant, model in models.items():
            start = time.perf_counter()
            before = model.num_timesteps
            model.learn(steps, reset_num_timesteps=False)
            rates[variant].append((model.num_timesteps - before) / (time.perf_counter() - start))
    for model in models.values():
        model.get_env().close()
    median = {v: statistics.median(r) for v, r in rates.items()}
    return {
        "algo": algo,
        "env": game,
        "n_envs": n_envs,
        "steps_per_round": steps,
        "rounds": rounds,
        "steps_per_second": median,
        # Time per step ratios: > 1 means slower. The goal for coordconv is <= 1.05.
        "coordconv_time_over_conv": median["conv"] / median["coordconv"],
        "conv_time_over_zoo": median["zoo"] / median["conv"],
        # Steps/s ratio: > 1 means the ale backend trains faster.
        "ale_speedup": median["coordconv-ale"] / median["coordconv"],
    }


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """Rows of measure() as a markdown table."""
    lines = [
        "| algo | envs | RL Zoo CnnPolicy steps/s | conv steps/s | coordconv steps/s "
        "| coordconv (ale backend) steps/s | time/step coordconv / conv "
        "| time/step conv / RL Zoo | steps/s ale / sb3 backend |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        s = r["steps_per_second"]
        lines.append(
            f"| {r['algo']} | {r['n_envs']} | {s['zoo']:.0f} | {s['conv']:.0f} "
            f"| {s['coordconv']:.0f} | {s['coordconv-ale']:.0f} "
            f"| {r['coordconv_time_over_conv']:.3f} | {r['conv_time_over_zoo']:.3f} "
            f"| {r['ale_speedup']:.2f} |"
        )
    return "\n".join(lines)
