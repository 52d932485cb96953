import numpy as np
import pytest
import torch
import torchvision
from gymnasium import spaces
from stable_baselines3.common.policies import ActorCriticCnnPolicy
from stable_baselines3.common.torch_layers import NatureCNN
from torch import nn
from torch.nn.utils import parametrizations, parametrize

from coordconv import (
    CoordConv1d,
    CoordConv2d,
    CoordConv3d,
    CoordConvTranspose1d,
    CoordConvTranspose2d,
    CoordConvTranspose3d,
    coordconvify,
)
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
    with pytest.raises(ValueError, match=r"'0' exactly: it is a grouped conv \(groups=4\)"):
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


class StdConv2d(nn.Conv2d):
    """A weight-standardised conv in the style of timm's StdConv2d: same state, other function."""

    def forward(self, x):
        w = self.weight
        w = (w - w.mean(dim=(1, 2, 3), keepdim=True)) / (w.std(dim=(1, 2, 3), keepdim=True) + 1e-5)
        return self._conv_forward(x, w, self.bias)


def _stack(first):
    return nn.Sequential(first, nn.ReLU(), nn.Conv2d(4, 2, 3))


def test_conv_subclass_is_skipped_by_all_and_refused_when_chosen():
    torch.manual_seed(6)
    model = _stack(StdConv2d(3, 4, 3))
    x = torch.randn(2, 3, 9, 9)
    before = model(x)
    coordconvify(model, layers="all")
    assert type(model[0]) is StdConv2d and isinstance(model[2], CoordConv2d)
    assert torch.equal(model(x), before)
    # "first" means the layer that sees the input: refused, never silently moved to layer 2.
    with pytest.raises(ValueError, match="'0' exactly: it is a StdConv2d, a subclass"):
        coordconvify(_stack(StdConv2d(3, 4, 3)))
    with pytest.raises(ValueError, match="'0' exactly: it is a StdConv2d"):
        coordconvify(_stack(StdConv2d(3, 4, 3)), layers=lambda name, conv: name == "0")


@pytest.mark.filterwarnings("ignore:.*weight_norm. is deprecated:FutureWarning")
@pytest.mark.parametrize(
    "normalise, reason",
    [
        (parametrizations.spectral_norm, "parametrized"),
        (parametrizations.weight_norm, "parametrized"),
        (nn.utils.spectral_norm, r"carries state .*weight_orig, weight_u, weight_v"),
        (nn.utils.weight_norm, r"carries state .*weight_g, weight_v"),
    ],
)
def test_normalised_convs_keep_their_normalisation(normalise, reason):
    torch.manual_seed(7)
    model = _stack(normalise(nn.Conv2d(3, 4, 3))).eval()
    x = torch.randn(2, 3, 9, 9)
    with torch.no_grad():
        before = model(x)
        coordconvify(model, layers="all")
        after = model(x)
    assert not isinstance(model[0], CoordConv2d) and isinstance(model[2], CoordConv2d)
    assert parametrize.is_parametrized(model[0]) == (reason == "parametrized")
    assert torch.equal(after, before)
    with pytest.raises(ValueError, match=f"'0' exactly: .*{reason}"):
        coordconvify(_stack(normalise(nn.Conv2d(3, 4, 3))))


def test_all_names_what_it_skipped_when_it_converts_nothing():
    model = nn.Sequential(StdConv2d(3, 4, 3), nn.Conv2d(4, 4, 3, groups=2))
    with pytest.raises(
        ValueError, match=r"converted nothing; skipped '0' \(.*\); '1' \(.*groups=2"
    ):
        coordconvify(model, layers="all")


def test_tensor_hooks_on_the_weight_are_refused():
    model = _stack(nn.Conv2d(3, 4, 3))
    model[0].weight.register_hook(lambda grad: grad * 2)
    with pytest.raises(ValueError, match="'0' exactly: its weight has tensor hooks"):
        coordconvify(model)


def test_hooks_are_kept_and_fire_on_the_new_layer():
    torch.manual_seed(8)
    model = _stack(nn.Conv2d(3, 4, 3))
    calls = []
    model[0].register_forward_pre_hook(lambda m, inp: calls.append(("pre", type(m))))
    handle = model[0].register_forward_hook(lambda m, inp, out: calls.append(("post", type(m))))
    model[0].register_full_backward_hook(lambda m, gin, gout: calls.append(("back", type(m))))
    x = torch.randn(2, 3, 9, 9, requires_grad=True)
    before = model(x)
    calls.clear()
    coordconvify(model)
    after = model(x)
    after.sum().backward()
    assert torch.equal(after, before)
    assert calls == [("pre", CoordConv2d), ("post", CoordConv2d), ("back", CoordConv2d)]
    handle.remove()  # a handle from before the conversion still removes its hook
    calls.clear()
    model(x)
    assert calls == [("pre", CoordConv2d)]


def test_shared_conv_stays_shared():
    torch.manual_seed(9)
    shared = nn.Conv2d(3, 3, 3, padding=1)
    model = nn.Sequential(shared, nn.Tanh(), shared)
    model.again = shared  # a third name, in the same parent as the first two
    x = torch.randn(2, 3, 8, 8)
    before = model(x)
    coordconvify(model, layers="all")
    assert isinstance(model[0], CoordConv2d) and model[0] is model[2] is model.again
    assert torch.equal(model(x), before)
    # A callable choosing one of its names converts it everywhere, as one layer.
    model = nn.Sequential(shared, nn.Tanh(), shared)
    coordconvify(model, layers=lambda name, conv: name == "2")
    assert isinstance(model[2], CoordConv2d) and model[0] is model[2]
    assert len(list(model.parameters())) == 2


def test_lazy_conv_is_refused_until_initialized_then_converted():
    torch.manual_seed(10)
    model = _stack(nn.LazyConv2d(4, 3))
    with pytest.raises(
        ValueError, match="'0' exactly: it is an uninitialized lazy module; run one"
    ):
        coordconvify(model)
    x = torch.randn(2, 3, 9, 9)
    before = model(x)  # the forward pass makes it a plain nn.Conv2d
    coordconvify(model)
    assert isinstance(model[0], CoordConv2d) and model[0].in_channels == 3
    assert torch.equal(model(x), before)


def test_memory_format_is_kept():
    torch.manual_seed(11)
    model = _stack(nn.Conv2d(3, 4, 3)).to(memory_format=torch.channels_last)
    x = torch.randn(2, 3, 9, 9).to(memory_format=torch.channels_last)
    before = model(x)
    coordconvify(model, layers="all")
    for conv in (model[0], model[2]):
        assert conv.weight.is_contiguous(memory_format=torch.channels_last)
        assert not conv.weight.is_contiguous()
    assert torch.equal(model(x), before)
    volume = nn.Conv3d(2, 3, 3)
    volume.weight = nn.Parameter(volume.weight.to(memory_format=torch.channels_last_3d))
    new = coordconvify(volume, types=nn.Conv3d)
    assert new.weight.is_contiguous(memory_format=torch.channels_last_3d)


def test_bare_conv_root_returns_the_new_layer():
    torch.manual_seed(12)
    conv = nn.Conv2d(3, 4, 3)
    x = torch.randn(2, 3, 7, 7)
    before = conv(x)
    new = coordconvify(conv, with_r=True)
    assert isinstance(new, CoordConv2d) and new.with_r and type(conv) is nn.Conv2d
    assert torch.equal(new(x), before)
    with pytest.raises(ValueError, match="the root module exactly: it is a grouped conv"):
        coordconvify(nn.Conv2d(4, 4, 3, groups=2), layers=lambda name, conv: True)


def test_settings_and_attributes_are_kept():
    conv = nn.Conv2d(
        3, 4, 3, padding="same", padding_mode="reflect", dilation=2, dtype=torch.float64
    )
    conv.eval().weight.requires_grad_(False)
    conv.tag = "stem"
    new = coordconvify(conv)
    assert (new.padding, new.padding_mode, new.dilation) == ("same", "reflect", (2, 2))
    assert new.weight.dtype == torch.float64 and new.bias.requires_grad
    assert not new.training and not new.weight.requires_grad and new.tag == "stem"
    x = torch.randn(1, 3, 6, 5, dtype=torch.float64)
    assert torch.equal(new(x), conv(x))


@pytest.mark.parametrize(
    "conv, coord_class, x",
    [
        (nn.Conv1d(3, 4, 3, stride=2, padding=1, padding_mode="circular"), CoordConv1d, (2, 3, 17)),
        (nn.Conv3d(2, 4, 3, padding=1, dilation=1), CoordConv3d, (2, 2, 5, 6, 7)),
        (nn.ConvTranspose1d(3, 2, 4, stride=3, dilation=2), CoordConvTranspose1d, (2, 3, 9)),
        (
            nn.ConvTranspose2d(3, 5, 3, stride=2, padding=1, output_padding=1),
            CoordConvTranspose2d,
            (2, 3, 6, 5),
        ),
        (nn.ConvTranspose3d(3, 2, 2, stride=2, padding=1), CoordConvTranspose3d, (1, 3, 4, 3, 5)),
    ],
    ids=["Conv1d", "Conv3d", "ConvTranspose1d", "ConvTranspose2d", "ConvTranspose3d"],
)
def test_other_conv_types_preserved_then_coordinates_learn(conv, coord_class, x):
    torch.manual_seed(13)
    x = torch.randn(*x)
    model = nn.Sequential(conv, nn.Tanh())
    before = model(x)
    coordconvify(model, types=(type(conv), nn.Conv2d))
    new = model[0]
    assert type(new) is coord_class and new.in_channels == conv.in_channels
    assert torch.equal(model(x), before)
    model(x).sum().backward()
    # Coordinate weights sit after the data channels: dim 1 of (out, in, *k), dim 0 of the
    # transposed (in, out, *k).
    grad = new.weight.grad.movedim(0, 1) if conv.transposed else new.weight.grad
    assert grad[:, conv.in_channels :].abs().sum() > 0


def test_types_only_converts_what_it_names():
    model = nn.Sequential(nn.Conv1d(2, 2, 1), nn.Flatten(0, 0))
    with pytest.raises(ValueError, match="no nn.Conv2d layer"):
        coordconvify(model)
    with pytest.raises(ValueError, match="cannot convert type <class 'torch.nn.modules.linear"):
        coordconvify(model, types=(nn.Conv1d, nn.Linear))
    with pytest.raises(ValueError, match="at least one of nn.Conv1d"):
        coordconvify(model, types=())


def test_first_twice_changes_nothing_and_callable_must_select_something():
    model = _stack(nn.Conv2d(3, 4, 3))
    coordconvify(model)
    first = model[0]
    coordconvify(model)
    assert model[0] is first and type(model[2]) is nn.Conv2d
    with pytest.raises(ValueError, match="layers selected none of '2'"):
        coordconvify(model, layers=lambda name, conv: name == "1")
