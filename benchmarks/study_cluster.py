"""A study on a Ray cluster of this machine's nodes, one worker node lost mid-run, against the
same study on one node: wall times and the lost node's timeline (scripts/bench_study_cluster.py).

Four studies of one spec, one after another, each in a fresh folder, each run as a user runs
it (scripts/study.py in a subprocess):
- local Ray: the study starts a Ray over this machine's cores (its start in the wall time);
- one node: a ray.cluster_utils.Cluster of one two-CPU head, joined with --address;
- cluster: a head without CPUs and two worker nodes of one CPU each, joined with --address;
- cluster, node lost: the same, with the worker of the first run to save a checkpoint removed
  without grace right then, and a fresh one-CPU node joining in its place.
The clusters are started before their studies and their start is not in the wall times.
The timeline is read back from the run folders (ray_attempts.json, checkpoint times) and from
the moments this harness removed and added nodes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
RAY_CURRENT_CLUSTER = Path("/tmp/ray/ray_current_cluster")
# Node deaths noticed in about a second rather than Ray's default 15 s of missed health checks
# (what a real cluster would wait: the table says which it was).
HEAD_CONFIG = {
    "health_check_initial_delay_ms": 0,
    "health_check_period_ms": 500,
    "health_check_failure_threshold": 2,
}


def write_spec(folder: Path, timesteps: int, checkpoint_freq: int, seeds: int) -> Path:
    """A tiny study: Breakout, A2C, conv and coordconv, `seeds` seeds, one CPU a run."""
    spec = {
        "games": ["Breakout"],
        "algos": ["a2c"],
        "extractors": ["conv", "coordconv"],
        "with_r": [False],
        "seeds": list(range(seeds)),
        "timesteps": timesteps,
        "set": ["n_envs=2"],
        "eval_freq": 0,
        "cpus_per_run": 1,
        "gpus_per_run": 0,
        "checkpoint_freq": checkpoint_freq,
    }
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "bench_cluster.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def _study(spec: Path, logdir: Path, address: str | None) -> subprocess.Popen:
    cmd = [sys.executable, str(ROOT / "scripts" / "study.py"), str(spec), "--logdir", str(logdir)]
    cmd += ["--no-progress"] + (["--address", address] if address else [])
    return subprocess.Popen(
        cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _finish(proc: subprocess.Popen, timeout: float) -> str:
    out, err = proc.communicate(timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"study exited {proc.returncode}: {err.strip()[-500:]}")
    return out


def _json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _checkpoints(run_dir: Path) -> dict[int, float]:
    return {
        int(p.name.split("_")[1]): p.stat().st_mtime
        for p in (run_dir / "checkpoints").glob("model_*_steps.zip")
    }


def _runs(logdir: Path) -> list[Path]:
    return sorted(p for p in logdir.glob("*/*") if (p / "config.yaml").is_file())


def local_ray(spec: Path, logdir: Path, timeout: float) -> dict[str, Any]:
    """The study as a user runs it on one machine: it starts a local Ray over the cores."""
    start = time.time()
    _finish(_study(spec, logdir, None), timeout)
    return {"setup": "local Ray", "wall_s": time.time() - start, **_summary(logdir, start)}


class LocalCluster:
    """A Ray cluster on this machine: a head with `head_cpus` and one-CPU worker nodes."""

    def __init__(self, head_cpus: int, workers: tuple[str, ...]) -> None:
        self.head_cpus, self.names = head_cpus, workers

    def __enter__(self) -> LocalCluster:
        from ray.cluster_utils import Cluster

        # The head writes its address where a bare ray.init() on this machine would find and
        # join it: put the file back as it was, so that no other Ray here does.
        before = RAY_CURRENT_CLUSTER.read_text() if RAY_CURRENT_CLUSTER.exists() else None
        started = time.time()
        head = {"num_cpus": self.head_cpus, "_system_config": HEAD_CONFIG}
        self.cluster = Cluster(initialize_head=True, head_node_args=head)
        if before is None:
            RAY_CURRENT_CLUSTER.unlink(missing_ok=True)
        else:
            RAY_CURRENT_CLUSTER.write_text(before)
        self.workers = {name: self.add(name) for name in self.names}
        self.cluster.wait_for_nodes()
        self.start_s = time.time() - started
        return self

    def add(self, name: str):
        return self.cluster.add_node(num_cpus=1, resources={name: 1})

    def __exit__(self, *exc: object) -> None:
        self.cluster.shutdown()


SETUPS = {
    "local Ray": "1 (2 CPUs), started by the study",
    "one node": "1 (2 CPUs)",
    "cluster": "head (0 CPUs) + 2 workers (1 CPU each)",
    "cluster, node lost": "head (0 CPUs) + 2 workers (1 CPU each); one lost, a third joins",
}


def on_cluster(
    spec: Path, logdir: Path, timeout: float, setup: str, lose_at: float = 0.5
) -> dict[str, Any]:
    """The study joined to a LocalCluster by --address: `setup` "one node" (a head with two
    CPUs), "cluster" (a head without CPUs, two one-CPU workers) or "cluster, node lost": once
    the first run saves a checkpoint, its worker node is removed without grace when the run is
    `lose_at` of a checkpoint interval past it (by its speed), and node_c joins in its place."""
    shape = (2, ()) if setup == "one node" else (0, ("node_a", "node_b"))
    every = yaml.safe_load(spec.read_text())["checkpoint_freq"]
    with LocalCluster(*shape) as local:
        names = {node.node_id: name for name, node in local.workers.items()}
        names[local.cluster.head_node.node_id] = "head"
        start = time.time()
        proc = _study(spec, logdir, local.cluster.address)
        loss: dict[str, Any] = {}
        victim: Path | None = None
        while setup == "cluster, node lost" and not loss and proc.poll() is None:
            if time.time() - start > timeout:
                proc.kill()
                raise RuntimeError("no run saved a checkpoint in time")
            for run_dir in [victim] if victim else _runs(logdir):
                attempt = (_json(run_dir / "ray_attempts.json") or [{}])[-1]
                saved = _checkpoints(run_dir)
                if "ended" in attempt or not saved or "node_id" not in attempt:
                    continue
                victim, now = run_dir, time.time()
                progress = _json(run_dir / "progress.json") or {}
                estimated = _estimate(progress, attempt, saved, now)
                if estimated < max(saved) + lose_at * every:
                    break
                node = names[attempt["node_id"]]
                local.cluster.remove_node(local.workers[node], allow_graceful=False)
                removed = time.time()
                names[local.add("node_c").node_id] = "node_c"
                loss = {
                    "run": run_dir.name,
                    "node": node,
                    "checkpoint": max(saved),
                    "checkpoint_at": saved[max(saved)] - start,
                    "removed_at": removed - start,
                    "node_c_at": time.time() - start,
                    "estimated_step": _estimate(progress, attempt, saved, removed),
                    "progress_step": progress.get("steps"),
                }
                break
            time.sleep(0.05)
        _finish(proc, timeout)
        wall = time.time() - start
        row = {"setup": setup, "wall_s": wall, "cluster_start_s": local.start_s}
        row.update(_summary(logdir, start, names))
        if loss:
            row["loss"] = loss
        return row


def _estimate(
    progress: dict[str, Any], attempt: dict[str, Any], saved: dict[int, float], now: float
) -> int:
    """The step the run was at when its node went: its newest checkpoint plus its speed since
    (progress.json's steps/s, else the pace between its start and that checkpoint)."""
    newest = max(saved)
    rate = float(progress.get("steps_per_s") or 0.0)
    if rate <= 0:
        rate = (newest - attempt["from_step"]) / max(saved[newest] - attempt["started"], 1e-9)
    return int(newest + rate * (now - saved[newest]))


def _summary(logdir: Path, start: float, names: dict[str, str] | None = None) -> dict[str, Any]:
    runs = {}
    for run_dir in _runs(logdir):
        result = _json(run_dir / "train_result.json") or {}
        attempts = _json(run_dir / "ray_attempts.json") or []
        runs[run_dir.name] = {
            "status": result.get("status"),
            "timesteps": result.get("timesteps"),
            "retrained": result.get("retrained_timesteps"),
            "attempts": [
                {
                    "node": (names or {}).get(a.get("node_id"), "this machine"),
                    "from_step": a.get("from_step"),
                    "started_at": a["started"] - start,
                    "ended_at": a["ended"] - start if "ended" in a else None,
                    "lost": bool(a.get("lost")),
                    "reached_step": a.get("reached_step"),
                }
                for a in attempts
            ],
        }
    return {"runs": runs}


def measure(
    spec: Path, work: Path, timeout: float, lose_at: float, rounds: int
) -> list[dict[str, Any]]:
    """Every setup once a round, in SETUPS' order and then backwards, alternately (other jobs
    on the machine come and go: each setup sees early and late ones); a row per study, with the
    1-minute load average at its end."""
    rows = []
    for n in range(rounds):
        order = list(SETUPS) if n % 2 == 0 else list(SETUPS)[::-1]
        for setup in order:
            folder = work / f"round{n + 1}" / setup.replace(", ", "_").replace(" ", "_")
            if setup == "local Ray":
                row = local_ray(spec, folder, timeout)
            else:
                row = on_cluster(spec, folder, timeout, setup, lose_at)
            rows.append({**row, "round": n + 1, "load": os.getloadavg()[0]})
    return rows


def markdown(rows: list[dict[str, Any]], spec: dict[str, Any]) -> str:
    """The wall times by setup (one per round), then the first lost node's timeline."""
    rounds = sorted({r["round"] for r in rows})
    base = {r["round"]: r["wall_s"] for r in rows if r["setup"] == "one node"}
    lines = [
        "| setup | nodes | wall time, by round | vs one node | runs finished | runs per node "
        "(round 1) | steps trained again (recorded) | load average |",
        "|---|---|---:|---:|---:|---|---:|---:|",
    ]
    for setup, nodes in SETUPS.items():
        mine = sorted((r for r in rows if r["setup"] == setup), key=lambda r: r["round"])
        if not mine:
            continue
        where: dict[str, int] = {}
        for v in mine[0]["runs"].values():
            last = v["attempts"][-1]["node"] if v["attempts"] else "?"
            where[last] = where.get(last, 0) + 1

        walls = " / ".join(f"{r['wall_s']:.0f} s" for r in mine)
        ratios = " / ".join(f"{r['wall_s'] / base[r['round']]:.2f}x" for r in mine)
        done = " / ".join(f"{_finished(r)} of {len(r['runs'])}" for r in mine)
        placed = ", ".join(f"{n} {k}" for n, k in sorted(where.items()))
        again = " / ".join(str(sum(v["retrained"] or 0 for v in r["runs"].values())) for r in mine)
        load = " / ".join(f"{r['load']:.1f}" for r in mine)
        lines.append(
            f"| {setup} | {nodes} | {walls} | {ratios} | {done} | {placed} | {again} | {load} |"
        )
    lines += ["", f"Rounds: {len(rounds)}, each in the opposite order of the one before."]
    lost = next((r for r in rows if "loss" in r), None)
    if lost is None:
        return "\n".join(lines)
    loss, every = lost["loss"], spec["checkpoint_freq"]
    run = lost["runs"][loss["run"]]
    first, retry = run["attempts"][0], run["attempts"][-1]
    estimated = loss["estimated_step"]
    lines += [
        "",
        f"Timeline of the lost node in round {lost['round']} (seconds from the study's start; "
        f"the cluster took {lost['cluster_start_s']:.0f} s to start before it):",
        "",
        "| s | event |",
        "|---:|---|",
        f"| {first['started_at']:.0f} | {loss['run']} starts on {first['node']} at step "
        f"{first['from_step']} |",
        f"| {loss['checkpoint_at']:.0f} | its checkpoint at step {loss['checkpoint']} is saved |",
        f"| {loss['removed_at']:.0f} | {loss['node']} removed without grace (its raylet "
        f"killed; its workers exit with it), the run at about step {estimated} |",
        f"| {loss['node_c_at']:.0f} | node_c (1 CPU) has joined |",
        f"| {retry['started_at']:.0f} | {loss['run']} resumes on {retry['node']} from step "
        f"{retry['from_step']}, its newest checkpoint (Ray's retry waited for a free CPU) |",
        f"| {retry['ended_at']:.0f} | {loss['run']} finishes at step {run['timesteps']} |",
        f"| {lost['wall_s']:.0f} | the study ends, report written |",
        "",
        f"Steps trained again: about {max(0, estimated - retry['from_step'])} (the step at the "
        f"loss estimated from the run's speed), at most the checkpoint interval {every}; the run "
        f"folder records {run['retrained']} (train_result.json `retrained_timesteps`), a lower "
        "bound: the step a lost attempt reached is read from its progress.json, written every "
        "5 s.",
    ]
    return "\n".join(lines)


def _finished(row: dict[str, Any]) -> int:
    return sum(v["status"] == "finished" for v in row["runs"].values())
