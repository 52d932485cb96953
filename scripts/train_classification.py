"""`coordconv-train-classification` run from a checkout.

Its code and --help are in commands/train_classification.py.
"""

from commands.train_classification import main
from common.errors import run_cli

if __name__ == "__main__":
    run_cli(main)
