"""The release's GAN nets for 64x64 images: DCGAN discriminator, deconv and CoordConv generators.

- `conv`: the deconv generator (dense z -> 4x4x512, BN, ReLU, then 5x5 stride-2 transposed
  convs 256, 128, 64 with BN + ReLU and a last one to the image channels, tanh) and the DCGAN
  discriminator (5x5 stride-2 convs 64, 128, 256, 512, LeakyReLU 0.2, BN on all but the first,
  dense to one logit).
- `coordconv`: the CoordConv generator (z tiled to 64x64 with the coordinate channels, 1x1 convs
  512, 256, 256, 128, 64, two 3x3 convs 64, all ReLU, no BN, a 1x1 conv to the image channels,
  tanh) and the same discriminator with coordinates added to its input image (its first conv is
  a CoordConv2d).

Both generators end in tanh and their discriminator sees that output. (The release fed its
discriminator the CoordConv generator's output before tanh, applying tanh only to the images it
saved; here both models play by the same rule.)

`width` scales every hidden channel count (1.0 = the release) so a CPU budget can train
narrower nets of the same shape. Init: He-normal for the CoordConv generator, whose eight ReLU
layers have no BN to rescue a smaller init; Glorot-uniform (TensorFlow's default) for the others.

One deliberate change from the release, `coord_init="balanced"` (the default): the CoordConv
generator's first layer draws its z columns He-normal over z's fan-in (256) and its two
coordinate columns He-normal over their own fan-in (2). The release drew all 258 columns over
one fan-in of 258, which gives position 2/258 of the first layer's variance: that layer's
output varies across the canvas a tenth as much as across z, and Adam, moving each weight about
lr per step, needs thousands of steps to grow the slopes a 9-pixel square needs. Measured on the
3,136 squares at width 0.25 (docs/results/gan.md): with the release's init the CoordConv GAN
drew almost no square in 784 steps (validity 0.003); balanced, after 1,176 steps its squares
reached 66% of the positions. `coord_init="release"` keeps the release's init.

Generators map z (B, z_dim) to (B, C, 64, 64) in [-1, 1]; discriminators map an image batch to
logits (B,).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from coordconv import CoordConv2d, coordinate_channels

MODELS = ("conv", "coordconv")
COORD_INITS = ("balanced", "release")
CANVAS = 64
KERNEL = 5  # the DCGAN convs and transposed convs, stride 2


def _scaled(channels: int, width: float) -> int:
    return max(1, round(channels * width))


class TiledCoordConv(CoordConv2d):
    """A 1x1 CoordConv2d over z tiled to size x size: input z (B, z_dim), output (B, out, S, S).

    Exact and cheaper than tiling: a 1x1 conv over a constant-in-space z is the dense map
    W_z z at every pixel, so the result is (W_z z + b) broadcast plus the batch-independent
    coordinate term, and no (B, z_dim, S, S) tensor is ever made.
    """

    def __init__(self, z_dim: int, out_channels: int, size: int) -> None:
        super().__init__(z_dim, out_channels, kernel_size=1)
        self.size = size

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if z.dim() != 2 or z.shape[1] != self.in_channels:
            raise ValueError(f"TiledCoordConv expects z of shape (B, {self.in_channels}), "
                             f"got {tuple(z.shape)}")  # fmt: skip
        c = self.in_channels
        data_term = F.linear(z, self.weight[:, :c, 0, 0], self.bias)  # (B, out)
        coords = coordinate_channels((self.size, self.size), device=z.device, dtype=z.dtype)
        coord_term = F.linear(coords.permute(1, 2, 0), self.weight[:, c:, 0, 0])  # (S, S, out)
        # Built channels-last: the convs that follow keep that layout, which on the CPU runs the
        # full-resolution 1x1 stack about twice as fast as NCHW.
        return (coord_term + data_term[:, None, None, :]).permute(0, 3, 1, 2)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", size={self.size}"


class CoordConvGenerator(nn.Module):
    """z -> tiled z + coordinates -> 1x1 convs -> two 3x3 convs -> 1x1 conv -> tanh."""

    def __init__(
        self, z_dim: int, channels: int, width: float = 1.0, coord_init: str = "balanced"
    ) -> None:
        super().__init__()
        if coord_init not in COORD_INITS:
            raise ValueError(f"unknown coord_init {coord_init!r}; valid: {', '.join(COORD_INITS)}")
        widths = [_scaled(c, width) for c in (512, 256, 256, 128, 64)]
        hidden = _scaled(64, width)
        layers: list[nn.Module] = [TiledCoordConv(z_dim, widths[0], CANVAS), nn.ReLU()]
        for c_in, c_out in zip(widths, widths[1:], strict=False):
            layers += [nn.Conv2d(c_in, c_out, 1), nn.ReLU()]
        c_in = widths[-1]
        for _ in range(2):
            layers += [nn.Conv2d(c_in, hidden, 3, padding=1), nn.ReLU()]
            c_in = hidden
        layers += [nn.Conv2d(hidden, channels, 1), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                nn.init.zeros_(m.bias)
        if coord_init == "balanced":  # see the module docstring
            with torch.no_grad():
                first = self.net[0].weight
                first[:, :z_dim].normal_(0, (2 / z_dim) ** 0.5)
                first[:, z_dim:].normal_(0, (2 / (first.shape[1] - z_dim)) ** 0.5)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z).contiguous()


class DeconvGenerator(nn.Module):
    """z -> dense 4x4x512 -> 5x5 stride-2 transposed convs 256, 128, 64, C -> tanh."""

    def __init__(self, z_dim: int, channels: int, width: float = 1.0) -> None:
        super().__init__()
        widths = [_scaled(c, width) for c in (512, 256, 128, 64)]
        self.start = widths[0]
        self.dense = nn.Linear(z_dim, 4 * 4 * widths[0])
        layers: list[nn.Module] = [nn.BatchNorm2d(widths[0]), nn.ReLU()]
        for c_in, c_out in zip(widths, [*widths[1:], channels], strict=True):
            # padding 2 + output_padding 1 doubles the size, as TensorFlow's 'same' does
            layers.append(nn.ConvTranspose2d(c_in, c_out, KERNEL, 2, 2, output_padding=1))
            layers += [nn.BatchNorm2d(c_out), nn.ReLU()] if c_out != channels else [nn.Tanh()]
        self.net = nn.Sequential(*layers)
        _glorot(self)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(self.dense(z).view(-1, self.start, 4, 4))


class Discriminator(nn.Module):
    """DCGAN: 5x5 stride-2 convs 64, 128, 256, 512 (LeakyReLU 0.2; BN after all but the first),
    dense to one logit. With `coords`, the first conv also sees the image's coordinates."""

    def __init__(self, channels: int, width: float = 1.0, coords: bool = False) -> None:
        super().__init__()
        widths = [_scaled(c, width) for c in (64, 128, 256, 512)]
        first = CoordConv2d if coords else nn.Conv2d
        layers: list[nn.Module] = [first(channels, widths[0], KERNEL, 2, 2), nn.LeakyReLU(0.2)]
        for c_in, c_out in zip(widths, widths[1:], strict=False):
            layers += [nn.Conv2d(c_in, c_out, KERNEL, 2, 2), nn.BatchNorm2d(c_out)]
            layers.append(nn.LeakyReLU(0.2))
        self.features = nn.Sequential(*layers, nn.Flatten())
        self.logit = nn.Linear(widths[-1] * (CANVAS // 16) ** 2, 1)
        _glorot(self)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.logit(self.features(images)).squeeze(1)


def _glorot(net: nn.Module) -> None:
    for m in net.modules():
        if isinstance(m, nn.Conv2d | nn.ConvTranspose2d | nn.Linear):
            nn.init.xavier_uniform_(m.weight)
            nn.init.zeros_(m.bias)


def build_gan(
    model: str, channels: int, z_dim: int = 256, width: float = 1.0, coord_init: str = "balanced"
) -> tuple[nn.Module, nn.Module]:
    """(generator, discriminator) of `model` (conv or coordconv) for `channels`-channel images;
    `coord_init` is the CoordConv generator's first-layer init (see the module docstring)."""
    if model == "conv":
        return DeconvGenerator(z_dim, channels, width), Discriminator(channels, width)
    if model == "coordconv":
        return (
            CoordConvGenerator(z_dim, channels, width, coord_init),
            Discriminator(channels, width, coords=True),
        )
    raise ValueError(f"unknown model {model!r}; valid: {', '.join(MODELS)}")
