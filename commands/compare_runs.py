"""Compare conv and CoordConv runs of one game from their TensorBoard logs.

Every folder under ROOT holding a config.yaml is a run. Runs are grouped by their whole config
except the seed and the keys that cannot change what an agent learns or how it is scored
(analysis.runs.NOT_GROUPED: device, threads, ...), so other hyperparameters, budgets, backends or
sticky actions make separate groups; the table names the keys in which groups differ. Two runs with
the same seed in one group are refused (exit 2). The final return of a run is the mean of the
tag's values in the last 10% of its step range. Writes comparison.md (table: seeds, mean, t 95%
CI, IQM with bootstrap 95% CI from 5 seeds on, final return per seed), comparison.json (the same
numbers, each group's config too) and comparison.png (per group each seed thin, the mean and its
95% band bold, over agent steps: 1 step = 4 frames), and prints the table. --smooth changes the
curves only, never the table.
"""

from __future__ import annotations

import argparse

from analysis.report import DEFAULT_SMOOTH, compare_runs
from analysis.runs import DEFAULT_TAG
from common.errors import ArgumentParser, run_cli


def main() -> int:
    parser = ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "root", metavar="ROOT", help="folder holding one game's runs, e.g. runs/MsPacman"
    )
    parser.add_argument(
        "--out", default=None, help="folder for comparison.{md,json,png} (default: ROOT/comparison)"
    )
    parser.add_argument(
        "--tag",
        default=DEFAULT_TAG,
        help=f"TensorBoard scalar tag to compare (default: {DEFAULT_TAG}; others: "
        "rollout/ep_rew_mean, eval/mean_reward)",
    )
    parser.add_argument(
        "--smooth",
        type=int,
        default=DEFAULT_SMOOTH,
        metavar="STEPS",
        help="curves only: each run's points become the mean of its points over the last STEPS "
        f"agent steps before the seeds are averaged (default: {DEFAULT_SMOOTH}, 1%% of a "
        "10M-step run; 0: none)",
    )
    parser.add_argument(
        "--no-progress", action="store_true", help="hide the progress bar over runs being read"
    )
    args = parser.parse_args()
    result = compare_runs(
        args.root, out=args.out, tag=args.tag, progress=not args.no_progress, smooth=args.smooth
    )
    print(result.table)
    print(f"wrote {', '.join(str(p) for p in result.files)}")
    return 0


def run() -> None:
    """`coordconv-compare-runs` on the command line: main() with run_cli's exit statuses."""
    run_cli(main)


if __name__ == "__main__":
    run()
