"""Prove every pipeline end to end on one device, in one run, and write docs/results/gpu.md.

Example: python scripts/gpu_check.py --device cuda
Steps: the layer against the CPU (every rank, transposed, eval cache, bf16, coordconvify, the
paired start); Atari A2C trained on the device, loaded where CUDA is hidden, evaluated on the
device and the CPU, exported to ONNX, resumed on the CPU; PPO bf16 with r; DQN with its replay
buffer resumed on the CPU; a Ray study sharing the GPU (gpus_per_run 0.25); one short epoch of
the toy tasks, both detection stages, classification and the GAN; throughput of the device
against this machine's CPU. Each step prints one line as it ends; a failed step is recorded
and the check goes on; exit status 1 if any step failed. The page gets this device type's
section (other sections are kept) and OUT_<device type>.json beside it. --tf32 applies to the
throughput rows; the layer comparisons always run in full fp32, the trainers with their default.
"""

from __future__ import annotations

import argparse
import contextlib
import shlex
import sys
import tempfile
import time
from pathlib import Path

from common.cli import add_device_argument
from common.errors import ArgumentParser, UsageError, check_choice, run_cli


def main() -> int:
    p = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_device_argument(p)
    p.add_argument(
        "--budget",
        default="full",
        help="full (the default): issue #25's sizes, for a GPU (20,000 A2C steps, ...); tiny: "
        "the test suite's (a few hundred steps, a few images)",
    )
    p.add_argument(
        "--steps",
        help="run only these steps (comma-separated; a wrong name lists them all) and the steps "
        "they need",
    )
    p.add_argument("--work", help="folder for the runs (default: a temporary one, removed after)")
    p.add_argument(
        "--out", default="docs/results/gpu.md", help="markdown page to update (docs/results/gpu.md)"
    )
    args = p.parse_args()

    from benchmarks.gpu_check import BUDGETS, run_check, select_steps, write_page
    from common.devices import select_device

    check_choice("--budget", args.budget, BUDGETS)
    names = select_steps(args.steps)
    if args.work is not None and Path(args.work).exists() and not Path(args.work).is_dir():
        raise UsageError(f"--work {args.work} is a file, not a folder")
    if Path(args.out).is_dir():
        raise UsageError(f"--out {args.out} is a folder; give the markdown page's path")
    device = select_device(args.device, args.tf32)
    command = shlex.join(["python", "scripts/gpu_check.py", *sys.argv[1:]])
    print(f"gpu_check on {device}, budget {args.budget}: {len(names)} steps", flush=True)

    def report(r) -> None:
        print(f"{'ok  ' if r.ok else 'FAIL'} {r.name} ({r.seconds:.1f} s): {r.detail}", flush=True)

    start = time.perf_counter()
    with contextlib.ExitStack() as stack:
        if args.work is None:
            work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="gpu_check_")))
        else:
            Path(args.work).mkdir(parents=True, exist_ok=True)
            # A fresh folder per check, so that runs of an earlier check are never resumed.
            work = Path(tempfile.mkdtemp(prefix=f"{device.type}_", dir=args.work))
        results, rows = run_check(device, BUDGETS[args.budget], work, names, report)
    seconds = time.perf_counter() - start
    record = write_page(args.out, device, args.budget, command, results, rows, seconds)
    failed = [r.name for r in results if not r.ok]
    print(
        f"{len(results) - len(failed)} of {len(results)} steps passed in {seconds:.0f} s"
        + (f"; failed: {', '.join(failed)}" if failed else "")
        + f"; {args.out}, {record}"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    run_cli(main)
