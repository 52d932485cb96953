"""The training scaffold every supervised trainer shares, so that a trainer keeps only its step
and its measures: a `TrainingRun` owns what a run writes besides its model (TensorBoard events,
OUT/checkpoint.pt, OUT/results.json), its progress bars, its clock and its per-step scalars
(`StepLog`); `train_epoch` runs a trainer's step over one epoch's batches (torchvision's
references/detection/engine.py `train_one_epoch`, with the step handed in).

Per-step scalars stay on the device and are read back in blocks, so that a training loop makes
no host sync per step (`.item()` on a CUDA tensor waits for the GPU to finish all queued work,
which starves it of the next steps' kernels)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import torch
from tqdm import tqdm

from common.files import atomic_torch_save, atomic_write_json

# Steps whose scalars are read back together: one host sync per block. A non-finite loss is
# caught at most this many steps late, and the progress bar's loss moves once per block.
LOG_EVERY = 50

Rows = list[tuple[int, dict[str, float]]]
Batch = TypeVar("Batch")


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


class TrainingRun:
    """What one training run writes into its folder `out` (None or "": nothing, and no
    TensorBoard writer is made): TensorBoard events (`writer`, `scalars`), OUT/checkpoint.pt
    (`checkpoint`; none when `checkpoint=False`) and OUT/results.json (`write_results`), both
    atomic. Also its progress bars (`bar`, hidden unless `progress`), its per-step scalars
    (`log`, a StepLog that shows the names in `show` on the bar), the steps trained so far
    (`steps`, counted by `train_epoch`) and its clock (`seconds`, started when the run is
    made).

    A context manager: leaving it closes the writer, also when training raises; on Ctrl-C it
    first writes the waiting steps' scalars (unchecked) and, when `on_interrupt` is given, the
    state it returns to OUT/checkpoint.pt."""

    def __init__(
        self,
        out: str | Path | None,
        *,
        progress: bool = True,
        show: Mapping[str, str] | None = None,
        checkpoint: bool = True,
        on_interrupt: Callable[[], Mapping[str, Any]] | None = None,
    ) -> None:
        self.out = Path(out) if out else None
        self.progress = progress
        self.saves_checkpoints = checkpoint
        self.on_interrupt = on_interrupt
        self.writer = None
        if self.out is not None:
            # Imported here: TensorBoard's writer is slow to import and a run without an output
            # folder never needs it.
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(self.out))
        self.log = StepLog(self.writer, show)
        self.steps = 0
        self._start = time.perf_counter()

    def __enter__(self) -> TrainingRun:
        return self

    def __exit__(self, kind: type[BaseException] | None, *_: Any) -> None:
        try:
            if kind is not None and issubclass(kind, KeyboardInterrupt):
                self.log.flush(check=False)  # the last steps' scalars, to TensorBoard
                if self.on_interrupt is not None:
                    self.checkpoint(self.on_interrupt())
        finally:
            self.close()

    def close(self) -> None:
        """Close the TensorBoard writer (its events reach the disk); the files can still be
        written."""
        if self.writer is not None:
            self.writer.close()

    def seconds(self) -> float:
        """Wall-clock seconds since the run was made."""
        return time.perf_counter() - self._start

    def bar(self, iterable: Iterable[Batch], desc: str) -> tqdm:
        """A tqdm progress bar over `iterable`, hidden unless the run shows progress."""
        return tqdm(iterable, desc=desc, disable=not self.progress)

    def scalars(self, values: Mapping[str, float], step: int, prefix: str = "") -> None:
        """Each of `values` to TensorBoard as <prefix><name> at `step`, in their order."""
        if self.writer is not None:
            for name, value in values.items():
                self.writer.add_scalar(f"{prefix}{name}", value, step)

    def checkpoint(self, state: Mapping[str, Any]) -> None:
        """`state` to OUT/checkpoint.pt, atomically, its tensors copied to the CPU so that it
        loads on any machine (common.files.atomic_torch_save)."""
        if self.out is not None and self.saves_checkpoints:
            atomic_torch_save(self.out / "checkpoint.pt", state)

    def write_results(self, result: Mapping[str, Any]) -> None:
        """`result` to OUT/results.json, atomically."""
        if self.out is not None:
            atomic_write_json(self.out / "results.json", result)


def train_epoch(
    run: TrainingRun,
    batches: Iterable[Batch],
    step: Callable[[Batch], Mapping[str, torch.Tensor]],
    desc: str,
) -> Rows:
    """One epoch: `step(batch)` for each of `batches` under a progress bar labelled `desc`. The
    scalars each step returns (0-dim tensors, left on the device) go to `run.log` at the run's
    step count, counted on across epochs. Returns the epoch's rows, one per step in step order,
    read back and checked (RuntimeError at the first non-finite one)."""
    bar = run.bar(batches, desc)
    rows: Rows = []
    for batch in bar:
        scalars = step(batch)
        run.steps += 1
        if run.log.add(run.steps, scalars):
            rows += run.log.flush(bar)
    rows += run.log.flush(bar)
    return rows
