import numpy as np
import pytest
import torch
import torchvision
from gymnasium import spaces
from stable_baselines3.common.policies import ActorCriticCnnPolicy
from stable_baselines3.common.torch_layers import NatureCNN
from torch import nn

from coordconv import CoordConv2d, coordconvify
from tests.reference import reference_conv


def _convs(model):
    return [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]


def test_first_converts_only_the_input_conv_and_preserves_output():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(8, 4, 3, bias=False))
    x = torch.randn(2, 3, 12, 9)
    before = model(x)
    assert coordconvify(model) is model
    assert isinstance(model[0], CoordConv2d) and not isinstance(model[2], CoordConv2d)
    assert torch.equal(model(x), before)
    # The coordinate weights start at zero and the data weights are the old ones.
    assert torch.count_nonzero(model[0].weight[:, 3:]) == 0


def test_all_converts_every_conv_and_training_then_uses_coordinates():
    torch.manual_seed(1)
    model = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.Tanh(), nn.Conv2d(4, 1, 1))
    x = torch.randn(3, 2, 8, 8)
    before = model(x)
    coordconvify(model, layers="all", with_r=True)
    assert all(isinstance(m, CoordConv2d) and m.with_r for _, m in _convs(model))
    assert torch.equal(model(x), before)
    model(x).sum().backward()
    assert model[0].weight.grad[:, 2:].abs().sum() > 0  # coordinate weights are trainable


def test_callable_selects_by_name():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Conv2d(2, 2, 3), nn.Conv2d(2, 2, 3))
    coordconvify(model, layers=lambda name, conv: name in {"1", "2"})
    assert [type(m) for m in model] == [nn.Conv2d, CoordConv2d, CoordConv2d]


def test_torchvision_resnet_preserved():
    torch.manual_seed(2)
    model = torchvision.models.resnet18(weights=None, num_classes=10).eval()
    x = torch.randn(2, 3, 64, 48)
    with torch.no_grad():
        before = model(x)
        coordconvify(model, layers="all")
        after = model(x)
    assert isinstance(model.conv1, CoordConv2d)
    assert isinstance(model.layer1[0].conv1, CoordConv2d)
    assert torch.equal(after, before)


def test_grouped_convs_are_skipped_by_all_and_refused_by_callable():
    torch.manual_seed(3)
    model = torchvision.models.mobilenet_v3_small(weights=None, num_classes=5).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        before = model(x)
        coordconvify(model, layers="all")
        after = model(x)
    torch.testing.assert_close(after, before, rtol=0, atol=0)
    grouped = [m for _, m in _convs(model) if m.groups > 1]
    assert grouped and not any(isinstance(m, CoordConv2d) for m in grouped)
    depthwise = nn.Sequential(nn.Conv2d(4, 4, 3, groups=4))
    with pytest.raises(ValueError, match="grouped conv '0'"):
        coordconvify(depthwise, layers=lambda name, conv: True)


def test_bad_selector_and_nothing_to_convert():
    with pytest.raises(ValueError, match="'second'"):
        coordconvify(nn.Sequential(nn.Conv2d(1, 1, 1)), layers="second")
    with pytest.raises(ValueError, match="no nn.Conv2d"):
        coordconvify(nn.Sequential(nn.Linear(2, 2)))


def test_converted_layer_equals_concat_reference_after_weights_change():
    model = nn.Sequential(nn.Conv2d(3, 4, 5, stride=2, padding=2))
    coordconvify(model, with_r=True)
    with torch.no_grad():
        model[0].weight.normal_()
    x = torch.randn(2, 3, 10, 14)
    torch.testing.assert_close(model(x), reference_conv(model[0], x), rtol=1e-5, atol=1e-5)


OBS = spaces.Box(0, 255, (4, 84, 84), dtype=np.uint8)


class CoordNatureCNN(NatureCNN):
    """SB3's NatureCNN with its first conv made CoordConv, the way a user would extend it."""

    def __init__(self, observation_space, features_dim=512):
        super().__init__(observation_space, features_dim)
        coordconvify(self.cnn)


def test_sb3_nature_cnn_preserved():
    torch.manual_seed(4)
    extractor = NatureCNN(OBS)
    x = torch.rand(3, 4, 84, 84)
    before = extractor(x)
    coordconvify(extractor)
    assert isinstance(extractor.cnn[0], CoordConv2d)
    assert torch.equal(extractor(x), before)


def test_sb3_orthogonal_init_reaches_coordconv():
    torch.manual_seed(5)
    policy = ActorCriticCnnPolicy(
        OBS,
        spaces.Discrete(9),
        lambda _: 1e-3,
        features_extractor_class=CoordNatureCNN,
        net_arch=[],  # CnnPolicy's own; a custom extractor otherwise gets two 64-unit layers
    )
    conv = policy.features_extractor.cnn[0]
    assert isinstance(conv, CoordConv2d)
    # Orthogonal init with gain sqrt(2): rows of the flattened weight are orthogonal, norm sqrt(2),
    # over data and coordinate weights alike (the default Kaiming init is nowhere near this).
    w = conv.weight.detach().flatten(1)
    assert w.shape == (32, 6 * 8 * 8)
    torch.testing.assert_close(w @ w.T, 2.0 * torch.eye(32), rtol=0, atol=1e-4)
    assert torch.count_nonzero(conv.weight[:, 4:]) > 0
    n_params = sum(p.numel() for p in policy.parameters())
    assert n_params == 1_693_354  # NatureCNN's 1,689,258 plus 2 * 32 * 8 * 8
