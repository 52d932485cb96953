"""Compare conv and CoordConv runs of one game from their TensorBoard logs.

Every folder under ROOT holding a config.yaml is a run; runs are grouped by (algo, extractor,
with_r). The final return of a run is the mean of the tag's values in the last 10% of its step
range. Writes comparison.md (table: seeds, mean, t 95% CI, IQM with bootstrap 95% CI),
comparison.json (the same numbers, per run too) and comparison.png (mean learning curve and
95% band per group), and prints the table.
"""

from __future__ import annotations

import argparse

from agents.compare import DEFAULT_TAG, compare_runs
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
        "--no-progress", action="store_true", help="hide the progress bar over runs being read"
    )
    args = parser.parse_args()
    result = compare_runs(args.root, out=args.out, tag=args.tag, progress=not args.no_progress)
    print(result.table)
    print(f"wrote {', '.join(str(p) for p in result.files)}")
    return 0


if __name__ == "__main__":
    run_cli(main)
