"""RL Zoo config module: PPO with the `conv` extractor (see agents/zoo/__init__.py)."""

from agents.zoo import zoo_hyperparams

hyperparams = zoo_hyperparams("ppo", "conv")
