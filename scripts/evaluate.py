"""`coordconv-evaluate` run from a checkout: its code and --help are in commands/evaluate.py."""

from commands.evaluate import main
from common.errors import run_cli

if __name__ == "__main__":
    run_cli(main)
