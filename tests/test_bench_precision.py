"""scripts/bench_precision.py: a tiny fp32-vs-bf16 study on a local Ray, paired by seed."""

import yaml

from tests.cli import error_lines, run_script
from tests.test_study import TINY as STUDY_TINY

TINY = {**STUDY_TINY, "extractors": ["coordconv"], "precision": ["fp32", "bf16"]}


def test_bench_precision_pairs_the_seeds_of_both_precisions(capsys, tmp_path):
    spec = tmp_path / "tiny.yaml"
    spec.write_text(yaml.safe_dump(TINY))
    out = tmp_path / "precision.md"
    r = run_script(
        capsys, "bench_precision.py", "--spec", spec, "--logdir", tmp_path / "runs",
        "--out", out, "--no-progress",
    )  # fmt: skip
    assert r.code == 0, r.err
    names = sorted(p.name for p in (tmp_path / "runs" / "Breakout").glob("a2c_*"))
    assert names == [
        "a2c_coordconv_bf16_s0",
        "a2c_coordconv_bf16_s1",
        "a2c_coordconv_s0",
        "a2c_coordconv_s1",
    ]
    text = out.read_text()
    assert text.startswith("# Learning in fp32 vs bf16: A2C on Breakout")
    rows = [line for line in text.splitlines() if line.startswith(("| 0 |", "| 1 |"))]
    assert len(rows) == 2
    for row in rows:  # each seed: fp32, bf16, and their difference
        fp32, bf16, diff = (float(c) for c in row.split("|")[2:5])
        assert abs((bf16 - fp32) - diff) < 0.11
    assert "| bf16 - fp32 (paired) |" in text and (
        "No loss shown" in text or "bf16 learned less" in text
    )
    assert (tmp_path / "precision_curves.png").stat().st_size > 0
    # The runs' own device records, and that device's bf16 support (here the CPU's units).
    (trained,) = [line for line in text.splitlines() if line.startswith("- Trained on")]
    assert "(cpu); CPU bf16 units: " in trained, trained


def test_bench_precision_needs_both_precisions(capsys, tmp_path):
    spec = tmp_path / "fp32.yaml"
    spec.write_text(yaml.safe_dump({**TINY, "precision": ["fp32"]}))
    r = run_script(capsys, "bench_precision.py", "--spec", spec, "--logdir", tmp_path / "runs")
    lines = error_lines(r.err)
    assert r.code == 2 and len(lines) == 1 and "precision [fp32, bf16]" in lines[0], r.err
    assert not (tmp_path / "runs").exists()
