"""Time CoordConv2d against nn.Conv2d and a naive concat CoordConv, forward+backward.

Writes a section for this device into docs/results/layers.md (other devices' sections are kept)
and the raw numbers into docs/results/layers_<device>.json.
"""

from __future__ import annotations

import sys

from common.cli import add_device_argument
from common.errors import ArgumentParser, UsageError, run_cli

PREAMBLE = """# CoordConv layer speed

Forward+backward time per batch, median over interleaved rounds measured side by side in one
process (`scripts/bench_layers.py`). `CoordConv2d` adds the coordinate term as one batch-size-1
bias map; `naive concat` is the popular ports' way (coordinates concatenated to every example).

Where the input has no more channels than the coordinates (the toy 1x1 2->32 layer), the naive
concat is cheap and the split's two fixed extra passes (adding the bias map, and summing its
gradient over the batch) show; on the Atari and 3x3 layers the split wins clearly.
"""


def main() -> int:
    parser = ArgumentParser(description=__doc__)
    add_device_argument(parser)
    parser.add_argument("--rounds", type=int, default=7, help="interleaved timing rounds per layer")
    parser.add_argument("--iters", type=int, default=10, help="forward+backward passes per round")
    parser.add_argument("--seed", type=int, default=0, help="seed for inputs and weights")
    parser.add_argument("--out", default="docs/results/layers.md", help="markdown file to update")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    args = parser.parse_args()
    if args.rounds < 1 or args.iters < 1:
        raise UsageError(f"--rounds and --iters must be >= 1, got {args.rounds} and {args.iters}")

    from tqdm import tqdm

    from benchmarks.layers import CASES, markdown_table, time_case
    from common.devices import resolve_device
    from common.results import write_benchmark

    device = resolve_device(args.device)
    cases = tqdm(CASES, desc="layers", disable=args.no_progress)
    rows = [time_case(c, device, args.rounds, args.iters, args.seed) for c in cases]
    atari = rows[0]
    table = markdown_table(rows)
    summary = (
        f"Atari first layer: CoordConv2d / Conv2d = {atari['coordconv_over_conv']:.3f} "
        f"(naive concat / Conv2d = {atari['naive_over_conv']:.3f})"
    )
    write_benchmark(
        args.out, PREAMBLE, device, "scripts/bench_layers.py", sys.argv[1:], table, summary, rows
    )
    return 0


if __name__ == "__main__":
    run_cli(main)
