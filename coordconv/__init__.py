"""CoordConv layers for PyTorch (Liu et al., NeurIPS 2018): convolutions that see coordinates."""

from importlib.metadata import PackageNotFoundError, version

from coordconv.add_coords import AddCoords, coordinate_channels
from coordconv.convert import coordconvify
from coordconv.layers import (
    CoordConv1d,
    CoordConv2d,
    CoordConv3d,
    CoordConvTranspose1d,
    CoordConvTranspose2d,
    CoordConvTranspose3d,
)
from coordconv.reliance import coordinate_layers, coordinate_share, coordinates

try:
    __version__ = version("coordconv-suite")
except PackageNotFoundError:  # imported from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = [
    "AddCoords",
    "CoordConv1d",
    "CoordConv2d",
    "CoordConv3d",
    "CoordConvTranspose1d",
    "CoordConvTranspose2d",
    "CoordConvTranspose3d",
    "coordconvify",
    "coordinate_channels",
    "coordinate_layers",
    "coordinate_share",
    "coordinates",
]
