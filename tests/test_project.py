from pathlib import Path

import torch
import torchvision

ROOT = Path(__file__).resolve().parent.parent


def test_ci_runs_exactly_the_readme_test_command_then_the_slow_tests():
    *_, ci_command, slow = (ROOT / ".ci" / "run").read_text().strip().splitlines()
    assert "pytest" in ci_command and "ruff check" in ci_command
    readme = (ROOT / "README.md").read_text()
    assert f"\n{ci_command}\n" in readme and f"\n{slow}\n" in readme
    assert slow == ".venv/bin/pytest -m slow"


def test_torchvision_compiled_ops_load_with_this_torch():
    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [1.0, 1.0, 10.0, 10.0], [20.0, 20.0, 30.0, 30.0]])
    keep = torchvision.ops.nms(boxes, torch.tensor([0.9, 0.8, 0.7]), iou_threshold=0.5)
    assert keep.tolist() == [0, 2]


def test_layer_package_is_typed_and_versioned():
    from importlib.metadata import version
    from importlib.resources import files

    import coordconv

    assert coordconv.__version__ == version("coordconv-suite")
    assert files("coordconv").joinpath("py.typed").is_file()
    assert set(coordconv.__all__) >= {"CoordConv2d", "coordconvify", "coordinate_channels"}
