"""`coordconv-export-run` run from a checkout: its code and --help are in commands/export_run.py."""

from commands.export_run import main
from common.errors import run_cli

if __name__ == "__main__":
    run_cli(main)
