"""configs/: the YAML defaults found through the package, and checkout spellings from any folder."""

import pytest
import torch

from agents.config import default_config_path, load_hyperparams
from agents.run_dir import write_run_metadata
from agents.train import TrainSettings, resolve_config
from common.errors import UsageError
from configs import find_config, shipped_config
from studies.spec import load_spec
from tests.cli import ROOT


def test_every_checkout_yaml_is_a_shipped_config():
    yamls = sorted(p.relative_to(ROOT / "configs") for p in (ROOT / "configs").rglob("*.yaml"))
    assert {"atari/a2c.yaml", "toy/regression.yaml", "studies/atari9.yaml"} <= set(map(str, yamls))
    for relative in yamls:
        assert (
            shipped_config(str(relative)).read_text() == (ROOT / "configs" / relative).read_text()
        )
    assert default_config_path("ppo") == shipped_config("atari/ppo.yaml")


def test_checkout_spellings_work_from_any_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = resolve_config(
        TrainSettings(env="MsPacman", algo="ppo", config="configs/atari/ppo.yaml")
    )
    assert config["config_file"] == str(shipped_config("atari/ppo.yaml"))
    assert config["hyperparams"]["n_epochs"] == 4  # RL Zoo's PPO, read from the shipped file
    assert load_spec("configs/studies/mspacman_pilot.yaml").name == "mspacman_pilot"
    # A file of that name in the folder is the user's own, and wins.
    (tmp_path / "configs" / "atari").mkdir(parents=True)
    (tmp_path / "configs" / "atari" / "ppo.yaml").write_text("n_envs: 3\n")
    assert find_config("configs/atari/ppo.yaml").resolve() == tmp_path / "configs/atari/ppo.yaml"
    assert load_hyperparams(find_config("configs/atari/ppo.yaml"), "ppo") == {"n_envs": 3}


@pytest.mark.parametrize("path", ["configs/atari/nope.yaml", "atari/a2c.yaml", "/configs/a.yaml"])
def test_other_paths_stay_as_given(tmp_path, monkeypatch, path):
    monkeypatch.chdir(tmp_path)
    assert str(find_config(path)) == path
    with pytest.raises(UsageError, match=f"config file not found: {path}$"):
        resolve_config(TrainSettings(env="MsPacman", config=path))


def test_command_txt_records_an_installed_command_alone(tmp_path):
    cpu = torch.device("cpu")
    write_run_metadata(tmp_path, {}, ["coordconv-train-atari", "--env", "MsPacman"], cpu)
    write_run_metadata(tmp_path, {}, ["scripts/train_atari.py", "--env", "MsPacman"], cpu)
    first, second = (tmp_path / "command.txt").read_text().splitlines()
    assert first == "coordconv-train-atari --env MsPacman"
    assert second.endswith(" scripts/train_atari.py --env MsPacman")
    assert second.split()[0].startswith("python")
