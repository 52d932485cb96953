"""The release's networks for the toy tasks, conv and CoordConv, on the coordconv module.

Inputs: classification and rendering take the raw centre (x, y), shape (B, 2); regression takes
the one-hot image (B, 1, 64, 64). Outputs are logits: classification (B, 4096) over pixels
(index y * 64 + x), rendering (B, 1, 64, 64) per pixel, regression (B, 2) for (x, y) / 64.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from coordconv import CoordConv2d

CANVAS = 64
TASKS = ("classification", "regression", "rendering")
MODELS = ("coordconv", "conv")


class CoordConvClassifier(nn.Module):
    """(x, y) tiled over the canvas, coordinates added, 1x1 convs 32, 32, 64, 64, 1 (7,553)."""

    def __init__(self) -> None:
        super().__init__()
        widths = [32, 32, 64, 64]
        layers: list[nn.Module] = [CoordConv2d(2, widths[0], 1), nn.ReLU()]
        for a, b in zip(widths, widths[1:], strict=False):
            layers += [nn.Conv2d(a, b, 1), nn.ReLU()]
        layers.append(nn.Conv2d(widths[-1], 1, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, xy: torch.Tensor) -> torch.Tensor:
        tiled = xy[:, :, None, None].expand(-1, -1, CANVAS, CANVAS)
        return self.net(tiled).flatten(1)


class CoordConvRenderer(nn.Module):
    """The classifier, a softmax over the canvas ("sharpen"), then five 3x3 convs 8, 8, 16, 16, 1
    with ReLU between (11,850)."""

    def __init__(self, kernel: int = 3) -> None:
        super().__init__()
        self.classifier = CoordConvClassifier()
        widths = [1, 8, 8, 16, 16, 1]
        layers: list[nn.Module] = []
        for a, b in zip(widths, widths[1:], strict=False):
            layers += [nn.Conv2d(a, b, kernel, padding=kernel // 2), nn.ReLU()]
        self.paint = nn.Sequential(*layers[:-1])

    def forward(self, xy: torch.Tensor) -> torch.Tensor:
        return self.forward_with_centre(xy)[0]

    def forward_with_centre(self, xy: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(image logits (B, 1, 64, 64), the classifier's centre logits (B, 4096)): the second
        is what the release's intermediate softmax loss supervises with the one-hot centre."""
        centre = self.classifier(xy)
        return self.paint(centre.softmax(dim=1).view(-1, 1, CANVAS, CANVAS)), centre


class CoordConvRegressor(nn.Module):
    """One-hot plus coordinates, 1x1 convs 8, 8, 8, 3x3 convs 8, 2, no activations, global max
    pool (906). Max, not average: an average collapses to the mean coordinate."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(
            CoordConv2d(1, 8, 1),
            nn.Conv2d(8, 8, 1),
            nn.Conv2d(8, 8, 1),
            nn.Conv2d(8, 8, 3, padding=1),
            nn.Conv2d(8, 2, 3, padding=1),
            nn.AdaptiveMaxPool2d(1),
            nn.Flatten(),
        )

    def forward(self, onehot: torch.Tensor) -> torch.Tensor:
        return self.net(onehot)

    @torch.no_grad()
    def init_for_max_pool(self) -> CoordConvRegressor:
        """Start where the max pool sees the one-hot pixel. Why: the net is linear and a max
        pool passes gradient only to the winning position; if a coordinate extreme or a
        neighbour of the pixel wins at the start, the pixel's path never learns and the output
        settles on the mean coordinate (seen here with He init for most seeds). So, after He
        init: coordinate weights zero (the coordinates are learned from the winning pixel),
        the 3x3 convs identities (nothing spreads to the neighbours), and each output channel's
        sign set so the pixel's response is positive (it then beats the zeros around it)."""
        first, conv3a, conv3b = self.net[0], self.net[3], self.net[4]
        first.weight[:, first.in_channels :] = 0
        for conv in (conv3a, conv3b):
            nn.init.dirac_(conv.weight)
        probe = torch.zeros(2, 1, CANVAS, CANVAS)
        probe[1, 0, CANVAS // 2, CANVAS // 2] = 1
        maps = self.net[:-2](probe)
        response = maps[1, :, CANVAS // 2, CANVAS // 2] - maps[0, :, CANVAS // 2, CANVAS // 2]
        sign = torch.where(response < 0, -1.0, 1.0)
        conv3b.weight.mul_(sign.view(-1, 1, 1, 1))
        conv3b.bias.mul_(sign)
        return self


class DeconvPainter(nn.Module):
    """The deconv baseline: (x, y) as a 1x1 image, six stride-2 transposed convs 64m, 64m, 64m,
    32m, 32m, 1 with BatchNorm+ReLU after the first five, to a 64x64 map (409,921 at m=2, k=3)."""

    def __init__(self, mul: int = 2, kernel: int = 3, flat: bool = True) -> None:
        super().__init__()
        widths = [2, 64 * mul, 64 * mul, 64 * mul, 32 * mul, 32 * mul, 1]
        pad = (kernel - 1) // 2
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(widths, widths[1:], strict=False)):
            # Output padding makes each layer exactly double the size, as TF's 'same' does.
            layers.append(
                nn.ConvTranspose2d(a, b, kernel, 2, pad, output_padding=2 - kernel + 2 * pad)
            )
            if i < len(widths) - 2:
                layers += [nn.BatchNorm2d(b, momentum=0.1, eps=1e-5), nn.ReLU()]
        self.net = nn.Sequential(*layers)
        self.flat = flat

    def forward(self, xy: torch.Tensor) -> torch.Tensor:
        out = self.net(xy[:, :, None, None])
        return out.flatten(1) if self.flat else out


class ConvRegressorUniform(nn.Module):
    """The release's conv regressor for the uniform split: [3x3 conv 16, ReLU, maxpool 2] x 3,
    3x3 conv 16, ReLU, dense 64, ReLU, dense 2 (72,850)."""

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for a in (1, 16, 16):
            layers += [nn.Conv2d(a, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]
        layers += [nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(), nn.Flatten()]
        layers += [nn.Linear(16 * 8 * 8, 64), nn.ReLU(), nn.Linear(64, 2)]
        self.net = nn.Sequential(*layers)

    def forward(self, onehot: torch.Tensor) -> torch.Tensor:
        return self.net(onehot)


class ConvRegressorQuadrant(nn.Module):
    """The release's fully convolutional regressor for the quadrant split: stride-2 convs with
    BatchNorm, a 2-channel conv and global average pooling (12,914)."""

    def __init__(self) -> None:
        super().__init__()

        def conv(a: int, b: int, k: int, s: int) -> nn.Conv2d:
            return nn.Conv2d(a, b, k, s, padding=k // 2)

        relu = nn.ReLU
        self.net = nn.Sequential(
            conv(1, 16, 5, 2), relu(), conv(16, 16, 1, 1), relu(), nn.BatchNorm2d(16),
            conv(16, 16, 3, 1), relu(), conv(16, 16, 3, 2), relu(),
            conv(16, 16, 3, 2), nn.BatchNorm2d(16), relu(), conv(16, 16, 3, 2), relu(),
            conv(16, 16, 1, 1), relu(), conv(16, 16, 3, 2), relu(),
            conv(16, 2, 3, 1), relu(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )  # fmt: skip

    def forward(self, onehot: torch.Tensor) -> torch.Tensor:
        return self.net(onehot)


def he_normal_init(net: nn.Module) -> nn.Module:
    """The release's init: He-normal kernels, zero biases."""
    for module in net.modules():
        if isinstance(module, nn.Conv2d | nn.ConvTranspose2d | nn.Linear):
            nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
            if module.bias is not None:
                nn.init.zeros_(module.bias)
    return net


def build_model(task: str, model: str, split: str) -> nn.Module:
    """The network for (task, model), He-normal initialised (the CoordConv regressor then
    adjusted for its max pool); the conv regressor is the one made for `split`."""
    builders: dict[tuple[str, str], Callable[[], nn.Module]] = {
        ("classification", "coordconv"): CoordConvClassifier,
        ("classification", "conv"): DeconvPainter,
        ("rendering", "coordconv"): CoordConvRenderer,
        ("rendering", "conv"): lambda: DeconvPainter(flat=False),
        ("regression", "coordconv"): CoordConvRegressor,
        ("regression", "conv"): (
            ConvRegressorQuadrant if split == "quadrant" else ConvRegressorUniform
        ),
    }
    if (task, model) not in builders:
        raise ValueError(f"no model {model!r} for task {task!r}")
    net = he_normal_init(builders[(task, model)]())
    return net.init_for_max_pool() if isinstance(net, CoordConvRegressor) else net
