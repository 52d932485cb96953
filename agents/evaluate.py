"""Evaluate a saved agent: full games, unclipped scores, optional video of the first game."""

from __future__ import annotations

import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.utils import set_random_seed

from agents.checkpoints import load_agent, model_path
from agents.run_config import read_agent_run_config
from common.cli import DEVICE_HELP, option
from common.devices import device_record, resolve_device, set_tf32
from common.errors import UsageError, check_choice
from common.files import atomic_path, atomic_write_json
from coordconv import coordinate_layers, coordinates
from coordconv.reliance import COORDINATE_MODES
from envs.atari import make_atari_vec_env
from policies.precision import PRECISIONS, set_precision

AS_TRAINED = COORDINATE_MODES[0]
VIDEO_FPS = 60  # the Atari's own frame rate: every emulator frame is kept
VIDEO_SUFFIXES = (".mp4", ".gif")


class FirstGameRecorder(gym.Wrapper):
    """Keeps the full-resolution RGB screen of every emulator frame of the first game."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.frames: list[np.ndarray] = []
        self.done = False

    def _grab(self) -> None:
        if not self.done:
            # The env under the wrappers is ale-py's AtariEnv, which gymnasium's Env types not.
            self.frames.append(self.env.unwrapped.ale.getScreenRGB())  # type: ignore[attr-defined]

    def reset(self, **kwargs):
        out = self.env.reset(**kwargs)
        if self.frames:
            self.done = True  # a reset after frames were kept starts the second game
        self._grab()
        return out

    def step(self, action):
        out = self.env.step(action)
        self._grab()
        return out


def write_video(frames: list[np.ndarray], path: Path) -> Path:
    """MP4 or GIF (by the extension, which the caller has checked) of `frames`, atomically."""
    import imageio.v2 as imageio

    suffix = path.suffix.lower()
    with atomic_path(path) as tmp:
        if suffix == ".gif":
            # imageio annotates a list of array-likes, which a list of arrays is not (lists are
            # invariant); it reads any sequence of frames.
            imageio.mimsave(tmp, frames, duration=1000 / VIDEO_FPS, loop=0)  # type: ignore[arg-type]
        else:
            # 210x160 frames: macro_block_size=1 keeps the original size (no resize to 16s).
            imageio.mimsave(tmp, frames, fps=VIDEO_FPS, macro_block_size=1)  # type: ignore[arg-type]
    return path


@dataclass
class EvaluateSettings:
    """What `evaluate.py` was asked for, one field per argument."""

    run_dir: str = option(
        help="a run folder made by train_atari.py", flag="run_dir", metavar="RUN_DIR"
    )
    episodes: int = option(10, "full games to play")
    deterministic: bool = option(
        False, "greedy actions (default: sampled, as RL Zoo evaluates Atari)"
    )
    checkpoint: str = option("best", "best (best_model.zip), final (model.zip) or STEPS")
    video: str | None = option(
        None, "write the first game to PATH (.mp4 or .gif), 210x160 RGB", metavar="PATH"
    )
    seed: int = option(0, "seed of the evaluation games")
    device: str = option("auto", DEVICE_HELP)
    precision: str | None = option(
        None, f"{' or '.join(PRECISIONS)} play (default: the precision the run trained in)"
    )
    coords: str = option(
        AS_TRAINED,
        f"what the CoordConv layers see as coordinates: {', '.join(COORDINATE_MODES)}, or a "
        "comma list such as zero,flip (zero: none, flip: mirrored); each ablation plays the same "
        "games as the as-trained agent, and the paired score changes go to RUN_DIR/reliance.json",
    )


def coordinate_modes(text: str) -> list[str]:
    """The modes a --coords value asks for, as-trained first and each once; UsageError naming
    an unknown one."""
    modes = [m.strip() for m in text.split(",")]
    for mode in modes:
        check_choice("--coords", mode, COORDINATE_MODES)
    return [AS_TRAINED] + [m for m in dict.fromkeys(modes) if m != AS_TRAINED]


def play_games(
    model: Any, env: Any, episodes: int, seed: int, deterministic: bool
) -> tuple[np.ndarray, list[int]]:
    """Full-game scores and lengths of `episodes` games of one env. Game i starts from env seed
    seed + i with the global RNGs (sampled actions) seeded seed + i, so two agents, or one agent
    under two coordinate modes, play game i from the same start with the same random draws:
    their scores pair by game."""
    rewards: list[float] = []
    lengths: list[int] = []
    for game in range(episodes):
        set_random_seed(seed + game, using_cuda=model.device.type == "cuda")
        env.seed(seed + game)
        r, n = evaluate_policy(
            model, env, 1, deterministic=deterministic, return_episode_rewards=True
        )
        # Lists, with return_episode_rewards=True: SB3 types the result as either form.
        rewards += r  # type: ignore[arg-type]
        lengths += n  # type: ignore[arg-type]
    return np.asarray(rewards, dtype=float), [int(n) for n in lengths]


def evaluate_run(s: EvaluateSettings) -> dict[str, Any]:
    """Play `s.episodes` full games with a run's saved agent; write RUN_DIR/eval.json.

    With coordinate ablations in `s.coords`, the same games are played again under each (see
    `coordconv.coordinates`), and the result's `coords` holds every mode's scores, as-trained
    first; eval.json's top-level scores are the as-trained agent's. UsageError for a model
    without CoordConv layers, before any game."""
    modes = coordinate_modes(s.coords)
    if s.episodes < 1:
        raise UsageError(f"--episodes must be >= 1, got {s.episodes}")
    # Checked before any game is played; write_video trusts it.
    if s.video is not None and Path(s.video).suffix.lower() not in VIDEO_SUFFIXES:
        raise UsageError(f"--video must end in .mp4 or .gif, got {s.video}")
    torch_device = resolve_device(s.device)  # before the model: a missing GPU is not a bad model
    run_dir = Path(s.run_dir)
    config = read_agent_run_config(run_dir)
    set_tf32(config.tf32)  # play in the arithmetic the run trained in
    precision = s.precision or config.precision
    check_choice("--precision", precision, PRECISIONS)
    path = model_path(run_dir, s.checkpoint)
    recorder: list[FirstGameRecorder] = []

    def record(env: gym.Env) -> gym.Env:
        recorder.append(FirstGameRecorder(env))
        return recorder[-1]

    env = make_atari_vec_env(
        config.env,
        1,
        s.seed,
        training=False,
        sticky_actions=config.sticky_actions,
        frame_stack=config.frame_stack,
        inner_wrapper=record if s.video is not None else None,
    )
    try:
        model = load_agent(config.algo, path, device=str(torch_device))
    except UsageError:
        env.close()
        raise
    if len(modes) > 1 and not coordinate_layers(model.policy):
        env.close()
        raise UsageError(
            f"--coords {s.coords}: {run_dir} ({config.extractor} extractor) has no CoordConv "
            "layer, so no coordinates to ablate"
        )
    set_precision(model.policy, precision)
    start = time.time()
    plays = {}
    try:
        for mode in modes:
            with coordinates(model.policy, mode) if mode != AS_TRAINED else nullcontext():
                plays[mode] = play_games(model, env, s.episodes, s.seed, s.deterministic)
    finally:
        env.close()
    rewards, lengths = plays[AS_TRAINED]
    result = {
        "run_dir": str(run_dir),
        "model": str(path),
        "env": config.env,
        "algo": config.algo,
        "extractor": config.extractor,
        "episodes": s.episodes,
        "deterministic": s.deterministic,
        "precision": precision,
        "seed": s.seed,
        "mean_reward": float(rewards.mean()),
        "std_reward": float(rewards.std()),
        "min_reward": float(rewards.min()),
        "max_reward": float(rewards.max()),
        "episode_rewards": rewards.tolist(),
        "episode_lengths": lengths,
        "coords": {
            mode: {
                "mean_reward": float(r.mean()),
                "episode_rewards": r.tolist(),
                "episode_lengths": n,
            }
            for mode, (r, n) in plays.items()
        },
        "seconds": time.time() - start,
        **device_record(torch_device),
    }
    if s.video is not None:
        result["video"] = str(write_video(recorder[0].frames, Path(s.video)))
    atomic_write_json(run_dir / "eval.json", result)
    return result
