import itertools
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from scipy import stats
from torch.utils.tensorboard import SummaryWriter

from agents.compare import (
    Point,
    Run,
    RunConfig,
    compare_runs,
    curve_band,
    final_return,
    iqm_interval,
    merge_segments,
)
from common.errors import UsageError

ROOT = Path(__file__).resolve().parent.parent
TAG = "charts/episodic_return"

# Every run spans steps 20..120, so its last 10% is steps >= 110. Points at 100..109 carry large
# values: a window of 0.9 * last (>= 108) or of the last points would pick them up.
STEPS = [20, 40, 60, 80, 100, 105, 109, 110, 115, 120]
HEAD = [1.0, 2.0, 3.0, 4.0, 500.0, 500.0, 1000.0]

_clock = itertools.count()


def _points(tail):
    """Points at STEPS whose final three values (steps 110, 115, 120) are `tail`."""
    return list(zip(STEPS, HEAD + list(tail), strict=True))


def write_run(run_dir, algo, extractor, seed, segments, with_r=False, env="MsPacman", tag=TAG):
    """A fake run folder: config.yaml plus one event file per segment of (step, value)."""
    run_dir.mkdir(parents=True)
    config = {"env": env, "algo": algo, "extractor": extractor, "with_r": with_r, "seed": seed}
    config["hyperparams"] = {"n_timesteps": 120}  # other keys exist and are ignored
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config))
    for segment in segments:
        writer = SummaryWriter(log_dir=str(run_dir))
        for step, value in segment:
            # Explicit, increasing wall times: later segments are later sessions.
            writer.add_scalar(tag, value, step, walltime=1e6 + next(_clock))
        writer.add_scalar("charts/episodic_length", 7.0, STEPS[-1], walltime=1e6 + next(_clock))
        writer.close()


@pytest.fixture(scope="module")
def runs_root(tmp_path_factory):
    """Runs of one game, nested at two depths, with the expected final returns known by hand.

    a2c conv: 3 seeds, finals 11, 22, 7 (seed 2 is a resumed run in two event files).
    a2c coordconv: 4 seeds, finals 30, 41.75 (two games end at step 120), 36, 100.
    ppo conv: 1 seed with points (final 70) and 1 run without any for the tag (skipped).
    ppo coordconv+r: 2 seeds, finals 50, 60.
    """
    root = tmp_path_factory.mktemp("runs") / "MsPacman"
    write_run(root / "a2c" / "conv_s0", "a2c", "conv", 0, [_points([10, 11, 12])])
    write_run(root / "a2c" / "conv_s1", "a2c", "conv", 1, [_points([20, 21, 25])])
    # Crashed after step 105, resumed from the checkpoint at step 100: the first session's
    # points from step 100 on were trained over again and must not count.
    first = [(20, 1.0), (40, 2.0), (60, 3.0), (80, 4.0), (100, 999.0), (105, 999.0)]
    second = [(100, 500.0), (109, 1000.0), (110, 5.0), (115, 6.0), (120, 10.0)]
    write_run(root / "a2c" / "conv_s2", "a2c", "conv", 2, [first, second])
    write_run(root / "a2c" / "coord_s0", "a2c", "coordconv", 0, [_points([30, 30, 30])])
    write_run(
        root / "a2c" / "coord_s1", "a2c", "coordconv", 1, [_points([40, 41, 42]) + [(120, 44.0)]]
    )
    write_run(root / "a2c" / "coord_s2", "a2c", "coordconv", 2, [_points([35, 36, 37])])
    write_run(root / "a2c" / "coord_s3", "a2c", "coordconv", 3, [_points([100, 100, 100])])
    write_run(root / "ppo_conv_s0", "ppo", "conv", 0, [_points([70, 70, 70])])
    write_run(root / "ppo_conv_s1", "ppo", "conv", 1, [_points([1, 1, 1])], tag="other/tag")
    for seed, tail in [(0, [50, 50, 50]), (1, [60, 60, 60])]:
        write_run(root / f"ppo_rs{seed}", "ppo", "coordconv", seed, [_points(tail)], with_r=True)
    return root


@pytest.fixture(scope="module")
def result(runs_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("out")
    return compare_runs(runs_root, out=out, progress=False), out


def _group(summary, label):
    (group,) = [g for g in summary["groups"] if g["label"] == label]
    return group


def _t_ci(finals):
    x = np.array(finals)
    half = stats.t.ppf(0.975, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x))
    return [x.mean() - half, x.mean() + half]


def test_groups_are_labelled_and_ordered(result):
    summary = result[0].summary
    labels = [g["label"] for g in summary["groups"]]
    assert labels == ["a2c conv", "a2c coordconv", "ppo conv", "ppo coordconv+r"]
    assert summary["tag"] == TAG and summary["env"] == "MsPacman"
    rs = _group(summary, "ppo coordconv+r")
    assert (rs["algo"], rs["extractor"], rs["with_r"]) == ("ppo", "coordconv", True)


def test_final_returns_means_and_t_intervals(result):
    summary = result[0].summary
    expected = {
        "a2c conv": [11.0, 22.0, 7.0],
        "a2c coordconv": [30.0, 41.75, 36.0, 100.0],
        "ppo coordconv+r": [50.0, 60.0],
    }
    for label, finals in expected.items():
        group = _group(summary, label)
        assert [r["final_return"] for r in group["runs"]] == pytest.approx(finals)
        assert [r["seed"] for r in group["runs"]] == list(range(len(finals)))
        assert group["n_seeds"] == len(finals)
        assert group["mean"] == pytest.approx(sum(finals) / len(finals))
        assert group["ci95"] == pytest.approx(_t_ci(finals))
    single = _group(summary, "ppo conv")
    assert single["n_seeds"] == 1 and single["mean"] == pytest.approx(70.0)
    assert single["ci95"] is None


def test_resumed_run_merges_both_event_files(result):
    conv = _group(result[0].summary, "a2c conv")
    resumed = conv["runs"][2]
    assert resumed["name"] == "a2c/conv_s2"
    # 4 points before step 100 from the first session, all 5 of the second.
    assert (resumed["n_points"], resumed["last_step"]) == (9, 120)
    assert resumed["final_return"] == pytest.approx(7.0)


def test_games_ending_at_the_same_step_all_count(result):
    run = _group(result[0].summary, "a2c coordconv")["runs"][1]
    assert run["n_points"] == len(STEPS) + 1


def test_iqm_only_from_three_seeds(result):
    summary = result[0].summary
    coord = _group(summary, "a2c coordconv")
    # IQM of 30, 36, 41.75, 100: the middle two.
    assert coord["iqm"] == pytest.approx((36.0 + 41.75) / 2)
    lo, hi = coord["iqm_ci95"]
    assert 30.0 <= lo <= coord["iqm"] <= hi <= 100.0 and lo < hi
    conv = _group(summary, "a2c conv")
    assert conv["iqm"] == pytest.approx(40.0 / 3)  # three seeds: nothing is trimmed
    assert conv["iqm_ci95"] is not None
    for label in ("ppo conv", "ppo coordconv+r"):
        assert _group(summary, label)["iqm"] is None
        assert _group(summary, label)["iqm_ci95"] is None


def test_bootstrap_is_deterministic_and_leaves_the_global_rng_alone():
    scores = [3.1, 9.7, 4.2, 12.5, 7.3, 1.8, 15.9, 6.6, 10.4, 2.2]
    np.random.seed(1)
    first = iqm_interval(scores)
    after = np.random.rand()
    np.random.seed(1)
    np.random.rand()  # a different global RNG state going in must not change the interval
    assert iqm_interval(scores) == first
    np.random.seed(1)
    iqm_interval(scores)
    assert np.random.rand() == after == np.random.RandomState(1).rand()
    assert iqm_interval([1.0, 2.0]) is None


def test_json_and_markdown_files(result):
    comparison, out = result
    assert [p.name for p in comparison.files] == [
        "comparison.md",
        "comparison.json",
        "comparison.png",
    ]
    assert json.loads((out / "comparison.json").read_text()) == comparison.summary
    md = (out / "comparison.md").read_text()
    assert comparison.table in md
    assert "last 10%" in md and f"`{TAG}`" in md
    rows = [line for line in comparison.table.splitlines()[2:] if line.startswith("| ")]
    assert len(rows) == 4
    assert comparison.table.splitlines()[0].startswith("| group | seeds | final return mean |")
    ppo_conv = next(r for r in rows if r.startswith("| ppo conv |"))
    assert ppo_conv.split("|")[4].strip() == "-" and ppo_conv.split("|")[5].strip() == "-"
    assert "a2c/conv_s2" in rows[0]


def test_png_is_written(result):
    png = result[1] / "comparison.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not [p for p in png.parent.iterdir() if p.name.endswith(".tmp")]


def test_final_return_is_the_last_tenth_of_the_step_range():
    steps = np.array([1000, 5000, 9000, 9099, 9100, 9500, 10000])
    values = np.array([0.0, 0.0, 0.0, 99.0, 1.0, 2.0, 3.0])
    assert final_return(steps, values) == pytest.approx(2.0)
    assert final_return(np.array([7]), np.array([4.0])) == pytest.approx(4.0)


def test_merge_keeps_the_later_point_of_overlapping_writers_and_drops_nan():
    a = [Point(1.0, 10, 1.0), Point(3.0, 20, 2.0), Point(5.0, 30, float("nan"))]
    b = [Point(2.0, 15, 7.0), Point(4.0, 20, 9.0)]
    merged = merge_segments([b, a])
    assert [(p.step, p.value) for p in merged] == [(10, 1.0), (15, 7.0), (20, 9.0)]


def test_curve_band_spans_the_shortest_run_with_a_t_band():
    config = RunConfig("MsPacman", "a2c", "conv", False, 0)
    a = Run("a", config, np.array([0, 50, 100]), np.array([0.0, 50.0, 100.0]))
    b = Run("b", config, np.array([0, 100, 200]), np.array([10.0, 110.0, 210.0]))
    grid, mean, band = curve_band([a, b])
    assert len(grid) == 100 and (grid[0], grid[-1]) == (0, 100)
    assert mean == pytest.approx(grid + 5.0)
    half = stats.t.ppf(0.975, 1) * 5.0  # std of {g, g + 10} is 5 * sqrt(2), over sqrt(2) seeds
    assert band[1] - mean == pytest.approx(np.full(100, half))
    assert curve_band([a])[2] is None


def run_cli(*args):
    return subprocess.run(
        [sys.executable, "scripts/compare_runs.py", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )


def test_cli_prints_table_and_writes_default_out(runs_root):
    proc = run_cli(str(runs_root), "--no-progress")
    assert proc.returncode == 0, proc.stderr
    assert "| group | seeds | final return mean | 95% CI | IQM [95% CI] | runs |" in proc.stdout
    for label in ("a2c conv", "a2c coordconv", "ppo conv", "ppo coordconv+r"):
        assert f"| {label} | " in proc.stdout
    assert "ppo_conv_s1" in proc.stderr and "skipped" in proc.stderr
    out = runs_root / "comparison"
    assert {p.name for p in out.iterdir()} == {"comparison.md", "comparison.json", "comparison.png"}


def _missing_root(root):
    return [str(root)], root.name


def _root_is_a_file(root):
    root.write_text("not a folder")
    return [str(root)], root.name


def _no_runs(root):
    (root / "empty").mkdir(parents=True)
    return [str(root)], "no run folders"


def _config_lacks_a_key(root):
    write_run(root / "run", "a2c", "conv", 0, [_points([1, 1, 1])])
    config = yaml.safe_load((root / "run" / "config.yaml").read_text())
    del config["seed"]
    (root / "run" / "config.yaml").write_text(yaml.safe_dump(config))
    return [str(root)], "'seed'"


def _config_is_not_yaml(root):
    (root / "run").mkdir(parents=True)
    (root / "run" / "config.yaml").write_text("env: [unclosed\nalgo: a2c\n")
    return [str(root)], "run/config.yaml"


def _games_are_mixed(root):
    write_run(root / "a", "a2c", "conv", 0, [_points([1, 1, 1])], env="Breakout")
    write_run(root / "b", "a2c", "conv", 1, [_points([1, 1, 1])])
    return [str(root)], "Breakout"


def _tag_absent(root):
    write_run(root / "run", "a2c", "conv", 0, [_points([1, 1, 1])])
    return [str(root), "--tag", "eval/mean_reward"], "eval/mean_reward"


BAD_INPUTS = {
    "missing root": _missing_root,
    "root is a file": _root_is_a_file,
    "no runs": _no_runs,
    "config lacks a key": _config_lacks_a_key,
    "config is not YAML": _config_is_not_yaml,
    "games are mixed": _games_are_mixed,
    "tag absent": _tag_absent,
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_exits_2_with_one_line(tmp_path, case):
    root = tmp_path / "MsPacman"
    args, expected = BAD_INPUTS[case](root)
    proc = run_cli(*args, "--no-progress")
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: ") and expected in lines[0]
    if case == "tag absent":
        assert "charts/episodic_return" in lines[0]  # the tags that do exist are listed


def test_library_raises_usage_error_as_value_error(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        compare_runs(tmp_path / "missing")
    assert issubclass(UsageError, ValueError)
