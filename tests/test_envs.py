import numpy as np
import pytest

from common.errors import UsageError
from envs import make_atari_vec_env, resolve_game


@pytest.mark.parametrize(
    "name", ["MsPacman", "ms_pacman", "mspacman", "ALE/MsPacman-v5", "MsPacmanNoFrameskip-v4"]
)
def test_every_spelling_resolves(name):
    assert resolve_game(name) == "MsPacman"


@pytest.mark.parametrize(
    "name,game", [("space_invaders", "SpaceInvaders"), ("BreakoutNoFrameskip-v4", "Breakout")]
)
def test_other_games_resolve(name, game):
    assert resolve_game(name) == game


def test_unknown_game_lists_nearest():
    with pytest.raises(UsageError, match=r"unknown Atari game 'MsPacmn'.*MsPacman"):
        resolve_game("MsPacmn")


def _unwrapped(venv):
    return venv.get_attr("unwrapped")


def test_spaces_and_protocol():
    venv = make_atari_vec_env("MsPacman", 2, seed=0)
    obs = venv.reset()
    assert obs.shape == (2, 4, 84, 84) and obs.dtype == np.uint8
    assert venv.observation_space.shape == (4, 84, 84)
    assert venv.action_space.n == 9  # minimal action set
    ale = _unwrapped(venv)[0].ale
    assert ale.getFloat("repeat_action_probability") == 0.0
    venv.close()
    sticky = make_atari_vec_env("MsPacman", 1, seed=0, sticky_actions=True)
    assert _unwrapped(sticky)[0].ale.getFloat("repeat_action_probability") == 0.25
    sticky.close()


@pytest.mark.parametrize("backend", ["sb3", "ale"])
def test_seeding_is_per_sub_env_and_repeatable(backend):
    def rollout(seed):
        venv = make_atari_vec_env("Breakout", 2, seed=seed, backend=backend)
        rng = np.random.default_rng(0)
        frames = [venv.reset()]
        for _ in range(60):
            frames.append(venv.step(rng.integers(0, 4, size=2))[0])
        venv.close()
        return np.stack(frames)

    a, b, c = rollout(1), rollout(1), rollout(2)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)
    assert not np.array_equal(a[:, 0], a[:, 1])  # sub-envs get different seeds


def _play_one_game(venv, seed=0):
    rng = np.random.default_rng(seed)
    venv.reset()
    rewards, dones = [], 0
    for _ in range(5000):
        _, reward, done, infos = venv.step(rng.integers(0, venv.action_space.n, size=1))
        rewards.append(float(reward[0]))
        dones += int(done[0])
        if "episode" in infos[0]:
            return rewards, dones, infos[0]
    raise AssertionError("no game finished")


@pytest.mark.parametrize("backend", ["sb3", "ale"])
def test_training_env_clips_rewards_and_ends_on_life_loss_but_logs_full_games(backend):
    venv = make_atari_vec_env("MsPacman", 1, seed=3, training=True, backend=backend)
    rewards, dones, info = _play_one_game(venv)
    venv.close()
    assert set(rewards) <= {-1.0, 0.0, 1.0}
    assert dones == 3  # Ms. Pac-Man has 3 lives: the agent sees 3 terminals per game
    assert info["episode"]["r"] > sum(rewards) > 0  # Monitor: unclipped full-game score
    assert info["lives"] == 0


@pytest.mark.parametrize("backend", ["sb3", "ale"])
def test_evaluation_env_plays_full_games_with_raw_scores(backend):
    venv = make_atari_vec_env("MsPacman", 1, seed=3, training=False, backend=backend)
    rewards, dones, info = _play_one_game(venv)
    venv.close()
    assert dones == 1 and info["lives"] == 0
    assert info["episode"]["r"] == pytest.approx(sum(rewards))
    assert max(rewards) >= 10  # pellets are worth 10: nothing clipped


def test_bad_sizes():
    with pytest.raises(UsageError, match="n_envs must be >= 1, got 0"):
        make_atari_vec_env("MsPacman", 0, seed=0)
