"""Does bf16 change what an agent learns? fp32 and bf16 runs of the same seeds, paired."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from analysis.report import FINAL_RETURN_DEFINITION
from analysis.stats import t_interval


def pair_precisions(summary: dict[str, Any], logdir: Path) -> list[dict[str, Any]]:
    """Per seed, the fp32 and bf16 runs' final returns and training speed, from compare_runs'
    summary of a study whose groups differ in precision only; UsageError-free: the caller's
    spec guarantees both precisions."""
    by_precision: dict[str, dict[int, dict[str, Any]]] = {}
    for group in summary["groups"]:
        precision = group["config"]["precision"]
        by_precision[precision] = {r["seed"]: r for r in group["runs"]}
    fp32, bf16 = by_precision.get("fp32", {}), by_precision.get("bf16", {})
    pairs = []
    for seed in sorted(set(fp32) & set(bf16)):
        pairs.append(
            {
                "seed": seed,
                "fp32": fp32[seed]["final_return"],
                "bf16": bf16[seed]["final_return"],
                "fp32_steps_per_s": _speed(logdir / fp32[seed]["name"]),
                "bf16_steps_per_s": _speed(logdir / bf16[seed]["name"]),
                "fp32_device": _device(logdir / fp32[seed]["name"]),
                "bf16_device": _device(logdir / bf16[seed]["name"]),
            }
        )
    return pairs


def _result(run_dir: Path) -> dict[str, Any] | None:
    path = run_dir / "train_result.json"
    return json.loads(path.read_text()) if path.is_file() else None


def _speed(run_dir: Path) -> float | None:
    """Steps/s of the run's last training session, from its train_result.json."""
    result = _result(run_dir)
    if result is None:
        return None
    return result["trained_timesteps"] / result["seconds"] if result["seconds"] > 0 else None


def _device(run_dir: Path) -> dict[str, Any] | None:
    """The device record (common.devices.device_record) of the run's last training session,
    from its train_result.json; None for runs from before it was recorded."""
    result = _result(run_dir)
    return None if result is None else result.get("device")


def trained_on(pairs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The distinct device records the paired runs trained on, in order of first use."""
    seen: list[dict[str, Any]] = []
    for p in pairs:
        for record in (p["fp32_device"], p["bf16_device"]):
            if record is not None and record not in seen:
                seen.append(record)
    return seen


def verdict(pairs: list[dict[str, Any]]) -> dict[str, Any]:
    """Means, seed spreads and t 95% CIs of both precisions and of the paired difference
    (bf16 - fp32); `loss_shown` is whether that CI lies wholly below zero."""
    fp32 = [p["fp32"] for p in pairs]
    bf16 = [p["bf16"] for p in pairs]
    diff = [b - f for f, b in zip(fp32, bf16, strict=True)]
    out: dict[str, Any] = {"n_pairs": len(pairs)}
    for name, x in (("fp32", fp32), ("bf16", bf16), ("difference", diff)):
        out[name] = {
            "mean": float(np.mean(x)),
            "std": float(np.std(x, ddof=1)) if len(x) > 1 else None,
            "ci95": list(ci) if (ci := t_interval(x)) is not None else None,
        }
    ci = out["difference"]["ci95"]
    out["loss_shown"] = ci is not None and ci[1] < 0
    return out


def markdown(pairs: list[dict[str, Any]], v: dict[str, Any]) -> str:
    """The seed table and the reading of `verdict`."""

    def num(x: float | None, digits: int = 1) -> str:
        return "n/a" if x is None else f"{x:.{digits}f}"

    def ci(c: list[float] | None) -> str:
        return "n/a" if c is None else f"[{c[0]:.1f}, {c[1]:.1f}]"

    lines = [
        "| seed | fp32 final return | bf16 final return | bf16 - fp32 "
        "| fp32 steps/s | bf16 steps/s |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for p in pairs:
        lines.append(
            f"| {p['seed']} | {p['fp32']:.1f} | {p['bf16']:.1f} | {p['bf16'] - p['fp32']:+.1f} "
            f"| {num(p['fp32_steps_per_s'], 0)} | {num(p['bf16_steps_per_s'], 0)} |"
        )
    lines += ["", "| | mean | seed std | t 95% CI |", "|---|---:|---:|---|"]
    for name in ("fp32", "bf16", "difference"):
        s = v[name]
        label = "bf16 - fp32 (paired)" if name == "difference" else name
        lines.append(f"| {label} | {s['mean']:.1f} | {num(s['std'])} | {ci(s['ci95'])} |")
    d = v["difference"]
    if v["loss_shown"]:
        reading = f"bf16 learned less: the paired difference's CI {ci(d['ci95'])} is below zero."
    else:
        reading = (
            f"No loss shown: the paired difference (bf16 - fp32) is {d['mean']:+.1f} with a t 95% "
            f"CI of {ci(d['ci95'])}, which includes zero, over {v['n_pairs']} seeds. A loss "
            "down to the CI's lower end cannot be excluded at this many seeds."
        )
    lines += ["", f"Final return: {FINAL_RETURN_DEFINITION}", "", reading]
    return "\n".join(lines)
