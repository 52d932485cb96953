"""Export a run: into RL Baselines3 Zoo's log layout, or its policy as an ONNX model.

Zoo: OUT/<algo>/<Game>NoFrameskip-v4_<n>/ holds the model zip and the config.yml/args.yml that
RL Zoo's enjoy, record_video and push_to_hub read, so `python -m rl_zoo3.enjoy --algo a2c --env
MsPacmanNoFrameskip-v4 -f OUT` plays the agent. ONNX: one graph from the uint8 frames to the
action logits and the value (A2C, PPO) or to the Q-values (DQN, QR-DQN), checked against the
PyTorch policy with onnxruntime on real frames.
"""

from __future__ import annotations

import os
import re
import shutil
import uuid
import warnings
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ale_py
import gymnasium as gym
import numpy as np
import torch
import yaml
from stable_baselines3.common.distributions import CategoricalDistribution
from stable_baselines3.common.policies import ActorCriticPolicy
from torch import nn

from agents.checkpoints import load_agent, model_path
from agents.config import is_off_policy
from agents.run_config import AgentRunConfig, read_agent_run_config
from agents.zoo import zoo_entry
from common.cli import option
from common.errors import UsageError
from common.files import atomic_path, atomic_write_text
from envs.atari import STICKY_ACTION_PROBABILITY, make_atari_vec_env
from envs.names import resolve_game

ZOO_ENV_SUFFIX = "NoFrameskip-v4"  # RL Zoo's Atari protocol: no sticky actions, skip by wrapper
ONNX_OPSET = 17
ONNX_TOLERANCE = 1e-4  # float32 round-off of the same graph is ~1e-6; more means a wrong graph
ONNX_INPUT = "obs"
# The graph's outputs (name -> shape) and the short names the check reports them by.
ACTOR_CRITIC_OUTPUTS = {
    "action_logits": ("logits", "(batch, n_actions)"),
    "value": ("value", "(batch, 1)"),
}
Q_OUTPUTS = {"q_values": ("q_values", "(batch, n_actions)")}


EXPORT_FORMATS = ("zoo", "onnx")
ONNX_CHECK_OBSERVATIONS = 32  # real frames the ONNX check plays and compares


@dataclass
class ExportSettings:
    """What `export_run.py` was asked for, one field per argument."""

    run_dir: str = option(
        help="a run folder made by train_atari.py", flag="run_dir", metavar="RUN_DIR"
    )
    out: str = option(
        help="zoo: a log folder (-f of rl_zoo3); onnx: a .onnx file", flag="out", metavar="OUT"
    )
    to: str = option(help=f"export format: {', '.join(EXPORT_FORMATS)}")
    checkpoint: str | None = option(
        None, "best, final or STEPS (default: best_model.zip if the run has one, else model.zip)"
    )
    observations: int = option(ONNX_CHECK_OBSERVATIONS, "onnx: real frames checked")
    seed: int = option(0, "onnx: seed of the random play")


class ExportCheckError(RuntimeError):
    """The exported ONNX model disagrees with the PyTorch policy beyond the tolerance; the CLI
    exits 1 (not 2: the input was fine, the export is wrong)."""


def run_model(run_dir: str | Path, checkpoint: str | None = None) -> tuple[AgentRunConfig, Path]:
    """A run's config and the model file to export: `checkpoint` as in checkpoints.model_path,
    or None for best_model.zip where the run has one, else model.zip (runs trained with
    --eval-freq 0 have no best model)."""
    run_dir = Path(run_dir)
    config = read_agent_run_config(run_dir)
    if checkpoint is None:
        checkpoint = "best" if (run_dir / "best_model.zip").is_file() else "final"
    return config, model_path(run_dir, checkpoint)


def zoo_env_id(game: str) -> str:
    """The RL Zoo env id of a game: 'MsPacman' -> 'MsPacmanNoFrameskip-v4'; UsageError for games
    ale-py registers only as ALE/<Game>-v5."""
    env_id = f"{resolve_game(game)}{ZOO_ENV_SUFFIX}"
    gym.register_envs(ale_py)
    if env_id not in gym.registry:
        raise UsageError(f"ale-py has no {env_id} (RL Zoo's Atari ids are <Game>{ZOO_ENV_SUFFIX})")
    return env_id


def _zoo_yaml(mapping: dict[str, Any]) -> str:
    # What RL Zoo's ExperimentManager writes: yaml.dump of a key-sorted OrderedDict (so the file
    # is a python/object/apply list of pairs) read back with yaml.UnsafeLoader. Classes in
    # policy_kwargs are written as python/name tags, as RL Zoo writes them for a Python config.
    return yaml.dump(OrderedDict(sorted(mapping.items())))


def export_zoo(
    run_dir: str | Path, out: str | Path, checkpoint: str | None = None
) -> dict[str, Any]:
    """Write a run in RL Zoo's log layout under `out`; return what was written.

    OUT/<algo>/<env_id>_<n>/ (n: the next free experiment id, from 1, as RL Zoo numbers them)
    gets <env_id>.zip (the chosen model; what enjoy plays), best_model.zip where the run has one
    (enjoy --load-best), and <env_id>/config.yml, args.yml and command.txt. The folder is built
    under a hidden name and renamed, so RL Zoo never sees a part of it. Sticky-action runs keep
    the NoFrameskip-v4 id with env_kwargs repeat_action_probability=0.25, which enjoy applies.
    """
    run_dir = Path(run_dir)
    config, model = run_model(run_dir, checkpoint)
    algo = config.algo
    env_id = zoo_env_id(config.env)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"zoo output must be a folder, not a file: {out}")
    entry = zoo_entry(algo, config.extractor, config.hyperparams, config.with_r, strict=False)
    sticky = bool(config.sticky_actions)
    env_kwargs = {"repeat_action_probability": STICKY_ACTION_PROBABILITY} if sticky else None
    if env_kwargs is not None:
        entry["env_kwargs"] = env_kwargs
    module = f"agents.zoo.{algo}_{config.extractor.replace('-', '_')}"
    args = {
        # The train arguments RL Zoo's tools read (env, env_kwargs) and the ones that made the
        # run; the rest of rl_zoo3.train's arguments have no counterpart in a suite run.
        "algo": algo,
        "env": env_id,
        "env_kwargs": env_kwargs,
        "eval_env_kwargs": None,
        # The config module that trains this setup in RL Zoo (none ships with_r variants).
        "conf_file": None if config.with_r else module,
        "hyperparams": None,
        "n_timesteps": config.n_timesteps,
        "seed": config.seed,
        "log_folder": str(out),
        "device": config.device,
        "vec_env": "dummy",
    }
    algo_dir = out / algo
    try:
        algo_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:  # a file on the path, no permission: the user's OUT
        raise UsageError(f"cannot make zoo folder {algo_dir}: {err.strerror}") from None
    # A hidden name: RL Zoo's get_latest_run_id counts only <env_id>_<n>.
    tmp = algo_dir / f".{env_id}_export_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        params = tmp / env_id
        params.mkdir()
        atomic_write_text(params / "config.yml", _zoo_yaml(entry))
        atomic_write_text(params / "args.yml", _zoo_yaml(args))
        command = run_dir / "command.txt"
        if command.is_file():
            atomic_write_text(params / "command.txt", command.read_text())
        shutil.copyfile(model, tmp / f"{env_id}.zip")
        if (run_dir / "best_model.zip").is_file():
            shutil.copyfile(run_dir / "best_model.zip", tmp / "best_model.zip")
        exp_dir = _rename_to_next_id(tmp, algo_dir, env_id)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return {
        "run_dir": str(run_dir),
        "model": str(model),
        "env_id": env_id,
        "algo": algo,
        "extractor": config.extractor,
        "exp_dir": str(exp_dir),
        "exp_id": int(exp_dir.name.rsplit("_", 1)[1]),
        "folder": str(out),
        "sticky_actions": sticky,
    }


def _rename_to_next_id(tmp: Path, algo_dir: Path, env_id: str) -> Path:
    """Rename `tmp` to algo_dir/<env_id>_<n> with n one past the largest id there (RL Zoo's
    get_latest_run_id + 1)."""
    pattern = re.compile(re.escape(env_id) + r"_(\d+)")
    taken = [int(m.group(1)) for p in algo_dir.iterdir() if (m := pattern.fullmatch(p.name))]
    n = max(taken, default=0) + 1
    while True:
        target = algo_dir / f"{env_id}_{n}"
        if not target.exists():
            try:
                os.rename(tmp, target)
                return target
            except OSError:  # made by another process since the check: take the next id
                pass
        n += 1


class OnnxPolicy(nn.Module):
    """An SB3 actor-critic policy as one function: uint8 frames (N, C, H, W) -> (action logits
    (N, n_actions), value (N, 1)).

    The frames go through the policy's own extract_features, which scales them to [0, 1] as in
    training (SB3's preprocess_obs), so the graph takes the raw observations. softmax(logits) is
    the policy's action distribution; the logits are those of SB3's action_net, before the
    Categorical distribution normalises them.
    """

    def __init__(self, policy: ActorCriticPolicy) -> None:
        super().__init__()
        self.policy = policy

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        policy = self.policy
        features = policy.extract_features(obs)
        if policy.share_features_extractor:
            latent_pi, latent_vf = policy.mlp_extractor(features)
        else:
            latent_pi = policy.mlp_extractor.forward_actor(features[0])
            latent_vf = policy.mlp_extractor.forward_critic(features[1])
        return policy.action_net(latent_pi), policy.value_net(latent_vf)


class OnnxQNetwork(nn.Module):
    """A DQN or QR-DQN policy's online network as one function: uint8 frames (N, C, H, W) ->
    (Q-values (N, n_actions),).

    DQN's is its q_net, as SB3's docs export it; QR-DQN's Q-values are the mean of its quantile
    network's quantiles, as its _predict takes them. argmax is the greedy action either way. The
    frames are scaled inside, as in OnnxPolicy. The target network only trains: not exported.
    """

    def __init__(self, policy: nn.Module) -> None:
        super().__init__()
        self.quantiles = not hasattr(policy, "q_net")
        self.net: nn.Module = getattr(policy, "quantile_net" if self.quantiles else "q_net")

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor]:
        out = self.net(obs)  # QR-DQN: (N, n_quantiles, n_actions)
        return (out.mean(dim=1) if self.quantiles else out,)


def real_observations(
    game: str,
    n: int,
    seed: int = 0,
    sticky_actions: bool = False,
    frame_stack: int = 4,
) -> np.ndarray:
    """`n` observations (n, frame_stack, 84, 84) uint8 from random play on the sb3 backend, the
    first `frame_stack` steps of each game skipped (their stacks are part zeros)."""
    n_envs = 2
    env = make_atari_vec_env(
        game,
        n_envs,
        seed,
        training=False,
        sticky_actions=sticky_actions,
        frame_stack=frame_stack,
        backend="sb3",
    )
    rng = np.random.default_rng(seed)
    frames: list[np.ndarray] = []
    try:
        obs = env.reset()
        for step in range(frame_stack + -(-n // n_envs)):
            if step >= frame_stack:
                frames.append(obs)  # type: ignore[arg-type]  # an array: Atari's image space
            n_actions = env.action_space.n  # type: ignore[attr-defined]  # Atari's: Discrete
            obs, _, _, _ = env.step(rng.integers(n_actions, size=n_envs))
    finally:
        env.close()
    return np.concatenate(frames)[:n]


def onnx_differences(
    path: str | Path,
    module: nn.Module,
    observations: np.ndarray,
    batch_sizes: tuple[int, ...],
    names: tuple[str, ...] = ("logits", "value"),
) -> dict[str, float]:
    """Max abs difference between onnxruntime on the ONNX file and `module` in PyTorch, over
    the observations fed in batches of each size in `batch_sizes`, per output under `names`:
    {"logits": .., "value": ..} for OnnxPolicy, {"q_values": ..} for OnnxQNetwork."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    worst = dict.fromkeys(names, 0.0)
    for size in batch_sizes:
        for start in range(0, len(observations), size):
            batch = observations[start : start + size]
            got = session.run(None, {ONNX_INPUT: batch})
            with torch.no_grad():
                want = [t.numpy() for t in module(torch.as_tensor(batch))]
            for key, g, w in zip(worst, got, want, strict=True):
                if g.shape != w.shape:
                    raise ExportCheckError(f"ONNX {key} has shape {g.shape}, PyTorch {w.shape}")
                worst[key] = max(worst[key], float(np.abs(g - w).max()))
    return worst


def export_onnx(
    run_dir: str | Path,
    out: str | Path,
    checkpoint: str | None = None,
    n_observations: int = ONNX_CHECK_OBSERVATIONS,
    seed: int = 0,
    tolerance: float = ONNX_TOLERANCE,
) -> dict[str, Any]:
    """Export a run's policy to the ONNX file `out` and check it; return the measured
    differences.

    Input "obs": uint8 (batch, frame_stack, 84, 84), batch size free. Outputs "action_logits"
    (batch, n_actions) and "value" (batch, 1) for A2C/PPO (OnnxPolicy), "q_values" (batch,
    n_actions) for DQN/QR-DQN (OnnxQNetwork). The check runs onnxruntime and
    the PyTorch policy on `n_observations` real frames (random play, seeded by `seed`) in one
    batch and one by one; a max abs difference above `tolerance` raises ExportCheckError and
    leaves no file. The file is written atomically.
    """
    import onnx

    out = Path(out)
    if out.suffix.lower() != ".onnx":
        raise UsageError(f"ONNX output must end in .onnx, got {out}")
    if out.is_dir():
        raise UsageError(f"ONNX output is a folder: {out}")
    if n_observations < 1:
        raise UsageError(f"--observations must be >= 1, got {n_observations}")
    config, model = run_model(run_dir, checkpoint)
    agent = load_agent(config.algo, model, device="cpu")
    policy = agent.policy
    module: nn.Module
    if is_off_policy(config.algo):  # DQN and QR-DQN: discrete actions by construction
        module, outputs = OnnxQNetwork(policy).eval(), Q_OUTPUTS
    elif isinstance(policy, ActorCriticPolicy) and isinstance(
        policy.action_dist, CategoricalDistribution
    ):  # A2C and PPO's policies are actor-critics
        module, outputs = OnnxPolicy(policy).eval(), ACTOR_CRITIC_OUTPUTS
    else:
        raise UsageError(f"ONNX export takes discrete-action policies, not {model}")
    frame_stack = config.frame_stack
    observations = real_observations(
        config.env, n_observations, seed, config.sticky_actions, frame_stack
    )
    with atomic_path(out) as tmp:
        with warnings.catch_warnings():
            # The TorchScript exporter (dynamo=False) is chosen on purpose: the torch.export one
            # needs onnxscript. Its tracer warns where the layers read the input's shape; only
            # the batch size varies, and the check below runs two of them.
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            torch.onnx.export(
                module,
                (torch.as_tensor(observations[:1]),),
                str(tmp),
                dynamo=False,
                opset_version=ONNX_OPSET,
                input_names=[ONNX_INPUT],
                output_names=list(outputs),
                dynamic_axes={name: {0: "batch"} for name in (ONNX_INPUT, *outputs)},
            )
        graph = onnx.load(str(tmp))
        onnx.checker.check_model(graph)
        metadata = {
            "env": config.env,
            "algo": config.algo,
            "extractor": config.extractor,
            "with_r": str(config.with_r),
            "model": str(model),
            "input": "obs: uint8 (batch, frame_stack, 84, 84), grayscale frames, not scaled",
            "outputs": ", ".join(f"{name} {shape}" for name, (_, shape) in outputs.items()),
        }
        for key, value in metadata.items():
            graph.metadata_props.add(key=key, value=value)
        onnx.save(graph, str(tmp))
        batch_sizes = (len(observations), 1)
        short = tuple(short for short, _ in outputs.values())
        diffs = onnx_differences(tmp, module, observations, batch_sizes, short)
        worst = max(diffs.values())
        if not worst <= tolerance:  # NaN fails too
            raise ExportCheckError(
                f"ONNX model differs from the PyTorch policy by {worst:.3g} "
                f"(tolerance {tolerance:g}); nothing written"
            )
    return {
        "onnx": str(out),
        "run_dir": str(run_dir),
        "model": str(model),
        "env": config.env,
        "algo": config.algo,
        "extractor": config.extractor,
        "frame_stack": frame_stack,
        "n_actions": int(policy.action_space.n),  # type: ignore[attr-defined]  # Discrete
        "observations": len(observations),
        "batch_sizes": list(batch_sizes),
        "outputs": {name: shape for name, (_, shape) in outputs.items()},
        "max_abs_diff": diffs,
        **{f"max_abs_diff_{name}": diff for name, diff in diffs.items()},
        "tolerance": tolerance,
        "opset": ONNX_OPSET,
    }
