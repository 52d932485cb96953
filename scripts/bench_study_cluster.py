"""A tiny Atari study on a Ray cluster of this machine's nodes (a head without CPUs, two 1-CPU
workers) with one worker lost between its run's first and second checkpoints, against the same
study on one node (a local Ray over this machine's cores) and on the cluster with no loss: wall
times and the lost node's timeline. Updates its section of docs/results/study_scale.md (harness:
benchmarks/study_cluster.py).
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from common.errors import ArgumentParser, UsageError, run_cli

PREAMBLE = """# Studies at cluster scale: the plan, and a lost node

What atari9 costs, from `scripts/study.py configs/studies/atari9.yaml --dry-run` (its section
below is written by hand from that command's output), and what losing a node costs a study.

`scripts/bench_study_cluster.py` runs one tiny study in four setups, one after another (a
round; the next round goes in the opposite order), each in a fresh folder and each as a user
runs it (`scripts/study.py` in a subprocess): on a local Ray the study starts over this
machine's cores; joined with `--address` to a `ray.cluster_utils.Cluster` of one node (a head
with two CPUs); to a cluster of a head without CPUs and two worker nodes of one CPU each; and to
that cluster with the worker of the first run to save a checkpoint removed without grace
(`remove_node(allow_graceful=False)`: its raylet killed, its workers exit with it) when that run
is halfway to its next checkpoint (by default; by its speed), and a fresh one-CPU node joining
in its place. The head notices a dead node within about a second (health checks every 0.5 s,
two missed; Ray's default is 15 s). Ray retries the lost run's task, which resumes the run from
its newest checkpoint. Wall times run from starting the study to its exit, report included; a
cluster's own start is not counted, a local Ray's is.
"""


PART = "A lost node"


def main() -> int:
    p = ArgumentParser(description=__doc__)
    p.add_argument("--timesteps", type=int, default=2000, help="agent steps per run (2000)")
    p.add_argument("--checkpoint-freq", type=int, default=500, help="steps between checkpoints")
    p.add_argument("--seeds", type=int, default=2, help="seeds per extractor (2: four runs)")
    p.add_argument(
        "--lose-at",
        type=float,
        default=0.5,
        help="lose the node this far into a checkpoint interval past the first checkpoint (0.5)",
    )
    p.add_argument("--rounds", type=int, default=2, help="studies of each setup (2)")
    p.add_argument("--timeout", type=float, default=900, help="seconds a study may take")
    p.add_argument("--out", default="docs/results/study_scale.md", help="markdown to update")
    args = p.parse_args()
    if min(args.timesteps, args.checkpoint_freq, args.seeds, args.rounds) < 1:
        raise UsageError("--timesteps, --checkpoint-freq, --seeds and --rounds must be >= 1")
    if not 0 <= args.lose_at < 1:
        raise UsageError(f"--lose-at must be in [0, 1), got {args.lose_at}")
    if args.checkpoint_freq >= args.timesteps:
        raise UsageError(
            f"--checkpoint-freq must be below --timesteps ({args.timesteps}) for a run to "
            f"save a checkpoint before it ends, got {args.checkpoint_freq}"
        )

    import torch
    import yaml

    from benchmarks.study_cluster import markdown, measure, write_spec
    from common.results import write_benchmark

    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench_study_cluster_") as tmp:
        work = Path(tmp)
        spec = write_spec(work, args.timesteps, args.checkpoint_freq, args.seeds)
        rows = measure(spec, work, args.timeout, args.lose_at, args.rounds)
        spec_data = yaml.safe_load(spec.read_text())
    table = markdown(rows, spec_data)
    summary = (
        f"Study: Breakout, A2C (n_envs 2), conv and coordconv x {args.seeds} seeds, "
        f"{args.timesteps} steps a run, a checkpoint every {args.checkpoint_freq}, 1 CPU a run. "
        "A retried task joins the back of Ray's queue: the lost run resumes when a CPU comes "
        "free. Runs this small spend much of their time starting (torch, the games), and other "
        "jobs shared the two cores (the load averages, at each study's end), so wall times "
        "differ by several seconds between rounds of one setup; what the loss costs in steps is "
        "the steps trained again."
    )
    note = f"; 1-minute load average {load:.1f} at the start, {os.getloadavg()[0]:.1f} at the end"
    write_benchmark(
        args.out, PREAMBLE, torch.device("cpu"), "scripts/bench_study_cluster.py", sys.argv[1:],
        table, summary, rows, note=note, part=PART, tag="cluster", order=(PART,),
    )  # fmt: skip
    return 0


if __name__ == "__main__":
    run_cli(main)
