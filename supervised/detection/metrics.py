"""Detection measures: the paper's IoU and the digit accuracy of matched boxes (mAP: torchmetrics)
for the detector; for the region proposals, the release's IoUs on the proposals left by NMS."""

from __future__ import annotations

import torch
from torchvision.ops import box_iou

MATCH_IOU = 0.5  # a detection matches a digit at this IoU or more (class accuracy)
# An image's kept detections are its KEEP highest-scoring ones, the number of digits placed on
# a canvas: a detector gains nothing by spraying low-scoring boxes, and the measure does not
# hinge on how its scores are calibrated (a score threshold would, early in training).
KEEP = 5


def best_ious(
    pred_boxes: torch.Tensor, true_boxes: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """For each true box, the IoU of its best-overlapping detection (0 with no detections) and
    that detection's index (-1 with none)."""
    if len(pred_boxes) == 0 or len(true_boxes) == 0:
        n = len(true_boxes)
        return torch.zeros(n), torch.full((n,), -1, dtype=torch.long)
    iou, index = box_iou(true_boxes, pred_boxes).max(1)
    return iou, index


def kept(pred: dict[str, torch.Tensor], keep: int = KEEP) -> dict[str, torch.Tensor]:
    """The `keep` highest-scoring detections (all of them when there are fewer)."""
    if "scores" not in pred:
        return pred
    order = pred["scores"].argsort(descending=True)[:keep]
    return {k: v[order] for k, v in pred.items()}


def detection_scores(
    predictions: list[dict[str, torch.Tensor]],
    targets: list[dict[str, torch.Tensor]],
    keep: int = KEEP,
) -> dict[str, float]:
    """mean_iou: the paper's measure, each ground-truth digit's best IoU with a kept detection,
    averaged over digits; class_accuracy: among digits matched at IoU >= MATCH_IOU, the
    fraction whose best kept detection has the right class."""
    ious, correct, matched = [], 0, 0
    for pred, true in zip(predictions, targets, strict=True):
        pred = kept(pred, keep)
        iou, index = best_ious(pred["boxes"], true["boxes"])
        ious.append(iou)
        hit = iou >= MATCH_IOU
        matched += int(hit.sum())
        correct += (
            int((pred["labels"][index[hit]] == true["labels"][hit]).sum()) if hit.any() else 0
        )
    all_ious = torch.cat(ious) if ious else torch.zeros(0)
    return {
        "mean_iou": all_ious.mean().item() if len(all_ious) else 0.0,
        "class_accuracy": correct / matched if matched else 0.0,
    }


def proposal_scores(
    predictions: list[dict[str, torch.Tensor]],
    targets: list[dict[str, torch.Tensor]],
    keep: int = KEEP,
) -> dict[str, float]:
    """The release's measures on each image's proposals ("boxes", as NMS left them) against its
    true boxes, averaged over images: mean_nms_iou, the mean of the whole proposals x truths
    IoU matrix; mean_argmax_nms_iou, each proposal's best IoU with any truth, averaged over
    proposals. Beside them mean_iou, the paper's measure as `detection_scores` takes it (each
    true digit's best IoU with one of the `keep` highest-scoring proposals). An image without
    true boxes has no matrix and is left out of the release's two; one without proposals
    counts 0 in them."""
    per_digit, nms, argmax = [], [], []
    for pred, true in zip(predictions, targets, strict=True):
        per_digit.append(best_ious(kept(pred, keep)["boxes"], true["boxes"])[0])
        if len(true["boxes"]) == 0:
            continue
        if len(pred["boxes"]) == 0:
            nms.append(0.0)
            argmax.append(0.0)
            continue
        matrix = box_iou(pred["boxes"], true["boxes"])  # proposals x truths
        nms.append(matrix.mean().item())
        argmax.append(matrix.max(1).values.mean().item())
    digits = torch.cat(per_digit) if per_digit else torch.zeros(0)
    mean = lambda v: sum(v) / len(v) if len(v) else 0.0  # noqa: E731
    return {
        "mean_iou": digits.mean().item() if len(digits) else 0.0,
        "mean_nms_iou": mean(nms),
        "mean_argmax_nms_iou": mean(argmax),
    }
