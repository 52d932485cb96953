"""`coordconv-study` run from a checkout: its code and --help are in commands/study.py."""

from commands.study import main
from common.errors import run_cli

if __name__ == "__main__":
    run_cli(main)
