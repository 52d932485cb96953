"""Parts of a training run, one at a time: evaluation, the NaN guard, config checks, resume."""

import json
import math
import zipfile
from types import SimpleNamespace

import pytest
import torch
from stable_baselines3 import A2C
from stable_baselines3.common.logger import configure
from stable_baselines3.common.utils import FloatSchedule, LinearSchedule

from agents.callbacks import Evaluator, NonFiniteError, NonFiniteGuard
from agents.checkpoints import load_agent, newest_model, save_model_atomic, saved_steps
from agents.config import check_hyperparams
from agents.train import continue_schedules, resume_seed
from common.errors import UsageError
from envs import make_atari_vec_env
from policies import policy_kwargs_for


@pytest.fixture(scope="module")
def model():
    env = make_atari_vec_env("MsPacman", 1, seed=0, backend="ale")
    m = A2C("CnnPolicy", env, policy_kwargs=policy_kwargs_for("conv"), n_steps=5, device="cpu")
    m.set_logger(configure(None, []))
    yield m
    env.close()


@pytest.mark.parametrize("deterministic", [False, True])
def test_evaluation_samples_actions_unless_asked(model, tmp_path, monkeypatch, deterministic):
    seen = []
    predict = A2C.predict

    def recording_predict(self, *args, **kwargs):
        seen.append(kwargs["deterministic"])
        return predict(self, *args, **kwargs)

    # On the class: an instance attribute would be pickled into best_model.zip.
    monkeypatch.setattr(A2C, "predict", recording_predict)
    eval_env = make_atari_vec_env("MsPacman", 1, seed=1, training=False, backend="ale")
    evaluator = Evaluator(tmp_path, eval_env, every=1, episodes=1, deterministic=deterministic)
    evaluator.init_callback(model)
    evaluator._fire()
    eval_env.close()
    assert seen and set(seen) == {deterministic}
    (entry,) = json.loads((tmp_path / "evaluations.json").read_text())
    assert entry["deterministic"] is deterministic and (tmp_path / "best_model.zip").is_file()


def _guard(model, values):
    guard = NonFiniteGuard()
    guard.init_callback(model)
    model.logger.name_to_value.clear()
    model.logger.name_to_value.update(values)
    return guard


def test_nan_guard_stops_on_losses_gradients_and_weights_only(model):
    # SB3 logs explained variance as NaN whenever a batch's returns have zero variance.
    healthy = {"train/explained_variance": math.nan, "train/value_loss": 0.5}
    _guard(model, healthy)._on_rollout_start()
    with pytest.raises(NonFiniteError, match="train/value_loss is nan"):
        _guard(model, {"train/value_loss": math.nan})._on_rollout_start()
    param = model.policy.action_net.weight
    param.grad = torch.zeros_like(param)
    param.grad[0, 0] = math.inf
    with pytest.raises(NonFiniteError, match="gradient of action_net.weight is not finite"):
        _guard(model, healthy)._on_rollout_start()
    param.grad = None
    saved = param.data.clone()
    param.data[0, 0] = math.nan
    try:
        with pytest.raises(NonFiniteError, match="weight action_net.weight is not finite"):
            _guard(model, healthy)._on_rollout_start()
    finally:
        param.data.copy_(saved)
    # Large finite weights pass (a sum of squares would overflow to inf); -inf or NaN anywhere
    # in a large tensor does not.
    big = model.policy.features_extractor.linear[0].weight
    saved = big.data.clone()
    try:
        big.data[0, 0] = 3e38
        _guard(model, healthy)._on_rollout_start()
        for value in (-math.inf, math.nan):
            big.data[-1, -1] = value
            with pytest.raises(NonFiniteError, match="features_extractor.linear.0.weight is not"):
                _guard(model, healthy)._on_rollout_start()
    finally:
        big.data.copy_(saved)
    model.logger.name_to_value.clear()


@pytest.mark.parametrize(
    "key,value,message",
    [
        ("ent_coef", "abc", "ent_coef must be a number, got 'abc'"),
        ("gamma", "high", "gamma must be a number, got 'high'"),
        ("vf_coef", [1, 2], "vf_coef must be a number, got [1, 2]"),
        ("max_grad_norm", "None", "max_grad_norm must be a number, got 'None'"),
        ("max_grad_norm", None, "max_grad_norm must be a number, got None"),
        ("normalize_advantage", "maybe", "normalize_advantage must be true or false"),
        ("gae_lambda", -1, "gae_lambda must be in [0, 1], got -1"),
        ("gamma", 1.5, "gamma must be in [0, 1], got 1.5"),
        ("learning_rate", "linear(1e-3, -1)", "learning_rate must be a number >= 0"),
        ("n_steps", 2.5, "n_steps must be a whole number, got 2.5"),
        ("n_steps", True, "n_steps must be a whole number, got True"),
        ("rollout_buffer_class", "RolloutBuffer", "rollout_buffer_class must be null"),
        ("optimizer_eps", 0, "optimizer_eps must be a number > 0, got 0"),
    ],
)
def test_hyperparameters_are_checked_against_sb3_types(key, value, message):
    with pytest.raises(UsageError) as err:
        check_hyperparams({key: value}, "a2c")
    assert str(err.value).startswith(message)


def test_good_hyperparameters_pass_and_whole_floats_become_ints():
    checked = check_hyperparams(
        {"n_timesteps": 1.0e7, "n_steps": 5.0, "learning_rate": "linear(2.5e-4, 0)", "gamma": 1},
        "a2c",
    )
    assert checked["n_timesteps"] == 10_000_000 and isinstance(checked["n_steps"], int)
    assert check_hyperparams({"clip_range_vf": None, "target_kl": 0.01}, "ppo")
    assert math.isnan(check_hyperparams({"ent_coef": math.nan}, "a2c")["ent_coef"])


def test_extension_stretches_the_rest_of_each_schedule():
    lr, clip = LinearSchedule(1.0, 0.0, 1.0), FloatSchedule(LinearSchedule(0.2, 0.0, 1.0))
    m = SimpleNamespace(_total_timesteps=100, num_timesteps=40, learning_rate=lr, clip_range=clip)
    continue_schedules(m, 200)
    at = lambda sched, steps: sched(1 - steps / 200)  # noqa: E731  (SB3's progress at the new total)
    assert at(m.lr_schedule, 40) == pytest.approx(lr(1 - 40 / 100))  # no jump at the resume
    assert at(m.lr_schedule, 200) == pytest.approx(0.0)  # the end value at the new end
    assert at(m.lr_schedule, 120) == pytest.approx(0.3)  # halfway through the rest: 0.6 -> 0
    assert at(m.clip_range, 40) == pytest.approx(0.12)
    same = SimpleNamespace(_total_timesteps=100, num_timesteps=40, learning_rate=lr)
    continue_schedules(same, 100)  # an interrupted run resumed to its own total: unchanged
    assert same.learning_rate is lr


def test_extension_of_a_finished_run_keeps_the_end_value(capsys):
    m = SimpleNamespace(
        _total_timesteps=100, num_timesteps=100, learning_rate=LinearSchedule(1.0, 0.0, 1.0)
    )
    continue_schedules(m, 300)
    assert m.lr_schedule(1.0) == m.lr_schedule(0.5) == 0.0
    assert "learning_rate stays at its final value 0" in capsys.readouterr().err


def test_resume_seed_is_fresh_and_repeatable():
    assert resume_seed(0, 600) == resume_seed(0, 600)
    assert len({resume_seed(0, 600), resume_seed(0, 1200), resume_seed(1, 600), 0, 1}) == 5
    assert 0 <= resume_seed(7, 10**9) < 2**30


def test_newest_model_by_step_count_skips_unreadable_files(model, tmp_path, capsys):
    run = tmp_path / "run"
    model.num_timesteps = 100
    save_model_atomic(model, run / "checkpoints" / "model_100_steps.zip")
    model.num_timesteps = 150
    save_model_atomic(model, run / "model.zip")  # what Ctrl-C saves, past the last checkpoint
    assert newest_model(run) == (run / "model.zip", 150)
    data = (run / "model.zip").read_bytes()
    (run / "model.zip").write_bytes(data[: len(data) // 2])  # truncated
    assert newest_model(run) == (run / "checkpoints" / "model_100_steps.zip", 100)
    err = capsys.readouterr().err
    assert "warning: unreadable model file" in err and "resuming from an older one" in err
    (run / "checkpoints" / "model_100_steps.zip").write_bytes(b"not a zip")
    with pytest.raises(UsageError, match="no readable model to resume from"):
        newest_model(run)
    with pytest.raises(UsageError, match="unreadable model file"):
        saved_steps(run / "model.zip")


def test_load_agent_keeps_the_cause_and_its_message(tmp_path):
    path = tmp_path / "model.zip"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("data", "{not json")
    with pytest.raises(UsageError) as caught:
        load_agent("a2c", path)
    message = str(caught.value)
    assert message.startswith(f"cannot load model {path}: JSONDecodeError: Expecting property")
    assert "\n" not in message and isinstance(caught.value.__cause__, ValueError)
