"""SB3 feature extractors with CoordConv and the name -> policy_kwargs registry."""

from policies.extractors import CoordConvNatureCNN
from policies.registry import EXTRACTORS, policy_kwargs_for

__all__ = ["EXTRACTORS", "CoordConvNatureCNN", "policy_kwargs_for"]
