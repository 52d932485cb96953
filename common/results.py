"""Result files under docs/results/: one markdown file per benchmark, one section per device."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import torch

from common.devices import describe_device
from common.files import atomic_write_json, atomic_write_text


def count_params(module: torch.nn.Module) -> int:
    """Trainable parameters of `module`, as every results.json reports them."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def update_section(path: str | os.PathLike, preamble: str, heading: str, body: str) -> Path:
    """Write `## heading` + `body` into the markdown file at `path`, keeping other sections.

    A section whose heading starts with the same first word (the device kind, e.g. "cpu" or
    "cuda") is replaced, so a GPU run adds its table beside the CPU one instead of erasing it.
    The file starts with `preamble`, refreshed on every write.
    """
    path = Path(path)
    sections: list[str] = []
    if path.exists():
        parts = re.split(r"^## ", path.read_text(), flags=re.MULTILINE)
        sections = ["## " + p.rstrip() + "\n" for p in parts[1:]]
    key = heading.split()[0].rstrip(":")
    new = f"## {heading}\n\n{body.rstrip()}\n"
    kept = [s for s in sections if s[3:].split()[0].rstrip(":") != key]
    text = preamble.rstrip() + "\n\n" + "\n".join(sorted(kept + [new], key=_device_order))
    return atomic_write_text(path, text)


def _device_order(section: str) -> int:
    return 0 if section.startswith("## cpu") else 1


def write_benchmark(
    out: str | os.PathLike,
    preamble: str,
    device: torch.device,
    script: str,
    argv: list[str],
    table: str,
    summary: str,
    rows: list[dict[str, Any]],
    note: str = "",
) -> None:
    """Record one benchmark run: this device's section of `out` (markdown, with the machine and
    the exact command) and the raw rows in `<out stem>_<device type>.json` beside it; print the
    table and summary."""
    machine = describe_device(device)
    command = " ".join(["python", script, *argv])
    body = (
        f"Machine: {machine}; torch {torch.__version__}{note}.\n"
        f"Command: `{command}`\n\n{table}\n\n{summary}\n"
    )
    out = Path(out)
    update_section(out, preamble, f"{device.type}: {machine}", body)
    atomic_write_json(
        out.with_name(f"{out.stem}_{device.type}.json"),
        {"device": machine, "torch": torch.__version__, "command": command, "rows": rows},
    )
    print(table)
    print(summary)
