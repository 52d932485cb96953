"""The release's detection experiment: a region-proposal network alone, conv or CoordConv.

What uber-research/CoordConv ran for its detection result (train_faster_rcnn.py with
`--arch rpn_sampler` or `coord_rpn_sampler`, model_builder_faster_rcnn.py): no RoI pooling, no
second stage. (1, 64, 64) canvases; the backbone 5x5 conv 32, ReLU, maxpool 2, 5x5 conv 64, ReLU,
maxpool 2 with 'valid' padding (a 13x13 map); an RPN 3x3 conv 32 + ReLU feeding a 1x1
objectness conv and, through a second 3x3 conv 32 + ReLU, a 1x1 box-regression conv; 9
anchors per location, centred at 8 + 4k px as the release's make_anchors_mnist put them; 12
boxes sampled per image (IoU >= 0.5 positive, < 0.1 negative, at most half positive); NMS at
0.8 keeping 10 proposals. `coordconv` adds coordinates where the release did: at the 64x64
input, at the RPN's 3x3 conv and just before the 1x1 regressor (objectness stays plain).
Weights start as the release's: he_normal convolutions, a zero box regressor.

Built from torchvision's RegionProposalNetwork, RPNHead and AnchorGenerator. Where torchvision
and the release differ, torchvision is kept: objectness is one sigmoid logit per anchor (the
release: a 2-way softmax, the same family of scores), the losses are torchvision's (BCE, smooth
L1), boxes are matched to truths by their anchors (the release matched the moved boxes and left
boxes crossing the canvas edge out of the sample), and the sampler fills the 12 with negatives
when positives are short (the release sampled at most 6 negatives).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torchvision.models.detection._utils import BalancedPositiveNegativeSampler
from torchvision.models.detection.image_list import ImageList
from torchvision.models.detection.rpn import RegionProposalNetwork, RPNHead
from torchvision.ops import box_iou

from coordconv.add_coords import DEFAULT_RANGE
from supervised.detection.models import (
    ANCHORS_HW,
    BACKBONE_CHANNELS,
    RPN_CHANNELS,
    CoordRange,
    coord_conv,
    coord_range_of,
    release_anchors,
    release_backbone,
)

FEATURE_SIZE = 13  # 64 -> conv 5 (60) -> pool (30) -> conv 5 (26) -> pool (13)
# The release's receptive-field arithmetic (utils_faster_rcnn.make_anchors_mnist) puts feature
# cell k's centre at 16 / 2 + 4k px: 8, 12, ..., 56.
ANCHOR_CENTRE = 8.0
POSITIVE_IOU = 0.5
NEGATIVE_IOU = 0.1
SAMPLED_PER_IMAGE = 12
NMS_IOU = 0.8
PROPOSALS = 10


class SampleRecorder(BalancedPositiveNegativeSampler):
    """torchvision's positive/negative sampler that keeps its last positive masks, so that the
    sampled boxes can be measured (the sampler is called inside the RPN's loss)."""

    positives: list[torch.Tensor]

    def __call__(
        self, matched_idxs: list[torch.Tensor]
    ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        positives, negatives = super().__call__(matched_idxs)
        self.positives = [p.bool() for p in positives]
        return positives, negatives


class ReleaseRPN(RegionProposalNetwork):
    """torchvision's RegionProposalNetwork with the release's sampler and NMS settings. Through
    its hooks it also keeps the scores of the proposals it returns (`scores`: one (<= 10,)
    tensor per image, best first) and, in training, the mean IoU of the sampled positive boxes
    with their true boxes (`positive_iou`: the release's pos_box_iou_train, a 0-dim tensor on
    the model's device, so that reading it is the caller's choice; None when no box was
    sampled positive)."""

    def __init__(self, head: RPNHead) -> None:
        every_box = FEATURE_SIZE * FEATURE_SIZE * len(ANCHORS_HW)  # NMS sees all 1,521 boxes
        super().__init__(
            release_anchors(ANCHOR_CENTRE),
            head,
            fg_iou_thresh=POSITIVE_IOU,
            bg_iou_thresh=NEGATIVE_IOU,
            batch_size_per_image=SAMPLED_PER_IMAGE,
            positive_fraction=0.5,
            pre_nms_top_n={"training": every_box, "testing": every_box},
            post_nms_top_n={"training": PROPOSALS, "testing": PROPOSALS},
            nms_thresh=NMS_IOU,
        )
        self.fg_bg_sampler = SampleRecorder(SAMPLED_PER_IMAGE, 0.5)
        self.scores: list[torch.Tensor] = []
        self.positive_iou: torch.Tensor | None = None
        self._moved: torch.Tensor | None = None
        self._matched: list[torch.Tensor] = []

    def filter_proposals(self, proposals, objectness, image_shapes, num_anchors_per_level):
        # `proposals` are every anchor moved by the predicted deltas (detached), as the release
        # measured its sampled boxes; torchvision returns the boxes but drops their scores.
        self._moved = proposals
        boxes, self.scores = super().filter_proposals(
            proposals, objectness, image_shapes, num_anchors_per_level
        )
        return boxes, self.scores

    def assign_targets_to_anchors(self, anchors, targets):
        labels, self._matched = super().assign_targets_to_anchors(anchors, targets)
        return labels, self._matched

    def forward(self, images, features, targets=None):
        boxes, losses = super().forward(images, features, targets)
        if self.training:
            self.positive_iou = self._sampled_positive_iou()
        return boxes, losses

    @torch.no_grad()
    def _sampled_positive_iou(self) -> torch.Tensor | None:
        """IoU of each sampled positive moved box with the truth it was matched to, averaged."""
        ious = [
            box_iou(moved[keep], truth[keep]).diagonal()
            for moved, truth, keep in zip(
                self._moved, self._matched, self.fg_bg_sampler.positives, strict=True
            )
        ]
        ious = torch.cat(ious)
        return ious.mean() if len(ious) else None  # the count is known: the mask was applied


def release_rpn_head(coord_range: CoordRange) -> RPNHead:
    """RPNHead rebuilt to the release's layout; RPNHead's forward runs it unchanged (conv ->
    cls_logits, conv -> bbox_pred)."""
    head = RPNHead(RPN_CHANNELS, len(ANCHORS_HW))
    head.conv = nn.Sequential(
        coord_conv(coord_range, BACKBONE_CHANNELS, RPN_CHANNELS, 3, padding=1),
        nn.ReLU(inplace=True),
    )
    # The release's box branch (box_mover) has its own 3x3 conv before the 1x1 regressor.
    head.bbox_pred = nn.Sequential(
        nn.Conv2d(RPN_CHANNELS, RPN_CHANNELS, 3, padding=1),
        nn.ReLU(inplace=True),
        coord_conv(coord_range, RPN_CHANNELS, 4 * len(ANCHORS_HW), 1),
    )
    return head


class RegionProposer(nn.Module):
    """The release's backbone and RPN on a list of (1, 64, 64) images in [0, 1].

    Training (`targets`: dicts with "boxes", xyxy): the RPN's losses, loss_objectness and
    loss_rpn_box_reg; `rpn.positive_iou` holds the sampled positives' IoU. Evaluation: one dict
    per image, "boxes" (<= 10, 4) and "scores" (<= 10,), the proposals left by NMS, best first.
    The canvases are used as they are: no resizing or normalisation, as in the release.
    """

    def __init__(self, backbone: nn.Module, rpn: ReleaseRPN) -> None:
        super().__init__()
        self.backbone = backbone
        self.rpn = rpn

    def forward(
        self, images: list[torch.Tensor], targets: list[dict[str, torch.Tensor]] | None = None
    ) -> dict[str, torch.Tensor] | list[dict[str, torch.Tensor]]:
        batch = torch.stack(images)
        features = {"0": self.backbone(batch)}
        sizes = [tuple(batch.shape[-2:])] * len(images)
        boxes, losses = self.rpn(ImageList(batch, sizes), features, targets)
        if self.training:
            return losses
        return [{"boxes": b, "scores": s} for b, s in zip(boxes, self.rpn.scores, strict=True)]


def _he_normal_(weight: torch.Tensor, fan_in: int, generator: torch.Generator) -> None:
    """Fill `weight` (a slice of a layer's weight) with TF's he_normal, as the release
    initialised its layers: a normal cut at 2 standard deviations, std sqrt(2 / fan_in)."""
    # Drawn into a fresh tensor: how many numbers a fill of a strided slice takes from the
    # generator is torch's business, and the two models' slices have different strides.
    draw = torch.empty(weight.shape)
    nn.init.trunc_normal_(draw, std=1.0, a=-2.0, b=2.0, generator=generator)
    weight.copy_(draw * math.sqrt(2 / fan_in))


def _release_init(net: nn.Module, regressor: nn.Conv2d, generator: torch.Generator) -> None:
    """The release's initialisation: he_normal weights over each layer's whole fan-in
    (coordinates included, as a conv after AddCoords has it), zero biases, and an all-zero box
    regressor, so that training starts from the anchors. The image-channel weights are drawn
    first, layer by layer, and the coordinate weights after them: a conv and a CoordConv model
    built from the same `generator` state start from the same draws for the image channels."""
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    with torch.no_grad():
        for conv in convs:
            _he_normal_(conv.weight[:, : conv.in_channels], conv.weight[0].numel(), generator)
            nn.init.zeros_(conv.bias)
        for conv in convs:
            if conv.weight.shape[1] > conv.in_channels:  # a CoordConv's coordinate weights
                _he_normal_(conv.weight[:, conv.in_channels :], conv.weight[0].numel(), generator)
        nn.init.zeros_(regressor.weight)


def build_proposer(model: str, coord_range: tuple[float, float] = DEFAULT_RANGE) -> RegionProposer:
    """The release's RPN-only model, conv or CoordConv (coordinates in `coord_range`), its
    weights drawn from torch's global generator (seed it for a reproducible model)."""
    coords = coord_range_of(model, coord_range)
    # One draw from the global generator seeds the initialisation, before the layers' own
    # constructors consume different amounts of it in the two models.
    generator = torch.Generator().manual_seed(int(torch.randint(2**62, ())))
    head = release_rpn_head(coords)
    net = RegionProposer(release_backbone(coords, padding=0), ReleaseRPN(head))
    _release_init(net, head.bbox_pred[-1], generator)
    return net
