"""Evaluate a saved Atari agent on full games (no life-loss ends, unclipped scores).

Example: python scripts/evaluate.py runs/MsPacman/a2c_coordconv_s0 --episodes 10 --video pac.mp4
Prints mean +- std, min, max and episode lengths, and writes RUN_DIR/eval.json. With
--coords zero,flip it also plays the same games with the CoordConv layers' coordinates zeroed
and mirrored, prints each score change paired by game with its 95% CI, and writes
RUN_DIR/reliance.json.
"""

from __future__ import annotations

from agents.evaluate import EvaluateSettings
from analysis.reliance import measure_reliance
from common.cli import settings_from, settings_parser
from common.errors import run_cli


def main() -> int:
    args = settings_parser(EvaluateSettings, __doc__).parse_args()
    r = measure_reliance(settings_from(EvaluateSettings, args))
    print(
        f"{r['env']} {r['algo']} {r['extractor']} ({r['model']}): {r['episodes']} episodes, "
        f"return {r['mean_reward']:.1f} +- {r['std_reward']:.1f} "
        f"(min {r['min_reward']:.1f}, max {r['max_reward']:.1f})"
    )
    print(f"episode lengths (frames): {r['episode_lengths']}")
    if "video" in r:
        print(f"video: {r['video']}")
    if r["reliance"] is not None:
        for mode, c in r["reliance"]["changes"].items():
            ci = "-" if c["ci95"] is None else f"[{c['ci95'][0]:.1f}, {c['ci95'][1]:.1f}]"
            print(
                f"coordinates {mode}: return {c['mean_reward']:.1f}, change {c['change']:+.1f} "
                f"(95% CI {ci}, paired by game)"
            )
        print(f"reliance: {r['run_dir']}/reliance.json")
    return 0


def run() -> None:
    """`coordconv-evaluate` on the command line: main() with run_cli's exit statuses."""
    run_cli(main)


if __name__ == "__main__":
    run()
