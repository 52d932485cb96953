"""User errors: bad input that ends a CLI with exit status 2 and one clear line."""

from __future__ import annotations

import sys
from collections.abc import Callable


class UsageError(Exception):
    """A user's mistake (bad value, missing file). The message is the one line the user sees."""


def run_cli(main: Callable[[], int | None]) -> None:
    """Run a CLI's main function; a UsageError prints one line on stderr and exits 2."""
    try:
        code = main()
    except UsageError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    sys.exit(code or 0)
