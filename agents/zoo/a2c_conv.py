"""RL Zoo config module: A2C with the `conv` extractor (see agents/zoo/__init__.py)."""

from agents.zoo import zoo_hyperparams

hyperparams = zoo_hyperparams("a2c", "conv")
