"""The wheel: every package, the configs and the commands, installed (not editable) into a fresh
venv and trained with from a folder outside the checkout."""

import configparser
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
import yaml

from tests.cli import ROOT

# Not part of the wheel, and large or changing under other tests: left out of the build's copy.
NOT_BUILT = (".git", ".venv", "build", "*.egg-info", "__pycache__", ".*_cache", "runs", "docs")


def _packages() -> set[str]:
    """The checkout's packages (folders with an __init__.py), by their __init__ path."""
    inits = {p.relative_to(ROOT).as_posix() for p in ROOT.glob("**/__init__.py")}
    return {p for p in inits if p.split("/")[0] not in ("tests", ".venv", "build")}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel pip builds from a copy of this checkout, offline."""
    tmp = tmp_path_factory.mktemp("wheel")
    # A copy: setuptools writes build/ and *.egg-info into the tree it builds.
    shutil.copytree(ROOT, tmp / "src", ignore=shutil.ignore_patterns(*NOT_BUILT, "tests"))
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(tmp / "src"), "--no-deps", "-w", str(tmp)]
        + ["--no-build-isolation", "--no-index", "--quiet"],
        check=True,
    )
    (path,) = tmp.glob("*.whl")
    return path


def test_wheel_holds_every_package_config_and_command(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    assert _packages() <= names
    configs = {p.relative_to(ROOT).as_posix() for p in (ROOT / "configs").rglob("*.yaml")}
    assert {"configs/atari/a2c.yaml", "configs/toy/regression.yaml"} <= configs <= names
    assert "coordconv/py.typed" in names
    (entry_points,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
    parser = configparser.ConfigParser()
    parser.read_string(zipfile.ZipFile(wheel).read(entry_points).decode())
    commands = dict(parser["console_scripts"])
    # Each script that runs a command module is that module's console entry point.
    for script in (ROOT / "scripts").glob("*.py"):
        module = f"commands.{script.stem}"
        if f"from {module} import main" in script.read_text():
            name = "coordconv-" + script.stem.replace("_", "-")
            assert commands.pop(name) == f"{module}:run"
            assert f"commands/{script.stem}.py" in names
    assert not commands, f"entry points without a script: {commands}"


def _fresh_venv(path: Path, wheel: Path) -> Path:
    """A venv at `path` with the wheel installed and the dev venv's packages (torch, SB3, ...)
    visible, but not its editable install of this checkout; returns its python."""
    subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)
    python = path / "bin" / "python"
    # Installed before the dev packages are visible, so pip sees no coordconv-suite to replace.
    pip = [str(python), "-m", "pip", "install", "--no-deps", "--no-index", "--quiet", str(wheel)]
    subprocess.run(pip, check=True)
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    # A path line in a .pth file adds that folder to sys.path without running the .pth files in
    # it: the dev venv's __editable__ finder, which maps the packages to this checkout, stays off.
    dev = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (Path(site) / "dev-dependencies.pth").write_text("\n".join(sorted(dev)) + "\n")
    return python


@pytest.mark.slow
def test_wheel_installs_and_trains_outside_the_checkout(wheel, tmp_path):
    python = _fresh_venv(tmp_path / "venv", wheel)
    bin_dir = python.parent
    work = tmp_path / "work"  # the user's folder: no configs/ in sight
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}

    def run(*command: str) -> subprocess.CompletedProcess:
        return subprocess.run(command, cwd=work, env=env, capture_output=True, text=True)

    imports = "import agents, commands, configs; print(agents.__file__, commands.__file__)"
    where = run(str(python), "-c", imports)
    assert where.returncode == 0, where.stderr
    for file in where.stdout.split():
        assert Path(file).is_relative_to(tmp_path / "venv"), where.stdout

    atari = run(
        str(bin_dir / "coordconv-train-atari"), "--env", "MsPacman", "--timesteps", "40",
        "--n-envs", "2", "--eval-freq", "0", "--no-progress",
    )  # fmt: skip
    assert atari.returncode == 0, atari.stderr
    run_dir = work / "runs" / "MsPacman" / "a2c_coordconv_s0"
    for name in ("config.yaml", "command.txt", "versions.json", "model.zip", "train_result.json"):
        assert (run_dir / name).is_file(), name
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert Path(config["config_file"]).is_relative_to(tmp_path / "venv")
    assert config["hyperparams"]["optimizer"] == "RMSpropTFLike"  # configs/atari/a2c.yaml's
    assert (run_dir / "command.txt").read_text().startswith("coordconv-train-atari --env MsPacman")

    toy = run(
        str(bin_dir / "coordconv-train-toy"), "--task", "regression", "--split", "quadrant",
        "--epochs", "1", "--no-progress", "--out", "toy",
    )  # fmt: skip
    assert toy.returncode == 0, toy.stderr
    assert (work / "toy" / "results.json").is_file()

    bad = run(str(bin_dir / "coordconv-train-toy"), "--task", "segmentation")
    assert bad.returncode == 2 and bad.stderr.startswith("error: unknown task 'segmentation'")
