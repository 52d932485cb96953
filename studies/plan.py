"""What a study will cost before it starts (`study.py --dry-run`): each run's state, the agent
steps left, and at a speed this machine measures, the core-hours, GPU-hours and wall time.

The arithmetic (pure functions, the units in their names):

- A run's speed is steps/s per CPU core times its `cpus_per_run`: steps/s taken as linear in
  cores. That is an assumption, not a measurement: the probe trains on at most this machine's
  cores, and train_speed.md's figures come from a 2-core machine.
- core-hours = steps left / (steps/s a run) x cpus_per_run / 3600; GPU-hours likewise with
  gpus_per_run. A run on a GPU node is taken at the same CPU speed: Atari's emulator runs on
  the CPU and bounds a run's steps/s on a GPU node too. Not measured on a GPU.
- Runs at once: per node, the fewest of floor(CPUs / cpus_per_run) and, where runs ask for
  GPUs, floor(GPUs / gpus_per_run); summed over the nodes (a run cannot span two nodes).
- Wall time: the runs left, in the study's order, each started on the first free slot (Ray
  starts queued tasks as resources free up), until the last one ends.

Left out, and said so in the plan: evaluation games (the probe trains with evaluation off),
other games' emulator speeds (the probe plays the spec's first game, the table Ms. Pac-Man),
and runs on one node slowing each other down.
"""

from __future__ import annotations

import heapq
import json
import os
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from stable_baselines3.common.callbacks import BaseCallback

from common.errors import UsageError
from studies.engine import node_capacity, run_state
from studies.spec import PlannedRun, StudySpec

# The probe times whole collect-and-train cycles after a warm-up (first rollouts, the kernels'
# choice), until it has timed PROBE_STEPS agent steps or PROBE_SECONDS, whichever comes first.
PROBE_WARMUP = 256  # agent steps, and at least PROBE_WARMUP_CYCLES cycles
PROBE_WARMUP_CYCLES = 2
PROBE_STEPS = 4096
PROBE_SECONDS = 30.0
# Off-policy probes learn from their first step on a small buffer: a run spends nearly all of
# its steps past learning_starts, and RL Zoo's 100,000 transitions would take 2.82 GB here.
PROBE_OFF_POLICY_SETS = ("learning_starts=0", "buffer_size=10000")
TRAIN_SPEED_JSON = Path(__file__).resolve().parent.parent / "docs/results/train_speed_cpu.json"


@dataclass(frozen=True)
class Node:
    """What one node offers Ray: CPUs and GPUs."""

    cpus: float
    gpus: float


@dataclass(frozen=True)
class Cluster:
    """The nodes a plan runs on and where that description came from."""

    nodes: tuple[Node, ...]
    source: str


@dataclass(frozen=True)
class Speed:
    """A run kind's training speed: `steps_per_s` measured on `threads` cores."""

    steps_per_s: float
    threads: int
    source: str

    @property
    def per_core(self) -> float:
        return self.steps_per_s / self.threads


@dataclass(frozen=True)
class RunLine:
    """One planned run as the plan lists it: its state (to do, partly done, finished), the
    agent steps its newest saved model holds, its total, and its kind (what sets its speed)."""

    label: str
    state: str
    steps: int
    total: int
    kind: str

    @property
    def left(self) -> int:
        return 0 if self.state == "finished" else max(self.total - self.steps, 0)

    def describe(self) -> str:
        if self.state == "partly done":
            return f"partly done at {self.steps:,} of {self.total:,} steps"
        if self.state == "finished":
            return f"finished ({self.steps:,} steps)"
        return "to do"


@dataclass(frozen=True)
class Cost:
    """The numbers of a plan (see the module docstring)."""

    runs: int
    finished: int
    partly_done: int
    to_do: int
    steps_left: int
    core_hours: float
    gpu_hours: float | None  # None: the runs ask for no GPU
    runs_at_once: int
    wall_hours: float | None  # None: no node can hold a run
    why_not: str = ""


STATE_WORDS = {"new": "to do", "partial": "partly done", "finished": "finished"}


def run_kind(run: PlannedRun) -> str:
    """What sets a run's speed, as the plan names it: `a2c coordconv bf16`, `ppo conv+r fp32`."""
    s = run.settings
    return f"{s.algo} {s.extractor}{'+r' if s.with_r else ''} {s.precision}"


def run_lines(runs: Sequence[PlannedRun]) -> list[RunLine]:
    """Each run's state read from its folder (studies.engine.run_state); reads, never writes.
    UsageError for a folder made with other settings than the spec's."""
    lines = []
    for run in runs:
        state = run_state(run)
        lines.append(
            RunLine(
                run.label,
                STATE_WORDS[state.state],
                int(state.steps),
                int(run.settings.timesteps),
                run_kind(run),
            )
        )
    return lines


def run_steps_per_s(speed: Speed, cpus_per_run: float) -> float:
    """Steps/s of one run given `cpus_per_run` cores: linear in cores (assumed)."""
    return speed.per_core * cpus_per_run


def core_hours(steps_left: int, run_steps_per_s: float, cpus_per_run: float) -> float:
    """steps left / (steps/s a run) x cpus_per_run / 3600."""
    return steps_left / run_steps_per_s * cpus_per_run / 3600


def gpu_hours(steps_left: int, run_steps_per_s: float, gpus_per_run: float) -> float:
    """steps left / (steps/s a run) x gpus_per_run / 3600."""
    return steps_left / run_steps_per_s * gpus_per_run / 3600


def runs_per_node(node: Node, cpus_per_run: float, gpus_per_run: float) -> int:
    """How many runs fit on `node` at once (studies.engine.node_capacity)."""
    return node_capacity(node.cpus, node.gpus, cpus_per_run, gpus_per_run)


def runs_at_once(nodes: Sequence[Node], cpus_per_run: float, gpus_per_run: float) -> int:
    """Runs that fit on the cluster at once: each node's, summed (a run lives on one node)."""
    return sum(runs_per_node(n, cpus_per_run, gpus_per_run) for n in nodes)


def wall_seconds(durations: Sequence[float], slots: int) -> float | None:
    """When the last run ends if each, in order, starts on the first free of `slots` slots;
    None when there is no slot and something to run."""
    if not durations:
        return 0.0
    if slots < 1:
        return None
    free = [0.0] * min(slots, len(durations))
    for duration in durations:
        heapq.heappush(free, heapq.heappop(free) + duration)
    return max(free)


def plan_cost(
    lines: Sequence[RunLine],
    speeds: Mapping[str, Speed],
    cpus_per_run: float,
    gpus_per_run: float,
    cluster: Cluster,
) -> Cost:
    """The plan's numbers for runs `lines` at `speeds` (one per run kind) on `cluster`."""
    todo = [line for line in lines if line.left > 0]
    rates = {kind: run_steps_per_s(s, cpus_per_run) for kind, s in speeds.items()}
    slots = runs_at_once(cluster.nodes, cpus_per_run, gpus_per_run)
    wall = wall_seconds([line.left / rates[line.kind] for line in todo], slots)
    why_not = ""
    if wall is None:
        biggest = max(cluster.nodes, key=lambda n: (n.cpus, n.gpus), default=Node(0, 0))
        asks = f"{_num(cpus_per_run)} CPU(s)" + (
            f" and {_num(gpus_per_run)} GPU(s)" if gpus_per_run > 0 else ""
        )
        why_not = (
            f"no node can hold a run: a run asks for {asks}, the largest node has "
            f"{_num(biggest.cpus)} CPU(s) and {_num(biggest.gpus)} GPU(s)"
        )
    return Cost(
        runs=len(lines),
        finished=sum(line.state == "finished" for line in lines),
        partly_done=sum(line.state == "partly done" for line in lines),
        to_do=sum(line.state == "to do" for line in lines),
        steps_left=sum(line.left for line in lines),
        core_hours=sum(core_hours(t.left, rates[t.kind], cpus_per_run) for t in todo),
        gpu_hours=(
            sum(gpu_hours(t.left, rates[t.kind], gpus_per_run) for t in todo)
            if gpus_per_run > 0
            else None
        ),
        runs_at_once=slots,
        wall_hours=None if wall is None else wall / 3600,
        why_not=why_not,
    )


def _num(x: float) -> str:
    return f"{x:g}"


def _amount(x: float) -> str:
    """Three significant figures or whole numbers: 0.0123, 1.23, 123, 1,234."""
    return f"{x:,.0f}" if x >= 100 else f"{x:.3g}"


def _hours(h: float) -> str:
    if h < 1:
        return f"{_amount(h * 60)} minutes"
    return f"{_amount(h)} hours" + (f" ({_amount(h / 24)} days)" if h >= 48 else "")


def nodes_of_size(count: int, cpus: float, gpus: float, source: str) -> Cluster:
    """`count` nodes of `cpus` CPUs and `gpus` GPUs each."""
    return Cluster(tuple(Node(cpus, gpus) for _ in range(count)), source)


def nodes_from_ray(ray_nodes: Sequence[Mapping[str, Any]]) -> tuple[Node, ...]:
    """The alive nodes of `ray.nodes()` with the CPUs and GPUs each offers."""
    return tuple(
        Node(float(n["Resources"].get("CPU", 0)), float(n["Resources"].get("GPU", 0)))
        for n in ray_nodes
        if n.get("Alive")
    )


def ray_cluster(address: str) -> Cluster:
    """The nodes of the running Ray cluster at `address` (joined and left again; nothing is
    scheduled). UsageError, one line, when it cannot be joined."""
    import ray

    try:
        ray.init(
            address=address, include_dashboard=False, log_to_driver=False, configure_logging=False
        )
    except Exception as err:  # no cluster there, a refused connection: the user's address
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise UsageError(f"--address {address}: cannot join a Ray cluster: {first}") from None
    try:
        nodes = nodes_from_ray(ray.nodes())
        total = ray.cluster_resources()
    finally:
        ray.shutdown()
    source = (
        f"the Ray cluster at {address}: {len(nodes)} node(s), {_num(total.get('CPU', 0))} CPUs "
        f"and {_num(total.get('GPU', 0))} GPU(s) in all"
    )
    return Cluster(nodes, source)


class _ProbeClock(BaseCallback):
    """Times whole collect-and-train cycles: notes the time and the step count at each rollout
    start (the previous cycle's training is done by then) once the warm-up is over, and stops
    training once PROBE_STEPS steps or PROBE_SECONDS have been timed."""

    def __init__(self) -> None:
        super().__init__()
        self.cycles = 0
        self.marks: list[tuple[float, float, int]] = []  # wall s, CPU s of the process, steps
        self.stop = False

    def _on_rollout_start(self) -> None:
        self.cycles += 1
        if self.cycles <= PROBE_WARMUP_CYCLES or self.num_timesteps < PROBE_WARMUP:
            return
        self.marks.append((time.perf_counter(), time.process_time(), int(self.num_timesteps)))
        (t0, _, s0), (t, _, steps) = self.marks[0], self.marks[-1]
        self.stop = t - t0 >= PROBE_SECONDS or steps - s0 >= PROBE_STEPS

    def _on_step(self) -> bool:
        return not self.stop


def probe_speed(run: PlannedRun, threads: int) -> Speed:
    """Steps/s of `run`'s own settings (game, algo, extractor, precision, hyperparameters)
    trained on the CPU with `threads` threads, evaluation off, built as agents.train builds a
    run, with its NaN guard (not the episode logger and progress file, which write files and
    cost little: train_speed.md): whole collect-and-train cycles after a warm-up, PROBE_STEPS
    steps or PROBE_SECONDS seconds, whichever comes first. Writes no file: the model, its
    games and its logger live in memory."""
    import torch
    from stable_baselines3.common.logger import Logger

    from agents.callbacks import NonFiniteGuard
    from agents.config import ALGOS, is_off_policy, sb3_kwargs
    from agents.train import resolve_config
    from common.devices import describe_device
    from envs.atari import make_atari_vec_env
    from policies.precision import bf16_note, set_precision
    from policies.registry import policy_kwargs_for

    s = run.settings
    sets = [*s.sets, *(PROBE_OFF_POLICY_SETS if is_off_policy(s.algo) else ())]
    config = resolve_config(replace(s, sets=sets, eval_freq=0, device="cpu", num_threads=threads))
    hp = config["hyperparams"]
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    env = make_atari_vec_env(
        config["env"],
        int(hp["n_envs"]),
        config["seed"],
        training=True,
        sticky_actions=config["sticky_actions"],
        frame_stack=int(hp.get("frame_stack", 4)),
        vec_env=config["vec_env"],
        backend=config["backend"],
        num_threads=threads,
    )
    try:
        algo_kwargs, policy_extra = sb3_kwargs(hp, s.algo)
        model = ALGOS[s.algo](
            "CnnPolicy",
            env,
            policy_kwargs=policy_kwargs_for(s.extractor, s.with_r, **policy_extra),
            seed=config["seed"],
            device="cpu",
            verbose=0,
            **algo_kwargs,
        )
        set_precision(model.policy, s.precision)
        # A logger with no outputs: SB3's own default makes a folder under /tmp even for none.
        model.set_logger(Logger(folder=None, output_formats=[]))
        clock = _ProbeClock()
        # The total only sets where the schedules stand: the clock stops long before it.
        total = 100 * (PROBE_WARMUP + PROBE_STEPS)
        model.learn(total, callback=[NonFiniteGuard(), clock])
        machine = describe_device(torch.device("cpu"))
    finally:
        env.close()
        torch.set_num_threads(before)
    if len(clock.marks) < 2:  # training ended (NaN guard) before two cycles were timed
        raise UsageError(f"the speed probe of {run_kind(run)} stopped before it timed a cycle")
    (t0, c0, s0), (t1, c1, s1) = clock.marks[0], clock.marks[-1]
    # The process's CPU time over the wall time: below its threads, other work shared the cores.
    share = (c1 - c0) / (t1 - t0)
    note = bf16_note(torch.device("cpu")) if s.precision == "bf16" else None
    source = (
        f"probe on this machine ({machine}, device cpu): {s1 - s0:,} steps timed in "
        f"{t1 - t0:.0f} s after {s0:,} of warm-up, {config['env']}, evaluation off, "
        f"the probe kept {share:.2f} of its {threads} core(s) busy"
        + ("; off-policy: learning from the first step" if is_off_policy(s.algo) else "")
        + (f"; {note.removeprefix('note: ')}" if note else "")
    )
    return Speed((s1 - s0) / (t1 - t0), threads, source)


def table_speed(kind: str, path: Path = TRAIN_SPEED_JSON) -> Speed:
    """A run kind's steps/s from bench_train.py's JSON (docs/results/train_speed_cpu.json): the
    column of its extractor and precision on the ale backend where there is one, else the sb3
    backend's. The radius channel is not measured there: +r runs count as their extractor."""
    algo, extractor, precision = kind.split(" ")
    extractor = extractor.removesuffix("+r")
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise UsageError(f"{path} is missing (a checkout has it): use --speed probe") from None
    except (OSError, ValueError) as err:
        raise UsageError(f"{path} is not readable JSON: {err}") from None
    rows = [r for r in data.get("rows", []) if r.get("algo") == algo and "steps_per_second" in r]
    if not rows:
        have = sorted({r["algo"] for r in data.get("rows", []) if "algo" in r})
        raise UsageError(
            f"{path.name} has no {algo} figures (only {', '.join(have)}): use --speed probe"
        )
    row = rows[0]
    suffix = "" if precision == "fp32" else f"-{precision}"
    columns = [f"{extractor}-ale{suffix}", f"{extractor}{suffix}"]
    column = next((c for c in columns if c in row["steps_per_second"]), None)
    if column is None:
        raise UsageError(
            f"{path.name} has no {extractor} {precision} figure for {algo} (columns: "
            f"{', '.join(row['steps_per_second'])}): use --speed probe"
        )
    match = re.search(r"(\d+) torch threads", str(data.get("device", "")))
    if match is None:
        raise UsageError(f"{path.name} does not say how many threads it was measured on")
    backend = "ale backend" if "-ale" in column else "sb3 backend: no ale figure"
    source = (
        f"{path.name} ({data['device']}, {row['env']}, {data.get('command', 'bench_train.py')}), "
        f"column {column} ({backend})"
    )
    return Speed(float(row["steps_per_second"][column]), int(match.group(1)), source)


def format_plan(
    spec: StudySpec,
    lines: Sequence[RunLine],
    speeds: Mapping[str, Speed],
    cluster: Cluster,
    cost: Cost,
    notes: Sequence[str] = (),
) -> str:
    """The plan as study.py --dry-run prints it: every run, then the numbers and what they
    assume (and `notes` on the measurement)."""
    width = max((len(line.label) for line in lines), default=0)
    out = [f"study {spec.name}: {cost.runs} runs"]
    out += [f"  {line.label:<{width}}  {line.describe()}" for line in lines]
    cpr, gpr = spec.cpus_per_run, spec.gpus_per_run
    out += [
        "",
        f"plan: {cost.runs} runs ({cost.finished} finished, {cost.partly_done} partly done, "
        f"{cost.to_do} to do), {cost.steps_left:,} agent steps left",
        "speed (agent steps/s of one run):",
    ]
    for kind, s in speeds.items():
        out.append(
            f"  {kind}: {s.steps_per_s:,.0f} steps/s on {s.threads} core(s) = "
            f"{s.per_core:,.0f} per core; {run_steps_per_s(s, cpr):,.0f} a run at "
            f"{_num(cpr)} CPU(s)"
        )
        out.append(f"    from {s.source}")
    out += [f"  {note}" for note in notes]
    out.append(
        "  assumed: steps/s linear in a run's cores (not measured beyond the cores above); "
        "evaluation games not counted; every game as fast as the one measured; runs on one "
        "node do not slow each other"
    )
    if gpr > 0:
        out.append(
            f"  GPU runs: taken at the CPU speed above on their {_num(cpr)} CPU(s), since the "
            "emulator runs on the CPU and bounds a run's steps/s on a GPU node; not measured "
            "on a GPU (there the network moves off the CPU, so they may be faster)"
        )
    cost_line = f"cost: {_amount(cost.core_hours)} core-hours ({_num(cpr)} CPU(s) a run)"
    if cost.gpu_hours is not None:
        cost_line += f", {_amount(cost.gpu_hours)} GPU-hours ({_num(gpr)} GPU(s) a run)"
    out.append(cost_line)
    out.append(f"on {cluster.source}:")
    if cost.wall_hours is None:
        out.append(f"  {cost.why_not}: it would never start")
    else:
        out.append(
            f"  {cost.runs_at_once} run(s) at once; wall time {_hours(cost.wall_hours)} "
            "(each run started on the first free slot, in the study's order)"
        )
    return "\n".join(out)


def dry_run(
    spec: StudySpec,
    runs: Sequence[PlannedRun],
    address: str | None,
    nodes: int,
    cpus_per_node: float | None,
    gpus_per_node: float | None,
    speed: str,
) -> str:
    """study.py --dry-run: read each run's state, measure or look up the speed of each run kind,
    describe the cluster (joined at `address`, or `nodes` nodes of this machine's size unless
    given), and return the plan's text. Makes no run folder and no logdir."""
    lines = run_lines(runs)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    notes: list[str] = []
    kinds: dict[str, PlannedRun] = {}
    for run in runs:
        kinds.setdefault(run_kind(run), run)
    if address is not None:  # joined first: a wrong address fails before any probe
        cluster = ray_cluster(address)
    else:
        import torch

        here_cpus, here_gpus = os.cpu_count() or 1, torch.cuda.device_count()
        cpus = here_cpus if cpus_per_node is None else cpus_per_node
        gpus = here_gpus if gpus_per_node is None else gpus_per_node
        given = cpus_per_node is not None or gpus_per_node is not None
        size = "" if given else "this machine's size: "
        source = f"{nodes} node(s) of {size}{_num(cpus)} CPUs and {_num(gpus)} GPU(s) each"
        cluster = nodes_of_size(nodes, cpus, gpus, source)
    threads = max(1, min(int(spec.cpus_per_run), os.cpu_count() or 1))
    if speed == "probe":
        speeds = {kind: probe_speed(run, threads) for kind, run in kinds.items()}
        if load is not None:  # other work on the machine slows a probe: say how much there was
            notes.append(
                f"load average {load:.1f} on {os.cpu_count()} cores before the probe (other "
                "work on the machine slows it)"
            )
    else:
        speeds = {kind: table_speed(kind) for kind in kinds}
    cost = plan_cost(lines, speeds, spec.cpus_per_run, spec.gpus_per_run, cluster)
    return format_plan(spec, lines, speeds, cluster, cost, notes)
