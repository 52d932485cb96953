"""User errors: bad input that ends a CLI with exit status 2 and one clear line."""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable, Iterable
from typing import NoReturn


class UsageError(ValueError):
    """A user's mistake (bad value, missing file). The message is the one line the user sees.

    A ValueError, so library callers can catch it as one; CLIs turn it into exit status 2.
    """


def run_cli(main: Callable[[], int | None]) -> None:
    """Run a CLI's main function; a UsageError prints one line on stderr and exits 2."""
    try:
        code = main()
    except UsageError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    sys.exit(code or 0)


class ArgumentParser(argparse.ArgumentParser):
    """argparse with the suite's error form: one line on stderr, exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {message}\n")


def check_choice(what: str, value: object, valid: Iterable[str]) -> None:
    """UsageError "unknown <what> <value>; valid: ..." unless `value` is one of `valid`."""
    valid = list(valid)
    if value not in valid:
        raise UsageError(f"unknown {what} {value!r}; valid: {', '.join(valid)}")


def check_at_least(what: str, value: float, minimum: float = 1) -> None:
    """UsageError "<what> must be >= <minimum>, got <value>" unless value >= minimum."""
    if not value >= minimum:
        raise UsageError(f"{what} must be >= {minimum}, got {value}")


def check_positive(what: str, value: float) -> None:
    """UsageError "<what> must be a positive number, got <value>" unless 0 < value < inf."""
    if not value > 0 or not math.isfinite(value):
        raise UsageError(f"{what} must be a positive number, got {value}")
