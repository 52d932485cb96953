"""Evaluate a saved Atari agent on full games (no life-loss ends, unclipped scores).

Example: python scripts/evaluate.py runs/MsPacman/a2c_coordconv_s0 --episodes 10 --video pac.mp4
Prints mean +- std, min, max and episode lengths, and writes RUN_DIR/eval.json.
"""

from __future__ import annotations

import argparse

from common.errors import ArgumentParser, run_cli


def main() -> int:
    p = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run folder made by train_atari.py")
    p.add_argument("--episodes", type=int, default=10, help="full games to play (10)")
    p.add_argument("--deterministic", action="store_true", help="greedy actions, not sampled")
    p.add_argument(
        "--checkpoint", default="best", help="best (best_model.zip), final (model.zip) or STEPS"
    )
    p.add_argument("--video", help="write the first game to PATH (.mp4 or .gif), 210x160 RGB")
    p.add_argument("--seed", type=int, default=0, help="seed of the evaluation game")
    p.add_argument("--device", default="auto", help="auto|cpu|cuda (auto: cuda if available)")
    args = p.parse_args()
    from agents.evaluate import evaluate_run

    r = evaluate_run(
        args.run_dir,
        args.episodes,
        args.deterministic,
        args.checkpoint,
        args.video,
        args.seed,
        args.device,
    )
    print(
        f"{r['env']} {r['algo']} {r['extractor']} ({r['model']}): {r['episodes']} episodes, "
        f"return {r['mean_reward']:.1f} +- {r['std_reward']:.1f} "
        f"(min {r['min_reward']:.1f}, max {r['max_reward']:.1f})"
    )
    print(f"episode lengths (frames): {r['episode_lengths']}")
    if "video" in r:
        print(f"video: {r['video']}")
    return 0


if __name__ == "__main__":
    run_cli(main)
