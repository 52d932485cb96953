"""The Atari extractors alone: NatureCNN vs CoordConvNatureCNN per call, in fp32 and bf16, at
A2C's update batch (80), PPO's (256) and the rollout's forward (16), timed side by side.

Run: python -m benchmarks.extractors [rounds]. docs/results/train_speed.md quotes its ratios.
"""

from __future__ import annotations

import sys

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.torch_layers import NatureCNN

from benchmarks.timing import interleaved_median_ms
from policies.extractors import CoordConvNatureCNN

CASES = ((80, True), (256, True), (16, False))  # (batch, with backward)


def measure(rounds: int = 11, iters: int = 5) -> dict[str, float]:
    """Milliseconds per call of each `<extractor> <precision> b<batch> <fwd|fwd+bwd>`."""
    space = gym.spaces.Box(0, 255, (4, 84, 84), np.uint8)
    torch.manual_seed(0)
    nets = {"conv": NatureCNN(space), "coordconv": CoordConvNatureCNN(space)}
    steps = {}
    for batch, train in CASES:
        x = torch.rand(batch, 4, 84, 84)
        for precision in ("fp32", "bf16"):
            for name, net in nets.items():

                def step(net=net, x=x, bf16=precision == "bf16", train=train) -> None:
                    with torch.autocast("cpu", torch.bfloat16, enabled=bf16):
                        with torch.set_grad_enabled(train):
                            y = net(x)
                    if train:
                        y.float().sum().backward()

                kind = "fwd+bwd" if train else "fwd"
                steps[f"{name} {precision} b{batch} {kind}"] = step
    return interleaved_median_ms(steps, torch.device("cpu"), rounds, iters, warmup=2)


if __name__ == "__main__":
    ms = measure(int(sys.argv[1]) if len(sys.argv) > 1 else 11)
    for key, value in ms.items():
        if key.startswith("coordconv "):
            case = key.removeprefix("coordconv ")
            conv = ms[f"conv {case}"]
            print(f"{case}: conv {conv:.2f} ms, coordconv {value:.2f} ms, ratio {value / conv:.3f}")
