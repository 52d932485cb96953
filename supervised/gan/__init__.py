"""conv vs CoordConv GANs on 64x64 images, with a measured mode collapse.

`data`: the release's two-object `clevr` canvases and the Not-so-Clevr `square`s; `models`:
the release's generators and DCGAN discriminator; `trainer`: `GanSettings`, `train_gan`;
`mode_collapse`: validity, coverage and JS divergence of where objects are drawn; `report`:
both models beside held-out real data (`scripts/reproduce_gan.py`).
"""
