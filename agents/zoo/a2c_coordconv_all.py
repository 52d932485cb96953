"""RL Zoo config module: A2C with the `coordconv-all` extractor (see agents/zoo/__init__.py)."""

from agents.zoo import zoo_hyperparams

hyperparams = zoo_hyperparams("a2c", "coordconv-all")
