"""configs/cluster/aws.yaml: valid for Ray's cluster launcher, and a cluster the studies can use.

Offline: the config goes through what `ray up` does to it before any cloud call (Ray's
prepare_config: its AWS defaults filled in, the setup commands merged, each node type's
min/max_workers set) and then Ray's own validate_config (its JSON schema and cross-checks). No
boto3, no credentials, nothing launched.
"""

from __future__ import annotations

import copy
import re

import jsonschema
import pytest
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

from studies.spec import load_spec
from tests.cli import ROOT

CONFIG = ROOT / "configs" / "cluster" / "aws.yaml"
# README's install, from a checkout: every node installs the suite exactly so.
INSTALL = 'python3 -m venv .venv && .venv/bin/pip install -e ".[dev]"'


def load() -> dict:
    return yaml.safe_load(CONFIG.read_text())


def launcher_view(config: dict) -> dict:
    """The config as `ray up` checks it: prepared, then validated (raises if Ray refuses it)."""
    prepared = prepare_config(copy.deepcopy(config))
    validate_config(prepared)
    return prepared


def test_ray_validates_the_aws_cluster():
    prepared = launcher_view(load())
    assert prepared["provider"]["type"] == "aws"
    types = prepared["available_node_types"]
    head = types[prepared["head_node_type"]]
    # The head holds the driver and no run; the workers come from the autoscaler.
    assert head["resources"] == {"CPU": 0} and head["max_workers"] == 0
    gpu = [t for t in types.values() if t["resources"].get("GPU", 0) > 0]
    cpu = [t for name, t in types.items() if name != prepared["head_node_type"] and t not in gpu]
    assert len(gpu) == 1 and len(cpu) == 1
    assert sum(t["max_workers"] for t in types.values()) <= prepared["max_workers"]
    # A GPU study started at once finds a node that can hold its runs.
    assert gpu[0]["min_workers"] >= 1


@pytest.mark.parametrize("spec", ["atari9", "mspacman_pilot"])
def test_a_run_of_each_shipped_study_fits_a_worker(spec):
    study = load_spec(f"configs/studies/{spec}.yaml")
    types = load()["available_node_types"]

    def runs_per_node(resources: dict) -> float:
        fits = resources.get("CPU", 0) // study.cpus_per_run
        if study.gpus_per_run > 0:
            fits = min(fits, resources.get("GPU", 0) // study.gpus_per_run)
        return fits

    assert max(runs_per_node(t["resources"]) for t in types.values()) >= 1


def test_every_node_installs_the_suite_as_the_readme_does_and_mounts_the_shared_logdir():
    config = load()
    assert INSTALL in (ROOT / "README.md").read_text()
    setup = config["setup_commands"]  # run on the head and on every worker
    assert any(f"cd ~/coordconv-suite && {INSTALL}" == command for command in setup)
    assert config["file_mounts"] == {"~/coordconv-suite": "."}  # the checkout `ray up` runs in
    assert ".gitignore" in config["rsync_filter"]  # not the local .venv, nor runs/
    mount = next(command for command in setup if "/shared" in command)
    assert "nfs4" in mount and "mount /shared" in mount
    # Ray itself from the suite's venv on every node, so each run imports the suite.
    starts = config["head_start_ray_commands"] + config["worker_start_ray_commands"]
    assert all("~/coordconv-suite/.venv/bin/ray " in c for c in starts)
    assert any("ray start --head" in c for c in config["head_start_ray_commands"])
    assert not config.get("worker_setup_commands")  # the workers' setup is the shared one


def _without_resources(config):
    del config["available_node_types"]["gpu-worker"]["resources"]


def _misspelt_node_type_key(config):
    types = config["available_node_types"]
    types["cpu-worker"]["max_worker"] = types["cpu-worker"].pop("max_workers")


def _misspelt_top_level_key(config):
    config["setup_command"] = config.pop("setup_commands")


def _fractional_resources(config):
    config["available_node_types"]["gpu-worker"]["resources"]["GPU"] = 0.5


@pytest.mark.parametrize(
    ("break_it", "message"),
    [
        (_without_resources, "'resources' is a required property"),
        (_misspelt_node_type_key, "'max_worker'"),
        (_misspelt_top_level_key, "'setup_command'"),
        (_fractional_resources, "0.5 is not of type 'integer'"),
    ],
)
def test_a_broken_copy_fails_the_schema(break_it, message):
    config = load()
    break_it(config)
    with pytest.raises(jsonschema.ValidationError) as caught:
        launcher_view(config)
    assert message in caught.value.message


def _unknown_head(config):
    config["head_node_type"] = "ray.head.default"


def _more_min_workers_than_max(config):
    config["available_node_types"]["cpu-worker"]["min_workers"] = config["max_workers"]


@pytest.mark.parametrize(
    ("break_it", "message"),
    [
        (_unknown_head, "`head_node_type` must be one of `available_node_types`"),
        (_more_min_workers_than_max, "smaller than the sum of `min_workers`"),
    ],
)
def test_a_broken_copy_fails_the_cross_checks(break_it, message):
    config = load()
    break_it(config)
    with pytest.raises(ValueError, match=re.escape(message)):
        launcher_view(config)
