"""Field-of-MNIST detection, conv vs CoordConv: the release's region-proposal experiment and
torchvision's full Faster R-CNN.

`data`: digits scattered on 64x64 canvases with tight boxes; `models`: the detector
(`build_detector`) and the release's backbone and anchors, pooling through `roi_align` (a
RoIAlign with a fast CPU backward); `rpn`: the release's RPN-only model (`build_proposer`);
`metrics`: the paper's mean IoU and class accuracy, the release's IoUs on NMS proposals;
`trainer`: `DetectionSettings`, `train_detection`; `report`: both models beside the paper's
gain (`scripts/reproduce_detection.py`).
"""
