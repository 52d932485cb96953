"""scripts/study.py joining a Ray cluster of three nodes on this machine (a head without CPUs
and two one-CPU workers, from ray.cluster_utils): runs land on both workers; a worker removed
without grace while its run trains costs that run at most a checkpoint interval, and the same
study finishes every run."""

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from studies.engine import ATTEMPTS_NAME
from tests.cli import ROOT, error_lines, run_script
from tests.test_study import TINY, results, study, write_spec

RAY_CURRENT_CLUSTER = Path("/tmp/ray/ray_current_cluster")
# Node deaths noticed in about a second rather than Ray's default 15 s (the GCS's health checks).
HEAD_CONFIG = {
    "health_check_initial_delay_ms": 0,
    "health_check_period_ms": 500,
    "health_check_failure_threshold": 2,
}


@pytest.fixture
def cluster():
    """A head that runs nothing and two worker nodes of one CPU each, named by a custom
    resource (node_a, node_b) so that a test could pin a run to one."""
    from ray.cluster_utils import Cluster

    # The head writes its address where a bare ray.init() on this machine would find and join
    # it; another test's local Ray must not, so the file is put back as it was.
    before = RAY_CURRENT_CLUSTER.read_text() if RAY_CURRENT_CLUSTER.exists() else None
    cluster = Cluster(
        initialize_head=True, head_node_args={"num_cpus": 0, "_system_config": HEAD_CONFIG}
    )
    if before is None:
        RAY_CURRENT_CLUSTER.unlink(missing_ok=True)
    else:
        RAY_CURRENT_CLUSTER.write_text(before)
    try:
        workers = {n: cluster.add_node(num_cpus=1, resources={n: 1}) for n in ("node_a", "node_b")}
        cluster.wait_for_nodes()
        yield cluster, workers
    finally:
        cluster.shutdown()


def attempts(run_dir):
    try:
        return json.loads((run_dir / ATTEMPTS_NAME).read_text())
    except (OSError, ValueError):
        return []


def checkpoint_mtimes(run_dir):
    """{step: modification time} of the run's checkpoints."""
    return {
        int(p.name.split("_")[1]): p.stat().st_mtime
        for p in (run_dir / "checkpoints").glob("model_*_steps.zip")
    }


def checkpoint_steps(run_dir):
    return sorted(checkpoint_mtimes(run_dir)) or [0]


class TwoAtOnce(threading.Thread):
    """Samples every run folder's attempts while the study runs: an attempt not yet ended
    whose process is alive is training the folder; two at once in one folder is the fault."""

    def __init__(self, logdir):
        super().__init__(daemon=True)
        self.logdir, self.stop, self.seen = logdir, threading.Event(), []

    def run(self):
        while not self.stop.is_set():
            for run_dir in self.logdir.glob("Breakout/*"):
                live = [a for a in attempts(run_dir) if "ended" not in a and _alive(a["pid"])]
                if len(live) > 1:
                    self.seen.append((run_dir.name, live))
            time.sleep(0.1)


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.slow
def test_a_study_on_a_cluster_survives_a_lost_node(cluster, tmp_path):
    cluster, workers = cluster
    node_names = {node.node_id: name for name, node in workers.items()}
    logdir = tmp_path / "runs"
    clock = {"start": time.time()}

    # Phase 1: the tiny study on the cluster: both workers train, every run finishes.
    proc = study(write_spec(tmp_path), "--logdir", logdir, "--address", cluster.address)
    assert proc.returncode == 0, proc.stderr
    clock["phase 1"] = time.time()
    done = results(logdir)
    assert len(done) == 4 and all(r["status"] == "finished" for r in done.values())
    first = {name: attempts(logdir / "Breakout" / name) for name in done}
    assert all(len(a) == 1 and a[0]["status"] == "finished" for a in first.values())
    assert {node_names[a[0]["node_id"]] for a in first.values()} == set(workers)
    assert all(r["ray_node"]["node_id"] in node_names for r in done.values())
    report = json.loads((logdir / "report" / "study.json").read_text())
    assert "Breakout" in json.dumps(report)

    # Phase 2: the budget grows; once a run on a worker has saved a checkpoint past where it
    # resumed, that worker goes without grace, and a fresh node joins in its place. The runs
    # keep the checkpoint interval they were made with (200 steps).
    total, every = 1400, TINY["checkpoint_freq"]
    cmd = [
        sys.executable,
        str(ROOT / "scripts" / "study.py"),
        write_spec(tmp_path, timesteps=total),
    ]
    cmd += ["--logdir", logdir, "--address", cluster.address, "--no-progress"]
    watch = TwoAtOnce(logdir)
    watch.start()
    driver = subprocess.Popen(
        list(map(str, cmd)), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    victim = None
    while victim is None and driver.poll() is None and time.time() < clock["phase 1"] + 300:
        for run_dir in sorted(logdir.glob("Breakout/*")):
            live = [a for a in attempts(run_dir) if "ended" not in a]
            if live and max(checkpoint_steps(run_dir)) > live[-1]["from_step"]:
                victim = run_dir, live[-1], max(checkpoint_steps(run_dir))
                break
        time.sleep(0.1)
    assert victim is not None, "no run saved a checkpoint on a worker while the study ran"
    run_dir, lost_attempt, saved = victim
    clock["checkpoint seen"] = time.time()
    cluster.remove_node(workers[node_names[lost_attempt["node_id"]]], allow_graceful=False)
    clock["node removed"] = time.time()
    cluster.add_node(num_cpus=1, resources={"node_c": 1})
    clock["node added"] = time.time()
    out, err = driver.communicate(timeout=300)
    clock["phase 2"] = time.time()
    watch.stop.set()
    watch.join()
    assert driver.returncode == 0, err

    final = results(logdir)
    assert len(final) == 4 and all(r["timesteps"] >= total for r in final.values())
    assert not watch.seen, f"run folders trained by two workers at once: {watch.seen}"
    for name, r in final.items():
        folder = logdir / "Breakout" / name
        tries = attempts(folder)
        assert tries[-1]["status"] == "finished" and not tries[-1].get("lost")
        assert r["retrained_timesteps"] == sum(a.get("retrained", 0) for a in tries)
        assert r["lost_attempts"] == sum(bool(a.get("lost")) for a in tries)
        for lost, then in zip(tries, tries[1:], strict=False):
            if not lost.get("lost"):
                continue
            # Resumed from the newest checkpoint there was when it started, so at most one
            # checkpoint interval is trained again.
            there = [s for s, mtime in checkpoint_mtimes(folder).items() if mtime < then["started"]]
            assert then["from_step"] == max([lost["from_step"], *there])
            assert lost["from_step"] <= then["from_step"] <= lost["reached_step"]
            assert 0 <= lost["retrained"] <= every
    lost = final[run_dir.name]
    assert lost["lost_attempts"] == 1
    assert attempts(run_dir)[-1]["from_step"] >= saved  # not from model.zip's 600 steps
    assert f"{run_dir.name}: finished" in out and "1 attempt(s) lost" in out
    # (how long each phase took, for the page: pytest -s shows it)
    marks = list(clock.items())
    print(", ".join(f"{k} +{t - marks[0][1]:.0f} s" for k, t in marks[1:]))


@pytest.mark.parametrize(
    "args,message",
    [
        (["--rounds", "0"], "--timesteps, --checkpoint-freq, --seeds and --rounds must be >= 1"),
        (["--lose-at", "1"], "--lose-at must be in [0, 1), got 1.0"),
        (["--checkpoint-freq", "2000"], "--checkpoint-freq must be below --timesteps (2000)"),
    ],
)
def test_bench_study_cluster_bad_input(capsys, tmp_path, args, message):
    r = run_script(capsys, "bench_study_cluster.py", "--out", tmp_path / "x.md", *args)
    lines = error_lines(r.err)
    assert r.code == 2 and len(lines) == 1 and message in lines[0], r.err
    assert not (tmp_path / "x.md").exists()
