"""One prepared check of every pipeline on one device (`scripts/gpu_check.py`): the layers
against the CPU, Atari training, loading, evaluation, export and resumption, a Ray study that
shares the GPU, one short epoch of each supervised pipeline, and throughput rows of the device
against this machine's CPU, measured in the same run.

Each step is a function of a `Context` that returns (ok, one-line detail); `run_check` times
each (CUDA synchronised before the clock is read), records an exception as a failed step with
its one-line error and goes on. The CLIs run in this process where the device is what they
test, and in a subprocess with CUDA hidden (CUDA_VISIBLE_DEVICES="") where the point is a
machine without a GPU: a plain `A2C.load`, resuming on the CPU. The Ray study runs as a
subprocess of `scripts/study.py`. `--budget tiny` is what the test suite runs on a CPU; `full`
holds the sizes of issue #25 (20k A2C steps on the device with two evaluations, ...).
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import math
import os
import platform
import runpy
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from importlib import metadata
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn

from common.devices import describe_device, device_record, set_tf32, tf32_enabled
from common.errors import UsageError
from common.files import atomic_write_json
from common.results import update_section

ROOT = Path(__file__).resolve().parent.parent
TOLERANCE = 1e-5  # device vs CPU in full fp32 (TF32 off), relative to the reference's scale
BF16_TOLERANCE = 3e-2  # bf16 autocast vs fp32: 8 mantissa bits, fp32 accumulation
GAME = "MsPacman"  # short games for an untrained agent (Breakout's can run to the frame cap)
STUDY_GAME = "Breakout"  # shorter games still under sampled actions: the study's report
# Lines of the emulator's start-up banner, which are no one's error message.
_BANNER = ("A.L.E: Arcade Learning Environment", "[Powered by Stella]")


@dataclass(frozen=True)
class Budget:
    """The sizes of one check: `full` for a GPU (issue #25's), `tiny` for the CPU test."""

    name: str
    a2c_steps: int  # A2C coordconv on the device, evaluated twice on the way
    a2c_envs: int | None  # None: the config's
    eval_episodes: int  # per evaluation during training
    evaluate_episodes: int  # evaluate.py, on the device and on the CPU
    a2c_resume_steps: int  # more steps on the CPU with CUDA hidden
    ppo_steps: int
    ppo_envs: int | None
    ppo_sets: tuple[str, ...]
    dqn_steps: int
    dqn_sets: tuple[str, ...]
    dqn_resume_steps: int
    study_seeds: tuple[int, ...]  # x (conv, coordconv): the Ray study's runs
    study_steps: int
    study_envs: int
    study_long: bool  # runs long enough for games to end (the report) and to overlap on a GPU
    toy_eighth: bool  # regression and rendering stop at their first check, 1/8 of the epoch
    rpn_images: tuple[int, int]  # train, val
    detection_images: tuple[int, int, int]  # train, val, batch
    classification_images: tuple[int, int, int]  # train, test, batch
    gan: tuple[int, int, float]  # images, eval samples, width
    layer_batch: int | None  # throughput: the Atari layer's batch (None: the benchmark's 256)
    layer_timing: tuple[int, int]  # rounds, iters
    rl_timing: tuple[int, int]  # agent steps per round, rounds
    a2c_timing_envs: int | None
    ppo_timing_envs: int | None
    detection_timing: tuple[int, int, int]  # batch, rounds, iters
    timeout: int  # seconds for each subprocess


# DQN: a small buffer, training early and often, epsilon 1 throughout (random play keeps the
# games short), as tests/test_value_based.py; the config's 100,000-transition buffer is 2.8 GB.
_DQN_TINY = (
    "buffer_size=1000",
    "learning_starts=50",
    "exploration_initial_eps=1",
    "exploration_final_eps=1",
    "target_update_interval=50",
)
BUDGETS = {
    "full": Budget(
        name="full",
        a2c_steps=20_000,
        a2c_envs=None,
        eval_episodes=2,
        evaluate_episodes=3,
        a2c_resume_steps=1_600,
        ppo_steps=8_192,
        ppo_envs=None,
        ppo_sets=(),
        dqn_steps=5_000,
        dqn_sets=(
            "buffer_size=6000",  # the run and its resume fit: 170 MB, saved with each model
            "learning_starts=1000",
            "target_update_interval=500",
        ),
        dqn_resume_steps=1_000,
        study_seeds=(0, 1),
        study_steps=4_000,
        study_envs=4,
        study_long=True,
        toy_eighth=False,
        rpn_images=(1_000, 200),
        detection_images=(1_000, 200, 8),
        classification_images=(2_000, 500, 64),
        gan=(5_000, 500, 1.0),
        layer_batch=None,
        layer_timing=(5, 10),
        rl_timing=(2_048, 3),
        a2c_timing_envs=None,
        ppo_timing_envs=None,
        detection_timing=(8, 3, 2),
        timeout=600,
    ),
    "tiny": Budget(
        name="tiny",
        a2c_steps=200,
        a2c_envs=2,
        eval_episodes=1,
        evaluate_episodes=1,
        a2c_resume_steps=40,
        ppo_steps=128,
        ppo_envs=2,
        ppo_sets=("n_steps=32", "batch_size=32"),
        dqn_steps=200,
        dqn_sets=_DQN_TINY,
        dqn_resume_steps=40,
        study_seeds=(0,),
        study_steps=200,
        study_envs=2,
        study_long=False,
        toy_eighth=True,
        rpn_images=(12, 6),
        detection_images=(16, 8, 8),
        classification_images=(32, 16, 16),
        gan=(32, 32, 0.125),
        layer_batch=16,
        layer_timing=(1, 2),
        rl_timing=(40, 1),
        a2c_timing_envs=2,
        ppo_timing_envs=2,
        detection_timing=(2, 1, 1),
        timeout=600,
    ),
}


@dataclass
class Context:
    """What the steps share: the device, the budget, the work folder, the runs made so far
    (by name) and the throughput rows."""

    device: torch.device
    budget: Budget
    work: Path
    runs: dict[str, Path] = field(default_factory=dict)
    rows: list[dict[str, Any]] = field(default_factory=list)

    @property
    def dev(self) -> str:
        """The device as the CLIs take it (cpu, cuda:0)."""
        return str(self.device)

    @property
    def logdir(self) -> Path:
        return self.work / "runs"


StepFunction = Callable[[Context], tuple[bool, str]]


@dataclass(frozen=True)
class Step:
    """One check: its name (for --steps), its group on the page, and the steps it needs."""

    name: str
    group: str
    run: StepFunction
    needs: tuple[str, ...] = ()


@dataclass
class StepResult:
    name: str
    group: str
    ok: bool
    detail: str
    seconds: float


# ---------------------------------------------------------------------------------------------
# Running CLIs


@dataclass
class CliRun:
    code: int
    out: str
    err: str

    def failure(self) -> str:
        """The one line that says why a CLI failed: the last line of its error output."""
        for text in (self.err, self.out):
            lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
            lines = [ln for ln in lines if not ln.startswith(_BANNER)]
            if lines:
                return f"exit {self.code}: {lines[-1][:300]}"
        return f"exit {self.code}, no output"


def cli(script: str, *args: Any) -> CliRun:
    """Run scripts/<script> in this process, as `python scripts/<script> args` would, with its
    output captured; torch's threads and TF32 setting are restored by `run_check`."""
    old_argv = sys.argv
    sys.argv = [script, *map(str, args)]
    out, err = io.StringIO(), io.StringIO()
    code = 0
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            runpy.run_path(str(ROOT / "scripts" / script), run_name="__main__")
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    finally:
        sys.argv = old_argv
    return CliRun(code, out.getvalue(), err.getvalue())


def _hidden_cuda_env() -> dict[str, str]:
    return {**os.environ, "CUDA_VISIBLE_DEVICES": ""}


def cli_without_cuda(script: str, *args: Any, timeout: int) -> CliRun:
    """Run scripts/<script> in a fresh process that sees no GPU (CUDA_VISIBLE_DEVICES="")."""
    return _subprocess([str(ROOT / "scripts" / script), *map(str, args)], timeout)


def python_without_cuda(code: str, *args: Any, timeout: int) -> CliRun:
    """Run `python -c code args` in a fresh process that sees no GPU."""
    return _subprocess(["-c", code, *map(str, args)], timeout)


def _subprocess(argv: list[str], timeout: int) -> CliRun:
    try:
        proc = subprocess.run(
            [sys.executable, *argv],
            capture_output=True,
            text=True,
            cwd=ROOT,
            env=_hidden_cuda_env(),
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return CliRun(124, "", f"timed out after {timeout} s")
    return CliRun(proc.returncode, proc.stdout, proc.stderr)


def _line(text: str, start: str) -> str:
    """The first line of `text` that starts with `start` (or contains it), else ''."""
    lines = text.splitlines()
    for line in lines:
        if line.startswith(start):
            return line.strip()
    return next((line.strip() for line in lines if start in line), "")


def _first_line(text: str) -> str:
    return next((ln.strip() for ln in text.splitlines() if ln.strip()), "")


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text())


def _recorded_device(record: dict[str, Any]) -> str | None:
    """The device a result file says its run used: eval.json holds device_record's keys at
    the top, train_result.json under "device"; None where the file records none."""
    device = record.get("device")
    if isinstance(device, dict):
        device = device.get("device")
    return device if isinstance(device, str) else None


def _device_check(ctx: Context, record: dict[str, Any], device_type: str | None = None) -> str:
    """'' if the record's device is of the expected type (or it records none), else why not."""
    want = device_type or ctx.device.type
    used = _recorded_device(record)
    if used is not None and used.split(":")[0] != want:
        return f"ran on {used}, not {want}"
    return ""


def _on(record: dict[str, Any]) -> str:
    used = _recorded_device(record)
    return f" on {used}" if used else ""


# ---------------------------------------------------------------------------------------------
# The layer


@contextlib.contextmanager
def _tf32_off() -> Iterator[None]:
    """Full fp32 on CUDA while the block runs (the comparisons with the CPU need it)."""
    before = tf32_enabled()
    set_tf32(False)
    try:
        yield
    finally:
        set_tf32(before)


def _scaled_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    """max |a - b| over max(1, max |b|): absolute for small values, relative for large ones."""
    a64, b64 = a.detach().cpu().double(), b.detach().cpu().double()
    return float((a64 - b64).abs().max() / max(1.0, float(b64.abs().max())))


def _layer_cases() -> list[tuple[str, Callable[[], nn.Module], tuple[int, ...]]]:
    from coordconv import (
        CoordConv1d,
        CoordConv2d,
        CoordConv3d,
        CoordConvTranspose1d,
        CoordConvTranspose2d,
        CoordConvTranspose3d,
    )

    return [
        ("CoordConv1d", lambda: CoordConv1d(3, 4, 3, padding=1), (2, 3, 16)),
        (
            "CoordConv2d r",
            lambda: CoordConv2d(3, 4, 3, stride=2, padding=1, with_r=True),
            (2, 3, 9, 7),
        ),
        ("CoordConv2d 1x1", lambda: CoordConv2d(3, 4, 1), (2, 3, 8, 8)),
        ("CoordConv2d Atari", lambda: CoordConv2d(4, 32, 8, stride=4), (2, 4, 84, 84)),
        ("CoordConv3d", lambda: CoordConv3d(2, 3, 3, padding=1), (2, 2, 6, 5, 4)),
        ("CoordConvTranspose1d", lambda: CoordConvTranspose1d(3, 4, 3, stride=2), (2, 3, 9)),
        (
            "CoordConvTranspose2d",
            lambda: CoordConvTranspose2d(3, 4, 4, stride=2, padding=1, with_r=True),
            (2, 3, 7, 6),
        ),
        (
            "CoordConvTranspose3d",
            lambda: CoordConvTranspose3d(2, 3, 3, stride=2, padding=1, output_padding=1),
            (2, 2, 4, 5, 3),
        ),
    ]


def check_layer_ranks(ctx: Context) -> tuple[bool, str]:
    """Every rank and the transposed layers: outputs and input, weight and bias gradients of a
    copy on the device against the CPU layer, in full fp32."""
    torch.manual_seed(0)
    worst, where, failures = 0.0, "", []
    cases = _layer_cases()
    with _tf32_off():
        for name, make, shape in cases:
            layer = make()
            on_device = copy.deepcopy(layer).to(ctx.device)
            x = torch.randn(shape, requires_grad=True)
            xd = x.detach().to(ctx.device).requires_grad_()
            y, yd = layer(x), on_device(xd)
            grad = torch.randn_like(y)
            y.backward(grad)
            yd.backward(grad.to(ctx.device))
            pairs = {
                "output": (yd, y),
                "input grad": (xd.grad, x.grad),
                "weight grad": (on_device.weight.grad, layer.weight.grad),
                "bias grad": (on_device.bias.grad, layer.bias.grad),
            }
            for part, (got, want) in pairs.items():
                diff = _scaled_diff(got, want)
                if diff > worst:
                    worst, where = diff, f"{name} {part}"
                if not diff <= TOLERANCE:  # NaN fails too
                    failures.append(f"{name} {part} {diff:.1e}")
    if failures:
        return False, f"over {TOLERANCE:g}: " + ", ".join(failures)
    return True, (
        f"{len(cases)} layers (1d, 2d, 3d, transposed, with_r, 1x1): outputs and input, weight, "
        f"bias gradients within {TOLERANCE:g} of the CPU "
        + (f"(largest {worst:.1e}, {where})" if where else "(all equal)")
    )


def check_eval_cache(ctx: Context) -> tuple[bool, str]:
    """In eval mode under no_grad the cached coordinate term gives identical outputs on every
    call, equal to training mode's, and an in-place weight update refreshes it."""
    from coordconv import CoordConv2d, CoordConvTranspose2d

    torch.manual_seed(1)
    cases = {
        "CoordConv2d": (CoordConv2d(3, 8, 3, padding=1), (4, 3, 16, 16)),
        "CoordConv2d 1x1": (CoordConv2d(3, 8, 1), (4, 3, 16, 16)),
        "CoordConvTranspose2d": (CoordConvTranspose2d(3, 8, 4, stride=2, padding=1), (4, 3, 8, 8)),
    }
    failures, worst = [], 0.0
    with _tf32_off():
        for name, (layer, shape) in cases.items():
            layer = layer.to(ctx.device)
            x = torch.randn(shape, device=ctx.device)
            trained = layer.train()(x).detach()
            layer.eval()
            with torch.no_grad():
                first, second = layer(x), layer(x)
                layer.weight.mul_(1.5)  # an optimizer step's kind of write: a new version
                updated = layer(x)
            fresh = layer.train()(x).detach()
            diffs = (_scaled_diff(first, trained), _scaled_diff(updated, fresh))
            worst = max(worst, *diffs)
            if not torch.equal(first, second):
                failures.append(f"{name}: two eval calls differ")
            if not max(diffs) <= TOLERANCE:
                failures.append(
                    f"{name}: eval vs train {diffs[0]:.1e}, after update {diffs[1]:.1e}"
                )
            if torch.equal(updated, first):
                failures.append(f"{name}: a stale cached term after a weight update")
    if failures:
        return False, "; ".join(failures)
    return True, (
        f"{len(cases)} layers: repeated eval calls identical, equal to train mode (largest "
        f"{worst:.1e}), refreshed after an in-place weight update"
    )


def check_bf16(ctx: Context) -> tuple[bool, str]:
    """Forward and backward under bf16 autocast on the device run, give finite gradients and
    outputs close to fp32's; the output's dtype is compared with the plain torch layer's."""
    from coordconv import CoordConv2d, CoordConvTranspose2d

    torch.manual_seed(2)
    cases = {
        "CoordConv2d Atari": (
            CoordConv2d(4, 32, 8, stride=4),
            nn.Conv2d(4, 32, 8, stride=4),
            (8, 4, 84, 84),
        ),
        "CoordConvTranspose2d": (
            CoordConvTranspose2d(8, 4, 4, stride=2, padding=1),
            nn.ConvTranspose2d(8, 4, 4, stride=2, padding=1),
            (4, 8, 16, 16),
        ),
    }
    failures, notes, worst = [], [], 0.0
    for name, (layer, plain, shape) in cases.items():
        layer, plain = layer.to(ctx.device), plain.to(ctx.device)
        x = torch.rand(shape, device=ctx.device)
        with torch.no_grad(), _tf32_off():
            reference = layer(x)
        with torch.autocast(ctx.device.type, dtype=torch.bfloat16):
            y = layer(x)
            with torch.no_grad():
                plain_dtype = plain(x).dtype
        y.float().square().mean().backward()
        diff = _scaled_diff(y.float(), reference)
        worst = max(worst, diff)
        if y.dtype != plain_dtype:
            # Not wrong (fp32 is the more precise), but not what the torch layer does.
            notes.append(f"{name} gives {y.dtype}, {type(plain).__name__} {plain_dtype}")
        if not all(bool(p.grad.isfinite().all()) for p in layer.parameters()):
            failures.append(f"{name}: non-finite gradients")
        if not diff <= BF16_TOLERANCE:
            failures.append(f"{name}: {diff:.1e} from fp32")
    note = f"; note: {'; '.join(notes)}" if notes else "; output dtypes as torch's layers"
    if failures:
        return False, "; ".join(failures) + note
    return True, (
        f"{len(cases)} layers: within {BF16_TOLERANCE:g} of fp32 (largest {worst:.1e}), finite "
        f"gradients{note}"
    )


def check_coordconvify(ctx: Context) -> tuple[bool, str]:
    """`coordconvify(net, "all")` on the device computes the net's outputs bit for bit, in
    training mode and in eval mode under no_grad."""
    from coordconv import CoordConv2d, coordconvify

    torch.manual_seed(3)
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 16, 3, stride=2), nn.ReLU(),
        nn.Conv2d(16, 4, 1),
    ).to(ctx.device)  # fmt: skip
    x = torch.randn(4, 3, 20, 20, device=ctx.device)
    with _tf32_off():
        converted = coordconvify(copy.deepcopy(net), "all")
        same_train = torch.equal(converted(x), net(x))
        with torch.no_grad():
            same_eval = torch.equal(converted.eval()(x), net.eval()(x))
    count = sum(isinstance(m, CoordConv2d) for m in converted.modules())
    ok = count == 3 and same_train and same_eval
    return ok, (
        f"{count} of 3 convolutions converted; outputs bit for bit equal: train mode "
        f"{'yes' if same_train else 'NO'}, eval under no_grad {'yes' if same_eval else 'NO'}"
    )


def check_paired_start(ctx: Context) -> tuple[bool, str]:
    """A2C agents of one seed with conv, coordconv and coordconv-all extractors give equal
    action logits and values on the same observation, on the device."""
    from stable_baselines3 import A2C

    from envs.atari import make_atari_vec_env
    from policies.registry import policy_kwargs_for

    env = make_atari_vec_env(GAME, 1, seed=0)
    outputs = {}
    try:
        obs = env.reset()
        with _tf32_off():
            for name in ("conv", "coordconv", "coordconv-all"):
                model = A2C(
                    "CnnPolicy", env, policy_kwargs=policy_kwargs_for(name), seed=3,
                    device=ctx.dev,
                )  # fmt: skip
                if model.device.type != ctx.device.type:
                    return False, f"{name} agent built on {model.device}, not {ctx.device}"
                tensor, _ = model.policy.obs_to_tensor(obs)
                with torch.no_grad():
                    logits = model.policy.get_distribution(tensor).distribution.logits
                    values = model.policy.predict_values(tensor)
                outputs[name] = torch.cat([logits, values], dim=1)
    finally:
        env.close()
    diffs = {name: _scaled_diff(outputs[name], outputs["conv"]) for name in outputs}
    ok = all(d <= TOLERANCE for d in diffs.values())
    return ok, (
        "seed 3, one Ms. Pac-Man frame: logits and value of coordconv vs conv "
        f"{diffs['coordconv']:.1e}, coordconv-all vs conv {diffs['coordconv-all']:.1e} "
        f"(tolerance {TOLERANCE:g})"
    )


# ---------------------------------------------------------------------------------------------
# Atari


def _envs_flag(n: int | None) -> list[Any]:
    return [] if n is None else ["--n-envs", n]


def _sets(sets: tuple[str, ...]) -> list[str]:
    return [a for s in sets for a in ("--set", s)]


def _finished(run: CliRun) -> str:
    return _line(run.out, "finished:").split("; run folder")[0]


def train_a2c(ctx: Context) -> tuple[bool, str]:
    """A2C coordconv on the device, evaluated twice on the way, checkpointed."""
    b = ctx.budget
    half = b.a2c_steps // 2
    run = cli(
        "train_atari.py", "--env", GAME, "--algo", "a2c", "--extractor", "coordconv",
        "--timesteps", b.a2c_steps, *_envs_flag(b.a2c_envs), "--eval-freq", half,
        "--eval-episodes", b.eval_episodes, "--checkpoint-freq", half, "--device", ctx.dev,
        "--seed", 0, "--logdir", ctx.logdir, "--run-name", "a2c_coordconv", "--no-progress",
    )  # fmt: skip
    if run.code != 0:
        return False, run.failure()
    run_dir = ctx.logdir / GAME / "a2c_coordconv"
    ctx.runs["a2c"] = run_dir
    evaluations = _read_json(run_dir / "evaluations.json")
    result = _read_json(run_dir / "train_result.json")
    where = _device_check(ctx, result)
    at = [e["timesteps"] for e in evaluations]
    returns = ", ".join(f"{e['mean_reward']:.0f}" for e in evaluations)
    ok = len(evaluations) == 2 and (run_dir / "model.zip").is_file() and not where
    return ok, (
        f"{_finished(run)}{_on(result)}; evaluations at {at} steps (mean return {returns})"
        + (f"; {where}" if where else "")
    )


def load_a2c_without_cuda(ctx: Context) -> tuple[bool, str]:
    """The saved model loads with plain `A2C.load` in a process that sees no GPU."""
    model = ctx.runs["a2c"] / "model.zip"
    code = (
        "import sys, torch; from stable_baselines3 import A2C; m = A2C.load(sys.argv[1]); "
        "print(m.device, type(m.policy.features_extractor.cnn[0]).__name__, m.num_timesteps, "
        "torch.cuda.is_available())"
    )
    run = python_without_cuda(code, model, timeout=ctx.budget.timeout)
    if run.code != 0:
        return False, run.failure()
    got = run.out.strip().splitlines()[-1] if run.out.strip() else ""
    want = f"cpu CoordConv2d {ctx.budget.a2c_steps} False"
    return got == want, (
        f"CUDA hidden: A2C.load -> device, first layer, steps, CUDA available = {got!r}"
        + ("" if got == want else f", expected {want!r}")
    )


def _evaluate(ctx: Context, device: str) -> tuple[bool, str]:
    run_dir = ctx.runs["a2c"]
    run = cli(
        "evaluate.py", run_dir, "--episodes", ctx.budget.evaluate_episodes, "--checkpoint",
        "final", "--device", device, "--seed", 0,
    )  # fmt: skip
    if run.code != 0:
        return False, run.failure()
    result = _read_json(run_dir / "eval.json")
    where = _device_check(ctx, result, torch.device(device).type)
    line = _first_line(run.out).split(": ", 1)[-1]
    return not where, f"{line}{_on(result)}" + (f"; {where}" if where else "")


def evaluate_on_device(ctx: Context) -> tuple[bool, str]:
    """evaluate.py plays full games with the saved agent on the device."""
    return _evaluate(ctx, ctx.dev)


def evaluate_on_cpu(ctx: Context) -> tuple[bool, str]:
    """evaluate.py plays the same agent on the CPU."""
    return _evaluate(ctx, "cpu")


def export_a2c_onnx(ctx: Context) -> tuple[bool, str]:
    """export_run.py --to onnx, checked against the PyTorch policy with onnxruntime."""
    out = ctx.work / "a2c_coordconv.onnx"
    run = cli("export_run.py", ctx.runs["a2c"], "--to", "onnx", out, "--checkpoint", "final")
    if run.code != 0:
        return False, run.failure()
    line = _line(run.out, "onnxruntime vs PyTorch")
    return out.is_file() and bool(line), line or "no onnxruntime check in the output"


def _resume_on_cpu(ctx: Context, run_dir: Path, total: int) -> tuple[CliRun, dict, str, str]:
    """train_atari.py --resume RUN_DIR to `total` steps on the CPU, in a process that sees no
    GPU: the run, its train_result.json, its finished line and any device mismatch."""
    run = cli_without_cuda(
        "train_atari.py", "--resume", run_dir, "--timesteps", total, "--device", "cpu",
        "--no-progress", timeout=ctx.budget.timeout,
    )  # fmt: skip
    if run.code != 0:
        return run, {}, "", ""
    result = _read_json(run_dir / "train_result.json")
    return run, result, _finished(run), _device_check(ctx, result, "cpu")


def resume_a2c_on_cpu(ctx: Context) -> tuple[bool, str]:
    """train_atari.py --resume on the CPU, in a process that sees no GPU."""
    b = ctx.budget
    total = b.a2c_steps + b.a2c_resume_steps
    run, result, line, where = _resume_on_cpu(ctx, ctx.runs["a2c"], total)
    if run.code != 0:
        return False, run.failure()
    ok = line.startswith(f"finished: {total} steps ({b.a2c_resume_steps} since the resume)")
    return ok and not where, f"CUDA hidden: {line}{_on(result)}" + (f"; {where}" if where else "")


def train_ppo_bf16(ctx: Context) -> tuple[bool, str]:
    """PPO coordconv with the radius channel in bf16 on the device."""
    from stable_baselines3 import PPO

    b = ctx.budget
    run = cli(
        "train_atari.py", "--env", GAME, "--algo", "ppo", "--extractor", "coordconv",
        "--with-r", "--precision", "bf16", "--timesteps", b.ppo_steps,
        *_envs_flag(b.ppo_envs), *_sets(b.ppo_sets), "--eval-freq", 0, "--checkpoint-freq", 0,
        "--device", ctx.dev, "--seed", 0, "--logdir", ctx.logdir, "--run-name", "ppo_bf16_r",
        "--no-progress",
    )  # fmt: skip
    if run.code != 0:
        return False, run.failure()
    run_dir = ctx.logdir / GAME / "ppo_bf16_r"
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    result = _read_json(run_dir / "train_result.json")
    first = PPO.load(run_dir / "model.zip", device="cpu").policy.features_extractor.cnn[0]
    shape = "x".join(map(str, first.weight.shape))
    where = _device_check(ctx, result)
    ok = (
        config["precision"] == "bf16"
        and config["with_r"] is True
        and first.weight.shape[1] == 4 + 3
        and not where
    )
    return ok, (
        f"{_finished(run)}{_on(result)}; precision {config['precision']}, first layer weight "
        f"{shape} (4 frames + x, y, r)" + (f"; {where}" if where else "")
    )


def train_dqn_buffer(ctx: Context) -> tuple[bool, str]:
    """DQN coordconv on the device that saves its replay buffer with its models."""
    b = ctx.budget
    run = cli(
        "train_atari.py", "--env", GAME, "--algo", "dqn", "--extractor", "coordconv",
        "--timesteps", b.dqn_steps, *_sets(b.dqn_sets), "--save-replay-buffer",
        "--checkpoint-freq", b.dqn_steps // 2, "--eval-freq", 0, "--device", ctx.dev,
        "--seed", 0, "--logdir", ctx.logdir, "--run-name", "dqn_buffer", "--no-progress",
    )  # fmt: skip
    if run.code != 0:
        return False, run.failure()
    run_dir = ctx.logdir / GAME / "dqn_buffer"
    ctx.runs["dqn"] = run_dir
    buffer = run_dir / f"replay_buffer_{b.dqn_steps}_steps.pkl"
    result = _read_json(run_dir / "train_result.json")
    where = _device_check(ctx, result)
    size = buffer.stat().st_size / 2**20 if buffer.is_file() else 0
    return buffer.is_file() and not where, (
        f"{_finished(run)}{_on(result)}; {buffer.name} "
        + (f"({size:.1f} MiB)" if size else "missing")
        + (f"; {where}" if where else "")
    )


def resume_dqn_on_cpu(ctx: Context) -> tuple[bool, str]:
    """The DQN run resumes on the CPU, in a process that sees no GPU, with its saved buffer."""
    b = ctx.budget
    total = b.dqn_steps + b.dqn_resume_steps
    run_dir = ctx.runs["dqn"]
    run, result, line, where = _resume_on_cpu(ctx, run_dir, total)
    if run.code != 0:
        return False, run.failure()
    resumed = _line(run.err, "resumed with the saved replay buffer")
    ok = (
        f"{b.dqn_steps} transitions" in resumed
        and line.startswith(f"finished: {total} steps")
        and (run_dir / f"replay_buffer_{total}_steps.pkl").is_file()
        and not where
    )
    return ok, (
        f"CUDA hidden: {resumed or 'no saved buffer restored'}; {line}{_on(result)}"
        + (f"; {where}" if where else "")
    )


# ---------------------------------------------------------------------------------------------
# Ray


class _GpuWatch:
    """The most processes other than this one that hold a context on the GPU at once, from
    nvidia-smi polled while the block runs; None where nvidia-smi cannot tell (absent, or in a
    container whose PID namespace hides processes: then it never lists this one either)."""

    def __init__(self, device: torch.device) -> None:
        self.smi = shutil.which("nvidia-smi") if device.type == "cuda" else None
        if self.smi:
            torch.empty(1, device=device)  # this process's own context: the calibration
        self._most, self._seen_self = 0, False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    @property
    def most(self) -> int | None:
        return self._most if self._seen_self else None

    def _poll(self) -> None:
        query = [self.smi, "--query-compute-apps=pid", "--format=csv,noheader"]
        while not self._stop.wait(0.5):
            try:
                out = subprocess.run(query, capture_output=True, text=True, timeout=10).stdout
            except (OSError, subprocess.SubprocessError):
                continue
            pids = {p.strip() for p in out.splitlines() if p.strip().isdigit()}
            self._seen_self |= str(os.getpid()) in pids
            pids.discard(str(os.getpid()))
            self._most = max(self._most, len(pids))

    def __enter__(self) -> _GpuWatch:
        if self.smi:
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self.smi:
            self._thread.join()


def most_at_once(spans: list[tuple[float, float]]) -> int:
    """The most (start, end) spans that overlap at one moment (touching ends do not)."""
    events = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])
    now = most = 0
    for _, step in events:
        now += step
        most = max(most, now)
    return most


def run_ray_study(ctx: Context) -> tuple[bool, str]:
    """scripts/study.py on a local Ray: conv and coordconv A2C runs with gpus_per_run 0.25 on a
    GPU (four share it), 0 on a CPU machine (Ray has no GPU to give there)."""
    b = ctx.budget
    cuda = ctx.device.type == "cuda"
    folder = ctx.work / "study"
    folder.mkdir(parents=True, exist_ok=True)
    spec = {
        "games": [STUDY_GAME],
        "algos": ["a2c"],
        "extractors": ["conv", "coordconv"],
        "with_r": [False],
        "seeds": list(b.study_seeds),
        "timesteps": b.study_steps,
        "set": [f"n_envs={b.study_envs}"],
        "eval_freq": 0,
        "cpus_per_run": 1,
        "gpus_per_run": 0.25 if cuda else 0,
        "checkpoint_freq": b.study_steps,
    }
    spec_path = folder / "gpu_check.yaml"
    spec_path.write_text(yaml.safe_dump(spec))
    logdir = folder / "runs"
    argv = [str(ROOT / "scripts" / "study.py"), spec_path, "--logdir", logdir, "--no-progress"]
    with _GpuWatch(ctx.device) as watch:
        proc = subprocess.Popen(
            [sys.executable, *map(str, argv)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        try:
            out, err = proc.communicate(timeout=b.timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            return False, f"timed out after {b.timeout} s (a GPU that Ray does not see?)"
    if proc.returncode != 0:
        return False, CliRun(proc.returncode, out, err).failure()
    paths = sorted((logdir / STUDY_GAME).glob("*/train_result.json"))
    results = [_read_json(p) for p in paths]
    want = 2 * len(b.study_seeds)
    finished = sum(r["status"] == "finished" for r in results)
    wrong = sorted({w for r in results if (w := _device_check(ctx, r))})
    devices = sorted({d for r in results if (d := _recorded_device(r))})
    # Each run's training ended when it wrote its result and took `seconds`.
    ends = [p.stat().st_mtime for p in paths]
    spans = [(end - r["seconds"], end) for end, r in zip(ends, results, strict=True)]
    together = most_at_once(spans)
    report = (logdir / "report" / "study.md").is_file()
    if report:
        reported = "report written"
    else:
        # A tiny run's games have not ended yet: study.py says so and writes no report.
        reported = "no report yet" if "no report yet" in err else "no report"
    # Tiny runs may end before the next has started: only long ones must overlap.
    ok = (
        finished == want
        and not wrong
        and (report or not b.study_long)
        and (together >= min(2, want) or not b.study_long)
    )
    seen = ""
    if watch.most is not None:
        seen = f"; nvidia-smi saw up to {watch.most} of them on the GPU at once"
    return ok, (
        f"{finished} of {want} runs finished (gpus_per_run {spec['gpus_per_run']}"
        + (f", on {', '.join(devices)}" if devices else "")
        + f"), up to {together} training at once{seen}; {reported}"
        + (f"; {'; '.join(wrong)}" if wrong else "")
    )


# ---------------------------------------------------------------------------------------------
# Supervised pipelines


def _toy(
    ctx: Context, task: str, passed: Callable[[dict[str, Any]], bool], *extra: Any
) -> tuple[bool, str]:
    """One toy run of at most an epoch; ok if it ran on the device and `passed(results)`."""
    out = ctx.work / "toy" / task
    run = cli(
        "train_toy.py", "--task", task, "--epochs", 1, *extra, "--device", ctx.dev, "--seed", 0,
        "--no-progress", "--out", out,
    )  # fmt: skip
    if run.code != 0:
        return False, run.failure()
    result = _read_json(out / "results.json")
    where = _device_check(ctx, result)
    detail = _first_line(run.out).split("; /")[0] + (f"; {where}" if where else "")
    return passed(result) and not where, detail


def _eighth(ctx: Context, reached: float) -> list[Any]:
    """Flags that stop a toy run at its first check, an eighth into the epoch (a target that
    any model meets), under the tiny budget."""
    return ["--checks-per-epoch", 8, "--target", reached] if ctx.budget.toy_eighth else []


def toy_classification(ctx: Context) -> tuple[bool, str]:
    """Toy classification, one epoch at most: CoordConv must still reach 100% test accuracy."""
    return _toy(ctx, "classification", lambda r: r["test"]["accuracy"] == 1.0)


def toy_regression(ctx: Context) -> tuple[bool, str]:
    """Toy regression, one epoch (an eighth under the tiny budget)."""
    return _toy(
        ctx, "regression", lambda r: math.isfinite(r["test"]["pixel_distance"]), *_eighth(ctx, 1000)
    )


def toy_rendering(ctx: Context) -> tuple[bool, str]:
    """Toy rendering, one epoch (an eighth under the tiny budget)."""
    return _toy(ctx, "rendering", lambda r: math.isfinite(r["test"]["iou"]), *_eighth(ctx, 0))


def _supervised(ctx: Context, script: str, out: Path, *args: Any) -> tuple[bool, str]:
    run = cli(script, *args, "--device", ctx.dev, "--no-progress", "--out", out)
    if run.code != 0:
        return False, run.failure()
    result = _read_json(out / "results.json")
    where = _device_check(ctx, result)
    return not where, _first_line(run.out).split("; /")[0] + (f"; {where}" if where else "")


def detection_rpn(ctx: Context) -> tuple[bool, str]:
    """The region-proposal network alone (the paper's detection experiment), one epoch."""
    train, val = ctx.budget.rpn_images
    return _supervised(
        ctx, "train_detection.py", ctx.work / "detection" / "rpn", "--stage", "rpn", "--model",
        "coordconv", "--coord-range", "0,1", "--epochs", 1, "--train-images", train,
        "--val-images", val, "--visualize", 2, "--seed", 0,
    )  # fmt: skip


def detection_full(ctx: Context) -> tuple[bool, str]:
    """torchvision's Faster R-CNN with a CoordConv backbone, one epoch."""
    train, val, batch = ctx.budget.detection_images
    return _supervised(
        ctx, "train_detection.py", ctx.work / "detection" / "full", "--model", "coordconv",
        "--epochs", 1, "--train-images", train, "--val-images", val, "--batch-size", batch,
        "--visualize", 2, "--seed", 0,
    )  # fmt: skip


def classification(ctx: Context) -> tuple[bool, str]:
    """The canvas classifier with CoordConv, one epoch."""
    train, test, batch = ctx.budget.classification_images
    return _supervised(
        ctx, "train_classification.py", ctx.work / "classification", "--dataset", "canvas",
        "--variant", "coordconv", "--epochs", 1, "--train-images", train, "--test-images", test,
        "--batch-size", batch, "--seed", 0,
    )  # fmt: skip


def gan(ctx: Context) -> tuple[bool, str]:
    """The CoordConv GAN on the Clevr-like shapes, one epoch."""
    images, samples, width = ctx.budget.gan
    return _supervised(
        ctx, "train_gan.py", ctx.work / "gan", "--data", "clevr", "--model", "coordconv",
        "--epochs", 1, "--images", images, "--eval-samples", samples, "--width", width,
        "--seed", 0,
    )  # fmt: skip


# ---------------------------------------------------------------------------------------------
# Throughput: the existing harnesses, on the device and on this machine's CPU


def _both(ctx: Context, measure: Callable[[torch.device], float]) -> tuple[float, float]:
    """`measure` on the device and on the CPU; on a CPU run, once (the ratio is 1)."""
    on_device = measure(ctx.device)
    on_cpu = on_device if ctx.device.type == "cpu" else measure(torch.device("cpu"))
    return on_device, on_cpu


def _row(ctx: Context, measure: str, unit: str, on_device: float, on_cpu: float) -> str:
    ratio = on_device / on_cpu if on_cpu > 0 else math.nan
    ctx.rows.append(
        {"measure": measure, "unit": unit, "device": on_device, "cpu": on_cpu, "ratio": ratio}
    )
    return f"{measure}: {on_device:,.1f} vs {on_cpu:,.1f} {unit} on the CPU ({ratio:.2f}x)"


def throughput_layer(ctx: Context) -> tuple[bool, str]:
    """CoordConv2d on the Atari first layer (benchmarks/layers.py): training steps and eval
    forwards per second."""
    from benchmarks.layers import CASES, time_case

    b = ctx.budget
    case = CASES[0] if b.layer_batch is None else replace(CASES[0], batch=b.layer_batch)
    rounds, iters = b.layer_timing
    details = []
    for mode, what in (("train", "forward+backward"), ("forward", "eval forward")):

        def rate(device: torch.device, mode: str = mode) -> float:
            return 1000 / time_case(case, device, rounds, iters, 0, mode)["coordconv_ms"]

        on_device, on_cpu = _both(ctx, rate)
        name = f"CoordConv2d {what}, Atari first layer, batch {case.batch}"
        details.append(_row(ctx, name, "steps/s", on_device, on_cpu))
    return True, "; ".join(details)


def _rl_rate(ctx: Context, algo: str, n_envs: int | None) -> tuple[bool, str]:
    from benchmarks.train import VARIANTS, measure

    steps, rounds = ctx.budget.rl_timing
    variant = "coordconv-ale"  # what train_atari.py runs: ale-py's vector env, fp32

    def rate(device: torch.device) -> float:
        row = measure(
            algo, GAME, steps, rounds, str(device), n_envs, 0,
            variants={variant: VARIANTS[variant]},
        )  # fmt: skip
        return row["steps_per_second"][variant]

    on_device, on_cpu = _both(ctx, rate)
    envs = f"{n_envs} envs" if n_envs else "the config's envs"
    name = f"{algo.upper()} coordconv training, {envs}"
    return True, _row(ctx, name, "agent steps/s", on_device, on_cpu)


def throughput_a2c(ctx: Context) -> tuple[bool, str]:
    """A2C training steps per second (benchmarks/train.py), emulator included."""
    return _rl_rate(ctx, "a2c", ctx.budget.a2c_timing_envs)


def throughput_ppo(ctx: Context) -> tuple[bool, str]:
    """PPO training steps per second (benchmarks/train.py), emulator included."""
    return _rl_rate(ctx, "ppo", ctx.budget.ppo_timing_envs)


def throughput_detection(ctx: Context) -> tuple[bool, str]:
    """Faster R-CNN CoordConv training steps per second (benchmarks/detection.py), with the
    RoIAlign the detector runs on each device."""
    from benchmarks.detection import time_steps

    batch, rounds, iters = ctx.budget.detection_timing

    def rate(device: torch.device) -> float:
        row = time_steps("coordconv", device, batch, rounds, iters)
        # The detector pools with the separable op on the CPU, torchvision's own on CUDA.
        pooler = row.get("detector_pooler", "separable" if device.type == "cpu" else "torchvision")
        return 1000 / row[f"{pooler}_ms"]

    on_device, on_cpu = _both(ctx, rate)
    name = f"Faster R-CNN coordconv training, batch {batch}"
    return True, _row(ctx, name, "steps/s", on_device, on_cpu)


# ---------------------------------------------------------------------------------------------
# The check


STEPS: tuple[Step, ...] = (
    Step("layer-ranks", "layer", check_layer_ranks),
    Step("eval-cache", "layer", check_eval_cache),
    Step("bf16-autocast", "layer", check_bf16),
    Step("coordconvify", "layer", check_coordconvify),
    Step("paired-start", "layer", check_paired_start),
    Step("a2c-train", "atari", train_a2c),
    Step("a2c-plain-load", "atari", load_a2c_without_cuda, ("a2c-train",)),
    Step("a2c-evaluate-device", "atari", evaluate_on_device, ("a2c-train",)),
    Step("a2c-evaluate-cpu", "atari", evaluate_on_cpu, ("a2c-train",)),
    Step("a2c-onnx", "atari", export_a2c_onnx, ("a2c-train",)),
    Step("a2c-resume-cpu", "atari", resume_a2c_on_cpu, ("a2c-train",)),
    Step("ppo-bf16-r", "atari", train_ppo_bf16),
    Step("dqn-replay-buffer", "atari", train_dqn_buffer),
    Step("dqn-resume-cpu", "atari", resume_dqn_on_cpu, ("dqn-replay-buffer",)),
    Step("ray-study", "ray", run_ray_study),
    Step("toy-classification", "supervised", toy_classification),
    Step("toy-regression", "supervised", toy_regression),
    Step("toy-rendering", "supervised", toy_rendering),
    Step("detection-rpn", "supervised", detection_rpn),
    Step("detection-full", "supervised", detection_full),
    Step("classification", "supervised", classification),
    Step("gan", "supervised", gan),
    Step("throughput-layer", "throughput", throughput_layer),
    Step("throughput-a2c", "throughput", throughput_a2c),
    Step("throughput-ppo", "throughput", throughput_ppo),
    Step("throughput-detection", "throughput", throughput_detection),
)
STEP_NAMES = tuple(s.name for s in STEPS)


def select_steps(names: str | None) -> list[str]:
    """The steps a comma list asks for, with the steps they need, in check order; all for
    None. UsageError naming an unknown step."""
    if names is None:
        return list(STEP_NAMES)
    asked = [n.strip() for n in names.split(",") if n.strip()]
    if not asked:
        raise UsageError(f"--steps names no step; valid: {', '.join(STEP_NAMES)}")
    for name in asked:
        if name not in STEP_NAMES:
            raise UsageError(f"unknown step {name!r}; valid: {', '.join(STEP_NAMES)}")
    by_name = {s.name: s for s in STEPS}
    wanted = set(asked)
    for name in asked:
        wanted |= set(by_name[name].needs)
    return [n for n in STEP_NAMES if n in wanted]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return f"{type(err).__name__}: {text}"[:400] if text else type(err).__name__


def run_step(step: Step, ctx: Context) -> StepResult:
    """Run one step, timed with CUDA synchronised; an exception fails the step, not the check.
    Torch's threads and TF32 setting are restored afterwards (CLIs run in this process set
    them)."""
    threads, tf32 = torch.get_num_threads(), tf32_enabled()
    _sync(ctx.device)
    start = time.perf_counter()
    try:
        ok, detail = step.run(ctx)
    except Exception as err:  # a failed step is recorded and the check goes on
        ok, detail = False, _one_line(err)
    try:
        _sync(ctx.device)
    except Exception as err:  # an asynchronous CUDA error surfaces here
        ok, detail = False, f"{detail}; then {_one_line(err)}"
    seconds = time.perf_counter() - start
    torch.set_num_threads(threads)
    set_tf32(tf32)
    return StepResult(step.name, step.group, bool(ok), " ".join(detail.split()), seconds)


def run_check(
    device: torch.device,
    budget: Budget,
    work: Path,
    names: list[str] | None = None,
    report: Callable[[StepResult], None] = lambda r: None,
) -> tuple[list[StepResult], list[dict[str, Any]]]:
    """Run the chosen steps (all by default) in order in `work`; return their results and the
    throughput rows. A step whose prerequisite failed is recorded as failed, not run."""
    ctx = Context(device, budget, Path(work))
    ctx.work.mkdir(parents=True, exist_ok=True)
    chosen = set(names or STEP_NAMES)
    results: dict[str, StepResult] = {}
    for step in STEPS:
        if step.name not in chosen:
            continue
        failed = [n for n in step.needs if n in results and not results[n].ok]
        if failed:
            why = f"not run: {', '.join(failed)} failed"
            result = StepResult(step.name, step.group, False, why, 0.0)
        else:
            result = run_step(step, ctx)
        results[step.name] = result
        report(result)
    return list(results.values()), ctx.rows


# ---------------------------------------------------------------------------------------------
# The page


def versions() -> dict[str, str | None]:
    """Python and the libraries the check exercises, with torch's CUDA and cuDNN."""
    out: dict[str, str | None] = {"python": platform.python_version(), "torch": torch.__version__}
    for name in ("torchvision", "stable-baselines3", "sb3-contrib", "gymnasium",
                 "ale-py", "ray", "onnx", "onnxruntime", "numpy"):  # fmt: skip
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    out["CUDA (torch's build)"] = torch.version.cuda
    cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    out["cuDNN"] = str(cudnn) if cudnn else None
    return out


def preamble(has_gpu_section: bool) -> str:
    """The page's top: what the check does, and whether it has run on a GPU yet."""
    status = (
        "It has run on a GPU: see the `cuda` section below."
        if has_gpu_section
        else "**It has not yet run on a GPU.** The only section below is the CPU one, from\n"
        "`python scripts/gpu_check.py --device cpu --budget tiny` (the form the test suite runs,\n"
        "so that the check cannot rot). On a machine with a GPU, run\n"
        "`python scripts/gpu_check.py --device cuda` (budget `full`; the goal is under 8 minutes\n"
        "on one H100): it adds a `cuda` section beside the CPU one."
    )
    return f"""# GPU check: every pipeline end to end on one device

{status}

`scripts/gpu_check.py --device DEVICE` proves in one run that every pipeline works on DEVICE,
and writes a section for it here (with the raw results in `gpu_<device type>.json`):
- the layer: CoordConv1d/2d/3d and CoordConvTranspose1d/2d/3d on the device against the CPU,
  outputs and gradients within 1e-5 with TF32 off; the eval-mode cache; bf16 autocast;
  `coordconvify` bit for bit; the paired start (conv, coordconv and coordconv-all A2C agents
  of one seed give equal logits);
- Atari: A2C coordconv trained on the device with two evaluations; loaded with plain
  `A2C.load` in a process where CUDA is hidden; evaluated on the device and on the CPU;
  exported to ONNX and checked with onnxruntime; resumed on the CPU with CUDA hidden; PPO
  `--precision bf16 --with-r`; DQN with `--save-replay-buffer`, resumed on the CPU with its
  buffer;
- a Ray study (`scripts/study.py`) with `gpus_per_run: 0.25`, so that several runs share the
  GPU (0 on a CPU machine, where Ray has no GPU to give);
- one short epoch of each toy task (classification must still reach 100% test accuracy), both
  detection stages (the RPN alone and Faster R-CNN), the canvas classifier and the GAN;
- throughput of the device against this machine's CPU, measured in the same run by the
  existing harnesses (benchmarks/layers.py, train.py, detection.py): medians over timed rounds,
  warm-up excluded, CUDA synchronised around each timing. On a CPU run the two columns are one
  measurement (ratio 1): the row proves the path runs.

Each step's time is wall-clock seconds with CUDA synchronised. A failed step is recorded with
its one-line error and the check goes on; the script exits 1 if any step failed. `--budget
tiny` is the test suite's size (a few hundred agent steps, a few images), `full` issue #25's
(20,000 A2C steps on the device, ...): benchmarks/gpu_check.py holds both. A tiny run on a
CPU shows that each path runs; its times (a few hundred steps, on a machine others share) say
nothing about speed.
"""


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def section_body(
    device: torch.device,
    budget: str,
    command: str,
    results: list[StepResult],
    rows: list[dict[str, Any]],
    seconds: float,
) -> str:
    """The device's section: machine, versions, TF32, command, the steps, the throughput."""
    passed = sum(r.ok for r in results)
    v = versions()
    libs = ", ".join(f"{k} {val}" for k, val in v.items() if val is not None)
    tf32 = "on" if tf32_enabled() and device.type == "cuda" else "off"
    lines = [
        f"Machine: {describe_device(device)}.",
        f"Versions: {libs}.",
        f"TF32: {tf32} for the throughput rows (the layer comparisons run with it off, the "
        f"trainers with their default, off). Budget: {budget}. "
        f"{passed} of {len(results)} steps passed in {seconds:.0f} s.",
        f"Command: `{command}`",
        "",
        "| step | result | detail | seconds |",
        "|---|---|---|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r.name} | {'pass' if r.ok else '**FAIL**'} | {_cell(r.detail)} | {r.seconds:.1f} |"
        )
    if rows:
        lines += [
            "",
            f"Throughput, {device} against this machine's CPU in the same run:",
            "",
            f"| measure | unit | {device} | CPU | {device} / CPU |",
            "|---|---|---:|---:|---:|",
        ]
        for row in rows:
            lines.append(
                f"| {_cell(row['measure'])} | {row['unit']} | {row['device']:,.1f} "
                f"| {row['cpu']:,.1f} | {row['ratio']:.2f} |"
            )
    return "\n".join(lines) + "\n"


def write_page(
    out: str | os.PathLike,
    device: torch.device,
    budget: str,
    command: str,
    results: list[StepResult],
    rows: list[dict[str, Any]],
    seconds: float,
) -> Path:
    """This device's section of the page at `out` (other devices' sections are kept) and
    `<out stem>_<device type>.json` beside it; return the JSON's path."""
    out = Path(out)
    has_gpu = device.type == "cuda" or (
        out.is_file() and any(line.startswith("## cuda") for line in out.read_text().splitlines())
    )
    heading = f"{device.type}: {describe_device(device)}"
    body = section_body(device, budget, command, results, rows, seconds)
    update_section(out, preamble(has_gpu), heading, body)
    record = {
        "device": device_record(device),
        "machine": describe_device(device),
        "versions": versions(),
        "tf32": tf32_enabled() and device.type == "cuda",
        "budget": budget,
        "command": command,
        "passed": all(r.ok for r in results),
        "seconds": seconds,
        "steps": [asdict(r) for r in results],
        "throughput": rows,
    }
    return atomic_write_json(out.with_name(f"{out.stem}_{device.type}.json"), record)
