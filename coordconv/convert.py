"""`coordconvify`: turn chosen convolutions of an existing model into CoordConv layers, exactly."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Literal

import torch
from torch import nn
from torch.nn.modules.conv import _ConvNd  # the six torch convolutions' base (no public name)
from torch.nn.modules.lazy import LazyModuleMixin
from torch.nn.utils import parametrize

from coordconv.layers import (
    CoordConv1d,
    CoordConv2d,
    CoordConv3d,
    CoordConvLayer,
    CoordConvTranspose1d,
    CoordConvTranspose2d,
    CoordConvTranspose3d,
)

LayerSelector = Literal["first", "all"] | Callable[[str, nn.Module], bool]

# The one table of what can be converted: a plain torch convolution -> its CoordConv layer.
# Each CoordConv layer subclasses its key, so it computes the key's function on the data
# channels and adds a coordinate term that is zero while the coordinate weights are.
COORDCONV_FOR: dict[type[nn.Module], type[CoordConvLayer]] = {
    nn.Conv1d: CoordConv1d,
    nn.Conv2d: CoordConv2d,
    nn.Conv3d: CoordConv3d,
    nn.ConvTranspose1d: CoordConvTranspose1d,
    nn.ConvTranspose2d: CoordConvTranspose2d,
    nn.ConvTranspose3d: CoordConvTranspose3d,
}

# Every hook registry nn.Module keeps (forward, pre-forward, backward, state-dict ...), read
# from torch itself so a torch that adds one still has it carried over.
_HOOK_ATTRIBUTES = tuple(name for name in vars(nn.Module()) if "hook" in name)

# A weight's memory format by its rank; the rank-3 weights of 1-d convs have only one.
_STRIDED_FORMAT = {4: torch.channels_last, 5: torch.channels_last_3d}


def _type_name(cls: type) -> str:
    return f"nn.{cls.__name__}" if cls.__module__.startswith("torch.nn") else cls.__qualname__


def _check_types(types: type[nn.Module] | Iterable[type[nn.Module]]) -> tuple[type[nn.Module], ...]:
    chosen = (types,) if isinstance(types, type) else tuple(types)
    supported = ", ".join(_type_name(t) for t in COORDCONV_FOR)
    if not chosen:
        raise ValueError(f"coordconvify types must name at least one of {supported}")
    for t in chosen:
        if t not in COORDCONV_FOR:
            raise ValueError(f"coordconvify cannot convert type {t!r}; supported: {supported}")
    return chosen


def _why_not_exact(conv: nn.Module) -> str | None:
    """Why `conv` cannot become a CoordConv layer that computes exactly what it did, or None."""
    if isinstance(conv, LazyModuleMixin) and conv.has_uninitialized_params():
        return (
            "it is an uninitialized lazy module; run one forward pass first "
            "(it then becomes the plain convolution it stands for)"
        )
    if parametrize.is_parametrized(conv):
        return "its weight is parametrized (torch.nn.utils.parametrize); a copy would drop that"
    if type(conv) not in COORDCONV_FOR:
        return (
            f"it is a {_type_name(type(conv))}, a subclass that may compute something else; "
            "only plain torch convolutions are converted"
        )
    if conv.groups != 1:
        return f"it is a grouped conv (groups={conv.groups}); CoordConv layers take groups=1 only"
    extra = sorted(set(conv._parameters) - {"weight", "bias"}) + sorted(conv._buffers)
    extra += sorted(conv._modules)
    if extra or conv._parameters.get("weight") is None:
        # Old-style spectral_norm / weight_norm and pruning keep the real weight elsewhere and
        # rebuild `weight` in a forward pre-hook: a copy of `weight` would freeze one result.
        return (
            f"it carries state a plain convolution does not ({', '.join(extra) or 'no weight'}), "
            "as spectral_norm, weight_norm or pruning leave"
        )
    for name, p in conv.named_parameters(recurse=False):
        if type(p) is not nn.Parameter:
            return f"its {name} is a {type(p).__name__}, not a plain nn.Parameter"
        if p._backward_hooks or getattr(p, "_post_accumulate_grad_hooks", None):
            return f"its {name} has tensor hooks, which cannot move to a new parameter"
    return None


def _memory_format(weight: torch.Tensor) -> torch.memory_format:
    strided = _STRIDED_FORMAT.get(weight.dim())
    if strided is not None and not weight.is_contiguous():
        if weight.is_contiguous(memory_format=strided):
            return strided
    return torch.contiguous_format


def _to_coordconv(conv: _ConvNd, with_r: bool) -> CoordConvLayer:
    """The CoordConv layer that computes what `conv` computes, its coordinate weights zero."""
    options: dict[str, Any] = {
        "stride": conv.stride,
        "padding": conv.padding,  # a string ('same', 'valid') passes through as it is
        "dilation": conv.dilation,
        "bias": conv.bias is not None,
        "padding_mode": conv.padding_mode,
        "device": conv.weight.device,
        "dtype": conv.weight.dtype,
        "with_r": with_r,
    }
    if conv.transposed:
        options["output_padding"] = conv.output_padding
    # torch types kernel_size as a tuple of any length; it has the rank of conv's own type.
    kernel_size = conv.kernel_size
    new = COORDCONV_FOR[type(conv)](conv.in_channels, conv.out_channels, kernel_size, **options)  # type: ignore[arg-type]
    # A transposed weight is (in, out, *k), a plain one (out, in, *k): the input channels,
    # and so the coordinate rows after them, sit on a different axis.
    in_axis = 0 if conv.transposed else 1
    weight = torch.zeros_like(new.weight, memory_format=_memory_format(conv.weight))
    with torch.no_grad():
        weight.narrow(in_axis, 0, conv.in_channels).copy_(conv.weight)
    new.weight = nn.Parameter(weight, requires_grad=conv.weight.requires_grad)
    if conv.bias is not None and new.bias is not None:  # both or neither: `bias` above
        with torch.no_grad():
            new.bias.copy_(conv.bias)
        new.bias.requires_grad_(conv.bias.requires_grad)
    new.train(conv.training)
    # The faster paths (the pointwise matrix product, the bias in the coordinate term) round
    # differently from the convolution kernel, by about 1e-7: a converted layer keeps the plain
    # convolution's rounding, so it computes the old layer's outputs bit for bit.
    new._match_plain_rounding()
    # The same registries, not copies: handles returned by register_*_hook still remove them.
    for name in _HOOK_ATTRIBUTES:
        setattr(new, name, getattr(conv, name))
    # Attributes a user or a tool set on the conv (a tag, a qconfig) ride along; the forward of
    # a plain convolution reads none of them.
    for name, value in vars(conv).items():
        if name not in vars(new):
            setattr(new, name, value)
    return new


def coordconvify(
    model: nn.Module,
    layers: LayerSelector = "first",
    with_r: bool = False,
    types: type[nn.Module] | Iterable[type[nn.Module]] = (nn.Conv2d,),
) -> nn.Module:
    """Replace chosen convolutions of `model` by CoordConv layers, in place; return the model.

    Each new layer keeps the old weights and bias for the input channels and starts with zero
    weights on the coordinate channels, so the model computes exactly what it did before until
    it is trained. It also keeps the old layer's stride, padding (strings too), dilation,
    padding_mode, output_padding, device, dtype, the weight's memory format (channels_last),
    training mode, requires_grad, its hooks (forward, pre-forward, backward, state-dict: the
    same registries, shared with the old layer, so existing handles still remove them) and any
    attributes set on it.

    `types` says which torch convolutions count: nn.Conv2d by default; any of nn.Conv1d/2d/3d
    and nn.ConvTranspose1d/2d/3d (a class or a tuple of them). Each becomes the matching
    CoordConv1d/2d/3d or CoordConvTranspose1d/2d/3d. A convolution of
    those types (a subclass included) that is already a CoordConv layer is never converted again.

    `layers` chooses which convolutions of `types` change, in `model.named_modules()` order (the
    order in which submodules were registered):
    - "first": the first one. For a sequential stack (NatureCNN, VGG, ResNet's `conv1`) that is
      the layer that sees the input; for a model with branches it is the first registered
      branch's first conv (pass a callable to pick another). If that layer cannot be converted
      exactly, ValueError names it and says why: "first" means that layer, so no later layer
      is converted in its place. If it is already a CoordConv layer the model is left as it is,
      so converting "first" twice changes nothing.
    - "all": every one that can be converted exactly; the others are skipped.
    - a callable `(qualified_name, conv) -> bool`: those for which it returns True (for a conv
      registered under several names, True for any of them). Selecting one that cannot be
      converted exactly raises ValueError naming it.

    Converted exactly means the new layer computes the same outputs bit for bit (so a converted
    pointwise layer keeps the convolution kernel, not the matrix-product path a new CoordConv
    layer of that shape takes, which rounds differently). That holds for
    a plain torch convolution (exactly one of `types`, not a subclass) with groups=1 whose state
    is its weight and bias. Refused: subclasses that override forward (weight-standardised
    convs as in timm's StdConv2d), parametrized weights (torch.nn.utils.parametrize, the new
    spectral_norm), old-style spectral_norm / weight_norm / pruning (extra parameters and
    buffers), uninitialized lazy modules (run a forward pass first), grouped and depthwise
    convs, weights that are Parameter subclasses or carry tensor hooks.

    A convolution registered at several places (weights shared) becomes one new layer placed at
    all of them, so the sharing stays. `model` may itself be a convolution (as
    `nn.SyncBatchNorm.convert_sync_batchnorm` accepts): then the new layer is returned and
    `model` is left unchanged, so always use the return value.

    The new layers have new Parameters: an optimizer (or anything else holding parameters, such
    as an EMA copy or a `torch.compile`d wrapper) built before the conversion still holds the
    old ones; build it after.

    ValueError if `layers` or `types` is not one of the above, if `model` has no convolution of
    `types`, if a callable selects none of those not yet converted (the message lists them), or
    if "all" converts nothing and no layer was a CoordConv layer already (it names each layer
    skipped and why).
    """
    types = _check_types(types)
    coord_types = tuple(COORDCONV_FOR[t] for t in types)
    if not (layers in ("first", "all") or callable(layers)):
        raise ValueError(f"layers must be 'first', 'all' or a callable, got {layers!r}")

    # Every conv of `types` once, with every name it is registered at: a shared module is
    # decided once and replaced everywhere, or its sharing would break.
    names: dict[int, list[str]] = {}
    convs: dict[int, _ConvNd] = {}
    for name, m in model.named_modules(remove_duplicate=False):
        # _ConvNd first, for the type checker: every type `types` holds (_check_types) is one.
        if isinstance(m, _ConvNd) and isinstance(m, types):
            names.setdefault(id(m), []).append(name)
            convs[id(m)] = m
    if not convs:
        wanted = " or ".join(_type_name(t) for t in types)
        raise ValueError(f"coordconvify found no {wanted} layer to convert")

    def where(key: int) -> str:
        return f"{names[key][0]!r}" if names[key][0] else "the root module"

    chosen: list[int] = []
    skipped: list[str] = []
    for key, conv in convs.items():
        if isinstance(conv, coord_types):
            if layers == "first":
                break
            continue
        if callable(layers) and not any(layers(name, conv) for name in names[key]):
            continue
        reason = _why_not_exact(conv)
        if reason is not None:
            if layers == "all":
                skipped.append(f"{where(key)} ({reason})")
                continue
            raise ValueError(f"coordconvify cannot convert {where(key)} exactly: {reason}")
        chosen.append(key)
        if layers == "first":
            break
    offered = [where(key) for key, m in convs.items() if not isinstance(m, coord_types)]
    # Converting nothing is an answer only where an earlier call already did the work.
    if not chosen and skipped and len(offered) == len(convs):
        raise ValueError("coordconvify converted nothing; skipped " + "; ".join(skipped))
    if not chosen and callable(layers) and offered:
        raise ValueError(f"coordconvify: layers selected none of {', '.join(offered)}")

    new = {key: _to_coordconv(convs[key], with_r) for key in chosen}
    if id(model) in new:
        return new[id(model)]
    for parent in model.modules():
        # _modules, not named_children(): that yields a child registered twice in one parent once.
        for child_name, child in list(parent._modules.items()):
            if id(child) in new:
                setattr(parent, child_name, new[id(child)])
    return model
