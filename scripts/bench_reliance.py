"""Does the agent use its coordinates? Reads a study folder (LOGDIR/<Game>/<runs>, e.g. what
`python scripts/study.py configs/studies/mspacman_pairs.yaml` trained) and writes OUT
(docs/results/coord_reliance.md, with .json and _share.png beside it): the conv/CoordConv pairs
by seed (final returns, paired difference with its t 95% CI, P(improvement)), each CoordConv
agent's score as trained, with its coordinates zeroed and mirrored (evaluate.py --coords
zero,flip: the same games, paired), and each agent's coordinate share over training. Trains
nothing; a "## Reading" section already in OUT is kept.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from common.cli import option, settings_from, settings_parser
from common.errors import UsageError, check_at_least, run_cli


@dataclass
class RelianceArgs:
    """bench_reliance.py's flags."""

    logdir: str = option(help="study folder: LOGDIR/<Game>/<run>/", flag="logdir", metavar="LOGDIR")
    episodes: int = option(10, "full games per agent and coordinate mode")
    checkpoint: str = option("final", "which model of each run: best, final or STEPS")
    out: str = option("docs/results/coord_reliance.md", "markdown page to write")
    progress: bool = option(True, "progress bars")


def main() -> int:
    args = settings_from(RelianceArgs, settings_parser(RelianceArgs, __doc__).parse_args())
    check_at_least("--episodes", args.episodes)
    logdir = Path(args.logdir)
    if not logdir.is_dir():
        raise UsageError(f"study folder {args.logdir!r} does not exist or is not a folder")
    import torch

    from analysis.study import study_report
    from benchmarks import reliance as page
    from common.devices import describe_device
    from common.files import atomic_write_json, atomic_write_text

    runs = page.coordconv_runs(logdir)
    if not runs:
        raise UsageError(f"no CoordConv runs under {logdir}: nothing to ablate")
    rows = page.reliance_rows(runs, args.episodes, args.checkpoint)
    curves = {d.name: page.share_curve(d) for d in runs}
    cost = page.share_cost(runs[0])
    report = study_report(logdir, progress=args.progress)
    game = report.summary["games"][0]
    pairs = page.pairs_by_seed(game)
    verdict = page.paired_verdict(pairs)
    improvements = report.summary["improvements"]
    out = Path(args.out)
    png = page.plot_shares(curves, out.with_name(f"{out.stem}_share.png"))
    command = f"python scripts/bench_reliance.py {' '.join(sys.argv[1:])}"
    machine = describe_device(torch.device("cpu"))
    body = page.markdown(logdir, game, pairs, verdict, improvements, rows, curves, png.name, cost)
    reading = ""
    if out.exists() and "\n## Reading" in out.read_text():
        reading = "\n## Reading" + out.read_text().split("\n## Reading", 1)[1]
    text = f"# Does the agent use its coordinates?\n\nCommand: `{command}`\n\nMachine: {machine}; "
    text += f"torch {torch.__version__}.\n\n{body}\n{reading}"
    atomic_write_text(out, text.rstrip() + "\n")
    atomic_write_json(
        out.with_suffix(".json"),
        {"command": command, "machine": machine, "pairs": pairs, "paired": verdict,
         "improvements": improvements, "reliance": rows, "share_cost": cost,
         "share": {run: {"source": s, "points": p} for run, (p, s) in curves.items()}},
    )  # fmt: skip
    print(page.reliance_table(rows))
    print(f"wrote {out}, {out.with_suffix('.json')}, {png}")
    return 0


if __name__ == "__main__":
    run_cli(main)
