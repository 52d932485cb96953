"""Digit classification, conv vs CoordConv where translation invariance is the task: the
paper's ImageNet check (one extra 1x1 CoordConv layer in front of a ResNet) on real digits.

`data`: a fixed split of MNIST digits, as they are or at random positions on a canvas;
`models`: ResNet-18 behind a 1x1 front layer, the three variants (`build_classifier`);
`trainer`: `ClassificationSettings`, `train_classification`; `report`: the seeds x variants
grid, accuracies and paired differences with 95% intervals (`scripts/reproduce_classification.py`).
"""
