"""NatureCNN with CoordConv layers, as an SB3 features extractor."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Literal

import gymnasium as gym
import torch
from stable_baselines3.common.torch_layers import NatureCNN
from torch import nn

from coordconv import CoordConv2d, coordconvify


class CoordConvNatureCNN(NatureCNN):
    """SB3's NatureCNN (conv 32 8x8/4, 64 4x4/2, 64 3x3/1, linear 512) with CoordConv layers.

    `layers="first"` makes the first conv a CoordConv2d over the input frames' coordinates;
    `layers="all"` makes every conv one, each seeing the coordinates of its own input. The
    coordinates are added inside the network, after SB3 scales frames to [0, 1]. Being SB3's own
    class underneath, it saves and loads like NatureCNN.

    Paired start: for the same seed, an agent with this extractor starts from exactly the weights
    of the NatureCNN agent (every layer, the image columns of each CoordConv weight included), and
    its coordinate columns start at zero. So at step 0 both agents compute the same function, and
    what differs later is what the coordinates let the agent learn (their gradients are not zero:
    the coordinate inputs are not). See `apply` for how SB3's orthogonal init is kept equal.
    """

    def __init__(
        self,
        observation_space: gym.Space,
        features_dim: int = 512,
        normalized_image: bool = False,
        layers: Literal["first", "all"] = "first",
        with_r: bool = False,
    ) -> None:
        super().__init__(observation_space, features_dim, normalized_image)
        # CoordConv2d's own default init draws from the global RNG; coordconvify then overwrites
        # those draws anyway. Forking keeps the RNG where NatureCNN left it, so every layer built
        # after this one gets the draws it gets in the conv agent.
        with torch.random.fork_rng(devices=[]):
            coordconvify(self.cnn, layers=layers, with_r=with_r)

    def apply(self, fn: Callable[[nn.Module], None]) -> CoordConvNatureCNN:
        """nn.Module.apply, with each CoordConv layer shown to `fn` as the plain conv it extends.

        SB3's A2C/PPO initialise a policy by `features_extractor.apply(init_weights)`: an
        orthogonal init of each conv weight flattened to (out, in * kh * kw). Shown the whole
        CoordConv weight, that init would draw a wider matrix: the image columns would get a
        smaller norm than NatureCNN's and every later layer other draws. Shown only the image
        columns, it draws exactly what it draws for NatureCNN. The coordinate columns are left
        as they are (zero from construction).
        """
        with _image_columns_only(self.cnn):
            return super().apply(fn)


@contextmanager
def _image_columns_only(module: nn.Module) -> Iterator[None]:
    """Within the block each CoordConv2d's weight is a copy of its image columns; on exit the
    (possibly re-initialised) copy is written back and the original Parameter restored."""
    swapped = []
    for layer in module.modules():
        if isinstance(layer, CoordConv2d):
            full = layer.weight
            layer.weight = nn.Parameter(full.detach()[:, : layer.in_channels].clone())
            swapped.append((layer, full))
    try:
        yield
    finally:
        with torch.no_grad():
            for layer, full in swapped:
                full[:, : layer.in_channels].copy_(layer.weight)
                layer.weight = full
