"""The Atari extractors alone: NatureCNN vs CoordConvNatureCNN per call, in fp32 and bf16, at
A2C's update batch (80), PPO's (256) and the rollout's forward (16), timed side by side.

Run: python -m benchmarks.extractors [rounds] [--device auto|cpu|cuda[:N]] [--tf32].
docs/results/train_speed.md quotes its ratios (measured on the CPU).
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.torch_layers import NatureCNN

from benchmarks.timing import interleaved_median_ms
from common.cli import add_device_argument
from common.devices import describe_device, select_device
from common.errors import ArgumentParser, check_at_least, run_cli
from policies.extractors import CoordConvNatureCNN
from policies.precision import bf16_support

CASES = ((80, True), (256, True), (16, False))  # (batch, with backward)


def measure(
    rounds: int = 11, iters: int = 5, device: torch.device | str = "cpu"
) -> dict[str, float]:
    """Milliseconds per call of each `<extractor> <precision> b<batch> <fwd|fwd+bwd>` on
    `device` (bf16: under autocast for that device's type)."""
    device = torch.device(device)
    space = gym.spaces.Box(0, 255, (4, 84, 84), np.uint8)
    torch.manual_seed(0)
    nets = {"conv": NatureCNN(space), "coordconv": CoordConvNatureCNN(space)}
    nets = {name: net.to(device) for name, net in nets.items()}
    steps = {}
    for batch, train in CASES:
        x = torch.rand(batch, 4, 84, 84, device=device)
        for precision in ("fp32", "bf16"):
            for name, net in nets.items():

                def step(net=net, x=x, bf16=precision == "bf16", train=train) -> None:
                    with torch.autocast(device.type, torch.bfloat16, enabled=bf16):
                        with torch.set_grad_enabled(train):
                            y = net(x)
                    if train:
                        y.float().sum().backward()

                kind = "fwd+bwd" if train else "fwd"
                steps[f"{name} {precision} b{batch} {kind}"] = step
    return interleaved_median_ms(steps, device, rounds, iters, warmup=2)


def main() -> int:
    p = ArgumentParser(description=__doc__)
    p.add_argument("rounds", nargs="?", type=int, default=11, help="interleaved rounds (11)")
    add_device_argument(p)
    args = p.parse_args()
    check_at_least("rounds", args.rounds)
    device = select_device(args.device, args.tf32)
    print(f"{describe_device(device)}; {bf16_support(device)}")
    ms = measure(args.rounds, device=device)
    for key, value in ms.items():
        if key.startswith("coordconv "):
            case = key.removeprefix("coordconv ")
            conv = ms[f"conv {case}"]
            print(f"{case}: conv {conv:.2f} ms, coordconv {value:.2f} ms, ratio {value / conv:.3f}")
    return 0


if __name__ == "__main__":
    run_cli(main)
