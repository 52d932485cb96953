"""Field-of-MNIST detection with torchvision's Faster R-CNN, conv vs CoordConv.

`data`: digits scattered on 64x64 canvases with tight boxes; `models`: the detector
(`build_detector`), pooling through `roi_align` (a RoIAlign with a fast CPU backward);
`metrics`: the paper's mean IoU and class accuracy; `trainer`: `DetectionSettings`,
`train_detection`; `report`: both models beside the paper's gain
(`scripts/reproduce_detection.py`).
"""
