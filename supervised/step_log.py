"""Per-step training scalars kept on the device and read back in blocks, so that a training loop
makes no host sync per step (`.item()` on a CUDA tensor waits for the GPU to finish all queued
work, which starves it of the next steps' kernels)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch

# Steps whose scalars are read back together: one host sync per block. A non-finite loss is
# caught at most this many steps late, and the progress bar's loss moves once per block.
LOG_EVERY = 50

Rows = list[tuple[int, dict[str, float]]]


class StepLog:
    """The scalars of each training step (0-dim tensors, left where they are) read back to the
    host every `every` steps in one transfer, then written to TensorBoard (`writer`, optional)
    under their names at their step: TensorBoard gets every step's value, as a per-step
    `.item()` gave it, and each value is the same float. `show` maps the names a progress bar
    displays (the last step read) to their short labels."""

    def __init__(
        self, writer: Any = None, show: Mapping[str, str] | None = None, every: int = LOG_EVERY
    ) -> None:
        self.writer = writer
        self.show = dict(show or {})
        self.every = every
        self._steps: list[tuple[int, list[str]]] = []
        self._values: list[torch.Tensor] = []

    def add(self, step: int, values: Mapping[str, torch.Tensor]) -> bool:
        """Keep step `step`'s scalars (detached); True when `every` steps wait to be flushed."""
        self._steps.append((step, list(values)))
        self._values.extend(v.detach().reshape(()) for v in values.values())
        return len(self._steps) >= self.every

    def flush(self, bar: Any = None, check: bool = True) -> Rows:
        """Read the waiting scalars back (one host sync), write them to TensorBoard, show the
        last step's on `bar` (a tqdm bar), and return them as (step, {name: value}) in step
        order ([] when none wait). With `check`, then raise RuntimeError at the first step with
        a non-finite scalar (`check_finite`)."""
        if not self._steps:
            return []
        steps, values = self._steps, self._values
        self._steps, self._values = [], []
        # float32 -> float64 is exact: each number is the float `.item()` would have given.
        device = values[0].device if values else None
        numbers = iter(torch.stack([v.to(device, torch.float64) for v in values]).tolist()
                       if values else [])  # fmt: skip
        rows = [(step, {name: next(numbers) for name in names}) for step, names in steps]
        if self.writer is not None:
            for step, row in rows:
                for name, number in row.items():
                    self.writer.add_scalar(name, number, step)
        if bar is not None and self.show:
            last = rows[-1][1]
            shown = {
                label: f"{last[name]:.3f}" for name, label in self.show.items() if name in last
            }
            bar.set_postfix(shown, refresh=False)
        if check:
            check_finite(rows)
        return rows


def check_finite(rows: Rows) -> None:
    """RuntimeError naming the first step of `rows` with a non-finite scalar, and its values."""
    for step, row in rows:
        if not all(math.isfinite(v) for v in row.values()):
            values = ", ".join(f"{name} {value:.4g}" for name, value in row.items())
            raise RuntimeError(f"non-finite loss at step {step}: {values}")
