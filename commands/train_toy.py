"""Train one Not-so-Clevr toy task: conv vs CoordConv on the uniform or quadrant split.

Example: python scripts/train_toy.py --task classification --split quadrant --model coordconv
Stops when the test metric reaches the task's target (classification: accuracy 1.0; rendering:
IoU 1.0; regression: pixel distance below 0.5) unless --no-early-stop. Writes OUT/results.json
(with the device the run used: device, device_model, cuda, cudnn, tf32) and TensorBoard events
in OUT. Defaults per task and model: configs/toy/<task>.yaml.
"""

from __future__ import annotations

from common.cli import settings_from, settings_parser
from common.devices import select_device
from common.errors import run_cli
from supervised.toy.trainer import ToySettings, train_toy


def main() -> int:
    args = settings_parser(ToySettings, __doc__, device=True).parse_args()
    s = settings_from(ToySettings, args)
    s.out = s.out or f"runs/toy/{s.task}_{s.split}_{s.model}_s{s.seed}"
    r = train_toy(s, select_device(args.device, args.tf32))
    metric = r["metric"]
    reached = (
        f"target {r['target']} reached at epoch {r['epochs_to_target']} "
        f"({r['seconds_to_target']:.1f} s)"
        if r["epochs_to_target"]
        else f"target {r['target']} not reached"
    )
    print(
        f"{r['task']}/{r['split']}/{r['model']} ({r['params']:,} params): test {metric} "
        f"{r['test'][metric]:.4f}, train {metric} {r['train'][metric]:.4f} after {r['epochs']} "
        f"epochs, {r['seconds']:.1f} s; {reached}; {s.out}/results.json"
    )
    return 0


def run() -> None:
    """`coordconv-train-toy` on the command line: main() with run_cli's exit statuses."""
    run_cli(main)


if __name__ == "__main__":
    run()
