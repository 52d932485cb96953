import json
from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from common.devices import select_device, set_tf32
from common.results import count_params
from supervised.not_so_clevr import held_out_mask, make_dataset, split_dataset
from supervised.toy.models import build_model
from supervised.toy.trainer import (
    ToySettings,
    model_input,
    resolve_settings,
    task_metrics,
    train_toy,
    training_loss,
)
from tests.cli import error_lines, run_script


@pytest.fixture(scope="module")
def data():
    return make_dataset()


def test_dataset_contents(data):
    assert len(data) == 3136
    assert data.xy[:2].tolist() == [[4.0, 4.0], [4.0, 5.0]]  # x outer, y inner
    k = 1000
    x, y = int(data.xy[k, 0]), int(data.xy[k, 1])
    assert data.onehot[k, 0, y, x] == 1 and data.onehot[k].sum() == 1
    assert data.label[k] == y * 64 + x
    square = data.square[k, 0]
    assert square.sum() == 81 and square[y - 4 : y + 5, x - 4 : x + 5].all()
    assert torch.equal(data.target, data.xy / 64)
    assert data.xy.min() == 4 and data.xy.max() == 59


def test_uniform_split_is_the_release_draw():
    mask = held_out_mask("uniform")
    assert mask.sum() == 768 and (~mask).sum() == 2368
    np.random.seed(20202)  # the release drew from the legacy global generator, x outer, y inner
    expected = []
    for _x in range(4, 60):
        for _y in range(4, 60):
            expected.append(np.random.rand() < 0.25)
    assert np.array_equal(mask, np.array(expected))


def test_quadrant_split_rule(data):
    train, test = split_dataset(data, "quadrant")
    assert len(train) == 2407 and len(test) == 729
    assert ((test.xy[:, 0] > 32) & (test.xy[:, 1] > 32)).all()
    assert not ((train.xy[:, 0] > 32) & (train.xy[:, 1] > 32)).any()


@pytest.mark.parametrize(
    "task,model,split,params",
    [
        ("classification", "coordconv", "uniform", 7_553),
        ("classification", "conv", "uniform", 409_921),
        ("regression", "coordconv", "quadrant", 906),
        ("regression", "conv", "uniform", 72_850),
        ("regression", "conv", "quadrant", 12_914),
        ("rendering", "coordconv", "uniform", 11_850),
        ("rendering", "conv", "quadrant", 409_921),
    ],
)
def test_parameter_counts_and_shapes(task, model, split, params):
    net = build_model(task, model, split)
    assert count_params(net) == params
    x = torch.zeros(2, 1, 64, 64) if task == "regression" else torch.full((2, 2), 30.0)
    shape = {"classification": (2, 4096), "regression": (2, 2), "rendering": (2, 1, 64, 64)}
    assert tuple(net(x).shape) == shape[task]


def test_metrics_by_hand(data):
    sub = data.subset(torch.tensor([0, 1]))
    logits = torch.zeros(2, 4096)
    logits[0, sub.label[0]] = 5.0
    logits[1, sub.label[0]] = 5.0  # wrong pixel
    assert task_metrics("classification", logits, sub) == {"accuracy": 0.5}
    render = torch.where(sub.square > 0, 1.0, -1.0)
    render[1, 0, 0, 0] = 1.0  # one extra pixel on example 1: IoU 81/82
    assert task_metrics("rendering", render, sub)["iou"] == pytest.approx((1 + 81 / 82) / 2)
    shifted = sub.target + torch.tensor([[3 / 64, 4 / 64], [0.0, 0.0]])
    m = task_metrics("regression", shifted, sub)
    assert m["pixel_distance"] == pytest.approx(2.5) and m["accuracy"] == 0.5


def test_renderer_intermediate_loss(data):
    s = resolve_settings(ToySettings("rendering", "uniform", "coordconv"))
    assert s.interm_loss == "softmax"  # the config's default for the CoordConv renderer
    torch.manual_seed(0)
    model = build_model("rendering", "coordconv", "uniform")
    batch = data.subset(torch.arange(8))
    x = model_input("rendering", batch)
    loss, logits = training_loss(s, model, x, batch)
    render = F.binary_cross_entropy_with_logits(model(x), batch.square)
    centre = F.cross_entropy(model.classifier(x), batch.label)
    torch.testing.assert_close(logits, model(x))
    torch.testing.assert_close(loss, render + centre)
    plain, _ = training_loss(resolve_settings(replace(s, interm_loss="none")), model, x, batch)
    torch.testing.assert_close(plain, render)
    assert resolve_settings(ToySettings("rendering", "uniform", "conv")).interm_loss == "none"


def test_trainer_is_bit_for_bit_repeatable_on_cpu():
    def run(seed):
        s = ToySettings("regression", "quadrant", "conv", epochs=2, seed=seed, progress=False)
        return train_toy(s, torch.device("cpu"))

    a, b, c = run(3), run(3), run(4)
    assert a["test"] == b["test"] and a["train"] == b["train"]
    assert a["test"] != c["test"]


def test_regressor_init_lets_the_max_pool_find_the_pixel(data):
    # With plain He init the max lands elsewhere for most seeds, and training then stalls at
    # the mean coordinate; the adjusted init must put every example's maximum on its pixel.
    for seed in range(4):
        torch.manual_seed(seed)
        net = build_model("regression", "coordconv", "quadrant")
        with torch.no_grad():
            maps = net.net[:-2](data.onehot[::7]).flatten(2)
        assert (maps.argmax(2) == data.label[::7, None]).all(), seed


def test_inputs_are_scaled_like_the_coordinate_channels(data):
    scaled = model_input("classification", data)
    assert scaled[0].tolist() == pytest.approx([2 * 4 / 63 - 1, 2 * 4 / 63 - 1])
    assert torch.equal(model_input("rendering", data, raw=True), data.xy)
    assert model_input("regression", data) is data.onehot


def test_target_checked_inside_the_epoch():
    s = ToySettings(
        "regression", "quadrant", "conv", epochs=5, target=1000.0, checks_per_epoch=4,
        batch_size=8, seed=0, progress=False,
    )  # fmt: skip
    r = train_toy(s, torch.device("cpu"))
    steps = -(-2407 // 8)
    assert r["epochs_to_target"] == round(-(-steps // 4) / steps, 3) == r["epochs"]


def test_early_stop_at_target():
    s = ToySettings(
        "regression", "quadrant", "conv", epochs=5, target=1000.0, seed=0, progress=False
    )
    r = train_toy(s, torch.device("cpu"))
    assert r["epochs"] == 1 and r["epochs_to_target"] == 1 and r["seconds_to_target"] > 0


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_train_toy_on_cuda(capsys, tmp_path):
    s = ToySettings("classification", "uniform", "coordconv", epochs=1, progress=False)
    r = train_toy(s, select_device("cuda"))
    assert (r["device"], r["tf32"]) == ("cuda:0", False) and r["cuda"] and r["device_model"]
    assert 0 <= r["test"]["accuracy"] <= 1 and 0 <= r["train"]["accuracy"] <= 1
    try:
        r = run_script(
            capsys, "train_toy.py", "--task", "regression", "--split", "quadrant", "--epochs",
            "1", "--device", "cuda", "--tf32", "--no-progress", "--out", tmp_path,
        )  # fmt: skip
        assert r.code == 0, r.err
        result = json.loads((tmp_path / "results.json").read_text())
        assert (result["device"], result["tf32"]) == ("cuda:0", True)
    finally:
        set_tf32(False)  # the CLI ran in this process


def test_train_toy_cli(capsys, tmp_path):
    r = run_script(
        capsys, "train_toy.py", "--task", "regression", "--split", "quadrant", "--model",
        "coordconv", "--epochs", "2", "--no-progress", "--out", tmp_path,
    )  # fmt: skip
    assert r.code == 0, r.err
    assert r.out.startswith("regression/quadrant/coordconv (906 params): test pixel_distance")
    result = json.loads((tmp_path / "results.json").read_text())
    for key in ("task", "split", "model", "params", "epochs", "seconds", "train", "test"):
        assert key in result
    assert set(result["test"]) == {"pixel_distance", "accuracy"}
    assert result["epochs_to_target"] is None and result["seconds_to_target"] is None
    # --device auto on a machine without a usable GPU: the record says what ran.
    assert (result["device"], result["tf32"], result["cuda"]) == ("cpu", False, None)
    assert result["device_model"] and result["cudnn_deterministic"] is None
    assert list(tmp_path.glob("events.out.tfevents.*"))


@pytest.mark.parametrize(
    "args,message",
    [
        (["--task", "segmentation"], "unknown task 'segmentation'; valid: classification"),
        (["--task", "regression", "--split", "half"], "unknown split 'half'"),
        (["--task", "regression", "--model", "mlp"], "unknown model 'mlp'; valid: coordconv, conv"),
        (["--task", "regression", "--epochs", "0"], "--epochs must be >= 1, got 0"),
        (["--task", "regression", "--lr", "-1"], "--lr must be a positive number, got -1.0"),
        (["--task", "regression", "--schedule", "step"], "unknown schedule 'step'; valid: "),
        (["--task", "regression", "--checks-per-epoch", "0"], "--checks-per-epoch must be >= 1"),
        (["--task", "regression", "--device", "cuda"], "--device cuda"),
        (
            ["--task", "regression", "--device", "cuda:abc"],
            "--device 'cuda:abc' is not one of auto, cpu, cuda, cuda:N",
        ),
        (["--task", "rendering", "--interm-loss", "mse"], "unknown interm-loss 'mse'; valid: "),
        (
            ["--task", "rendering", "--model", "conv", "--interm-loss", "softmax"],
            "--interm-loss softmax needs the CoordConv renderer (--task rendering --model "
            "coordconv), got rendering/conv",
        ),
    ],
)
def test_train_toy_bad_input(capsys, tmp_path, args, message):
    r = run_script(capsys, "train_toy.py", "--out", tmp_path / "run", *args)
    lines = error_lines(r.err)
    assert r.code == 2 and len(lines) == 1 and message in lines[0], r.err
    assert not (tmp_path / "run").exists()


def test_reproduce_table1_smoke(capsys, tmp_path):
    out = tmp_path / "table1.md"
    r = run_script(
        capsys, "reproduce_table1.py", "--tasks", "regression", "--max-epochs", "1",
        "--device", "cpu", "--no-progress", "--out", out,
    )  # fmt: skip
    assert r.code == 0, r.err
    text = out.read_text()
    assert text.startswith("# Table 1") and "## cpu: " in text
    rows = [line for line in text.splitlines() if line.startswith("| regression |")]
    assert len(rows) == 4
    assert "| regression | quadrant | conv | 12,914 |" in text
    data = json.loads((tmp_path / "table1_cpu.json").read_text())
    assert len(data["rows"]) == 4 and all(row["epochs"] == 1 for row in data["rows"])


def test_reproduce_table1_bad_input(capsys, tmp_path):
    for args, message in [
        (["--budget", "huge"], "unknown --budget 'huge'; valid: quick, full"),
        (["--tasks", "detection"], "unknown --tasks 'detection'"),
        (["--seeds", "0"], "--seeds must be >= 1, got 0"),
    ]:
        r = run_script(capsys, "reproduce_table1.py", "--out", tmp_path / "t.md", *args)
        lines = error_lines(r.err)
        assert r.code == 2 and len(lines) == 1 and message in lines[0], r.err
