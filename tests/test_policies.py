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


@pytest.mark.parametrize("algo", [A2C, PPO])
@pytest.mark.parametrize(
    "name,with_r", [("coordconv", False), ("coordconv", True), ("coordconv-all", False)]
)
def test_same_seed_same_starting_weights_as_conv(env, algo, name, with_r):
    """Paired comparison: only the coordinate columns are new, and they start at zero."""
    conv = algo("CnnPolicy", env, policy_kwargs=policy_kwargs_for("conv"), seed=3, device="cpu")
    ours = algo(
        "CnnPolicy", env, policy_kwargs=policy_kwargs_for(name, with_r), seed=3, device="cpu"
    )
    modules = dict(ours.policy.named_modules())
    theirs = dict(conv.policy.named_parameters())
    coord_layers = 0
    for key, weight in ours.policy.named_parameters():
        layer = modules[key.rpartition(".")[0]]
        if isinstance(layer, CoordConv2d) and key.endswith("weight"):
            coord_layers += 1
            c = layer.in_channels
            assert torch.equal(weight[:, :c], theirs[key]), key
            assert not weight[:, c:].any(), key
        else:
            assert torch.equal(weight, theirs[key]), key
    assert coord_layers == (3 if name == "coordconv-all" else 1)
    # SB3's orthogonal init (gain sqrt 2) gives each row of the image part norm sqrt 2, as conv's.
    first = ours.policy.features_extractor.cnn[0].weight[:, :4].flatten(1)
    torch.testing.assert_close(first.norm(dim=1), torch.full((32,), 2**0.5))
    obs = torch.as_tensor(env.reset())
    torch.testing.assert_close(
        ours.policy.evaluate_actions(obs, torch.zeros(1))[0],
        conv.policy.evaluate_actions(obs, torch.zeros(1))[0],
    )


def test_apply_leaves_coordinate_weights_alone(env):
    extractor = CoordConvNatureCNN(env.observation_space)
    layer = extractor.cnn[0]
    with torch.no_grad():
        layer.weight[:, 4:] = 7.0
    original = layer.weight
    extractor.apply(lambda m: torch.nn.init.zeros_(m.weight) if m is layer else None)
    assert layer.weight is original  # the same Parameter: optimizers keep their reference
    assert not layer.weight[:, :4].any() and (layer.weight[:, 4:] == 7.0).all()
