"""CoordConv layers for PyTorch (Liu et al., NeurIPS 2018): convolutions that see coordinates."""

from coordconv.add_coords import AddCoords, coordinate_channels
from coordconv.convert import coordconvify
from coordconv.layers import CoordConv1d, CoordConv2d, CoordConv3d, CoordConvTranspose2d

__all__ = [
    "AddCoords",
    "CoordConv1d",
    "CoordConv2d",
    "CoordConv3d",
    "CoordConvTranspose2d",
    "coordconvify",
    "coordinate_channels",
]
