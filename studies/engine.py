"""A study's runs on Ray: one task per run, local by default or on a cluster by address.

Idempotent and preemption-safe from the run folders alone: a run at its total is skipped, a run
with a saved model resumes from its newest one (agents.train.resume_atari: fresh random streams,
schedules that do not jump), a folder with nothing saved starts over. Ray retries a task whose
worker or node died (`max_retries`); the retry finds the folder as the lost attempt left it and
resumes. Re-running the same command after Ctrl-C, a killed driver or a lost node finishes the
study without training a finished run again. Ray does the scheduling, placement and retrying:
nothing here queues or retries on its own.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agents.callbacks import ProgressFile
from agents.checkpoints import list_checkpoints, newest_model
from agents.run_dir import CONFIG_NAME, RESULT_NAME, load_run_config
from agents.train import resolve_config
from analysis.runs import group_settings
from common.errors import UsageError
from studies.spec import PlannedRun, StudySpec

MAX_RETRIES = 3  # attempts Ray makes after a worker or node dies, per run
POLL_SECONDS = 2.0
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
    with open(run.run_dir.parent / f".{run.run_dir.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _bring_to_total(run)


def _bring_to_total(run: PlannedRun) -> dict[str, Any]:
    from agents.train import resume_atari, train_atari

    state = run_state(run)
    command = ["scripts/study.py", f"# {run.label}"]
    if state.state == "finished":
        return {"run": run.label, "status": "skipped", "timesteps": state.steps, "trained": 0}
    if state.state == "partial":
        result = resume_atari(
            run.run_dir, command, run.settings.timesteps, run.settings.device, progress=False
        )
    else:
        # Nothing saved: what a lost attempt left (logs, metadata) is started over.
        shutil.rmtree(run.run_dir, ignore_errors=True)
        result = train_atari(run.settings, command)
    if Path(result.run_dir) != run.run_dir:  # create_run_dir gave another name: a race
        raise RuntimeError(f"{run.label} trained in {result.run_dir}, not in {run.run_dir}")
    return {
        "run": run.label,
        "status": result.status,
        "timesteps": result.timesteps,
        "trained": result.trained,
        "message": result.message,
    }


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


def run_study(
    spec: StudySpec,
    runs: list[PlannedRun],
    logdir: Path,
    address: str | None = None,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Bring every run of the study to its total on Ray; return one result per run.

    `address=None` starts a local Ray over this machine's cores; "auto" or "ray://HOST:10001"
    joins a cluster, whose nodes must all see `logdir` (checked first).
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
        return results
    import ray

    logdir.mkdir(parents=True, exist_ok=True)
    # Workers import the suite from the same files as the driver (an installed package).
    ray.init(
        address=address,
        include_dashboard=False,
        log_to_driver=False,
        configure_logging=False,
    )
    try:
        if address is not None:
            check_shared_logdir(logdir)
        threads = max(1, int(spec.cpus_per_run))
        task = ray.remote(train_one).options(
            num_cpus=spec.cpus_per_run, num_gpus=spec.gpus_per_run, max_retries=MAX_RETRIES
        )
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
    return results


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
            print(f"{result['run']}: {result['status']}{extra}; {self._summary()}", flush=True)

    def refresh(self) -> None:
        if self.live is not None:
            self.live.update(self._table())

    def close(self) -> None:
        if self.live is not None:
            self.live.update(self._table())
            self.live.stop()
