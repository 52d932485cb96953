import json
import subprocess
import sys
from pathlib import Path

from common.results import update_section

ROOT = Path(__file__).resolve().parent.parent


def run(*args):
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "bench_layers.py"), *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )


def test_bench_layers_writes_table_json_and_ratio(tmp_path):
    out = tmp_path / "layers.md"
    proc = run(
        "--rounds", "1", "--iters", "1", "--repeats", "2", "--device", "cpu", "--tf32",
        "--no-progress", "--out", str(out),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    last = proc.stdout.strip().splitlines()[-1]
    assert last.startswith("Atari first layer: CoordConv2d / Conv2d = ")
    text = out.read_text()
    assert text.startswith("# CoordConv layer speed")
    assert "## cpu: " in text and text.count("| Atari first layer 4x84x84->32 k8 s4 | 256 |") == 2
    assert "Training: forward+backward" in text and "Inference: forward only" in text
    assert ("; forward only: ") in last
    data = json.loads((tmp_path / "layers_cpu.json").read_text())
    assert [r["name"] for r in data["rows"]][0].startswith("Atari first layer")
    assert [r["mode"] for r in data["rows"]] == ["train"] * 4 + ["forward"] * 4
    assert all(
        r["conv_ms"] > 0 and r["coordconv_ms"] > 0 and r["naive_ms"] > 0 and r["converted_ms"] > 0
        for r in data["rows"]
    )
    assert text.count("| coordconvify / Conv2d |") == 2
    # Two repeats, each in its own process: medians, and each ratio's range between them.
    for r in data["rows"]:
        assert r["repeats"] == 2
        for key in ("coordconv_over_conv", "naive_over_conv", "converted_over_conv"):
            low, high = r[f"{key}_range"]
            assert low <= r[key] <= high
    atari = next(line for line in text.splitlines() if line.startswith("| Atari"))
    low, high = data["rows"][0]["coordconv_over_conv_range"]
    assert f"| {data['rows'][0]['coordconv_over_conv']:.3f} ({low:.3f}-{high:.3f}) |" in atari


def test_bench_layers_bad_input_exits_2_with_one_line(tmp_path):
    proc = run("--rounds", "0", "--out", str(tmp_path / "x.md"))
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "error: --rounds and --iters must be >= 1, got 0 and 10"
    ]
    proc = run("--repeats", "0", "--out", str(tmp_path / "x.md"))
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == ["error: --repeats must be >= 1, got 0"]
    proc = run("--device", "tpu", "--out", str(tmp_path / "x.md"))
    assert proc.returncode == 2 and "'tpu'" in proc.stderr and len(proc.stderr.splitlines()) == 1
    assert not (tmp_path / "x.md").exists()


def test_each_repeat_sets_tf32_in_its_own_process(monkeypatch):
    # A spawned repeat inherits none of the parent's torch settings: time_all sets TF32 itself.
    import benchmarks.layers

    asked = []
    monkeypatch.setattr(benchmarks.layers, "set_tf32", asked.append)
    monkeypatch.setattr(benchmarks.layers, "CASES", ())
    assert benchmarks.layers.time_all("cpu", 1, 1, 0, 0, True) == []
    assert benchmarks.layers.time_all("cpu", 1, 1, 0, 0) == []
    assert asked == [True, False]


def test_update_section_keeps_other_devices(tmp_path):
    path = tmp_path / "r.md"
    update_section(path, "# Title", "cpu: A", "old cpu table")
    update_section(path, "# Title", "cuda: H100", "gpu table")
    update_section(path, "# Title\n\nnew intro", "cpu: B", "new cpu table")
    text = path.read_text()
    assert text.startswith("# Title\n\nnew intro\n\n## cpu: B\n\nnew cpu table\n")
    assert "gpu table" in text and "old cpu table" not in text and "## cpu: A" not in text
    assert text.index("## cpu: B") < text.index("## cuda: H100")


def test_update_section_keeps_parts_in_page_order(tmp_path):
    path = tmp_path / "r.md"
    order = ("RPN alone", "Faster R-CNN")
    update_section(path, "# T", "Faster R-CNN, cpu: A", "full table", order)
    update_section(path, "# T", "RPN alone, cuda: H100", "rpn gpu table", order)
    update_section(path, "# T", "RPN alone, cpu: A", "rpn table", order)
    update_section(path, "# T", "RPN alone, cpu: B", "new rpn table", order)
    headings = [line for line in path.read_text().splitlines() if line.startswith("## ")]
    assert headings == [
        "## RPN alone, cpu: B",
        "## RPN alone, cuda: H100",
        "## Faster R-CNN, cpu: A",
    ]
    assert "new rpn table" in path.read_text() and "\nrpn table" not in path.read_text()


def test_update_section_places_a_part_by_its_whole_name(tmp_path):
    # "RPN alone, coordinates in [0, 1]" starts with "RPN alone" but is a part of its own.
    path = tmp_path / "r.md"
    order = ("RPN alone", "Faster R-CNN", "RPN alone, coordinates in [0, 1]")
    update_section(path, "# T", "RPN alone, coordinates in [0, 1], cpu: A", "unit table", order)
    update_section(path, "# T", "Faster R-CNN, cpu: A", "full table", order)
    update_section(path, "# T", "RPN alone, cpu: A", "rpn table", order)
    headings = [line for line in path.read_text().splitlines() if line.startswith("## ")]
    assert headings == [
        "## RPN alone, cpu: A",
        "## Faster R-CNN, cpu: A",
        "## RPN alone, coordinates in [0, 1], cpu: A",
    ]
