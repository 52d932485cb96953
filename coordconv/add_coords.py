"""Coordinate channels and the `AddCoords` module."""

from __future__ import annotations

import torch
from torch import nn


def coordinate_channels(
    spatial_shape: tuple[int, ...] | torch.Size,
    with_r: bool = False,
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """Return the coordinate channels for one example, shape (rank + with_r, *spatial_shape).

    Channel k varies along spatial axis k (rank 2: i along H, then j along W) and holds
    2 * index / (n - 1) - 1, so it spans [-1, 1]; an axis of length 1 gives 0. The optional last
    channel is r = sqrt(sum of squared coordinate channels), centred and not renormalised.
    The tensor is built directly on `device` in `dtype`.
    """
    shape = tuple(int(n) for n in spatial_shape)
    dtype = dtype if dtype is not None else torch.get_default_dtype()
    axes = []
    for n in shape:
        index = torch.arange(n, device=device, dtype=dtype)
        # n == 1 would divide by zero; the contract puts the lone coordinate at the centre, 0.
        axes.append(index * 2.0 / (n - 1) - 1.0 if n > 1 else torch.zeros_like(index))
    grids = list(torch.meshgrid(*axes, indexing="ij"))
    if with_r:
        grids.append(torch.sqrt(sum(g * g for g in grids)))
    return torch.stack(grids, dim=0)


def check_input_rank(x: torch.Tensor, rank: int, owner: str) -> None:
    """Raise ValueError unless `x` is (batch, channels, *spatial) with `rank` spatial axes."""
    if x.dim() != rank + 2:
        raise ValueError(
            f"{owner} expects input of shape (batch, channels, {rank} spatial dims), "
            f"got shape {tuple(x.shape)}"
        )


class AddCoords(nn.Module):
    """Append coordinate channels to a (B, C, *S) input: output (B, C + rank + with_r, *S).

    The coordinate channels follow the input channels in axis order (rank 2: i varies along H,
    then j along W; rank 3: D, H, W), each scaled to [-1, 1]; with_r adds the centred radius.
    They are made on the input's device in its dtype.
    """

    def __init__(self, rank: int = 2, with_r: bool = False) -> None:
        super().__init__()
        if rank not in (1, 2, 3):
            raise ValueError(f"AddCoords rank must be 1, 2 or 3, got {rank}")
        self.rank = rank
        self.with_r = with_r

    @property
    def coord_channels(self) -> int:
        """Number of channels this module appends."""
        return self.rank + int(self.with_r)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input_rank(x, self.rank, "AddCoords")
        coords = coordinate_channels(x.shape[2:], self.with_r, device=x.device, dtype=x.dtype)
        return torch.cat([x, coords.unsqueeze(0).expand(x.shape[0], *coords.shape)], dim=1)

    def extra_repr(self) -> str:
        return f"rank={self.rank}, with_r={self.with_r}"
