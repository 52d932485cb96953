"""The paper's Not-so-Clevr toy tasks (classification, regression, rendering), conv vs CoordConv.

Data: `supervised.not_so_clevr` (shared with the GAN's `square` dataset); `models`: the
release's nets; `trainer`: one trainer for the three tasks (`ToySettings`, `train_toy`);
`report`: the paper's Table 1 grid under a time budget (`scripts/reproduce_table1.py`).
"""
