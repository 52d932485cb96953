"""`coordconv-train-toy` run from a checkout: its code and --help are in commands/train_toy.py."""

from commands.train_toy import main
from common.errors import run_cli

if __name__ == "__main__":
    run_cli(main)
