"""An independent CoordConv reference for the tests: coordinates from numpy, then concat + conv."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def numpy_coords(
    spatial_shape: tuple[int, ...], with_r: bool, coord_range: tuple[float, float] = (-1.0, 1.0)
) -> np.ndarray:
    """Coordinate channels written straight from the contract, one axis at a time."""
    low, high = coord_range
    middle = (low + high) / 2
    index = np.indices(spatial_shape, dtype=np.float64)
    channels = []
    for axis, n in enumerate(spatial_shape):
        fraction = index[axis] / (n - 1) if n > 1 else np.full(spatial_shape, 0.5)
        channels.append(low + (high - low) * fraction)
    if with_r:
        channels.append(np.sqrt(np.sum(np.square(np.array(channels) - middle), axis=0)))
    return np.stack(channels)


def concat_coords(
    x: torch.Tensor, with_r: bool, coord_range: tuple[float, float] = (-1.0, 1.0)
) -> torch.Tensor:
    coords = torch.as_tensor(numpy_coords(tuple(x.shape[2:]), with_r, coord_range), dtype=x.dtype)
    return torch.cat([x, coords.expand(x.shape[0], *coords.shape)], dim=1)


_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}


def reference_conv(layer: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The plain convolution of concat(x, coords) with the layer's own weight and bias."""
    inp = concat_coords(x, layer.with_r, layer.coord_range)
    rank = x.dim() - 2
    padding = layer.padding
    if layer.padding_mode != "zeros":
        # F.pad takes (last-axis-left, last-axis-right, ...), so padding is reversed per axis.
        pads = [p for p in reversed(padding) for _ in range(2)]
        inp = F.pad(inp, pads, mode=layer.padding_mode)
        padding = 0
    return _CONV[rank](inp, layer.weight, layer.bias, layer.stride, padding, layer.dilation)


_CONV_TRANSPOSE = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}


def reference_conv_transpose(
    layer: torch.nn.Module, x: torch.Tensor, output_padding
) -> torch.Tensor:
    """The plain transposed convolution of concat(x, coords) with the layer's weight and bias."""
    inp = concat_coords(x, layer.with_r, layer.coord_range)
    return _CONV_TRANSPOSE[x.dim() - 2](
        inp,
        layer.weight,
        layer.bias,
        layer.stride,
        layer.padding,
        output_padding,
        1,
        layer.dilation,
    )
