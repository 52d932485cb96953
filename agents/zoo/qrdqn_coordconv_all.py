"""RL Zoo config module: QR-DQN with the `coordconv-all` extractor (see agents/zoo/__init__.py)."""

from agents.zoo import zoo_hyperparams

hyperparams = zoo_hyperparams("qrdqn", "coordconv-all")
