"""SB3 callbacks of a training run: episode logging, evaluation, checkpoints, NaN guard."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.logger import TensorBoardOutputFormat
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
from stable_baselines3.common.vec_env import VecEnv

from agents.checkpoints import checkpoint_path, save_model_atomic, save_replay_buffer_atomic
from common.files import atomic_write_json
from coordconv import coordinate_layers, coordinate_share

# Frames of the evaluation games the coordinate share is measured on: every STRIDE-th agent step,
# at most MAX of them (a single forward of the policy on a batch that size: a few milliseconds).
SHARE_FRAME_STRIDE = 8
SHARE_MAX_FRAMES = 256


class NonFiniteError(RuntimeError):
    """Training produced a NaN or infinite loss or weight."""


def frame_keeper(frames: list[np.ndarray]) -> Callable[[dict, dict], None]:
    """An `evaluate_policy` callback that appends to `frames` every SHARE_FRAME_STRIDE-th frame
    the policy acted on, at most SHARE_MAX_FRAMES: the frames the coordinate share is measured
    on."""
    calls = [0]

    def keep(local: dict, _: dict) -> None:
        # SB3 calls this once per sub-env per step, with the frame the action was chosen on.
        calls[0] += 1
        if calls[0] % SHARE_FRAME_STRIDE == 0 and len(frames) < SHARE_MAX_FRAMES:
            frames.append(local["observations"][local["i"]])

    return keep


class _EveryNSteps(BaseCallback):
    """Runs `_fire` each time the total step count crosses a multiple of `every`."""

    def __init__(self, every: int) -> None:
        super().__init__()
        self.every = every
        self._next = 0

    def _on_training_start(self) -> None:
        # On resume num_timesteps starts high: fire at the next multiple, not at once.
        self._next = (self.num_timesteps // self.every + 1) * self.every

    def _on_step(self) -> bool:
        if self.num_timesteps >= self._next:
            self._next = (self.num_timesteps // self.every + 1) * self.every
            self._fire()
        return True

    def _fire(self) -> None:
        raise NotImplementedError


class EpisodeLogger(BaseCallback):
    """Logs each finished full game's score and length to TensorBoard at its step.

    SB3's `rollout/ep_rew_mean` is a 100-episode running mean, dumped every log interval;
    CleanRL's `charts/episodic_return` has one point per game, which is what curves across
    seeds need. Scores come from SB3's Monitor: full games, unclipped.
    """

    def _on_training_start(self) -> None:
        self._writer = next(
            f.writer for f in self.logger.output_formats if isinstance(f, TensorBoardOutputFormat)
        )

    def _on_step(self) -> bool:
        for info in self.locals["infos"]:
            episode = info.get("episode")
            if episode is not None:
                self._writer.add_scalar("charts/episodic_return", episode["r"], self.num_timesteps)
                self._writer.add_scalar("charts/episodic_length", episode["l"], self.num_timesteps)
        return True


class ProgressFile(BaseCallback):
    """Keeps RUN_DIR/progress.json (steps, total, steps/s of this session, latest full-game
    return) up to date every `seconds`, atomically, for live views of running studies."""

    NAME = "progress.json"

    def __init__(self, run_dir: Path, total: int, seconds: float = 5.0) -> None:
        super().__init__()
        self.path = run_dir / self.NAME
        self.total = total
        self.seconds = seconds
        self._last_return: float | None = None

    def _on_training_start(self) -> None:
        self._start = self._written = time.time()
        self._start_steps = self.num_timesteps
        self._write()

    def _on_step(self) -> bool:
        for info in self.locals["infos"]:
            if "episode" in info:
                self._last_return = float(info["episode"]["r"])
        if time.time() - self._written >= self.seconds:
            self._write()
        return True

    def _on_training_end(self) -> None:
        self._write()

    def _write(self) -> None:
        self._written = now = time.time()
        elapsed = now - self._start
        rate = (self.num_timesteps - self._start_steps) / elapsed if elapsed > 0 else 0.0
        atomic_write_json(
            self.path,
            {
                "steps": int(self.num_timesteps),
                "total": self.total,
                "steps_per_s": rate,
                "last_return": self._last_return,
                "time": now,
            },
        )


class Checkpointer(_EveryNSteps):
    """Saves checkpoints/model_<steps>_steps.zip every `every` agent steps, atomically; with
    `replay_buffer`, also the off-policy model's replay buffer (save_replay_buffer_atomic), as
    SB3's CheckpointCallback(save_replay_buffer=True) does."""

    def __init__(self, run_dir: Path, every: int, replay_buffer: bool = False) -> None:
        super().__init__(every)
        self.run_dir = run_dir
        self.replay_buffer = replay_buffer

    def _fire(self) -> None:
        save_model_atomic(self.model, checkpoint_path(self.run_dir, self.num_timesteps))
        if self.replay_buffer and isinstance(self.model, OffPolicyAlgorithm):
            save_replay_buffer_atomic(self.model, self.run_dir)


class Evaluator(_EveryNSteps):
    """Plays `episodes` full games with SB3's evaluate_policy every `every` agent steps.

    Actions are sampled from the policy, as RL Zoo evaluates Atari agents (a greedy Atari agent
    can stall, e.g. never press FIRE, or replay one game); `deterministic=True` plays greedily.
    Logs eval/mean_reward and eval/mean_ep_length, appends to evaluations.json and keeps
    best_model.zip, all written atomically (SB3's EvalCallback writes its files in place).

    A policy with CoordConv layers also gets, per layer, its coordinate share and the norm of
    its coordinate weights against its image weights (coordconv.coordinate_share) on frames of
    the evaluation games, logged as coords/<layer>/share and coords/<layer>/weight_ratio and kept
    in evaluations.json (`coordinates`, with the seconds the measure took).
    """

    def __init__(
        self, run_dir: Path, eval_env: VecEnv, every: int, episodes: int, deterministic: bool
    ) -> None:
        super().__init__(every)
        self.run_dir = run_dir
        self.eval_env = eval_env
        self.episodes = episodes
        self.deterministic = deterministic
        path = run_dir / "evaluations.json"
        self.history = json.loads(path.read_text()) if path.exists() else []
        self.best = max((e["mean_reward"] for e in self.history), default=-math.inf)

    def _fire(self) -> None:
        frames: list[np.ndarray] = []
        rewards, lengths = evaluate_policy(
            self.model,
            self.eval_env,
            self.episodes,
            deterministic=self.deterministic,
            return_episode_rewards=True,
            callback=frame_keeper(frames) if coordinate_layers(self.model.policy) else None,
        )
        mean = float(np.mean(rewards))
        self.logger.record("eval/mean_reward", mean)
        self.logger.record("eval/mean_ep_length", float(np.mean(lengths)))
        entry = {
            "timesteps": self.num_timesteps,
            "deterministic": self.deterministic,
            "mean_reward": mean,
            "std_reward": float(np.std(rewards)),
            # Lists, with return_episode_rewards=True: SB3 types the result as either form.
            "episode_rewards": [float(r) for r in rewards],  # type: ignore[union-attr]
            "episode_lengths": [int(n) for n in lengths],  # type: ignore[union-attr]
        }
        if frames:
            entry["coordinates"] = self._coordinate_share(np.stack(frames))
        self.logger.dump(self.num_timesteps)  # as EvalCallback: eval points land at their step
        self.history.append(entry)
        atomic_write_json(self.run_dir / "evaluations.json", self.history)
        if mean > self.best:
            self.best = mean
            save_model_atomic(self.model, self.run_dir / "best_model.zip")

    def _coordinate_share(self, frames: np.ndarray) -> dict:
        """Each CoordConv layer's coordinate share on `frames`, logged and returned."""
        start = time.perf_counter()
        policy = self.model.policy
        obs, _ = policy.obs_to_tensor(frames)
        layers = coordinate_share(policy, obs)
        for name, stats in layers.items():
            self.logger.record(f"coords/{name}/share", stats["share"])
            self.logger.record(f"coords/{name}/weight_ratio", stats["weight_ratio"])
        return {"frames": len(frames), "seconds": time.perf_counter() - start, "layers": layers}


class NonFiniteGuard(BaseCallback):
    """Stops training when a loss, a gradient or a weight is NaN or infinite, before anything
    is saved.

    Only losses: SB3 logs other diagnostics that are NaN in healthy runs (explained variance
    is NaN whenever a batch's returns have zero variance), and those are logged as they are.
    """

    def _on_rollout_start(self) -> None:
        for key, value in self.logger.name_to_value.items():
            if key.startswith("train/") and key.endswith("loss") and not math.isfinite(value):
                raise NonFiniteError(f"{key} is {value} at step {self.num_timesteps}")
        # The weights the optimizer trains: a DQN target network is a copy of them, and checking
        # it too would double the guard's cost every train_freq steps.
        trained = {
            id(p) for group in self.model.policy.optimizer.param_groups for p in group["params"]
        }
        params = [(n, p) for n, p in self.model.policy.named_parameters() if id(p) in trained]
        named: list[tuple[str, torch.Tensor]] = [(f"weight {n}", p) for n, p in params]
        named += [(f"gradient of {n}", p.grad) for n, p in params if p.grad is not None]
        # Each tensor's largest magnitude is NaN or inf exactly when the tensor holds one (a max
        # cannot overflow, as a sum of squares could), and one reduction per tensor with a
        # single device sync is 20x cheaper than an elementwise isfinite mask per tensor (4.3
        # ms per A2C rollout on the 2-core CPU). Names are looked up only on failure.
        peaks = torch.stack([torch.linalg.vector_norm(t.detach(), math.inf) for _, t in named])
        if not bool(torch.isfinite(peaks).all()):
            name = next(n for n, t in named if not torch.isfinite(t).all())
            raise NonFiniteError(f"{name} is not finite at step {self.num_timesteps}")

    def _on_step(self) -> bool:
        return True
