"""The default run is the CPU suite, on any machine: CUDA is hidden from it (and from every
process it starts) unless the `-m` expression selects the `gpu` tests (`pytest -m gpu`).

Without this, a GPU machine would run the many tests that leave `--device` at `auto` on the
GPU, and the tests of "no CUDA" errors would start real training instead. CUDA reads
CUDA_VISIBLE_DEVICES when torch first asks for a device count, which no test module does at
import, so setting it here, before collection, is early enough.
"""

from __future__ import annotations

import os

import pytest

GPU_MARK = "gpu"


def gpu_tests_selected(markexpr: str) -> bool:
    """Whether the `-m` expression selects a test marked `gpu` alone."""
    if not markexpr:
        return True
    # pytest's own parser of -m expressions (private, stable since pytest 6); a plain word
    # check is the fallback should it move.
    try:
        from _pytest.mark.expression import Expression
    except ImportError:
        words = markexpr.replace("(", " ").replace(")", " ").split()
        return GPU_MARK in words and f"not {GPU_MARK}" not in " ".join(words)
    return Expression.compile(markexpr).evaluate(lambda name, **_: name == GPU_MARK)


def pytest_configure(config: pytest.Config) -> None:
    if not gpu_tests_selected(config.option.markexpr):
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
