"""Supervised pipelines on the coordconv layer, one subpackage each: `toy` (the Not-so-Clevr
tasks and Table 1), `detection` (field-of-MNIST Faster R-CNN), `gan` (conv vs CoordConv GANs,
measured mode collapse).

The one module they share is `not_so_clevr`, the 3,136 squares: the toy tasks' data and the
GAN's `square` dataset. What every pipeline shares with the rest of the suite (devices, atomic
writes, user errors, the reproduce scripts' seeds and tables) is in the top-level `common`.
"""
