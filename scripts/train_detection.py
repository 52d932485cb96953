"""`coordconv-train-detection` run from a checkout.

Its code and --help are in commands/train_detection.py.
"""

from commands.train_detection import main
from common.errors import run_cli

if __name__ == "__main__":
    run_cli(main)
