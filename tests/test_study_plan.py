"""study.py --dry-run: the plan's arithmetic against numbers worked out by hand, the listed run
states from real run folders, and that planning makes no folder and trains nothing."""

import json
import re
from dataclasses import replace

import pytest

from agents.train import train_atari
from studies import plan
from studies.plan import (
    Cluster,
    Node,
    RunLine,
    Speed,
    core_hours,
    gpu_hours,
    nodes_from_ray,
    plan_cost,
    run_steps_per_s,
    runs_at_once,
    runs_per_node,
    table_speed,
    wall_seconds,
)
from studies.spec import load_spec, plan_runs
from tests.cli import error_lines, run_script
from tests.test_study import write_spec


def test_speed_of_a_run_is_per_core_times_its_cpus():
    speed = Speed(steps_per_s=800.0, threads=2, source="")
    assert speed.per_core == 400.0
    assert run_steps_per_s(speed, 4) == 1600.0
    assert run_steps_per_s(speed, 0.5) == 200.0


def test_core_and_gpu_hours_by_hand():
    # 3.6M steps at 1,000 steps/s: 3,600 s, one hour of the run; 4 CPUs, a quarter GPU.
    assert core_hours(3_600_000, 1000.0, 4) == pytest.approx(4.0)
    assert gpu_hours(3_600_000, 1000.0, 0.25) == pytest.approx(0.25)
    # atari9 on the table's coordconv bf16 figure (931.7 steps/s on 2 cores, 4 CPUs a run):
    # 10M steps / (465.85 x 4) = 5,366.5 s a run; x 4 CPUs / 3,600 = 5.963 core-hours.
    assert core_hours(10_000_000, 465.85 * 4, 4) == pytest.approx(10_000_000 / 465.85 / 3600)


@pytest.mark.parametrize(
    "node,cpus,gpus,fits",
    [
        (Node(16, 1), 4, 0.25, 4),  # 16/4 = 4 by CPUs, 1/0.25 = 4 by GPUs
        (Node(16, 1), 2, 0.25, 4),  # 8 by CPUs, 4 by GPUs: the GPUs bound it
        (Node(16, 0), 4, 0, 4),  # no GPU asked: GPUs do not count
        (Node(16, 0), 4, 0.25, 0),  # a GPU run on a CPU node
        (Node(2, 0), 4, 0, 0),  # a run bigger than the node
        (Node(3, 0), 2, 0, 1),  # floor(1.5)
        (Node(1, 1), 0.3, 0.1, 3),  # floor(3.33) by CPUs, 10 by GPUs
        (Node(1, 0.3), 0.1, 0.1, 3),  # 0.3 / 0.1 rounds just below 3 in floats
    ],
)
def test_runs_per_node(node, cpus, gpus, fits):
    assert runs_per_node(node, cpus, gpus) == fits


def test_runs_at_once_sums_the_nodes():
    head, small, gpu = Node(0, 0), Node(1, 0), Node(2, 1)
    assert runs_at_once([head, small, gpu], 1, 0) == 3
    assert runs_at_once([head, small, gpu], 1, 0.5) == 2  # only the GPU node: min(2, 2)
    # Totals would say 3 CPUs / 2 = 1 run; per node none fits (a run lives on one node).
    assert runs_at_once([Node(1, 0)] * 3, 2, 0) == 0
    assert runs_at_once([Node(16, 1)] * 8, 4, 0.25) == 32


def test_wall_seconds_starts_each_run_on_the_first_free_slot():
    assert wall_seconds([3, 3, 3, 1], 2) == 6  # 3 | 3, then 3 and 1 at t=3: ends at 6
    assert wall_seconds([1, 1, 1, 1, 1], 2) == 3  # three waves
    assert wall_seconds([5, 1, 1, 1], 2) == 5  # the short runs fit beside the long one
    assert wall_seconds([5], 4) == 5
    assert wall_seconds([], 0) == 0.0
    assert wall_seconds([1], 0) is None


# Runs of 7.2M steps: kind A at 500 steps/s per core, B at 1,000; 2 CPUs and 0.5 GPU a run, so
# A trains at 1,000 steps/s a run and B at 2,000. Left: A 3.6M (partly done), B 7.2M twice:
# one hour each.
LINES = [
    RunLine("G/a_s0", "finished", 7_200_000, 7_200_000, "A"),
    RunLine("G/a_s1", "partly done", 3_600_000, 7_200_000, "A"),
    RunLine("G/b_s0", "to do", 0, 7_200_000, "B"),
    RunLine("G/b_s1", "to do", 0, 7_200_000, "B"),
]
SPEEDS = {"A": Speed(1000.0, 2, "a"), "B": Speed(1000.0, 1, "b")}


def test_plan_cost_by_hand():
    one_node = Cluster((Node(4, 1),), "one node")
    cost = plan_cost(LINES, SPEEDS, 2, 0.5, one_node)
    assert (cost.runs, cost.finished, cost.partly_done, cost.to_do) == (4, 1, 1, 2)
    assert cost.steps_left == 3_600_000 + 2 * 7_200_000
    assert cost.core_hours == pytest.approx(3 * 1.0 * 2)  # three run-hours x 2 CPUs
    assert cost.gpu_hours == pytest.approx(3 * 1.0 * 0.5)
    assert cost.runs_at_once == 2  # min(4 / 2, 1 / 0.5)
    assert cost.wall_hours == pytest.approx(2.0)  # two at once, then the third
    two_nodes = Cluster((Node(4, 1), Node(4, 1)), "two nodes")
    assert plan_cost(LINES, SPEEDS, 2, 0.5, two_nodes).wall_hours == pytest.approx(1.0)
    cpu_only = plan_cost(LINES, SPEEDS, 2, 0, one_node)
    assert cpu_only.gpu_hours is None and cpu_only.runs_at_once == 2
    nowhere = plan_cost(LINES, SPEEDS, 2, 0.5, Cluster((Node(2, 0),), "a CPU node"))
    assert nowhere.wall_hours is None and nowhere.core_hours == pytest.approx(6.0)
    assert "asks for 2 CPU(s) and 0.5 GPU(s)" in nowhere.why_not
    assert "largest node has 2 CPU(s) and 0 GPU(s)" in nowhere.why_not
    done = plan_cost(LINES[:1], SPEEDS, 2, 0.5, Cluster((Node(2, 0),), "a CPU node"))
    assert done.steps_left == 0 and done.wall_hours == 0.0 and done.core_hours == 0.0


def test_table_speed_reads_train_speed_json():
    coord = table_speed("a2c coordconv bf16")
    rows = json.loads(plan.TRAIN_SPEED_JSON.read_text())["rows"]
    a2c = next(r for r in rows if r.get("algo") == "a2c")["steps_per_second"]
    assert coord.steps_per_s == a2c["coordconv-ale-bf16"] and coord.threads == 2
    assert "coordconv-ale-bf16 (ale backend)" in coord.source
    conv = table_speed("a2c conv fp32")  # no ale figure for conv: the sb3 backend's
    assert conv.steps_per_s == a2c["conv"] and "sb3 backend" in conv.source
    assert table_speed("a2c coordconv+r fp32").steps_per_s == a2c["coordconv-ale"]
    with pytest.raises(ValueError, match="no dqn figures"):
        table_speed("dqn conv fp32")


def test_nodes_from_ray_takes_alive_nodes_cpus_and_gpus():
    nodes = [
        {"Alive": True, "Resources": {"CPU": 0.0, "memory": 1e9}},
        {"Alive": True, "Resources": {"CPU": 16.0, "GPU": 1.0, "node:10.0.0.2": 1.0}},
        {"Alive": False, "Resources": {"CPU": 16.0, "GPU": 1.0}},
    ]
    assert nodes_from_ray(nodes) == (Node(0.0, 0.0), Node(16.0, 1.0))


@pytest.fixture(scope="module")
def partly_done(tmp_path_factory):
    """A tiny study's folders: a2c_conv_s0 finished at 600 steps, a2c_coordconv_s0 stopped at
    200 (model.zip at 200 of a total of 600), the two seed-1 runs not started."""
    tmp = tmp_path_factory.mktemp("plan")
    spec_path, logdir = write_spec(tmp), tmp / "runs"
    runs = {r.run_dir.name: r for r in plan_runs(load_spec(spec_path), logdir)}
    for name, steps in (("a2c_conv_s0", 600), ("a2c_coordconv_s0", 200)):
        settings = replace(runs[name].settings, timesteps=steps, device="cpu")
        assert train_atari(settings, ["test"]).status == "finished"
    return spec_path, logdir


def _tree(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def test_dry_run_lists_each_state_and_makes_no_folder(capsys, partly_done):
    spec_path, logdir = partly_done
    before = _tree(logdir)
    args = [spec_path, "--logdir", logdir, "--dry-run", "--speed", "table"]
    r = run_script(capsys, "study.py", *args)
    assert r.code == 0, r.err
    lines = {m[0]: m[1].strip() for m in re.findall(r"^  (Breakout/\S+)\s+(.+)$", r.out, re.M)}
    assert lines == {
        "Breakout/a2c_conv_s0": "finished (600 steps)",
        "Breakout/a2c_coordconv_s0": "partly done at 200 of 600 steps",
        "Breakout/a2c_conv_s1": "to do",
        "Breakout/a2c_coordconv_s1": "to do",
    }
    assert "4 runs (1 finished, 1 partly done, 2 to do), 1,600 agent steps left" in r.out
    assert "train_speed_cpu.json" in r.out and "linear in a run's cores" in r.out
    assert "node(s) of this machine's size" in r.out and "run(s) at once" in r.out
    assert _tree(logdir) == before  # nothing written, no folder for the runs to do
    assert not (logdir / "Breakout" / "a2c_conv_s1").exists()


def test_dry_run_of_a_new_study_makes_no_logdir(capsys, tmp_path):
    spec = write_spec(tmp_path, cpus_per_run=4, gpus_per_run=0.25, timesteps=7_200_000)
    logdir = tmp_path / "new"
    r = run_script(
        capsys, "study.py", spec, "--logdir", logdir, "--dry-run", "--speed", "table",
        "--nodes", "8", "--cpus-per-node", "16", "--gpus-per-node", "1",
    )  # fmt: skip
    assert r.code == 0, r.err
    assert not logdir.exists()
    assert "4 runs (0 finished, 0 partly done, 4 to do), 28,800,000 agent steps left" in r.out
    assert "8 node(s) of 16 CPUs and 1 GPU(s) each" in r.out
    assert "32 run(s) at once" in r.out  # min(16 / 4, 1 / 0.25) = 4 a node
    assert "GPU-hours (0.25 GPU(s) a run)" in r.out and "not measured on a GPU" in r.out
    # On 2-CPU nodes without a GPU a 4-CPU, quarter-GPU run never starts: said, exit 0.
    small = run_script(
        capsys, "study.py", spec, "--logdir", logdir, "--dry-run", "--speed", "table",
        "--cpus-per-node", "2", "--gpus-per-node", "0",
    )  # fmt: skip
    assert small.code == 0, small.err
    assert "no node can hold a run: a run asks for 4 CPU(s) and 0.25 GPU(s)" in small.out
    assert not logdir.exists()


def test_dry_run_probe_trains_in_memory_only(capsys, monkeypatch, tmp_path):
    monkeypatch.setattr(plan, "PROBE_STEPS", 40)
    monkeypatch.setattr(plan, "PROBE_WARMUP", 20)
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr("tempfile.tempdir", str(scratch))  # where SB3's default logger would go
    spec = write_spec(tmp_path, extractors=["coordconv"], seeds=[0])
    logdir = tmp_path / "runs"
    r = run_script(capsys, "study.py", spec, "--logdir", logdir, "--dry-run")
    assert r.code == 0, r.err
    speed = re.search(r"a2c coordconv fp32: ([\d,]+) steps/s on 1 core\(s\)", r.out)
    assert speed and int(speed.group(1).replace(",", "")) > 0, r.out
    assert "probe on this machine" in r.out and "Breakout, evaluation off" in r.out
    assert not logdir.exists() and not list(scratch.iterdir())


BAD_FLAGS = [
    (["--dry-run", "--nodes", "0"], "--nodes must be >= 1, got 0"),
    (["--dry-run", "--report"], "--dry-run and --report exclude each other"),
    (["--nodes", "2"], "--nodes applies to --dry-run only"),
    (["--speed", "table"], "--speed applies to --dry-run only"),
    (["--dry-run", "--speed", "guess"], "unknown --speed 'guess'; valid: probe, table"),
    (["--dry-run", "--cpus-per-node", "0"], "--cpus-per-node must be a positive number"),
    (["--dry-run", "--gpus-per-node", "-1"], "--gpus-per-node must be >= 0, got -1"),
    (["--dry-run", "--address", "auto", "--nodes", "8"], "with --address the plan takes"),
]


@pytest.mark.parametrize("flags,message", BAD_FLAGS, ids=lambda f: " ".join(f)[:40])
def test_bad_flags_exit_2_with_one_line(capsys, tmp_path, flags, message):
    r = run_script(capsys, "study.py", write_spec(tmp_path), "--logdir", tmp_path / "x", *flags)
    lines = error_lines(r.err)
    assert r.code == 2 and len(lines) == 1 and message in lines[0], r.err
    assert not (tmp_path / "x").exists()


def test_dry_run_on_a_ray_cluster_takes_its_nodes(capsys, monkeypatch, tmp_path):
    """A head without CPUs and two workers, one declaring a GPU (nothing runs on it): the plan
    counts runs per node."""
    from ray.cluster_utils import Cluster as RayCluster

    # The suite hides CUDA (conftest), and Ray refuses to start a node with a GPU it cannot see.
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    cluster = RayCluster(initialize_head=True, head_node_args={"num_cpus": 0})
    try:
        cluster.add_node(num_cpus=1)
        cluster.add_node(num_cpus=2, num_gpus=1)
        cluster.wait_for_nodes()
        spec, logdir = write_spec(tmp_path), tmp_path / "runs"
        args = [spec, "--logdir", logdir, "--dry-run", "--speed", "table"]
        r = run_script(capsys, "study.py", *args, "--address", cluster.address)
        assert r.code == 0, r.err
        assert f"the Ray cluster at {cluster.address}: 3 node(s), 3 CPUs and 1 GPU(s)" in r.out
        assert "3 run(s) at once" in r.out  # 0 + 1 + 2 one-CPU runs
        gpu_spec = write_spec(tmp_path, gpus_per_run=0.5)
        r = run_script(capsys, "study.py", gpu_spec, *args[1:], "--address", cluster.address)
        assert r.code == 0, r.err
        assert "2 run(s) at once" in r.out  # only the GPU node: min(2 / 1, 1 / 0.5)
        assert not logdir.exists()
    finally:
        cluster.shutdown()
