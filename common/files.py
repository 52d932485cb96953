"""Atomic writes: a file that matters is written under a temporary name, then renamed."""

from __future__ import annotations

import json
import os
import tempfile
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path` (same suffix); on success rename it over `path`.

    Readers see the old file or the new one, never a part; on error the old file is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f"{path.suffix}", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual permissions
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write `text` to `path` atomically."""
    with atomic_path(path) as tmp, open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    return Path(path)


def atomic_write_json(path: str | os.PathLike, data: Any) -> Path:
    """Write `data` as indented JSON, atomically."""
    return atomic_write_text(path, json.dumps(data, indent=2) + "\n")


def atomic_torch_save(path: str | os.PathLike, obj: Any) -> Path:
    """`torch.save(obj)` to `path` atomically, with every tensor in `obj` (nested in dicts,
    lists and tuples, as state dicts and optimizer states are) copied to the CPU first: the
    file then loads on a machine without the GPU it was trained on, map_location or not."""
    import torch  # here, not at the top: the rest of this module is plain Python

    with atomic_path(path) as tmp:
        torch.save(_on_cpu(obj), tmp)
    return Path(path)


def _on_cpu(obj: Any) -> Any:
    import torch

    if isinstance(obj, torch.Tensor):
        return obj.cpu()
    if isinstance(obj, OrderedDict):  # a module state dict: keep its per-module versions
        out = OrderedDict((k, _on_cpu(v)) for k, v in obj.items())
        if hasattr(obj, "_metadata"):
            out._metadata = obj._metadata
        return out
    if isinstance(obj, dict):
        return {k: _on_cpu(v) for k, v in obj.items()}
    if isinstance(obj, tuple) and hasattr(obj, "_fields"):  # a named tuple
        return type(obj)(*(_on_cpu(v) for v in obj))
    if isinstance(obj, (list, tuple)):
        return type(obj)(_on_cpu(v) for v in obj)
    return obj
