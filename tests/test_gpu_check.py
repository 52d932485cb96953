"""scripts/gpu_check.py: the whole check at the tiny budget on the CPU (so that it cannot rot),
its page and JSON, a failed step that does not stop the check, and bad input.

The whole check trains every pipeline, a few minutes on a 2-core CPU: those tests are `slow`
(CI runs them with `pytest -m slow`); the rest take seconds."""

import json
import os
import subprocess
import sys

import pytest
import torch

import benchmarks.gpu_check as gpu_check
from benchmarks.gpu_check import (
    STEP_NAMES,
    Step,
    StepResult,
    most_at_once,
    select_steps,
    write_page,
)
from common.errors import UsageError
from tests.cli import ROOT, error_lines, run_script


@pytest.fixture(scope="module")
def cpu_check(tmp_path_factory):
    """One full check on the CPU at the tiny budget, as a user runs it."""
    tmp = tmp_path_factory.mktemp("gpu_check")
    out, work = tmp / "gpu.md", tmp / "work"
    # One torch thread: on a loaded machine two threads wait on each other at every op.
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gpu_check.py"), "--device", "cpu", "--budget",
         "tiny", "--out", str(out), "--work", str(work)],
        capture_output=True, text=True, cwd=ROOT, env=env, timeout=1800,
    )  # fmt: skip
    return proc, out, work


@pytest.mark.slow
def test_every_step_passes_on_the_cpu(cpu_check):
    proc, out, _ = cpu_check
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for name in STEP_NAMES:
        assert f"ok   {name} (" in proc.stdout, name
    assert f"{len(STEP_NAMES)} of {len(STEP_NAMES)} steps passed" in proc.stdout


@pytest.mark.slow
def test_page_has_the_cpu_section_and_says_no_gpu_yet(cpu_check):
    _, out, _ = cpu_check
    page = out.read_text()
    assert page.startswith("# GPU check: every pipeline end to end on one device")
    assert "**It has not yet run on a GPU.**" in page
    assert page.count("\n## ") == 1 and "\n## cpu: " in page
    assert "Command: `python scripts/gpu_check.py --device cpu --budget tiny --out " in page
    assert "Versions: python " in page and "torch " in page and "TF32: off for" in page
    assert "| step | result | detail | seconds |" in page
    for name in STEP_NAMES:
        assert f"| {name} | pass | " in page, name
    assert "| measure | unit | cpu | CPU | cpu / CPU |" in page
    assert "Atari first layer" in page and "A2C coordconv training" in page


@pytest.mark.slow
def test_json_beside_the_page(cpu_check):
    _, out, work = cpu_check
    record = json.loads((out.parent / "gpu_cpu.json").read_text())
    assert record["passed"] is True and record["budget"] == "tiny"
    assert record["device"]["device"] == "cpu" and record["tf32"] is False
    assert [s["name"] for s in record["steps"]] == list(STEP_NAMES)
    assert all(s["ok"] and s["seconds"] >= 0 for s in record["steps"])
    assert record["versions"]["torch"] == torch.__version__
    rows = record["throughput"]
    assert len(rows) == 5  # the layer twice, A2C, PPO, detection
    # On a CPU run the device is the CPU: one measurement, ratio 1.
    assert all(r["device"] == r["cpu"] > 0 and r["ratio"] == 1.0 for r in rows)
    # Each check works in a folder of its own under --work.
    (folder,) = work.iterdir()
    assert folder.name.startswith("cpu_") and (folder / "runs" / "MsPacman").is_dir()


def test_steps_bring_what_they_need():
    assert select_steps(None) == list(STEP_NAMES)
    assert select_steps("a2c-onnx") == ["a2c-train", "a2c-onnx"]
    assert select_steps(" dqn-resume-cpu , layer-ranks") == [
        "layer-ranks",
        "dqn-replay-buffer",
        "dqn-resume-cpu",
    ]
    with pytest.raises(UsageError, match="unknown step 'a2c'; valid: layer-ranks, "):
        select_steps("a2c")


def test_runs_at_once_from_their_spans():
    """How the Ray step tells that runs shared the GPU: their training spans overlap."""
    assert most_at_once([]) == 0 and most_at_once([(0, 1), (1, 2)]) == 1  # one after the other
    assert most_at_once([(0, 5), (1, 2), (1.5, 3), (4, 6)]) == 3


def test_a_failed_step_is_recorded_and_the_check_goes_on(capsys, tmp_path, monkeypatch):
    def broken(ctx):
        raise RuntimeError("CUDA error: an illegal memory access\nwas encountered")

    def fine(ctx):
        return True, "fine | well"

    steps = (
        Step("broken", "layer", broken),
        Step("after", "layer", fine, ("broken",)),
        Step("alone", "layer", fine),
    )
    monkeypatch.setattr(gpu_check, "STEPS", steps)
    monkeypatch.setattr(gpu_check, "STEP_NAMES", tuple(s.name for s in steps))
    out = tmp_path / "gpu.md"
    r = run_script(capsys, "gpu_check.py", "--device", "cpu", "--budget", "tiny", "--out", out)
    assert r.code == 1, r.err
    assert "FAIL broken (" in r.out and "RuntimeError: CUDA error: an illegal memory" in r.out
    assert "FAIL after (0.0 s): not run: broken failed" in r.out and "ok   alone (" in r.out
    assert "1 of 3 steps passed" in r.out
    page = out.read_text()
    assert "| broken | **FAIL** | RuntimeError: CUDA error: an illegal memory access was " in page
    assert "| alone | pass | fine \\| well |" in page  # a | in a detail does not split the row
    record = json.loads((tmp_path / "gpu_cpu.json").read_text())
    assert record["passed"] is False and [s["ok"] for s in record["steps"]] == [False] * 2 + [True]


def test_a_gpu_section_changes_the_preamble_and_is_kept(tmp_path):
    out = tmp_path / "gpu.md"
    out.write_text("# old\n\n## cuda: NVIDIA H100 80GB HBM3 (cuda:0)\n\nthe GPU's table\n")
    results = [StepResult("layer-ranks", "layer", True, "fine", 1.0)]
    write_page(out, torch.device("cpu"), "tiny", "python scripts/gpu_check.py", results, [], 1.0)
    page = out.read_text()
    assert "It has run on a GPU: see the `cuda` section below." in page
    assert "not yet run on a GPU" not in page
    # CPU first, the GPU's section kept as it was.
    assert page.index("## cpu: ") < page.index("## cuda: NVIDIA H100") < page.index("the GPU's")


@pytest.mark.parametrize(
    "args,message",
    [
        (["--device", "cuda:abc"], "--device 'cuda:abc' is not one of auto, cpu, cuda, cuda:N"),
        (["--budget", "huge"], "unknown --budget 'huge'; valid: full, tiny"),
        (["--steps", "a2c-train,nope"], "unknown step 'nope'; valid: "),
        (["--steps", ","], "--steps names no step"),
    ],
)
def test_bad_input_exits_2_with_one_line_and_writes_nothing(capsys, tmp_path, args, message):
    out, work = tmp_path / "gpu.md", tmp_path / "work"
    r = run_script(capsys, "gpu_check.py", "--out", out, "--work", work, *args)
    lines = error_lines(r.err)
    assert r.code == 2 and len(lines) == 1 and message in lines[0], r.err
    assert not out.exists() and not work.exists()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_cuda_without_a_gpu_exits_2(capsys, tmp_path):
    r = run_script(capsys, "gpu_check.py", "--device", "cuda", "--out", tmp_path / "gpu.md")
    lines = error_lines(r.err)
    assert r.code == 2 and len(lines) == 1 and "--device cuda: no CUDA device" in lines[0], r.err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_every_step_passes_on_the_gpu(tmp_path):
    """The check itself on CUDA at the tiny budget (`pytest -m gpu`); the full one is
    `python scripts/gpu_check.py --device cuda`."""
    out, work = tmp_path / "gpu.md", tmp_path / "work"
    out.write_text("# old\n\n## cpu: a CPU\n\nits table\n")  # a CPU section from before
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gpu_check.py"), "--device", "cuda", "--budget",
         "tiny", "--out", str(out), "--work", str(work)],
        capture_output=True, text=True, cwd=ROOT, timeout=1800,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    page = out.read_text()
    assert "It has run on a GPU" in page and "## cuda: " in page and "## cpu: a CPU" in page
    record = json.loads((tmp_path / "gpu_cuda.json").read_text())
    assert record["passed"] is True and record["device"]["device"] == "cuda:0"
    assert record["device"]["tf32"] is False
    assert [s["name"] for s in record["steps"]] == list(STEP_NAMES)
    steps = {s["name"]: s["detail"] for s in record["steps"]}
    assert "on cuda:0" in steps["a2c-train"] and "CUDA hidden" in steps["a2c-resume-cpu"]
    assert "gpus_per_run 0.25, on cuda:0" in steps["ray-study"]
    assert all(r["device"] > 0 and r["cpu"] > 0 for r in record["throughput"])
