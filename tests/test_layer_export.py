"""Every layer scripts (torch.jit.script), exports (torch.export, ONNX) with dynamic spatial sizes,
and the one exported artefact computes what the eager layer does at two input sizes."""

import io
import warnings

import pytest
import torch

from coordconv import (
    AddCoords,
    CoordConv1d,
    CoordConv2d,
    CoordConv3d,
    CoordConvTranspose1d,
    CoordConvTranspose2d,
    CoordConvTranspose3d,
)

# (name, rank, factory): the settings vary so padding modes, with_r and coord_range are covered.
LAYERS = [
    ("AddCoords", 2, lambda: AddCoords(2, with_r=True)),
    ("AddCoords3d", 3, lambda: AddCoords(3, coord_range=(0, 1))),
    ("CoordConv1d", 1, lambda: CoordConv1d(3, 4, 3, padding=1, with_r=True)),
    ("CoordConv2d", 2, lambda: CoordConv2d(3, 4, 3, stride=2, padding=1, padding_mode="reflect")),
    ("CoordConv3d", 3, lambda: CoordConv3d(3, 4, 3, with_r=True, coord_range=(0, 1))),
    ("CoordConv2d-1x1", 2, lambda: CoordConv2d(3, 4, 1, with_r=True)),
    ("CoordConv3d-1x1", 3, lambda: CoordConv3d(3, 4, 1, bias=False)),
    ("CoordConvTranspose1d", 1, lambda: CoordConvTranspose1d(3, 4, 3, stride=2)),
    ("CoordConvTranspose2d", 2, lambda: CoordConvTranspose2d(3, 4, 4, 2, 1, with_r=True)),
    ("CoordConvTranspose3d", 3, lambda: CoordConvTranspose3d(3, 4, 3, coord_range=(0, 1))),
]
IDS = [name for name, _, _ in LAYERS]


def eval_layer(make, rank: int, grad: bool) -> torch.nn.Module:
    """The layer in eval mode; without grad its coordinate cache is warm from an eager call at
    the export size, so an export that took the cached term for a constant would fail."""
    layer = make().eval()
    if not grad:
        with torch.no_grad():
            layer(two_inputs(rank)[0])
    return layer


GRAD = pytest.mark.parametrize("grad", [True, False], ids=["grad", "no_grad"])


def two_inputs(rank: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The input an export is made from and a second one that differs in batch and every
    spatial size (non-square, so no two sizes can be confused)."""
    torch.manual_seed(0)
    first = torch.randn(2, 3, *(5, 6, 7)[:rank])
    second = torch.randn(3, 3, *(9, 4, 8)[:rank])
    return first, second


@pytest.mark.parametrize(("name", "rank", "make"), LAYERS, ids=IDS)
def test_jit_script_matches_eager_at_two_sizes(name, rank, make):
    layer = make().eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit.script is deprecated
        scripted = torch.jit.script(layer)
    buffer = io.BytesIO()
    torch.jit.save(scripted, buffer)
    buffer.seek(0)
    loaded = torch.jit.load(buffer)
    for x in two_inputs(rank):
        torch.testing.assert_close(loaded(x), layer(x), rtol=1e-6, atol=1e-6)


def test_scripted_transpose_takes_output_size():
    layer = CoordConvTranspose2d(3, 4, 3, stride=2, padding=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        scripted = torch.jit.script(layer)
    x = torch.randn(1, 3, 5, 6)
    got = scripted(x, output_size=[10, 12])
    assert got.shape == (1, 4, 10, 12)
    torch.testing.assert_close(got, layer(x, output_size=[10, 12]))


@GRAD
@pytest.mark.parametrize(("name", "rank", "make"), LAYERS, ids=IDS)
def test_torch_export_with_dynamic_spatial_sizes(name, rank, make, grad):
    layer = eval_layer(make, rank, grad)
    first, second = two_inputs(rank)
    dims = {k: torch.export.Dim.DYNAMIC for k in (0, *range(2, 2 + rank))}
    with torch.set_grad_enabled(grad):
        program = torch.export.export(layer, (first,), dynamic_shapes={"x": dims})
    # The spatial sizes stay symbolic in the graph: no size the export saw is frozen into it.
    (placeholder,) = [n for n in program.graph.nodes if n.op == "placeholder" and n.name == "x"]
    assert all(isinstance(n, torch.SymInt) for n in placeholder.meta["val"].shape[2:])
    for x in (first, second):
        torch.testing.assert_close(program.module()(x), layer(x), rtol=1e-6, atol=1e-6)


def onnx_check(layer: torch.nn.Module, rank: int, dynamo: bool, grad: bool) -> None:
    import onnxruntime

    first, second = two_inputs(rank)
    axes = {0: "batch"} | {2 + k: f"size{k}" for k in range(rank)}
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.set_grad_enabled(grad):
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        if dynamo:
            dims = {k: torch.export.Dim.DYNAMIC for k in axes}
            program = torch.onnx.export(layer, (first,), dynamo=True, dynamic_shapes=(dims,))
            program.save(buffer)
        else:
            torch.onnx.export(
                layer,
                (first,),
                buffer,
                dynamo=False,
                input_names=["x"],
                output_names=["y"],
                dynamic_axes={"x": axes, "y": axes},
            )
    session = onnxruntime.InferenceSession(buffer.getvalue(), providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name
    for x in (first, second):
        (got,) = session.run(None, {input_name: x.numpy()})
        torch.testing.assert_close(torch.from_numpy(got), layer(x), rtol=1e-5, atol=1e-5)


@GRAD
@pytest.mark.parametrize(("name", "rank", "make"), LAYERS, ids=IDS)
def test_onnx_export_runs_in_onnxruntime_at_two_sizes(name, rank, make, grad):
    onnx_check(eval_layer(make, rank, grad), rank, dynamo=False, grad=grad)


# torch.onnx.export's default exporter (dynamo, through onnxscript) takes seconds a layer, so
# these run with the slow tests (CI's second step); the TorchScript exporter's run by default.
@pytest.mark.slow
@pytest.mark.parametrize(("name", "rank", "make"), LAYERS, ids=IDS)
def test_dynamo_onnx_export_runs_in_onnxruntime_at_two_sizes(name, rank, make):
    onnx_check(eval_layer(make, rank, False), rank, dynamo=True, grad=False)
