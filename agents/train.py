"""A2C/PPO/DQN/QR-DQN training runs on Atari: build from config, train, checkpoint, resume."""

from __future__ import annotations

import contextlib
import inspect
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.logger import configure
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
from stable_baselines3.common.utils import FloatSchedule
from stable_baselines3.common.vec_env import VecEnv

from agents.callbacks import (
    Checkpointer,
    EpisodeLogger,
    Evaluator,
    NonFiniteError,
    NonFiniteGuard,
    ProgressFile,
)
from agents.checkpoints import (
    list_checkpoints,
    load_agent,
    newest_model,
    replay_buffer_path,
    save_model_atomic,
    save_replay_buffer_atomic,
)
from agents.config import (
    ALGOS,
    ScaledProgress,
    apply_overrides,
    check_hyperparams,
    default_config_path,
    is_off_policy,
    load_hyperparams,
    sb3_kwargs,
)
from agents.run_config import AgentRunConfig, read_agent_run_config
from agents.run_dir import (
    RESULT_NAME,
    TrainStatus,
    create_run_dir,
    default_run_name,
    write_run_metadata,
)
from common.cli import DEVICE_HELP, TF32_HELP, option
from common.devices import device_record, select_device
from common.errors import UsageError, check_at_least, check_choice
from common.files import atomic_write_json
from configs import find_config
from envs.atari import BACKENDS, VEC_ENV_CLASSES, default_backend, make_atari_vec_env
from envs.names import resolve_game
from policies.precision import PRECISIONS, bf16_note, set_precision
from policies.registry import EXTRACTORS, policy_kwargs_for

EVAL_SEED_OFFSET = 10_000  # evaluation games never share seeds with training games


@dataclass
class TrainSettings:
    """What `train_atari.py` was asked for, one field per flag; None means 'take it from the
    config file' (or, for `backend`, the default for the game)."""

    env: str | None = option(
        None,
        "game: MsPacman, ms_pacman, ALE/MsPacman-v5, MsPacmanNoFrameskip-v4 "
        "(required unless --resume)",
    )
    algo: str = option(
        "a2c",
        f"algorithm: {', '.join(ALGOS)} (SB3's; qrdqn from sb3-contrib); hyperparameters from "
        "configs/atari/<algo>.yaml",
    )
    extractor: str = option(
        "coordconv",
        f"features extractor: {', '.join(EXTRACTORS)} (conv is SB3's NatureCNN; coordconv makes "
        "its first conv a CoordConv, coordconv-all every conv)",
    )
    with_r: bool = option(False, "add the radius coordinate channel")
    seed: int = option(0, "seed of the agent and of sub-env i (+i)")
    timesteps: int | None = option(None, "agent steps to train (config: n_timesteps)")
    n_envs: int | None = option(None, "parallel games (config: n_envs)")
    device: str = option("auto", DEVICE_HELP)
    tf32: bool = option(False, TF32_HELP)
    precision: str = option(
        "fp32",
        f"{' or '.join(PRECISIONS)}: bf16 runs the features extractor under autocast (heads, "
        "losses and optimizer stay fp32); 1.3-1.5x the steps/s on a CPU with AVX512-BF16",
    )
    logdir: str = option("runs", "root folder of runs")
    config: str | None = option(None, "hyperparameter YAML (configs/atari/<algo>.yaml)")
    sets: list[str] = option(
        help="override one hyperparameter, e.g. --set learning_rate='linear(1e-3, 0)'; repeatable",
        flag="--set",
        metavar="KEY=VALUE",
        default_factory=list,
    )
    eval_freq: int = option(100_000, "evaluate every N agent steps (0: off)")
    eval_episodes: int = option(5, "full games per evaluation")
    deterministic_eval: bool = option(
        False, "evaluate with greedy actions (default: sampled, as RL Zoo evaluates Atari)"
    )
    checkpoint_freq: int = option(500_000, "checkpoint every N agent steps (0: off)")
    run_name: str | None = option(None, "run folder name (<algo>_<extractor>_s<seed>)")
    sticky_actions: bool = option(False, "repeat the last action w.p. 0.25 (Machado et al.)")
    backend: str | None = option(
        None,
        f"vec env backend, {' or '.join(BACKENDS)}: ale steps the games in ale-py's native "
        "threaded vector env, sb3 in SB3's make_vec_env + AtariWrapper (default: ale where the "
        "game runs on it)",
    )
    vec_env: str = option(
        "dummy",
        f"sb3 backend's VecEnv, {' or '.join(VEC_ENV_CLASSES)}: the games in one process or "
        "one each, as RL Zoo's --vec-env",
    )
    num_threads: int | None = option(None, "ale backend emulator threads (one per core)")
    progress: bool = option(True, "no progress bar; log SB3's table to stdout")
    save_replay_buffer: bool = option(
        False,
        "dqn, qrdqn: save the replay buffer with model.zip and each checkpoint, so that --resume "
        "continues with it (only the newest is kept; the default 100,000 transitions are 2.82 GB "
        "on disk); without it a resumed run starts with an empty buffer",
    )


@dataclass
class TrainResult:
    """How a run ended: status is finished, interrupted, diverged or unchanged (a resume with
    nothing left to train). `trained` counts the steps of this session only."""

    run_dir: Path
    status: TrainStatus
    timesteps: int
    seconds: float
    message: str = ""
    trained: int = 0

    @property
    def exit_code(self) -> int:
        return {"finished": 0, "unchanged": 0, "interrupted": 130}.get(self.status, 1)

    @property
    def summary(self) -> str:
        """One line: status, steps, and the speed of this session's training."""
        rate = self.trained / self.seconds if self.seconds > 0 else 0.0
        since = f" ({self.trained} since the resume)" if self.trained != self.timesteps else ""
        return (
            f"{self.status}: {self.timesteps} steps{since} in {self.seconds:.0f} s "
            f"({rate:.0f} steps/s); run folder {self.run_dir}"
        )


def resolve_config(s: TrainSettings) -> dict[str, Any]:
    """`resolve_run_config` as config.yaml's mapping (without `device`), as the studies compare
    and plan runs."""
    return resolve_run_config(s).to_dict()


def resolve_run_config(s: TrainSettings) -> AgentRunConfig:
    """The full run config: run settings plus hyperparameters with every override applied;
    `device` is left to the session that trains it."""
    check_choice("algo", s.algo, ALGOS)
    check_choice("extractor", s.extractor, EXTRACTORS)
    check_choice("--precision", s.precision, PRECISIONS)
    policy_kwargs_for(s.extractor, s.with_r)  # rejects --with-r on conv
    for name in ("seed", "eval_freq", "eval_episodes", "checkpoint_freq"):
        if getattr(s, name) < 0:
            raise UsageError(f"--{name.replace('_', '-')} must be >= 0, got {getattr(s, name)}")
    config_file = find_config(s.config) if s.config else default_config_path(s.algo)
    hyperparams = apply_overrides(load_hyperparams(config_file, s.algo), s.sets, s.algo)
    if s.timesteps is not None:
        hyperparams["n_timesteps"] = s.timesteps
    if s.n_envs is not None:
        hyperparams["n_envs"] = s.n_envs
    hyperparams = check_hyperparams(hyperparams, s.algo)
    sb3_kwargs(hyperparams, s.algo)  # fail on a bad schedule or optimizer before any folder
    if s.env is None:
        raise UsageError("--env is required (or --resume RUN_DIR)")
    game = resolve_game(s.env)
    backend = s.backend or default_backend(game)
    check_choice("--backend", backend, BACKENDS)
    if s.vec_env in BACKENDS:  # the flag's meaning before --backend existed
        kinds = " or ".join(VEC_ENV_CLASSES)
        raise UsageError(f"--vec-env takes {kinds}; for the backend use --backend {s.vec_env}")
    check_choice("--vec-env", s.vec_env, VEC_ENV_CLASSES)
    if s.save_replay_buffer and not is_off_policy(s.algo):
        off_policy = ", ".join(a for a in ALGOS if is_off_policy(a))
        raise UsageError(f"--save-replay-buffer applies to {off_policy}, not {s.algo}")
    if s.num_threads is not None and s.num_threads < 1:
        raise UsageError(f"--num-threads must be >= 1, got {s.num_threads}")
    return AgentRunConfig(
        env=game,
        backend=backend,
        vec_env=s.vec_env,
        num_threads=s.num_threads,
        algo=s.algo,
        extractor=s.extractor,
        with_r=s.with_r,
        precision=s.precision,
        tf32=s.tf32,
        seed=s.seed,
        sticky_actions=s.sticky_actions,
        eval_freq=s.eval_freq,
        eval_episodes=s.eval_episodes,
        deterministic_eval=s.deterministic_eval,
        checkpoint_freq=s.checkpoint_freq,
        save_replay_buffer=s.save_replay_buffer,
        config_file=str(config_file),
        hyperparams=hyperparams,
    )


def resume_seed(seed: int, steps: int) -> int:
    """The seed of a session resumed at `steps`: a fresh stream for the games and torch, derived
    from the run's seed and the step count (the same resume draws the same games)."""
    # Below 2**30: sub-env and evaluation offsets are added, and ale-py takes int32 seeds.
    return int(np.random.SeedSequence([seed, steps]).generate_state(1)[0]) % 2**30


def _envs(config: AgentRunConfig, run_dir: Path, seed: int) -> tuple[VecEnv, VecEnv | None]:
    backend: dict[str, Any] = {
        "backend": config.backend,
        "vec_env": config.vec_env,
        "num_threads": config.num_threads,
    }
    env = make_atari_vec_env(
        config.env,
        config.n_envs,
        seed,
        training=True,
        sticky_actions=config.sticky_actions,
        frame_stack=config.frame_stack,
        monitor_dir=run_dir / "monitor",
        **backend,
    )
    eval_env = None
    if config.eval_freq > 0 and config.eval_episodes > 0:
        eval_env = make_atari_vec_env(
            config.env,
            1,
            seed + EVAL_SEED_OFFSET,
            training=False,
            sticky_actions=config.sticky_actions,
            frame_stack=config.frame_stack,
            **backend,
        )
    return env, eval_env


def _callbacks(config: AgentRunConfig, run_dir: Path, eval_env: VecEnv | None) -> list:
    callbacks = [NonFiniteGuard(), EpisodeLogger(), ProgressFile(run_dir, config.n_timesteps)]
    if config.checkpoint_freq > 0:
        every, buffer = config.checkpoint_freq, config.save_replay_buffer
        callbacks.append(Checkpointer(run_dir, every, buffer))
    if eval_env is not None:
        every, episodes = config.eval_freq, config.eval_episodes
        callbacks.append(Evaluator(run_dir, eval_env, every, episodes, config.deterministic_eval))
    return callbacks


def _learn(
    model: BaseAlgorithm,
    config: AgentRunConfig,
    run_dir: Path,
    eval_env: VecEnv | None,
    progress: bool,
    resuming: bool,
) -> TrainResult:
    """Train to n_timesteps, then save model.zip (and the replay buffer, if the run keeps it);
    Ctrl-C saves first; NaN saves nothing."""
    formats = ["tensorboard"] if progress else ["tensorboard", "stdout"]
    model.set_logger(configure(str(run_dir), formats))
    first_step = model.num_timesteps if resuming else 0
    remaining = config.n_timesteps - first_step
    status: TrainStatus = "finished"
    start, message = time.time(), ""
    try:
        if remaining > 0:
            model.learn(
                remaining,
                callback=_callbacks(config, run_dir, eval_env),
                progress_bar=progress,
                reset_num_timesteps=not resuming,
            )
        _save_final(model, config, run_dir)
    except KeyboardInterrupt:
        _save_final(model, config, run_dir)
        status, message = "interrupted", "interrupted: model.zip saved"
    except NonFiniteError as err:
        latest = list_checkpoints(run_dir)
        kept = f"last checkpoint {max(latest)} steps" if latest else "no checkpoint yet"
        status = "diverged"
        message = f"training diverged: {err}; model.zip not written, {kept} kept intact"
    finally:
        env = model.get_env()
        if env is not None:  # always: the model was built or loaded with its env
            env.close()
        if eval_env is not None:
            eval_env.close()
    seconds = time.time() - start
    steps = int(model.num_timesteps)
    result = TrainResult(run_dir, status, steps, seconds, message, trained=steps - first_step)
    _write_train_result(result, device_record(model.device))
    return result


def _write_train_result(result: TrainResult, device: dict[str, Any] | None = None) -> None:
    """train_result.json: how the run ended and, when this session trained, on what device."""
    atomic_write_json(
        result.run_dir / RESULT_NAME,
        {
            "status": result.status,
            "timesteps": result.timesteps,
            "trained_timesteps": result.trained,
            "seconds": result.seconds,
            "message": result.message,
            **({"device": device} if device else {}),
        },
    )


def _save_final(model: BaseAlgorithm, config: AgentRunConfig, run_dir: Path) -> None:
    save_model_atomic(model, run_dir / "model.zip")
    if config.save_replay_buffer and isinstance(model, OffPolicyAlgorithm):
        save_replay_buffer_atomic(model, run_dir)


def restore_replay_buffer(
    model: OffPolicyAlgorithm, run_dir: Path, steps: int, learning_starts: int
) -> str:
    """Give a resumed off-policy model the replay buffer saved with its model of `steps` steps;
    return one line saying what it resumes with.

    Without one (the run was trained without --save-replay-buffer, or the buffer is unreadable)
    the model starts with an empty buffer and collects `learning_starts` steps before it trains
    again, as a new run does: SB3 would otherwise train at once on the first few transitions.
    """
    path = replay_buffer_path(run_dir, steps)
    why = f"no {path.name}: the run was trained without --save-replay-buffer"
    if path.is_file():
        try:
            model.load_replay_buffer(path)
        except Exception as err:  # a truncated or foreign pickle: resume, as with no buffer
            why = f"warning: unreadable replay buffer {path} ({type(err).__name__})"
        else:
            # It may have been saved from another device. load_replay_buffer has just set it;
            # SB3 types it optional (None before a model is set up).
            model.replay_buffer.device = model.device  # type: ignore[union-attr]
            n = model.replay_buffer.size()  # type: ignore[union-attr]
            return f"resumed with the saved replay buffer: {n} transitions ({path.name})"
    model.learning_starts = steps + learning_starts
    return (
        f"the resumed run starts with an empty replay buffer ({why}); it collects "
        f"{learning_starts} steps before training again"
    )


def _build_model(config: AgentRunConfig, env: VecEnv, device: str) -> BaseAlgorithm:
    """SB3's algorithm with the config's hyperparameters and extractor."""
    algo_kwargs, policy_extra = sb3_kwargs(config.hyperparams, config.algo)
    policy_kwargs = policy_kwargs_for(config.extractor, config.with_r, **policy_extra)
    try:
        return ALGOS[config.algo](
            "CnnPolicy",
            env,
            policy_kwargs=policy_kwargs,
            seed=config.seed,
            device=device,
            verbose=0,
            **algo_kwargs,
        )
    except (AssertionError, ValueError) as err:  # a combination SB3 itself refuses
        raise UsageError(f"SB3 {config.algo.upper()} refused the config: {err}") from None


def _set_precision(model: BaseAlgorithm, precision: str) -> None:
    """The run's precision on a built or loaded model, with a note where it is emulated."""
    set_precision(model.policy, precision)
    note = bf16_note(model.device) if precision == "bf16" else None
    if note:
        print(note, file=sys.stderr)


def train_atari(
    s: TrainSettings, argv: list[str], started: Callable[[Path], None] | None = None
) -> TrainResult:
    """Start a new run in logdir/<Game>/<run name>/ and train it. `started(run_dir)` is called
    once the folder holds its metadata, before training (the study engine records there which
    Ray node trains it)."""
    config = resolve_run_config(s)
    device = select_device(s.device, s.tf32)
    config = replace(config, device=str(device))  # the device it resolved to, not `auto`
    name = s.run_name or default_run_name(s.algo, s.extractor, s.with_r, s.seed, s.precision)
    game_dir = Path(s.logdir) / config.env
    game_dir_existed = game_dir.exists()
    run_dir = create_run_dir(s.logdir, config.env, name)
    try:
        write_run_metadata(run_dir, config.to_dict(), argv, device)
        if started is not None:
            started(run_dir)
        env, eval_env = _envs(config, run_dir, s.seed)
        model = _build_model(config, env, str(device))
        _set_precision(model, s.precision)
    except BaseException:
        # Nothing was trained: a refused run leaves no folder behind, nor the game folder made
        # for it (rmdir: only while empty, since runs started beside it may share it).
        shutil.rmtree(run_dir, ignore_errors=True)
        if not game_dir_existed:
            with contextlib.suppress(OSError):
                game_dir.rmdir()
        raise
    return _learn(model, config, run_dir, eval_env, s.progress, resuming=False)


def continue_schedules(model: BaseAlgorithm, total: int) -> None:
    """Make the model's schedules continue without a jump when its run is extended to `total`.

    SB3 evaluates schedules at 1 - steps / total, so a larger total would lift them back up.
    Instead the rest of each schedule (from where it stands now to its end value) is stretched
    over the steps to the new total. A run that had reached its old total has no rest left:
    its schedules stay at their end values (a warning names them).
    """
    old_total, steps = model._total_timesteps, model.num_timesteps
    if total == old_total or old_total <= 0:
        return
    # Progress p on the way to `total` must read as the progress the old run would have had
    # at the same step: (old - s) / old at s = steps and 0 at s = total, linear in between.
    scale = max(old_total - steps, 0) * total / (old_total * (total - steps))
    # exploration_schedule: DQN's epsilon, a schedule over progress like the others.
    keys = ("learning_rate", "clip_range", "clip_range_vf", "exploration_schedule")
    names = [n for n in keys if hasattr(model, n)]
    for name in names:
        value = getattr(model, name)
        if callable(value):
            setattr(model, name, ScaledProgress(value, scale))
            if scale == 0:
                print(
                    f"warning: the run had reached its total ({old_total} steps); {name} stays "
                    f"at its final value {value(0.0):g}",
                    file=sys.stderr,
                )
    model.lr_schedule = FloatSchedule(model.learning_rate)  # as SB3's _setup_lr_schedule builds it


def resume_atari(
    run_dir: str | Path,
    argv: list[str],
    timesteps: int | None = None,
    device: str = "auto",
    progress: bool = True,
) -> TrainResult:
    """Continue a run from its newest saved model (model.zip or a checkpoint, by step count).

    The games and torch continue with fresh random streams derived from the seed and the step
    count (`resume_seed`), so a resumed run does not replay the games it saw. `timesteps` is a
    new total; schedules continue without a jump (`continue_schedules`). An off-policy run
    continues with the replay buffer saved with that model, or an empty one
    (`restore_replay_buffer`, which prints one line saying which). A run already at its total is
    left as it is; if it was stopped before recording its train_result.json, that is written.
    """
    run_dir = Path(run_dir)
    config = read_agent_run_config(run_dir)
    if timesteps is not None:
        check_at_least("--timesteps", timesteps)
        config = replace(config, hyperparams={**config.hyperparams, "n_timesteps": timesteps})
    total = config.n_timesteps
    torch_device = select_device(device, config.tf32)
    path, steps = newest_model(run_dir)
    if steps >= total:
        message = f"nothing to do: {run_dir} is at {steps} steps, its total is {total}"
        if (run_dir / RESULT_NAME).is_file():
            return TrainResult(run_dir, "unchanged", steps, 0.0, message)
        # Stopped after saving its last model but before recording how it ended: it finished.
        result = TrainResult(run_dir, "finished", steps, 0.0, message)
        _write_train_result(result)
        return result
    config = replace(config, device=str(torch_device))
    write_run_metadata(run_dir, config.to_dict(), argv, torch_device)
    seed = resume_seed(config.seed, steps)
    env, eval_env = _envs(config, run_dir, seed)
    try:
        model = load_agent(config.algo, path, env=env, device=str(torch_device))
    except UsageError:
        for venv in (env, eval_env):
            if venv is not None:
                venv.close()
        raise
    # SB3's load re-seeds everything with the run's own seed; a resume needs fresh streams.
    model.set_random_seed(seed)
    if isinstance(model, OffPolicyAlgorithm):  # is_off_policy(config.algo), typed as such
        default = inspect.signature(type(model).__init__).parameters["learning_starts"].default
        learning_starts = int(config.hyperparams.get("learning_starts", default))
        print(restore_replay_buffer(model, run_dir, steps, learning_starts), file=sys.stderr)
    _set_precision(model, config.precision)
    continue_schedules(model, total)
    return _learn(model, config, run_dir, eval_env, progress, resuming=True)
