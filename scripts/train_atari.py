"""`coordconv-train-atari` run from a checkout.

Its code and --help are in commands/train_atari.py.
"""

from commands.train_atari import main
from common.errors import run_cli

if __name__ == "__main__":
    run_cli(main)
