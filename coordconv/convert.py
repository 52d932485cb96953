"""`coordconvify`: turn chosen nn.Conv2d layers of an existing model into CoordConv2d."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
from torch import nn

from coordconv.layers import CoordConv2d

LayerSelector = Literal["first", "all"] | Callable[[str, nn.Conv2d], bool]


def _eligible(module: nn.Module) -> bool:
    return (
        isinstance(module, nn.Conv2d) and not isinstance(module, CoordConv2d) and module.groups == 1
    )


def _to_coordconv(conv: nn.Conv2d, with_r: bool) -> CoordConv2d:
    new = CoordConv2d(
        conv.in_channels,
        conv.out_channels,
        conv.kernel_size,
        stride=conv.stride,
        padding=conv.padding,
        dilation=conv.dilation,
        bias=conv.bias is not None,
        padding_mode=conv.padding_mode,
        device=conv.weight.device,
        dtype=conv.weight.dtype,
        with_r=with_r,
    )
    with torch.no_grad():
        new.weight.zero_()
        new.weight[:, : conv.in_channels].copy_(conv.weight)
        if conv.bias is not None:
            new.bias.copy_(conv.bias)
    new.train(conv.training)
    new.weight.requires_grad_(conv.weight.requires_grad)
    if conv.bias is not None:
        new.bias.requires_grad_(conv.bias.requires_grad)
    return new


def coordconvify(
    model: nn.Module, layers: LayerSelector = "first", with_r: bool = False
) -> nn.Module:
    """Replace nn.Conv2d layers of `model` by CoordConv2d, in place, and return `model`.

    The new layers keep the old weights and bias for the input channels and start with zero
    weights on the coordinate channels, so the model computes exactly what it did before until
    it is trained.

    `layers` chooses which convolutions change:
    - "first": the first eligible nn.Conv2d in `model.named_modules()` order, i.e. the order in
      which submodules were registered. For a sequential stack (NatureCNN, VGG, ResNet's `conv1`)
      that is the layer that sees the input. For a model with branches, registration order need
      not be data-flow order: the first registered branch's first conv is chosen. Pass a callable
      to pick another.
    - "all": every eligible nn.Conv2d.
    - a callable `(qualified_name, conv) -> bool`: those for which it returns True.

    Eligible means a plain nn.Conv2d with groups=1; grouped and depthwise convolutions are left
    as they are by "first" and "all", and selecting one with a callable raises ValueError.
    Layers that are already CoordConv2d are never converted twice.
    """
    if layers == "first" or layers == "all":
        chosen = [name for name, m in model.named_modules() if _eligible(m)]
        if layers == "first":
            chosen = chosen[:1]
    elif callable(layers):
        chosen = []
        for name, m in model.named_modules():
            if isinstance(m, nn.Conv2d) and not isinstance(m, CoordConv2d) and layers(name, m):
                if m.groups != 1:
                    raise ValueError(f"coordconvify cannot convert grouped conv {name!r}")
                chosen.append(name)
    else:
        raise ValueError(f"layers must be 'first', 'all' or a callable, got {layers!r}")
    if not chosen:
        raise ValueError("coordconvify found no nn.Conv2d layer to convert")

    for name in chosen:
        if name == "":
            raise ValueError("coordconvify needs a container model, got a bare nn.Conv2d")
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name)
        setattr(parent, child, _to_coordconv(getattr(parent, child), with_r))
    return model
