"""RL Zoo config module: DQN with the `conv` extractor (see agents/zoo/__init__.py)."""

from agents.zoo import zoo_hyperparams

hyperparams = zoo_hyperparams("dqn", "conv")
