"""`coordconv-compare-runs` run from a checkout.

Its code and --help are in commands/compare_runs.py.
"""

from commands.compare_runs import main
from common.errors import run_cli

if __name__ == "__main__":
    run_cli(main)
