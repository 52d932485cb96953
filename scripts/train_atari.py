"""Train an SB3 A2C or PPO agent on an Atari game with a conv or CoordConv feature extractor.

Example: python scripts/train_atari.py --env MsPacman --extractor coordconv
Runs land in LOGDIR/<Game>/<algo>_<extractor>_s<seed>/ (config.yaml, command.txt,
versions.json, TensorBoard events, model.zip, best_model.zip, checkpoints/, evaluations.json,
monitor/). Compare runs with `tensorboard --logdir runs/MsPacman` or scripts/compare_runs.py.
"""

from __future__ import annotations

import argparse
import sys

from common.errors import ArgumentParser, run_cli


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--env", help="game: MsPacman, ms_pacman, ALE/MsPacman-v5, MsPacmanNoFrameskip-v4"
    )
    p.add_argument("--algo", choices=["a2c", "ppo"], default="a2c", help="SB3 algorithm (a2c)")
    p.add_argument(
        "--extractor",
        choices=["conv", "coordconv", "coordconv-all"],
        default="coordconv",
        help="conv: NatureCNN; coordconv: first conv is CoordConv; coordconv-all: every conv",
    )
    p.add_argument("--with-r", action="store_true", help="add the radius coordinate channel")
    p.add_argument("--timesteps", type=int, help="agent steps to train (config: n_timesteps)")
    p.add_argument("--seed", type=int, default=0, help="seed of the agent and of sub-env i (+i)")
    p.add_argument("--n-envs", type=int, help="parallel games (config: n_envs)")
    p.add_argument("--device", default="auto", help="auto|cpu|cuda (auto: cuda if available)")
    p.add_argument("--logdir", default="runs", help="root folder of runs (runs)")
    p.add_argument("--config", help="hyperparameter YAML (configs/atari/<algo>.yaml)")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one hyperparameter, e.g. --set learning_rate='linear(1e-3, 0)'; repeatable",
    )
    p.add_argument("--eval-freq", type=int, default=100_000, help="evaluate every N steps (0: off)")
    p.add_argument("--eval-episodes", type=int, default=5, help="full games per evaluation")
    p.add_argument(
        "--deterministic-eval",
        action="store_true",
        help="evaluate with greedy actions (default: sampled, as RL Zoo evaluates Atari)",
    )
    p.add_argument("--checkpoint-freq", type=int, default=500_000, help="checkpoint every N steps")
    p.add_argument(
        "--resume",
        metavar="RUN_DIR",
        help="continue RUN_DIR from its newest saved model (model.zip or a checkpoint) with the "
        "settings in its config.yaml and fresh random streams; only --timesteps (a new total; "
        "schedules stretch, never jump), --device and --no-progress apply",
    )
    p.add_argument("--run-name", help="run folder name (algo_extractor_sSEED)")
    p.add_argument(
        "--sticky-actions", action="store_true", help="repeat the last action w.p. 0.25 (Machado)"
    )
    p.add_argument(
        "--vec-env",
        help="ale: ale-py's native threaded vector env; sb3: SB3's DummyVecEnv + AtariWrapper "
        "(default: ale where the game runs on it)",
    )
    p.add_argument("--num-threads", type=int, help="ale backend emulator threads (CPU cores)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar; log to stdout")
    args = p.parse_args(argv)
    if args.resume is None and args.env is None:
        p.error("--env is required (or --resume RUN_DIR)")
    return args


def main() -> int:
    argv = sys.argv[1:]
    args = parse_args(argv)
    from agents.train import TrainSettings, resume_atari, train_atari

    command = ["scripts/train_atari.py", *argv]
    if args.resume:
        result = resume_atari(
            args.resume, command, args.timesteps, args.device, not args.no_progress
        )
    else:
        settings = TrainSettings(
            env=args.env,
            algo=args.algo,
            extractor=args.extractor,
            with_r=args.with_r,
            seed=args.seed,
            timesteps=args.timesteps,
            n_envs=args.n_envs,
            device=args.device,
            logdir=args.logdir,
            config=args.config,
            sets=args.set,
            eval_freq=args.eval_freq,
            eval_episodes=args.eval_episodes,
            deterministic_eval=args.deterministic_eval,
            checkpoint_freq=args.checkpoint_freq,
            run_name=args.run_name,
            sticky_actions=args.sticky_actions,
            vec_env=args.vec_env,
            num_threads=args.num_threads,
            progress=not args.no_progress,
        )
        result = train_atari(settings, command)
    if result.status == "unchanged":
        print(result.message)
        return result.exit_code
    print(result.summary)
    if result.message:
        print(result.message, file=sys.stderr)
    return result.exit_code


if __name__ == "__main__":
    run_cli(main)
