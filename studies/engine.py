"""A study's runs on Ray: one task per run, local by default or on a cluster by address.

Idempotent and preemption-safe from the run folders alone: a run at its total is skipped, a run
with a saved model resumes from its newest one (agents.train.resume_atari: fresh random streams,
schedules that do not jump), a folder with nothing saved starts over. Ray retries a task whose
worker or node died (`max_retries`); the retry finds the folder as the lost attempt left it and
resumes. Re-running the same command after Ctrl-C, a killed driver or a lost node finishes the
study without training a finished run again. Ray does the scheduling, placement and retrying:
nothing here queues or retries on its own.

Before any run starts, the study's `cpus_per_run` and `gpus_per_run` are checked against the
nodes Ray has (a study no node can host would wait forever). A GPU run gets a fresh Ray worker
(`max_calls=1`) so that no worker carries the CUDA context of an earlier run's GPU. Each attempt
at a run is recorded in its folder (ATTEMPTS_NAME: the node, the step it started from, how it
ended); an attempt lost with its node is counted there with the steps its successor trains
again, which the run's train_result.json and the study's output then report.
"""

from __future__ import annotations

import fcntl
import json
import math
import os
import re
import shutil
import socket
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agents.callbacks import ProgressFile
from agents.checkpoints import list_checkpoints, newest_model
from agents.run_dir import CONFIG_NAME, RESULT_NAME, load_run_config
from agents.train import resolve_config
from analysis.runs import group_settings
from common.errors import UsageError
from common.files import atomic_write_json
from studies.spec import PlannedRun, StudySpec

_FIT_SLACK = 1e-9  # 1 / 0.25 GPU is 4 runs even where the division rounds just below
MAX_RETRIES = 3  # attempts Ray makes after a worker or node dies, per run
POLL_SECONDS = 2.0
ATTEMPTS_NAME = "ray_attempts.json"  # in each run folder: the Ray attempts that trained it
_SAVED_AT_END = ("finished", "interrupted", "unchanged")  # TrainResult statuses with a model.zip
# Keys that may differ between a run folder and the spec that resumes it: the budget may grow.
_MAY_DIFFER = ("n_timesteps",)


@dataclass
class RunState:
    """Where a planned run stands: new, partial (steps saved) or finished."""

    run: PlannedRun
    state: str
    steps: int = 0


def run_state(run: PlannedRun) -> RunState:
    """Read the run's folder: finished at its total with its result recorded, partial with a
    saved model, or new. A run stopped between saving its last model and recording its result
    is partial: its resume trains nothing and records the result."""
    total = int(run.settings.timesteps)
    if not (run.run_dir / CONFIG_NAME).is_file():
        return RunState(run, "new")
    _check_same_config(run)
    saved = (run.run_dir / "model.zip").is_file() or list_checkpoints(run.run_dir)
    if not saved:
        return RunState(run, "new")
    _, steps = newest_model(run.run_dir)
    done = steps >= total and (run.run_dir / RESULT_NAME).is_file()
    return RunState(run, "finished" if done else "partial", steps)


def _check_same_config(run: PlannedRun) -> None:
    """A folder made with other settings than the spec's would mix two experiments."""
    have = group_settings(load_run_config(run.run_dir / CONFIG_NAME))
    want = group_settings(resolve_config(run.settings))
    differ = sorted(k for k in set(have) | set(want) if have.get(k) != want.get(k))
    differ = [k for k in differ if k not in _MAY_DIFFER]
    if differ:
        raise UsageError(
            f"run folder {run.run_dir} was made with other settings than the spec's "
            f"({', '.join(differ)}); use another --logdir or move it away"
        )


def train_one(run: PlannedRun, threads: int) -> dict[str, Any]:
    """Bring one run to its total (the body of a Ray task): train, resume or skip."""
    import torch

    torch.set_num_threads(threads)
    run.run_dir.parent.mkdir(parents=True, exist_ok=True)
    # A worker of a killed driver can outlive it for a few seconds and still be training this
    # run: wait for its lock (the kernel drops it when that process dies), then read the folder.
    # So an attempt that finds an earlier one unfinished knows that one's process is gone.
    with open(run.run_dir.parent / f".{run.run_dir.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _bring_to_total(run)


def _bring_to_total(run: PlannedRun) -> dict[str, Any]:
    from agents.train import resume_atari, train_atari

    state = run_state(run)
    command = ["scripts/study.py", f"# {run.label}"]
    if state.state == "finished":
        return {"run": run.label, "status": "skipped", "timesteps": state.steps, "trained": 0}
    attempts = read_attempts(run.run_dir)
    close_lost_attempt(attempts, run.run_dir, state.steps)
    attempt = this_attempt(state.steps, run.settings.device)
    attempts.append(attempt)
    try:
        if state.state == "partial":
            atomic_write_json(run.run_dir / ATTEMPTS_NAME, attempts)
            result = resume_atari(
                run.run_dir, command, run.settings.timesteps, run.settings.device, progress=False
            )
        else:
            # Nothing saved: what a lost attempt left (logs, metadata) is started over; the
            # record of its attempts is written into the new folder as soon as it exists.
            shutil.rmtree(run.run_dir, ignore_errors=True)
            result = train_atari(
                run.settings,
                command,
                started=lambda run_dir: atomic_write_json(run_dir / ATTEMPTS_NAME, attempts),
            )
    except BaseException as err:
        attempt.update(ended=time.time(), status="error", message=_one_line(err))
        if (run.run_dir / ATTEMPTS_NAME).is_file():
            atomic_write_json(run.run_dir / ATTEMPTS_NAME, attempts)
        raise
    if Path(result.run_dir) != run.run_dir:  # create_run_dir gave another name: a race
        raise RuntimeError(f"{run.label} trained in {result.run_dir}, not in {run.run_dir}")
    attempt.update(ended=time.time(), status=result.status, steps=result.timesteps)
    atomic_write_json(run.run_dir / ATTEMPTS_NAME, attempts)
    retrained = sum(a.get("retrained", 0) for a in attempts)
    _add_to_train_result(run.run_dir, retrained, attempts)
    return {
        "run": run.label,
        "status": result.status,
        "timesteps": result.timesteps,
        "trained": result.trained,
        "message": result.message,
        "node": attempt["node_ip"],
        "node_id": attempt["node_id"],
        "attempts": len(attempts),
        "lost": sum(bool(a.get("lost")) for a in attempts),
        "retrained": retrained,
    }


def this_attempt(from_step: int, device: str) -> dict[str, Any]:
    """The record of the attempt starting in this Ray worker: its node, process, the GPUs Ray
    gave it and the step it starts from."""
    import ray

    context = ray.get_runtime_context()
    return {
        "node_id": context.get_node_id(),
        "node_ip": ray.util.get_node_ip_address(),
        "hostname": socket.gethostname(),
        "pid": os.getpid(),
        "device": device,
        "gpu_ids": [str(g) for g in context.get_accelerator_ids().get("GPU", [])],
        "started": time.time(),
        "from_step": from_step,
    }


def read_attempts(run_dir: Path) -> list[dict[str, Any]]:
    """The run's attempts so far ([] for a new folder, or one from before they were kept)."""
    try:
        attempts = json.loads((run_dir / ATTEMPTS_NAME).read_text())
    except (OSError, ValueError):
        return []
    return attempts if isinstance(attempts, list) else []


def close_lost_attempt(attempts: list[dict[str, Any]], run_dir: Path, from_step: int) -> None:
    """Mark the last attempt lost if it never ended (its worker or node died: the run's lock
    says its process is gone), and give it, or one that ended without saving its model (an
    error, a divergence), the step it had reached by its progress.json and the steps the
    attempt starting at `from_step` trains again. progress.json is written every few seconds,
    so that is a lower bound; the bound above is a checkpoint interval (the step it reached
    has no checkpoint, or the next attempt would start there)."""
    if not attempts or attempts[-1].get("status") in _SAVED_AT_END:
        return
    lost = attempts[-1]  # its worker died, or it raised: what it trained since its last save
    # It reached at least where it started and the newest model it saved, the one resumed from.
    reached = max(int(lost.get("from_step", 0)), from_step)
    try:
        progress = json.loads((run_dir / ProgressFile.NAME).read_text())
        if float(progress["time"]) >= float(lost.get("started", 0)):  # written by that attempt
            reached = max(reached, int(progress["steps"]))
    except (OSError, ValueError, KeyError, TypeError):
        pass
    if "ended" not in lost:
        lost["lost"] = True
    lost.update(reached_step=reached, retrained=max(0, reached - from_step))


def _add_to_train_result(run_dir: Path, retrained: int, attempts: list[dict[str, Any]]) -> None:
    """train_result.json also says where the run trained and what lost attempts cost it."""
    path = run_dir / RESULT_NAME
    try:
        result = json.loads(path.read_text())
    except (OSError, ValueError):
        return
    last = attempts[-1]
    result["ray_node"] = {k: last[k] for k in ("node_id", "node_ip", "hostname", "gpu_ids")}
    result["attempts"] = len(attempts)
    result["lost_attempts"] = sum(bool(a.get("lost")) for a in attempts)
    result["retrained_timesteps"] = retrained
    atomic_write_json(path, result)


def check_shared_logdir(logdir: Path) -> None:
    """UsageError unless every alive Ray node sees `logdir` (a marker the driver writes)."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    marker = logdir / f".study-marker-{uuid.uuid4().hex}"
    marker.write_text("written by the study driver\n")

    @ray.remote(num_cpus=0)
    def sees(path: str) -> bool:
        return os.path.exists(path)

    try:
        nodes = [n for n in ray.nodes() if n.get("Alive")]
        seen = ray.get(
            [
                sees.options(
                    scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)
                ).remote(str(marker))
                for n in nodes
            ]
        )
    finally:
        marker.unlink(missing_ok=True)
    blind = [
        n.get("NodeManagerAddress", n["NodeID"])
        for n, ok in zip(nodes, seen, strict=True)
        if not ok
    ]
    if blind:
        raise UsageError(
            f"--logdir {logdir} is not on storage every node sees (not on {', '.join(blind)}); "
            "put it on a shared filesystem"
        )


def node_resources() -> list[dict[str, float]]:
    """The resources (CPU, GPU, ...) of each alive node of the Ray this process joined."""
    import ray

    return [dict(n.get("Resources", {})) for n in ray.nodes() if n.get("Alive")]


def node_capacity(node_cpus: float, node_gpus: float, cpus: float, gpus: float) -> int:
    """How many runs asking for `cpus` and `gpus` a node of `node_cpus` and `node_gpus` holds
    at once: the fewest over the resources a run asks for (the rule the check before a study
    and its --dry-run plan share)."""
    fit = [math.floor(node_cpus / cpus + _FIT_SLACK)]
    if gpus > 0:
        fit.append(math.floor(node_gpus / gpus + _FIT_SLACK))
    return max(min(fit), 0)


def fits(resources: dict[str, float], cpus: float, gpus: float) -> bool:
    """Whether a node with `resources` can host a run asking for `cpus` and `gpus`."""
    return node_capacity(resources.get("CPU", 0), resources.get("GPU", 0), cpus, gpus) >= 1


def describe_nodes(nodes: list[dict[str, float]]) -> str:
    """'2 CPUs/0 GPUs x1, 8 CPUs/1 GPUs x4': the nodes' CPUs and GPUs, alike ones counted."""
    kinds = Counter((n.get("CPU", 0), n.get("GPU", 0)) for n in nodes)
    parts = [f"{_num(c)} CPUs/{_num(g)} GPUs x{k}" for (c, g), k in kinds.most_common()]
    return ", ".join(parts) if parts else "none alive"


def unfit_reason(spec: StudySpec, nodes: list[dict[str, float]], where: str) -> str | None:
    """None if some node can host one run of the study, else the one line saying why not."""
    cpus, gpus = spec.cpus_per_run, spec.gpus_per_run
    if any(fits(n, cpus, gpus) for n in nodes):
        return None
    have = f"(nodes: {describe_nodes(nodes)})"
    if gpus > 0 and not any(n.get("GPU", 0) > 0 for n in nodes):
        return f"gpus_per_run {_num(gpus)}: no node of {where} has a GPU {have}"
    if not any(n.get("CPU", 0) >= cpus for n in nodes):
        cores = f"{_num(cpus)} CPU{'' if cpus == 1 else 's'}"
        return f"cpus_per_run {_num(cpus)}: no node of {where} has {cores} {have}"
    return (
        f"cpus_per_run {_num(cpus)} with gpus_per_run {_num(gpus)}: no node of {where} has "
        f"both {have}"
    )


def autoscaler_may_add_node(cpus: float, gpus: float) -> bool:
    """Whether the cluster has an autoscaler that may start a node fitting a run.

    Ray has no public call for this. Autoscaler v2 publishes its node types with their
    resources (the cluster config, read as Ray Data reads it). v1 publishes a status whose
    node types are those of the cluster's YAML, or, on a cluster without one (`ray start`,
    a local Ray), one read-only type per node named node_<node id>; v1's node types have no
    resources there, so any is taken to fit. Anything unreadable counts as no autoscaler."""
    try:
        from ray._private.state import state
        from ray.experimental.internal_kv import _internal_kv_get

        config = state.get_cluster_config()
        if config is not None and config.node_group_configs:
            return any(
                group.max_count != 0
                and group.resources.get("CPU", 0) >= cpus
                and group.resources.get("GPU", 0) >= gpus
                for group in config.node_group_configs
            )
        status = _internal_kv_get("__autoscaling_status")
        report = (json.loads(status) if status else {}).get("autoscaler_report") or {}
        types = set((report.get("node_type_mapping") or {}).values())
        types |= set(report.get("active_nodes") or {}) | set(report.get("pending_launches") or {})
        return any(not re.fullmatch(r"node_[0-9a-f]+", t) for t in types)
    except Exception:  # private APIs: a Ray that moved them has, for this check, no autoscaler
        return False


def check_resources(spec: StudySpec, local: bool) -> str | None:
    """UsageError if no alive node can host one run and no autoscaler may add one; a note to
    print if only the autoscaler may (the runs then wait for its node), else None."""
    where = "the local Ray" if local else "the cluster"
    reason = unfit_reason(spec, node_resources(), where)
    if reason is None:
        return None
    if not local and autoscaler_may_add_node(spec.cpus_per_run, spec.gpus_per_run):
        return f"{reason}; the cluster's autoscaler may start one: the runs wait for it"
    raise UsageError(reason)


def ray_address(address: str | None) -> str:
    """The Ray to use: `address`, else RAY_ADDRESS (which `ray job submit` sets for the study it
    starts on a cluster), else "local": a new Ray on this machine, never a cluster that
    `ray start` or a test left running here (which ray.init() without an address would join)."""
    return address or os.environ.get("RAY_ADDRESS") or "local"


def run_study(
    spec: StudySpec,
    runs: list[PlannedRun],
    logdir: Path,
    address: str | None = None,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Bring every run of the study to its total on Ray; return one result per run.

    `address=None` starts a local Ray over this machine's cores (unless RAY_ADDRESS names a
    cluster, as under `ray job submit`); "auto" or "ray://HOST:10001" joins a cluster, whose
    nodes must all see `logdir` (checked first). A study whose cpus_per_run or gpus_per_run no
    node can give raises UsageError before anything trains.
    """
    states = [run_state(run) for run in runs]  # bad folders fail here, before Ray starts
    todo = [s.run for s in states if s.state != "finished"]
    results = [
        {"run": s.run.label, "status": "skipped", "timesteps": s.steps, "trained": 0}
        for s in states
        if s.state == "finished"
    ]
    view = LiveView(runs, progress)
    view.note(f"{len(results)} of {len(runs)} runs already finished; {len(todo)} to train")
    if not todo:
        view.close()
        return results
    import ray

    address = ray_address(address)
    # Workers import the suite from the same files as the driver (an installed package).
    ray.init(
        address=address,
        include_dashboard=False,
        log_to_driver=False,
        configure_logging=False,
    )
    try:
        note = check_resources(spec, local=address == "local")  # before any folder is made
        if note:
            view.note(note)
        logdir.mkdir(parents=True, exist_ok=True)
        if address != "local":
            check_shared_logdir(logdir)
        task = remote_train_one(spec)
        threads = max(1, int(spec.cpus_per_run))
        pending = {task.remote(run, threads): run for run in todo}
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1, timeout=POLL_SECONDS)
            for ref in done:
                run = pending.pop(ref)
                try:
                    result = ray.get(ref)
                except Exception as err:  # the run's own error, after Ray's retries
                    result = {"run": run.label, "status": "failed", "message": _one_line(err)}
                results.append(result)
                view.finished(result)
            view.refresh()
    finally:
        view.close()
        ray.shutdown()
    lost = [r for r in results if r.get("lost")]
    if lost:
        again = sum(r.get("retrained", 0) for r in lost)
        view.note(
            f"{len(lost)} runs lost an attempt (a worker or node died) and resumed from their "
            f"newest checkpoint; at least {again:,} steps trained again"
        )
    return results


def remote_train_one(spec: StudySpec):
    """train_one as a Ray task with the study's resources. A GPU run's resources are given to
    ray.remote itself with max_calls=1: each run then gets a fresh worker, whereas through
    .options() Ray reuses workers, and a reused worker keeps the CUDA context (and memory) of
    the GPU its first run had."""
    import ray

    resources = {"num_cpus": spec.cpus_per_run, "max_retries": MAX_RETRIES}
    if spec.gpus_per_run > 0:
        return ray.remote(num_gpus=spec.gpus_per_run, max_calls=1, **resources)(train_one)
    return ray.remote(**resources)(train_one)


def _num(x: float) -> str:
    return f"{x:g}"


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return text[-300:]


class LiveView:
    """One line per run (state, steps, steps/s, latest return) and the study's progress with
    the time left, redrawn in place on a terminal; elsewhere, a line per finished run."""

    def __init__(self, runs: list[PlannedRun], enabled: bool) -> None:
        self.runs = runs
        self.total = sum(int(r.settings.timesteps) for r in runs)
        self.start = time.time()
        self.start_steps = sum(self._progress(r).get("steps", 0) for r in runs)
        self.finished_runs: dict[str, str] = {}
        self.live = None
        if enabled and sys.stdout.isatty():
            from rich.live import Live

            self.live = Live(self._table(), refresh_per_second=1, transient=False)
            self.live.start()

    def _progress(self, run: PlannedRun) -> dict[str, Any]:
        try:
            return json.loads((run.run_dir / ProgressFile.NAME).read_text())
        except (OSError, ValueError):
            return {}

    def _table(self):
        from rich.table import Table

        progress = [self._progress(run) for run in self.runs]  # each file read once a refresh
        table = Table(title=self._summary(progress))
        for column in ("run", "state", "steps", "steps/s", "latest return"):
            table.add_column(column)
        for run, p in zip(self.runs, progress, strict=True):
            state = self.finished_runs.get(run.label) or ("running" if p else "waiting")
            rate = f"{p['steps_per_s']:.0f}" if p.get("steps_per_s") else "-"
            last = "-" if p.get("last_return") is None else f"{p['last_return']:.0f}"
            table.add_row(run.label, state, f"{p.get('steps', 0):,}/{run.settings.timesteps:,}",
                          rate, last)  # fmt: skip
        return table

    def _summary(self, progress: list[dict[str, Any]] | None = None) -> str:
        if progress is None:
            progress = [self._progress(run) for run in self.runs]
        steps = sum(
            min(p.get("steps", 0), r.settings.timesteps)
            for r, p in zip(self.runs, progress, strict=True)
        )
        elapsed = time.time() - self.start
        rate = (steps - self.start_steps) / elapsed if elapsed > 0 else 0.0
        left = (self.total - steps) / rate if rate > 0 else float("nan")
        eta = "-" if left != left else time.strftime("%H:%M:%S", time.gmtime(left))
        return (
            f"study: {steps:,} of {self.total:,} agent steps ({steps / self.total:.0%}), left {eta}"
        )

    def note(self, text: str) -> None:
        print(text, flush=True)

    def finished(self, result: dict[str, Any]) -> None:
        self.finished_runs[result["run"]] = result["status"]
        if self.live is None:
            extra = f": {result['message']}" if result.get("message") else ""
            if result.get("node"):
                extra += f" (on {result['node']} {result['node_id'][:8]}"
                if result.get("lost"):
                    extra += (
                        f"; {result['lost']} attempt(s) lost, at least "
                        f"{result['retrained']:,} steps trained again"
                    )
                extra += ")"
            print(f"{result['run']}: {result['status']}{extra}; {self._summary()}", flush=True)

    def refresh(self) -> None:
        if self.live is not None:
            self.live.update(self._table())

    def close(self) -> None:
        if self.live is not None:
            self.live.update(self._table())
            self.live.stop()
