"""Coordinate ablation and the coordinate share (coordconv.reliance), against models built
without coordinates and against the concat reference fed mirrored numpy coordinates."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from coordconv import (
    CoordConv1d,
    CoordConv2d,
    CoordConv3d,
    CoordConvTranspose1d,
    CoordConvTranspose2d,
    CoordConvTranspose3d,
    coordconvify,
    coordinate_layers,
    coordinate_share,
    coordinates,
)
from tests.reference import numpy_coords

CONV = {1: CoordConv1d, 2: CoordConv2d, 3: CoordConv3d}
TRANSPOSE = {1: CoordConvTranspose1d, 2: CoordConvTranspose2d, 3: CoordConvTranspose3d}
PLAIN = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}
PLAIN_TRANSPOSE = {1: nn.ConvTranspose1d, 2: nn.ConvTranspose2d, 3: nn.ConvTranspose3d}
SHAPES = {1: (9,), 2: (7, 6), 3: (5, 4, 6)}


def make(rank, transposed, with_r=False, seed=0):
    torch.manual_seed(seed)
    cls = (TRANSPOSE if transposed else CONV)[rank]
    kwargs = dict(stride=2, padding=1, output_padding=1) if transposed else dict(padding=1)
    return cls(3, 4, 3, with_r=with_r, **kwargs)


def without_coordinates(layer, rank, transposed):
    """The plain torch layer over the image channels only, with the layer's image weights and
    bias: what the layer must compute with its coordinates zeroed."""
    if transposed:
        plain = PLAIN_TRANSPOSE[rank](3, 4, 3, stride=2, padding=1, output_padding=1)
        weight = layer.weight[:3]
    else:
        plain = PLAIN[rank](3, 4, 3, padding=1)
        weight = layer.weight[:, :3]
    with torch.no_grad():
        plain.weight.copy_(weight)
        plain.bias.copy_(layer.bias)
    return plain


def mirrored_reference(layer, x, rank, transposed):
    """The plain convolution of concat(x, coordinates mirrored along their own axes)."""
    coords = numpy_coords(tuple(x.shape[2:]), layer.with_r)
    mirrored = [np.flip(coords[k], axis=k) for k in range(rank)] + list(coords[rank:])
    c = torch.as_tensor(np.stack(mirrored), dtype=x.dtype)
    inp = torch.cat([x, c.expand(x.shape[0], *c.shape)], 1)
    if transposed:
        conv = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}[rank]
        return conv(inp, layer.weight, layer.bias, 2, 1, 1)
    conv = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[rank]
    return conv(inp, layer.weight, layer.bias, padding=1)


@pytest.mark.parametrize("transposed", [False, True])
@pytest.mark.parametrize("rank", [1, 2, 3])
@pytest.mark.parametrize("grad", [True, False])
def test_zero_equals_a_model_built_without_coordinates(rank, transposed, grad):
    layer = make(rank, transposed, with_r=True)
    x = torch.randn(2, 3, *SHAPES[rank])
    plain = without_coordinates(layer, rank, transposed)
    layer.train(grad)
    with torch.set_grad_enabled(grad):
        as_trained = layer(x)
        with coordinates(layer, "zero"):
            zeroed = layer(x)
        after = layer(x)
    torch.testing.assert_close(zeroed, plain(x), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(after, as_trained)
    assert (zeroed - as_trained).abs().max() > 1e-3  # the coordinates did matter


@pytest.mark.parametrize("transposed", [False, True])
@pytest.mark.parametrize("rank", [1, 2, 3])
def test_flip_equals_the_reference_fed_mirrored_coordinates(rank, transposed):
    layer = make(rank, transposed, with_r=rank == 2)
    x = torch.randn(2, 3, *SHAPES[rank])
    with coordinates(layer, "flip"):
        flipped = layer(x)
    torch.testing.assert_close(flipped, mirrored_reference(layer, x, rank, transposed))
    assert (flipped - layer(x)).abs().max() > 1e-3


def test_flip_keeps_the_values_of_each_channel_and_leaves_r():
    layer = CoordConv2d(1, 1, 1, with_r=True)
    x = torch.zeros(1, 1, 5, 8)
    grid = layer._coordinates(x)
    with coordinates(layer, "flip"):
        mirrored = layer._coordinates(x)
    for k in range(3):
        assert torch.equal(
            grid[0, k].flatten().sort().values, mirrored[0, k].flatten().sort().values
        )
    assert torch.equal(mirrored[0, 0], grid[0, 0].flip(0)) and torch.equal(
        mirrored[0, 2], grid[0, 2]
    )


def test_eval_cache_serves_each_mode_its_own_term():
    layer = make(2, False).eval()
    x = torch.randn(3, 3, *SHAPES[2])
    plain = without_coordinates(layer, 2, False)
    with torch.no_grad():
        for _ in range(2):  # the second round is served from the caches
            as_trained = layer(x)
            with coordinates(layer, "zero"):
                torch.testing.assert_close(layer(x), plain(x), rtol=1e-5, atol=1e-5)
            with coordinates(layer, "flip"):
                torch.testing.assert_close(layer(x), mirrored_reference(layer, x, 2, False))
            torch.testing.assert_close(layer(x), as_trained)


def test_bf16_autocast_and_pointwise_path():
    torch.manual_seed(1)
    layer = CoordConv2d(3, 4, 1)  # the pointwise path (one matrix product)
    assert layer._pointwise
    x = torch.randn(2, 3, 6, 5)
    plain = nn.Conv2d(3, 4, 1)
    with torch.no_grad():
        plain.weight.copy_(layer.weight[:, :3])
        plain.bias.copy_(layer.bias)
    with torch.autocast("cpu", torch.bfloat16), coordinates(layer, "zero"):
        zeroed = layer(x)
    assert zeroed.dtype == torch.bfloat16
    torch.testing.assert_close(zeroed.float(), plain(x), rtol=2e-2, atol=2e-2)


def test_modes_nest_and_restore_after_an_error_on_every_layer_of_a_model():
    torch.manual_seed(2)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 2, 3))
    coordconvify(model, layers="all")
    names = [name for name, _ in coordinate_layers(model)]
    assert names == ["0", "2"]
    x = torch.randn(1, 3, 9, 9)
    before = model(x)
    with coordinates(model, "zero") as layers:
        assert [m._coord_mode for _, m in layers] == ["zero", "zero"]
        with pytest.raises(RuntimeError), coordinates(model, "flip"):
            assert all(m._coord_mode == "flip" for _, m in layers)
            raise RuntimeError("inside")
        assert all(m._coord_mode == "zero" for _, m in layers)
    torch.testing.assert_close(model(x), before)


def test_unknown_mode_and_model_without_coordinates_raise():
    layer = CoordConv2d(1, 1, 1)
    with pytest.raises(ValueError, match="one of as-trained, zero, flip, got 'mirror'"):
        with coordinates(layer, "mirror"):
            pass
    with pytest.raises(ValueError, match="Conv2d has no CoordConv layer"):
        with coordinates(nn.Conv2d(1, 1, 1), "zero"):
            pass


def test_pickled_layer_from_before_the_mode_loads_as_trained():
    layer = CoordConv2d(1, 1, 1)
    state = layer.__dict__.copy()
    del state["_coord_mode"]
    fresh = CoordConv2d.__new__(CoordConv2d)
    fresh.__setstate__(state)
    assert fresh._coord_mode == "as-trained"


def test_share_matches_an_independent_computation():
    torch.manual_seed(3)
    layer = CoordConv2d(3, 5, 3, padding=1)
    x = torch.randn(4, 3, 8, 7)
    stats = coordinate_share(layer, x)[""]
    image = F.conv2d(x, layer.weight[:, :3], padding=1).double()
    c = torch.as_tensor(numpy_coords((8, 7), False)).unsqueeze(0)
    coord = F.conv2d(c, layer.weight[:, 3:].double(), padding=1)
    v_x = image.var(dim=(0, 2, 3), unbiased=False).mean().item()
    v_c = coord.var(dim=(0, 2, 3), unbiased=False).mean().item()
    assert stats["share"] == pytest.approx(v_c / (v_c + v_x), rel=1e-4)
    ratio = (layer.weight[:, 3:].norm() / layer.weight[:, :3].norm()).item()
    assert stats["weight_ratio"] == pytest.approx(ratio, rel=1e-5)
    assert stats["coord_std"] == pytest.approx(v_c**0.5, rel=1e-4)


def test_share_is_zero_at_the_paired_start_and_under_zero():
    torch.manual_seed(4)
    model = nn.Sequential(nn.Conv2d(2, 3, 3), nn.ReLU(), nn.Conv2d(3, 3, 3))
    coordconvify(model)  # coordinate columns start at zero
    x = torch.randn(2, 2, 9, 9)
    stats = coordinate_share(model, x)
    assert list(stats) == ["0"] and stats["0"]["share"] == 0.0 == stats["0"]["weight_ratio"]
    with torch.no_grad():
        model[0].weight[:, 2:].normal_()
    assert coordinate_share(model, x)["0"]["share"] > 0.01
    with coordinates(model, "zero"):
        assert coordinate_share(model, x)["0"]["share"] == 0.0


class _Sampler(nn.Module):
    """A model whose forward draws from the global RNG, as a policy sampling actions does."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = CoordConv2d(1, 2, 3)

    def forward(self, x):
        return self.conv(x) + torch.rand(1)


def test_share_leaves_the_rng_and_autocast_dtype_alone():
    model = _Sampler()
    x = torch.randn(2, 1, 6, 6)
    state = torch.get_rng_state()
    with torch.autocast("cpu", torch.bfloat16):
        stats = coordinate_share(model, x)["conv"]
    assert torch.equal(torch.get_rng_state(), state)
    fp32 = coordinate_share(model, x)["conv"]
    assert stats["share"] == pytest.approx(fp32["share"], rel=0.05)  # measured in float32
    with pytest.raises(ValueError, match="has no CoordConv layer"):
        coordinate_share(nn.Conv2d(1, 1, 1), x)


def test_a_compiled_model_follows_the_mode():
    layer = make(2, False)
    x = torch.randn(2, 3, *SHAPES[2])
    compiled = torch.compile(layer, backend="aot_eager")
    as_trained = compiled(x)
    with coordinates(layer, "zero"):  # dynamo guards on the mode: the graph is rebuilt
        zeroed = compiled(x)
    torch.testing.assert_close(zeroed, without_coordinates(layer, 2, False)(x))
    torch.testing.assert_close(compiled(x), as_trained)
