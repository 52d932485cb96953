"""The typed run config: read once with the old keys upgraded, written back as the file was."""

from dataclasses import replace

import pytest
import yaml

from agents.run_config import UPGRADE_DEFAULTS, AgentRunConfig, read_agent_run_config
from agents.run_dir import load_run_config
from agents.train import TrainSettings, resolve_config, resolve_run_config
from analysis.runs import group_settings

# A config.yaml as the first runs wrote it: keys sorted, the backend under vec_env, no precision,
# tf32, deterministic_eval, num_threads or save_replay_buffer; plus a key the suite never wrote.
OLDEST = {
    "algo": "a2c",
    "checkpoint_freq": 0,
    "config_file": "configs/atari/a2c.yaml",
    "device": "auto",
    "env": "Pong",
    "eval_episodes": 1,
    "eval_freq": 0,
    "extractor": "coordconv",
    "hyperparams": {"n_envs": 2, "n_timesteps": 300, "frame_stack": 3},
    "seed": 1,
    "sticky_actions": True,
    "vec_env": "ale",
    "with_r": True,
    "note": "kept",
}


def write(tmp_path, config):
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return tmp_path


def test_an_old_config_reads_with_its_missing_keys_upgraded(tmp_path):
    config = read_agent_run_config(write(tmp_path, OLDEST))
    assert (config.backend, config.vec_env, config.precision, config.tf32) == (
        "ale", "dummy", "fp32", False,
    )  # fmt: skip
    assert config.deterministic_eval is False and config.num_threads is None
    assert config.save_replay_buffer is False
    assert (config.frame_stack, config.n_envs, config.n_timesteps) == (3, 2, 300)
    minimal = {k: OLDEST[k] for k in ("env", "algo", "extractor", "with_r", "seed")}
    bare = read_agent_run_config(write(tmp_path, {**minimal, "hyperparams": {}}))
    assert bare.frame_stack == 4 and bare.sticky_actions is False and bare.device == "auto"
    assert {k: getattr(bare, k) for k in UPGRADE_DEFAULTS} == UPGRADE_DEFAULTS


def test_writing_back_keeps_an_old_files_keys_and_order(tmp_path):
    """A resume writes the upgraded file with this session's device and total, nothing else."""
    path = write(tmp_path, OLDEST) / "config.yaml"
    want = load_run_config(path)
    assert read_agent_run_config(tmp_path).to_dict() == want
    want["hyperparams"]["n_timesteps"], want["device"] = 600, "cpu"
    config = read_agent_run_config(tmp_path)
    config = replace(config, hyperparams={**config.hyperparams, "n_timesteps": 600}, device="cpu")
    assert yaml.safe_dump(config.to_dict(), sort_keys=False) == yaml.safe_dump(
        want, sort_keys=False
    )
    # Grouping reads the upgraded mapping, which the typed config does not change.
    assert group_settings(config.to_dict()) == group_settings(want)


def test_a_config_without_a_device_gets_the_sessions_appended(tmp_path):
    config = read_agent_run_config(
        write(tmp_path, {k: v for k, v in OLDEST.items() if k != "device"})
    )
    assert list(replace(config, device="cuda:0").to_dict())[-1] == "device"
    assert "device" not in config.to_dict()


def test_a_new_config_is_written_in_field_order_without_a_device_until_set():
    config = resolve_run_config(TrainSettings(env="MsPacman", timesteps=100))
    written = resolve_config(TrainSettings(env="MsPacman", timesteps=100))
    assert written == config.to_dict() and "device" not in written
    assert list(written) == [
        "env", "backend", "vec_env", "num_threads", "algo", "extractor", "with_r", "precision",
        "tf32", "seed", "sticky_actions", "eval_freq", "eval_episodes", "deterministic_eval",
        "checkpoint_freq", "save_replay_buffer", "config_file", "hyperparams",
    ]  # fmt: skip
    assert list(replace(config, device="cpu").to_dict())[-1] == "device"
    assert AgentRunConfig.from_mapping(replace(config, device="cpu").to_dict()) == replace(
        config, device="cpu"
    )


def test_the_config_is_frozen(tmp_path):
    config = read_agent_run_config(write(tmp_path, OLDEST))
    with pytest.raises(AttributeError):
        config.seed = 2  # type: ignore[misc]
