"""RL Zoo config module: PPO with the `coordconv-all` extractor (see agents/zoo/__init__.py)."""

from agents.zoo import zoo_hyperparams

hyperparams = zoo_hyperparams("ppo", "coordconv-all")
