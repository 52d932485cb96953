"""Result files under docs/results/: one markdown file per benchmark, one section per device
(and per part, on a page that reports several experiments)."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from common.devices import describe_device
from common.files import atomic_write_json, atomic_write_text


def count_params(module: torch.nn.Module) -> int:
    """Trainable parameters of `module`, as every results.json reports them."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def update_section(
    path: str | os.PathLike, preamble: str, heading: str, body: str, order: Sequence[str] = ()
) -> Path:
    """Write `## heading` + `body` into the markdown file at `path`, keeping other sections.

    A heading reads "[<part>, ]<device kind>: <machine>"; the section whose heading matches up
    to the colon (the same part on the same device kind, e.g. "cpu" or "cuda") is replaced, so a
    GPU run adds its table beside the CPU one instead of erasing it. Sections follow `order`
    (parts, in page order, each matched whole; the others after them), then CPU before other
    devices. The file starts with `preamble`, refreshed on every write.
    """
    path = Path(path)
    sections: list[str] = []
    if path.exists():
        parts = re.split(r"^## ", path.read_text(), flags=re.MULTILINE)
        sections = ["## " + p.rstrip() + "\n" for p in parts[1:]]
    new = f"## {heading}\n\n{body.rstrip()}\n"
    kept = [s for s in sections if _key(s) != _key(new)]

    def place(section: str) -> tuple[int, int]:
        key = _key(section)
        part, _, device = key.rpartition(", ")
        rank = order.index(part) if part in order else len(order)
        return rank, 0 if device == "cpu" else 1

    text = preamble.rstrip() + "\n\n" + "\n".join(sorted(kept + [new], key=place))
    return atomic_write_text(path, text)


def _key(section: str) -> str:
    """A section's heading up to its first colon: "cpu", "RPN alone, cpu"."""
    return section[3:].split("\n", 1)[0].split(":", 1)[0].strip()


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
    part: str = "",
    tag: str = "",
    order: Sequence[str] = (),
) -> None:
    """Record one benchmark run: this device's section of `out` (markdown, with the machine and
    the exact command) and the raw rows in `<out stem>[_<tag>]_<device type>.json` beside it;
    print the table and summary. On a page with several experiments, `part` names this one's
    sections ("<part>, cpu: ...") and `order` lists the parts in page order."""
    machine = describe_device(device)
    command = " ".join(["python", script, *argv])
    body = (
        f"Machine: {machine}; torch {torch.__version__}{note}.\n"
        f"Command: `{command}`\n\n{table}\n\n{summary}\n"
    )
    out = Path(out)
    heading = f"{part}, {device.type}: {machine}" if part else f"{device.type}: {machine}"
    update_section(out, preamble, heading, body, order)
    atomic_write_json(
        out.with_name(f"{out.stem}{'_' + tag if tag else ''}_{device.type}.json"),
        {"device": machine, "torch": torch.__version__, "command": command, "rows": rows},
    )
    print(table)
    print(summary)
