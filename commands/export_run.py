"""Export a trained run: into RL Baselines3 Zoo's log layout, or its policy as an ONNX model.

Examples:
  python scripts/export_run.py runs/MsPacman/a2c_coordconv_s0 --to zoo logs
  python -m rl_zoo3.enjoy --algo a2c --env MsPacmanNoFrameskip-v4 -f logs --no-render -n 5000
  python scripts/export_run.py runs/MsPacman/a2c_coordconv_s0 --to onnx pacman.onnx

--to zoo writes OUT/<algo>/<Game>NoFrameskip-v4_<n>/ (the next free n). --to onnx writes one
graph, uint8 frames in, action logits and value out (Q-values for dqn, qrdqn), and checks it
against the PyTorch policy with onnxruntime on real frames: above a max abs difference of 1e-4
it writes nothing, exit 1.
"""

from __future__ import annotations

import sys

from agents.export import (
    EXPORT_FORMATS,
    ExportCheckError,
    ExportSettings,
    export_onnx,
    export_zoo,
)
from common.cli import settings_from, settings_parser
from common.errors import check_choice, run_cli


def main() -> int:
    args = settings_from(ExportSettings, settings_parser(ExportSettings, __doc__).parse_args())
    check_choice("--to", args.to, EXPORT_FORMATS)
    if args.to == "zoo":
        r = export_zoo(args.run_dir, args.out, args.checkpoint)
        print(f"{r['env_id']} {r['algo']} {r['extractor']} ({r['model']}) -> {r['exp_dir']}")
        print(
            f"play it: python -m rl_zoo3.enjoy --algo {r['algo']} --env {r['env_id']} "
            f"-f {r['folder']} --exp-id {r['exp_id']}"
        )
        return 0
    try:
        r = export_onnx(args.run_dir, args.out, args.checkpoint, args.observations, args.seed)
    except ExportCheckError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(
        f"{r['env']} {r['algo']} {r['extractor']} ({r['model']}) -> {r['onnx']}: obs uint8 "
        f"(N, {r['frame_stack']}, 84, 84) -> "
        + ", ".join(
            f"{name} {shape.replace('batch', 'N').replace('n_actions', str(r['n_actions']))}"
            for name, shape in r["outputs"].items()
        )
    )
    diffs = ", ".join(f"{name} {diff:.2g}" for name, diff in r["max_abs_diff"].items())
    print(
        f"onnxruntime vs PyTorch on {r['observations']} real observations (batches of "
        f"{' and '.join(map(str, r['batch_sizes']))}): max abs difference {diffs} "
        f"(tolerance {r['tolerance']:g})"
    )
    return 0


def run() -> None:
    """`coordconv-export-run` on the command line: main() with run_cli's exit statuses."""
    run_cli(main)


if __name__ == "__main__":
    run()
