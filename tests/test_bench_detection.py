"""benchmarks/detection.py's page: on CUDA the detector's pooler is torchvision's own, so the
table and summary say that both columns time the same op (no GPU needed: the rows are made
up). The CPU smoke test of scripts/bench_detection.py is in tests/test_detection.py."""

import torch

from benchmarks.detection import detector_pooler, markdown_table, summary


def rows(device):
    pooler = detector_pooler(torch.device(device))
    return [
        {"model": m, "batch": 2, "device": device, "detector_pooler": pooler,
         "torchvision_ms": 10.0, "separable_ms": ms, "speedup": 10.0 / ms}
        for m, ms in (("conv", 5.0), ("coordconv", 10.1))
    ]  # fmt: skip


def test_cpu_rows_are_a_speed_up_of_the_separable_op():
    assert detector_pooler(torch.device("cpu")) == "separable"
    table = markdown_table(rows("cpu"))
    assert "| separable RoIAlign (ms/step) | speed-up |" in table and "noise" not in table
    assert summary(rows("cpu")) == "conv: 2.00x faster steps; coordconv: 0.99x faster steps"


def test_cuda_rows_say_both_columns_time_the_same_op():
    assert detector_pooler(torch.device("cuda", 1)) == "torchvision"
    table = markdown_table(rows("cuda:1"))
    assert "separable" not in table.splitlines()[0]
    assert "torchvision's RoIAlign on this device (ms/step) | ratio (same op: noise) |" in table
    line = summary(rows("cuda:1"))
    assert line.startswith("on cuda:1 the detector pools with torchvision's RoIAlign")
    assert (
        "same op" in line and "faster" not in line and line.endswith("conv: 2.00; coordconv: 0.99")
    )
