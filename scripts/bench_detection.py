"""Time a detector training step (forward+backward, batch 16) with torchvision's RoIAlign and
with the separable RoIAlign the detector uses on the CPU (supervised/detection/roi_align.py),
side by side. Updates this device's section of docs/results/detection_speed.md.

--device defaults to cpu here: the separable op is the CPU's pooler. On CUDA the detector
pools with torchvision's kernels, so both columns time the same op and the output says so.
"""

from __future__ import annotations

import sys

from common.cli import add_device_argument
from common.errors import ArgumentParser, check_at_least, run_cli

PREAMBLE = """# Detection training-step speed: torchvision's RoIAlign vs the separable one

Median milliseconds per Faster R-CNN training step (forward+backward, 16 field-of-MNIST
canvases, 128 RoIs per image), the two poolers timed in interleaved rounds on the same batch
and weights (`scripts/bench_detection.py`). On the CPU the detector pools through
`roi_align_separable` (supervised/detection/roi_align.py), equal to torchvision's `roi_align`
to 1e-5 in values and gradients (tests/test_detection.py); on CUDA it uses torchvision's kernels,
so a CUDA section times the same op in both columns: its ratio is noise, not a speed-up.
"""


def main() -> int:
    p = ArgumentParser(description=__doc__)
    add_device_argument(p)
    p.set_defaults(device="cpu")  # the separable op is the CPU's pooler (see above)
    p.add_argument("--batch-size", type=int, default=16, help="canvases per step (16)")
    p.add_argument("--rounds", type=int, default=5, help="interleaved timing rounds (5)")
    p.add_argument("--out", default="docs/results/detection_speed.md", help="markdown to update")
    args = p.parse_args()
    check_at_least("--batch-size", args.batch_size)
    check_at_least("--rounds", args.rounds)

    from benchmarks.detection import markdown_table, summary, time_steps
    from common.devices import select_device
    from common.results import write_benchmark
    from supervised.detection.models import MODELS

    device = select_device(args.device, args.tf32)
    rows = [time_steps(m, device, args.batch_size, args.rounds) for m in MODELS]
    write_benchmark(
        args.out, PREAMBLE, device, "scripts/bench_detection.py", sys.argv[1:],
        markdown_table(rows), summary(rows), rows,
    )  # fmt: skip
    return 0


if __name__ == "__main__":
    run_cli(main)
