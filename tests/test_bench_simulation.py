"""benchmarks/bench_simulation.py --quick end to end: every scene prints a positive ratio and a verdict,
and caustics renders the same images as ours (within 1e-6 of the peak)."""

import importlib.util
import os
import re
import subprocess
import sys

import pytest
from helpers import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT / "benchmarks"))
import bench_simulation  # noqa: E402

NUMBER = r"([0-9][0-9,]*(?:\.[0-9]+)?)"
LENSTRONOMY_LINE = re.compile(rf"^simulation (.+): ours {NUMBER} img/s, lenstronomy {NUMBER} img/s, "
                              rf"ratio {NUMBER} \(target >= {NUMBER}, (ok|below target)\)$")
CAUSTICS_LINE = re.compile(rf"^simulation vs caustics (.+): ours {NUMBER} img/s, caustics {NUMBER} img/s, "
                           rf"ratio {NUMBER} \(target >= {NUMBER}, (ok|below target)\); max \|ours - caustics\| / peak "
                           r"([0-9.e+-]+) \(float64, [0-9]+ images; tolerance 1e-06: (equal|NOT EQUAL)\)$")


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


@pytest.fixture(scope="module")
def bench_lines():
    if not (_installed("lenstronomy") or _installed("caustics")):
        pytest.skip("neither lenstronomy nor caustics is installed: bench_simulation.py compares against them")
    result = subprocess.run([sys.executable, str(REPO_ROOT / "benchmarks" / "bench_simulation.py"), "--quick",
                             "--repeats", "1"], capture_output=True, text=True, cwd=REPO_ROOT, timeout=300,
                            env={**os.environ, "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout.splitlines()


def _number(text: str) -> float:
    return float(text.replace(",", ""))


def _check_scene_lines(lines, pattern, scenes, target: float) -> dict:
    """Every scene has its line: positive rates and ratio, the issue's target, the verdict that the ratio implies."""
    found = {match.group(1): match for match in map(pattern.match, lines) if match}
    assert set(found) == {scene[0] for scene in scenes}, lines
    for label, match in found.items():
        ours, theirs, ratio, printed_target = (_number(match.group(i)) for i in range(2, 6))
        assert ours > 0 and theirs > 0 and ratio > 0, label
        assert printed_target == target, label
        assert match.group(6) == ("ok" if ratio >= target else "below target"), label
    return found


def test_every_lenstronomy_scene_prints_a_positive_ratio_and_a_verdict(bench_lines):
    if not _installed("lenstronomy"):
        pytest.skip("lenstronomy is not installed")
    _check_scene_lines(bench_lines, LENSTRONOMY_LINE, bench_simulation.SCENES, target=10.0)


def test_every_caustics_scene_prints_a_ratio_and_renders_the_same_images(bench_lines):
    if not _installed("caustics"):
        assert any(line.startswith("simulation vs caustics: caustics is not installed") for line in bench_lines)
        pytest.skip("caustics is not installed (pip install -e .[bench])")
    found = _check_scene_lines(bench_lines, CAUSTICS_LINE, bench_simulation.CAUSTICS_SCENES, target=3.0)
    for label, match in found.items():
        assert float(match.group(7)) <= 1e-6 and match.group(8) == "equal", label


def test_the_gpu_line_says_whether_it_was_measured(bench_lines):
    gpu = [line for line in bench_lines if line.startswith("simulation GPU")]
    assert len(gpu) == 1
    assert "not measured" in gpu[0] or "img/s on" in gpu[0]
