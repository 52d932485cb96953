"""Tiny end-to-end runs of train_atari.py, evaluate.py and compare_runs.py through the CLIs."""

import json
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
import yaml
from stable_baselines3.common.monitor import load_results
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from agents.train import resume_seed
from tests.cli import ROOT, error_lines, run_script, subprocess_script

TINY = ["--n-envs", "2", "--no-progress", "--eval-freq", "0", "--seed", "0"]


def train(capsys, logdir, *args):
    return run_script(capsys, "train_atari.py", "--logdir", logdir, *TINY, *args)


def points_logged(run_dir, tag):
    """Per event file that logged `tag`, its (step, value) points."""
    points = []
    for path in sorted(run_dir.glob("events.out.tfevents.*")):
        acc = EventAccumulator(str(path), size_guidance={"scalars": 0}).Reload()
        if tag in acc.Tags()["scalars"]:
            points.append([(e.step, e.value) for e in acc.Scalars(tag)])
    return points


def steps_logged(run_dir, tag):
    return [[step for step, _ in file] for file in points_logged(run_dir, tag)]


def values_logged(run_dir, tag):
    return [[value for _, value in file] for file in points_logged(run_dir, tag)]


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    """A conv and a CoordConv A2C run on Ms. Pac-Man, 1200 steps each (a game or two per env).

    Ms. Pac-Man, not Breakout: an untrained greedy agent never presses FIRE after a lost life,
    so a Breakout evaluation game runs to the 108,000-frame cap."""
    logdir = tmp_path_factory.mktemp("runs")
    # Subprocesses: a module-scoped fixture cannot use the function-scoped capsys.
    for extractor in ("conv", "coordconv"):
        proc = subprocess.run(
            [sys.executable, str(ROOT / "scripts" / "train_atari.py"), "--logdir", str(logdir)]
            + TINY
            + ["--env", "MsPacman", "--extractor", extractor, "--timesteps", "1200"]
            + ["--eval-freq", "600", "--eval-episodes", "1", "--checkpoint-freq", "600"],
            capture_output=True,
            text=True,
            cwd=ROOT,
        )
        assert proc.returncode == 0, proc.stderr
    return logdir


def test_run_folder_is_self_describing(two_runs):
    run = two_runs / "MsPacman" / "a2c_coordconv_s0"
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["env"] == "MsPacman" and config["extractor"] == "coordconv"
    assert config["hyperparams"]["n_envs"] == 2 and config["hyperparams"]["n_timesteps"] == 1200
    assert config["hyperparams"]["optimizer"] == "RMSpropTFLike"  # RL Zoo's A2C setup
    assert config["deterministic_eval"] is False  # sampled, as RL Zoo evaluates Atari
    assert config["device"] == "cpu" and config["tf32"] is False  # resolved, not `auto`
    assert "--extractor coordconv" in (run / "command.txt").read_text()
    versions = json.loads((run / "versions.json").read_text())
    assert {"python", "torch", "stable-baselines3", "gymnasium", "ale-py", "numpy"} <= set(versions)
    device = versions["device"]
    assert (device["device"], device["cuda"], device["tf32"]) == ("cpu", None, False)
    assert device["device_model"]  # the CPU's model name
    assert json.loads((run / "train_result.json").read_text())["device"] == device
    for name in ("model.zip", "best_model.zip", "evaluations.json", "train_result.json"):
        assert (run / name).is_file(), name
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == [
        "model_1200_steps.zip",
        "model_600_steps.zip",
    ]
    assert sorted(p.name for p in (run / "monitor").iterdir()) == ["0.monitor.csv", "1.monitor.csv"]
    evaluations = json.loads((run / "evaluations.json").read_text())
    assert [e["timesteps"] for e in evaluations] == [600, 1200]
    assert [e["deterministic"] for e in evaluations] == [False, False]
    tags = set()
    for path in run.glob("events.out.tfevents.*"):
        tags |= set(EventAccumulator(str(path)).Reload().Tags()["scalars"])
    assert {"charts/episodic_return", "charts/episodic_length", "eval/mean_reward"} <= tags
    assert {"train/entropy_loss", "train/explained_variance", "train/learning_rate"} <= tags
    assert "time/fps" in tags
    assert not list(run.rglob("*.tmp")) and not list(run.rglob(".*.zip"))


def test_saved_agent_loads_with_plain_sb3_in_a_fresh_process(two_runs):
    model = two_runs / "MsPacman" / "a2c_coordconv_s0" / "model.zip"
    code = (
        "import sys; from stable_baselines3 import A2C; m = A2C.load(sys.argv[1], device='cpu'); "
        "print(type(m.policy.features_extractor.cnn[0]).__name__)"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(model)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "CoordConv2d"


def test_evaluate_writes_eval_json_and_video(two_runs, capsys, tmp_path):
    run = two_runs / "MsPacman" / "a2c_conv_s0"
    video = tmp_path / "game.mp4"
    r = run_script(capsys, "evaluate.py", run, "--episodes", "2", "--video", video, "--seed", "1")
    assert r.code == 0, r.err
    assert "2 episodes, return" in r.out
    result = json.loads((run / "eval.json").read_text())
    assert len(result["episode_rewards"]) == 2 and result["model"].endswith("best_model.zip")
    assert result["min_reward"] <= result["mean_reward"] <= result["max_reward"]
    assert (result["device"], result["tf32"]) == ("cpu", False)  # what it played on
    import imageio.v2 as imageio

    reader = imageio.get_reader(video)
    assert reader.get_data(0).shape == (210, 160, 3)  # the Atari's own resolution
    assert reader.count_frames() == result["episode_lengths"][0] + 1  # every frame of game 1
    gif = tmp_path / "game.gif"
    r = run_script(capsys, "evaluate.py", run, "--episodes", "1", "--video", gif)
    assert r.code == 0 and imageio.mimread(gif)[0].shape[:2] == (210, 160)


def test_compare_runs_groups_conv_and_coordconv(two_runs, capsys, tmp_path):
    r = run_script(capsys, "compare_runs.py", two_runs / "MsPacman", "--out", tmp_path)
    assert r.code == 0, r.err
    assert "a2c conv" in r.out and "a2c coordconv" in r.out
    data = json.loads((tmp_path / "comparison.json").read_text())
    assert sorted(g["label"] for g in data["groups"]) == ["a2c conv", "a2c coordconv"]
    assert (tmp_path / "comparison.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_same_run_name_gets_a_suffix(capsys, tmp_path):
    for _ in range(2):
        r = train(capsys, tmp_path, "--env", "MsPacman", "--timesteps", "20", "--run-name", "x")
        assert r.code == 0, r.err
    assert sorted(p.name for p in (tmp_path / "MsPacman").iterdir()) == ["x", "x_2"]


def test_resume_continues_the_step_axis(capsys, tmp_path):
    args = ["--env", "MsPacman", "--timesteps", "100", "--checkpoint-freq", "50"]
    ppo = ["--algo", "ppo", "--set", "n_steps=25", "--set", "batch_size=25"]
    assert train(capsys, tmp_path, *args, *ppo).code == 0
    run = tmp_path / "MsPacman" / "ppo_coordconv_s0"
    r = run_script(capsys, "train_atari.py", "--resume", run, "--timesteps", "200", "--no-progress")
    assert r.code == 0, r.err
    # steps/s of this session only
    assert "finished: 200 steps (100 since the resume)" in r.out
    assert json.loads((run / "train_result.json").read_text())["trained_timesteps"] == 100
    assert (run / "checkpoints" / "model_200_steps.zip").is_file()
    first, second = steps_logged(run, "train/learning_rate")
    assert max(first) <= 100 < min(second) and max(second) == 200
    # The linear schedule had reached 0 at the old total: extending must not lift it back up
    # (SB3 would evaluate it at 1 - 150 / 200 and train at 6.25e-5 again).
    rates = values_logged(run, "train/learning_rate")
    assert rates[0][0] > 0 and set(rates[1]) == {0.0}
    assert "learning_rate stays at its final value 0" in r.err
    # Fresh random streams derived from seed and step count: not a replay of steps 0..100.
    assert torch.initial_seed() == resume_seed(0, 100) != 0
    assert len((run / "command.txt").read_text().splitlines()) == 2
    for csv in (run / "monitor").glob("*.monitor.csv"):  # one header, appended on resume
        assert csv.read_text().count("#{") == 1
    load_results(str(run / "monitor"))  # SB3 reads them


def test_a_run_saved_before_the_backend_key_resumes(capsys, tmp_path):
    assert train(capsys, tmp_path, "--env", "MsPacman", "--timesteps", "40").code == 0
    run = tmp_path / "MsPacman" / "a2c_coordconv_s0"
    config = yaml.safe_load((run / "config.yaml").read_text())
    config["vec_env"] = config.pop("backend")  # how runs named the backend before --backend
    del config["precision"], config["tf32"]
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    r = run_script(capsys, "train_atari.py", "--resume", run, "--timesteps", "60", "--no-progress")
    assert r.code == 0, r.err
    resumed = yaml.safe_load((run / "config.yaml").read_text())
    assert (resumed["backend"], resumed["vec_env"]) == ("ale", "dummy")
    assert resumed["precision"] == "fp32"  # runs before the key trained in fp32
    assert resumed["tf32"] is False  # and in full fp32 arithmetic


def test_resuming_a_finished_run_does_nothing(capsys, tmp_path):
    assert train(capsys, tmp_path, "--env", "MsPacman", "--timesteps", "40").code == 0
    run = tmp_path / "MsPacman" / "a2c_coordconv_s0"
    before = {p: p.stat().st_mtime_ns for p in run.rglob("*")}
    r = run_script(capsys, "train_atari.py", "--resume", run, "--no-progress")
    assert r.code == 0, r.err
    assert f"nothing to do: {run} is at 40 steps, its total is 40" in r.out
    assert {p: p.stat().st_mtime_ns for p in run.rglob("*")} == before


def test_resume_with_no_readable_model_exits_2(capsys, tmp_path):
    assert train(capsys, tmp_path, "--env", "MsPacman", "--timesteps", "40").code == 0
    run = tmp_path / "MsPacman" / "a2c_coordconv_s0"
    model = run / "model.zip"
    model.write_bytes(model.read_bytes()[:1000])  # cut short, as by a full disk
    r = run_script(capsys, "train_atari.py", "--resume", run, "--no-progress")
    lines = error_lines(r.err)
    assert r.code == 2 and len(lines) == 1, r.err
    assert (
        lines[0].startswith("error: no readable model to resume from") and "model.zip" in lines[0]
    )


def test_both_backends_log_the_same_keys(capsys, tmp_path):
    tags = {}
    for backend in ("ale", "sb3"):
        r = train(
            capsys, tmp_path, "--env", "MsPacman", "--timesteps", "2400", "--backend", backend,
            "--run-name", backend, "--eval-freq", "1200", "--eval-episodes", "1",
        )  # fmt: skip
        assert r.code == 0, r.err
        run = tmp_path / "MsPacman" / backend
        assert yaml.safe_load((run / "config.yaml").read_text())["backend"] == backend
        acc = EventAccumulator(str(run)).Reload()
        tags[backend] = set(acc.Tags()["scalars"])
    assert tags["ale"] == tags["sb3"] and "eval/mean_reward" in tags["ale"]


def test_ctrl_c_saves_the_model(tmp_path):
    proc = subprocess_script(
        "train_atari.py",
        "--logdir",
        tmp_path,
        *TINY,
        "--env",
        "MsPacman",
        "--timesteps",
        "1000000",
        "--checkpoint-freq",
        "0",
    )
    run = tmp_path / "MsPacman" / "a2c_coordconv_s0"
    deadline = time.time() + 120
    while not list(run.glob("events.out.tfevents.*")) and time.time() < deadline:
        time.sleep(0.5)
    time.sleep(3)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "interrupted" in out and (run / "model.zip").is_file()
    from stable_baselines3 import A2C

    steps = A2C.load(run / "model.zip", device="cpu").num_timesteps
    assert steps > 0
    # No checkpoint was written: the resume continues from the model Ctrl-C saved.
    proc = subprocess_script(
        "train_atari.py", "--resume", run, "--timesteps", steps + 20, "--no-progress"
    )
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert f"finished: {steps + 20} steps (20 since the resume)" in out


def test_nan_loss_stops_with_checkpoint_intact(capsys, tmp_path):
    r = train(
        capsys,
        tmp_path,
        "--env",
        "MsPacman",
        "--timesteps",
        "200",
        "--checkpoint-freq",
        "10",
        "--set",
        "ent_coef=nan",
    )
    assert r.code == 1
    assert "training diverged: train/" in r.err or "training diverged: weight" in r.err
    assert "last checkpoint 10 steps kept intact" in r.err
    run = tmp_path / "MsPacman" / "a2c_coordconv_s0"
    assert not (run / "model.zip").exists()
    import torch
    from stable_baselines3 import A2C

    model = A2C.load(run / "checkpoints" / "model_10_steps.zip", device="cpu")
    assert all(torch.isfinite(p).all() for p in model.policy.parameters())


BAD_TRAIN = [
    (["--env", "MsPacmn"], "unknown Atari game 'MsPacmn'; nearest valid names: MsPacman"),
    (
        ["--env", "MsPacman", "--extractor", "coord"],
        "unknown extractor 'coord'; valid: conv, coordconv, coordconv-all",
    ),
    (["--env", "MsPacman", "--set", "learning_rat=1"], "unknown hyperparameter 'learning_rat'"),
    (["--env", "MsPacman", "--set", "gamma"], "--set expects key=value, got 'gamma'"),
    (["--env", "MsPacman", "--config", "nope.yaml"], "config file not found: nope.yaml"),
    (["--env", "MsPacman", "--extractor", "conv", "--with-r"], "not 'conv'"),
    (["--env", "MsPacman", "--n-envs", "0"], "n_envs must be a number >= 1, got 0"),
    (["--env", "MsPacman", "--timesteps", "-5"], "n_timesteps must be a number >= 1, got -5"),
    (["--env", "MsPacman", "--device", "cuda"], "--device cuda: no CUDA device is available"),
    (["--env", "MsPacman", "--device", "cuda:abc"], "--device 'cuda:abc' is not one of auto, cpu"),
    (["--env", "MsPacman", "--device", "gpu"], "--device 'gpu' is not one of auto, cpu, cuda"),
    (["--env", "MsPacman", "--set", "learning_rate=linear(1e-3)"], "cannot read schedule"),
    (["--env", "MsPacman", "--backend", "gpu"], "unknown --backend 'gpu'; valid: ale, sb3"),
    (["--env", "MsPacman", "--vec-env", "gpu"], "unknown --vec-env 'gpu'; valid: dummy, subproc"),
    (["--env", "MsPacman", "--vec-env", "ale"], "for the backend use --backend ale"),
    (["--env", "MsPacman", "--num-threads", "0"], "--num-threads must be >= 1, got 0"),
    (["--resume", "no/such/run"], "run folder not found: no/such/run"),
    (["--env", "MsPacman", "--set", "ent_coef=abc"], "ent_coef must be a number, got 'abc'"),
    (["--env", "MsPacman", "--set", "gamma=high"], "gamma must be a number, got 'high'"),
    (["--env", "MsPacman", "--set", "vf_coef=[1,2]"], "vf_coef must be a number, got [1, 2]"),
    (["--env", "MsPacman", "--set", "max_grad_norm=None"], "max_grad_norm must be a number"),
    (["--env", "MsPacman", "--set", "normalize_advantage=maybe"], "must be true or false"),
    (["--env", "MsPacman", "--set", "gae_lambda=-1"], "gae_lambda must be in [0, 1], got -1"),
    (["--env", "MsPacman", "--seed", "-1"], "--seed must be >= 0, got -1"),
    (["--env", "MsPacman", "--precision", "fp16"], "unknown --precision 'fp16'; valid: fp32, bf16"),
    (
        ["--env", "MsPacman", "--algo", "ppo", "--set", "batch_size=1", "--set", "n_steps=4"],
        "SB3 PPO refused the config: `batch_size` must be greater than 1",
    ),
    ([], "--env is required"),
]


@pytest.mark.parametrize("args,message", BAD_TRAIN, ids=lambda a: str(a)[:40])
def test_bad_train_input_exits_2_with_one_line(capsys, tmp_path, args, message):
    r = run_script(capsys, "train_atari.py", "--logdir", tmp_path, "--no-progress", *args)
    assert r.code == 2
    lines = error_lines(r.err)
    assert len(lines) == 1 and message in lines[0], r.err
    assert not (tmp_path / "MsPacman").exists()  # nothing created for a refused run


def test_bad_config_files(capsys, tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text("n_envs: [1,\n")
    r = run_script(capsys, "train_atari.py", "--env", "Pong", "--config", broken, "--no-progress")
    assert r.code == 2 and "is not readable YAML" in r.err
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text("n_envs: 2\nlearning_rte: 0.1\n")
    r = run_script(capsys, "train_atari.py", "--env", "Pong", "--config", unknown, "--no-progress")
    assert r.code == 2 and f"unknown hyperparameter 'learning_rte' in {unknown}" in r.err


def test_bad_evaluate_input_exits_2_with_one_line(capsys, tmp_path, two_runs):
    run = two_runs / "MsPacman" / "a2c_conv_s0"
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "config.yaml").write_text((run / "config.yaml").read_text())
    (corrupt / "model.zip").write_bytes(b"not a zip")
    cases = [
        ([tmp_path / "missing"], "run folder not found"),
        ([tmp_path], "not a run folder (no config.yaml)"),
        ([corrupt, "--checkpoint", "final"], "corrupt model file (not a zip)"),
        ([corrupt, "--checkpoint", "best"], "model file not found"),
        ([run, "--checkpoint", "999"], "no checkpoint at step 999"),
        ([run, "--checkpoint", "latest"], "--checkpoint must be best, final or a step count"),
        ([run, "--episodes", "0"], "--episodes must be >= 1, got 0"),
        ([run, "--video", tmp_path / "v.avi"], "--video must end in .mp4 or .gif"),
        ([run, "--device", "cuda"], "--device cuda: no CUDA device is available"),
        ([run, "--device", "cuda:x"], "--device 'cuda:x' is not one of auto, cpu, cuda, cuda:N"),
        ([run, "--precision", "half"], "unknown --precision 'half'; valid: fp32, bf16"),
    ]
    for args, message in cases:
        r = run_script(capsys, "evaluate.py", *args)
        lines = error_lines(r.err)
        assert r.code == 2 and len(lines) == 1 and message in lines[0], (args, r.err)


def test_evaluations_log_each_coordconv_layers_coordinate_share(two_runs):
    run = two_runs / "MsPacman" / "a2c_coordconv_s0"
    history = json.loads((run / "evaluations.json").read_text())
    tag = "coords/features_extractor.cnn.0/share"
    assert [e["timesteps"] for e in history] == [s for s in steps_logged(run, tag)[0]]
    for entry in history:
        coords = entry["coordinates"]
        assert 0 < coords["frames"] <= 256 and coords["seconds"] > 0
        assert list(coords["layers"]) == ["features_extractor.cnn.0"]  # the first conv only
        stats = coords["layers"]["features_extractor.cnn.0"]
        assert 0 <= stats["share"] <= 1 and stats["weight_ratio"] > 0  # trained off zero
    logged = values_logged(run, "coords/features_extractor.cnn.0/weight_ratio")[0]
    assert logged == pytest.approx(
        [e["coordinates"]["layers"]["features_extractor.cnn.0"]["weight_ratio"] for e in history]
    )
    conv = two_runs / "MsPacman" / "a2c_conv_s0"
    assert "coordinates" not in json.loads((conv / "evaluations.json").read_text())[0]
    assert points_logged(conv, tag) == []


def test_evaluate_coords_pairs_ablated_games_and_compare_runs_shows_reliance(
    two_runs, capsys, tmp_path
):
    run = two_runs / "MsPacman" / "a2c_coordconv_s0"
    args = ["--episodes", "2", "--checkpoint", "final"]
    r = run_script(capsys, "evaluate.py", run, *args, "--coords", "zero,flip")
    assert r.code == 0, r.err
    assert "coordinates zero: return" in r.out and "coordinates flip: return" in r.out
    reliance = json.loads((run / "reliance.json").read_text())
    base = reliance["as_trained"]["episode_rewards"]
    assert list(reliance["changes"]) == ["zero", "flip"]
    for mode, change in reliance["changes"].items():
        played = reliance["modes"][mode]["episode_rewards"]
        assert change["per_game"] == pytest.approx(
            [a - b for a, b in zip(played, base, strict=True)]
        )
        assert change["change"] == pytest.approx(np.mean(change["per_game"]))
        assert change["ci95"][0] <= change["change"] <= change["ci95"][1]
    # As trained, the same seeds replay the same games: eval.json's scores are reliance's.
    assert json.loads((run / "eval.json").read_text())["episode_rewards"] == base
    r = run_script(capsys, "evaluate.py", run, *args)
    assert r.code == 0 and json.loads((run / "eval.json").read_text())["episode_rewards"] == base
    r = run_script(capsys, "compare_runs.py", two_runs / "MsPacman", "--out", tmp_path)
    assert r.code == 0, r.err
    table = (tmp_path / "comparison.md").read_text()
    assert "coordinates ablated: score change [95% CI]" in table
    assert f"zero {reliance['changes']['zero']['change']:+.1f}" in table
    groups = {
        g["label"]: g for g in json.loads((tmp_path / "comparison.json").read_text())["groups"]
    }
    assert groups["a2c conv"]["reliance"] is None
    assert groups["a2c coordconv"]["reliance"]["flip"]["runs"] == 1


def test_evaluate_coords_rejects_a_conv_agent_and_unknown_modes(two_runs, capsys):
    conv = two_runs / "MsPacman" / "a2c_conv_s0"
    cases = [
        ([conv, "--coords", "zero"], "has no CoordConv layer, so no coordinates to ablate"),
        ([conv, "--coords", "zero,mirror"], "unknown --coords 'mirror'; valid: as-trained, zero"),
    ]
    for args, message in cases:
        r = run_script(capsys, "evaluate.py", *args, "--episodes", "1", "--checkpoint", "final")
        lines = error_lines(r.err)
        assert r.code == 2 and len(lines) == 1 and message in lines[0], (args, r.err)
    assert not (conv / "reliance.json").exists()


@pytest.mark.slow  # a benchmark harness: beside the other bench tests, in CI's slow run
def test_bench_reliance_writes_the_page_from_a_study_folder(two_runs, capsys, tmp_path):
    out = tmp_path / "coord_reliance.md"
    out.write_text("# old\n\n## Reading\n\nkept by hand.\n")
    args = [two_runs, "--episodes", "1", "--out", out, "--no-progress"]
    r = run_script(capsys, "bench_reliance.py", *args)
    assert r.code == 0, r.err
    page = out.read_text()
    assert "| 0 |" in page and "Paired difference over 1 seed(s)" in page  # conv vs coordconv, s0
    assert "| a2c_coordconv_s0 | model.zip | 1 |" in page
    assert page.rstrip().endswith("## Reading\n\nkept by hand.")
    data = json.loads(out.with_suffix(".json").read_text())
    assert [row["run"] for row in data["reliance"]] == ["a2c_coordconv_s0"]
    assert data["share"]["a2c_coordconv_s0"]["source"] == "evaluations.json"
    assert out.with_name("coord_reliance_share.png").stat().st_size > 1000
    study = (two_runs / "report" / "study.md").read_text()  # the study report's reliance column
    assert "coordinates ablated: score change [95% CI]" in study
    r = run_script(capsys, "bench_reliance.py", two_runs / "MsPacman" / "a2c_conv_s0")
    assert r.code == 2 and "no CoordConv runs under" in error_lines(r.err)[0]


@pytest.mark.slow  # a benchmark harness: beside the other bench tests, in CI's slow run
def test_share_curve_from_checkpoints_has_the_weights_the_evaluations_logged(two_runs, tmp_path):
    import shutil

    from benchmarks.reliance import share_curve

    run = tmp_path / "a2c_coordconv_s0"
    shutil.copytree(two_runs / "MsPacman" / "a2c_coordconv_s0", run)
    history = json.loads((run / "evaluations.json").read_text())
    logged = [e["coordinates"]["layers"]["features_extractor.cnn.0"] for e in history]
    (run / "evaluations.json").write_text(json.dumps([{"timesteps": 600}]))  # as before logging
    points, source = share_curve(run)
    assert source == "checkpoints" and [p["steps"] for p in points] == [600, 1200]
    # The checkpoint and the evaluation at a step hold the same weights; frames differ.
    assert [p["weight_ratio"] for p in points] == pytest.approx([s["weight_ratio"] for s in logged])
    assert all(0 <= p["share"] <= 1 for p in points)
