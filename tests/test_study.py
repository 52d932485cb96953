"""scripts/study.py: specs checked before Ray starts, a tiny study on a local Ray, and a study
that survives its driver being killed."""

import contextlib
import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
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


def descendants(pid):
    """The processes started by process `pid`, and by those, ... (from /proc: Linux)."""
    children = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()  # after "pid (command)"
        except (OSError, IndexError):
            continue  # gone meanwhile
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        kids = children.get(todo.pop(), [])
        found += kids
        todo += kids
    return found


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
    ({"gpus_per_run": 2}, "a run trains on one GPU"),
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


def test_a_run_trains_on_the_device_its_resources_give(tmp_path):
    """gpus_per_run 0: the CPU, never a GPU Ray did not give the run; more: the GPU Ray gives
    its task (cuda, which is cuda:0 inside it)."""
    cpu = plan_runs(load_spec(write_spec(tmp_path)), tmp_path)
    assert {r.settings.device for r in cpu} == {"cpu"}
    gpu = plan_runs(load_spec(write_spec(tmp_path, gpus_per_run=0.25)), tmp_path)
    assert {r.settings.device for r in gpu} == {"cuda"}


def test_a_gpu_run_gets_a_fresh_ray_worker():
    """Resources given to ray.remote itself: max_calls=1 for GPU runs (through .options() Ray
    would reuse a worker holding an earlier run's CUDA context); CPU workers are reused."""
    from studies.engine import MAX_RETRIES, remote_train_one

    def options(spec):
        return remote_train_one(spec)._default_options  # what ray.remote was given

    gpu = options(spec_asking(4, 0.25))
    assert gpu["num_gpus"] == 0.25 and gpu["num_cpus"] == 4 and gpu["max_calls"] == 1
    assert gpu["max_retries"] == MAX_RETRIES
    cpu = options(spec_asking(1, 0))
    assert cpu["num_cpus"] == 1 and not cpu.get("num_gpus") and not cpu.get("max_calls")


def spec_asking(cpus, gpus):
    pilot = load_spec(ROOT / "configs" / "studies" / "mspacman_pilot.yaml")
    return dataclasses.replace(pilot, cpus_per_run=cpus, gpus_per_run=gpus)


NODES = [{"CPU": 2.0, "memory": 1e9}, {"CPU": 8.0, "GPU": 1.0}, {"CPU": 8.0, "GPU": 1.0}]


@pytest.mark.parametrize(
    "cpus,gpus,nodes,message",
    [
        (1, 0.25, NODES, None),
        (8, 1, NODES, None),
        (1, 0.25, NODES[:1], "gpus_per_run 0.25: no node of the cluster has a GPU "
         "(nodes: 2 CPUs/0 GPUs x1)"),
        (4, 0, [{"CPU": 2.0}, {"CPU": 2.0}, {"CPU": 0.0}], "cpus_per_run 4: no node of the "
         "cluster has 4 CPUs (nodes: 2 CPUs/0 GPUs x2, 0 CPUs/0 GPUs x1)"),
        (4, 0.5, [{"CPU": 2.0, "GPU": 1.0}, {"CPU": 8.0}], "cpus_per_run 4 with gpus_per_run "
         "0.5: no node of the cluster has both (nodes: 2 CPUs/1 GPUs x1, 8 CPUs/0 GPUs x1)"),
        (1, 0, [], "cpus_per_run 1: no node of the cluster has 1 CPU (nodes: none alive)"),
    ],
)  # fmt: skip
def test_a_study_no_node_can_host_is_named_with_the_nodes(cpus, gpus, nodes, message):
    from studies.engine import unfit_reason

    assert unfit_reason(spec_asking(cpus, gpus), nodes, "the cluster") == message


@pytest.mark.parametrize(
    "changes,message",
    [
        ({"gpus_per_run": 0.25}, "gpus_per_run 0.25: no node of the local Ray has a GPU"),
        ({"cpus_per_run": 1024}, "cpus_per_run 1024: no node of the local Ray has 1024 CPUs"),
    ],
    ids=["gpu", "cpu"],
)
def test_a_study_no_node_can_host_exits_2_before_anything_trains(tmp_path, changes, message):
    """This machine's Ray has no GPU (tests hide CUDA) and not 1024 CPUs: one line, exit 2."""
    logdir = tmp_path / "runs"
    proc = study(write_spec(tmp_path, **changes), "--logdir", logdir)
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert proc.returncode == 2 and len(errors) == 1 and message in errors[0], proc.stderr
    assert "(nodes: " in errors[0] and "Traceback" not in proc.stderr
    assert not logdir.exists()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_gpu_runs_train_on_the_gpu_ray_gives_each_in_a_fresh_worker(tmp_path):
    """gpus_per_run 1 on a local Ray: the runs take turns on a GPU, each in a worker of its own
    (max_calls=1), each on cuda:0 of its task (the GPU Ray names in CUDA_VISIBLE_DEVICES)."""
    logdir = tmp_path / "runs"
    proc = study(write_spec(tmp_path, seeds=[0], gpus_per_run=1), "--logdir", logdir)
    assert proc.returncode == 0, proc.stderr
    done = results(logdir)
    assert sorted(done) == ["a2c_conv_s0", "a2c_coordconv_s0"]
    assert all(r["status"] == "finished" for r in done.values())
    assert all(r["device"]["device"] == "cuda:0" for r in done.values())
    assert all(len(r["ray_node"]["gpu_ids"]) == 1 for r in done.values())
    tries = [json.loads((logdir / "Breakout" / n / "ray_attempts.json").read_text())[-1]
             for n in done]  # fmt: skip
    assert tries[0]["pid"] != tries[1]["pid"] and {t["device"] for t in tries} == {"cuda"}


def test_a_lost_attempt_is_counted_with_the_steps_trained_again(tmp_path):
    """The attempt before one that starts is lost if it never ended; the steps it had reached
    (its progress.json) beyond the checkpoint resumed from are trained again."""
    from studies.engine import close_lost_attempt

    started = time.time()
    (tmp_path / "progress.json").write_text(json.dumps({"steps": 1234, "time": started + 9}))
    tries = [{"from_step": 0, "started": started - 99, "ended": started - 50, "status": "finished"},
             {"from_step": 600, "started": started}]  # fmt: skip
    close_lost_attempt(tries, tmp_path, 1000)
    assert tries[1] == {"from_step": 600, "started": started, "lost": True, "reached_step": 1234,
                        "retrained": 234}  # fmt: skip
    assert "lost" not in tries[0]
    close_lost_attempt(tries[:1], tmp_path, 1000)  # one that finished: nothing lost
    assert "lost" not in tries[0]
    # progress.json from before the attempt started: it reached at least the model resumed from.
    stale = [{"from_step": 600, "started": started + 60}]
    close_lost_attempt(stale, tmp_path, 800)
    assert stale[0]["reached_step"] == 800 and stale[0]["retrained"] == 0
    # An attempt that raised ended, but without saving its model: its steps count too.
    raised = [{"from_step": 0, "started": started, "ended": started + 5, "status": "error"}]
    close_lost_attempt(raised, tmp_path, 1000)
    assert "lost" not in raised[0] and raised[0]["retrained"] == 234


def test_tiny_study_trains_reports_and_skips_what_is_done(tmp_path):
    spec, logdir = write_spec(tmp_path), tmp_path / "runs"
    proc = study(spec, "--logdir", logdir)
    assert proc.returncode == 0, proc.stderr
    done = results(logdir)
    assert sorted(done) == ["a2c_conv_s0", "a2c_conv_s1", "a2c_coordconv_s0", "a2c_coordconv_s1"]
    assert all(r["status"] == "finished" and r["timesteps"] >= 600 for r in done.values())
    # gpus_per_run 0: every run on the CPU, and each says where (one attempt, on this machine).
    assert all(r["device"]["device"] == "cpu" for r in done.values())
    assert all(r["attempts"] == 1 and r["retrained_timesteps"] == 0 for r in done.values())
    assert all(r["ray_node"]["node_id"] and r["ray_node"]["gpu_ids"] == [] for r in done.values())
    for name in done:
        config = yaml.safe_load((logdir / "Breakout" / name / "config.yaml").read_text())
        assert config["device"] == "cpu"
        (attempt,) = json.loads((logdir / "Breakout" / name / "ray_attempts.json").read_text())
        assert attempt["status"] == "finished" and attempt["from_step"] == 0
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
    # The machine goes down: the driver and its Ray (workers, raylet, GCS) die at once, mid-run.
    # (Ray's workers would otherwise outlive a killed driver by seconds, and finish the run they
    # were on.) Only this driver's processes: other Rays on this machine are not the test's.
    ray_processes = descendants(driver.pid)
    driver.send_signal(signal.SIGKILL)
    for pid in ray_processes:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    driver.wait(timeout=60)
    deadline = time.time() + 120
    while any(Path(f"/proc/{pid}").exists() for pid in ray_processes):
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
    # Each counts the attempt the kill cost it; what that attempt trained past its newest
    # checkpoint is trained again: at most a checkpoint interval.
    assert all(final[n]["lost_attempts"] == 1 for n in resumed)
    assert all(0 <= final[n]["retrained_timesteps"] <= 400 for n in resumed)
    report = json.loads((logdir / "report" / "study.json").read_text())
    assert "Breakout" in json.dumps(report)
