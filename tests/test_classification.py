import json

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from common.devices import select_device
from common.results import count_params
from coordconv import CoordConv2d
from supervised.classification.data import CANVAS, load_split, place_on_canvas
from supervised.classification.models import VARIANTS, build_classifier
from supervised.classification.report import markdown_tables, paired_differences, reading
from supervised.classification.trainer import (
    ClassificationSettings,
    coordinate_weights,
    train_classification,
)
from tests.cli import error_lines, run_script


def test_variants_differ_from_conv_in_coordinate_weights_only():
    models = {v: build_classifier(v, seed=0) for v in VARIANTS}
    params = {v: count_params(m) for v, m in models.items()}
    # Two coordinate channels: 8 outputs x 2 for the 1x1 front, 64 x 2 x 7 x 7 for conv1.
    assert params["coordconv"] - params["conv"] == 8 * 2 == coordinate_weights(models["coordconv"])
    assert params["coordconvify-first"] - params["conv"] == 64 * 2 * 7 * 7
    assert coordinate_weights(models["conv"]) == 0
    assert type(models["conv"].front) is torch.nn.Conv2d
    assert isinstance(models["coordconv"].front, CoordConv2d)
    assert models["coordconv"].front.kernel_size == (1, 1)
    assert isinstance(models["coordconvify-first"].resnet.conv1, CoordConv2d)
    assert not isinstance(models["coordconvify-first"].front, CoordConv2d)
    for size in (28, CANVAS):
        x = torch.rand(2, 1, size, size)
        assert models["coordconv"].eval()(x).shape == (2, 10)


def test_same_seed_same_starting_weights_and_function():
    torch.manual_seed(123)  # the global stream must not matter: each build seeds itself
    conv = build_classifier("conv", seed=4)
    other = build_classifier("conv", seed=5)
    assert not torch.equal(conv.front.weight, other.front.weight)
    x = torch.rand(3, 1, 28, 28)
    reference = conv.eval()(x)
    for variant in ("coordconv", "coordconvify-first"):
        torch.manual_seed(7)
        model = build_classifier(variant, seed=4)
        theirs, ours = model.state_dict(), conv.state_dict()
        assert theirs.keys() == ours.keys()
        for name, value in ours.items():
            if theirs[name].shape == value.shape:
                assert torch.equal(theirs[name], value), name
            else:  # a converted layer: the image weights first, then zeros for the coordinates
                c = value.shape[1]
                assert torch.equal(theirs[name][:, :c], value), name
                assert not theirs[name][:, c:].any(), name
        torch.testing.assert_close(model.eval()(x), reference)


def _rows(images):
    return {bytes((x * 255).round().byte().numpy()) for x in images}


def test_split_is_fixed_and_disjoint():
    train, test = load_split("digits", 4000, 1000)
    again_train, again_test = load_split("digits", 100, 50)
    assert train.images.shape == (4000, 1, 28, 28) and test.images.shape == (1000, 1, 28, 28)
    assert torch.equal(again_train.images, train.images[:100])
    assert torch.equal(again_test.labels, test.labels[:50])
    assert not _rows(train.images[:, 0]) & _rows(test.images[:, 0])
    assert set(test.labels.tolist()) == set(range(10))


def test_canvas_places_each_digit_within_bounds():
    digits = torch.rand(50, 28, 28)
    canvas, corners = place_on_canvas(digits, 40, seed=3)
    assert canvas.shape == (50, 1, 40, 40)
    assert corners.min() >= 0 and corners.max() <= 40 - 28
    assert len({tuple(c) for c in corners.tolist()}) > 10  # positions vary
    for k, (row, col) in enumerate(corners.tolist()):
        assert torch.equal(canvas[k, 0, row : row + 28, col : col + 28], digits[k])
        assert canvas[k].sum() == pytest.approx(digits[k].sum().item())  # nothing else drawn
    assert torch.equal(place_on_canvas(digits, 40, seed=3)[0], canvas)
    # The canvas dataset holds the same digits as the plain one, in the same order.
    (plain, _), (placed, placed_test) = load_split("digits", 20, 20), load_split("canvas", 20, 20)
    assert placed.images.shape == (20, 1, CANVAS, CANVAS)
    torch.testing.assert_close(placed.images.sum((1, 2, 3)), plain.images.sum((1, 2, 3)))
    assert not torch.equal(placed.images, load_split("canvas", 20, 20)[1].images)
    assert placed_test.images.shape[-1] == CANVAS


def _result(dataset, variant, seed, accuracy):
    return {"dataset": dataset, "variant": variant, "seed": seed, "test_accuracy": accuracy,
            "params": 1, "coordinate_weights": 0, "seconds": 1.0, "epochs": 1,
            "train_images": 10, "test_images": 10, "batch_size": 4, "lr": 1e-3}  # fmt: skip


def test_paired_differences_and_their_reading():
    results = [_result("digits", "conv", s, a) for s, a in enumerate([0.90, 0.92, 0.95])]
    results += [_result("digits", "coordconv", s, a) for s, a in enumerate([0.91, 0.91, 0.96])]
    results += [_result("digits", "coordconvify-first", s, a) for s, a in enumerate([0.8] * 3)]
    results[-1]["test_accuracy"] = 0.81
    assert paired_differences(results, "digits", "coordconv") == pytest.approx([0.01, -0.01, 0.01])
    assert reading((-0.01, 0.02)).startswith("within noise")
    assert reading((0.01, 0.02)).startswith("CoordConv better")
    assert reading((-0.02, -0.01)).startswith("CoordConv worse")
    table, summary = markdown_tables(results)
    assert "| digits | coordconv - conv | +0.33 |" in table
    assert "digits, coordconv - conv: +0.33 points over 3 seeds, within noise" in summary
    assert "coordconvify-first - conv: -12.00 points over 3 seeds, CoordConv worse" in summary
    assert "+0.04% top-5" in summary


def test_train_classification_cli(capsys, tmp_path):
    r = run_script(
        capsys, "train_classification.py", "--dataset", "canvas", "--variant", "coordconv",
        "--epochs", "1", "--train-images", "48", "--test-images", "20", "--batch-size", "16",
        "--no-progress", "--device", "cpu", "--out", tmp_path,
    )  # fmt: skip
    assert r.code == 0, r.err
    assert r.out.startswith("coordconv on canvas (11,197,354 params, 16 on coordinates): test ")
    result = json.loads((tmp_path / "results.json").read_text())
    for key in ("dataset", "variant", "seed", "params", "coordinate_weights", "test_accuracy",
                "test_accuracy_per_epoch", "train_loss", "seconds", "steps"):  # fmt: skip
        assert key in result, key
    assert (result["image_size"], result["steps"], result["test_images"]) == (CANVAS, 3, 20)
    assert 0 <= result["test_accuracy"] <= 1
    assert (result["device"], result["tf32"], result["cuda"]) == ("cpu", False, None)
    assert result["device_model"]
    checkpoint = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert checkpoint["epoch"] == 1 and "front.weight" in checkpoint["model"]
    assert all(v.device.type == "cpu" for v in checkpoint["model"].values())
    (events,) = tmp_path.glob("events.out.tfevents.*")
    tags = set(EventAccumulator(str(events)).Reload().Tags()["scalars"])
    assert {"train/loss", "test/accuracy", "test/loss"} <= tags


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_train_classification_on_cuda(tmp_path):
    s = ClassificationSettings(dataset="canvas", epochs=1, train_images=64, test_images=32,
                               batch_size=16, progress=False, out=str(tmp_path))  # fmt: skip
    r = train_classification(s, select_device("cuda"))
    assert (r["device"], r["tf32"]) == ("cuda:0", False) and r["cuda"] and r["device_model"]
    assert 0 <= r["test_accuracy"] <= 1 and r["steps"] == 4
    checkpoint = torch.load(tmp_path / "checkpoint.pt", weights_only=True)  # no map_location
    assert all(v.device.type == "cpu" for v in checkpoint["model"].values())


@pytest.mark.parametrize(
    "args,message",
    [
        (["--dataset", "imagenet"], "unknown dataset 'imagenet'; valid: digits, canvas"),
        (["--variant", "resnet"], "unknown variant 'resnet'; valid: conv, coordconv, "),
        (["--epochs", "0"], "--epochs must be >= 1, got 0"),
        (["--lr", "-1"], "--lr must be a positive number, got -1.0"),
        (["--mnist-dir", "no/such/dir"], "--mnist-dir not found: no/such/dir"),
        (["--train-images", "4001"], "--train-images 4001: the fixed split has only 4000"),
    ],
)
def test_train_classification_bad_input(capsys, tmp_path, args, message):
    r = run_script(capsys, "train_classification.py", "--out", tmp_path / "run", *args)
    lines = error_lines(r.err)
    assert r.code == 2 and len(lines) == 1 and message in lines[0], r.err
    assert not (tmp_path / "run").exists()


def test_reproduce_classification_smoke(capsys, tmp_path):
    out = tmp_path / "classification.md"
    r = run_script(
        capsys, "reproduce_classification.py", "--datasets", "digits", "--epochs", "1",
        "--train-images", "32", "--test-images", "16", "--runs", tmp_path / "runs",
        "--device", "cpu", "--no-progress", "--out", out,
    )  # fmt: skip
    assert r.code == 0, r.err
    text = out.read_text()
    assert text.startswith("# Classification: conv vs CoordConv")
    assert "**Quick budget**" in text and "--budget full" in text
    assert "| dataset | variant | params | coordinate weights | test accuracy % (mean) " in text
    assert "| digits | coordconv | 11,197,354 | 16 |" in text
    assert "| digits | coordconvify-first - conv |" in text and "+0.04% top-5" in text
    rows = json.loads((tmp_path / "classification_cpu.json").read_text())["rows"]
    assert [(row["variant"], row["seed"]) for row in rows] == [
        (v, s) for s in range(2) for v in VARIANTS
    ]
    run = tmp_path / "runs" / "digits_coordconv_s1"
    assert json.loads((run / "results.json").read_text())["variant"] == "coordconv"
    assert list(run.glob("events.out.tfevents.*")) and not (run / "checkpoint.pt").exists()


@pytest.mark.parametrize(
    "args,message",
    [
        (["--budget", "huge"], "unknown --budget 'huge'; valid: quick, full"),
        (["--datasets", "digits,imagenet"], "unknown --datasets 'digits,imagenet'; valid: "),
        (["--seeds", "0"], "--seeds must be >= 1, got 0"),
        (["--epochs", "0"], "--epochs must be >= 1, got 0"),
        (["--mnist-dir", "no/such/dir"], "--mnist-dir not found: no/such/dir"),
    ],
)
def test_reproduce_classification_bad_input(capsys, tmp_path, args, message):
    new = tmp_path / "new"
    r = run_script(capsys, "reproduce_classification.py", "--out", new / "c.md",
                   "--runs", new / "runs", *args)  # fmt: skip
    lines = error_lines(r.err)
    assert r.code == 2 and len(lines) == 1 and message in lines[0], r.err
    assert not new.exists()
