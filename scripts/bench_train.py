"""Training speed (agent steps/s) of A2C and PPO on an Atari game: conv vs CoordConv vs RL Zoo.

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
timed side by side in one process (`scripts/bench_train.py`). `RL Zoo` is plain SB3 `CnnPolicy`
on SB3's `make_atari_env` (what RL Zoo runs); `conv` and `coordconv` are this suite's
environments (`sb3` backend) and extractors (`policy_kwargs_for`); `coordconv (ale backend)`
is coordconv on ale-py's native vector env. Same hyperparameters: configs/atari/*.yaml.
The ratios are time per step (inverse steps/s): above 1 is slower. Goal: coordconv / conv <= 1.05.
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

    from benchmarks.train import markdown_table, measure
    from common.devices import resolve_device
    from common.results import write_benchmark

    device = resolve_device(args.device)
    rows = []
    for algo in algos:
        bar = lambda it, algo=algo: tqdm(it, desc=algo, disable=args.no_progress)  # noqa: E731
        rows.append(
            measure(
                algo, args.env, args.steps, args.rounds, str(device), args.n_envs, args.seed, bar
            )
        )
    table = markdown_table(rows)
    summary = "; ".join(
        f"{r['algo']}: time per step coordconv / conv = {r['coordconv_time_over_conv']:.3f}, "
        f"conv / RL Zoo = {r['conv_time_over_zoo']:.3f}; "
        f"steps/s ale / sb3 backend = {r['ale_speedup']:.2f}"
        for r in rows
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
        note=f"; game {rows[0]['env']}",
    )
    return 0


if __name__ == "__main__":
    run_cli(main)
