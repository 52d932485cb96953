"""Supervised pipelines on the coordconv layer: the Not-so-Clevr toy tasks, detection, GAN."""
