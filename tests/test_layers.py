import inspect
import io
import re
import typing
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.nn.common_types import _size_1_t, _size_2_t, _size_3_t

import coordconv
from coordconv import (
    CoordConv1d,
    CoordConv2d,
    CoordConv3d,
    CoordConvTranspose1d,
    CoordConvTranspose2d,
    CoordConvTranspose3d,
)
from tests.reference import reference_conv, reference_conv_transpose

LAYERS = {1: CoordConv1d, 2: CoordConv2d, 3: CoordConv3d}
PLAIN = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}
TRANSPOSED = {1: CoordConvTranspose1d, 2: CoordConvTranspose2d, 3: CoordConvTranspose3d}
PLAIN_TRANSPOSED = {1: nn.ConvTranspose1d, 2: nn.ConvTranspose2d, 3: nn.ConvTranspose3d}
SHAPES = {1: (13,), 2: (11, 17), 3: (5, 7, 9)}

CASES = [
    dict(kernel_size=3),
    dict(kernel_size=3, stride=2, padding=1),
    dict(kernel_size=2, dilation=2, padding=2),
    dict(kernel_size=3, padding=1, padding_mode="reflect"),
    dict(kernel_size=3, padding=2, padding_mode="circular"),
    dict(kernel_size=3, padding=1, padding_mode="replicate", bias=False),
    dict(kernel_size=3, padding="same"),
    dict(kernel_size=1),
    dict(kernel_size=1, bias=False),
    dict(kernel_size=1, stride=2),
    dict(kernel_size=1, padding=1, padding_mode="reflect"),
]


@pytest.mark.parametrize("rank", [1, 2, 3])
@pytest.mark.parametrize("with_r", [False, True])
@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items()))
def test_equals_concat_reference(rank, with_r, case):
    torch.manual_seed(0)
    layer = LAYERS[rank](3, 5, with_r=with_r, **case)
    x = torch.randn(4, 3, *SHAPES[rank])
    got = layer(x)
    want = reference_conv(layer, x)
    assert got.shape == want.shape
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("rank", [1, 2, 3])
def test_gradients_equal_concat_reference(rank):
    torch.manual_seed(1)
    layer = LAYERS[rank](2, 4, 3, stride=2, padding=1, with_r=True)
    x = torch.randn(3, 2, *SHAPES[rank], requires_grad=True)
    layer(x).square().sum().backward()
    got = (x.grad.clone(), layer.weight.grad.clone(), layer.bias.grad.clone())
    x.grad = None
    layer.zero_grad()
    reference_conv(layer, x).square().sum().backward()
    for g, w in zip(got, (x.grad, layer.weight.grad, layer.bias.grad), strict=True):
        torch.testing.assert_close(g, w, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("rank", [1, 2, 3])
@pytest.mark.parametrize("with_r", [False, True])
@pytest.mark.parametrize("bias", [False, True])
def test_owns_exactly_one_weight_and_bias(rank, with_r, bias):
    layer = LAYERS[rank](6, 8, 3, with_r=with_r, bias=bias)
    d = rank + int(with_r)
    params = dict(layer.named_parameters())
    assert set(params) == ({"weight", "bias"} if bias else {"weight"})
    assert params["weight"].shape == (8, 6 + d, *([3] * rank))
    if bias:
        assert params["bias"].shape == (8,)
    assert list(layer.buffers()) == []
    assert layer.in_channels == 6 and layer.coord_channels == d
    assert isinstance(layer, PLAIN[rank])


def test_parameter_count_is_plain_conv_plus_coordinate_weights():
    plain = nn.Conv2d(4, 32, 8, stride=4)
    coord = CoordConv2d(4, 32, 8, stride=4)
    n = sum(p.numel() for p in coord.parameters()) - sum(p.numel() for p in plain.parameters())
    assert n == 2 * 32 * 8 * 8


TRANSPOSE_SHAPES = {1: (9,), 2: (6, 9), 3: (3, 4, 5)}


@pytest.mark.parametrize("rank", [1, 2, 3])
@pytest.mark.parametrize("with_r", [False, True])
@pytest.mark.parametrize(
    "case",
    [
        dict(kernel_size=3),
        dict(kernel_size=4, stride=2, padding=1),
        dict(kernel_size=3, stride=2, padding=1, output_padding=1),
        dict(kernel_size=3, dilation=2, bias=False),
    ],
    ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items()),
)
def test_transpose_equals_concat_reference(rank, with_r, case):
    torch.manual_seed(2)
    layer = TRANSPOSED[rank](3, 5, with_r=with_r, **case)
    x = torch.randn(2, 3, *TRANSPOSE_SHAPES[rank])
    got = layer(x)
    want = reference_conv_transpose(layer, x, layer.output_padding)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    params = dict(layer.named_parameters())
    assert params["weight"].shape == (3 + rank + with_r, 5, *layer.kernel_size)
    assert set(params) == ({"weight", "bias"} if layer.bias is not None else {"weight"})
    assert isinstance(layer, PLAIN_TRANSPOSED[rank]) and layer.coord_channels == rank + with_r


@pytest.mark.parametrize("rank", [1, 2, 3])
def test_transpose_gradients_equal_concat_reference(rank):
    torch.manual_seed(7)
    layer = TRANSPOSED[rank](2, 3, 3, stride=2, padding=1, output_padding=1, with_r=True)
    x = torch.randn(2, 2, *TRANSPOSE_SHAPES[rank], requires_grad=True)
    layer(x).square().sum().backward()
    got = (x.grad.clone(), layer.weight.grad.clone(), layer.bias.grad.clone())
    x.grad = None
    layer.zero_grad()
    reference_conv_transpose(layer, x, layer.output_padding).square().sum().backward()
    for g, w in zip(got, (x.grad, layer.weight.grad, layer.bias.grad), strict=True):
        torch.testing.assert_close(g, w, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("rank", [1, 2, 3])
def test_transpose_output_size(rank):
    torch.manual_seed(3)
    layer = TRANSPOSED[rank](2, 3, 3, stride=2, padding=1)
    small = (5, 7, 4)[:rank]
    x = torch.randn(1, 2, *small)
    want_size = [2 * n for n in small]
    got = layer(x, output_size=want_size)
    assert got.shape == (1, 3, *want_size)
    torch.testing.assert_close(got, reference_conv_transpose(layer, x, (1,) * rank))


def test_transposed_ranks_share_one_construction_and_forward():
    """One shared forward for the three transposed ranks, and the same repr as their siblings."""
    layers = [TRANSPOSED[rank](2, 3, 3, with_r=True, coord_range=(0, 1)) for rank in (1, 2, 3)]
    assert len({type(layer).forward for layer in layers}) == 1
    for rank, layer in zip((1, 2, 3), layers, strict=True):
        plain = PLAIN_TRANSPOSED[rank](2 + rank + 1, 3, 3)
        want = repr(plain)[:-1].replace(
            f"Transpose{rank}d({2 + rank + 1}, ", f"Transpose{rank}d(2, "
        )
        assert repr(layer) == "Coord" + want + ", with_r=True, coord_range=(0.0, 1.0))"
        assert layer.in_channels == 2


def test_wrong_channel_count_names_both_numbers():
    with pytest.raises(ValueError, match="expects 3 input channels, got 4"):
        CoordConv2d(3, 8, 3)(torch.zeros(1, 4, 8, 8))
    with pytest.raises(ValueError, match="expects 3 input channels, got 1"):
        CoordConvTranspose2d(3, 8, 3)(torch.zeros(1, 1, 8, 8))
    with pytest.raises(ValueError, match="CoordConvTranspose3d expects 3 input channels, got 2"):
        CoordConvTranspose3d(3, 8, 3)(torch.zeros(1, 2, 4, 4, 4))
    with pytest.raises(ValueError, match=r"CoordConvTranspose1d .*1 spatial dims.*\(1, 3, 4, 4\)"):
        CoordConvTranspose1d(3, 8, 3)(torch.zeros(1, 3, 4, 4))
    with pytest.raises(ValueError, match="spatial dims"):
        CoordConv2d(3, 8, 3)(torch.zeros(3, 8, 8))


def test_groups_rejected():
    with pytest.raises(ValueError, match="groups=1 only, got groups=2"):
        CoordConv2d(4, 8, 3, groups=2)
    for rank in (1, 2, 3):
        with pytest.raises(ValueError, match=f"CoordConvTranspose{rank}d supports groups=1 only"):
            TRANSPOSED[rank](4, 8, 3, groups=2)


def test_float64_and_device_follow_parameters():
    layer = CoordConv2d(2, 3, 3, dtype=torch.float64, device="cpu")
    x = torch.randn(2, 2, 7, 5, dtype=torch.float64)
    out = layer(x)
    assert out.dtype == torch.float64 and out.device == x.device
    torch.testing.assert_close(out, reference_conv(layer, x), rtol=1e-12, atol=1e-12)


def test_coordinates_are_made_on_the_input_device_not_copied():
    """No tensor is made on the CPU and no copy happens when the input lives elsewhere."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class Recorder(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.ops = []

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            devices = {
                t.device.type
                for t in torch.utils._pytree.tree_leaves(out)
                if isinstance(t, torch.Tensor)
            }
            self.ops.append((str(func), devices))
            return out

    layer = CoordConv2d(2, 3, 3, device="meta", with_r=True)
    x = torch.randn(1, 2, 5, 5, device="meta")
    with Recorder() as rec:
        out = layer(x)
    assert out.device.type == "meta"
    assert rec.ops and all(devices <= {"meta"} for _, devices in rec.ops), rec.ops
    assert not any("_to_copy" in op or "copy_" in op for op, _ in rec.ops), rec.ops


def test_autocast_bfloat16_on_cpu():
    torch.manual_seed(4)
    layer = CoordConv2d(4, 8, 3, padding=1, with_r=True)
    x = torch.randn(2, 4, 12, 10)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = layer(x)
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), reference_conv(layer, x), rtol=5e-2, atol=5e-2)


@pytest.mark.parametrize("backend", ["aot_eager", "inductor"])
def test_torch_compile_matches_reference(backend):
    torch.manual_seed(5)
    layer = CoordConv2d(3, 4, 3, stride=2, padding=1)
    x = torch.randn(2, 3, 9, 13)
    compiled = torch.compile(layer, backend=backend, fullgraph=True)
    torch.testing.assert_close(compiled(x), reference_conv(layer, x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kernel_size", [1, 3])
def test_torch_compile_in_eval_without_grad_computes_each_size(kernel_size):
    torch.manual_seed(5)
    layer = CoordConv2d(3, 4, kernel_size, with_r=True).eval()
    compiled = torch.compile(layer, backend="aot_eager", fullgraph=True, dynamic=True)
    with torch.no_grad():
        for shape in ((9, 13), (7, 5)):
            x = torch.randn(2, 3, *shape)
            torch.testing.assert_close(compiled(x), reference_conv(layer, x), rtol=1e-5, atol=1e-5)


def test_state_dict_round_trip():
    torch.manual_seed(6)
    layer = CoordConv2d(3, 4, 5, with_r=True)
    buf = io.BytesIO()
    torch.save(layer.state_dict(), buf)
    buf.seek(0)
    fresh = CoordConv2d(3, 4, 5, with_r=True)
    state = torch.load(buf, weights_only=True)
    assert set(state) == {"weight", "bias"}
    fresh.load_state_dict(state)
    x = torch.randn(1, 3, 9, 9)
    assert torch.equal(fresh(x), layer(x))


@pytest.mark.parametrize("case", CASES[:3] + CASES[6:], ids=str)
def test_unit_coord_range_equals_concat_reference(case):
    torch.manual_seed(2)
    layer = CoordConv2d(3, 5, coord_range=(0, 1), with_r=True, **case)
    x = torch.randn(2, 3, *SHAPES[2])
    torch.testing.assert_close(layer(x), reference_conv(layer, x), rtol=1e-5, atol=1e-5)
    for rank in (1, 2, 3):
        transpose = TRANSPOSED[rank](3, 5, 3, stride=2, padding=1, coord_range=(0, 1))
        xt = torch.randn(2, 3, *TRANSPOSE_SHAPES[rank])
        want = reference_conv_transpose(transpose, xt, output_padding=0)
        torch.testing.assert_close(transpose(xt), want, rtol=1e-5, atol=1e-5)
    assert "coord_range=(0.0, 1.0)" in repr(layer)


def test_unit_range_is_not_a_rescaled_default_under_zero_padding():
    # With padding the border reads 0 in both ranges: 0 is the middle of [-1, 1] but the edge of
    # [0, 1], so no affine map of the coordinate weights turns one layer into the other there.
    torch.manual_seed(3)
    unit = CoordConv2d(1, 1, 3, padding=1, bias=False, coord_range=(0, 1))
    default = CoordConv2d(1, 1, 3, padding=1, bias=False)
    with torch.no_grad():
        default.weight.copy_(unit.weight)
        default.weight[:, 1:] /= 2  # (c + 1) / 2 maps [-1, 1] onto [0, 1] ...
    x = torch.zeros(1, 1, 6, 6)
    gap = unit(x) - default(x)  # ... leaving a constant, conv(1, W_c) / 2, only inside
    inner = gap[0, 0, 1:-1, 1:-1]
    torch.testing.assert_close(inner, inner[0, 0].expand_as(inner))
    assert not torch.allclose(gap[0, 0, 0, 0], inner[0, 0])


ALL_LAYERS = [*LAYERS.values(), *TRANSPOSED.values()]


@pytest.mark.parametrize("cls", ALL_LAYERS, ids=lambda c: c.__name__)
def test_signature_is_torchs_typed_with_its_size_types_and_each_parameter_documented(cls):
    rank = int(cls.__name__[-2])
    plain = (PLAIN_TRANSPOSED if "Transpose" in cls.__name__ else PLAIN)[rank]
    names = list(inspect.signature(cls).parameters)
    assert names == [*inspect.signature(plain).parameters, "with_r", "coord_range"]
    hints = typing.get_type_hints(cls.__init__)
    size_t = {1: _size_1_t, 2: _size_2_t, 3: _size_3_t}[rank]
    for name in (
        "kernel_size",
        "stride",
        "dilation",
        *(["output_padding"] * (plain is not PLAIN[rank])),
    ):
        assert hints[name] == size_t, name
    assert set(names) <= set(hints) and typing.Any not in hints.values()
    for name in names:
        assert re.search(rf"^ +{name}: \S", cls.__doc__, re.MULTILINE), name


def test_package_exports_every_layer_with_version_and_type_marker():
    for name in coordconv.__all__:
        assert getattr(coordconv, name).__module__.startswith("coordconv.")
    layers = {cls.__name__ for cls in ALL_LAYERS}
    assert layers | {"AddCoords", "coordinate_channels"} <= set(coordconv.__all__)
    assert isinstance(coordconv.__version__, str) and coordconv.__version__
    assert (Path(coordconv.__file__).parent / "py.typed").is_file()


POINTWISE_CASES = [
    (1, dict(kernel_size=1)),
    (2, dict(kernel_size=1, padding="same", bias=False)),
    (3, dict(kernel_size=(1, 1, 1), padding="valid")),
]


@pytest.mark.parametrize(("rank", "case"), POINTWISE_CASES, ids=str)
@pytest.mark.parametrize("with_r", [False, True])
def test_pointwise_path_equals_concat_reference_forward_and_backward(rank, case, with_r):
    torch.manual_seed(8)
    layer = LAYERS[rank](3, 6, with_r=with_r, **case)
    assert layer._pointwise
    x = torch.randn(2, 3, *SHAPES[rank], requires_grad=True)
    got = layer(x)
    torch.testing.assert_close(got, reference_conv(layer, x), rtol=1e-5, atol=1e-5)
    got.square().sum().backward()
    grads = [t.grad.clone() for t in (x, *layer.parameters())]
    x.grad = None
    layer.zero_grad()
    reference_conv(layer, x).square().sum().backward()
    for g, t in zip(grads, (x, *layer.parameters()), strict=True):
        torch.testing.assert_close(g, t.grad, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    "case", [dict(kernel_size=1, stride=2), dict(kernel_size=1, padding=1), dict(kernel_size=3)]
)
def test_other_layers_take_the_split_path(case):
    assert not CoordConv2d(3, 4, **case)._pointwise


def test_pointwise_path_under_autocast_bfloat16():
    torch.manual_seed(9)
    layer = CoordConv2d(4, 8, 1, with_r=True)
    x = torch.randn(2, 4, 12, 10)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = layer(x)
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), reference_conv(layer, x), rtol=5e-2, atol=5e-2)


CACHED = [
    ("pointwise", lambda: CoordConv2d(3, 4, 1, with_r=True), SHAPES[2]),
    ("split", lambda: CoordConv2d(3, 4, 3, padding=1, coord_range=(0, 1)), SHAPES[2]),
    ("split-3d", lambda: CoordConv3d(3, 4, 2, stride=2), SHAPES[3]),
    ("transpose", lambda: CoordConvTranspose2d(3, 4, 3, stride=2), TRANSPOSE_SHAPES[2]),
]


def check(layer: nn.Module, x: torch.Tensor) -> None:
    """Under eval + no_grad the layer still computes the concat reference, cache or not."""
    with torch.no_grad():
        got = layer(x)
    if isinstance(layer, nn.ConvTranspose2d):
        want = reference_conv_transpose(layer, x, layer.output_padding)
    else:
        want = reference_conv(layer, x)
    tol = 1e-12 if x.dtype == torch.float64 else 1e-5
    torch.testing.assert_close(got, want, rtol=tol, atol=tol)


@pytest.mark.parametrize(("name", "make", "shape"), CACHED, ids=[c[0] for c in CACHED])
def test_eval_cache_is_reused_and_never_stale(name, make, shape):
    torch.manual_seed(10)
    layer = make().eval()
    x = torch.randn(2, 3, *shape)
    check(layer, x)
    cached = layer._term_cache[1]
    check(layer, x)
    assert layer._term_cache[1] is cached  # the second call reuses the term
    assert set(layer.state_dict()) == {"weight", "bias"}

    # An optimizer step in training mode (no cache there) changes the weights in place.
    layer.train()
    optimizer = torch.optim.SGD(layer.parameters(), lr=0.5)
    layer(x).square().sum().backward()
    optimizer.step()
    layer.eval()
    check(layer, x)
    assert layer._term_cache[1] is not cached

    # Eval mode with gradients on caches nothing and backpropagates into the coordinate weights.
    layer.clear_coordinate_cache()
    layer(x).sum().backward()
    assert layer._term_cache is None

    fresh = make()
    layer.load_state_dict(fresh.state_dict())
    check(layer, x)
    with torch.no_grad():
        nn.init.orthogonal_(layer.weight)
        if layer.bias is not None:
            layer.bias.add_(1.0)
    check(layer, x)
    check(layer, torch.randn(1, 3, *(n + 2 for n in shape)))  # another spatial size
    layer.to(torch.float64)
    check(layer, x.double())
    with torch.inference_mode():
        check(layer, x.double())
    check(layer, x.double())
    with torch.no_grad():
        layer.weight.data.mul_(2)  # invisible to the version counter: the documented escape
    layer.clear_coordinate_cache()
    check(layer, x.double())


def test_copies_and_pickles_drop_the_cache():
    import copy

    layer = CoordConv2d(3, 4, 3).eval()
    x = torch.randn(1, 3, 6, 6)
    with torch.no_grad():
        layer(x)
    assert layer._term_cache is not None and layer._grid_cache is not None
    twin = copy.deepcopy(layer)
    assert twin._term_cache is None and twin._grid_cache is None
    buffer = io.BytesIO()
    torch.save(layer, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=False)
    assert loaded._term_cache is None and loaded._grid_cache is None
    with torch.no_grad():
        torch.testing.assert_close(twin(x), layer(x))


class _AtenCalls(torch.utils._python_dispatch.TorchDispatchMode):
    """Records the aten ops a layer's forward and backward run, with their arguments."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.calls.append((func, args))
        return func(*args, **(kwargs or {}))


def _atari_step(layer: nn.Module) -> list:
    x = torch.randn(8, 4, 84, 84)
    with _AtenCalls() as mode:
        layer(x).square().sum().backward()
    return mode.calls


def test_training_path_puts_the_bias_in_the_term_and_sums_the_batch_as_one_mm():
    torch.manual_seed(11)
    calls = _atari_step(CoordConv2d(4, 32, 8, stride=4))
    convs = [args for f, args in calls if f is torch.ops.aten.convolution.default]
    # The batch-8 data convolution runs without bias; the batch-1 term carries it.
    assert [(a[0].shape[0], a[2] is None) for a in convs] == [(1, False), (8, True)]
    backward = [args for f, args in calls if f is torch.ops.aten.convolution_backward.default]
    big = next(a for a in backward if a[1].shape[0] == 8)
    assert list(big[-1])[2] is False  # no bias reduction over the batch
    assert any(f is torch.ops.aten.mm.default and a[0].shape == (1, 8) for f, a in calls)


def test_converted_layer_keeps_the_bias_in_the_convolution():
    from coordconv import coordconvify

    torch.manual_seed(12)
    calls = _atari_step(coordconvify(nn.Conv2d(4, 32, 8, stride=4)))
    convs = [args for f, args in calls if f is torch.ops.aten.convolution.default]
    assert [(a[0].shape[0], a[2] is None) for a in convs] == [(1, True), (8, False)]


@pytest.mark.parametrize(
    "kind", ["float32", "channels_last", "bfloat16-autocast", "transposed", "no-bias"]
)
def test_batch_term_gradient_equals_concat_reference(kind):
    torch.manual_seed(13)
    if kind == "transposed":
        layer = CoordConvTranspose2d(3, 5, 3, stride=2, with_r=True)
        reference = lambda x: reference_conv_transpose(layer, x, layer.output_padding)  # noqa: E731
    else:
        layer = CoordConv2d(3, 5, 3, stride=2, padding=1, with_r=True, bias=kind != "no-bias")
        reference = lambda x: reference_conv(layer, x)  # noqa: E731
    x = torch.randn(6, 3, 11, 17, requires_grad=True)
    if kind == "channels_last":
        layer = layer.to(memory_format=torch.channels_last)
        x = x.detach().to(memory_format=torch.channels_last).requires_grad_()
    grad_out = torch.randn_like(reference(x).detach())
    if kind == "bfloat16-autocast":
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = layer(x)
        out.float().backward(grad_out)
        tol = dict(rtol=5e-2, atol=2e-1)
    else:
        layer(x).backward(grad_out)
        tol = dict(rtol=1e-4, atol=1e-4)
    params = [p for p in (x, layer.weight, layer.bias) if p is not None]
    got = [p.grad.clone() for p in params]
    for p in params:
        p.grad = None
    reference(x).backward(grad_out)
    for g, p in zip(got, params, strict=True):
        torch.testing.assert_close(g, p.grad, **tol)


def test_gradient_penalty_double_backward_equals_concat_reference():
    # WGAN-GP differentiates the gradient with respect to the input again: the batch-term
    # addition's backward must itself be differentiable.
    torch.manual_seed(14)
    layer = CoordConv2d(3, 4, 3, padding=1)
    x = torch.randn(5, 3, 9, 8, requires_grad=True)
    grads = []
    for forward in (layer, lambda t: reference_conv(layer, t)):
        layer.zero_grad()
        (g,) = torch.autograd.grad(forward(x).tanh().sum(), x, create_graph=True)
        g.square().sum().backward()
        grads.append((layer.weight.grad.clone(), layer.bias.grad.clone()))
    for got, want in zip(*grads, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


def test_pickles_keep_the_rounding_flag_and_old_pickles_load():
    import pickle

    from coordconv import coordconvify

    torch.manual_seed(15)
    conv = nn.Conv2d(3, 4, 1)
    x = torch.randn(2, 3, 5, 5)
    converted = pickle.loads(pickle.dumps(coordconvify(conv)))
    assert converted._plain_rounding and not converted._pointwise
    assert torch.equal(converted(x), conv(x))
    # A layer pickled before the flag existed: its state lacks it, and it loads as a fresh one.
    layer = CoordConv2d(3, 4, 3)
    state = layer.__getstate__()
    del state["_plain_rounding"], state["_grid_cache"]
    old = CoordConv2d.__new__(CoordConv2d)
    old.__setstate__(state)
    assert old._plain_rounding is False and old._grid_cache is None
    torch.testing.assert_close(old(x), reference_conv(layer, x), rtol=1e-5, atol=1e-5)


# The ops that build a coordinate grid (see coordinate_grid); a cached grid runs none of them.
GRID_OPS = {torch.ops.aten.arange, torch.ops.aten.stack, torch.ops.aten.clamp}

TRAINED = [
    ("split", lambda: CoordConv2d(3, 4, 3, stride=2, padding=1, with_r=True), SHAPES[2]),
    ("pointwise", lambda: CoordConv2d(3, 4, 1, coord_range=(0, 1)), SHAPES[2]),
    ("split-1d", lambda: CoordConv1d(3, 4, 3, padding=1, padding_mode="circular"), SHAPES[1]),
    ("transpose", lambda: CoordConvTranspose2d(3, 4, 3, stride=2, with_r=True), SHAPES[2]),
]


def _grid_ops(layer: nn.Module, x: torch.Tensor) -> list:
    """The grid-building ops one training step (forward and backward) of `layer` runs."""
    with _AtenCalls() as mode:
        layer(x).square().sum().backward()
    return [f for f, _ in mode.calls if f.overloadpacket in GRID_OPS]


@pytest.mark.parametrize(("name", "make", "shape"), TRAINED, ids=[c[0] for c in TRAINED])
def test_training_steps_build_the_grid_once_per_shape_and_dtype(name, make, shape):
    torch.manual_seed(16)
    layer = make().train()
    x = torch.randn(2, 3, *shape)
    assert _grid_ops(layer, x)  # the first step builds it
    grid = layer._grid_cache[1]
    assert _grid_ops(layer, x) == [] and _grid_ops(layer, x[:1]) == []  # any batch size
    assert layer._grid_cache[1] is grid
    other = torch.randn(2, 3, *(n + 1 for n in shape))
    assert _grid_ops(layer, other) and layer._grid_cache[1].shape[2:] == other.shape[2:]
    assert _grid_ops(layer, x)  # one entry: back to the first shape builds it again
    layer.double()
    assert _grid_ops(layer, x.double()) and layer._grid_cache[1].dtype == torch.float64
    layer.eval()  # eval with grad takes the training path, and the same grid
    assert _grid_ops(layer, x.double()) == []
    assert set(layer.state_dict()) == set(dict(layer.named_parameters()))


@pytest.mark.parametrize(("name", "make", "shape"), TRAINED, ids=[c[0] for c in TRAINED])
def test_cached_grid_steps_are_bit_identical_and_match_concat_reference(name, make, shape):
    torch.manual_seed(17)
    layer = make().train()
    if isinstance(layer, nn.ConvTranspose2d):
        reference = lambda x: reference_conv_transpose(layer, x, layer.output_padding)  # noqa: E731
    else:
        reference = lambda x: reference_conv(layer, x)  # noqa: E731
    optimizer = torch.optim.SGD(layer.parameters(), lr=0.1)
    x = torch.randn(3, 3, *shape, requires_grad=True)
    layer(x)  # the steps below all use the cached grid
    for _ in range(3):
        runs = []
        for fresh in (False, True):
            if fresh:
                layer.clear_coordinate_cache()  # the grid made anew, as before the cache
            out = layer(x)
            grads = torch.autograd.grad(out.square().sum(), (x, *layer.parameters()))
            runs.append((out.detach(), *grads))
        for cached, fresh in zip(*runs, strict=True):
            assert torch.equal(cached, fresh)
        want = reference(x)
        wanted = torch.autograd.grad(want.square().sum(), (x, *layer.parameters()))
        for got, w in zip(runs[0], (want.detach(), *wanted), strict=True):
            torch.testing.assert_close(got, w, rtol=1e-4, atol=1e-5)
        optimizer.zero_grad()
        layer(x).square().mean().backward()  # mean: steps small enough not to diverge
        optimizer.step()


def test_grid_made_under_inference_mode_is_not_reused_by_training():
    torch.manual_seed(18)
    layer = CoordConv2d(3, 4, 3, padding=1)
    x = torch.randn(2, 3, 7, 6)
    with torch.inference_mode():
        layer(x)
    assert layer._grid_cache[1].is_inference()
    layer(x).sum().backward()  # an inference tensor saved for backward would raise here
    assert not layer._grid_cache[1].is_inference()
    torch.testing.assert_close(layer(x), reference_conv(layer, x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("train", [True, False], ids=["train", "eval"])
def test_grid_cached_in_eager_steps_leaves_graphs_dynamic(train):
    """Export, tracing and torch.compile of a layer whose grid is cached at one size still
    compute each size's grid, and neither leaves a graph-time tensor in the cache."""
    import warnings

    torch.manual_seed(19)
    layer = CoordConv2d(3, 4, 3, stride=2, padding=1, with_r=True).train(train)
    first, second = torch.randn(2, 3, 9, 13), torch.randn(3, 3, 6, 11)
    dims = {"x": {k: torch.export.Dim.DYNAMIC for k in (0, 2, 3)}}
    torch.export.export(layer, (first,), dynamic_shapes=dims)
    assert layer._grid_cache is None  # a cold cache stays cold: nothing fake is kept
    layer(first).sum().backward()
    grid = layer._grid_cache[1]
    program = torch.export.export(layer, (first,), dynamic_shapes=dims)
    (placeholder,) = [n for n in program.graph.nodes if n.op == "placeholder" and n.name == "x"]
    assert all(isinstance(n, torch.SymInt) for n in placeholder.meta["val"].shape[2:])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer's notes on shape arithmetic
        traced = torch.jit.trace(layer, (first,), check_trace=False)
    compiled = torch.compile(layer, backend="aot_eager", fullgraph=True, dynamic=True)
    for x in (first, second):
        want = reference_conv(layer, x)
        for run in (program.module(), traced, compiled):
            torch.testing.assert_close(run(x), want, rtol=1e-5, atol=1e-5)
    assert layer._grid_cache[1] is grid and type(grid) is torch.Tensor


def test_fake_tensors_and_func_transforms_leave_the_cache_alone():
    from torch._subclasses.fake_tensor import FakeTensorMode

    torch.manual_seed(20)
    layer = CoordConv2d(3, 4, 3, padding=1)
    x = torch.randn(2, 3, 7, 6)
    # What torch.func.grad makes inside its call is a wrapper of that call: not kept.
    got = torch.func.grad(lambda t: layer(t).square().sum())(x)
    assert layer._grid_cache is None
    want = torch.func.grad(lambda t: reference_conv(layer, t).square().sum())(x)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
    layer(x)
    grid = layer._grid_cache[1]
    torch.testing.assert_close(  # a plain cached grid serves inside the transform
        torch.func.grad(lambda t: layer(t).square().sum())(x), want, rtol=1e-4, atol=1e-5
    )
    # Shape inference on fake tensors, at another size: no fake grid is kept.
    with FakeTensorMode(allow_non_fake_inputs=True) as mode:
        fake = mode.from_tensor(torch.randn(2, 3, 5, 9))
        assert layer(fake).shape == (2, 4, 5, 9)
    assert layer._grid_cache[1] is grid
    torch.testing.assert_close(layer(x), reference_conv(layer, x), rtol=1e-5, atol=1e-5)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_grid_is_kept_per_stream_and_never_from_graph_capture():
    torch.manual_seed(21)
    device = torch.device("cuda")
    layer = CoordConv2d(3, 4, 3, padding=1, with_r=True, device=device)
    x = torch.randn(2, 3, 7, 6, device=device)
    want = reference_conv(layer, x)
    tol = dict(rtol=2e-3, atol=2e-3)  # cuDNN may take TF32 for float32 convolutions
    layer(x).sum().backward()
    grid = layer._grid_cache[1]
    assert grid.device == x.device and torch.equal(grid, layer._make_coordinates(x))
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        torch.testing.assert_close(layer(x), want, **tol)
        assert layer._grid_cache[1] is not grid  # made anew for, and on, the side stream
    torch.cuda.current_stream().wait_stream(side)
    layer.eval()
    layer.clear_coordinate_cache()
    static = x.clone()
    graph = torch.cuda.CUDAGraph()
    with torch.no_grad():
        with torch.cuda.stream(side):  # warm-up before capture, as CUDA graphs ask
            layer(static)
        torch.cuda.current_stream().wait_stream(side)
        layer.clear_coordinate_cache()
        with torch.cuda.graph(graph):
            out = layer(static)
    assert layer._grid_cache is None and layer._term_cache is None  # nothing from the capture
    static.copy_(x)
    graph.replay()
    torch.cuda.synchronize()
    torch.testing.assert_close(out, want, **tol)
    with torch.no_grad():
        torch.testing.assert_close(layer(x), want, **tol)
