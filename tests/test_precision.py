"""--precision bf16: the features extractor under autocast, everything else fp32; runs record,
resume and evaluate in their precision; saved agents load with plain SB3."""

import json

import pytest
import torch
import yaml
from stable_baselines3 import A2C, PPO

import agents.train
from envs.atari import make_atari_vec_env
from policies.precision import bf16_note, precision_of, set_precision
from policies.registry import policy_kwargs_for
from tests.cli import run_script

TINY = ["--n-envs", "2", "--no-progress", "--eval-freq", "0", "--env", "MsPacman"]
TINY += ["--device", "cpu"]  # on any machine: the bf16 note below is the CPU's, a GPU's differs


@pytest.fixture(scope="module")
def env():
    venv = make_atari_vec_env("MsPacman", 2, 0, backend="ale")
    yield venv
    venv.close()


def features(policy, obs):
    return policy.extract_features(obs, policy.features_extractor)


@pytest.mark.parametrize("extractor", ["conv", "coordconv"])
def test_bf16_runs_the_extractor_in_bf16_and_the_rest_in_fp32(env, extractor):
    model = A2C("CnnPolicy", env, policy_kwargs=policy_kwargs_for(extractor), seed=0, device="cpu")
    policy = model.policy
    obs = torch.randint(0, 256, (8, 4, 84, 84), dtype=torch.uint8)
    reference = features(policy, obs)
    set_precision(policy, "bf16")
    assert precision_of(policy) == "bf16"
    low = features(policy, obs)
    # bf16 keeps 8 bits of mantissa: close to fp32, but not the fp32 result itself.
    assert low.dtype == torch.float32 and not torch.equal(low, reference)
    torch.testing.assert_close(low, reference, rtol=0.05, atol=0.05 * reference.abs().max().item())
    values, log_prob, entropy = policy.evaluate_actions(obs, torch.zeros(8, dtype=torch.long))
    assert values.dtype == log_prob.dtype == entropy.dtype == torch.float32
    (values.sum() + log_prob.sum()).backward()
    for name, p in policy.named_parameters():
        assert p.dtype == torch.float32 and p.grad is not None and p.grad.dtype == torch.float32, (
            name
        )
    set_precision(policy, "fp32")  # the class's own forward again: bit for bit fp32
    assert precision_of(policy) == "fp32" and torch.equal(features(policy, obs), reference)


def test_separate_actor_and_critic_extractors_both_switch(env):
    kwargs = policy_kwargs_for("coordconv", share_features_extractor=False)
    policy = PPO("CnnPolicy", env, policy_kwargs=kwargs, n_steps=8, batch_size=8).policy
    set_precision(policy, "bf16")
    for extractor in (policy.pi_features_extractor, policy.vf_features_extractor):
        assert "forward" in extractor.__dict__
    set_precision(policy, "fp32")
    assert not any(
        "forward" in e.__dict__
        for e in (policy.pi_features_extractor, policy.vf_features_extractor)
    )


def test_bf16_run_records_resumes_and_evaluates_in_its_precision(capsys, tmp_path, monkeypatch):
    r = run_script(
        capsys, "train_atari.py", "--logdir", tmp_path, *TINY, "--timesteps", "40",
        "--precision", "bf16",
    )  # fmt: skip
    assert r.code == 0, r.err
    run = tmp_path / "MsPacman" / "a2c_coordconv_bf16_s0"
    assert yaml.safe_load((run / "config.yaml").read_text())["precision"] == "bf16"
    # Plain SB3 loads it: weights are fp32, and it plays in fp32 until told otherwise.
    model = A2C.load(run / "model.zip", device="cpu")
    assert {p.dtype for p in model.policy.parameters()} == {torch.float32}
    assert precision_of(model.policy) == "fp32"
    calls = []
    real = agents.train.set_precision
    monkeypatch.setattr(
        agents.train, "set_precision", lambda p, x: (calls.append(x), real(p, x))[1]
    )
    r = run_script(capsys, "train_atari.py", "--resume", run, "--timesteps", "60", "--no-progress")
    assert r.code == 0, r.err
    assert calls == ["bf16"]
    for asked, played in ((None, "bf16"), ("fp32", "fp32")):
        extra = ["--precision", asked] if asked else []
        r = run_script(
            capsys, "evaluate.py", run, "--episodes", "1", "--checkpoint", "final", *extra
        )
        assert r.code == 0, r.err
        assert json.loads((run / "eval.json").read_text())["precision"] == played


def test_bf16_without_bf16_units_says_so_in_one_line(capsys, tmp_path, monkeypatch):
    for name in ("_is_amx_tile_supported", "_is_avx512_bf16_supported"):
        monkeypatch.setattr(torch.cpu, name, lambda: False)
    note = bf16_note(torch.device("cpu"))
    assert (
        note
        == "note: this CPU has no bf16 units (no AVX512-BF16 or AMX); bf16 is likely slower here"
    )
    r = run_script(
        capsys, "train_atari.py", "--logdir", tmp_path, *TINY, "--timesteps", "20",
        "--precision", "bf16",
    )  # fmt: skip
    assert r.code == 0 and r.err.count(note) == 1, r.err
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True)
    assert bf16_note(torch.device("cpu")) is None


def fake_gpus(monkeypatch, capabilities):
    """torch.cuda answering for GPUs of the given compute capabilities, cuda:0 current; the
    capability and name lookups fail for any index but a known one."""
    names = {i: f"GPU{i}" for i in range(len(capabilities))}
    monkeypatch.setattr(torch.version, "hip", None)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda i: capabilities[i])
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i: names[i])

    def current_only(*args, **kwargs):
        raise AssertionError("asked the current device, not the given one")

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", current_only)


def test_bf16_note_asks_the_given_gpu_not_the_current_one(monkeypatch):
    from policies.precision import bf16_support

    fake_gpus(monkeypatch, [(7, 5), (9, 0)])  # cuda:0 (current) a T4, cuda:1 an H100
    assert bf16_note(torch.device("cuda", 1)) is None
    assert bf16_support(torch.device("cuda", 1)) == "GPU bf16: native (cuda:1, sm_90)"
    note = bf16_note(torch.device("cuda", 0))
    assert note == (
        "note: GPU0 (cuda:0, sm_75) has no bf16 units (compute capability below 8.0); "
        "bf16 is likely slower there"
    )
    assert bf16_note(torch.device("cuda")) == note  # a bare `cuda` is the current device
    assert bf16_support(torch.device("cuda", 0)) == "GPU bf16: emulated (cuda:0, sm_75)"
    fake_gpus(monkeypatch, [(9, 0), (7, 5)])  # the other way round
    assert bf16_note(torch.device("cuda", 0)) is None
    assert bf16_note(torch.device("cuda", 1)).startswith("note: GPU1 (cuda:1, sm_75)")
    fake_gpus(monkeypatch, [(8, 0)])  # A100: Ampere, the first with bf16 units
    assert bf16_note(torch.device("cuda", 0)) is None


def test_bf16_support_names_the_cpu_units(monkeypatch):
    from policies.precision import bf16_support

    for name in ("_is_amx_tile_supported", "_is_avx512_bf16_supported"):
        monkeypatch.setattr(torch.cpu, name, lambda: False)
    assert bf16_support(torch.device("cpu")) == "CPU bf16 units: none (bf16 is emulated)"
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: True)
    assert bf16_support(torch.device("cpu")) == "CPU bf16 units: AMX"
