"""Supervised pipelines on the coordconv layer, one subpackage each: `toy` (the Not-so-Clevr
tasks and Table 1), `detection` (field-of-MNIST Faster R-CNN), `classification` (ResNet-18 on
digits where translation invariance is the task), `gan` (conv vs CoordConv GANs, measured mode
collapse).

The modules they share: `not_so_clevr`, the 3,136 squares (the toy tasks' data and the GAN's
`square` dataset), `mnist`, the real MNIST digits detection and classification read, and
`step_log`, the per-step losses kept on the device and read back in blocks (no host sync per
step). What
every pipeline shares with the rest of the suite (devices, atomic writes, user errors, the
reproduce scripts' seeds and tables) is in the top-level `common`.
"""
