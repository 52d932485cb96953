"""SB3 A2C/PPO runs on Atari: build, train, checkpoint, evaluate, compare."""
