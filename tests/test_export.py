"""Exports, checked by their real consumers: RL Zoo's own train and enjoy (subprocesses, so its
gymnasium patches stay out of this process) and onnxruntime."""

import importlib
import os
import shutil
import subprocess
import sys

import numpy as np
import onnxruntime as ort
import pytest
import torch
import yaml
from stable_baselines3 import A2C, PPO
from stable_baselines3.common.torch_layers import NatureCNN

from agents.config import OPTIMIZERS, default_config_path, load_hyperparams
from agents.export import ExportCheckError, export_onnx, real_observations
from agents.zoo import CONFIG_MODULES
from coordconv import CoordConv2d
from policies.extractors import CoordConvNatureCNN
from tests.cli import ROOT, error_lines, run_script

ENV_ID = "MsPacmanNoFrameskip-v4"
# Subprocesses run side by side: one torch thread each keeps them from fighting over the cores.
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def python(*args, cwd):
    return subprocess.Popen(
        [sys.executable, *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=cwd,
        env=ENV,
    )


def finish(proc):
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    return out


@pytest.fixture(scope="module")
def zoo_training(tmp_path_factory):
    """RL Zoo's own trainer with our config modules (A2C CoordConv, PPO conv), started in the
    background and run from a folder outside the repo: the module path must resolve through the
    installed package."""
    log = tmp_path_factory.mktemp("zoo_train")
    cases = {
        ("a2c", "coordconv"): ["n_envs:2"],
        ("ppo", "conv"): ["n_envs:2", "n_steps:16", "batch_size:32", "n_epochs:1"],
    }
    procs = [
        python(
            *("-m", "rl_zoo3.train", "--algo", algo, "--env", ENV_ID),
            *("--conf-file", f"agents.zoo.{algo}_{extractor}", "-n", "64"),
            *("--hyperparams", *overrides, "--eval-freq", "-1", "--seed", "0"),
            *("-f", log / f"{algo}_{extractor}", "--verbose", "0"),
            cwd=log,
        )
        for (algo, extractor), overrides in cases.items()
    ]
    yield log, procs
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


@pytest.fixture(scope="module")
def zoo_trained(zoo_training):
    log, procs = zoo_training
    for proc in procs:
        finish(proc)
    return log


@pytest.fixture(scope="module")
def runs(tmp_path_factory, zoo_training):
    """A conv and a CoordConv A2C run on Ms. Pac-Man, 200 steps each, trained side by side with
    RL Zoo's (no evaluation, so no best_model.zip)."""
    logdir = tmp_path_factory.mktemp("runs")
    procs = {
        extractor: python(
            ROOT / "scripts" / "train_atari.py",
            *("--env", "MsPacman", "--extractor", extractor, "--timesteps", "200"),
            *("--n-envs", "2", "--no-progress", "--eval-freq", "0", "--seed", "0"),
            *("--logdir", logdir),
            cwd=ROOT,
        )
        for extractor in ("conv", "coordconv")
    }
    for proc in procs.values():
        finish(proc)
    return {extractor: logdir / "MsPacman" / f"a2c_{extractor}_s0" for extractor in procs}


# ---- ONNX ----


@pytest.mark.parametrize("extractor", ["conv", "coordconv"])
def test_onnx_export_matches_the_torch_policy(runs, tmp_path, extractor):
    out = tmp_path / f"{extractor}.onnx"
    r = export_onnx(runs[extractor], out)
    assert out.is_file() and r["model"].endswith("model.zip")  # no best model: the final one
    assert r["max_abs_diff_logits"] <= 1e-4 and r["max_abs_diff_value"] <= 1e-4
    assert r["batch_sizes"] == [32, 1]

    # Checked again here against SB3's own API (not the export's wrapper), on other frames.
    model = A2C.load(runs[extractor] / "model.zip", device="cpu")
    expected = CoordConvNatureCNN if extractor == "coordconv" else NatureCNN
    assert type(model.policy.features_extractor) is expected
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    (obs_input,) = session.get_inputs()
    assert obs_input.type == "tensor(uint8)" and isinstance(obs_input.shape[0], str)
    observations = real_observations("MsPacman", 24, seed=1)
    for batch in (5, 24):
        obs = observations[:batch]
        logits, value = session.run(None, {"obs": obs})
        assert logits.shape == (batch, 9) and value.shape == (batch, 1)
        with torch.no_grad():
            obs_t = torch.as_tensor(obs)
            log_probs = model.policy.get_distribution(obs_t).distribution.logits.numpy()
            values = model.policy.predict_values(obs_t).numpy()
        log_softmax = torch.log_softmax(torch.as_tensor(logits), dim=1).numpy()
        assert np.abs(log_softmax - log_probs).max() <= 1e-4
        assert np.abs(value - values).max() <= 1e-4


def test_onnx_cli_reports_the_difference(capsys, runs, tmp_path):
    out = tmp_path / "pac.onnx"
    r = run_script(capsys, "export_run.py", runs["coordconv"], "--to", "onnx", out)
    assert r.code == 0, r.err
    assert "max abs difference logits" in r.out and "action_logits (N, 9)" in r.out
    assert out.is_file()


def test_onnx_export_over_tolerance_writes_nothing(runs, tmp_path):
    out = tmp_path / "bad.onnx"
    with pytest.raises(ExportCheckError, match="differs from the PyTorch policy"):
        export_onnx(runs["conv"], out, n_observations=2, tolerance=-1.0)  # any difference fails
    assert list(tmp_path.iterdir()) == []


# ---- out to RL Zoo ----


def test_zoo_export_plays_in_rl_zoo_enjoy(capsys, runs, tmp_path):
    out = tmp_path / "logs"
    for n in (1, 2):  # the next free experiment id, as RL Zoo numbers them
        r = run_script(capsys, "export_run.py", runs["coordconv"], "--to", "zoo", out)
        assert r.code == 0, r.err
        assert f"{ENV_ID}_{n}" in r.out and "rl_zoo3.enjoy" in r.out
    exp = out / "a2c" / f"{ENV_ID}_2"
    assert sorted(p.name for p in exp.iterdir()) == [ENV_ID, f"{ENV_ID}.zip"]
    assert sorted(p.name for p in (exp / ENV_ID).iterdir()) == [
        "args.yml",
        "command.txt",
        "config.yml",
    ]
    config = yaml.load((exp / ENV_ID / "config.yml").read_text(), Loader=yaml.UnsafeLoader)
    assert config["env_wrapper"] == ["stable_baselines3.common.atari_wrappers.AtariWrapper"]
    assert config["frame_stack"] == 4 and config["policy"] == "CnnPolicy"
    assert config["policy_kwargs"]["features_extractor_class"] is CoordConvNatureCNN
    args = yaml.load((exp / ENV_ID / "args.yml").read_text(), Loader=yaml.UnsafeLoader)
    assert args["env"] == ENV_ID and args["env_kwargs"] is None

    enjoy = python(
        *("-m", "rl_zoo3.enjoy", "--algo", "a2c", "--env", ENV_ID, "-f", out),
        *("--no-render", "-n", "200"),
        cwd=tmp_path,
    )
    stdout = finish(enjoy)
    assert f"Loading {out / 'a2c' / f'{ENV_ID}_2' / f'{ENV_ID}.zip'}" in stdout
    # What enjoy loaded is our CoordConv agent (A2C.load rebuilds the extractor from the zip).
    policy = A2C.load(exp / f"{ENV_ID}.zip", device="cpu").policy
    assert type(policy.features_extractor) is CoordConvNatureCNN
    assert isinstance(policy.features_extractor.cnn[0], CoordConv2d)


def test_zoo_export_of_a_sticky_run_sets_env_kwargs(capsys, runs, tmp_path):
    run = tmp_path / "sticky_run"
    shutil.copytree(runs["conv"], run)
    config = yaml.safe_load((run / "config.yaml").read_text())
    (run / "config.yaml").write_text(yaml.safe_dump({**config, "sticky_actions": True}))
    r = run_script(capsys, "export_run.py", run, "--to", "zoo", tmp_path / "logs")
    assert r.code == 0, r.err
    params = tmp_path / "logs" / "a2c" / f"{ENV_ID}_1" / ENV_ID
    for name in ("config.yml", "args.yml"):
        saved = yaml.load((params / name).read_text(), Loader=yaml.UnsafeLoader)
        assert saved["env_kwargs"] == {"repeat_action_probability": 0.25}, name


# ---- into RL Zoo ----


@pytest.mark.parametrize(("algo", "extractor"), [("a2c", "coordconv"), ("ppo", "conv")])
def test_rl_zoo_trains_with_our_config_module(zoo_trained, algo, extractor):
    (exp,) = (zoo_trained / f"{algo}_{extractor}" / algo).iterdir()
    assert exp.name == f"{ENV_ID}_1"
    model = {"a2c": A2C, "ppo": PPO}[algo].load(exp / f"{ENV_ID}.zip", device="cpu")
    first = model.policy.features_extractor.cnn[0]
    assert isinstance(first, CoordConv2d) == (extractor == "coordconv")
    assert model.n_envs == 2 and model.policy.net_arch == []
    optimizer = "RMSpropTFLike" if algo == "a2c" else "Adam"
    assert type(model.policy.optimizer) is OPTIMIZERS[optimizer]
    saved = yaml.load((exp / ENV_ID / "args.yml").read_text(), Loader=yaml.UnsafeLoader)
    assert saved["conf_file"] == f"agents.zoo.{algo}_{extractor}"


@pytest.mark.parametrize(("module", "algo", "extractor"), CONFIG_MODULES)
def test_config_modules_hold_rl_zoo_atari_entries(module, algo, extractor):
    entry = importlib.import_module(module).hyperparams["atari"]
    ours = load_hyperparams(default_config_path(algo), algo)
    assert entry["n_envs"] == ours["n_envs"] and entry["frame_stack"] == 4
    assert entry["env_wrapper"] == ["stable_baselines3.common.atari_wrappers.AtariWrapper"]
    kwargs = entry["policy_kwargs"]
    expected = NatureCNN if extractor == "conv" else CoordConvNatureCNN
    assert kwargs["features_extractor_class"] is expected and kwargs["net_arch"] == []
    if "optimizer" in ours:  # A2C, PPO; DQN and QR-DQN keep SB3's default (Adam, eps 1e-8)
        assert kwargs["optimizer_class"] is OPTIMIZERS[ours["optimizer"]]
        assert kwargs["optimizer_kwargs"] == {"eps": ours["optimizer_eps"]}
    else:
        assert "optimizer_class" not in kwargs and "optimizer" not in entry
    if algo in ("dqn", "qrdqn"):  # RL Zoo's numbers, and a buffer that fits in memory
        assert entry["buffer_size"] == 100_000 and entry["optimize_memory_usage"] is True
        assert entry["replay_buffer_kwargs"] == {"handle_timeout_termination": False}
    if algo == "ppo":  # RL Zoo's spelling of linear(2.5e-4, 0); None (no clipping) left out
        assert entry["learning_rate"] == "lin_0.00025" and entry["clip_range"] == "lin_0.1"
        assert "clip_range_vf" not in entry


# ---- bad input: exit 2, one line ----


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["{missing}", "--to", "zoo", "{tmp}/logs"], "run folder not found"),
        (["{coordconv}", "--to", "tflite", "{tmp}/x"], "unknown --to 'tflite'; valid: zoo, onnx"),
        (["{coordconv}", "--to", "onnx", "{tmp}/x.pt"], "must end in .onnx"),
        (["{coordconv}", "--to", "zoo", "{tmp}/logs", "--checkpoint", "best"], "not found"),
        (["{coordconv}", "--to", "zoo", "{tmp}/a_file"], "must be a folder"),
        (["{coordconv}", "--to", "onnx", "{tmp}/x.onnx", "--checkpoint", "7"], "no checkpoint"),
    ],
)
def test_bad_input_exits_2_with_one_line(capsys, runs, tmp_path, args, message):
    (tmp_path / "a_file").write_text("")
    names = {"missing": tmp_path / "nope", "coordconv": runs["coordconv"], "tmp": tmp_path}
    r = run_script(capsys, "export_run.py", *(a.format(**names) for a in args))
    lines = error_lines(r.err)
    assert r.code == 2 and len(lines) == 1, r.err
    assert lines[0].startswith("error: ") and message in lines[0]
