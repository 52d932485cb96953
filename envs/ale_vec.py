"""An SB3 VecEnv over ale-py's native, threaded AtariVectorEnv (preprocessing done in C++).

Same protocol as the `sb3` backend in envs/atari.py: up to 30 no-ops on reset, frame skip 4 with
a max over the last two frames, 84x84 grayscale, `frame_stack` frames channel first, fire on
reset where the game has FIRE, no sticky actions unless asked, a 108,000-frame cap per game. In
training a lost life is a terminal for the agent while the game goes on, and rewards are clipped
to {-1, 0, 1}.

What SB3's own wrappers would have added, done here because AtariVectorEnv is not a gymnasium
env that SB3 could wrap: `info["episode"] = {"r", "l", "t"}` at the end of every full game with
the unclipped score (what SB3's Monitor reports), `terminal_observation` and
`TimeLimit.truncated` on the step a sub-env finishes, reward clipping (np.sign, as
ClipRewardEnv) applied after the raw score is counted, and in training, on games with FIRE, the
steps SB3's EpisodicLifeEnv + FireResetEnv play after a lost life: NOOP, FIRE, then action 2,
4 frames each, in place of the agent's next 3 actions to that sub-env (ale-py fires only on a
real reset, so Breakout would wait for a serve the agent may never make). Episode lengths count
emulator frames, as the Monitor under AtariWrapper does (about 4 per agent step, no-ops
included).

Differences from the `sb3` backend, all measured with ale-py 0.12.1 and SB3 2.9:
- SB3 plays those 3 steps inside reset, unseen; ale-py steps all sub-envs together, so here they
  are 3 steps the agent sees, with its actions overridden and any reward they earn. The emulator
  plays the same actions on the same frames: where always-NOOP Breakout misses every serve, the
  gap between life-loss terminals is 23 agent steps on `sb3` and 26 here, 104 frames on both.
- Games without FIRE: after a lost life SB3 plays one hidden NOOP step; here the agent's next
  action plays at once.
- After a lost life VecFrameStack starts the stack afresh (zeros and the new frame), while
  ale-py's stack keeps the frames from before the loss.
- A reset: SB3 plays 1-30 no-op frames, then on games with FIRE a FIRE and an action-2 step
  (9-38 frames before the first observation); ale-py plays 0-29 no-op frames, on games with FIRE
  1 FIRE frame and 0-28 no-ops (1-29 frames).
- The 108,000-frame cap counts from the game's start on `sb3`, reset frames included, and from
  the first observation here (after the reset's 0-29 frames), so a capped game lasts 108,000
  frames there and up to 108,029 here.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from typing import Any

import ale_py
import gymnasium as gym
import numpy as np
from ale_py.vector_env import AtariVectorEnv
from stable_baselines3.common.monitor import Monitor, ResultsWriter
from stable_baselines3.common.vec_env.base_vec_env import VecEnv, VecEnvIndices, VecEnvStepReturn

FRAME_SKIP = 4
MAX_FRAMES_PER_GAME = 108_000  # ALE v5's cap, as the `sb3` backend's ALE/<Game>-v5 envs have
NOOP = 0  # the minimal action sets start with NOOP, as SB3's NoopResetEnv asserts


def rom_name(game: str) -> str:
    """ale-py's ROM name ('ms_pacman') for a canonical game name ('MsPacman')."""
    gym.register_envs(ale_py)
    return gym.spec(f"ALE/{game}-v5").kwargs["game"]


def supports(game: str) -> bool:
    """Whether ale-py's vector env can run `game` (its ROM ships with ale-py)."""
    try:
        return ale_py.roms.get_rom_path(rom_name(game)) is not None
    except Exception:  # an unknown id or a ROM lookup error: the sb3 backend decides
        return False


def default_threads() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


class AleVecEnv(VecEnv):
    """`n_envs` copies of `game` stepped by ale-py's threads; sub-env i is seeded seed + i.

    `max_frames_per_game` caps each game in emulator frames (a game past it is truncated).
    `life_loss_actions` are the actions that replace the agent's next ones to a sub-env after it
    loses a life (empty outside training and on games without FIRE).
    """

    def __init__(
        self,
        game: str,
        n_envs: int,
        seed: int,
        *,
        training: bool = True,
        sticky_probability: float = 0.0,
        frame_stack: int = 4,
        num_threads: int | None = None,
        monitor_dir: str | None = None,
        fresh_monitor: bool = True,
        max_frames_per_game: int = MAX_FRAMES_PER_GAME,
    ) -> None:
        self.game = game
        self.training = training
        self.num_threads = num_threads or default_threads()
        self.ale = AtariVectorEnv(
            rom_name(game),
            n_envs,
            num_threads=self.num_threads,
            autoreset_mode="SameStep",  # the final observation in info, as SB3 wants
            repeat_action_probability=sticky_probability,
            # ale-py counts this cap in emulator frames, not agent steps (measured: always-NOOP
            # Breakout is truncated after 27,000 agent steps).
            max_num_frames_per_episode=max_frames_per_game,
            stack_num=frame_stack,
            frameskip=FRAME_SKIP,
            noop_max=30,
            episodic_life=False,  # a lost life must not reset the game ...
            life_loss_info=training,  # ... but is a terminal for the agent in training
            reward_clipping=False,  # clipped here, after the raw score is counted
            use_fire_reset=True,
        )
        super().__init__(n_envs, self.ale.single_observation_space, self.ale.single_action_space)
        self.life_loss_actions = self._life_loss_actions(self.ale.ale.get_action_set(), training)
        # How many of life_loss_actions each sub-env has played since its last lost life: all
        # of them (none left to play) until a life is lost.
        self._played = np.full(n_envs, len(self.life_loss_actions))
        self._seeds = [seed + i for i in range(n_envs)]
        self._returns = np.zeros(n_envs)
        self._game_start = np.zeros(n_envs, dtype=np.int64)
        self._lives = np.zeros(n_envs, dtype=np.int64)
        self._start = time.time()
        self._writers = []
        if monitor_dir is not None:
            # One CSV per sub-env, named and laid out as make_vec_env's Monitors write them.
            self._writers = [
                ResultsWriter(
                    os.path.join(monitor_dir, str(i)),
                    header={"t_start": self._start, "env_id": f"ALE/{game}-v5"},
                    override_existing=fresh_monitor,
                )
                for i in range(n_envs)
            ]

    @staticmethod
    def _life_loss_actions(action_set: list[ale_py.Action], training: bool) -> tuple[int, ...]:
        """The actions SB3's AtariWrapper plays after a lost life in place of the agent's: in
        training, on a game with FIRE, EpisodicLifeEnv's NOOP then FireResetEnv's FIRE and
        action 2; none otherwise. FireResetEnv presses index 1 after asserting it is FIRE, we
        look FIRE up; "action 2" is whatever index 2 means in the game (RIGHT in Breakout)."""
        if not training or ale_py.Action.FIRE not in action_set:
            return ()
        actions = (NOOP, action_set.index(ale_py.Action.FIRE), 2)
        return tuple(a for a in actions if a < len(action_set))

    def reset(self) -> np.ndarray:
        seeds = None if self._seeds[0] is None else np.asarray(self._seeds, dtype=np.int64)
        obs, info = self.ale.reset(seed=seeds)
        self._reset_seeds()
        self._returns[:] = 0
        self._game_start[:] = self._frames_before_episode(info)
        self._lives[:] = info["lives"]
        self._played[:] = len(self.life_loss_actions)
        self.reset_infos = [{} for _ in range(self.num_envs)]
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        # astype copies, so overriding actions below leaves the caller's array alone.
        actions = np.asarray(actions).reshape(self.num_envs).astype(np.int32)
        # ale-py steps every sub-env at once, so the steps SB3 hides inside reset after a lost
        # life take the place of the agent's next actions to that sub-env.
        forced = self._played < len(self.life_loss_actions)
        if forced.any():
            actions[forced] = np.asarray(self.life_loss_actions)[self._played[forced]]
            self._played[forced] += 1
        self.ale.send(actions)

    def step_wait(self) -> VecEnvStepReturn:
        obs, reward, terminated, truncated, info = self.ale.recv()
        reward = reward.astype(np.float64)
        self._returns += reward
        lives = info["lives"].astype(np.int64)
        # A game ends when it is truncated or terminates without a life lost: after a game
        # over the sub-env has already reset, so its lives do not drop.
        game_over = truncated | (terminated & (lives >= self._lives))
        self._lives = lives
        # A lost life (re)starts the life-loss actions; a new game starts with ale-py's own
        # FIRE, as SB3's real reset does.
        self._played[terminated & ~game_over] = 0
        self._played[game_over] = len(self.life_loss_actions)
        dones = terminated | truncated
        infos: list[dict[str, Any]] = [{"lives": int(n)} for n in lives]
        for i in np.flatnonzero(dones):
            # After a lost life the game goes on and `obs` is the terminal frame stack; ale-py
            # 0.12's final_obs holds stale memory there and is right only when a game reset.
            infos[i]["terminal_observation"] = info["final_obs"][i] if game_over[i] else obs[i]
            infos[i]["TimeLimit.truncated"] = bool(truncated[i] and not terminated[i])
        started = self._frames_before_episode(info)
        for i in np.flatnonzero(game_over):
            if terminated[i]:  # the lives the game ended with, not the next game's
                infos[i]["lives"] = 0
            infos[i]["episode"] = {
                "r": float(self._returns[i]),
                # In emulator frames, as SB3's Monitor counts them under AtariWrapper.
                "l": int(started[i] - self._game_start[i]),
                "t": round(time.time() - self._start, 6),
            }
            if self._writers:
                self._writers[i].write_row(infos[i]["episode"])
            self._returns[i] = 0
            self._game_start[i] = started[i]
        if self.training:
            reward = np.sign(reward)
        return obs, reward.astype(np.float32), dones, infos

    @staticmethod
    def _frames_before_episode(info: dict[str, np.ndarray]) -> np.ndarray:
        """Each sub-env's emulator frame count when its current episode began (its frame
        counter runs across games; a reset's no-ops count in the new episode)."""
        return info["frame_number"].astype(np.int64) - info["episode_frame_number"]

    def close(self) -> None:
        for writer in self._writers:
            writer.close()
        self.ale.close()

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        if attr_name == "render_mode":
            return [None for _ in self._get_indices(indices)]
        return [getattr(self, attr_name) for _ in self._get_indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        raise AttributeError(f"AleVecEnv sub-envs have no settable attribute {attr_name!r}")

    def env_method(
        self, method_name: str, *args: Any, indices: VecEnvIndices = None, **kwargs: Any
    ) -> list[Any]:
        raise AttributeError(f"AleVecEnv sub-envs have no method {method_name!r}")

    def env_is_wrapped(self, wrapper_class: type, indices: VecEnvIndices = None) -> list[bool]:
        # Episodes are reported as SB3's Monitor reports them (evaluate_policy relies on it).
        return [wrapper_class is Monitor for _ in self._get_indices(indices)]

    def get_images(self) -> Sequence[np.ndarray | None]:
        return [None for _ in range(self.num_envs)]
