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

from analysis.report import compare_runs
from analysis.runs import NOT_GROUPED, Point, Run, RunConfig, group_settings, merge_segments
from analysis.stats import (
    MIN_SEEDS_FOR_IQM,
    curve_band,
    final_return,
    iqm_interval,
    seed_curves,
    smooth_curve,
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


def write_run(
    run_dir,
    algo,
    extractor,
    seed,
    segments,
    with_r=False,
    env="MsPacman",
    tag=TAG,
    hyperparams=None,
    **settings,
):
    """A fake run folder: config.yaml plus one event file per segment of (step, value).

    `hyperparams` entries are added to the config's hyperparams, `settings` to its top level.
    """
    run_dir.mkdir(parents=True)
    config = {"env": env, "algo": algo, "extractor": extractor, "with_r": with_r, "seed": seed}
    config["hyperparams"] = {"n_timesteps": 120, **(hyperparams or {})}
    config.update(settings)
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
    a2c coordconv: 5 seeds, finals 30, 41.75 (two games end at step 120), 36, 100, 33.
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
    write_run(root / "a2c" / "coord_s4", "a2c", "coordconv", 4, [_points([33, 33, 33])])
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
        "a2c coordconv": [30.0, 41.75, 36.0, 100.0, 33.0],
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


def test_iqm_only_from_five_seeds(result):
    assert MIN_SEEDS_FOR_IQM == 5
    summary = result[0].summary
    coord = _group(summary, "a2c coordconv")
    # IQM of 30, 33, 36, 41.75, 100: the 25% trimmed mean drops one seed per side.
    assert coord["iqm"] == pytest.approx((33.0 + 36.0 + 41.75) / 3)
    lo, hi = coord["iqm_ci95"]
    assert 30.0 <= lo <= coord["iqm"] <= hi <= 100.0 and lo < hi
    for label in ("a2c conv", "ppo conv", "ppo coordconv+r"):  # 3, 1 and 2 seeds
        assert _group(summary, label)["iqm"] is None
        assert _group(summary, label)["iqm_ci95"] is None
    rows = {row.split(" | ")[0]: row for row in result[0].table.splitlines()}
    assert rows["| a2c conv"].split("|")[5].strip() == "needs 5 seeds"
    assert rows["| a2c coordconv"].split("|")[5].strip().startswith(f"{coord['iqm']:.2f} [")
    assert iqm_interval([1.0, 2.0, 3.0, 4.0]) is None


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
    assert ppo_conv.split("|")[4].strip() == "-"
    assert ppo_conv.split("|")[5].strip() == "needs 5 seeds"
    assert "a2c/conv_s2" in rows[0]
    assert "Groups differ only in algo, extractor, with_r." in comparison.table
    assert comparison.summary["differing_keys"] == []
    assert list(comparison.summary["not_grouped"]) == list(NOT_GROUPED)
    assert _group(comparison.summary, "a2c conv")["distinguishing"] == {}
    assert "trailing mean over 100,000 agent steps" in md


def test_markdown_lists_each_seeds_final_return(result):
    table = result[0].table
    assert "final return per seed" in table.splitlines()[0]
    (conv,) = [r for r in table.splitlines() if r.startswith("| a2c conv |")]
    assert conv.split("|")[6].strip() == "s0 11.00, s1 22.00, s2 7.00"
    (rs,) = [r for r in table.splitlines() if r.startswith("| ppo coordconv+r |")]
    assert "s0 50.00, s1 60.00" in rs


def test_png_is_written(result):
    png = result[1] / "comparison.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not [p for p in png.parent.iterdir() if p.name.endswith(".tmp")]


def _labels(summary):
    return [g["label"] for g in summary["groups"]]


def test_runs_differing_in_a_hyperparameter_are_separate_groups(tmp_path):
    root = tmp_path / "MsPacman"
    for seed, lr, final in [(0, 7e-4, 10), (1, 7e-4, 20), (0, 1e-3, 30), (1, 1e-3, 40)]:
        hp = {"learning_rate": lr}
        write_run(
            root / f"lr{lr}_s{seed}", "a2c", "conv", seed, [_points([final] * 3)], hyperparams=hp
        )
    hp = {"learning_rate": 7e-4}
    write_run(root / "coord_s0", "a2c", "coordconv", 0, [_points([50] * 3)], hyperparams=hp)
    comparison = compare_runs(root, out=tmp_path / "out", progress=False)
    summary = comparison.summary
    assert _labels(summary) == [
        "a2c conv (learning_rate=0.0007)",
        "a2c conv (learning_rate=0.001)",
        "a2c coordconv",
    ]
    assert [g["mean"] for g in summary["groups"]] == pytest.approx([15.0, 35.0, 50.0])
    assert summary["differing_keys"] == ["learning_rate"]
    assert [g["distinguishing"] for g in summary["groups"]] == [
        {"learning_rate": 7e-4},
        {"learning_rate": 1e-3},
        {"learning_rate": 7e-4},
    ]
    assert summary["groups"][0]["config"]["n_timesteps"] == 120
    lines = comparison.table.splitlines()
    assert lines[0].split("|")[7].strip() == "config"
    assert lines[4].split("|")[7].strip() == "learning_rate=0.0007"  # a2c coordconv
    assert "Groups differ in: learning_rate." in comparison.table
    assert comparison.table in (tmp_path / "out" / "comparison.md").read_text()


@pytest.mark.parametrize(
    ("key", "values", "pooled", "alone"),
    [
        # An older run without a backend key used SB3's backend: it pools with `backend: sb3`.
        ("backend", [None, "sb3", "ale"], "backend=sb3", "backend=ale"),
        ("sticky_actions", [False, False, True], "sticky_actions=false", "sticky_actions=true"),
        ("eval_episodes", [5, 5, 10], "eval_episodes=5", "eval_episodes=10"),
        # The budget is a hyperparameter; 120.0 (YAML's 1.2e+2) is the same budget as 120.
        ("n_timesteps", [120, 120.0, 240], "n_timesteps=120", "n_timesteps=240"),
    ],
)
def test_runs_differing_in_one_setting_are_separate_groups(tmp_path, key, values, pooled, alone):
    """Seeds 0 and 1 share a value, a second seed 0 has another: two groups, no duplicate."""
    root = tmp_path / "MsPacman"
    for i, (seed, value, final) in enumerate(zip([0, 1, 0], values, [10, 20, 40], strict=True)):
        extra = {} if value is None else {key: value}
        if key == "n_timesteps":
            extra = {"hyperparams": extra}
        write_run(root / f"run{i}", "a2c", "conv", seed, [_points([final] * 3)], **extra)
    comparison = compare_runs(root, out=tmp_path / "out", progress=False)
    groups = {g["label"]: g for g in comparison.summary["groups"]}
    assert set(groups) == {f"a2c conv ({pooled})", f"a2c conv ({alone})"}
    assert groups[f"a2c conv ({pooled})"]["n_seeds"] == 2
    assert groups[f"a2c conv ({pooled})"]["mean"] == pytest.approx(15.0)
    assert groups[f"a2c conv ({alone})"]["mean"] == pytest.approx(40.0)
    assert comparison.summary["differing_keys"] == [key]
    assert f"Groups differ in: {key}." in comparison.table


def test_differences_between_differently_labelled_groups_are_named(tmp_path):
    """Different labels need no suffix, but a key other than algo, extractor and with_r in
    which they differ is still named: per group if it varies within one algo, else per algo.
    """
    root = tmp_path / "MsPacman"
    runs = [("a2c", "conv", "sb3", 16), ("a2c", "coordconv", "ale", 16), ("ppo", "conv", "ale", 8)]
    for algo, extractor, backend, n_envs in runs:
        hp = {"n_envs": n_envs}
        folder = root / f"{algo}_{extractor}"
        write_run(folder, algo, extractor, 0, [_points([1] * 3)], hyperparams=hp, backend=backend)
    comparison = compare_runs(root, out=tmp_path / "out", progress=False)
    summary = comparison.summary
    assert _labels(summary) == ["a2c conv", "a2c coordconv", "ppo conv"]
    assert summary["differing_keys"] == ["backend", "n_envs"]
    assert summary["groups"][1]["distinguishing"] == {"n_envs": 16, "backend": "ale"}
    table = comparison.table
    assert [r.split("|")[7].strip() for r in table.splitlines()[2:5]] == [
        "backend=sb3",
        "backend=ale",
        "backend=ale",
    ]
    assert table.splitlines()[-1] == (
        "Groups differ in: backend, n_envs. Between algos only: n_envs (a2c 16, ppo 8)."
    )


def test_old_configs_naming_the_backend_vec_env_pool_with_new_ones(tmp_path):
    """Before `backend` had its key, `vec_env` held ale or sb3; `vec_env` now names how SB3's
    sub-envs are hosted (dummy or subproc), which does not change the games."""
    root = tmp_path / "MsPacman"
    write_run(root / "old", "a2c", "conv", 0, [_points([1] * 3)], vec_env="ale")
    write_run(root / "new", "a2c", "conv", 1, [_points([2] * 3)], backend="ale", vec_env="dummy")
    write_run(root / "sb3", "a2c", "conv", 2, [_points([3] * 3)], backend="sb3", vec_env="subproc")
    write_run(root / "oldest", "a2c", "conv", 3, [_points([4] * 3)])  # sb3, before the key
    summary = compare_runs(root, out=tmp_path / "out", progress=False).summary
    assert _labels(summary) == ["a2c conv (backend=ale)", "a2c conv (backend=sb3)"]
    assert [g["n_seeds"] for g in summary["groups"]] == [2, 2]


def test_keys_that_cannot_change_learning_do_not_split_groups(tmp_path):
    root = tmp_path / "MsPacman"
    settings = [
        {"device": "cpu", "num_threads": 2, "checkpoint_freq": 0, "config_file": "a.yaml"},
        {"device": "cuda", "num_threads": 8, "checkpoint_freq": 100, "config_file": "/b.yaml"},
        {},
    ]
    for seed, extra in enumerate(settings):
        write_run(root / f"s{seed}", "a2c", "conv", seed, [_points([seed] * 3)], **extra)
    comparison = compare_runs(root, out=tmp_path / "out", progress=False)
    assert _labels(comparison.summary) == ["a2c conv"]
    assert comparison.summary["groups"][0]["n_seeds"] == 3
    assert comparison.summary["differing_keys"] == []


def test_group_settings_flattens_the_config_without_the_seed():
    config = {
        "env": "MsPacman",
        "algo": "a2c",
        "extractor": "conv",
        "with_r": False,
        "seed": 3,
        "device": "cuda",
        "num_threads": 4,
        "checkpoint_freq": 10,
        "config_file": "configs/atari/a2c.yaml",
        "sticky_actions": True,
        "hyperparams": {"learning_rate": 1e-3, "policy_kwargs": {"ortho_init": False}, "env": 1},
    }
    assert group_settings(config) == {
        "algo": "a2c",
        "env": "MsPacman",
        "extractor": "conv",
        "hyperparams.env": 1,  # a hyperparameter named like a run setting keeps its prefix
        "learning_rate": 1e-3,
        "policy_kwargs.ortho_init": False,
        "sticky_actions": True,
        "with_r": False,
    }
    not_grouped = {"seed", "device", "num_threads", "checkpoint_freq", "config_file", "vec_env"}
    not_grouped |= {"save_replay_buffer"}
    assert set(NOT_GROUPED) == not_grouped


def _two_copies_of_one_seed(root):
    write_run(root / "a2c_conv_s0", "a2c", "conv", 0, [_points([1, 1, 1])])
    write_run(root / "a2c_conv_s0_2", "a2c", "conv", 0, [_points([2, 2, 2])])
    write_run(root / "a2c_conv_s1", "a2c", "conv", 1, [_points([3, 3, 3])])


def test_same_seed_twice_in_a_group_is_refused_before_any_output(tmp_path):
    root = tmp_path / "MsPacman"
    _two_copies_of_one_seed(root)
    # The same seed in different groups is fine.
    write_run(root / "a2c_coordconv_s0", "a2c", "coordconv", 0, [_points([1, 1, 1])])
    out = tmp_path / "out"
    with pytest.raises(UsageError) as err:
        compare_runs(root, out=out, progress=False)
    message = str(err.value)
    assert "\n" not in message
    assert "group a2c conv has seed 0" in message
    assert "a2c_conv_s0 and a2c_conv_s0_2" in message
    assert not out.exists() and not (root / "comparison").exists()


def test_smoothing_is_a_trailing_mean_in_step_space():
    steps = np.array([0, 10, 20, 30, 30])
    values = np.array([0.0, 10.0, 20.0, 30.0, 40.0])
    # Window 15: each point averages the points in (step - 15, step].
    assert smooth_curve(steps, values, 15) == pytest.approx([0.0, 5.0, 15.0, 30.0, 30.0])
    assert smooth_curve(steps, values, 0) == pytest.approx(values)
    assert smooth_curve(steps, values, 1000) == pytest.approx([0.0, 5.0, 10.0, 20.0, 20.0])
    shuffled = [4, 1, 3, 0, 2]  # points need not come sorted by step
    expected = smooth_curve(steps, values, 15)[shuffled]
    assert smooth_curve(steps[shuffled], values[shuffled], 15) == pytest.approx(expected)


def test_smoothing_changes_the_curves_but_not_the_table(result, runs_root, tmp_path):
    config = RunConfig("MsPacman", "a2c", "conv", False, 0)
    run = Run("a", config, np.array(STEPS), np.array(HEAD + [5.0, 6.0, 10.0]))
    grid, raw = seed_curves([run])
    _, smoothed = seed_curves([run], smooth=30)
    assert raw[0] == pytest.approx(np.interp(grid, STEPS, run.values))
    # At step 120 the trailing 30 steps (91..120) hold 500, 500, 1000, 5, 6 and 10.
    assert smoothed[0, -1] == pytest.approx((500 + 500 + 1000 + 5 + 6 + 10) / 6)
    assert curve_band([run], smooth=30)[1] == pytest.approx(smoothed[0])
    assert not np.allclose(raw, smoothed)
    unsmoothed = compare_runs(runs_root, out=tmp_path, progress=False, smooth=0)
    assert unsmoothed.summary == result[0].summary  # made with the default window
    assert unsmoothed.table == result[0].table
    assert "not smoothed" in (tmp_path / "comparison.md").read_text()


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
    header = "| group | seeds | final return mean | 95% CI | IQM [95% CI] | final return per seed |"
    assert header + " runs |" in proc.stdout
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


def _same_seed_twice(root):
    _two_copies_of_one_seed(root)
    return [str(root)], "a2c_conv_s0 and a2c_conv_s0_2"


def _negative_smooth(root):
    write_run(root / "run", "a2c", "conv", 0, [_points([1, 1, 1])])
    return [str(root), "--smooth", "-5"], "--smooth must be >= 0, got -5"


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
    "same seed twice in a group": _same_seed_twice,
    "negative smooth": _negative_smooth,
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
    assert not (root / "comparison").exists()  # refused before any output
    if case == "tag absent":
        assert "charts/episodic_return" in lines[0]  # the tags that do exist are listed


def test_library_raises_usage_error_as_value_error(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        compare_runs(tmp_path / "missing")
    assert issubclass(UsageError, ValueError)
