"""Atari stepping speed: SB3 DummyVecEnv / SubprocVecEnv with AtariWrapper vs ale-py's native
vector env (the `ale` backend), random actions, timed side by side in one process.
Updates this device's section of docs/results/env_speed.md.
"""

from __future__ import annotations

import sys

from common.errors import ArgumentParser, UsageError, run_cli

PREAMBLE = """# Atari vec env speed: SB3 backends vs ale-py's native vector env

Agent steps per second (summed over sub-envs) under uniformly random actions, median over
rounds timed side by side in one process (`scripts/bench_envs.py`). All three give the same
observations (4 stacked 84x84 frames, frame skip 4, no-op resets; envs/atari.py). The ratios
are steps/s over sb3-subproc: above 1 is faster. Goal: ale >= 2.5x sb3-subproc at 8 envs.
"""


def main() -> int:
    p = ArgumentParser(description=__doc__)
    p.add_argument("--env", default="MsPacman", help="game (MsPacman)")
    p.add_argument("--n-envs", default="8,16", help="comma-separated sub-env counts (8,16)")
    p.add_argument("--steps", type=int, default=4000, help="agent steps per timed round")
    p.add_argument("--rounds", type=int, default=3, help="interleaved timed rounds")
    p.add_argument("--out", default="docs/results/env_speed.md", help="markdown to update")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    args = p.parse_args()
    try:
        counts = [int(n) for n in args.n_envs.split(",") if n.strip()]
    except ValueError:
        counts = []
    if not counts or min(counts) < 1:
        raise UsageError(f"--n-envs must list positive integers, got {args.n_envs!r}")
    if args.steps < 1 or args.rounds < 1:
        raise UsageError(f"--steps and --rounds must be >= 1, got {args.steps} and {args.rounds}")

    import torch
    from tqdm import tqdm

    from benchmarks.envs import markdown_table, measure
    from common.results import write_benchmark
    from envs.names import resolve_game

    game = resolve_game(args.env)
    rows = []
    for n in counts:
        bar = lambda it, n=n: tqdm(it, desc=f"{n} envs", disable=args.no_progress)  # noqa: E731
        rows.append(measure(game, n, args.steps, args.rounds, progress=bar))
    table = markdown_table(rows)
    summary = "; ".join(
        f"{r['n_envs']} envs: ale / sb3-subproc = {r['over_sb3_subproc']['ale']:.2f}" for r in rows
    )
    write_benchmark(
        args.out, PREAMBLE, torch.device("cpu"), "scripts/bench_envs.py", sys.argv[1:], table,
        summary, rows, note=f"; game {game}",
    )  # fmt: skip
    return 0


if __name__ == "__main__":
    run_cli(main)
