"""Timing harnesses behind the scripts/bench_*.py CLIs: layers, Atari envs, Atari training and
the detector's training step.

They may import anything in the suite, and nothing in the library packages (coordconv, common,
policies, envs, agents, supervised) imports them: a user of the layer or the pipelines never
loads a benchmark.
"""
