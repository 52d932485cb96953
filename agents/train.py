"""A2C/PPO training runs on Atari: build from config, train, checkpoint, resume."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.logger import configure

from agents.callbacks import Checkpointer, EpisodeLogger, Evaluator, NonFiniteError, NonFiniteGuard
from agents.checkpoints import list_checkpoints, save_model_atomic
from agents.config import (
    ALGOS,
    apply_overrides,
    check_numbers,
    default_config_path,
    load_hyperparams,
    sb3_kwargs,
)
from agents.run_dir import (
    create_run_dir,
    default_run_name,
    read_run_config,
    write_run_metadata,
)
from common.devices import resolve_device
from common.errors import UsageError, check_choice
from common.files import atomic_write_json
from envs.atari import BACKENDS, default_backend, make_atari_vec_env
from envs.names import resolve_game
from policies.registry import EXTRACTORS, policy_kwargs_for

EVAL_SEED_OFFSET = 10_000  # evaluation games never share seeds with training games


@dataclass
class TrainSettings:
    """What `train_atari.py` was asked for; None means 'take it from the config file'."""

    env: str
    algo: str = "a2c"
    extractor: str = "coordconv"
    with_r: bool = False
    seed: int = 0
    timesteps: int | None = None
    n_envs: int | None = None
    device: str = "auto"
    logdir: str = "runs"
    config: str | None = None
    sets: list[str] = field(default_factory=list)
    eval_freq: int = 100_000
    eval_episodes: int = 5
    checkpoint_freq: int = 500_000
    run_name: str | None = None
    sticky_actions: bool = False
    vec_env: str | None = None
    num_threads: int | None = None
    progress: bool = True


@dataclass
class TrainResult:
    """How a run ended: status is finished, interrupted or diverged."""

    run_dir: Path
    status: str
    timesteps: int
    seconds: float
    message: str = ""

    @property
    def exit_code(self) -> int:
        return {"finished": 0, "interrupted": 130}.get(self.status, 1)


def resolve_config(s: TrainSettings) -> dict[str, Any]:
    """The full run config: run settings plus hyperparameters with every override applied."""
    check_choice("algo", s.algo, ALGOS)
    check_choice("extractor", s.extractor, EXTRACTORS)
    policy_kwargs_for(s.extractor, s.with_r)  # rejects --with-r on conv
    for name in ("eval_freq", "eval_episodes", "checkpoint_freq"):
        if getattr(s, name) < 0:
            raise UsageError(f"--{name.replace('_', '-')} must be >= 0, got {getattr(s, name)}")
    config_file = Path(s.config) if s.config else default_config_path(s.algo)
    hyperparams = apply_overrides(load_hyperparams(config_file, s.algo), s.sets, s.algo)
    if s.timesteps is not None:
        hyperparams["n_timesteps"] = s.timesteps
    if s.n_envs is not None:
        hyperparams["n_envs"] = s.n_envs
    check_numbers(hyperparams)
    hyperparams["n_timesteps"] = int(hyperparams["n_timesteps"])
    sb3_kwargs(hyperparams, s.algo)  # fail on a bad schedule or optimizer before any folder
    game = resolve_game(s.env)
    vec_env = s.vec_env or default_backend(game)
    check_choice("--vec-env", vec_env, BACKENDS)
    if s.num_threads is not None and s.num_threads < 1:
        raise UsageError(f"--num-threads must be >= 1, got {s.num_threads}")
    return {
        "env": game,
        "vec_env": vec_env,
        "num_threads": s.num_threads,
        "algo": s.algo,
        "extractor": s.extractor,
        "with_r": s.with_r,
        "seed": s.seed,
        "sticky_actions": s.sticky_actions,
        "eval_freq": s.eval_freq,
        "eval_episodes": s.eval_episodes,
        "checkpoint_freq": s.checkpoint_freq,
        "config_file": str(config_file),
        "hyperparams": hyperparams,
    }


def _envs(config: dict[str, Any], run_dir: Path):
    hp = config["hyperparams"]
    # Runs saved before the backend was recorded used the sb3 one.
    backend = {"backend": config.get("vec_env", "sb3"), "num_threads": config.get("num_threads")}
    env = make_atari_vec_env(
        config["env"],
        int(hp["n_envs"]),
        config["seed"],
        training=True,
        sticky_actions=config["sticky_actions"],
        frame_stack=int(hp.get("frame_stack", 4)),
        monitor_dir=run_dir / "monitor",
        **backend,
    )
    eval_env = None
    if config["eval_freq"] > 0 and config["eval_episodes"] > 0:
        eval_env = make_atari_vec_env(
            config["env"],
            1,
            config["seed"] + EVAL_SEED_OFFSET,
            training=False,
            sticky_actions=config["sticky_actions"],
            frame_stack=int(hp.get("frame_stack", 4)),
            **backend,
        )
    return env, eval_env


def _callbacks(config: dict[str, Any], run_dir: Path, eval_env) -> list:
    callbacks = [NonFiniteGuard(), EpisodeLogger()]
    if config["checkpoint_freq"] > 0:
        callbacks.append(Checkpointer(run_dir, config["checkpoint_freq"]))
    if eval_env is not None:
        callbacks.append(Evaluator(run_dir, eval_env, config["eval_freq"], config["eval_episodes"]))
    return callbacks


def _learn(
    model: BaseAlgorithm,
    config: dict[str, Any],
    run_dir: Path,
    eval_env,
    progress: bool,
    resuming: bool,
) -> TrainResult:
    """Train to n_timesteps, then save model.zip; Ctrl-C saves first; NaN saves nothing."""
    formats = ["tensorboard"] if progress else ["tensorboard", "stdout"]
    model.set_logger(configure(str(run_dir), formats))
    remaining = config["hyperparams"]["n_timesteps"] - (model.num_timesteps if resuming else 0)
    start, status, message = time.time(), "finished", ""
    try:
        if remaining > 0:
            model.learn(
                remaining,
                callback=_callbacks(config, run_dir, eval_env),
                progress_bar=progress,
                reset_num_timesteps=not resuming,
            )
        save_model_atomic(model, run_dir / "model.zip")
    except KeyboardInterrupt:
        save_model_atomic(model, run_dir / "model.zip")
        status, message = "interrupted", "interrupted: model.zip saved"
    except NonFiniteError as err:
        latest = list_checkpoints(run_dir)
        kept = f"last checkpoint {max(latest)} steps" if latest else "no checkpoint yet"
        status = "diverged"
        message = f"training diverged: {err}; model.zip not written, {kept} kept intact"
    finally:
        model.get_env().close()
        if eval_env is not None:
            eval_env.close()
    seconds = time.time() - start
    result = TrainResult(run_dir, status, int(model.num_timesteps), seconds, message)
    atomic_write_json(
        run_dir / "train_result.json",
        {
            "status": status,
            "timesteps": result.timesteps,
            "seconds": seconds,
            "message": message,
        },
    )
    return result


def train_atari(s: TrainSettings, argv: list[str]) -> TrainResult:
    """Start a new run in logdir/<Game>/<run name>/ and train it."""
    config = resolve_config(s)
    device = resolve_device(s.device)
    config["device"] = s.device
    name = s.run_name or default_run_name(s.algo, s.extractor, s.with_r, s.seed)
    run_dir = create_run_dir(s.logdir, config["env"], name)
    write_run_metadata(run_dir, config, argv)
    env, eval_env = _envs(config, run_dir)
    algo_kwargs, policy_extra = sb3_kwargs(config["hyperparams"], s.algo)
    model = ALGOS[s.algo](
        "CnnPolicy",
        env,
        policy_kwargs=policy_kwargs_for(s.extractor, s.with_r, **policy_extra),
        seed=s.seed,
        device=str(device),
        verbose=0,
        **algo_kwargs,
    )
    return _learn(model, config, run_dir, eval_env, s.progress, resuming=False)


def resume_atari(
    run_dir: str | Path,
    argv: list[str],
    timesteps: int | None = None,
    device: str = "auto",
    progress: bool = True,
) -> TrainResult:
    """Continue a run from its newest checkpoint, on the same TensorBoard step axis."""
    run_dir = Path(run_dir)
    config = read_run_config(run_dir)
    checkpoints = list_checkpoints(run_dir)
    if not checkpoints:
        raise UsageError(f"no checkpoint to resume from in {run_dir / 'checkpoints'}")
    if timesteps is not None:
        if timesteps < 1:
            raise UsageError(f"--timesteps must be >= 1, got {timesteps}")
        config["hyperparams"]["n_timesteps"] = timesteps
    write_run_metadata(run_dir, config, argv)
    env, eval_env = _envs(config, run_dir)
    newest = checkpoints[max(checkpoints)]
    model = ALGOS[config["algo"]].load(newest, env=env, device=str(resolve_device(device)))
    return _learn(model, config, run_dir, eval_env, progress, resuming=True)
