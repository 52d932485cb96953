"""DQN and QR-DQN: tiny runs on both backends, plain SB3 loads, evaluation, ONNX, resume with and
without a saved replay buffer, and the Q-networks' parameter parity and equal starting weights."""

import subprocess
import sys

import pytest
import torch
from sb3_contrib import QRDQN
from stable_baselines3 import DQN
from stable_baselines3.common.save_util import load_from_pkl

from agents.export import export_onnx
from agents.train import TrainSettings, restore_replay_buffer, train_atari
from coordconv import CoordConv2d
from envs import make_atari_vec_env
from policies import policy_kwargs_for
from policies.precision import precision_of, set_precision
from studies.spec import load_spec, plan_runs
from tests.cli import error_lines, run_script

ALGOS = {"dqn": DQN, "qrdqn": QRDQN}
# A small buffer, training from step 50, and epsilon 1 throughout: an evaluation game is then a
# random one (short), not an untrained greedy one, which can run to the frame cap.
TINY = [
    "buffer_size=1000",
    "learning_starts=50",
    "exploration_initial_eps=1",
    "exploration_final_eps=1",
    "target_update_interval=50",
]


def online_and_target(policy):
    """(online network, target network) of a DQN or QR-DQN policy."""
    if hasattr(policy, "q_net"):
        return policy.q_net, policy.q_net_target
    return policy.quantile_net, policy.quantile_net_target


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """dqn and qrdqn x conv and coordconv, 200 steps each; dqn on the ale backend, qrdqn on sb3;
    the coordconv runs keep their replay buffer (--save-replay-buffer), the conv runs do not."""
    logdir = tmp_path_factory.mktemp("runs")
    out = {}
    for algo, backend in (("dqn", "ale"), ("qrdqn", "sb3")):
        for extractor in ("conv", "coordconv"):
            settings = TrainSettings(
                env="MsPacman", algo=algo, extractor=extractor, timesteps=200, sets=TINY,
                eval_freq=0, checkpoint_freq=100, save_replay_buffer=extractor == "coordconv",
                backend=backend, num_threads=1, progress=False, logdir=str(logdir),
            )  # fmt: skip
            result = train_atari(settings, ["tests/test_value_based.py"])
            assert result.status == "finished", result.message
            out[algo, extractor] = result.run_dir
    return out


def test_runs_keep_models_checkpoints_and_the_newest_buffer(runs):
    for (algo, extractor), run in runs.items():
        config = (run / "config.yaml").read_text()
        assert f"algo: {algo}" in config and "buffer_size: 1000" in config
        assert (run / "model.zip").is_file()
        names = sorted(p.name for p in (run / "checkpoints").iterdir())
        assert names == ["model_100_steps.zip", "model_200_steps.zip"]
        buffers = sorted(p.name for p in run.glob("replay_buffer_*"))
        # One buffer, the newest: the one saved with the step-100 checkpoint is gone.
        assert buffers == (["replay_buffer_200_steps.pkl"] if extractor == "coordconv" else [])
        assert not list(run.rglob(".*.pkl")) and not list(run.rglob(".*.zip"))


def test_saved_agents_load_with_plain_dqn_and_qrdqn_load(runs):
    code = (
        "import sys; from stable_baselines3 import DQN; from sb3_contrib import QRDQN\n"
        "for algo, path in zip(sys.argv[1::2], sys.argv[2::2]):\n"
        "    m = {'dqn': DQN, 'qrdqn': QRDQN}[algo].load(path, device='cpu')\n"
        "    net = m.policy.q_net if algo == 'dqn' else m.policy.quantile_net\n"
        "    print(algo, type(net.features_extractor.cnn[0]).__name__, m.num_timesteps)\n"
    )
    args = [str(a) for (algo, _), run in runs.items() for a in (algo, run / "model.zip")]
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split("\n")[:4] == [
        "dqn Conv2d 200",
        "dqn CoordConv2d 200",
        "qrdqn Conv2d 200",
        "qrdqn CoordConv2d 200",
    ]


@pytest.mark.parametrize("key", [("dqn", "coordconv"), ("qrdqn", "conv")])
def test_evaluate_and_onnx_export(runs, capsys, tmp_path, key):
    run = runs[key]
    r = run_script(capsys, "evaluate.py", run, "--episodes", "1", "--checkpoint", "final")
    assert r.code == 0, r.err
    assert (
        "1 episodes, return" in r.out and f'"algo": "{key[0]}"' in (run / "eval.json").read_text()
    )
    result = export_onnx(run, tmp_path / "q.onnx", "final", n_observations=4)
    assert result["outputs"] == {"q_values": "(batch, n_actions)"}
    assert result["max_abs_diff_q_values"] <= 1e-4 and (tmp_path / "q.onnx").is_file()


def test_resume_restores_the_saved_buffer(runs, capsys):
    run = runs["dqn", "coordconv"]
    saved = load_from_pkl(run / "replay_buffer_200_steps.pkl").size()
    assert saved == 200
    r = run_script(capsys, "train_atari.py", "--resume", run, "--timesteps", "240", "--no-progress")
    assert r.code == 0, r.err
    assert f"resumed with the saved replay buffer: {saved} transitions" in r.err
    assert "empty replay buffer" not in r.err
    # The buffer carried on: 240 transitions, not the 40 of an empty one; the older one is gone.
    assert [p.name for p in run.glob("replay_buffer_*")] == ["replay_buffer_240_steps.pkl"]
    assert load_from_pkl(run / "replay_buffer_240_steps.pkl").size() == 240


def test_resume_without_a_buffer_says_so_in_one_line(runs, capsys, tmp_path):
    run = runs["qrdqn", "conv"]
    model = QRDQN.load(run / "checkpoints" / "model_200_steps.zip", device="cpu")
    message = restore_replay_buffer(model, run, 200, 50)
    assert model.replay_buffer.size() == 0 and model.learning_starts == 250  # refills first
    assert "starts with an empty replay buffer" in message and "\n" not in message
    r = run_script(capsys, "train_atari.py", "--resume", run, "--timesteps", "240", "--no-progress")
    assert r.code == 0, r.err
    lines = [line for line in error_lines(r.err) if "replay buffer" in line]
    assert len(lines) == 1 and "starts with an empty replay buffer" in lines[0], r.err
    assert "--save-replay-buffer" in lines[0]
    # An unreadable buffer is reported and skipped, as an unreadable checkpoint is.
    (tmp_path / "replay_buffer_200_steps.pkl").write_bytes(b"not a pickle")
    message = restore_replay_buffer(model, tmp_path, 200, 50)
    assert "unreadable replay buffer" in message and "starts with an empty replay buffer" in message


@pytest.fixture(scope="module")
def env():
    venv = make_atari_vec_env("MsPacman", 1, seed=0, backend="ale")
    yield venv
    venv.close()


def coordinate_weights(net):
    """Weights of the coordinate columns of every CoordConv2d in `net`."""
    return sum(
        (m.weight.shape[1] - m.in_channels) * m.weight[:, 0].numel()
        for m in net.modules()
        if isinstance(m, CoordConv2d)
    )


def n_params(module):
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("algo", ALGOS)
@pytest.mark.parametrize("name", ["coordconv", "coordconv-all"])
def test_q_networks_parity_and_equal_starting_weights(env, algo, name):
    """Only the coordinate weights are new, they start at zero, and the rest equals conv's,
    in the online and the target network."""
    build = lambda extractor: ALGOS[algo](  # noqa: E731
        "CnnPolicy", env, buffer_size=10, policy_kwargs=policy_kwargs_for(extractor), seed=3,
        device="cpu",
    )  # fmt: skip
    conv, ours = build("conv"), build(name)
    for net, theirs in zip(
        online_and_target(ours.policy), online_and_target(conv.policy), strict=True
    ):
        extra = coordinate_weights(net)
        assert extra == (4_096 if name == "coordconv" else 4_096 + 2_048 + 1_152)
        assert n_params(net) == n_params(theirs) + extra
        modules, reference = dict(net.named_modules()), dict(theirs.named_parameters())
        for key, weight in net.named_parameters():
            layer = modules[key.rpartition(".")[0]]
            if isinstance(layer, CoordConv2d) and key.endswith("weight"):
                c = layer.in_channels
                assert torch.equal(weight[:, :c], reference[key]), key
                assert not weight[:, c:].any(), key
            else:
                assert torch.equal(weight, reference[key]), key
    assert n_params(ours.policy) == n_params(conv.policy) + 2 * extra  # online + target
    obs = torch.as_tensor(env.reset())
    online, _ = online_and_target(ours.policy)
    torch.testing.assert_close(online(obs), online_and_target(conv.policy)[0](obs))


def test_conv_q_network_is_rl_zoo_cnn_policy(env):
    ours = DQN("CnnPolicy", env, buffer_size=10, policy_kwargs=policy_kwargs_for("conv"))
    zoo = DQN("CnnPolicy", env, buffer_size=10)
    assert [p.shape for p in ours.policy.parameters()] == [p.shape for p in zoo.policy.parameters()]
    assert ours.policy.net_arch == zoo.policy.net_arch == []


def test_bf16_reaches_online_and_target_networks(env):
    model = QRDQN("CnnPolicy", env, buffer_size=10, policy_kwargs=policy_kwargs_for("coordconv"))
    set_precision(model.policy, "bf16")
    extractors = [net.features_extractor for net in online_and_target(model.policy)]
    assert precision_of(model.policy) == "bf16" and all("forward" in e.__dict__ for e in extractors)
    set_precision(model.policy, "fp32")
    assert not any("forward" in e.__dict__ for e in extractors)


BAD = [
    (["--set", "buffer_size=-1"], "buffer_size must be a number >= 1, got -1"),
    (["--set", "exploration_fraction=2"], "exploration_fraction must be in [0, 1], got 2"),
    (["--set", "learning_starts=-1"], "learning_starts must be a number >= 0, got -1"),
    (["--set", "train_freq=0"], "train_freq must be a number >= 1, got 0"),
    (["--set", "buffer_size=1.5"], "buffer_size must be a whole number, got 1.5"),
    (["--set", "n_quantiles=5"], "unknown hyperparameter 'n_quantiles'"),
    (
        [
            "--set",
            "buffer_size=100",
            "--set",
            "replay_buffer_kwargs={handle_timeout_termination: true}",
        ],
        "SB3 DQN refused the config: ReplayBuffer does not support optimize_memory_usage",
    ),
]


@pytest.mark.parametrize("args,message", BAD, ids=lambda a: str(a)[:40])
def test_bad_values_exit_2_with_one_line_and_no_folder(capsys, tmp_path, args, message):
    r = run_script(
        capsys, "train_atari.py", "--logdir", tmp_path, "--no-progress", "--env", "MsPacman",
        "--algo", "dqn", *args,
    )  # fmt: skip
    lines = error_lines(r.err)
    assert r.code == 2 and len(lines) == 1 and message in lines[0], r.err
    assert not (tmp_path / "MsPacman").exists()


def test_save_replay_buffer_is_for_off_policy_algos(capsys, tmp_path):
    r = run_script(
        capsys, "train_atari.py", "--logdir", tmp_path, "--env", "MsPacman", "--algo", "a2c",
        "--save-replay-buffer",
    )  # fmt: skip
    lines = error_lines(r.err)
    assert r.code == 2 and lines == ["error: --save-replay-buffer applies to dqn, qrdqn, not a2c"]


def test_studies_plan_value_based_runs(tmp_path):
    spec = tmp_path / "dqn.yaml"
    spec.write_text(
        "games: [Pong]\nalgos: [dqn, qrdqn, a2c]\nextractors: [conv, coordconv]\n"
        "with_r: [false]\nseeds: [0]\ntimesteps: 1000\nset: []\neval_freq: 0\n"
        "cpus_per_run: 1\ngpus_per_run: 0\nsave_replay_buffer: true\n"
    )
    runs = plan_runs(load_spec(spec), tmp_path)
    assert sorted(r.run_dir.name for r in runs) == sorted(
        f"{a}_{e}_s0" for a in ("dqn", "qrdqn", "a2c") for e in ("conv", "coordconv")
    )
    # The buffer is kept where there is one: A2C has none, and would refuse the flag.
    assert {r.settings.algo: r.settings.save_replay_buffer for r in runs} == {
        "dqn": True, "qrdqn": True, "a2c": False,
    }  # fmt: skip
