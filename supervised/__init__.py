"""Supervised pipelines on the coordconv layer, one subpackage each: `toy` (the Not-so-Clevr
tasks and Table 1), `detection` (field-of-MNIST Faster R-CNN), `classification` (ResNet-18 on
digits where translation invariance is the task), `gan` (conv vs CoordConv GANs, measured mode
collapse).

The modules they share: `not_so_clevr`, the 3,136 squares (the toy tasks' data and the GAN's
`square` dataset), `mnist`, the real MNIST digits detection and classification read, and
`loop`, the training scaffold: a `TrainingRun` owns a run's TensorBoard events, progress bars,
checkpoint, results.json and per-step losses (kept on the device and read back in blocks, no
host sync per step, checked finite), and `train_epoch` runs a trainer's step over an epoch. What
every pipeline shares with the rest of the suite (devices, atomic writes, user errors, the
reproduce scripts' seeds and tables) is in the top-level `common`.
"""
