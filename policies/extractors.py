"""NatureCNN with CoordConv layers, as an SB3 features extractor."""

from __future__ import annotations

from typing import Literal

import gymnasium as gym
from stable_baselines3.common.torch_layers import NatureCNN

from coordconv import coordconvify


class CoordConvNatureCNN(NatureCNN):
    """SB3's NatureCNN (conv 32 8x8/4, 64 4x4/2, 64 3x3/1, linear 512) with CoordConv layers.

    `layers="first"` makes the first conv a CoordConv2d over the input frames' coordinates;
    `layers="all"` makes every conv one, each seeing the coordinates of its own input. The
    coordinates are added inside the network, after SB3 scales frames to [0, 1]. Being SB3's own
    class underneath, it gets the same orthogonal init and saves and loads like NatureCNN.
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
        coordconvify(self.cnn, layers=layers, with_r=with_r)
