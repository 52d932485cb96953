"""Run an Atari study (games x algos x extractors x with_r x seeds) on Ray, then report it.

Example: python scripts/study.py configs/studies/mspacman_pilot.yaml
Each run is one Ray task that trains as train_atari.py does, into LOGDIR/<Game>/<run name>/.
Re-running the same command skips finished runs and resumes interrupted ones from their newest
saved model, so a study survives Ctrl-C, a killed driver or a lost node. By default a local Ray
uses this machine's cores; --address auto (or ray://HOST:10001) joins a running cluster, whose
nodes must all see LOGDIR. At the end (or with --report, for a finished or partial study alone)
LOGDIR/report/ gets study.md, study.json and the pictures.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from common.cli import option, settings_from, settings_parser
from common.errors import UsageError, run_cli


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


def main() -> int:
    args = settings_from(StudyArgs, settings_parser(StudyArgs, __doc__).parse_args())
    # Imported after parsing: --help and flag errors need neither torch nor Ray.
    from analysis.study import study_report
    from studies.engine import run_study
    from studies.spec import load_spec, plan_runs

    spec = load_spec(args.spec)
    logdir = Path(args.logdir or f"runs/studies/{spec.name}")
    failed = []
    if not args.report:
        runs = plan_runs(spec, logdir)  # every bad setting ends here, before Ray starts
        try:
            results = run_study(spec, runs, logdir, args.address, args.progress)
        except KeyboardInterrupt:
            print("interrupted: run the same command again to finish the study", file=sys.stderr)
            return 130
        failed = [r for r in results if r["status"] not in ("finished", "skipped")]
        for r in failed:
            print(f"{r['run']}: {r['status']}: {r.get('message', '')}", file=sys.stderr)
    try:
        report = study_report(logdir, progress=args.progress)
    except UsageError as err:
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
