"""Run an Atari study (games x algos x extractors x with_r x seeds) on Ray, then report it.

Example: python scripts/study.py configs/studies/mspacman_pilot.yaml
Each run is one Ray task that trains as train_atari.py does, into LOGDIR/<Game>/<run name>/.
Re-running the same command skips finished runs and resumes interrupted ones from their newest
saved model, so a study survives Ctrl-C, a killed driver or a lost node. By default a local Ray
uses this machine's cores; --address auto (or ray://HOST:10001) joins a running cluster, whose
nodes must all see LOGDIR. At the end (or with --report, for a finished or partial study alone)
LOGDIR/report/ gets study.md, study.json and the pictures; the report counts the runs that are
finished, running, stopped and still to do.

--dry-run trains nothing and makes no folder: it lists every run with its state (to do, partly
done at N steps, finished), then the plan: agent steps left, core-hours, GPU-hours and the wall
time on the cluster at --address or on --nodes nodes of this machine's size (or of
--cpus-per-node and --gpus-per-node: `--nodes 8 --cpus-per-node 16 --gpus-per-node 1` plans for
eight one-GPU nodes). The speed comes from a probe (the study's own algo and extractors trained
in memory on this machine's CPU, up to 30 s each) or, with --speed table, from
docs/results/train_speed_cpu.json; the plan says which, and what it assumes.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from common.cli import option, settings_from, settings_parser
from common.errors import UsageError, check_at_least, check_choice, check_positive, run_cli

SPEEDS = ("probe", "table")


@dataclass
class StudyArgs:
    """study.py's flags."""

    spec: str = option(help="study spec YAML (configs/studies/*.yaml)", flag="spec", metavar="SPEC")
    logdir: str | None = option(None, "root folder of the runs (runs/studies/<spec name>)")
    address: str | None = option(
        None, "Ray cluster to join: auto or ray://HOST:10001 (default: a local Ray)"
    )
    report: bool = option(False, "only write the report from the run folders as they are")
    progress: bool = option(True, "no live view; a line per finished run")
    dry_run: bool = option(
        False, "train nothing: list every run's state and the plan (steps left, cost, wall time)"
    )
    nodes: int | None = option(
        None, "--dry-run: plan for this many nodes (default 1) of this machine's size"
    )
    cpus_per_node: int | None = option(
        None, "--dry-run: CPUs of each planned node (default: this machine's)"
    )
    gpus_per_node: int | None = option(
        None, "--dry-run: GPUs of each planned node (default: this machine's)"
    )
    speed: str = option(
        "probe",
        "--dry-run: probe (steps/s of the study's algo and extractors trained briefly, in "
        "memory, on this CPU) or table (docs/results/train_speed_cpu.json)",
    )


def check_args(args: StudyArgs) -> None:
    """UsageError, one line, for flags that do not go together or impossible numbers."""
    sizing = {"--nodes": args.nodes, "--cpus-per-node": args.cpus_per_node}
    sizing["--gpus-per-node"] = args.gpus_per_node
    given = [flag for flag, value in sizing.items() if value is not None]
    if args.dry_run and args.report:
        raise UsageError("--dry-run and --report exclude each other: one plans, one reports")
    if not args.dry_run and (given or args.speed != "probe"):
        raise UsageError(f"{(given or ['--speed'])[0]} applies to --dry-run only")
    if args.address is not None and given:
        raise UsageError(
            f"{given[0]} plans for nodes of a given size; with --address the plan takes the "
            "cluster's own nodes"
        )
    check_choice("--speed", args.speed, SPEEDS)
    if args.nodes is not None:
        check_at_least("--nodes", args.nodes, 1)
    if args.cpus_per_node is not None:
        check_positive("--cpus-per-node", args.cpus_per_node)
    if args.gpus_per_node is not None:
        check_at_least("--gpus-per-node", args.gpus_per_node, 0)


def main() -> int:
    args = settings_from(StudyArgs, settings_parser(StudyArgs, __doc__).parse_args())
    check_args(args)
    # Imported after parsing: --help and flag errors need neither torch nor Ray.
    from analysis.run_progress import run_progress, run_progress_table
    from analysis.study import study_report
    from studies.spec import load_spec, plan_runs

    spec = load_spec(args.spec)
    logdir = Path(args.logdir or f"runs/studies/{spec.name}")
    runs = plan_runs(spec, logdir)  # every bad setting ends here, before Ray starts
    if args.dry_run:
        from studies.plan import dry_run

        print(
            dry_run(
                spec,
                runs,
                args.address,
                args.nodes or 1,
                args.cpus_per_node,
                args.gpus_per_node,
                args.speed,
            )  # fmt: skip
        )
        return 0
    failed = []
    if not args.report:
        from studies.engine import run_study

        try:
            results = run_study(spec, runs, logdir, args.address, args.progress)
        except KeyboardInterrupt:
            print("interrupted: run the same command again to finish the study", file=sys.stderr)
            return 130
        failed = [r for r in results if r["status"] not in ("finished", "skipped")]
        for r in failed:
            print(f"{r['run']}: {r['status']}: {r.get('message', '')}", file=sys.stderr)
    planned = {run.run_dir: int(run.settings.timesteps) for run in runs}
    try:
        report = study_report(logdir, progress=args.progress, planned=planned)
    except UsageError as err:
        if logdir.is_dir():  # where the runs stand, even before any has a full game to report
            print(run_progress_table(run_progress(logdir, planned)))
        if args.report:
            raise
        # The runs are trained; what they logged is too little to report yet (no full game).
        print(f"no report yet: {err}", file=sys.stderr)
    else:
        print(report.table)
        print(f"wrote {', '.join(str(p) for p in report.files)}")
    return 1 if failed else 0


def run() -> None:
    """`coordconv-study` on the command line: main() with run_cli's exit statuses."""
    run_cli(main)


if __name__ == "__main__":
    run()
