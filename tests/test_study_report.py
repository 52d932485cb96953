import json
import math
import time

import numpy as np
import pytest
from scipy import stats

from analysis.reference_scores import human_normalised
from analysis.study import study_report
from common.errors import UsageError
from tests.test_compare_runs import write_run

# Every full run ends at step 120 (n_timesteps of write_run's config): its last 10% is steps
# >= 110, three games there all scoring the run's final return, zeros before.
FULL = [20, 40, 60, 80, 100, 110, 115, 120]

REPS = 200  # bootstrap resamples: enough for the checks, quick on a busy machine

# Random and human scores, written out here so that the module's table is checked too.
MSPACMAN = (307.3, 6951.6)
BREAKOUT = (1.7, 30.5)


def _run(root, game, extractor, seed, final, steps=FULL, with_r=False):
    name = f"a2c_{extractor}{'_r' if with_r else ''}_s{seed}"
    points = [(s, final if s >= steps[-1] - 10 else 0.0) for s in steps]
    write_run(root / game / name, "a2c", extractor, seed, [points], with_r=with_r, env=game)


def _hns(score, ref):
    random, human = ref
    return (score - random) / (human - random)


def _iqm(scores):
    """Interquartile mean by hand: drop floor(n/4) scores from each end, average the rest."""
    x = sorted(scores)
    cut = len(x) // 4
    kept = x[cut : len(x) - cut]
    return sum(kept) / len(kept)


def _t_ci(finals):
    x = np.array(finals, dtype=float)
    half = stats.t.ppf(0.975, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x))
    return [x.mean() - half, x.mean() + half]


FINALS = {
    ("MsPacman", "conv"): [400.0, 500.0, 600.0],
    ("MsPacman", "coordconv"): [700.0, 800.0, 900.0],
    ("Breakout", "conv"): [10.0, 12.0, 14.0, 16.0],  # one seed more than the others
    ("Breakout", "coordconv"): [20.0, 22.0, 24.0],
    ("Freeway", "conv"): [5.0, 5.0],  # no reference scores; equal finals
    ("Freeway", "coordconv"): [5.0, 5.0],
}


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    root = tmp_path_factory.mktemp("study")
    for (game, extractor), finals in FINALS.items():
        for seed, final in enumerate(finals):
            _run(root, game, extractor, seed, final)
    out = tmp_path_factory.mktemp("report")
    return study_report(root, out=out, progress=False, smooth=0, reps=REPS), out


def _game(summary, env):
    (game,) = [g for g in summary["games"] if g["env"] == env]
    return game


def _group(game, label):
    (group,) = [g for g in game["groups"] if g["label"] == label]
    return group


def _agg(summary, label):
    (agg,) = [a for a in summary["aggregates"] if a["label"] == label]
    return agg


def _row(table, game, label):
    section = table.split(f"### {game}\n")[1].split("###")[0]
    (row,) = [r for r in section.splitlines() if r.startswith(f"| {label} |")]
    return [c.strip() for c in row.split("|")[1:-1]]


def test_per_game_means_t_intervals_and_finals(study):
    summary = study[0].summary
    assert [g["env"] for g in summary["games"]] == ["Breakout", "Freeway", "MsPacman"]
    for (env, extractor), finals in FINALS.items():
        group = _group(_game(summary, env), f"a2c {extractor}")
        assert [r["final_return"] for r in group["runs"]] == pytest.approx(finals)
        assert group["mean"] == pytest.approx(np.mean(finals))
        assert group["steps_reached"] == [120, 120]
        if len(set(finals)) > 1:
            assert group["ci95"] == pytest.approx(_t_ci(finals))
    row = _row(study[0].table, "MsPacman", "a2c conv")
    assert row[:3] == ["a2c conv", "3", "500.00"]
    assert row[4] == "s0 400.00, s1 500.00, s2 600.00"
    assert row[7] == "120"


def test_published_rl_zoo_scores_beside_each_group(study):
    summary, table = study[0].summary, study[0].table
    group = _group(_game(summary, "MsPacman"), "a2c conv")
    assert group["rl_zoo"] == {"mean": 1671.73, "std": 612.92}
    assert _row(table, "MsPacman", "a2c conv")[6] == "1671.73 +- 612.92"
    assert _row(table, "Breakout", "a2c coordconv")[6] == "279.79 +- 122.18"
    assert _group(_game(summary, "Freeway"), "a2c conv")["rl_zoo"] is None
    assert _row(table, "Freeway", "a2c conv")[6] == "-"
    # 120 steps against RL Zoo's 10M: said, not silently compared.
    assert any("not comparable" in n for n in _game(summary, "MsPacman")["notes"])


def test_human_normalised_scores_by_hand(study):
    summary = study[0].summary
    mspacman = _group(_game(summary, "MsPacman"), "a2c conv")
    assert mspacman["human_normalised_mean"] == pytest.approx((500 - 307.3) / (6951.6 - 307.3))
    assert mspacman["runs"][0]["human_normalised"] == pytest.approx(_hns(400.0, MSPACMAN))
    assert human_normalised("Breakout", 30.5) == pytest.approx(1.0)
    assert human_normalised("BreakoutNoFrameskip-v4", 1.7) == pytest.approx(0.0)
    assert human_normalised("Pong", -20.7) == pytest.approx(0.0)
    assert human_normalised("Freeway", 5.0) is None
    assert _group(_game(summary, "Freeway"), "a2c conv")["human_normalised_mean"] is None
    assert summary["human_reference"]["MsPacman"] == {"random": 307.3, "human": 6951.6}
    assert "Freeway" not in summary["human_reference"]


def test_aggregates_use_common_seeds_and_rliable_iqm(study):
    summary = study[0].summary
    conv = _agg(summary, "a2c conv")
    # Freeway has no reference scores; Breakout's 4th seed is left out to keep 3 per game.
    assert conv["games"] == ["Breakout", "MsPacman"]
    assert conv["games_without_reference"] == ["Freeway"]
    assert conv["n_seeds_used"] == 3 and conv["seeds_left_out"] == {"Breakout": [3]}
    breakout = [_hns(s, BREAKOUT) for s in [10.0, 12.0, 14.0]]
    mspacman = [_hns(s, MSPACMAN) for s in [400.0, 500.0, 600.0]]
    assert np.array(conv["scores"]) == pytest.approx(np.array([breakout, mspacman]).T)
    assert conv["iqm"] == pytest.approx(_iqm(breakout + mspacman))
    assert conv["mean"] == pytest.approx((np.mean(breakout) + np.mean(mspacman)) / 2)
    assert conv["median"] == pytest.approx(conv["mean"])  # two games: median of two = mean
    lo, hi = conv["iqm_ci95"]
    assert min(breakout + mspacman) <= lo <= conv["iqm"] <= hi <= max(breakout + mspacman)
    coord = _agg(summary, "a2c coordconv")
    assert coord["seeds_left_out"] == {}
    coord_scores = [_hns(s, BREAKOUT) for s in [20, 22, 24]] + [
        _hns(s, MSPACMAN) for s in [700, 800, 900]
    ]
    assert coord["iqm"] == pytest.approx(_iqm(coord_scores))
    assert "Breakout's seed(s) 3 left out" in study[0].table


def test_probability_of_improvement(study):
    summary = study[0].summary
    (imp,) = summary["improvements"]
    assert (imp["label"], imp["baseline"]) == ("a2c coordconv", "a2c conv")
    # Rank-based per game: games without reference scores count too.
    assert imp["games"] == ["Breakout", "Freeway", "MsPacman"]
    # Every coordconv run beats every conv run on Breakout and MsPacman; Freeway's are equal.
    assert imp["per_game"] == {"Breakout": 1.0, "Freeway": 0.5, "MsPacman": 1.0}
    assert imp["probability"] == pytest.approx(2.5 / 3)
    assert imp["within_noise"] is False and imp["ci95"][0] > 0.5
    assert "a2c coordconv better" in imp["verdict"]


def test_profiles_and_sample_efficiency(study):
    summary = study[0].summary
    tau = np.array(summary["profile_tau"])
    conv = _agg(summary, "a2c conv")
    scores = np.array(conv["scores"])
    expected = [(scores > t).mean() for t in tau]
    assert conv["profile"]["fraction"] == pytest.approx(expected)
    assert len(conv["profile"]["ci95"]) == 2 and len(conv["profile"]["ci95"][0]) == tau.size
    curve = conv["sample_efficiency"]
    assert curve["statistic"] == "iqm" and curve["steps"][-1] == 120
    # Unsmoothed, every run's curve ends at its final return: the last IQM is the final one.
    assert curve["values"][-1] == pytest.approx(conv["iqm"])
    assert curve["values"][0] == pytest.approx(
        _iqm([_hns(0.0, BREAKOUT)] * 3 + [_hns(0.0, MSPACMAN)] * 3)
    )


def test_files_json_and_markdown(study):
    report, out = study
    names = [p.name for p in report.files]
    assert names[:4] == [
        "study.md",
        "study.json",
        "study_profiles.png",
        "study_sample_efficiency.png",
    ]
    assert sorted(names[4:]) == ["curves_Breakout.png", "curves_Freeway.png", "curves_MsPacman.png"]
    for path in report.files:
        assert path.parent == out and path.is_file()
        if path.suffix == ".png":
            assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((out / "study.json").read_text()) == report.summary
    md = (out / "study.md").read_text()
    assert report.table in md
    assert "(study_profiles.png)" in md and "(study_sample_efficiency.png)" in md
    assert "Agent57" in md and "last 10%" in md
    assert "no human reference scores for Freeway" in md
    assert not [p for p in out.iterdir() if p.name.startswith(".")]


@pytest.fixture(scope="module")
def partial(tmp_path_factory):
    """MsPacman complete with equal score sets; Breakout without coordconv and one conv run
    stopped at step 60; SpaceInvaders without conv; Pong's only run has no point for the tag."""
    root = tmp_path_factory.mktemp("partial")
    for seed, (conv, coord) in enumerate([(100.0, 200.0), (300.0, 100.0), (200.0, 300.0)]):
        _run(root, "MsPacman", "conv", seed, conv)
        _run(root, "MsPacman", "coordconv", seed, coord)
    _run(root, "Breakout", "conv", 0, 10.0)
    _run(root, "Breakout", "conv", 1, 8.0, steps=[20, 40, 60])
    _run(root, "SpaceInvaders", "coordconv", 0, 500.0)
    _run(root, "SpaceInvaders", "coordconv", 1, 600.0)
    write_run(root / "Pong" / "a2c_conv_s0", "a2c", "conv", 0, [[(20, 1.0)]], env="Pong", tag="x")
    gpu = {"device": "cuda:0", "device_model": "NVIDIA H100", "capability": "sm_90"}
    gpu |= {"cuda": "13.0", "cudnn": 92400, "tf32": False, "cudnn_deterministic": False}
    for seed in range(3):  # what train_atari.py records in versions.json
        versions = {"torch": "2.14.1", "device": gpu}
        (root / "MsPacman" / f"a2c_conv_s{seed}" / "versions.json").write_text(json.dumps(versions))
    return study_report(root, progress=False, smooth=0, reps=REPS), root


def test_partial_study_reports_what_is_missing(partial):
    report, root = partial
    summary = report.summary
    assert [g["env"] for g in summary["games"]] == ["Breakout", "MsPacman", "SpaceInvaders"]
    assert [s["folder"] for s in summary["skipped_games"]] == ["Pong"]
    breakout = _game(summary, "Breakout")["notes"]
    assert "no a2c coordconv runs for Breakout (other games have them)" in breakout
    assert any("a2c_conv_s1 unfinished: last point at step 60" in n for n in breakout)
    assert any("a2c_conv_s1: final return from only 1 game(s)" in n for n in breakout)
    spaceinvaders = _game(summary, "SpaceInvaders")["notes"]
    assert "no conv baseline for a2c coordconv in SpaceInvaders: no comparison there" in (
        spaceinvaders
    )
    (imp,) = summary["improvements"]
    assert imp["games"] == ["MsPacman"]  # the only game with both
    assert imp["probability"] == pytest.approx(0.5) and imp["within_noise"] is True
    md = (root / "report" / "study.md").read_text()
    assert "within noise" in md and "Pong left out" in md
    assert summary["devices"] == [
        "not recorded (runs from before the device record)",
        "NVIDIA H100 (cuda:0, sm_90), CUDA 13.0, cuDNN 92400, TF32 off, cuDNN deterministic off",
    ]
    assert f"Trained on: {'; '.join(summary['devices'])}." in md
    assert json.loads((root / "report" / "study.json").read_text()) == summary


def test_one_seed_per_game_gives_numbers_without_intervals(tmp_path):
    for game in ("MsPacman", "Breakout"):
        _run(tmp_path, game, "conv", 0, 300.0)
        _run(tmp_path, game, "coordconv", 0, 400.0)
    summary = study_report(tmp_path, progress=False, smooth=0, reps=REPS).summary
    conv = _agg(summary, "a2c conv")
    assert conv["iqm"] is None and conv["mean_ci95"] is None  # 2 scores, 1 seed per game
    assert conv["mean"] == pytest.approx((_hns(300, MSPACMAN) + _hns(300, BREAKOUT)) / 2)
    (imp,) = summary["improvements"]
    assert imp["probability"] == 1.0 and imp["ci95"] is None
    assert (tmp_path / "report" / "study_sample_efficiency.png").is_file()


def _no_logdir(root):
    return root / "missing"


def _empty(root):
    (root / "MsPacman").mkdir()
    return root


def _runs_directly_under(root):
    _run(root, "MsPacman", "conv", 0, 1.0)
    return root / "MsPacman"


@pytest.mark.parametrize("case", [_no_logdir, _empty, _runs_directly_under])
def test_bad_logdir_is_one_line_usage_error(tmp_path, case):
    logdir = case(tmp_path)
    with pytest.raises(UsageError) as err:
        study_report(logdir, progress=False)
    assert "\n" not in str(err.value) and str(logdir) in str(err.value)
    assert not (logdir / "report").exists()


# Where the runs of a half-done study stand: finished, running, stopped, to do.
NOW = time.time()  # the time the states are judged at, seconds after it


def _progress(run_dir, steps, seconds_ago):
    """progress.json as agents.callbacks.ProgressFile writes it, last updated `seconds_ago`."""
    record = {"steps": steps, "total": 120, "steps_per_s": 10.0, "last_return": None}
    (run_dir / "progress.json").write_text(json.dumps(record | {"time": NOW - seconds_ago}))


def _result(run_dir, status, timesteps):
    record = {"status": status, "timesteps": timesteps, "trained_timesteps": timesteps}
    (run_dir / "train_result.json").write_text(json.dumps(record | {"seconds": 1.0}))


@pytest.fixture(scope="module")
def half_done(tmp_path_factory):
    """MsPacman: conv s0 finished, s1 running (updated 20 s ago), s2 to do; coordconv s0
    stopped (interrupted an hour ago), s1 finished at 120 but planned for 240 and silent for an
    hour (its budget grew: stopped), s2 to do. Breakout: conv s0 running, with no progress.json
    yet (its files are new), s1 to do."""
    # Judged from when the fixture is built, not from when the module was imported: the CLI
    # test reads the clock, and a suite that reaches this module more than RUNNING_WINDOW_S
    # after collection would otherwise see the running run as stopped.
    global NOW
    NOW = time.time()
    root = tmp_path_factory.mktemp("half")
    ms, br = root / "MsPacman", root / "Breakout"
    _run(root, "MsPacman", "conv", 0, 100.0)
    _result(ms / "a2c_conv_s0", "finished", 120)
    _run(root, "MsPacman", "conv", 1, 200.0, steps=[20, 40, 60])
    _progress(ms / "a2c_conv_s1", 60, 20)
    _run(root, "MsPacman", "coordconv", 0, 150.0, steps=[20, 40])
    _result(ms / "a2c_coordconv_s0", "interrupted", 40)
    _progress(ms / "a2c_coordconv_s0", 40, 3600)
    _run(root, "MsPacman", "coordconv", 1, 250.0)
    _result(ms / "a2c_coordconv_s1", "finished", 120)
    _progress(ms / "a2c_coordconv_s1", 120, 3600)
    _run(root, "Breakout", "conv", 0, 5.0)
    planned = {ms / f"a2c_{e}_s{s}": 120 for e in ("conv", "coordconv") for s in range(3)}
    planned[ms / "a2c_coordconv_s1"] = 240
    planned |= {br / "a2c_conv_s0": 120, br / "a2c_conv_s1": 120}
    return root, planned


def _counts(progress):
    return {
        (g["game"], g["kind"]): (g["runs"], g["finished"], g["running"], g["stopped"], g["to_do"])
        for g in progress["groups"]
    }


def test_run_progress_counts_finished_running_stopped_and_to_do(half_done):
    from analysis.run_progress import RUNNING_WINDOW_S, run_progress

    root, planned = half_done
    progress = run_progress(root, planned, now=NOW + 5)
    # Breakout's run has no progress.json: its files, written just now, tell.
    assert _counts(progress)[("Breakout", "a2c_conv")] == (2, 0, 1, 0, 1)
    later = run_progress(root, planned, now=time.time() + RUNNING_WINDOW_S + 60)
    assert _counts(later)[("Breakout", "a2c_conv")] == (2, 0, 0, 1, 1)
    assert _counts(progress)[("MsPacman", "a2c_conv")] == (3, 1, 1, 0, 1)
    assert _counts(progress)[("MsPacman", "a2c_coordconv")] == (3, 0, 0, 2, 1)
    states = {r["run"]: (r["state"], r["steps"], r["total"]) for r in progress["runs"]}
    assert states["MsPacman/a2c_conv_s1"] == ("running", 60, 120)
    assert states["MsPacman/a2c_coordconv_s1"] == ("stopped", 120, 240)
    assert states["MsPacman/a2c_conv_s2"] == ("to do", 0, 120)
    # Without the plan: only the folders, at their configs' totals; to do unknown.
    found = run_progress(root, now=NOW + 5)
    assert _counts(found)[("MsPacman", "a2c_coordconv")] == (2, 1, 0, 1, None)
    assert not found["planned"] and "MsPacman/a2c_conv_s2" not in json.dumps(found["runs"])


def test_report_of_a_partial_study_has_the_runs_table(half_done):
    root, planned = half_done
    report = study_report(root, progress=False, smooth=0, reps=REPS, planned=planned)
    runs = report.summary["runs"]
    assert runs["planned"] and len(runs["runs"]) == 8
    table = report.table.split("### Runs\n\n")[1].split("###")[0]
    assert "| game | run kind (folder name without seed) | runs | finished | running | stopped" in (
        table
    )
    row = next(r for r in table.splitlines() if r.startswith("| MsPacman | a2c_conv |"))
    assert [c.strip() for c in row.split("|")[1:-1]] == ["MsPacman", "a2c_conv", "3", "1", "1",
                                                          "0", "1"]  # fmt: skip
    total = next(r for r in table.splitlines() if r.startswith("| **all**"))
    assert [c.strip() for c in total.split("|")[1:-1]][2] == "**8**"
    md = (root / "report" / "study.md").read_text()
    assert "### Runs" in md and "to do: planned by the spec, no folder yet" in md
    assert json.loads((root / "report" / "study.json").read_text())["runs"] == runs
    # Without the plan the report still counts its folders, and says to do is unknown.
    alone = study_report(root, out=root / "alone", progress=False, smooth=0, reps=REPS)
    assert alone.summary["runs"]["groups"][0]["to_do"] is None
    assert "To do: unknown without the study's spec" in alone.table


def test_study_report_cli_counts_planned_runs(capsys, half_done, tmp_path):
    import yaml

    from tests.cli import run_script

    root, _ = half_done
    spec = {
        "games": ["MsPacman", "Breakout"], "algos": ["a2c"], "extractors": ["conv", "coordconv"],
        "with_r": [False], "seeds": [0, 1, 2], "timesteps": 120, "set": [], "eval_freq": 0,
        "cpus_per_run": 1, "gpus_per_run": 0,
    }  # fmt: skip
    path = tmp_path / "half.yaml"
    path.write_text(yaml.safe_dump(spec))
    r = run_script(capsys, "study.py", path, "--logdir", root, "--report", "--no-progress")
    assert r.code == 0, r.err
    rows = {
        tuple(c.strip() for c in line.split("|")[1:3]): [c.strip() for c in line.split("|")[3:-1]]
        for line in r.out.split("### Runs")[1].split("###")[0].splitlines()
        if line.startswith("| ") and not line.startswith("| game")
    }
    # Breakout's coordconv runs and seed 2 are planned and have no folder: to do.
    assert rows[("Breakout", "a2c_coordconv")] == ["3", "0", "0", "0", "3"]
    assert rows[("Breakout", "a2c_conv")][0] == "3" and rows[("Breakout", "a2c_conv")][4] == "2"
    assert rows[("MsPacman", "a2c_conv")][:2] == ["3", "1"]
    assert not (root / "Breakout" / "a2c_coordconv_s0").exists()


def test_progress_file_name_is_the_trainers():
    from agents.callbacks import ProgressFile
    from analysis.run_progress import PROGRESS_NAME

    assert PROGRESS_NAME == ProgressFile.NAME


def test_report_before_any_full_game_still_counts_the_runs(capsys, tmp_path):
    import yaml

    from tests.cli import error_lines, run_script

    spec = {
        "games": ["Pong"], "algos": ["a2c"], "extractors": ["conv"], "with_r": [False],
        "seeds": [0, 1], "timesteps": 120, "set": [], "eval_freq": 0, "cpus_per_run": 1,
        "gpus_per_run": 0,
    }  # fmt: skip
    path = tmp_path / "early.yaml"
    path.write_text(yaml.safe_dump(spec))
    logdir = tmp_path / "runs"
    write_run(logdir / "Pong" / "a2c_conv_s0", "a2c", "conv", 0, [[(20, 1.0)]], env="Pong", tag="x")
    r = run_script(capsys, "study.py", path, "--logdir", logdir, "--report", "--no-progress")
    assert r.code == 2 and len(error_lines(r.err)) == 1 and "could be read" in r.err
    row = next(line for line in r.out.splitlines() if line.startswith("| Pong | a2c_conv |"))
    assert [c.strip() for c in row.split("|")[3:-1]] == ["2", "0", "1", "0", "1"]
