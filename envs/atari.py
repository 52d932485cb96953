"""SB3 vector envs of preprocessed Atari games, the protocol of the RL Zoo / SB3 scores.

Each sub-env is ALE/<Game>-v5 with frameskip=1 (the skip is done by AtariWrapper; v5's own skip
would stack to 16 frames), no sticky actions unless asked (RL Zoo's NoFrameskip-v4 protocol),
the minimal action set and v5's 108,000-frame episode cap. SB3's Monitor sits under AtariWrapper,
so the episodes it reports (info["episode"]) are full games with unclipped scores, whatever
life-loss terminals and reward clipping the agent sees in training.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path

import ale_py
import gymnasium as gym
from stable_baselines3.common.atari_wrappers import AtariWrapper
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import (
    DummyVecEnv,
    SubprocVecEnv,
    VecEnv,
    VecFrameStack,
    VecTransposeImage,
)

from common.errors import UsageError, check_choice
from envs.names import resolve_game

STICKY_ACTION_PROBABILITY = 0.25  # Machado et al. (2018)
VEC_ENV_CLASSES = {"dummy": DummyVecEnv, "subproc": SubprocVecEnv}
BACKENDS = ("ale", "sb3")


def _make_game(env_id: str, **kwargs) -> gym.Env:
    # A module-level function, so SubprocVecEnv can pickle it; subprocesses must register the
    # ALE ids themselves.
    gym.register_envs(ale_py)
    return gym.make(env_id, **kwargs)


def default_backend(game: str) -> str:
    """'ale' where ale-py's vector env runs the game, else 'sb3'."""
    from envs.ale_vec import supports

    return "ale" if supports(resolve_game(game)) else "sb3"


def make_atari_vec_env(
    env: str,
    n_envs: int,
    seed: int,
    *,
    training: bool = True,
    sticky_actions: bool = False,
    frame_stack: int = 4,
    vec_env: str = "dummy",
    monitor_dir: str | Path | None = None,
    render_mode: str | None = None,
    inner_wrapper: Callable[[gym.Env], gym.Env] | None = None,
    backend: str = "sb3",
    num_threads: int | None = None,
) -> VecEnv:
    """Return an SB3 VecEnv of `n_envs` preprocessed copies of an Atari game.

    Observations are (n_envs, frame_stack, 84, 84) uint8, channel first. Preprocessing: up to
    30 no-ops on reset, frame skip 4 with a max over the last two frames, 84x84 grayscale.
    `training=True` adds life loss as a terminal and reward clipping to {-1, 0, 1}; with
    `training=False` the agent plays full games with raw scores. Sub-env i is seeded seed + i.
    `monitor_dir` receives one Monitor CSV per sub-env. `inner_wrapper` wraps each raw game
    between the Monitor and AtariWrapper (e.g. to record frames at full resolution).

    `backend="ale"` steps the games in ale-py's native threaded vector env (envs/ale_vec.py,
    `num_threads` threads, default one per core) with the same protocol and SB3 semantics;
    it renders no frames and takes no `inner_wrapper`.
    """
    if n_envs < 1:
        raise UsageError(f"n_envs must be >= 1, got {n_envs}")
    check_choice("vec env backend", backend, BACKENDS)
    game = resolve_game(env)
    fresh_monitor = True
    if monitor_dir is not None:
        Path(monitor_dir).mkdir(parents=True, exist_ok=True)
        # A resumed run appends to its CSVs. SB3 writes the header only when it overrides, so
        # a new folder must override or its CSVs have no header and load_results rejects them.
        fresh_monitor = not any(Path(monitor_dir).glob("*.monitor.csv"))
    if backend == "ale":
        if render_mode is not None or inner_wrapper is not None:
            raise UsageError("the ale backend renders no frames; use the sb3 backend for video")
        from envs.ale_vec import AleVecEnv

        sticky = STICKY_ACTION_PROBABILITY if sticky_actions else 0.0
        return AleVecEnv(
            game, n_envs, seed, training=training, sticky_probability=sticky,
            frame_stack=frame_stack, num_threads=num_threads,
            monitor_dir=str(monitor_dir) if monitor_dir is not None else None,
            fresh_monitor=fresh_monitor,
        )  # fmt: skip
    check_choice("vec_env", vec_env, VEC_ENV_CLASSES)
    gym.register_envs(ale_py)
    env_kwargs = {
        "frameskip": 1,
        "repeat_action_probability": STICKY_ACTION_PROBABILITY if sticky_actions else 0.0,
        "full_action_space": False,
    }
    if render_mode is not None:
        env_kwargs["render_mode"] = render_mode
    wrapper_kwargs = {"terminal_on_life_loss": training, "clip_reward": training}

    def wrap(game_env: gym.Env) -> gym.Env:
        if inner_wrapper is not None:
            game_env = inner_wrapper(game_env)
        return AtariWrapper(game_env, **wrapper_kwargs)

    venv = make_vec_env(
        partial(_make_game, f"ALE/{game}-v5"),
        n_envs=n_envs,
        seed=seed,
        monitor_dir=str(monitor_dir) if monitor_dir is not None else None,
        monitor_kwargs={"override_existing": fresh_monitor},
        wrapper_class=wrap,
        env_kwargs=env_kwargs,
        vec_env_cls=VEC_ENV_CLASSES[vec_env],
    )
    return VecTransposeImage(VecFrameStack(venv, n_stack=frame_stack))
