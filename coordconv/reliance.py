"""Does a model use its coordinates? Ablating them, and measuring their share of each output.

- `coordinates(model, mode)`: a context manager under which every CoordConv layer of `model`
  sees its coordinate channels as `mode` says: "zero" (no position signal: each layer then
  computes what a plain convolution over its image columns, with its bias, computes), "flip"
  (each axis's coordinate mirrored along that axis: a wrong position with the same values, r
  unchanged) or "as-trained" (no change). A score that drops under "zero" or "flip" is a score
  that needed the coordinates.
- `coordinate_share(model, *inputs)`: per CoordConv layer, on the inputs it sees in one
  forward of `model`, how much of its output varies with the coordinates: the variance of the
  coordinate term against that of the image term, and the norm of the coordinate weights
  against that of the image weights.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, nn

from coordconv.layers import CoordConvLayer

COORDINATE_MODES = ("as-trained", "zero", "flip")


def coordinate_layers(model: nn.Module) -> list[tuple[str, CoordConvLayer]]:
    """(qualified name, layer) of each CoordConv layer in `model` (itself included), in
    `named_modules` order, each layer once."""
    return [(name, m) for name, m in model.named_modules() if isinstance(m, CoordConvLayer)]


def check_mode(mode: str) -> str:
    """`mode` if it is one of COORDINATE_MODES; ValueError naming it otherwise."""
    if mode not in COORDINATE_MODES:
        raise ValueError(
            f"coordinate mode must be one of {', '.join(COORDINATE_MODES)}, got {mode!r}"
        )
    return mode


@contextmanager
def coordinates(model: nn.Module, mode: str) -> Iterator[list[tuple[str, CoordConvLayer]]]:
    """Within the block, every CoordConv layer of `model` sees its coordinates as `mode` says
    ("zero", "flip" or "as-trained"); on exit each layer's mode is what it was (blocks nest).

    Works in train and eval mode, with the eval-time cache of the coordinate term (the mode is
    part of its key), under autocast, and for every rank and the transposed layers. Graphs
    traced, exported or compiled within the block compute the ablated coordinates; a
    TorchScript-scripted model is a copy and does not see the mode. Yields the layers.
    ValueError for an unknown mode or a model without CoordConv layers (nothing to ablate).
    """
    check_mode(mode)
    layers = coordinate_layers(model)
    if not layers:
        raise ValueError(f"{type(model).__name__} has no CoordConv layer: no coordinates to ablate")
    before = [layer._coord_mode for _, layer in layers]
    try:
        for _, layer in layers:
            layer._coord_mode = mode
        yield layers
    finally:
        for (_, layer), mode_before in zip(layers, before, strict=True):
            layer._coord_mode = mode_before


def coordinate_share(model: nn.Module, *inputs: Any, **kwargs: Any) -> dict[str, dict[str, float]]:
    """Runs `model(*inputs, **kwargs)` once without gradients and returns, for each CoordConv
    layer it calls (on the layer's first call), keyed by its qualified name:

    - `share`: v_c / (v_c + v_x) in [0, 1], where v_x is the variance of the image term over the
      batch and positions and v_c that of the coordinate term over positions, each about its
      channel's mean and averaged over output channels (see `coordinate_terms`). A per-channel
      constant is not counted: it does what a bias does. 0 for a layer whose coordinate weights
      are zero, as at the paired start; 0.5 when the two vary alike.
    - `weight_ratio`: Frobenius norm of the coordinate columns of the weight over that of the
      image columns.
    - `coord_std`, `image_std`: the square roots of v_c and v_x.

    Computed in float32 whatever the model's autocast. The global RNG is left as it was (a
    policy's forward may sample), so calling this inside training does not change what is
    learned. ValueError for a model without CoordConv layers.
    """
    layers = coordinate_layers(model)
    if not layers:
        raise ValueError(f"{type(model).__name__} has no CoordConv layer")
    found: dict[str, dict[str, float]] = {}

    def hook_for(name: str, layer: CoordConvLayer):
        def hook(_: nn.Module, args: tuple) -> None:  # called with `layer` itself
            if name not in found:
                found[name] = _layer_share(layer, args[0])

        return hook

    handles = [layer.register_forward_pre_hook(hook_for(name, layer)) for name, layer in layers]
    devices = sorted({p.device.index or 0 for p in model.parameters() if p.device.type == "cuda"})
    try:
        with torch.no_grad(), torch.random.fork_rng(devices=devices):
            model(*inputs, **kwargs)
    finally:
        for handle in handles:
            handle.remove()
    return {name: found[name] for name, _ in layers if name in found}


def _layer_share(layer: CoordConvLayer, x: Tensor) -> dict[str, float]:
    if layer.weight.dtype != torch.float32:
        # A half-precision layer: measure a float32 copy (its own caches stay untouched).
        layer = copy.deepcopy(layer).float()
    with torch.autocast(x.device.type, enabled=False):
        image, coord = layer.coordinate_terms(x.float())
        image_w, coord_w = layer.weight.split(
            [layer.in_channels, layer.coord_channels], layer._input_axis()
        )
        image_norm, coord_norm = float(image_w.norm()), float(coord_w.norm())
    v_x = _channel_variance(image)
    v_c = _channel_variance(coord)
    total = v_x + v_c
    return {
        "share": v_c / total if total > 0 else 0.0,
        "weight_ratio": coord_norm / image_norm if image_norm > 0 else 0.0,
        "coord_std": v_c**0.5,
        "image_std": v_x**0.5,
    }


def _channel_variance(term: Tensor) -> float:
    """The variance over every axis but the channel axis (1), averaged over channels."""
    axes = [0] + list(range(2, term.dim()))
    return float(term.var(dim=axes, unbiased=False).mean())
