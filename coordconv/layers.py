"""CoordConv layers: convolutions that also see their input's coordinates.

Each layer owns one weight over [input channels, coordinate channels], exactly the weight of the
plain convolution of `AddCoords(x)`. The forward pass does not build that concatenation: by
linearity, conv(concat(x, C), [W_x, W_c]) = conv(x, W_x) + conv(C, W_c), and the second term
depends only on the weights and the spatial size, so it is computed once at batch size 1 and
broadcast over the batch. Padding modes pad channel by channel, so the identity holds for all
of them.

Coordinates span [-1, 1] unless `coord_range=(low, high)` says otherwise (the release's
detection code used (0, 1)); with zero padding the two differ in more than a rescaling, since
the padded border reads 0 either way.

The layers subclass the matching `torch.nn` convolution, so code that finds convolutions by type
(SB3's orthogonal init, weight-decay filters, fusers) treats them as one.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from coordconv.add_coords import (
    DEFAULT_RANGE,
    check_coord_range,
    check_input_rank,
    coordinate_channels,
    range_repr,
)


def _require_single_group(groups: int, name: str) -> None:
    if groups != 1:
        # With groups, each group would need its own copy of the coordinates; no use case yet.
        raise ValueError(f"{name} supports groups=1 only, got groups={groups}")


class _CoordConvNd:
    """Shared construction and forward pass of CoordConv1d/2d/3d (mixed into nn.ConvNd)."""

    _rank: int
    in_channels: int
    weight: nn.Parameter
    bias: nn.Parameter | None

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: Any,
        stride: Any = 1,
        padding: Any = 0,
        dilation: Any = 1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: str = "zeros",
        device: Any = None,
        dtype: Any = None,
        with_r: bool = False,
        coord_range: tuple[float, float] = DEFAULT_RANGE,
    ) -> None:
        _require_single_group(groups, type(self).__name__)
        self.coord_range = check_coord_range(coord_range)
        self.coord_channels = self._rank + int(with_r)
        super().__init__(  # type: ignore[call-arg]
            in_channels + self.coord_channels,
            out_channels,
            kernel_size,
            stride,
            padding,
            dilation,
            groups,
            bias,
            padding_mode,
            device,
            dtype,
        )
        # in_channels names the data channels the layer takes, as for the plain convolution.
        self.in_channels = in_channels
        self.with_r = with_r

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        name = type(self).__name__
        check_input_rank(x, self._rank, name)
        if x.shape[1] != self.in_channels:
            raise ValueError(f"{name} expects {self.in_channels} input channels, got {x.shape[1]}")
        c = self.in_channels
        data_term = self._conv_forward(x, self.weight[:, :c], self.bias)  # type: ignore[attr-defined]
        coords = coordinate_channels(
            x.shape[2:], self.with_r, device=x.device, dtype=x.dtype, coord_range=self.coord_range
        )
        coord_term = self._conv_forward(coords.unsqueeze(0), self.weight[:, c:], None)  # type: ignore[attr-defined]
        # In place: the convolution's backward does not need its output, and skipping a second
        # batch-sized allocation is most of what makes the layer cost what a plain conv costs.
        return data_term.add_(coord_term)

    def extra_repr(self) -> str:
        text = super().extra_repr() + f", with_r={self.with_r}"  # type: ignore[misc]
        return text + range_repr(self.coord_range)


class CoordConv1d(_CoordConvNd, nn.Conv1d):
    """nn.Conv1d over the input plus one coordinate channel along L (and r with `with_r`)."""

    _rank = 1


class CoordConv2d(_CoordConvNd, nn.Conv2d):
    """nn.Conv2d over the input plus coordinate channels i (along H) and j (along W), and r."""

    _rank = 2


class CoordConv3d(_CoordConvNd, nn.Conv3d):
    """nn.Conv3d over the input plus coordinate channels along D, H and W, and r."""

    _rank = 3


class CoordConvTranspose2d(nn.ConvTranspose2d):
    """nn.ConvTranspose2d over the input plus its coordinate channels i, j (and r).

    The weight has nn.ConvTranspose2d's layout, (in_channels + d, out_channels, kH, kW).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: Any,
        stride: Any = 1,
        padding: Any = 0,
        output_padding: Any = 0,
        groups: int = 1,
        bias: bool = True,
        dilation: Any = 1,
        padding_mode: str = "zeros",
        device: Any = None,
        dtype: Any = None,
        with_r: bool = False,
        coord_range: tuple[float, float] = DEFAULT_RANGE,
    ) -> None:
        _require_single_group(groups, type(self).__name__)
        self.coord_range = check_coord_range(coord_range)
        self.coord_channels = 2 + int(with_r)
        super().__init__(
            in_channels + self.coord_channels,
            out_channels,
            kernel_size,
            stride,
            padding,
            output_padding,
            groups,
            bias,
            dilation,
            padding_mode,
            device,
            dtype,
        )
        self.in_channels = in_channels
        self.with_r = with_r

    def forward(self, x: torch.Tensor, output_size: list[int] | None = None) -> torch.Tensor:
        check_input_rank(x, 2, "CoordConvTranspose2d")
        if x.shape[1] != self.in_channels:
            raise ValueError(
                f"CoordConvTranspose2d expects {self.in_channels} input channels, got {x.shape[1]}"
            )
        output_padding = self._output_padding(
            x, output_size, self.stride, self.padding, self.kernel_size, 2, self.dilation
        )
        c = self.in_channels
        coords = coordinate_channels(
            x.shape[2:], self.with_r, device=x.device, dtype=x.dtype, coord_range=self.coord_range
        )

        def transpose(inp: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None):
            return nn.functional.conv_transpose2d(
                inp, weight, bias, self.stride, self.padding, output_padding, 1, self.dilation
            )

        data_term = transpose(x, self.weight[:c], self.bias)
        return data_term.add_(transpose(coords.unsqueeze(0), self.weight[c:], None))

    def extra_repr(self) -> str:
        return super().extra_repr() + f", with_r={self.with_r}" + range_repr(self.coord_range)
