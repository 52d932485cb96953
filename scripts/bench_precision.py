"""Learning in fp32 vs bf16: the same seeds trained in both precisions, their final returns paired.

Runs the study SPEC (default configs/studies/precision.yaml: A2C coordconv on Ms. Pac-Man, seeds
0-2, 300k steps, fp32 and bf16) through scripts/study.py's engine; re-running skips finished
runs. Then writes OUT (docs/results/precision.md) with each seed's final returns, the seed
spread, the paired difference and its t 95% CI, and the learning curves beside it.
"""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from common.cli import option, settings_from, settings_parser
from common.errors import UsageError, run_cli


@dataclass
class PrecisionArgs:
    """bench_precision.py's flags."""

    spec: str = option("configs/studies/precision.yaml", "study spec with precision [fp32, bf16]")
    logdir: str | None = option(None, "root folder of the runs (runs/studies/<spec name>)")
    out: str = option("docs/results/precision.md", "markdown page to write")
    progress: bool = option(True, "no live view; a line per finished run")


def main() -> int:
    args = settings_from(PrecisionArgs, settings_parser(PrecisionArgs, __doc__).parse_args())
    from analysis.report import compare_runs
    from benchmarks.precision import markdown, pair_precisions, trained_on, verdict
    from common.devices import describe_device
    from common.files import atomic_path, atomic_write_text
    from studies.engine import run_study
    from studies.spec import load_spec, plan_runs

    spec = load_spec(args.spec)
    if set(spec.precision) != {"fp32", "bf16"} or len(spec.games) != 1:
        raise UsageError(f"{args.spec} must train one game in precision [fp32, bf16]")
    logdir = Path(args.logdir or f"runs/studies/{spec.name}")
    runs = plan_runs(spec, logdir)
    results = run_study(spec, runs, logdir, progress=args.progress)
    failed = [r for r in results if r["status"] not in ("finished", "skipped")]
    if failed:
        raise UsageError(f"{failed[0]['run']} did not finish: {failed[0].get('message', '')}")
    game_dir = logdir / spec.games[0]
    comparison = compare_runs(game_dir, logdir / "comparison", progress=args.progress)
    pairs = pair_precisions(comparison.summary, game_dir)
    v = verdict(pairs)
    out = Path(args.out)
    curves = out.with_name(f"{out.stem}_curves.png")
    with atomic_path(curves) as tmp:
        shutil.copyfile(logdir / "comparison" / "comparison.png", tmp)
    import torch

    page = (
        f"# Learning in fp32 vs bf16: {spec.algos[0].upper()} on {spec.games[0]}\n\n"
        f"Command: `python scripts/bench_precision.py {' '.join(sys.argv[1:])}`\n\n"
        f"- Spec `{args.spec}`: {', '.join(spec.extractors)} extractor, seeds "
        f"{', '.join(map(str, spec.seeds))}, {spec.timesteps:,} agent steps per run, the same "
        "seeds in fp32 and in bf16 (`--precision bf16`: the features extractor under autocast).\n"
        f"- Machine: {describe_device(torch.device('cpu'))}; torch {torch.__version__}. Ray ran "
        f"{spec.cpus_per_run:g} core(s) and {spec.gpus_per_run:g} GPU(s) per run.\n"
        f"- Trained on (what the runs recorded): {_devices(trained_on(pairs))}.\n\n"
        f"{markdown(pairs, v)}\n\n![learning curves]({curves.name})\n"
    )
    atomic_write_text(out, page)
    print(markdown(pairs, v))
    print(f"wrote {out}, {curves}")
    return 0


def _devices(records: list[dict]) -> str:
    """Each device the runs trained on (common.devices.describe_record) with its bf16 support:
    a GPU computes bf16 natively from compute capability 8.0 on; a CPU's bf16 units are read
    on this machine, where a local study's CPU runs trained."""
    from common.devices import describe_record
    from policies.precision import bf16_native_major, cpu_bf16_units

    parts = []
    for r in records:
        if r.get("capability"):  # sm_XY: major X
            native = bf16_native_major(int(r["capability"][3:-1]))
            support = f"GPU bf16: {'native' if native else 'emulated'}"
        else:
            support = f"CPU bf16 units: {', '.join(cpu_bf16_units()) or 'none (bf16 is emulated)'}"
        parts.append(f"{describe_record(r)}; {support}")
    return "; ".join(parts) or "not recorded (runs from before train_result.json kept it)"


if __name__ == "__main__":
    run_cli(main)
