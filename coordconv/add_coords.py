"""Coordinate channels and the `AddCoords` module."""

from __future__ import annotations

import math

import torch
from torch import nn

DEFAULT_RANGE = (-1.0, 1.0)  # the paper's scaling of the coordinate channels


def coordinate_channels(
    spatial_shape: tuple[int, ...] | torch.Size,
    with_r: bool = False,
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
    coord_range: tuple[float, float] = DEFAULT_RANGE,
) -> torch.Tensor:
    """Return the coordinate channels for one example, shape (rank + with_r, *spatial_shape).

    Channel k varies along spatial axis k (rank 2: i along H, then j along W) and holds
    low + (high - low) * index / (n - 1), so it spans coord_range = (low, high): [-1, 1] by
    default, (0, 1) as the CoordConv release's detection code had it. An axis of length 1 gives
    the middle of the range (0 by default). The optional last channel is r, the distance from
    the centre: sqrt(sum of squared (coordinate - middle)), not renormalised. The tensor is
    built directly on `device` and returned in `dtype`; the values are computed in float32 (or
    float64) and rounded once, so a bfloat16 or float16 model gets each coordinate as close as
    its dtype holds it (computed in bfloat16, an axis of 300 has 264 distinct values ending at
    0.992, and float16 counts no further than 2048).
    """
    low, high = check_coord_range(coord_range)
    return coordinate_grid(
        [int(n) for n in spatial_shape],
        with_r,
        low,
        high,
        torch.device(device) if device is not None else None,
        dtype if dtype is not None else torch.get_default_dtype(),
    )


def coordinate_grid(
    sizes: list[int],
    with_r: bool,
    low: float,
    high: float,
    device: torch.device | None,
    dtype: torch.dtype,
) -> torch.Tensor:
    """`coordinate_channels` as the layers' forward passes call it: TorchScript-compatible, and
    each size enters tensor ops only, so a traced, exported or compiled graph keeps the spatial
    sizes symbolic instead of freezing the ones it was built with."""
    middle = (low + high) / 2
    work = torch.float64 if dtype == torch.float64 else torch.float32
    axes: list[torch.Tensor] = []
    for n in sizes:
        index = torch.arange(n, device=device, dtype=work)
        last = index[-1:]  # n - 1 as a tensor: a Python int would freeze n in an exported graph
        # n == 1 would divide by zero; the contract puts the lone coordinate at the middle, which
        # a shift of half an index reaches. For n > 1 the shift is 0, and the values round
        # exactly as low + (high - low) * index / (n - 1) does.
        shift = 0.5 - last.clamp(max=1) * 0.5
        axes.append((index + shift) * (high - low) / last.clamp(min=1) + low)
    grids = list(torch.meshgrid(axes, indexing="ij"))
    if with_r:
        squares = torch.zeros_like(grids[0])
        for g in grids:
            squares = squares + (g - middle) * (g - middle)
        grids.append(torch.sqrt(squares))
    return torch.stack(grids, dim=0).to(dtype)


def check_coord_range(coord_range: tuple[float, float]) -> tuple[float, float]:
    """(low, high) as floats; ValueError unless they are two finite numbers with low < high."""
    try:
        low, high = (float(v) for v in coord_range)
    except (TypeError, ValueError):
        raise ValueError(
            f"coord_range must be two numbers (low, high), got {coord_range!r}"
        ) from None
    if not (math.isfinite(low) and math.isfinite(high) and low < high):
        raise ValueError(f"coord_range must be finite with low < high, got {coord_range!r}")
    return low, high


def check_input_rank(x: torch.Tensor, rank: int, owner: str) -> None:
    """Raise ValueError unless `x` is (batch, channels, *spatial) with `rank` spatial axes."""
    if x.dim() != rank + 2:
        raise ValueError(
            f"{owner} expects input of shape (batch, channels, {rank} spatial dims), "
            f"got shape {shape_text(x)}"
        )


def shape_text(x: torch.Tensor) -> str:
    """x's shape written as a tuple, "(2, 3, 4)", in eager code and in TorchScript alike."""
    return "(" + ", ".join([str(n) for n in x.shape]) + ")"


class AddCoords(nn.Module):
    """Append coordinate channels to a (B, C, *S) input: output (B, C + rank + with_r, *S).

    The coordinate channels follow the input channels in axis order (rank 2: i varies along H,
    then j along W; rank 3: D, H, W), each scaled to coord_range ([-1, 1] by default, see
    `coordinate_channels`); with_r adds the centred radius. They are made on the input's device
    in its dtype.
    """

    def __init__(
        self, rank: int = 2, with_r: bool = False, coord_range: tuple[float, float] = DEFAULT_RANGE
    ) -> None:
        super().__init__()
        if rank not in (1, 2, 3):
            raise ValueError(f"AddCoords rank must be 1, 2 or 3, got {rank}")
        self.rank = rank
        self.with_r = with_r
        self.coord_range = check_coord_range(coord_range)

    @property
    def coord_channels(self) -> int:
        """Number of channels this module appends."""
        return self.rank + int(self.with_r)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input_rank(x, self.rank, "AddCoords")
        low, high = self.coord_range
        # A torch.Size is a tuple of ints: TorchScript reads it as the List[int] annotated.
        coords = coordinate_grid(x.shape[2:], self.with_r, low, high, x.device, x.dtype)  # type: ignore[arg-type]
        # -1 keeps each coordinate size as it is: written out, it would freeze in a traced graph.
        batch = [x.shape[0]] + [-1] * (self.rank + 1)
        return torch.cat([x, coords.unsqueeze(0).expand(batch)], dim=1)

    def extra_repr(self) -> str:
        return f"rank={self.rank}, with_r={self.with_r}" + range_repr(self.coord_range)


def range_repr(coord_range: tuple[float, float]) -> str:
    """The repr suffix that names a coord_range other than the default (empty for it)."""
    return "" if coord_range == DEFAULT_RANGE else f", coord_range={coord_range}"
