"""torchvision's Faster R-CNN sized for 64x64 field-of-MNIST canvases, conv or CoordConv.

Built from torchvision's own parts (FasterRCNN, AnchorGenerator, RPNHead, TwoMLPHead,
FastRCNNPredictor; the RoI pooler is MultiScaleRoIAlign with a fast CPU path,
supervised/detection/roi_align.py). The backbone and the RPN are the release's: 5x5 conv 32, ReLU,
maxpool 2, 5x5 conv 64, ReLU, maxpool 2 (stride 4), an RPN 3x3 conv with 32 channels and 9
anchors. `coordconv` makes CoordConv of the layers the release did: the backbone's input conv,
the RPN's 3x3 conv and the RPN's box-regression conv.
"""

from __future__ import annotations

import torch
from torch import nn
from torchvision.models.detection import FasterRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.models.detection.rpn import RPNHead

from coordconv import CoordConv2d
from supervised.detection.roi_align import RoIAlign

MODELS = ("conv", "coordconv")
NUM_CLASSES = 11  # background + 10 digits: torchvision label = digit + 1
# The release's 9 anchors as (height, width).
ANCHORS_HW = [
    (15, 15),
    (20, 20),
    (25, 25),
    (15, 20),
    (20, 25),
    (20, 15),
    (25, 20),
    (15, 25),
    (25, 15),
]
RPN_CHANNELS = 32


def _conv(coord: bool, *args, **kwargs) -> nn.Conv2d:
    return CoordConv2d(*args, **kwargs) if coord else nn.Conv2d(*args, **kwargs)


def release_anchors() -> AnchorGenerator:
    """One feature map, 9 anchors per location with exactly the release's shapes. torchvision
    builds anchors from sizes x aspect ratios, which cannot give these 9 pairs, so the cell
    anchors it made are replaced (their count, 3 x 3, stays what the RPN head expects)."""
    generator = AnchorGenerator(sizes=((15, 20, 25),), aspect_ratios=((0.75, 1.0, 1.33),))
    cell = torch.tensor([[-w / 2, -h / 2, w / 2, h / 2] for h, w in ANCHORS_HW])
    generator.cell_anchors = [cell]
    return generator


def _rpn_head(coord: bool) -> RPNHead:
    head = RPNHead(RPN_CHANNELS, len(ANCHORS_HW))
    # The release's 3x3 conv maps the 64 backbone channels to 32; RPNHead keeps its width.
    head.conv = nn.Sequential(_conv(coord, 64, RPN_CHANNELS, 3, padding=1), nn.ReLU(inplace=True))
    head.bbox_pred = _conv(coord, RPN_CHANNELS, 4 * len(ANCHORS_HW), 1)
    for layer in (head.conv[0], head.bbox_pred):  # RPNHead's own init for its convs
        nn.init.normal_(layer.weight, std=0.01)
        nn.init.zeros_(layer.bias)
    return head


def build_detector(model: str) -> FasterRCNN:
    """Faster R-CNN for (1, 64, 64) images in [0, 1], 11 classes."""
    if model not in MODELS:
        raise ValueError(f"unknown model {model!r}; valid: {', '.join(MODELS)}")
    coord = model == "coordconv"
    backbone = nn.Sequential(
        _conv(coord, 1, 32, 5, padding=2), nn.ReLU(inplace=True), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 5, padding=2), nn.ReLU(inplace=True), nn.MaxPool2d(2),
    )  # fmt: skip
    backbone.out_channels = 64
    return FasterRCNN(
        backbone,
        num_classes=None,
        min_size=64,  # the canvases are used at their own size
        max_size=64,
        image_mean=[0.0],
        image_std=[1.0],
        rpn_anchor_generator=release_anchors(),
        rpn_head=_rpn_head(coord),
        rpn_pre_nms_top_n_train=600,
        rpn_post_nms_top_n_train=300,
        rpn_pre_nms_top_n_test=300,
        rpn_post_nms_top_n_test=100,
        box_roi_pool=RoIAlign(output_size=7, sampling_ratio=2),
        box_head=TwoMLPHead(64 * 7 * 7, 128),
        box_predictor=FastRCNNPredictor(128, NUM_CLASSES),
        box_batch_size_per_image=128,  # 5 digits a canvas: 128 RoIs hold 32 positives
        box_detections_per_img=20,
    )
