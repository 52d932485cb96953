import pytest
import torch
from stable_baselines3 import A2C, PPO
from stable_baselines3.common.torch_layers import NatureCNN

from common.errors import UsageError
from coordconv import CoordConv2d
from envs import make_atari_vec_env
from policies import CoordConvNatureCNN, policy_kwargs_for


@pytest.fixture(scope="module")
def env():
    venv = make_atari_vec_env("MsPacman", 1, seed=0)
    yield venv
    venv.close()


def n_params(model):
    return sum(p.numel() for p in model.policy.parameters())


@pytest.mark.parametrize(
    "name,with_r,expected",
    [
        ("conv", False, 1_689_258),
        ("coordconv", False, 1_689_258 + 4_096),
        ("coordconv", True, 1_689_258 + 6_144),
    ],
)
def test_parameter_counts(env, name, with_r, expected):
    model = A2C("CnnPolicy", env, policy_kwargs=policy_kwargs_for(name, with_r), device="cpu")
    assert n_params(model) == expected


def test_conv_is_exactly_rl_zoo_cnn_policy(env):
    ours = A2C("CnnPolicy", env, policy_kwargs=policy_kwargs_for("conv"), device="cpu")
    zoo = A2C("CnnPolicy", env, device="cpu")
    assert type(ours.policy.features_extractor) is NatureCNN
    assert [p.shape for p in ours.policy.parameters()] == [p.shape for p in zoo.policy.parameters()]


def test_coordconv_layers(env):
    first = PPO("CnnPolicy", env, policy_kwargs=policy_kwargs_for("coordconv"), device="cpu")
    convs = [m for m in first.policy.features_extractor.cnn if isinstance(m, torch.nn.Conv2d)]
    assert [type(c) for c in convs] == [CoordConv2d, torch.nn.Conv2d, torch.nn.Conv2d]
    every = PPO("CnnPolicy", env, policy_kwargs=policy_kwargs_for("coordconv-all"), device="cpu")
    convs = [m for m in every.policy.features_extractor.cnn if isinstance(m, torch.nn.Conv2d)]
    assert all(isinstance(c, CoordConv2d) for c in convs) and len(convs) == 3


def test_frames_reach_the_extractor_scaled_to_unit_range(env):
    model = A2C("CnnPolicy", env, policy_kwargs=policy_kwargs_for("coordconv"), device="cpu")
    obs = torch.as_tensor(env.reset())
    seen = []
    extractor = model.policy.features_extractor
    hook = extractor.cnn[0].register_forward_pre_hook(lambda m, args: seen.append(args[0]))
    model.policy.extract_features(obs, extractor)
    hook.remove()
    assert seen[0].dtype == torch.float32 and seen[0].shape == (1, 4, 84, 84)
    torch.testing.assert_close(seen[0], obs.float() / 255)


def test_unknown_names_and_r_on_conv():
    with pytest.raises(
        UsageError, match="unknown extractor 'coord'; valid: conv, coordconv, coordconv-all"
    ):
        policy_kwargs_for("coord")
    with pytest.raises(UsageError, match="not 'conv'"):
        policy_kwargs_for("conv", with_r=True)


def test_kwargs_pass_through_and_same_net_arch():
    kw = policy_kwargs_for("coordconv", True, optimizer_kwargs={"eps": 1e-5})
    assert kw["net_arch"] == [] and kw["optimizer_kwargs"] == {"eps": 1e-5}
    assert kw["features_extractor_class"] is CoordConvNatureCNN
    assert kw["features_extractor_kwargs"] == {"layers": "first", "with_r": True}
