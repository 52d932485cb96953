"""Time CoordConv2d against nn.Conv2d, a naive concat CoordConv and a `coordconvify`d conv:
forward+backward in train mode, and forward only in eval mode under no_grad.

Writes a section for this device into docs/results/layers.md (other devices' sections are kept)
and the raw numbers into docs/results/layers_<device>.json.
"""

from __future__ import annotations

import shlex
import sys

from common.cli import add_device_argument
from common.errors import ArgumentParser, UsageError, run_cli

PREAMBLE = """# CoordConv layer speed

Time per batch, median over interleaved rounds measured side by side in one process
(`scripts/bench_layers.py`): forward+backward in train mode, and forward only in eval mode under
`torch.no_grad`. `naive concat` is the popular ports' way (coordinates concatenated to every
example, then one convolution).

`CoordConv2d` picks its path once per layer (coordconv/layers.py): a pointwise layer (kernel 1,
stride 1, no padding; the toy rows) is one batched matrix product (`torch.baddbmm`) with the
coordinate term plus the bias as its addend; every other layer runs conv(x, W_x) without bias
and adds the coordinate term plus the bias, computed at batch size 1, in place, and in training
takes the term's gradient (the batch sum of the output's) as one matrix product with a row of
ones, which the bias's gradient then shares. In eval mode under no_grad the coordinate term is
cached between calls (keyed by shape, device, dtype and the weights' storage and version), so
the forward-only rows pay for the addition only. Where the pointwise path beats `Conv2d`, the
reason is the plain 1x1 convolution's own CPU kernel, slower here than a GEMM.

`coordconvify` is the layer that `coordconvify(nn.Conv2d(...))` makes: it keeps the plain
convolution's rounding (the bias inside the convolution, no pointwise product) so that it
computes the replaced layer's outputs bit for bit, and so shows what the faster paths buy.
Timings move between processes: the Atari layer's plain forward takes about 14 ms where
glibc's malloc gives each freed output back to the kernel, so that every call faults its pages
in again, and about 7 ms where malloc keeps them (measured with `MALLOC_MMAP_THRESHOLD_` and
`MALLOC_TRIM_THRESHOLD_` set high); without those settings a process may get either. So
`--repeats K` runs the whole measurement K times, each in a fresh process: each time is then
the median over the repeats, and each ratio the median of the repeats' own ratios, with their
range in brackets (so a ratio need not equal the ratio of the medians). The forward-only rows'
remaining cost is the one addition, a pass over the output that a plain convolution does not
make.
"""


def _time_all(job: tuple) -> list[dict]:
    from benchmarks.layers import time_all

    return time_all(*job)


def main() -> int:
    parser = ArgumentParser(description=__doc__)
    add_device_argument(parser)
    parser.add_argument("--rounds", type=int, default=7, help="interleaved timing rounds per layer")
    parser.add_argument("--iters", type=int, default=10, help="timed steps per variant per round")
    parser.add_argument("--seed", type=int, default=0, help="seed for inputs and weights")
    parser.add_argument("--out", default="docs/results/layers.md", help="markdown file to update")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.add_argument(
        "--threads",
        type=int,
        default=0,
        help="torch CPU threads (0: torch's default); 1 keeps a loaded machine's ratios steady",
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=1,
        help="whole measurements, each in a fresh process; the page gives medians and each "
        "ratio's range over them",
    )
    parser.add_argument(
        "--note", default="", help="a remark on the conditions, printed beside the machine"
    )
    args = parser.parse_args()
    if args.rounds < 1 or args.iters < 1:
        raise UsageError(f"--rounds and --iters must be >= 1, got {args.rounds} and {args.iters}")
    if args.repeats < 1:
        raise UsageError(f"--repeats must be >= 1, got {args.repeats}")
    if args.threads < 0:
        raise UsageError(f"--threads must be >= 0, got {args.threads}")

    import multiprocessing

    import torch
    from tqdm import tqdm

    from benchmarks.layers import MODES, combine, markdown_table
    from common.devices import select_device
    from common.results import write_benchmark

    if args.threads:
        torch.set_num_threads(args.threads)  # here for the page's machine line; each repeat too
    # TF32 here for the page's machine line; each repeat's fresh process sets it again.
    device = select_device(args.device, args.tf32)
    job = (str(device), args.rounds, args.iters, args.seed, args.threads, args.tf32)
    # maxtasksperchild=1: every repeat gets a process of its own.
    context = multiprocessing.get_context("spawn")
    with context.Pool(1, maxtasksperchild=1) as pool:
        runs = list(
            tqdm(
                pool.imap(_time_all, [job] * args.repeats),
                total=args.repeats,
                desc="repeats",
                disable=args.no_progress,
            )
        )
    rows = combine(runs)
    train, forward = (next(r for r in rows if r["mode"] == mode) for mode in MODES)
    table = markdown_table(rows)
    summary = (
        f"Atari first layer: CoordConv2d / Conv2d = {train['coordconv_over_conv']:.3f} "
        f"(naive concat / Conv2d = {train['naive_over_conv']:.3f}); "
        f"forward only: {forward['coordconv_over_conv']:.3f}"
    )
    note = f"; {args.note}" if args.note else ""
    argv = [shlex.quote(a) for a in sys.argv[1:]]  # the page's command must be runnable as shown
    write_benchmark(
        args.out, PREAMBLE, device, "scripts/bench_layers.py", argv, table, summary, rows, note=note
    )
    return 0


if __name__ == "__main__":
    run_cli(main)
