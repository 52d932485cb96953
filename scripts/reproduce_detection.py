"""`coordconv-reproduce-detection` run from a checkout.

Its code and --help are in commands/reproduce_detection.py.
"""

from commands.reproduce_detection import main
from common.errors import run_cli

if __name__ == "__main__":
    run_cli(main)
