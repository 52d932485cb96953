"""torchvision's Faster R-CNN sized for 64x64 field-of-MNIST canvases, conv or CoordConv.

Built from torchvision's own parts (FasterRCNN, AnchorGenerator, RPNHead, TwoMLPHead,
FastRCNNPredictor; the RoI pooler is MultiScaleRoIAlign with a fast CPU path,
supervised/detection/roi_align.py). The backbone and the RPN are the release's: 5x5 conv 32, ReLU,
maxpool 2, 5x5 conv 64, ReLU, maxpool 2 (stride 4), an RPN 3x3 conv with 32 channels and 9
anchors. `coordconv` makes CoordConv of the layers the release did: the backbone's input conv,
the RPN's 3x3 conv and the RPN's box-regression conv, with coordinates in `coord_range`.
The backbone and anchors are shared with the RPN-only model (supervised/detection/rpn.py).
"""

from __future__ import annotations

import torch
from torch import nn
from torchvision.models.detection import FasterRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.models.detection.rpn import RPNHead

from coordconv import CoordConv2d
from coordconv.add_coords import DEFAULT_RANGE
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
BACKBONE_CHANNELS = 64
CoordRange = tuple[float, float] | None  # None: plain convolutions


def coord_conv(coord_range: CoordRange, *args, **kwargs) -> nn.Conv2d:
    """nn.Conv2d(*args, **kwargs), or CoordConv2d with coordinates in `coord_range`."""
    if coord_range is None:
        return nn.Conv2d(*args, **kwargs)
    return CoordConv2d(*args, coord_range=coord_range, **kwargs)


def coord_range_of(model: str, coord_range: tuple[float, float]) -> CoordRange:
    """The coordinate range `model` uses: None for conv."""
    if model not in MODELS:
        raise ValueError(f"unknown model {model!r}; valid: {', '.join(MODELS)}")
    return coord_range if model == "coordconv" else None


def release_backbone(coord_range: CoordRange, padding: int) -> nn.Sequential:
    """The release's 5x5 conv 32, ReLU, maxpool 2, 5x5 conv 64, ReLU, maxpool 2 (stride 4), the
    first conv CoordConv when `coord_range` is given. padding 2 keeps 64x64 -> 16x16 ('same');
    0 is the release's 'valid' (64x64 -> 13x13)."""
    backbone = nn.Sequential(
        coord_conv(coord_range, 1, 32, 5, padding=padding), nn.ReLU(inplace=True), nn.MaxPool2d(2),
        nn.Conv2d(32, BACKBONE_CHANNELS, 5, padding=padding), nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
    )  # fmt: skip
    backbone.out_channels = BACKBONE_CHANNELS
    return backbone


def release_anchors(centre: float = 0.0) -> AnchorGenerator:
    """One feature map, 9 anchors per location with exactly the release's shapes, the first
    location's anchors centred at (`centre`, `centre`) px. torchvision builds anchors from sizes
    x aspect ratios, which cannot give these 9 pairs, so the cell anchors it made are replaced
    (their count, 3 x 3, stays what the RPN head expects); it shifts them by the stride,
    image size // map size, from there."""
    generator = AnchorGenerator(sizes=((15, 20, 25),), aspect_ratios=((0.75, 1.0, 1.33),))
    cell = torch.tensor([[-w / 2, -h / 2, w / 2, h / 2] for h, w in ANCHORS_HW]) + centre
    generator.cell_anchors = [cell]
    return generator


def _rpn_head(coord_range: CoordRange) -> RPNHead:
    head = RPNHead(RPN_CHANNELS, len(ANCHORS_HW))
    # The release's 3x3 conv maps the 64 backbone channels to 32; RPNHead keeps its width.
    head.conv = nn.Sequential(
        coord_conv(coord_range, BACKBONE_CHANNELS, RPN_CHANNELS, 3, padding=1),
        nn.ReLU(inplace=True),
    )
    head.bbox_pred = coord_conv(coord_range, RPN_CHANNELS, 4 * len(ANCHORS_HW), 1)
    for layer in (head.conv[0], head.bbox_pred):  # RPNHead's own init for its convs
        nn.init.normal_(layer.weight, std=0.01)
        nn.init.zeros_(layer.bias)
    return head


def build_detector(model: str, coord_range: tuple[float, float] = DEFAULT_RANGE) -> FasterRCNN:
    """Faster R-CNN for (1, 64, 64) images in [0, 1], 11 classes; `coord_range` is where the
    CoordConv layers of `coordconv` put their coordinates."""
    coords = coord_range_of(model, coord_range)
    return FasterRCNN(
        release_backbone(coords, padding=2),
        num_classes=None,
        min_size=64,  # the canvases are used at their own size
        max_size=64,
        image_mean=[0.0],
        image_std=[1.0],
        rpn_anchor_generator=release_anchors(),
        rpn_head=_rpn_head(coords),
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
