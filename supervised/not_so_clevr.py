"""Not-so-Clevr: every position of one 9x9 square on a 64x64 canvas, and the release's splits.

Example k has centre x (column) and y (row) in 4..59, enumerated x outer, y inner, as the
authors' generator did: 56 * 56 = 3,136 examples. Everything is made in memory in milliseconds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

CANVAS = 64
HALF_SIDE = 4  # a 9x9 square: centre +- 4, inclusive
CENTRES = np.arange(HALF_SIDE, CANVAS - HALF_SIDE)  # 4..59
UNIFORM_SEED = 20202
UNIFORM_TEST_PROBABILITY = 0.25
QUADRANT_CUT = 32  # test iff x > 32 and y > 32: the bottom-right quadrant as displayed
SPLITS = ("uniform", "quadrant")


@dataclass(frozen=True)
class NotSoClevr:
    """All examples as tensors on one device (N = 3,136).

    xy: (N, 2) float, the raw pixel centre (x, y); onehot: (N, 1, 64, 64), 1 at [y, x];
    square: (N, 1, 64, 64), the binary 9x9 square; target: (N, 2), (x, y) / 64;
    label: (N,) long, the flat pixel index y * 64 + x.
    """

    xy: torch.Tensor
    onehot: torch.Tensor
    square: torch.Tensor
    target: torch.Tensor
    label: torch.Tensor

    def __len__(self) -> int:
        return self.xy.shape[0]

    def subset(self, index: torch.Tensor) -> NotSoClevr:
        """The examples at `index`, in that order."""
        return NotSoClevr(
            *(t[index] for t in (self.xy, self.onehot, self.square, self.target, self.label))
        )


def centres() -> np.ndarray:
    """(3136, 2) int array of (x, y), x outer, y inner."""
    x, y = np.meshgrid(CENTRES, CENTRES, indexing="ij")
    return np.stack([x.ravel(), y.ravel()], axis=1)


def make_dataset(device: torch.device | str = "cpu") -> NotSoClevr:
    """Build every example directly on `device`."""
    xy = torch.as_tensor(centres(), device=device)
    x, y = xy[:, 0], xy[:, 1]
    n = xy.shape[0]
    label = y * CANVAS + x
    onehot = torch.zeros(n, CANVAS * CANVAS, device=device)
    onehot[torch.arange(n, device=device), label] = 1.0
    grid = torch.arange(CANVAS, device=device)
    rows = (grid[None, :] - y[:, None]).abs() <= HALF_SIDE  # (N, 64) rows the square covers
    cols = (grid[None, :] - x[:, None]).abs() <= HALF_SIDE
    square = (rows[:, :, None] & cols[:, None, :]).float()
    return NotSoClevr(
        xy=xy.float(),
        onehot=onehot.view(n, 1, CANVAS, CANVAS),
        square=square.unsqueeze(1),
        target=xy.float() / CANVAS,
        label=label,
    )


def held_out_mask(split: str) -> np.ndarray:
    """Boolean (3136,) mask of the test examples of `split`, exactly as the release drew them."""
    xy = centres()
    if split == "uniform":
        # The release's own draw: the legacy global generator, one rand() per example in order.
        rng = np.random.RandomState(UNIFORM_SEED)
        return rng.rand(len(xy)) < UNIFORM_TEST_PROBABILITY
    if split == "quadrant":
        return (xy[:, 0] > QUADRANT_CUT) & (xy[:, 1] > QUADRANT_CUT)
    raise ValueError(f"unknown split {split!r}; valid: {', '.join(SPLITS)}")


def split_dataset(data: NotSoClevr, split: str) -> tuple[NotSoClevr, NotSoClevr]:
    """(train, test) subsets of `data` for `split`."""
    mask = torch.as_tensor(held_out_mask(split), device=data.xy.device)
    return data.subset(torch.nonzero(~mask).squeeze(1)), data.subset(torch.nonzero(mask).squeeze(1))
