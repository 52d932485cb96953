"""The classifiers: torchvision's ResNet-18, random init, behind one 1x1 front layer.

The paper put one extra 1x1 CoordConv layer with 8 outputs at the input of ResNet-50 on
ImageNet. Every variant here has that front layer, so a seed's three models differ in
coordinate weights only:
- `conv`: the control. front = nn.Conv2d(1, 8, 1), then the ResNet, its conv1 taking 8
  channels. A plain 1x1 conv, not no layer at all: without it the control would also differ
  in an extra layer's parameters and in how Adam steps through them.
- `coordconv`: the paper's layer. front = CoordConv2d(1, 8, 1), its image weights and bias the
  control's, its 16 coordinate weights starting at zero (coordconvify's conversion of the
  control's front layer).
- `coordconvify-first`: `coordconvify(resnet, "first")` on the control's ResNet: its stem conv1
  sees coordinates (zero-initialised), the front layer stays plain; what a user gets by
  converting a torchvision model's first conv.

ResNet-18, not the paper's ResNet-50: a 2-core CPU trains it on 28x28 and 56x56 digits in
about a minute a run. The stem is ImageNet's (7x7 conv stride 2, then the 3x3 max pool): it
keeps the network the paper tested and a quarter of the cost of a CIFAR-style 3x3 stride-1
stem; ResNet-18's global average pool still sees at least a 1x1 map from a 28x28 input.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn
from torchvision.models import resnet18

from coordconv import coordconvify

VARIANTS = ("conv", "coordconv", "coordconvify-first")
FRONT_CHANNELS = 8  # the paper's extra layer: 1x1, 8 outputs
CLASSES = 10


def build_classifier(variant: str, seed: int) -> nn.Sequential:
    """Sequential(front, resnet) for `variant` (one of VARIANTS); its image weights are drawn
    from `seed` alone, the same for every variant."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; valid: {', '.join(VARIANTS)}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        front = nn.Conv2d(1, FRONT_CHANNELS, kernel_size=1)
        resnet = resnet18(weights=None, num_classes=CLASSES)
        stem = resnet.conv1  # only its input channels change: 1 image channel x 8 front outputs
        resnet.conv1 = nn.Conv2d(
            FRONT_CHANNELS, stem.out_channels, stem.kernel_size, stem.stride, stem.padding,
            bias=False,
        )  # fmt: skip
    model = nn.Sequential(OrderedDict(front=front, resnet=resnet))
    if variant == "coordconv":
        coordconvify(model, "first")  # the first conv registered is the front layer
    elif variant == "coordconvify-first":
        coordconvify(resnet, "first")  # ResNet's conv1
    return model
