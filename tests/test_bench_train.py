import json

from tests.cli import error_lines, run_script


def test_bench_train_measures_all_three_variants(capsys, tmp_path):
    out = tmp_path / "train_speed.md"
    r = run_script(
        capsys, "bench_train.py", "--algos", "a2c", "--steps", "40", "--rounds", "1",
        "--n-envs", "2", "--device", "cpu", "--no-progress", "--out", out,
    )  # fmt: skip
    assert r.code == 0, r.err
    assert "a2c: time per step coordconv / conv = " in r.out
    text = out.read_text()
    assert text.startswith("# Atari training speed") and "## cpu: " in text
    assert "| a2c | 2 |" in text
    data = json.loads((tmp_path / "train_speed_cpu.json").read_text())
    (row,) = data["rows"]
    assert set(row["steps_per_second"]) == {"zoo", "conv", "coordconv", "coordconv-ale"}
    assert all(v > 0 for v in row["steps_per_second"].values())
    s = row["steps_per_second"]
    assert row["coordconv_time_over_conv"] == s["conv"] / s["coordconv"]
    assert row["ale_speedup"] == s["coordconv-ale"] / s["coordconv"]


def test_bench_train_bad_input(capsys, tmp_path):
    for args, message in [
        (["--algos", "dqn"], "--algos must list some of a2c, ppo, got 'dqn'"),
        (["--steps", "0"], "--steps and --rounds must be >= 1"),
        (["--env", "Pacmn", "--steps", "1"], "unknown Atari game 'Pacmn'"),
    ]:
        r = run_script(capsys, "bench_train.py", "--out", tmp_path / "x.md", *args)
        lines = error_lines(r.err)
        assert r.code == 2 and len(lines) == 1 and message in lines[0], r.err
    assert not (tmp_path / "x.md").exists()
