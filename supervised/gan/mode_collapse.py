"""A measured mode collapse for GANs on clevr and square: validity, coverage and JS divergence.

The paper shows mode collapse only in pictures; this module puts three numbers on it by finding
the objects in images and comparing where they are with where the real data puts them.

Finding objects. Images are read in [0, 1] ((x + 1) / 2 of the [-1, 1] images).
- clevr: a pixel is red when R > 0.5, G < 0.5 and B < 0.5; blue when B > 0.5, R < 0.5 and
  G < 0.5 (the white canvas has all three above 0.5). square: a pixel is on when > 0.5.
- Each colour's mask is split into 8-connected components (scipy.ndimage.label). Components
  under a tenth of the smallest object's area are ignored as noise; every other one counts as
  an object. An object is plausible when its area lies in [0.5 x, 1.5 x] the true objects'
  areas (clevr: 317 px circle, 441 px square; square: 81 px) and its bounding box's height and
  width in [0.5 x, 1.5 x] the true side (clevr 21, square 9): room for clevr's occlusions and
  soft edges, none for a stripe or a smear of the right colour.
- An object's centre is the mean (x, y) of its pixels.

The three numbers, over a set of generated images and against a reference made the same way
from real images:
1. validity: the fraction of images with exactly the objects the data has (clevr: one red and
   one blue object, square: one object), each plausible.
2. coverage: the canvas is cut into an 8x8 grid of 8-pixel cells. Per colour, the cells that
   real centres reach and that generated centres also reach, as a fraction of the cells real
   centres reach; the mean over colours. 1 = every real position is produced somewhere; a
   generator that draws each object in one place scores 1/36 on clevr (real centres, 10..53,
   reach 6 x 6 cells).
3. js: per colour, the Jensen-Shannon divergence (base 2, so in [0, 1]) between the real and the
   generated histograms of centres over the 64 cells; the mean over colours. 0 = the same
   spatial distribution, 1 = disjoint or nothing generated.

A colour's centre enters its histogram when the image has exactly one plausible object of that
colour, whatever the other colour does: coverage and js then describe where each object is
drawn, and a generator that already places blue objects well but no red ones gets credit for
the blue. Finite samples keep js of real data above 0 (about 0.008 for 1,000 clevr images
against 10,000); compare with the report's held-out real-data row.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import torch
from scipy import ndimage

from supervised.gan.data import CANVAS, HALF_SIDE, RADIUS
from supervised.not_so_clevr import HALF_SIDE as SQUARE_HALF_SIDE

THRESHOLD = 0.5
GRID = 8  # cells per side
CELL = CANVAS // GRID
_OFFSETS = np.arange(-RADIUS, RADIUS + 1) ** 2
CIRCLE_AREA = int((_OFFSETS[:, None] + _OFFSETS[None, :] <= RADIUS**2).sum())
OBJECT_AREAS = {
    "clevr": (CIRCLE_AREA, (2 * HALF_SIDE + 1) ** 2),  # 317, 441
    "square": ((2 * SQUARE_HALF_SIDE + 1) ** 2,) * 2,  # 81
}
OBJECT_SIDE = {"clevr": 2 * HALF_SIDE + 1, "square": 2 * SQUARE_HALF_SIDE + 1}  # bounding box
# 8-connectivity inside each image, none across the batch axis: one label call for a batch.
_PER_IMAGE = np.zeros((3, 3, 3), dtype=bool)
_PER_IMAGE[1] = True


@dataclass(frozen=True)
class Located:
    """What was found in N images with K object colours: found (N, K) bool, exactly one
    plausible object of the colour; centres (N, K, 2) its (x, y), NaN where not found."""

    found: np.ndarray
    centres: np.ndarray

    @property
    def valid(self) -> np.ndarray:
        """(N,) bool: every colour found, so the image has exactly the data's objects."""
        return self.found.all(axis=1)


def colour_masks(images: torch.Tensor | np.ndarray, data: str) -> np.ndarray:
    """(N, K, 64, 64) bool: the pixels of each object colour, for images in [-1, 1]."""
    p = (np.asarray(images, dtype=np.float32) + 1) / 2
    if data == "square":
        return p > THRESHOLD
    r, g, b = (p[:, c] > THRESHOLD for c in range(3))
    return np.stack([r & ~g & ~b, b & ~r & ~g], axis=1)


def _one_colour(mask: np.ndarray, data: str) -> tuple[np.ndarray, np.ndarray]:
    """(ok (N,), centre (N, 2)) for a (N, 64, 64) mask: ok when exactly one object, plausible."""
    n = mask.shape[0]
    ok, centre = np.zeros(n, dtype=bool), np.full((n, 2), np.nan)
    labels, count = ndimage.label(mask, structure=_PER_IMAGE)
    if count == 0:
        return ok, centre
    index = np.arange(1, count + 1)
    area = ndimage.sum_labels(mask, labels, index)
    # The centre of mass in (image, row, column): its first coordinate names the image.
    image, y, x = np.asarray(ndimage.center_of_mass(mask, labels, index)).T
    owner = image.round().astype(int)
    boxes = ndimage.find_objects(labels)
    height = np.array([b[1].stop - b[1].start for b in boxes])
    width = np.array([b[2].stop - b[2].start for b in boxes])
    areas, side = OBJECT_AREAS[data], OBJECT_SIDE[data]
    kept = area >= min(areas) // 10
    plausible = (area >= 0.5 * min(areas)) & (area <= 1.5 * max(areas))
    for extent in (height, width):
        plausible &= (extent >= 0.5 * side) & (extent <= 1.5 * side)
    objects = np.bincount(owner[kept], minlength=n)
    implausible = np.bincount(owner[kept & ~plausible], minlength=n)
    ok = (objects == 1) & (implausible == 0)
    single = kept & ok[owner]
    centre[owner[single]] = np.stack([x[single], y[single]], axis=1)
    return ok, centre


def locate(images: torch.Tensor | np.ndarray, data: str) -> Located:
    """Find the objects of `data` (clevr or square) in images (N, C, 64, 64) in [-1, 1]."""
    masks = colour_masks(images, data)
    found = [_one_colour(masks[:, k], data) for k in range(masks.shape[1])]
    return Located(np.stack([ok for ok, _ in found], 1), np.stack([c for _, c in found], 1))


def cell_histograms(located: Located) -> np.ndarray:
    """(K, 64) counts of found centres per colour and grid cell (row-major)."""
    histograms = []
    for k in range(located.found.shape[1]):
        cells = np.clip(located.centres[located.found[:, k], k] // CELL, 0, GRID - 1).astype(int)
        histograms.append(np.bincount(cells[:, 1] * GRID + cells[:, 0], minlength=GRID * GRID))
    return np.stack(histograms)


def js_divergence(p: np.ndarray, q: np.ndarray) -> float:
    """Jensen-Shannon divergence in bits between two count vectors (1 if either is empty)."""
    if p.sum() == 0 or q.sum() == 0:
        return 1.0
    p, q = p / p.sum(), q / q.sum()
    m = (p + q) / 2

    def kl(a: np.ndarray) -> float:
        nz = a > 0
        return float((a[nz] * np.log2(a[nz] / m[nz])).sum())

    return max(0.0, (kl(p) + kl(q)) / 2)


@dataclass(frozen=True)
class Reference:
    """The real data's centre histograms (K, 64) that generated images are compared with."""

    data: str
    histograms: np.ndarray


def reference(batches: Iterable[torch.Tensor | np.ndarray], data: str) -> Reference:
    """Measure real images, given in batches to bound memory; pass it to `collapse_scores`."""
    return Reference(data, sum(cell_histograms(locate(images, data)) for images in batches))


def collapse_scores(images: torch.Tensor | np.ndarray, ref: Reference) -> dict[str, float]:
    """validity, coverage and js (see the module docstring) of `images` against `ref`."""
    located = locate(images, ref.data)
    generated = cell_histograms(located)
    coverage = [((g > 0) & (r > 0)).sum() / max((r > 0).sum(), 1)
                for g, r in zip(generated, ref.histograms, strict=True)]  # fmt: skip
    js = [js_divergence(r, g) for g, r in zip(generated, ref.histograms, strict=True)]
    return {
        "validity": float(located.valid.mean()) if len(located.valid) else 0.0,
        "coverage": float(np.mean(coverage)),
        "js": float(np.mean(js)),
    }
