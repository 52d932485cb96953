import numpy as np
import pytest
import torch

from coordconv import AddCoords, coordinate_channels
from tests.reference import numpy_coords


def test_rank2_channel_order_and_values_non_square():
    x = torch.zeros(2, 3, 3, 5)
    out = AddCoords(rank=2)(x)
    assert out.shape == (2, 5, 3, 5)
    i, j = out[0, 3], out[0, 4]
    # i is the row index: constant along W, -1..1 down H.
    assert torch.equal(i[:, 0], torch.tensor([-1.0, 0.0, 1.0]))
    assert torch.equal(i, i[:, :1].expand(3, 5))
    # j is the column index: constant along H, -1..1 across W.
    assert torch.equal(j[0], torch.tensor([-1.0, -0.5, 0.0, 0.5, 1.0]))
    assert torch.equal(j, j[:1].expand(3, 5))
    assert torch.equal(out[:, :3], x)


def test_with_r_is_centred_radius():
    out = AddCoords(rank=2, with_r=True)(torch.zeros(1, 1, 5, 3))
    r = out[0, 3]
    assert r[2, 1] == 0.0  # the centre
    assert torch.allclose(r[0, 0], torch.tensor(2.0).sqrt())
    assert torch.allclose(r[0, 1], torch.tensor(1.0))  # top edge, middle column
    assert r.max() <= 2**0.5 + 1e-6


@pytest.mark.parametrize("shape", [(7,), (1,), (4, 9), (1, 6), (3, 4, 5), (2, 1, 6)])
@pytest.mark.parametrize("with_r", [False, True])
def test_matches_formula_all_ranks(shape, with_r):
    got = coordinate_channels(shape, with_r, dtype=torch.float64)
    want = torch.as_tensor(numpy_coords(shape, with_r))
    assert got.shape == (len(shape) + with_r, *shape)
    assert torch.allclose(got, want, atol=1e-12)


def test_length_one_axis_is_zero():
    out = AddCoords(rank=2)(torch.zeros(1, 1, 1, 4))
    assert torch.equal(out[0, 1], torch.zeros(1, 4))


def test_range_is_minus_one_to_one():
    c = coordinate_channels((84, 84))
    assert c.min() == -1.0 and c.max() == 1.0


@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16, torch.float16])
def test_dtype_follows_input(dtype):
    x = torch.zeros(2, 1, 4, 4, dtype=dtype)
    assert AddCoords()(x).dtype == dtype


def test_wrong_rank_is_a_clear_error():
    with pytest.raises(ValueError, match=r"2 spatial dims.*\(2, 3, 4\)"):
        AddCoords(rank=2)(torch.zeros(2, 3, 4))
    with pytest.raises(ValueError, match="rank must be 1, 2 or 3"):
        AddCoords(rank=4)


def test_no_parameters_or_buffers():
    m = AddCoords(rank=3, with_r=True)
    assert list(m.parameters()) == [] and list(m.buffers()) == []
    assert m.coord_channels == 4


def test_unit_range_matches_the_release_addcoords():
    # The CoordConv release's detection AddCoords (model_builder_faster_rcnn.py), written out:
    # xx = column / (W - 1), yy = row / (H - 1), rr = distance from (0.5, 0.5); it puts xx
    # first, this module puts the row coordinate first.
    h, w = 4, 6
    yy = np.outer(np.arange(h), np.ones(w)) / (h - 1)
    xx = np.outer(np.ones(h), np.arange(w)) / (w - 1)
    rr = np.sqrt(np.square(xx - 0.5) + np.square(yy - 0.5))
    out = AddCoords(rank=2, with_r=True, coord_range=(0, 1))(
        torch.zeros(2, 1, h, w, dtype=torch.float64)
    )
    for channel, want in zip(out[1, 1:], (yy, xx, rr), strict=True):
        torch.testing.assert_close(channel, torch.as_tensor(want), rtol=0, atol=1e-12)
    assert coordinate_channels((1, 3), coord_range=(0, 1))[0].tolist() == [[0.5, 0.5, 0.5]]
    assert "coord_range=(0.0, 1.0)" in repr(AddCoords(coord_range=(0, 1)))
    assert "coord_range" not in repr(AddCoords())


@pytest.mark.parametrize("bad", [(1, 0), (0, 0), (0, float("inf")), (0,), "ab"])
def test_bad_coord_range_is_a_clear_error(bad):
    with pytest.raises(ValueError, match="coord_range must be"):
        AddCoords(coord_range=bad)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("n", [300, 3000])
def test_low_precision_coordinates_are_the_float32_values_rounded_once(dtype, n):
    coords = coordinate_channels((n,), with_r=True, dtype=dtype)
    assert coords.dtype == dtype
    exact = torch.from_numpy(np.linspace(-1.0, 1.0, n))
    (axis, radius) = coords.double()
    # Each value is the exact coordinate rounded to the dtype: within half a unit in the last
    # place (the dtype's eps relative to values up to 1), both ends exact.
    eps = torch.finfo(dtype).eps
    assert (axis - exact).abs().max() <= eps / 2
    assert axis[0] == -1 and axis[-1] == 1 and torch.equal(radius, axis.abs())
    assert torch.equal(coords, coordinate_channels((n,), with_r=True).to(dtype))
    # As many distinct values as the dtype can hold of the exact ones.
    assert axis.unique().numel() == exact.to(dtype).unique().numel()
