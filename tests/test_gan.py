import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from common.devices import select_device
from common.results import count_params
from coordconv import AddCoords, CoordConv2d
from supervised.gan.data import draw_clevr, load_gan_data
from supervised.gan.mode_collapse import collapse_scores, locate
from supervised.gan.models import CoordConvGenerator, TiledCoordConv, build_gan
from supervised.gan.trainer import GanSettings, real_reference, train_gan
from tests.cli import error_lines, run_script

PNG = b"\x89PNG\r\n\x1a\n"
GPU = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]
# Load a checkpoint as a user of a machine without a GPU would: no map_location.
LOAD_WITHOUT_CUDA = """
import sys, torch
assert not torch.cuda.is_available()
state = torch.load(sys.argv[1], weights_only=True)
def tensors(obj):
    if isinstance(obj, torch.Tensor):
        yield obj
    elif isinstance(obj, dict):
        for value in obj.values():
            yield from tensors(value)
    elif isinstance(obj, (list, tuple)):
        for value in obj:
            yield from tensors(value)
found = list(tensors(state))
print(len(found), *sorted({t.device.type for t in found}))
"""


def load_without_cuda(path) -> tuple[int, set[str]]:
    """(how many tensors, their device types) of the checkpoint at `path`, loaded in a
    process that sees no CUDA device."""
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    r = subprocess.run([sys.executable, "-c", LOAD_WITHOUT_CUDA, str(path)], env=env,
                       capture_output=True, text=True, timeout=300)  # fmt: skip
    assert r.returncode == 0, r.stderr
    count, *devices = r.stdout.split()
    return int(count), set(devices)


def test_clevr_data():
    data = load_gan_data("clevr", 400, seed=3)
    images = data.batch(range(len(data)))
    assert images.shape == (400, 3, 64, 64) and data.channels == 3
    assert set(images.unique().tolist()) == {-1.0, 1.0}  # white, pure red, pure blue only
    centres = data.centres
    assert centres.shape == (400, 2, 2)
    assert centres.min() >= 10 and centres.max() < 54
    assert (centres[:, 0] - centres[:, 1]).norm(dim=1).min() >= 20
    x, y = centres.long().unbind(-1)
    n = torch.arange(400)
    blue = images[n, :, y[:, 1], x[:, 1]]  # drawn last: its centre is always blue
    assert (blue == torch.tensor([-1.0, -1.0, 1.0])).all()
    red = images[n, :, y[:, 0], x[:, 0]]
    assert (red == torch.tensor([1.0, -1.0, -1.0])).all()  # 20 px apart: blue never reaches it
    again = load_gan_data("clevr", 400, seed=3)
    assert torch.equal(again.centres, centres) and torch.equal(again.batch([5, 7]), images[[5, 7]])
    assert not torch.equal(load_gan_data("clevr", 400, seed=4).centres, centres)
    # 50,000 as released is cheap: positions and shapes only, images drawn per batch.
    assert len(load_gan_data("clevr")) == 50_000


def test_square_data():
    data = load_gan_data("square")
    images = data.batch(range(len(data)))
    assert images.shape == (3136, 1, 64, 64) and data.channels == 1
    assert ((images == 1).flatten(1).sum(1) == 81).all()
    assert data.centres.shape == (3136, 1, 2)
    part = load_gan_data("square", 100, seed=1)
    assert len(part) == 100 and torch.equal(part.centres, load_gan_data("square", 100, 1).centres)


def _reference(data_name: str, n: int):
    return real_reference(load_gan_data(data_name, n, seed=0))


def test_measure_on_real_data_is_near_perfect():
    ref = _reference("clevr", 2000)
    held_out = load_gan_data("clevr", 500, seed=1).batch(range(500))
    scores = collapse_scores(held_out, ref)
    assert scores["validity"] == 1.0 and scores["coverage"] == 1.0 and scores["js"] < 0.05
    squares = load_gan_data("square")
    square_scores = collapse_scores(squares.batch(range(0, 3136, 5)), real_reference(squares))
    assert square_scores == pytest.approx({"validity": 1.0, "coverage": 1.0, "js": 0.0}, abs=0.01)


def test_measure_finds_the_drawn_centres():
    data = load_gan_data("clevr", 200, seed=2)
    located = locate(data.batch(range(200)), "clevr")
    assert located.valid.all()
    # Blue is never covered; red may lose pixels to blue, which moves its centroid a little.
    assert np.abs(located.centres[:, 1] - data.centres[:, 1].numpy()).max() < 1e-6
    assert np.abs(located.centres[:, 0] - data.centres[:, 0].numpy()).max() < 1.5


def test_measure_on_collapsed_sets_is_bad():
    ref = _reference("clevr", 2000)
    one_place = torch.tensor([[20.0, 20.0], [44.0, 44.0]]).expand(300, 2, 2)
    collapsed = collapse_scores(draw_clevr(one_place, torch.zeros(300, 2, dtype=torch.bool)), ref)
    assert collapsed["validity"] == 1.0  # good-looking images...
    assert collapsed["coverage"] == pytest.approx(1 / 36)  # ...all in one cell per colour
    assert collapsed["js"] > 0.8
    blank = collapse_scores(torch.ones(50, 3, 64, 64), ref)
    assert blank == {"validity": 0.0, "coverage": 0.0, "js": 1.0}
    noise = collapse_scores(torch.rand(50, 3, 64, 64, generator=torch.Generator().manual_seed(0))
                            * 2 - 1, ref)  # fmt: skip
    assert noise["validity"] == 0.0


def test_measure_rejects_wrong_shapes_and_credits_each_colour():
    ref = _reference("clevr", 2000)
    real = load_gan_data("clevr", 300, seed=1).batch(range(300))
    stripe = real.clone()
    stripe[:, :, 60:, :] = torch.tensor([1.0, -1.0, -1.0])[:, None, None]  # a red band: no object
    assert collapse_scores(stripe, ref)["validity"] == 0.0
    blue_only = real.clone()
    is_red = (blue_only[:, 0] > 0) & (blue_only[:, 1] < 0)
    blue_only.masked_fill_(is_red[:, None], 1.0)  # red objects painted white
    scores = collapse_scores(blue_only, ref)
    assert scores["validity"] == 0.0 and scores["coverage"] == pytest.approx(0.5)
    assert scores["js"] == pytest.approx(0.5, abs=0.05)  # blue ~0, red 1


@pytest.mark.parametrize("model", ["conv", "coordconv"])
@pytest.mark.parametrize("channels", [3, 1])
def test_model_shapes(model, channels):
    generator, discriminator = build_gan(model, channels, z_dim=256, width=0.25)
    z = torch.rand(4, 256) * 2 - 1
    images = generator(z)
    assert images.shape == (4, channels, 64, 64)
    assert images.min() >= -1 and images.max() <= 1 and images.is_contiguous()
    logits = discriminator(images)
    assert logits.shape == (4,)
    (logits.sum() + images.sum()).backward()
    assert all(p.grad is not None for p in generator.parameters())


def test_release_widths():
    sizes = {m: [count_params(n) for n in build_gan(m, 3)] for m in ("conv", "coordconv")}
    assert sizes == {"conv": [6_413_315, 4_316_545], "coordconv": [444_931, 4_319_745]}
    _, discriminator = build_gan("coordconv", 3)
    assert isinstance(discriminator.features[0], CoordConv2d)


def _first_layer_ratio(coord_init: str) -> float:
    """Spread of the first layer's output over the canvas / its spread over z, at init."""
    torch.manual_seed(0)
    generator = CoordConvGenerator(256, 1, width=0.25, coord_init=coord_init)
    with torch.no_grad():
        h = generator.net[0](torch.rand(64, 256) * 2 - 1)
    return (h.std(dim=(2, 3)).mean() / h.mean(dim=(2, 3)).std(dim=0).mean()).item()


def test_balanced_init_gives_position_the_same_say_as_z():
    # z columns over fan-in 256 and coordinate columns over fan-in 2: equal variance from each
    # (z ~ U(-1, 1) and the coordinates in [-1, 1] have about the same second moment).
    assert 0.8 < _first_layer_ratio("balanced") < 1.25
    # The release's single fan-in of 258 leaves position ~sqrt(2/256) of z's spread.
    assert 0.05 < _first_layer_ratio("release") < 0.15
    weight = CoordConvGenerator(256, 1, width=1.0).net[0].weight
    assert weight[:, 256:].std().item() == pytest.approx(1.0, rel=0.1)
    assert weight[:, :256].std().item() == pytest.approx((2 / 256) ** 0.5, rel=0.05)
    with pytest.raises(ValueError, match="unknown coord_init 'he'; valid: balanced, release"):
        CoordConvGenerator(256, 1, coord_init="he")


def test_fast_first_layer_equals_the_tiled_coordconv():
    torch.manual_seed(0)
    # float64: the two sum the same terms in different orders
    layer = TiledCoordConv(6, 5, size=16).double()
    z = torch.randn(3, 6, dtype=torch.float64, requires_grad=True)
    fast = layer(z)
    tiled = z[:, :, None, None].expand(3, 6, 16, 16)
    naive = F.conv2d(AddCoords()(tiled), layer.weight, layer.bias)  # tile, add coords, 1x1 conv
    assert fast.shape == (3, 5, 16, 16)
    torch.testing.assert_close(fast, naive)
    torch.testing.assert_close(fast, CoordConv2d.forward(layer, tiled))
    grads = torch.autograd.grad(fast.square().sum(), [z, layer.weight])
    naive_grads = torch.autograd.grad(naive.square().sum(), [z, layer.weight])
    for fast_grad, naive_grad in zip(grads, naive_grads, strict=True):
        torch.testing.assert_close(fast_grad, naive_grad)


def test_training_is_deterministic_on_cpu():
    s = GanSettings(data="square", model="conv", epochs=1, images=32, width=0.125,
                    eval_samples=16, progress=False)  # fmt: skip
    first, second = (train_gan(s, torch.device("cpu"))["history"] for _ in range(2))
    assert first == second


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=GPU)])
def test_checkpoint_loads_without_cuda(tmp_path, device):
    s = GanSettings(data="square", model="coordconv", epochs=1, images=16, width=0.125,
                    eval_samples=16, progress=False, out=str(tmp_path))  # fmt: skip
    result = train_gan(s, select_device(device))
    assert result["device"] == ("cuda:0" if device == "cuda" else "cpu")
    assert result["tf32"] is False  # off unless --tf32
    if device == "cuda":
        assert result["cuda"] and result["cudnn"] and result["device_model"]
    # Generator, discriminator and both Adam states: every tensor saved as a CPU tensor.
    count, devices = load_without_cuda(tmp_path / "checkpoint.pt")
    assert count > 20 and devices == {"cpu"}


def test_train_gan_cli(capsys, tmp_path):
    r = run_script(
        capsys, "train_gan.py", "--data", "clevr", "--model", "coordconv", "--epochs", "2",
        "--images", "32", "--width", "0.125", "--eval-samples", "32", "--no-progress",
        "--device", "cpu", "--out", tmp_path,
    )  # fmt: skip
    assert r.code == 0, r.err
    assert r.out.startswith("coordconv GAN on clevr (G ")
    result = json.loads((tmp_path / "results.json").read_text())
    for key in ("model", "data", "params_g", "params_d", "epochs", "images", "seconds",
                "validity", "coverage", "js", "seed", "device", "device_model", "cuda", "cudnn",
                "tf32", "cudnn_deterministic"):  # fmt: skip
        assert key in result
    assert (result["device"], result["tf32"], result["cuda"]) == ("cpu", False, None)
    assert result["device_model"]
    assert 0 <= result["validity"] <= 1 and 0 <= result["js"] <= 1
    assert [h["epoch"] for h in result["history"]] == [1, 2]
    checkpoint = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert checkpoint["epoch"] == 2 and checkpoint["finished"]
    assert "net.0.weight" in checkpoint["generator"]
    for name in ("samples.png", "interpolation.png"):
        assert (tmp_path / name).read_bytes()[:8] == PNG
    assert list(tmp_path.glob("events.out.tfevents.*"))


@pytest.mark.parametrize(
    "args,message",
    [
        (["--data", "mnist"], "unknown data 'mnist'; valid: clevr, square"),
        (["--model", "vae"], "unknown model 'vae'; valid: conv, coordconv"),
        (["--epochs", "0"], "--epochs must be >= 1, got 0"),
        (["--images", "0"], "--images must be >= 1, got 0"),
        (["--data", "square", "--images", "4000"], "--images 4000: square has 3,136 images"),
        (["--width", "0"], "--width must be a positive number, got 0.0"),
        (["--coord-init", "he"], "unknown coord-init 'he'; valid: balanced, release"),
        (["--lr-g", "nan"], "--lr-g must be a positive number, got nan"),
        (["--epochs", "x"], "argument --epochs: invalid int value: 'x'"),
    ],
)
def test_train_gan_bad_input(capsys, tmp_path, args, message):
    r = run_script(capsys, "train_gan.py", "--out", tmp_path / "run", *args)
    lines = error_lines(r.err)
    assert r.code == 2 and len(lines) == 1 and message in lines[0], r.err
    assert not (tmp_path / "run").exists()


def test_reproduce_gan_smoke(capsys, tmp_path):
    out = tmp_path / "gan.md"
    r = run_script(
        capsys, "reproduce_gan.py", "--data", "clevr", "--seeds", "1", "--epochs", "1", "--images",
        "16", "--eval-samples", "16", "--device", "cpu", "--no-progress", "--pictures", "--out",
        out,
    )  # fmt: skip
    assert r.code == 0, r.err
    names = sorted(p.name for p in tmp_path.iterdir())
    pictures = [f"gan_{m}_s0_{kind}.png" for m in ("conv", "coordconv")
                for kind in ("interpolation", "samples")]  # fmt: skip
    assert names == sorted(["gan.md", "gan_cpu.json", *pictures])
    for name in pictures:
        assert (tmp_path / name).read_bytes()[:8] == PNG
    text = out.read_text()
    assert text.startswith("# GAN") and "## cpu: " in text
    assert "| real data (held out) | - | - | " in text
    assert "| conv | 796,931 | 272,737 |" in text and "| coordconv | 52,867 | 273,537 |" in text
    assert "Budget quick: clevr, 16 images, epochs 1, width 0.25" in text
    rows = json.loads((tmp_path / "gan_cpu.json").read_text())["rows"]
    assert [row["model"] for row in rows] == ["real data", "conv", "coordconv"]


@pytest.mark.parametrize(
    "args,message",
    [
        (["--budget", "huge"], "unknown --budget 'huge'; valid: quick, full"),
        (["--data", "mnist"], "unknown data 'mnist'; valid: clevr, square"),
        (["--seeds", "0"], "--seeds must be >= 1, got 0"),
        (["--epochs", "0"], "--epochs must be >= 1, got 0"),
    ],
)
def test_reproduce_gan_bad_input(capsys, tmp_path, args, message):
    out = tmp_path / "gan.md"
    r = run_script(capsys, "reproduce_gan.py", "--out", out, *args)
    lines = error_lines(r.err)
    assert r.code == 2 and len(lines) == 1 and message in lines[0], r.err
    assert not out.exists()
