"""Extractor names -> SB3 policy_kwargs, so that every variant is compared on equal terms."""

from __future__ import annotations

from typing import Any

from stable_baselines3.common.torch_layers import NatureCNN

from common.errors import UsageError, check_choice
from policies.extractors import CoordConvNatureCNN

# name -> (extractor class, its extra kwargs). `conv` is SB3's NatureCNN itself: the paper's
# "conv" baseline and exactly what RL Zoo's CnnPolicy uses.
EXTRACTORS: dict[str, tuple[type, dict[str, Any]]] = {
    "conv": (NatureCNN, {}),
    "coordconv": (CoordConvNatureCNN, {"layers": "first"}),
    "coordconv-all": (CoordConvNatureCNN, {"layers": "all"}),
}


def policy_kwargs_for(name: str, with_r: bool = False, **kwargs: Any) -> dict[str, Any]:
    """policy_kwargs for SB3's CnnPolicy with the named features extractor.

    Usable as `A2C("CnnPolicy", env, policy_kwargs=policy_kwargs_for("coordconv"))`, and the
    same for PPO, DQN and QR-DQN (their Q-network and target network each get the extractor).
    Every name gets CnnPolicy's own `net_arch=[]` (NatureCNN, then one linear layer per head:
    the action and value heads of A2C/PPO, the Q-values or quantiles of DQN/QR-DQN): a custom
    extractor otherwise gets two extra 64-unit layers per head, and conv vs CoordConv would
    differ by more than the coordinate weights. Extra keyword arguments (optimizer_class, ...)
    are passed through.
    """
    check_choice("extractor", name, EXTRACTORS)
    cls, extractor_kwargs = EXTRACTORS[name]
    if with_r:
        if cls is NatureCNN:
            raise UsageError(f"with_r applies to CoordConv extractors, not {name!r}")
        extractor_kwargs = {**extractor_kwargs, "with_r": True}
    return {
        "features_extractor_class": cls,
        "features_extractor_kwargs": dict(extractor_kwargs),
        "net_arch": [],
        **kwargs,
    }
