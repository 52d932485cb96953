"""Images for the GAN: the release's two-object `clevr` canvases and the Not-so-Clevr `square`s.

- clevr: 64x64 RGB, a white canvas with one red (255, 0, 0) and one blue (0, 0, 255) object,
  each a filled 21x21 square (centre +- 10) or a filled circle of radius 10 (the pixels within
  distance 10 of the centre), shape drawn at random per object. Centres (x, y) are integers in
  [10, 54), redrawn until the two are at least 20 px apart, as the release's rejection sampler
  did. Red is drawn first, so blue covers it where the two overlap (squares can: the distance
  rule keeps centres apart, not corners).
- square: the 3,136 Not-so-Clevr 9x9 squares (supervised/not_so_clevr.py), one channel: the
  square +1 on a -1 canvas, so 1 and -1 mean the same as in clevr's scaled channels.

Both are scaled to [-1, 1] (the generators end in tanh). clevr keeps only centres and shapes and
draws a batch when asked, so the release's 50,000 images take 1 MB instead of 2.4 GB of floats.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import torch

from common.errors import UsageError, check_at_least, check_choice
from supervised import not_so_clevr

DATASETS = ("clevr", "square")
FULL_SIZE = {"clevr": 50_000, "square": len(not_so_clevr.centres())}
CANVAS = not_so_clevr.CANVAS  # the release draws both datasets on the same 64x64 canvas
HALF_SIDE = 10  # a 21x21 square
RADIUS = 10
CENTRE_LOW, CENTRE_HIGH = 10, 54  # centres drawn from [10, 54), as np.random.randint did
MIN_DISTANCE = 20
# Colours in [0, 1] RGB, in drawing order; index k is object k of `centres`.
COLOURS = {"red": (1.0, 0.0, 0.0), "blue": (0.0, 0.0, 1.0)}


@dataclass(frozen=True)
class GanData:
    """N training images of one dataset, drawn on demand, on the device their tensors are on.

    centres: (N, K, 2) float (x = column, y = row) of each image's K objects (clevr: red, blue;
    square: the square). `batch(index)` gives float images (len(index), channels, 64, 64) in
    [-1, 1]: `paint` applied to the rows `index` of each of `sources`. `to(device)` moves what
    the images are drawn from, so that a batch is drawn where it is used.
    """

    name: str
    centres: torch.Tensor
    channels: int
    sources: tuple[torch.Tensor, ...]
    paint: Callable[..., torch.Tensor]

    def __len__(self) -> int:
        return self.centres.shape[0]

    def batch(self, index: torch.Tensor | list[int] | range) -> torch.Tensor:
        index = torch.as_tensor(index, dtype=torch.long, device=self.centres.device)
        return self.paint(*(source[index] for source in self.sources))

    def to(self, device: torch.device | str) -> GanData:
        """The same data, drawn on `device`."""
        sources = tuple(source.to(device) for source in self.sources)
        return replace(self, centres=self.centres.to(device), sources=sources)


def clevr_layout(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(centres (n, 2, 2) int, circles (n, 2) bool) of `n` clevr images; the same for a seed."""
    rng = np.random.default_rng(seed)
    centres = rng.integers(CENTRE_LOW, CENTRE_HIGH, size=(n, 2, 2))
    close = np.arange(n)
    while True:
        # Only the pairs that break the rule are redrawn: a vectorised rejection sampler.
        gap = centres[close, 0] - centres[close, 1]
        close = close[(gap**2).sum(1) < MIN_DISTANCE**2]
        if len(close) == 0:
            break
        centres[close] = rng.integers(CENTRE_LOW, CENTRE_HIGH, size=(len(close), 2, 2))
    return centres, rng.random((n, 2)) < 0.5


def draw_clevr(centres: torch.Tensor, circles: torch.Tensor) -> torch.Tensor:
    """RGB images (B, 3, 64, 64) in [-1, 1] of objects at `centres` (B, 2, 2), red then blue,
    on the device of `centres` (integer arithmetic in float32: the same pixels on any)."""
    device = centres.device
    grid = torch.arange(CANVAS, dtype=torch.float32, device=device)
    dx = grid[None, None, None, :] - centres[:, :, 0, None, None]  # (B, 2, 1, 64)
    dy = grid[None, None, :, None] - centres[:, :, 1, None, None]  # (B, 2, 64, 1)
    disc = dx**2 + dy**2 <= RADIUS**2
    box = (dx.abs() <= HALF_SIDE) & (dy.abs() <= HALF_SIDE)
    masks = torch.where(circles[:, :, None, None], disc, box)  # (B, 2, 64, 64)
    image = torch.ones(centres.shape[0], 3, CANVAS, CANVAS, device=device)
    for k, colour in enumerate(COLOURS.values()):
        paint = torch.tensor(colour, device=device)[None, :, None, None]
        image = torch.where(masks[:, k, None], paint, image)
    return image * 2 - 1


def make_clevr(n: int, seed: int) -> GanData:
    centres, circles = clevr_layout(n, seed)
    xy = torch.as_tensor(centres, dtype=torch.float32)
    return GanData("clevr", xy, 3, (xy, torch.as_tensor(circles)), draw_clevr)


def _square_images(squares: torch.Tensor) -> torch.Tensor:
    """Bool squares (B, 1, 64, 64) as images in [-1, 1]."""
    return squares.float() * 2 - 1


def make_square(n: int, seed: int) -> GanData:
    """`n` of the 3,136 squares: all of them in the release's order, or a seeded subset."""
    data = not_so_clevr.make_dataset()
    if n < len(data):
        data = data.subset(
            torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))[:n]
        )
    return GanData("square", data.xy[:, None, :], 1, (data.square.bool(),), _square_images)


def load_gan_data(name: str, n: int | None = None, seed: int = 0) -> GanData:
    """`n` images of dataset `name` (None: its full size: clevr 50,000, square 3,136)."""
    check_choice("data", name, DATASETS)
    n = FULL_SIZE[name] if n is None else n
    check_at_least("--images", n)
    if name == "square" and n > FULL_SIZE["square"]:
        raise UsageError(f"--images {n}: square has {FULL_SIZE['square']:,} images")
    return make_clevr(n, seed) if name == "clevr" else make_square(n, seed)
