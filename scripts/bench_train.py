"""Training speed (agent steps/s) of A2C, PPO, DQN and QR-DQN on an Atari game: conv vs CoordConv
vs RL Zoo, in fp32 and bf16; with --levers, what each speed lever is worth.

All variants are built in one process on the same RL Zoo hyperparameters and timed in
interleaved rounds. Updates this device's section of docs/results/train_speed.md.
"""

from __future__ import annotations

import sys

from agents.config import ALGOS
from common.cli import add_device_argument
from common.errors import ArgumentParser, UsageError, run_cli

PREAMBLE = """# Atari training speed: conv vs CoordConv vs RL Zoo

Agent steps per second of SB3 training (environment stepping included), median over rounds
timed side by side in one process (`scripts/bench_train.py`). `zoo` is plain SB3 `CnnPolicy`
on SB3's `make_atari_env` in fp32 (what RL Zoo runs); `conv` and `coordconv` are this suite's
environments (`sb3` backend) and extractors (`policy_kwargs_for`); `-ale` is ale-py's native
vector env (train_atari's default backend); `-bf16` is `--precision bf16` (the features
extractor under autocast). Same hyperparameters: configs/atari/*.yaml (DQN and QR-DQN: training
from the first step, on a 10,000-transition buffer). Time-per-step ratios
(inverse steps/s): above 1 is slower, goal coordconv / conv <= 1.03 in both precisions.
Steps/s over RL Zoo: above 1 is faster, goal >= 2 for coordconv in bf16.
"""


def main() -> int:
    p = ArgumentParser(description=__doc__)
    p.add_argument("--env", default="MsPacman", help="game (MsPacman)")
    p.add_argument("--algos", default=",".join(ALGOS), help=f"comma-separated: {','.join(ALGOS)}")
    p.add_argument("--steps", type=int, default=4096, help="agent steps per timed round")
    p.add_argument("--rounds", type=int, default=3, help="interleaved timed rounds per variant")
    p.add_argument("--n-envs", type=int, help="parallel games (default: the config's)")
    add_device_argument(p)
    p.add_argument("--seed", type=int, default=0, help="seed of models and games")
    p.add_argument("--out", default="docs/results/train_speed.md", help="markdown to update")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.add_argument(
        "--levers",
        action="store_true",
        help="also time each speed lever against what --precision bf16 runs, and overlapped "
        "game stepping",
    )
    args = p.parse_args()
    algos = [a.strip() for a in args.algos.split(",") if a.strip()]
    bad = [a for a in algos if a not in ALGOS]
    if bad or not algos:
        raise UsageError(f"--algos must list some of {', '.join(ALGOS)}, got {args.algos!r}")
    if args.steps < 1 or args.rounds < 1:
        raise UsageError(f"--steps and --rounds must be >= 1, got {args.steps} and {args.rounds}")
    if args.n_envs is not None and args.n_envs < 1:
        raise UsageError(f"--n-envs must be >= 1, got {args.n_envs}")

    from tqdm import tqdm

    from benchmarks.train import (
        LEVERS,
        lever_table,
        main_ratios,
        markdown_table,
        measure,
        rollout_overlap,
    )
    from common.devices import select_device
    from common.results import write_benchmark
    from envs.names import resolve_game
    from policies.precision import bf16_support

    resolve_game(args.env)  # a bad name fails before any model is built
    device = select_device(args.device, args.tf32)
    bf16 = bf16_support(device)  # the bf16 variants run on `device`: its units, not the CPU's
    print(bf16)
    rows, lever_rows = [], []
    for algo in algos:
        bar = lambda it, algo=algo: tqdm(it, desc=algo, disable=args.no_progress)  # noqa: E731
        common = (algo, args.env, args.steps, args.rounds, str(device), args.n_envs, args.seed, bar)
        row = measure(*common)
        rows.append({**row, **main_ratios(row)})
        if args.levers:
            lever_rows.append(measure(*common, variants=LEVERS))
    table = markdown_table(rows)
    summary = "; ".join(
        f"{r['algo']}: time per step coordconv / conv = {r['coordconv_time_over_conv']:.3f} "
        f"(fp32), {r['coordconv_time_over_conv_bf16']:.3f} (bf16); "
        f"steps/s coordconv-ale-bf16 / RL Zoo = {r['speedup_over_zoo']:.2f}"
        for r in rows
    )
    if args.levers:
        n_envs = args.n_envs or rows[0]["n_envs"]
        overlap = rollout_overlap(
            args.env, n_envs, args.seed, "bf16", args.steps // n_envs, args.rounds, str(device)
        )
        rows.append({"levers": lever_rows, "rollout_overlap": overlap})
        table += (
            "\n\nLevers (each one change from what `--precision bf16` runs on the ale backend: "
            "torch and emulator threads one per core, our callbacks on):\n\n"
            + lever_table(lever_rows)
            + f"\n\nRollout with overlapped game stepping ({n_envs} games, bf16 policy): "
            f"{overlap['sequential']:.2f} ms per step sequential (SB3's collect_rollouts), "
            f"{overlap['overlapped']:.2f} ms overlapped in two halves: "
            f"{overlap['overlapped_speedup']:.2f}x."
        )
    write_benchmark(
        args.out,
        PREAMBLE,
        device,
        "scripts/bench_train.py",
        sys.argv[1:],
        table,
        summary,
        rows,
        note=f"; game {rows[0]['env']}; {bf16}",
    )
    return 0


if __name__ == "__main__":
    run_cli(main)
