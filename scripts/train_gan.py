"""`coordconv-train-gan` run from a checkout: its code and --help are in commands/train_gan.py."""

from commands.train_gan import main
from common.errors import run_cli

if __name__ == "__main__":
    run_cli(main)
