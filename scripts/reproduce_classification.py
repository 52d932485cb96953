"""`coordconv-reproduce-classification` run from a checkout.

Its code and --help are in commands/reproduce_classification.py.
"""

from commands.reproduce_classification import main
from common.errors import run_cli

if __name__ == "__main__":
    run_cli(main)
