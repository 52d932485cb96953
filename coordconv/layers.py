"""CoordConv layers: convolutions that also see their input's coordinates.

Each layer owns one weight over [input channels, coordinate channels], exactly the weight of the
plain convolution of `AddCoords(x)`. The forward pass does not build that concatenation: by
linearity, conv(concat(x, C), [W_x, W_c]) = conv(x, W_x) + conv(C, W_c), and the second term
depends only on the weights and the spatial size, so it is computed once at batch size 1 and
broadcast over the batch. Padding modes pad channel by channel, so the identity holds for all
of them, and for the transposed convolutions too.

Coordinates span [-1, 1] unless `coord_range=(low, high)` says otherwise (the release's
detection code used (0, 1)); with zero padding the two differ in more than a rescaling, since
the padded border reads 0 either way.

Two paths, chosen once per layer by a fixed rule, give the same numbers:
- pointwise layers (every kernel size 1, stride 1, no padding): the coordinate term plus the
  bias is one (out_channels, *S) map, and the layer is one batched matrix product with that
  map as its addend (`torch.baddbmm`), which on CPU also beats the plain 1x1 convolution;
- all others: conv(x, W_x) without bias, then the coordinate term plus the bias, computed at
  batch size 1, added in place. The bias rides in the term because the batch sum of the
  output's gradient that the term needs anyway then serves the bias too, and the big
  convolution's backward skips its own bias reduction.
Layers made by `coordconvify` keep the bias in the convolution and skip the pointwise path, so
that they compute the replaced layer's outputs bit for bit.
Two things are cached per layer, one entry each, in plain attributes (no global state):
- the coordinate grid, which no weight enters, per (spatial shape, device, dtype, inference
  mode, CUDA stream, coordinate mode, with_r, coord_range), in every mode. Rebuilt, it costs
  each forward of a 2-D layer 19 small kernels (29 with r), and on a GPU a small layer's step
  is paced by kernel launches, not arithmetic. Nothing writes to it, so autograd can save the
  same tensor step after step.
- in eval mode under `torch.no_grad`, the whole coordinate term, per the grid's key plus
  autocast and the weight's and bias's storage and version: an optimizer step,
  `load_state_dict`, `.to()` or any in-place write changes the version or storage and so the
  key. Writes through `.data` bypass the version counter; call `clear_coordinate_cache()`
  after them.
Neither cache serves while a graph is built (scripting, tracing, compiling, exporting): the graph
computes the grid from its input, so its spatial sizes stay symbolic. Nor during CUDA graph
capture, whose tensors hold no values until the graph replays, nor for inputs that are tensor
subclasses (fake tensors); what a `torch.func` transform makes is not kept. The stream is in
the key because a tensor is safe to read without a sync only on the stream that wrote it.
Copies and pickles start with both caches empty.

`coordconv.coordinates(model, "zero" | "flip")` shows every layer of a model zeroed or mirrored
coordinates for a while (coordinate ablation); the mode is part of both cache keys.

The layers subclass the matching `torch.nn` convolution, so code that finds convolutions by type
(SB3's orthogonal init, weight-decay filters, fusers) treats them as one. They script with
`torch.jit.script`, export with `torch.export` and `torch.onnx.export` with dynamic spatial
sizes, and compile with `torch.compile`.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn
from torch.nn.common_types import _size_1_t, _size_2_t, _size_3_t

from coordconv.add_coords import (
    DEFAULT_RANGE,
    check_coord_range,
    check_input_rank,
    coordinate_grid,
    range_repr,
)

PaddingMode = Literal["zeros", "reflect", "replicate", "circular"]
Device = torch.device | str | None


def _channels_with_coordinates(
    name: str, rank: int, in_channels: int, with_r: bool, groups: int, coord_range: object
) -> int:
    """The channel count of the weight, in_channels + coordinates; ValueError for bad settings.

    Checked before the base class allocates the weight, so a bad value fails fast and clearly."""
    if groups != 1:
        # With groups, each group would need its own copy of the coordinates; no use case yet.
        raise ValueError(f"{name} supports groups=1 only, got groups={groups}")
    check_coord_range(coord_range)  # type: ignore[arg-type]
    return in_channels + rank + int(with_r)


class _AddBatchTerm(torch.autograd.Function):
    """out += term in place, term (1, ...) broadcast over out's batch. Autograd's own backward
    of that addition sums the gradient over the batch axis; for a contiguous float32 gradient
    this one takes the sum as a product with a row of ones, which CPU BLAS does about twice as
    fast (0.26 ms against 0.55 ms for the Atari layer's 256 x 32 x 20 x 20 gradient)."""

    @staticmethod
    def forward(ctx, out: Tensor, term: Tensor) -> Tensor:  # type: ignore[override]
        ctx.mark_dirty(out)
        return out.add_(term)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, Tensor]:  # type: ignore[override]
        if grad.dtype != torch.float32 or not grad.is_contiguous():
            return grad, grad.sum(0, keepdim=True)
        batch = grad.shape[0]
        ones = grad.new_ones(1, batch)
        return grad, torch.mm(ones, grad.reshape(batch, -1)).view((1,) + grad.shape[1:])


def _storable(t: Tensor) -> bool:
    """Whether a tensor the forward made may outlive the call in a cache: a plain tensor, not
    a fake one or a `torch.func` transform's wrapper (those are valid inside their call only)."""
    # torch has no public test for a transform's wrapper; torch.func's own code uses this one.
    return type(t) is Tensor and not torch._C._functorch.is_functorch_wrapped_tensor(t)


class _CoordinateLayer:
    """What all six layers share (mixed into the torch convolution): the coordinate settings,
    the input check, the cached coordinate grid and term, and the repr. Plain attributes only, so
    TorchScript can compile them."""

    __jit_ignored_attributes__ = ["_term_cache", "_grid_cache"]

    def _set_coordinates(
        self, name: str, rank: int, in_channels: int, with_r: bool, coord_range: object
    ) -> None:
        self._name = name  # for messages: type(self).__name__ does not compile under TorchScript
        self._rank = rank
        # in_channels names the data channels the layer takes, as for the plain convolution.
        self.in_channels = in_channels
        self.with_r = with_r
        self.coord_channels = rank + int(with_r)
        self.coord_range = check_coord_range(coord_range)  # type: ignore[arg-type]
        self._plain_rounding = False
        self._pointwise = False
        self._term_cache: tuple[tuple, Tensor] | None = None
        self._grid_cache: tuple[tuple, Tensor] | None = None
        # What the layer is shown as its coordinates: set by coordconv.coordinates(), which
        # see; a str so that TorchScript compiles the layer (scripted layers ignore it).
        self._coord_mode = "as-trained"

    def _match_plain_rounding(self) -> None:
        """Round as the plain torch convolution does: the bias added inside the convolution,
        no pointwise matrix product. `coordconvify` calls this so that a converted layer computes
        the replaced one's outputs bit for bit while its coordinate weights are zero."""
        self._plain_rounding = True
        self._pointwise = False
        self._term_cache = None

    def clear_coordinate_cache(self) -> None:
        """Forget the cached coordinate grid and term (needed only after writes through `.data`,
        or to free their memory)."""
        self._term_cache = None
        self._grid_cache = None

    def __getstate__(self) -> dict:
        # A pickled or deep-copied layer starts without the caches: they belong to this storage.
        state = self.__dict__.copy()
        state["_term_cache"] = None
        state["_grid_cache"] = None
        return state

    def __setstate__(self, state: dict) -> None:
        # Layers pickled by releases before the flag existed round the faster way; those pickled
        # before the grid cache existed start with it empty.
        state.setdefault("_plain_rounding", False)
        state.setdefault("_grid_cache", None)
        state.setdefault("_coord_mode", "as-trained")
        super().__setstate__(state)  # type: ignore[misc]

    @torch.jit.unused
    def _cache_key(self, x: Tensor) -> tuple | None:
        """What any cached tensor for input `x` is keyed by, or None where no cache may serve:
        while a graph is built (tracing, compiling, exporting: it must compute from its input,
        or its spatial sizes would freeze), during CUDA graph capture, and for tensor subclasses
        such as fake tensors."""
        if torch.jit.is_tracing() or torch.compiler.is_compiling():
            return None
        if torch.compiler.is_exporting() or type(x) is not Tensor:
            return None
        stream = None
        if x.device.type == "cuda":
            # Kernels captured into a CUDA graph run only when it replays: a tensor made during
            # capture holds no values yet. A tensor is safe to read, without a sync, only on the
            # stream that wrote it.
            if torch.cuda.is_current_stream_capturing():
                return None
            stream = torch.cuda.current_stream(x.device).stream_id
        inference = torch.is_inference_mode_enabled()  # inference tensors cannot join autograd
        return (tuple(x.shape[2:]), x.device, x.dtype, inference, stream, self._coord_mode)

    def _fixed_term(self, x: Tensor, coord_weight: Tensor, extra: list[int]) -> Tensor:
        """The part of the output that depends on the weights and x's spatial shape only:
        `_compute_term(x, coord_weight, extra)`, from the cache in eval mode under no_grad."""
        if torch.jit.is_scripting() or self.training or torch.is_grad_enabled():  # type: ignore[attr-defined]
            return self._compute_term(x, coord_weight, extra)  # type: ignore[attr-defined]
        return self._cached_term(x, coord_weight, extra)

    @torch.jit.unused
    def _cached_term(self, x: Tensor, coord_weight: Tensor, extra: list[int]) -> Tensor:
        key = self._cache_key(x)
        if key is None:
            return self._compute_term(x, coord_weight, extra)  # type: ignore[attr-defined]
        device = x.device.type
        autocast = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else None
        key += (autocast, tuple(extra), self._plain_rounding, self._pointwise)
        for p in (self.weight, self.bias):  # type: ignore[attr-defined]
            key += (None,) if p is None else (p.data_ptr(), p._version, p.dtype, p.device)
        entry = self._term_cache
        if entry is None or entry[0] != key:
            term = self._compute_term(x, coord_weight, extra)  # type: ignore[attr-defined]
            entry = (key, term)
            if _storable(term):
                self._term_cache = entry
        return entry[1]

    def _add_term(self, out: Tensor, term: Tensor) -> Tensor:
        """out + term, in place: the convolution's backward does not need its output, and
        skipping a second batch-sized allocation is most of what makes the layer cost what a
        plain conv costs."""
        if torch.jit.is_scripting() or not torch.is_grad_enabled():
            return out.add_(term)
        return self._add_term_with_grad(out, term)

    @torch.jit.unused
    def _add_term_with_grad(self, out: Tensor, term: Tensor) -> Tensor:
        # Traced, exported and compiled graphs keep the plain addition: a custom autograd
        # Function would be an opaque node there.
        graph = torch.jit.is_tracing() or torch.compiler.is_compiling()
        if graph or torch.compiler.is_exporting() or not term.requires_grad:
            return out.add_(term)
        return _AddBatchTerm.apply(out, term)

    def _term_bias(self) -> Tensor | None:
        """The bias the coordinate term carries: the layer's, unless it rounds as the plain
        convolution does (then the convolution adds it)."""
        return None if self._plain_rounding else self.bias  # type: ignore[attr-defined]

    def _data_bias(self) -> Tensor | None:
        return self.bias if self._plain_rounding else None  # type: ignore[attr-defined]

    def _check_input(self, x: Tensor) -> None:
        check_input_rank(x, self._rank, self._name)
        if x.shape[1] != self.in_channels:
            raise ValueError(
                f"{self._name} expects {self.in_channels} input channels, got {x.shape[1]}"
            )

    def _coordinates(self, x: Tensor) -> Tensor:
        """x's coordinate channels as one example, (1, coord_channels, *x's spatial shape),
        from the cache where one may serve."""
        if torch.jit.is_scripting():
            return self._make_coordinates(x)
        return self._cached_coordinates(x)

    def _make_coordinates(self, x: Tensor) -> Tensor:
        low, high = self.coord_range
        # A torch.Size is a tuple of ints: TorchScript reads it as the List[int] annotated.
        coords = coordinate_grid(x.shape[2:], self.with_r, low, high, x.device, x.dtype)  # type: ignore[arg-type]
        return coords.unsqueeze(0)

    @torch.jit.unused
    def _cached_coordinates(self, x: Tensor) -> Tensor:
        key = self._cache_key(x)
        if key is None:
            return self._ablated(self._make_coordinates(x))
        key += (self.with_r, self.coord_range)
        entry = self._grid_cache
        if entry is None or entry[0] != key:
            entry = (key, self._ablated(self._make_coordinates(x)))
            if _storable(entry[1]):
                self._grid_cache = entry
        return entry[1]

    @torch.jit.unused
    def _ablated(self, coords: Tensor) -> Tensor:
        """`coords` (1, d, *S) as the current coordinate mode shows them: as they are, zero, or
        each axis's channel mirrored along its axis (the same values at the mirrored places;
        r, symmetric under every mirror, stays as it is)."""
        if self._coord_mode == "zero":
            return torch.zeros_like(coords)
        if self._coord_mode == "flip":
            axes = [coords[:, k].flip(1 + k) for k in range(self._rank)]
            return torch.stack(axes + [coords[:, k] for k in range(self._rank, coords.shape[1])], 1)
        return coords

    @torch.jit.unused
    def coordinate_terms(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """The two parts of the layer's output for input `x`, without the bias: the image term
        (the convolution of x by the image columns of the weight, batch-sized) and the
        coordinate term (of the coordinates, as the current mode shows them, by the coordinate
        columns, at batch size 1). Their sum plus the bias is the output."""
        self._check_input(x)
        weight = self.weight  # type: ignore[attr-defined]
        coords = self._coordinates(x)
        if self._input_axis() == 1:
            parts = weight.split([self.in_channels, self.coord_channels], 1)
            conv = self._conv_forward  # type: ignore[attr-defined]
            return conv(x, parts[0], None), conv(coords, parts[1], None)
        parts = weight.split([self.in_channels, self.coord_channels], 0)
        padding = self._output_padding(  # type: ignore[attr-defined]
            x,
            None,
            self.stride,  # type: ignore[attr-defined]
            self.padding,  # type: ignore[attr-defined]
            self.kernel_size,  # type: ignore[attr-defined]
            self._rank,
            self.dilation,  # type: ignore[attr-defined]
        )
        return (
            self._transpose(x, parts[0], None, padding),  # type: ignore[attr-defined]
            self._transpose(coords, parts[1], None, padding),  # type: ignore[attr-defined]
        )

    def _input_axis(self) -> int:
        """The weight axis that holds the input channels: 1 for convolutions, 0 transposed."""
        return 0 if self.transposed else 1  # type: ignore[attr-defined]

    def extra_repr(self) -> str:
        text = super().extra_repr() + f", with_r={self.with_r}"  # type: ignore[misc]
        return text + range_repr(self.coord_range)


class _CoordConvNd(_CoordinateLayer):
    """The forward pass of CoordConv1d/2d/3d (mixed into nn.Conv1d/2d/3d)."""

    def _choose_path(self) -> None:
        # A 1x1 convolution with stride 1 and no padding is a matrix product per example; as
        # one GEMM with the fixed term as its addend it beats the plain 1x1 convolution on CPU.
        no_padding = isinstance(self.padding, str) or not any(self.padding)  # type: ignore[attr-defined]
        self._pointwise = (
            all(k == 1 for k in self.kernel_size)  # type: ignore[attr-defined]
            and all(s == 1 for s in self.stride)  # type: ignore[attr-defined]
            and no_padding
        )

    def forward(self, x: Tensor) -> Tensor:
        self._check_input(x)
        # One split, not two slices: its backward writes the weight's gradient in one piece.
        parts = self.weight.split([self.in_channels, self.coord_channels], 1)  # type: ignore[attr-defined]
        term = self._fixed_term(x, parts[1], [])
        if self._pointwise:
            rows = parts[0].flatten(1).expand(x.shape[0], -1, -1)
            return torch.baddbmm(term, rows, x.flatten(2)).unflatten(2, x.shape[2:])
        data_term = self._conv_forward(x, parts[0], self._data_bias())  # type: ignore[attr-defined]
        return self._add_term(data_term, term)

    def _compute_term(self, x: Tensor, coord_weight: Tensor, extra: list[int]) -> Tensor:
        """The coordinate term with the term's bias, at batch size 1; for the pointwise path
        (1, out, S flattened)."""
        coords = self._coordinates(x)
        bias = self._term_bias()
        if not self._pointwise:
            return self._conv_forward(coords, coord_weight, bias)  # type: ignore[attr-defined]
        term = torch.matmul(coord_weight.flatten(1), coords.flatten(2))
        return term if bias is None else term + bias.unsqueeze(1)


class _CoordConvTransposeNd(_CoordinateLayer):
    """The forward pass of CoordConvTranspose1d/2d/3d (mixed into nn.ConvTranspose1d/2d/3d).

    The weight has the transposed convolution's layout, (in_channels + coordinates,
    out_channels, *kernel_size): the coordinate weights are its last rows."""

    def forward(self, x: Tensor, output_size: list[int] | None = None) -> Tensor:
        self._check_input(x)
        output_padding = self._output_padding(  # type: ignore[attr-defined]
            x,
            output_size,
            self.stride,  # type: ignore[attr-defined]
            self.padding,  # type: ignore[attr-defined]
            self.kernel_size,  # type: ignore[attr-defined]
            self._rank,
            self.dilation,  # type: ignore[attr-defined]
        )
        parts = self.weight.split([self.in_channels, self.coord_channels], 0)  # type: ignore[attr-defined]
        term = self._fixed_term(x, parts[1], output_padding)
        data_term = self._transpose(x, parts[0], self._data_bias(), output_padding)
        return self._add_term(data_term, term)

    def _compute_term(self, x: Tensor, coord_weight: Tensor, extra: list[int]) -> Tensor:
        """The coordinate term with the term's bias, at batch size 1; `extra` is the output
        padding."""
        return self._transpose(self._coordinates(x), coord_weight, self._term_bias(), extra)

    def _transpose(
        self, x: Tensor, weight: Tensor, bias: Tensor | None, output_padding: list[int]
    ) -> Tensor:
        return torch.convolution(
            x,
            weight,
            bias,
            self.stride,  # type: ignore[attr-defined]
            self.padding,  # type: ignore[attr-defined]
            self.dilation,  # type: ignore[attr-defined]
            True,
            output_padding,
            1,
        )


def _doc(summary: str, rank: int, transposed: bool) -> str:
    """A layer's docstring: `summary`, then its parameters (the torch convolution's, plus the
    coordinates'), in the layout torch's own layers use."""
    ints = "an int or a tuple of 1 int" if rank == 1 else f"an int or a tuple of {rank} ints"
    padding = (
        f"dilation * (kernel_size - 1) - padding zeros added to each side of the input; {ints}"
        if transposed
        else f"padding added to each side of the input; {ints}, or 'valid' or 'same'"
    )
    modes = (
        "'zeros' only, as for the torch transposed convolutions"
        if transposed
        else "'zeros', 'reflect', 'replicate' or 'circular'; the coordinate channels are padded "
        "the same way (zeros: the border reads 0 whatever the coord_range)"
    )
    output_padding = (
        f"\n        output_padding: extra size added to one side of each output axis; {ints}."
        if transposed
        else ""
    )
    layout = (
        "(in_channels + d, out_channels, *kernel_size)"
        if transposed
        else ("(out_channels, in_channels + d, *kernel_size)")
    )
    return f"""{summary}

    Args:
        in_channels: channels of the input; the layer adds its d = {rank} + with_r coordinate
            channels itself.
        out_channels: channels of the output.
        kernel_size: size of the kernel; {ints}.
        stride: stride of the convolution; {ints}. Default: 1.
        padding: {padding}. Default: 0.{output_padding}
        dilation: spacing between kernel elements; {ints}. Default: 1.
        groups: must be 1 (each group would need its own coordinates).
        bias: if True, a learnable bias is added to the output. Default: True.
        padding_mode: {modes}. Default: 'zeros'.
        device: where the parameters are made. Default: torch's default device.
        dtype: dtype of the parameters. Default: torch's default dtype.
        with_r: if True, also append r, the distance from the centre. Default: False.
        coord_range: (low, high), the span of each coordinate channel (see
            `coordinate_channels`): (-1, 1) as in the paper, (0, 1) as in the release's
            detection code. Default: (-1, 1).

    Attributes:
        weight: {layout}, the plain convolution's weight over the input channels followed by
            the coordinate channels.
        bias: (out_channels,), or None without bias.
        coord_channels: d, the number of coordinate channels.

    Shape: input (N, in_channels, *S) with {rank} spatial axes S; output as for the torch
    convolution of an input with in_channels + d channels.
    """


class CoordConv1d(_CoordConvNd, nn.Conv1d):
    __doc__ = _doc(
        "nn.Conv1d over the input plus one coordinate channel along L (and r with `with_r`).",
        1,
        transposed=False,
    )

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: _size_1_t,
        stride: _size_1_t = 1,
        padding: _size_1_t | str = 0,
        dilation: _size_1_t = 1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: PaddingMode = "zeros",
        device: Device = None,
        dtype: torch.dtype | None = None,
        with_r: bool = False,
        coord_range: tuple[float, float] = DEFAULT_RANGE,
    ) -> None:
        name = "CoordConv1d"
        channels = _channels_with_coordinates(name, 1, in_channels, with_r, groups, coord_range)
        super().__init__(
            channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
            padding_mode, device, dtype,
        )  # fmt: skip
        self._set_coordinates(name, 1, in_channels, with_r, coord_range)
        self._choose_path()


class CoordConv2d(_CoordConvNd, nn.Conv2d):
    __doc__ = _doc(
        "nn.Conv2d over the input plus coordinate channels i (along H) and j (along W), and r.",
        2,
        transposed=False,
    )

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: _size_2_t,
        stride: _size_2_t = 1,
        padding: _size_2_t | str = 0,
        dilation: _size_2_t = 1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: PaddingMode = "zeros",
        device: Device = None,
        dtype: torch.dtype | None = None,
        with_r: bool = False,
        coord_range: tuple[float, float] = DEFAULT_RANGE,
    ) -> None:
        name = "CoordConv2d"
        channels = _channels_with_coordinates(name, 2, in_channels, with_r, groups, coord_range)
        super().__init__(
            channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
            padding_mode, device, dtype,
        )  # fmt: skip
        self._set_coordinates(name, 2, in_channels, with_r, coord_range)
        self._choose_path()


class CoordConv3d(_CoordConvNd, nn.Conv3d):
    __doc__ = _doc(
        "nn.Conv3d over the input plus coordinate channels along D, H and W, and r.",
        3,
        transposed=False,
    )

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: _size_3_t,
        stride: _size_3_t = 1,
        padding: _size_3_t | str = 0,
        dilation: _size_3_t = 1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: PaddingMode = "zeros",
        device: Device = None,
        dtype: torch.dtype | None = None,
        with_r: bool = False,
        coord_range: tuple[float, float] = DEFAULT_RANGE,
    ) -> None:
        name = "CoordConv3d"
        channels = _channels_with_coordinates(name, 3, in_channels, with_r, groups, coord_range)
        super().__init__(
            channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
            padding_mode, device, dtype,
        )  # fmt: skip
        self._set_coordinates(name, 3, in_channels, with_r, coord_range)
        self._choose_path()


class CoordConvTranspose1d(_CoordConvTransposeNd, nn.ConvTranspose1d):
    __doc__ = _doc(
        "nn.ConvTranspose1d over the input plus one coordinate channel along L (and r).",
        1,
        transposed=True,
    )

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: _size_1_t,
        stride: _size_1_t = 1,
        padding: _size_1_t = 0,
        output_padding: _size_1_t = 0,
        groups: int = 1,
        bias: bool = True,
        dilation: _size_1_t = 1,
        padding_mode: Literal["zeros"] = "zeros",
        device: Device = None,
        dtype: torch.dtype | None = None,
        with_r: bool = False,
        coord_range: tuple[float, float] = DEFAULT_RANGE,
    ) -> None:
        name = "CoordConvTranspose1d"
        channels = _channels_with_coordinates(name, 1, in_channels, with_r, groups, coord_range)
        super().__init__(
            channels, out_channels, kernel_size, stride, padding, output_padding, groups, bias,
            dilation, padding_mode, device, dtype,
        )  # fmt: skip
        self._set_coordinates(name, 1, in_channels, with_r, coord_range)


class CoordConvTranspose2d(_CoordConvTransposeNd, nn.ConvTranspose2d):
    __doc__ = _doc(
        "nn.ConvTranspose2d over the input plus its coordinate channels i, j (and r).",
        2,
        transposed=True,
    )

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: _size_2_t,
        stride: _size_2_t = 1,
        padding: _size_2_t = 0,
        output_padding: _size_2_t = 0,
        groups: int = 1,
        bias: bool = True,
        dilation: _size_2_t = 1,
        padding_mode: Literal["zeros"] = "zeros",
        device: Device = None,
        dtype: torch.dtype | None = None,
        with_r: bool = False,
        coord_range: tuple[float, float] = DEFAULT_RANGE,
    ) -> None:
        name = "CoordConvTranspose2d"
        channels = _channels_with_coordinates(name, 2, in_channels, with_r, groups, coord_range)
        super().__init__(
            channels, out_channels, kernel_size, stride, padding, output_padding, groups, bias,
            dilation, padding_mode, device, dtype,
        )  # fmt: skip
        self._set_coordinates(name, 2, in_channels, with_r, coord_range)


class CoordConvTranspose3d(_CoordConvTransposeNd, nn.ConvTranspose3d):
    __doc__ = _doc(
        "nn.ConvTranspose3d over the input plus coordinate channels along D, H and W (and r).",
        3,
        transposed=True,
    )

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: _size_3_t,
        stride: _size_3_t = 1,
        padding: _size_3_t = 0,
        output_padding: _size_3_t = 0,
        groups: int = 1,
        bias: bool = True,
        dilation: _size_3_t = 1,
        padding_mode: Literal["zeros"] = "zeros",
        device: Device = None,
        dtype: torch.dtype | None = None,
        with_r: bool = False,
        coord_range: tuple[float, float] = DEFAULT_RANGE,
    ) -> None:
        name = "CoordConvTranspose3d"
        channels = _channels_with_coordinates(name, 3, in_channels, with_r, groups, coord_range)
        super().__init__(
            channels, out_channels, kernel_size, stride, padding, output_padding, groups, bias,
            dilation, padding_mode, device, dtype,
        )  # fmt: skip
        self._set_coordinates(name, 3, in_channels, with_r, coord_range)


# Any of the six layers, as a type: what they share (_CoordinateLayer) is no nn.Module.
CoordConvLayer = (
    CoordConv1d
    | CoordConv2d
    | CoordConv3d
    | CoordConvTranspose1d
    | CoordConvTranspose2d
    | CoordConvTranspose3d
)
