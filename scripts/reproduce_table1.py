"""`coordconv-reproduce-table1` run from a checkout.

Its code and --help are in commands/reproduce_table1.py.
"""

from commands.reproduce_table1 import main
from common.errors import run_cli

if __name__ == "__main__":
    run_cli(main)
