"""Run the suite's CLI scripts in this process (fast) or in a subprocess (signals, fresh state)."""

from __future__ import annotations

import runpy
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Result:
    code: int
    out: str
    err: str


def run_script(capsys: pytest.CaptureFixture, script: str, *args: str) -> Result:
    """Run scripts/<script> as __main__ with `args`; return its exit status and output."""
    old_argv = sys.argv
    sys.argv = [script, *map(str, args)]
    capsys.readouterr()
    try:
        runpy.run_path(str(ROOT / "scripts" / script), run_name="__main__")
        code = 0
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    finally:
        sys.argv = old_argv
    captured = capsys.readouterr()
    return Result(code, captured.out, captured.err)


def error_lines(err: str) -> list[str]:
    """stderr lines that are not the emulator's start-up banner."""
    banner = ("A.L.E: Arcade Learning Environment", "[Powered by Stella]")
    return [line for line in err.splitlines() if line.strip() and not line.startswith(banner)]


def subprocess_script(script: str, *args: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(ROOT / "scripts" / script), *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        **kwargs,
    )
