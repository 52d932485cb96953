"""`coordconv-reproduce-gan` run from a checkout.

Its code and --help are in commands/reproduce_gan.py.
"""

from commands.reproduce_gan import main
from common.errors import run_cli

if __name__ == "__main__":
    run_cli(main)
