"""Training throughput of A2C/PPO/DQN/QR-DQN: conv vs CoordConv vs RL Zoo's own setup in fp32
and bf16, and what each speed lever (threads, channels_last, our callbacks, overlapped stepping)
is worth, all timed side by side in one process."""

from __future__ import annotations

import functools
import statistics
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from stable_baselines3.common.env_util import make_atari_env
from stable_baselines3.common.logger import configure
from stable_baselines3.common.utils import obs_as_tensor
from stable_baselines3.common.vec_env import VecFrameStack

from agents.callbacks import EpisodeLogger, NonFiniteGuard, ProgressFile
from agents.config import ALGOS, default_config_path, is_off_policy, load_hyperparams, sb3_kwargs
from benchmarks.timing import interleaved_median_ms, sync
from envs.ale_vec import AleVecEnv
from envs.atari import make_atari_vec_env
from envs.names import resolve_game
from policies.precision import set_precision
from policies.registry import policy_kwargs_for

CALLBACKS = ("guard", "episodes", "progress")  # train_atari's per-step callbacks (not evaluation)
# Off-policy variants train from their first step (learning_starts 0), so that a timed round is
# the steady state of a long run (one gradient step per train_freq steps), on a buffer of this
# many transitions (282 MB each): seven variants of RL Zoo's 100,000 would hold 20 GB.
OFF_POLICY_BUFFER = 10_000


@dataclass(frozen=True)
class Variant:
    """One timed setup. `extractor=None` is what RL Zoo runs: SB3's make_atari_env on
    <Game>NoFrameskip-v4 and plain CnnPolicy (always fp32). The rest are levers."""

    extractor: str | None
    backend: str = "sb3"
    precision: str = "fp32"
    torch_threads: int | None = None  # None: torch's default (one per core)
    ale_threads: int | None = None  # None: one per core
    channels_last: bool = False
    callbacks: tuple[str, ...] = ()


# The main table. `-ale` runs on ale-py's native vector env (train_atari's default backend).
VARIANTS: dict[str, Variant] = {
    "zoo": Variant(None),
    "conv": Variant("conv"),
    "coordconv": Variant("coordconv"),
    "coordconv-ale": Variant("coordconv", "ale"),
    "conv-bf16": Variant("conv", precision="bf16"),
    "coordconv-bf16": Variant("coordconv", precision="bf16"),
    "coordconv-ale-bf16": Variant("coordconv", "ale", "bf16"),
}
# The levers, each one change from what `train_atari.py --precision bf16` runs (`kept`).
_KEPT = Variant("coordconv", "ale", "bf16", callbacks=CALLBACKS)
LEVERS: dict[str, Variant] = {
    "kept": _KEPT,
    "1 torch thread": Variant("coordconv", "ale", "bf16", torch_threads=1, callbacks=CALLBACKS),
    "1 emulator thread": Variant("coordconv", "ale", "bf16", ale_threads=1, callbacks=CALLBACKS),
    "channels_last": Variant("coordconv", "ale", "bf16", channels_last=True, callbacks=CALLBACKS),
    "no NaN guard": Variant("coordconv", "ale", "bf16", callbacks=("episodes", "progress")),
    "no callbacks": Variant("coordconv", "ale", "bf16"),
    "fp32": Variant("coordconv", "ale", "fp32", callbacks=CALLBACKS),
}


class _Timed:
    """A model of one variant, its callbacks, and the torch threads it runs with."""

    def __init__(
        self, v: Variant, algo: str, hp: dict[str, Any], game: str, n_envs: int, seed: int,
        device: str, logdir: str,
    ) -> None:  # fmt: skip
        algo_kwargs, policy_extra = sb3_kwargs(hp, algo)
        if v.extractor is None:
            env = VecFrameStack(make_atari_env(f"{game}NoFrameskip-v4", n_envs, seed), n_stack=4)
            policy_kwargs = policy_extra or None
        else:
            env = make_atari_vec_env(
                game, n_envs, seed, backend=v.backend, num_threads=v.ale_threads
            )
            policy_kwargs = policy_kwargs_for(v.extractor, **policy_extra)
        self.model = ALGOS[algo](
            "CnnPolicy", env, policy_kwargs=policy_kwargs, seed=seed, device=device, **algo_kwargs
        )
        set_precision(self.model.policy, v.precision)
        if v.channels_last:
            _channels_last(self.model.policy.features_extractor)
        self.model.set_logger(configure(logdir, ["tensorboard"]))
        self.variant = v
        self.logdir = logdir

    def learn(self, steps: int) -> float:
        """Train `steps` more steps; steps/s."""
        threads = torch.get_num_threads()
        torch.set_num_threads(self.variant.torch_threads or threads)
        callbacks = {
            "guard": NonFiniteGuard,
            "episodes": EpisodeLogger,
            "progress": lambda: ProgressFile(Path(self.logdir), steps),
        }
        try:
            # CUDA runs asynchronously: the last optimizer step of a call would otherwise be
            # paid for by whichever variant runs next.
            sync(self.model.device)
            start, before = time.perf_counter(), self.model.num_timesteps
            self.model.learn(
                steps,
                callback=[callbacks[name]() for name in self.variant.callbacks],
                reset_num_timesteps=False,
            )
            sync(self.model.device)
            return (self.model.num_timesteps - before) / (time.perf_counter() - start)
        finally:
            torch.set_num_threads(threads)


def _channels_last(extractor: torch.nn.Module) -> None:
    """Weights and inputs of the extractor in channels_last memory format (a lever only)."""
    extractor.to(memory_format=torch.channels_last)
    forward = extractor.forward

    @functools.wraps(forward)
    def run(x: torch.Tensor) -> torch.Tensor:
        return forward(x.contiguous(memory_format=torch.channels_last))

    extractor.forward = run


def measure(
    algo: str,
    env: str,
    steps: int,
    rounds: int,
    device: str,
    n_envs: int | None = None,
    seed: int = 0,
    progress: Callable[[Iterable], Iterable] = lambda it: it,
    variants: dict[str, Variant] = VARIANTS,
) -> dict[str, Any]:
    """Median training steps/s of each variant, timed in interleaved rounds of `steps` steps, so
    that a change in machine load falls on all of them alike."""
    game = resolve_game(env)
    hp = load_hyperparams(default_config_path(algo), algo)
    if is_off_policy(algo):
        hp = {**hp, "learning_starts": 0, "buffer_size": OFF_POLICY_BUFFER}
    n_envs = n_envs or int(hp["n_envs"])
    with tempfile.TemporaryDirectory() as logdir:
        timed = {
            name: _Timed(v, algo, hp, game, n_envs, seed, device, f"{logdir}/{i}")
            for i, (name, v) in enumerate(variants.items())
        }
        for t in timed.values():  # warm-up: first rollout, allocator, kernel choice
            t.learn(steps // 2 or 1)
        rates: dict[str, list[float]] = {name: [] for name in variants}
        for _ in progress(range(rounds)):
            for name, t in timed.items():
                rates[name].append(t.learn(steps))
        for t in timed.values():
            t.model.get_env().close()
    return {
        "algo": algo,
        "env": game,
        "n_envs": n_envs,
        "steps_per_round": steps,
        "rounds": rounds,
        "steps_per_second": {name: statistics.median(r) for name, r in rates.items()},
    }


def main_ratios(row: dict[str, Any]) -> dict[str, float]:
    """The main table's ratios. time/step: > 1 is slower (goal for coordconv / conv: <= 1.03);
    steps/s over RL Zoo: > 1 is faster (goal for coordconv bf16: >= 2)."""
    s = row["steps_per_second"]
    return {
        "coordconv_time_over_conv": s["conv"] / s["coordconv"],
        "coordconv_time_over_conv_bf16": s["conv-bf16"] / s["coordconv-bf16"],
        "conv_time_over_zoo": s["zoo"] / s["conv"],
        "ale_speedup": s["coordconv-ale"] / s["coordconv"],
        "bf16_speedup": s["coordconv-ale-bf16"] / s["coordconv-ale"],
        "speedup_over_zoo": s["coordconv-ale-bf16"] / s["zoo"],
    }


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """Rows of measure() over VARIANTS: steps/s, then the ratios."""
    names = list(VARIANTS)
    lines = [
        "| algo | envs | " + " | ".join(f"{n} steps/s" for n in names) + " |",
        "|---|---:|" + "---:|" * len(names),
    ]
    for r in rows:
        s = r["steps_per_second"]
        lines.append(
            f"| {r['algo']} | {r['n_envs']} | " + " | ".join(f"{s[n]:.0f}" for n in names) + " |"
        )
    lines += [
        "",
        "| algo | time/step coordconv / conv fp32 | time/step coordconv / conv bf16 "
        "| time/step conv / RL Zoo | steps/s ale / sb3 backend | steps/s bf16 / fp32 (ale) "
        "| **steps/s coordconv-ale-bf16 / RL Zoo** |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        q = main_ratios(r)
        lines.append(
            f"| {r['algo']} | {q['coordconv_time_over_conv']:.3f} "
            f"| {q['coordconv_time_over_conv_bf16']:.3f} | {q['conv_time_over_zoo']:.3f} "
            f"| {q['ale_speedup']:.2f} | {q['bf16_speedup']:.2f} "
            f"| **{q['speedup_over_zoo']:.2f}** |"
        )
    return "\n".join(lines)


def lever_table(rows: list[dict[str, Any]]) -> str:
    """Rows of measure() over LEVERS: each lever's steps/s and its time per step over `kept`."""
    lines = [
        "| algo | lever | steps/s | time/step vs kept |",
        "|---|---|---:|---:|",
    ]
    for r in rows:
        s = r["steps_per_second"]
        for name in s:
            lines.append(f"| {r['algo']} | {name} | {s[name]:.0f} | {s['kept'] / s[name]:.3f} |")
    return "\n".join(lines)


def rollout_overlap(
    env: str, n_envs: int, seed: int, precision: str, steps: int, rounds: int, device: str
) -> dict[str, float]:
    """What overlapping game stepping with the policy forward could save in a rollout.

    Sequential is SB3's collect_rollouts pattern: the policy acts on all games, then all games
    step. Overlapped splits the games in two halves (ale-py vector envs, one emulator thread
    each) and steps one half while the policy acts on the other. Milliseconds per rollout step
    of all `n_envs` games, median over interleaved rounds of `steps` rollout steps.
    """
    game = resolve_game(env)
    hp = load_hyperparams(default_config_path("a2c"), "a2c")
    algo_kwargs, policy_extra = sb3_kwargs(hp, "a2c")
    whole = AleVecEnv(game, n_envs, seed)
    halves = [AleVecEnv(game, n_envs // 2, seed + i * n_envs, num_threads=1) for i in (0, 1)]
    policy_kwargs = policy_kwargs_for("coordconv", **policy_extra)
    model = ALGOS["a2c"](
        "CnnPolicy", whole, policy_kwargs=policy_kwargs, seed=seed, device=device, **algo_kwargs
    )
    set_precision(model.policy, precision)

    def act(obs: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            actions, _, _ = model.policy(obs_as_tensor(obs, model.device))
        return actions.cpu().numpy()

    def sequential() -> None:
        obs = whole.reset()
        for _ in range(steps):
            obs, *_ = whole.step(act(obs))

    def overlapped() -> None:
        a, b = halves
        obs_b = b.reset()
        a.reset()
        a.step_async(np.zeros(a.num_envs, dtype=np.int64))
        for _ in range(steps):
            actions_b = act(obs_b)  # while half a steps
            obs_a, *_ = a.step_wait()
            b.step_async(actions_b)
            actions_a = act(obs_a)  # while half b steps
            obs_b, *_ = b.step_wait()
            a.step_async(actions_a)
        a.step_wait()

    ms = interleaved_median_ms(
        {"sequential": sequential, "overlapped": overlapped}, torch.device(device), rounds, 1
    )
    for e in (whole, *halves):
        e.close()
    per_step = {name: value / steps for name, value in ms.items()}
    return {**per_step, "overlapped_speedup": per_step["sequential"] / per_step["overlapped"]}
