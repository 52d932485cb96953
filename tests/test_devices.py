"""common.devices: --device checked before anything starts, TF32 off unless asked, the record of
the device used, and the default suite's CUDA hiding (tests/conftest.py).

There is no GPU here: a GPU machine is emulated by patching torch.cuda's queries; the probe
allocation then really runs, and fails as it would on a GPU whose driver is broken."""

import subprocess
import sys
import textwrap

import pytest
import torch

from common.devices import (
    describe_device,
    describe_record,
    device_record,
    kernels_for,
    resolve_device,
    select_device,
    set_tf32,
    tf32_enabled,
)
from common.errors import UsageError
from tests.cli import ROOT
from tests.conftest import gpu_tests_selected

ARCH = ["sm_75", "sm_80", "sm_86", "sm_90", "sm_100", "sm_120"]  # the pinned cu130 build's


def emulate_gpus(monkeypatch, count=1, capability=(9, 0), probe_ok=True):
    """torch.cuda reports `count` GPUs of `capability`; the probe allocation succeeds only if
    `probe_ok` (else it raises as a real CUDA failure does)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda i=None: capability)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i=None: "Emulated GPU")
    monkeypatch.setattr(torch.cuda, "get_arch_list", lambda: ARCH)
    probes = []

    def empty(*args, device=None, **kwargs):
        probes.append(torch.device(device))
        if not probe_ok:
            raise RuntimeError("CUDA error: out of memory\nmore detail")
        return torch.zeros(1)

    monkeypatch.setattr(torch, "empty", empty)
    monkeypatch.setattr(torch.cuda, "synchronize", lambda i=None: None)
    return probes


def test_cpu_and_auto_without_a_gpu():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto") == torch.device("cpu")  # the default suite hides CUDA
    with pytest.raises(UsageError, match=r"^--device cuda:1: no CUDA device is available"):
        resolve_device("cuda:1")


@pytest.mark.parametrize("name", ["cuda:abc", "gpu", "cuda:", "CUDA", "cuda:-1", " cpu", "mps"])
def test_malformed_names_are_refused_by_name(name):
    with pytest.raises(UsageError, match=f"^--device {name!r} is not one of auto, cpu, cuda"):
        resolve_device(name)


def test_a_usable_gpu_resolves_with_its_index_and_is_probed(monkeypatch):
    probes = emulate_gpus(monkeypatch, count=2)
    assert resolve_device("cuda") == torch.device("cuda", 0)
    assert resolve_device("cuda:1") == torch.device("cuda", 1)
    assert resolve_device("auto") == torch.device("cuda", 0)
    assert probes == [torch.device("cuda", i) for i in (0, 1, 0)]


def test_an_index_past_the_device_count_exits_with_the_valid_ones(monkeypatch):
    emulate_gpus(monkeypatch, count=2)
    with pytest.raises(UsageError, match=r"^--device cuda:2: this machine has 2 CUDA device\(s\) "):
        resolve_device("cuda:2")


def test_a_gpu_without_kernels_is_refused_and_auto_falls_back(monkeypatch, capsys):
    emulate_gpus(monkeypatch, capability=(6, 1))  # a Pascal card; the build starts at sm_75
    with pytest.raises(UsageError, match=r"^--device cuda: Emulated GPU \(sm_61\) has no kernels"):
        resolve_device("cuda")
    assert resolve_device("auto") == torch.device("cpu")
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and "sm_61" in lines[0] and lines[0].endswith("using the CPU")


def test_a_failing_probe_is_one_line(monkeypatch, capsys):
    emulate_gpus(monkeypatch, probe_ok=False)
    with pytest.raises(UsageError) as err:
        resolve_device("cuda:0")
    assert "\n" not in str(err.value) and "probe allocation failed (CUDA error" in str(err.value)
    assert resolve_device("auto") == torch.device("cpu")
    assert "using the CPU" in capsys.readouterr().err


@pytest.mark.parametrize(
    "capability,arch,runs",
    [
        ((7, 5), ARCH, True),
        ((8, 9), ARCH, True),  # an sm_80/sm_86 cubin runs on later minors of 8
        ((9, 0), ARCH, True),
        ((12, 1), ARCH, True),
        ((6, 1), ARCH, False),
        ((7, 0), ARCH, False),  # V100: the build starts at sm_75
        ((11, 0), ["sm_90", "sm_100"], False),  # no cubin of major 11, and no PTX
        ((11, 0), ["sm_90", "compute_90"], True),  # PTX is compiled for newer GPUs
        ((9, 0), ["sm_90a"], True),
    ],
)
def test_kernels_for(capability, arch, runs):
    assert kernels_for(*capability, arch) is runs


def test_tf32_is_off_unless_asked_and_recorded(monkeypatch):
    try:
        select_device("cpu")
        assert not tf32_enabled()
        assert not torch.backends.cuda.matmul.allow_tf32
        torch.backends.cudnn.set_flags(False)  # torch.export's guard reads the flags: no raise
        torch.backends.cudnn.set_flags(True)
        set_tf32(True)
        assert tf32_enabled() and torch.backends.cuda.matmul.allow_tf32
        emulate_gpus(monkeypatch)
        monkeypatch.setattr(torch.version, "cuda", "13.0")
        record = device_record(torch.device("cuda", 0))
        assert record["device"] == "cuda:0" and record["device_model"] == "Emulated GPU"
        assert record["tf32"] is True and record["cuda"] == "13.0"
        assert record["cudnn_deterministic"] is False
        text = describe_device(torch.device("cuda", 0))
        assert text.startswith("Emulated GPU (cuda:0, sm_90), CUDA 13.0") and "TF32 on" in text
        assert record["capability"] == "sm_90"
    finally:
        set_tf32(False)


def test_the_cpu_record():
    record = device_record(torch.device("cpu"))
    assert record["device"] == "cpu" and record["device_model"]
    assert (record["cuda"], record["cudnn"], record["tf32"]) == (None, None, False)
    assert record["capability"] is None
    assert describe_record(record) == f"{record['device_model']} (cpu)"


@pytest.mark.parametrize(
    "markexpr,selected",
    [
        ("not slow and not gpu", False),
        ("slow", False),
        ("gpu", True),
        ("slow or gpu", True),
        ("gpu and not slow", True),
        ("", True),
    ],
)
def test_which_mark_expressions_select_the_gpu_tests(markexpr, selected):
    assert gpu_tests_selected(markexpr) is selected


def test_the_default_run_hides_cuda_on_an_emulated_gpu_machine(tmp_path):
    """With torch patched (through sitecustomize) to see one GPU unless CUDA_VISIBLE_DEVICES is
    empty, as a real GPU machine does, a default pytest run sees no CUDA, and `-m gpu` does."""
    (tmp_path / "sitecustomize.py").write_text(
        textwrap.dedent(
            """
            import os
            import torch
            torch.cuda.is_available = lambda: os.environ.get("CUDA_VISIBLE_DEVICES") != ""
            """
        )
    )
    (tmp_path / "test_probe.py").write_text(
        textwrap.dedent(
            """
            import os
            import pytest
            import torch

            def test_default():
                assert not torch.cuda.is_available()
                assert os.environ["CUDA_VISIBLE_DEVICES"] == ""

            @pytest.mark.gpu
            def test_gpu():
                assert torch.cuda.is_available()
            """
        )
    )
    env = {k: v for k, v in __import__("os").environ.items() if k != "CUDA_VISIBLE_DEVICES"}
    env["PYTHONPATH"] = f"{tmp_path}:{ROOT}"
    # The probe test file runs with this suite's conftest and pytest settings.
    conftest = (ROOT / "tests" / "conftest.py").read_text()
    (tmp_path / "conftest.py").write_text(conftest)
    base = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)]
    base += ["-c", str(ROOT / "pyproject.toml"), "--rootdir", str(tmp_path)]
    default = subprocess.run(base, capture_output=True, text=True, env=env)
    assert default.returncode == 0 and "1 passed, 1 deselected" in default.stdout, default.stdout
    gpu = subprocess.run([*base, "-m", "gpu"], capture_output=True, text=True, env=env)
    assert gpu.returncode == 0 and "1 passed, 1 deselected" in gpu.stdout, gpu.stdout
