"""RoIAlign whose CPU backward is fast: the RoI heads' pooler for the detector.

torchvision's CPU `roi_align` backward scatters one sample at a time on one thread; on 64x64
canvases with 128 RoIs per image it was most of a training step. RoIAlign with a fixed sampling
ratio is separable: each output bin averages bilinear samples on a regular grid, so it is
`Wy @ F @ Wx^T` with per-RoI interpolation matrices along y and x, and its backward is two more
matrix products. `roi_align_separable` computes exactly that (torchvision's aligned=False rules,
edge clamping included); tests/test_detection.py checks values and gradients against
torchvision's op; scripts/bench_detection.py times both (docs/results/detection_speed.md).
On CUDA the pooler defers to torchvision's `MultiScaleRoIAlign`, whose kernels are fast there.
"""

from __future__ import annotations

import torch
from torchvision.ops import MultiScaleRoIAlign


def _axis_weights(
    start: torch.Tensor, end: torch.Tensor, size: int, out: int, ratio: int
) -> torch.Tensor:
    """(R, out, size): each output bin's weights over one axis of the feature map."""
    steps = (torch.arange(out * ratio, device=start.device, dtype=start.dtype) + 0.5) / ratio
    pos = start[:, None] + steps * ((end - start).clamp(min=1) / out)[:, None]
    # roi_align reads 0 beyond one cell outside the map and clamps to the edge up to there.
    inside = ((pos >= -1) & (pos <= size)).to(pos.dtype)
    pos = pos.clamp(min=0)
    low = pos.floor().clamp(max=size - 1)
    frac = torch.where(low >= size - 1, torch.zeros_like(pos), pos - low)
    low = low.long()
    high = (low + 1).clamp(max=size - 1)
    weights = torch.zeros(*pos.shape, size, device=pos.device, dtype=pos.dtype)
    weights.scatter_add_(2, low[..., None], ((1 - frac) * inside)[..., None])
    weights.scatter_add_(2, high[..., None], (frac * inside)[..., None])
    return weights.view(len(start), out, ratio, size).mean(2)


def roi_align_separable(
    features: torch.Tensor, boxes: list[torch.Tensor], output_size: int, scale: float, ratio: int
) -> torch.Tensor:
    """torchvision.ops.roi_align(features, boxes, output_size, scale, ratio, aligned=False)."""
    _, _, height, width = features.shape
    pooled = []
    for image, b in zip(features, boxes, strict=True):
        x1, y1, x2, y2 = (b.detach() * scale).unbind(1)
        wy = _axis_weights(y1, y2, height, output_size, ratio)
        wx = _axis_weights(x1, x2, width, output_size, ratio)
        rows = torch.einsum("rph,chw->rcpw", wy, image)
        pooled.append(torch.einsum("rcpw,rqw->rcpq", rows, wx))
    return torch.cat(pooled)


class RoIAlign(MultiScaleRoIAlign):
    """MultiScaleRoIAlign for one feature map ("0"), through roi_align_separable on the CPU."""

    def __init__(self, output_size: int = 7, sampling_ratio: int = 2) -> None:
        super().__init__(["0"], output_size, sampling_ratio)

    def forward(
        self,
        x: dict[str, torch.Tensor],
        boxes: list[torch.Tensor],
        image_shapes: list[tuple[int, int]],
    ) -> torch.Tensor:
        features = x["0"]
        if features.device.type != "cpu":
            return super().forward(x, boxes, image_shapes)
        # The feature map's stride, inferred as MultiScaleRoIAlign does: a power of 2.
        size = max(max(s) for s in image_shapes)
        scale = 2.0 ** round(torch.log2(torch.tensor(features.shape[-1] / size)).item())
        return roi_align_separable(features, boxes, self.output_size[0], scale, self.sampling_ratio)
