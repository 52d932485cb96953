"""Train an SB3 A2C, PPO, DQN or QR-DQN agent on an Atari game with a conv or CoordConv extractor.

Example: python scripts/train_atari.py --env MsPacman --extractor coordconv
Runs land in LOGDIR/<Game>/<algo>_<extractor>_s<seed>/ (config.yaml, command.txt,
versions.json, TensorBoard events, model.zip, best_model.zip, checkpoints/, evaluations.json,
monitor/). Compare runs with `tensorboard --logdir runs/MsPacman` or scripts/compare_runs.py.
"""

from __future__ import annotations

import sys

from agents.train import TrainSettings, resume_atari, train_atari
from common.cli import settings_from, settings_parser
from common.errors import run_cli


def main(name: str = "scripts/train_atari.py") -> int:
    """Parse sys.argv, train or resume, print the summary; `name` starts the command that
    command.txt records."""
    argv = sys.argv[1:]
    parser = settings_parser(TrainSettings, __doc__)
    parser.add_argument(
        "--resume",
        metavar="RUN_DIR",
        help="continue RUN_DIR from its newest saved model (model.zip or a checkpoint) with the "
        "settings in its config.yaml and fresh random streams; only --timesteps (a new total; "
        "schedules stretch, never jump), --device and --no-progress apply; dqn and qrdqn "
        "continue with the replay buffer saved with that model (--save-replay-buffer), or say "
        "in one line that they start with an empty one",
    )
    args = parser.parse_args(argv)
    if args.resume is None and args.env is None:
        parser.error("--env is required (or --resume RUN_DIR)")
    command = [name, *argv]
    if args.resume:
        result = resume_atari(args.resume, command, args.timesteps, args.device, args.progress)
    else:
        result = train_atari(settings_from(TrainSettings, args), command)
    if result.status == "unchanged":
        print(result.message)
        return result.exit_code
    print(result.summary)
    if result.message:
        print(result.message, file=sys.stderr)
    return result.exit_code


def run() -> None:
    """`coordconv-train-atari` on the command line: main() with run_cli's exit statuses."""
    run_cli(lambda: main("coordconv-train-atari"))


if __name__ == "__main__":
    run()
