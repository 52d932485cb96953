"""The coordinate-reliance page: paired conv/CoordConv finals, each CoordConv agent's score with
its coordinates ablated, and each agent's coordinate share over training."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from stable_baselines3.common.evaluation import evaluate_policy

from agents.callbacks import frame_keeper
from agents.checkpoints import list_checkpoints, load_agent
from agents.config import ALGOS
from agents.evaluate import EvaluateSettings
from agents.run_config import read_agent_run_config
from analysis.reliance import measure_reliance
from analysis.runs import find_run_dirs
from analysis.stats import t_interval
from common.files import atomic_path
from coordconv import coordinate_share
from envs.atari import make_atari_vec_env

FIRST_LAYER = "features_extractor.cnn.0"


def coordconv_runs(logdir: Path) -> list[Path]:
    """Run folders under `logdir` whose agent has CoordConv layers, in path order."""

    return [d for d in find_run_dirs(logdir) if read_agent_run_config(d).extractor != "conv"]


def reliance_rows(runs: list[Path], episodes: int, checkpoint: str) -> list[dict[str, Any]]:
    """Each run's reliance.json content, measured now (evaluate.py --coords zero,flip)."""
    rows = []
    for run_dir in runs:
        settings = EvaluateSettings(
            run_dir=str(run_dir), episodes=episodes, checkpoint=checkpoint, coords="zero,flip"
        )
        result = measure_reliance(settings)
        rows.append({"run": run_dir.name, **result["reliance"]})
    return rows


def share_curve(run_dir: Path) -> tuple[list[dict[str, Any]], str]:
    """A run's coordinate share of its first CoordConv layer over training: from its
    evaluations.json (logged at each evaluation) where it has them, else measured now on each
    checkpoint, on frames of one evaluation game played by the final agent. Returns the points
    (steps, share, weight_ratio) and where they came from."""

    path = run_dir / "evaluations.json"
    history = json.loads(path.read_text()) if path.exists() else []
    logged = [e for e in history if "coordinates" in e]
    if logged:
        return [
            {"steps": e["timesteps"], **_first(e["coordinates"]["layers"])} for e in logged
        ], "evaluations.json"
    return _checkpoint_shares(run_dir), "checkpoints"


def _first(layers: dict[str, dict[str, float]]) -> dict[str, float]:
    stats = layers[FIRST_LAYER] if FIRST_LAYER in layers else next(iter(layers.values()))
    return {"share": stats["share"], "weight_ratio": stats["weight_ratio"]}


def _eval_frames(run_dir: Path) -> np.ndarray:
    """Frames of one evaluation game (env seed 0) played by the run's final agent, taken as the
    Evaluator takes them during training."""

    config = read_agent_run_config(run_dir)
    env = make_atari_vec_env(config.env, 1, 0, training=False, frame_stack=config.frame_stack)
    frames: list[np.ndarray] = []
    final = load_agent(config.algo, run_dir / "model.zip", device="cpu")
    torch.manual_seed(0)
    try:
        evaluate_policy(final, env, 1, return_episode_rewards=True, callback=frame_keeper(frames))
    finally:
        env.close()
    return np.stack(frames)


def _checkpoint_shares(run_dir: Path) -> list[dict[str, Any]]:

    frames = _eval_frames(run_dir)
    algo = ALGOS[read_agent_run_config(run_dir).algo]
    points = []
    for steps, path in sorted(list_checkpoints(run_dir).items()):
        model = algo.load(path, device="cpu")
        model.policy.set_training_mode(False)
        obs, _ = model.policy.obs_to_tensor(frames)
        points.append({"steps": steps, **_first(coordinate_share(model.policy, obs))})
    return points


def share_cost(run_dir: Path, rounds: int = 7) -> dict[str, Any]:
    """What the share measure adds to a training run: its median time on one evaluation's frames
    (as many as the Evaluator keeps) against the training time between two evaluations (the
    run's eval_freq at its recorded steps/s)."""

    frames = _eval_frames(run_dir)
    config = read_agent_run_config(run_dir)
    model = load_agent(config.algo, run_dir / "model.zip", device="cpu")
    model.policy.set_training_mode(False)
    obs, _ = model.policy.obs_to_tensor(frames)
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        coordinate_share(model.policy, obs)
        times.append(time.perf_counter() - start)
    rate = json.loads((run_dir / "progress.json").read_text())["steps_per_s"]
    every = config.eval_freq
    between = every / rate if every and rate else None
    seconds = float(np.median(times))
    return {
        "run": run_dir.name, "frames": len(frames), "seconds": seconds, "eval_freq": every,
        "steps_per_s": rate, "training_seconds_between": between,
        "fraction": seconds / between if between else None,
    }  # fmt: skip


def pairs_by_seed(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """From a compare_runs summary of one game: per seed that both a conv and a CoordConv group
    have, the two final returns and their difference."""
    groups = {g["extractor"]: g for g in summary["groups"]}
    conv, coord = groups.get("conv"), groups.get("coordconv")
    if conv is None or coord is None:
        return []
    finals = {r["seed"]: r["final_return"] for r in conv["runs"]}
    return [
        {"seed": r["seed"], "conv": finals[r["seed"]], "coordconv": r["final_return"],
         "difference": r["final_return"] - finals[r["seed"]]}
        for r in coord["runs"] if r["seed"] in finals
    ]  # fmt: skip


def paired_verdict(pairs: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean paired difference, its t 95% CI, and whether the CI includes zero."""
    diffs = [p["difference"] for p in pairs]
    ci = t_interval(diffs)
    return {
        "pairs": len(diffs),
        "mean": float(np.mean(diffs)) if diffs else None,
        "ci95": list(ci) if ci is not None else None,
        "within_noise": None if ci is None else bool(ci[0] <= 0 <= ci[1]),
    }


def reliance_table(rows: list[dict[str, Any]]) -> str:
    """Per agent: games, score as trained, zeroed, mirrored, and the changes with their CIs."""
    head = ["run", "checkpoint", "games", "as trained", "zeroed", "change [95% CI]"]
    head += ["mirrored", "change [95% CI]"]
    lines = ["| " + " | ".join(head) + " |", "|---|---|---:|---:|---:|---|---:|---|"]
    for r in rows:
        cells = [r["run"], Path(r["model"]).name, str(r["episodes"])]
        cells.append(f"{r['as_trained']['mean_reward']:.1f}")
        for mode in ("zero", "flip"):
            c = r["changes"][mode]
            ci = "-" if c["ci95"] is None else f"[{c['ci95'][0]:+.1f}, {c['ci95'][1]:+.1f}]"
            rel = "" if c["relative_change"] is None else f" ({c['relative_change']:+.0%})"
            cells += [f"{c['mean_reward']:.1f}", f"{c['change']:+.1f}{rel} {ci}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def share_table(curves: dict[str, tuple[list[dict[str, Any]], str]]) -> str:
    """Per run and point: steps, coordinate share and weight ratio of the first layer."""
    lines = ["| run | from | agent steps | coordinate share | coordinate / image weight norm |"]
    lines.append("|---|---|---:|---:|---:|")
    for run, (points, source) in curves.items():
        for p in points:
            cells = [
                run,
                source,
                f"{p['steps']:,}",
                f"{p['share']:.4f}",
                f"{p['weight_ratio']:.4f}",
            ]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_shares(curves: dict[str, tuple[list[dict[str, Any]], str]], path: Path) -> Path:
    """Coordinate share and weight ratio against agent steps, a line per run, atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for run, (points, _) in curves.items():
        steps = [p["steps"] for p in points]
        axes[0].plot(steps, [p["share"] for p in points], marker="o", label=run)
        axes[1].plot(steps, [p["weight_ratio"] for p in points], marker="o", label=run)
    axes[0].set_ylabel("coordinate share (variance)")
    axes[1].set_ylabel("|W coord| / |W image|")
    for ax in axes:
        ax.set_xlabel("agent steps")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return path


def markdown(
    logdir: Path,
    game: dict[str, Any],
    pairs: list[dict[str, Any]],
    verdict: dict[str, Any],
    improvements: list[dict[str, Any]],
    rows: list[dict[str, Any]],
    curves: dict[str, tuple[list[dict[str, Any]], str]],
    png: str,
    cost: dict[str, Any],
) -> str:
    """The measured sections of the page."""
    parts = [f"Runs under `{logdir}`, game {game['env']}."]
    parts.append("## Conv vs CoordConv, paired by seed")
    if not pairs:
        labels = ", ".join(g["label"] for g in game["groups"])
        parts.append(f"No conv/CoordConv pair of seeds under this folder (groups: {labels}).")
    else:
        lines = ["| seed | conv final return | coordconv final return | coordconv - conv |"]
        lines.append("|---:|---:|---:|---:|")
        for p in pairs:
            lines.append(
                f"| {p['seed']} | {p['conv']:.1f} | {p['coordconv']:.1f} | {p['difference']:+.1f} |"
            )
        parts.append("\n".join(lines))
        ci = verdict["ci95"]
        ci_text = "-" if ci is None else f"[{ci[0]:+.1f}, {ci[1]:+.1f}]"
        parts.append(
            f"Paired difference over {verdict['pairs']} seed(s): {verdict['mean']:+.1f}, t 95% CI "
            f"{ci_text}" + (" (includes 0: within noise)." if verdict["within_noise"] else ".")
        )
        for imp in improvements:
            p_ci = imp["ci95"]
            p_text = "" if p_ci is None else f", 95% CI [{p_ci[0]:.2f}, {p_ci[1]:.2f}]"
            parts.append(
                f"P({imp['label']} > {imp['baseline']}) = {imp['probability']:.2f}{p_text}: "
                f"{imp['verdict']}."
            )
    parts.append("## Coordinates ablated at evaluation")
    parts.append(
        "Each agent plays the same games (game i: env and action seed i) as trained, with every "
        "CoordConv layer's coordinates zeroed, and mirrored (`evaluate.py RUN --coords "
        "zero,flip`). Change = ablated - as trained, paired by game; Student t 95% CI over the "
        "games."
    )
    parts.append(reliance_table(rows))
    parts.append("## Coordinate share over training")
    parts.append(
        "First CoordConv layer: the variance of its coordinate term against that of its image "
        "term, per channel about its mean (0: the output does not vary with position through "
        "the coordinates; 0.5: as much as through the image), and the norm of its coordinate "
        "weights over its image weights. At the paired start both are 0."
    )
    parts.append(share_table(curves))
    parts.append(f"![coordinate share over training]({png})")
    if cost["fraction"] is not None:
        parts.append(
            f"Cost during training (measured here, {cost['run']}): the measure takes "
            f"{cost['seconds'] * 1000:.0f} ms on {cost['frames']} frames (median of 7), once per "
            f"evaluation; the run trained {cost['eval_freq']:,} steps between evaluations at "
            f"{cost['steps_per_s']:.0f} steps/s, {cost['training_seconds_between']:.0f} s: "
            f"{cost['fraction']:.2%} of its training time."
        )
    return "\n\n".join(parts) + "\n"
