import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

from benchmarks.timing import interleaved_median_ms
from benchmarks.train import LEVERS, VARIANTS
from policies.precision import cpu_bf16_units
from tests.cli import error_lines, run_script

ROOT = Path(__file__).resolve().parent.parent


def test_bench_train_measures_every_variant_and_lever(capsys, tmp_path):
    out = tmp_path / "train_speed.md"
    r = run_script(
        capsys, "bench_train.py", "--algos", "a2c", "--steps", "40", "--rounds", "1",
        "--n-envs", "2", "--device", "cpu", "--no-progress", "--out", out, "--levers",
    )  # fmt: skip
    assert r.code == 0, r.err
    units = ", ".join(cpu_bf16_units()) or "none (bf16 is emulated)"
    assert f"CPU bf16 units: {units}" in r.out
    assert "a2c: time per step coordconv / conv = " in r.out
    text = out.read_text()
    assert text.startswith("# Atari training speed") and "## cpu: " in text
    assert "| a2c | 2 |" in text and f"CPU bf16 units: {units}" in text
    data = json.loads((tmp_path / "train_speed_cpu.json").read_text())
    row, extra = data["rows"]
    s = row["steps_per_second"]
    assert set(s) == set(VARIANTS) >= {"zoo", "coordconv-bf16", "coordconv-ale-bf16"}
    assert all(v > 0 for v in s.values())
    assert row["coordconv_time_over_conv"] == s["conv"] / s["coordconv"]
    assert row["coordconv_time_over_conv_bf16"] == s["conv-bf16"] / s["coordconv-bf16"]
    assert row["speedup_over_zoo"] == s["coordconv-ale-bf16"] / s["zoo"]
    (levers,) = extra["levers"]
    assert set(levers["steps_per_second"]) == set(LEVERS)
    assert "| a2c | channels_last |" in text and "| a2c | no NaN guard |" in text
    overlap = extra["rollout_overlap"]
    assert overlap["overlapped_speedup"] == overlap["sequential"] / overlap["overlapped"] > 0
    assert "Rollout with overlapped game stepping (2 games" in text


def test_bench_train_has_dqn_and_qrdqn_rows(capsys, tmp_path):
    out = tmp_path / "train_speed.md"
    r = run_script(
        capsys, "bench_train.py", "--algos", "dqn,qrdqn", "--steps", "16", "--rounds", "1",
        "--device", "cpu", "--no-progress", "--out", out,
    )  # fmt: skip
    assert r.code == 0, r.err
    assert "dqn: time per step coordconv / conv = " in r.out and "qrdqn: time" in r.out
    text = out.read_text()
    assert "| dqn | 1 |" in text and "| qrdqn | 1 |" in text  # RL Zoo's one game
    rows = json.loads((tmp_path / "train_speed_cpu.json").read_text())["rows"]
    assert [r["algo"] for r in rows] == ["dqn", "qrdqn"]
    assert all(v > 0 for r in rows for v in r["steps_per_second"].values())


def test_bench_train_bad_input(capsys, tmp_path):
    for args, message in [
        (["--algos", "sac"], "--algos must list some of a2c, ppo, dqn, qrdqn, got 'sac'"),
        (["--steps", "0"], "--steps and --rounds must be >= 1"),
        (["--env", "Pacmn", "--steps", "1"], "unknown Atari game 'Pacmn'"),
    ]:
        r = run_script(capsys, "bench_train.py", "--out", tmp_path / "x.md", *args)
        lines = error_lines(r.err)
        assert r.code == 2 and len(lines) == 1 and message in lines[0], r.err
    assert not (tmp_path / "x.md").exists()


def test_extractor_timing_covers_both_extractors_precisions_and_batches():
    from benchmarks.extractors import measure

    ms = measure(rounds=1, iters=1, device="cpu")
    assert len(ms) == 2 * 2 * 3 and all(v > 0 for v in ms.values())
    assert {"conv bf16 b80 fwd+bwd", "coordconv fp32 b16 fwd"} <= set(ms)


def test_extractor_timing_cli_takes_device_and_tf32():
    def run(*args):
        hidden = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}  # the `cuda` case needs no GPU
        return subprocess.run(
            [sys.executable, "-m", "benchmarks.extractors", *args],
            capture_output=True, text=True, cwd=ROOT, env=hidden,
        )  # fmt: skip

    proc = run("0", "--device", "cpu")
    assert proc.returncode == 2 and proc.stderr == "error: rounds must be >= 1, got 0\n"
    proc = run("1", "--device", "cuda")
    assert proc.returncode == 2 and proc.stderr.startswith("error: --device cuda: no CUDA")
    proc = run("--help")
    assert proc.returncode == 0 and "--device" in proc.stdout and "--tf32" in proc.stdout


def test_timings_wait_for_cuda_before_each_clock_read(monkeypatch):
    # No GPU here: a fake synchronize records where the clock is read relative to it.
    events = []
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: events.append("sync"))
    monkeypatch.setattr(time, "perf_counter", lambda: events.append("clock") or 0.0)
    interleaved_median_ms({"a": lambda: events.append("step")}, torch.device("cuda"), 2, 1, 0)
    assert events == ["sync", "clock", "step", "sync", "clock"] * 2
    events.clear()
    interleaved_median_ms({"a": lambda: events.append("step")}, torch.device("cpu"), 1, 1, 0)
    assert events == ["clock", "step", "clock"]  # nothing to wait for on the CPU
