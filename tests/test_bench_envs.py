import json

from tests.cli import error_lines, run_script


def test_bench_envs_times_all_backends(capsys, tmp_path):
    out = tmp_path / "env_speed.md"
    r = run_script(
        capsys, "bench_envs.py", "--n-envs", "2", "--steps", "40", "--rounds", "1",
        "--no-progress", "--out", out,
    )  # fmt: skip
    assert r.code == 0, r.err
    assert "2 envs: ale / sb3-subproc = " in r.out
    text = out.read_text()
    assert text.startswith("# Atari vec env speed") and "## cpu: " in text
    (row,) = json.loads((tmp_path / "env_speed_cpu.json").read_text())["rows"]
    rates = row["steps_per_second"]
    assert set(rates) == {"sb3-dummy", "sb3-subproc", "ale"} and min(rates.values()) > 0
    assert row["over_sb3_subproc"]["ale"] == rates["ale"] / rates["sb3-subproc"]
    assert f"| 2 | {rates['sb3-dummy']:,.0f} |" in text


def test_bench_envs_bad_input(capsys, tmp_path):
    for args, message in [
        (["--n-envs", "8,x"], "--n-envs must list positive integers, got '8,x'"),
        (["--rounds", "0"], "--steps and --rounds must be >= 1"),
        (["--env", "Pacmn"], "unknown Atari game 'Pacmn'"),
    ]:
        r = run_script(capsys, "bench_envs.py", "--out", tmp_path / "x.md", *args)
        lines = error_lines(r.err)
        assert r.code == 2 and len(lines) == 1 and message in lines[0], r.err
    assert not (tmp_path / "x.md").exists()
