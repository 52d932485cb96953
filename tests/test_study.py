"""scripts/study.py: specs checked before Ray starts, a tiny study on a local Ray, and a study
that survives its driver being killed."""

import json
import signal
import subprocess
import sys
import time

import pytest
import yaml

from studies.spec import load_spec, plan_runs
from tests.cli import ROOT, error_lines, run_script

TINY = {
    "games": ["Breakout"],  # short games: a few end within a tiny budget
    "algos": ["a2c"],
    "extractors": ["conv", "coordconv"],
    "with_r": [False],
    "seeds": [0, 1],
    "timesteps": 600,
    "set": ["n_envs=2"],
    "eval_freq": 0,
    "cpus_per_run": 1,
    "gpus_per_run": 0,
    "checkpoint_freq": 200,
}


def write_spec(tmp_path, **changes):
    spec = {**TINY, **changes}
    for key in [k for k, v in changes.items() if v is None]:
        del spec[key]
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def study(*args):
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "study.py"), *map(str, args), "--no-progress"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
    )


def results(logdir):
    return {
        p.parent.name: json.loads(p.read_text())
        for p in sorted((logdir / "Breakout").glob("*/train_result.json"))
    }


BAD_SPECS = [
    ({"games": ["MsPacmn"]}, "unknown Atari game 'MsPacmn'"),
    ({"extractors": ["conv", "coord"]}, "unknown extractor 'coord'"),
    ({"algos": ["sac"]}, "unknown algo 'sac'"),
    ({"save_replay_buffer": "yes"}, "save_replay_buffer in study spec"),
    ({"budget": 5}, "unknown key 'budget' in study spec"),
    ({"seeds": None}, "lacks 'seeds'"),
    ({"seeds": [0, -1]}, "seeds in study spec"),
    ({"timesteps": "many"}, "timesteps in study spec"),
    ({"cpus_per_run": 0}, "cpus_per_run in study spec"),
    ({"set": ["gamma=high"]}, "gamma must be a number, got 'high'"),
    ({"precision": ["fp16"]}, "unknown precision 'fp16'"),
    ({"precision": "bf16"}, "precision in study spec"),
]


@pytest.mark.parametrize("changes,message", BAD_SPECS, ids=lambda c: str(c)[:30])
def test_bad_spec_exits_2_with_one_line_before_ray_starts(capsys, tmp_path, changes, message):
    r = run_script(capsys, "study.py", write_spec(tmp_path, **changes), "--logdir", tmp_path / "x")
    lines = error_lines(r.err)
    assert r.code == 2 and len(lines) == 1 and message in lines[0], r.err
    assert not (tmp_path / "x").exists()


def test_shipped_specs_plan_their_runs(tmp_path):
    pilot = load_spec(ROOT / "configs" / "studies" / "mspacman_pilot.yaml")
    assert len(plan_runs(pilot, tmp_path)) == 6 and pilot.timesteps == 500_000
    atari9 = load_spec(ROOT / "configs" / "studies" / "atari9.yaml")
    runs = plan_runs(atari9, tmp_path)
    assert len(runs) == 9 * 2 * 5 and atari9.timesteps == 10_000_000
    assert {r.settings.env for r in runs} >= {"MsPacman", "Breakout", "Asteroids"}
    # Conv takes no radius channel: with_r [false, true] adds only CoordConv runs.
    both = write_spec(tmp_path, with_r=[False, True])
    names = sorted(r.run_dir.name for r in plan_runs(load_spec(both), tmp_path))
    assert names == sorted(
        f"a2c_{n}_s{s}" for n in ("conv", "coordconv", "coordconv_r") for s in (0, 1)
    )
    # The precision benchmark: the same seeds in fp32 and bf16, named apart.
    precision = plan_runs(load_spec(ROOT / "configs" / "studies" / "precision.yaml"), tmp_path)
    assert sorted(r.run_dir.name for r in precision) == sorted(
        f"a2c_coordconv{p}_s{s}" for p in ("", "_bf16") for s in (0, 1, 2)
    )
    assert {r.settings.precision for r in precision} == {"fp32", "bf16"}


def test_tiny_study_trains_reports_and_skips_what_is_done(tmp_path):
    spec, logdir = write_spec(tmp_path), tmp_path / "runs"
    proc = study(spec, "--logdir", logdir)
    assert proc.returncode == 0, proc.stderr
    done = results(logdir)
    assert sorted(done) == ["a2c_conv_s0", "a2c_conv_s1", "a2c_coordconv_s0", "a2c_coordconv_s1"]
    assert all(r["status"] == "finished" and r["timesteps"] >= 600 for r in done.values())
    report = json.loads((logdir / "report" / "study.json").read_text())
    assert (logdir / "report" / "study.md").is_file()
    assert "Breakout" in json.dumps(report)
    stamps = {p: p.stat().st_mtime_ns for p in logdir.rglob("model.zip")}
    again = study(spec, "--logdir", logdir)
    assert again.returncode == 0, again.stderr
    assert "4 of 4 runs already finished; 0 to train" in again.stdout
    assert {p: p.stat().st_mtime_ns for p in logdir.rglob("model.zip")} == stamps
    # A run stopped after saving its last model but before recording its result is not
    # finished: the next study trains nothing for it and records the result.
    (logdir / "Breakout" / "a2c_conv_s1" / "train_result.json").unlink()
    third = study(spec, "--logdir", logdir)
    assert third.returncode == 0, third.stderr
    assert "3 of 4 runs already finished; 1 to train" in third.stdout
    recorded = results(logdir)["a2c_conv_s1"]
    assert recorded["status"] == "finished" and recorded["trained_timesteps"] == 0
    assert recorded["timesteps"] == done["a2c_conv_s1"]["timesteps"]
    assert {p: p.stat().st_mtime_ns for p in logdir.rglob("model.zip")} == stamps


def test_a_study_whose_driver_was_killed_finishes_without_training_a_run_twice(tmp_path):
    spec = write_spec(tmp_path, timesteps=2000, checkpoint_freq=400)
    logdir = tmp_path / "runs"
    cmd = [sys.executable, str(ROOT / "scripts" / "study.py"), str(spec), "--logdir", str(logdir)]
    driver = subprocess.Popen(
        [*cmd, "--no-progress"], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.time() + 300
    # Kill once a run has finished and another has saved a checkpoint but not finished.
    while time.time() < deadline:
        finished = set(results(logdir))
        started = {p.parents[1].name for p in logdir.glob("Breakout/*/checkpoints/*.zip")}
        if finished and started - finished:
            break
        time.sleep(0.5)
    else:
        driver.kill()
        pytest.fail("the study never had a finished and a started run at once")
    # The machine goes down: the driver and its Ray workers die at once, mid-run. (Ray's workers
    # would otherwise outlive a killed driver by seconds, and finish the run they were on.)
    driver.send_signal(signal.SIGKILL)
    subprocess.run(["pkill", "-9", "-f", "ray::"], check=False)
    driver.wait(timeout=60)
    deadline = time.time() + 120
    while subprocess.run(["pgrep", "-f", "ray::"], capture_output=True).returncode == 0:
        assert time.time() < deadline, "Ray's workers outlived the driver"
        time.sleep(1)
    first = results(logdir)
    stamps = {name: (logdir / "Breakout" / name / "model.zip").stat().st_mtime_ns for name in first}
    proc = study(spec, "--logdir", logdir)
    assert proc.returncode == 0, proc.stderr
    assert f"{len(first)} of 4 runs already finished" in proc.stdout
    final = results(logdir)
    assert len(final) == 4 and all(r["timesteps"] >= 2000 for r in final.values())
    for name, stamp in stamps.items():  # finished runs were not trained again
        assert (logdir / "Breakout" / name / "model.zip").stat().st_mtime_ns == stamp
        assert final[name] == first[name]
    # A run with a checkpoint continued from it rather than from step 0.
    resumed = [n for n in final if n not in first and n in started]
    assert resumed and all(final[n]["trained_timesteps"] < 2000 for n in resumed)
    report = json.loads((logdir / "report" / "study.json").read_text())
    assert "Breakout" in json.dumps(report)
