"""Smoke runs of the speed benchmarks that have no test of their own (bench_model, bench_data, bench_flops): each
runs end to end at a tiny size and prints every figure with a positive value, and a verdict where it has a target.
The verdicts themselves are `make bench`'s business (a tiny size is not the measured geometry)."""

import os
import re
import subprocess
import sys

from helpers import REPO_ROOT


def run_benchmark(name: str, *args: str) -> dict:
    result = subprocess.run([sys.executable, str(REPO_ROOT / "benchmarks" / name), *args], capture_output=True,
                            text=True, cwd=REPO_ROOT, timeout=300,
                            env={**os.environ, "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1"})
    assert result.returncode in (0, 1), result.stderr[-3000:]  # 1: a figure below its target at this tiny size
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    lines = {}
    for line in result.stdout.splitlines():
        match = re.match(r"^([a-z0-9_]+) ([-0-9.]+)(?: / ([-0-9.]+))?\s+\((.*)\)$", line)
        if match:
            lines[match.group(1)] = (float(match.group(2)), match.group(4))
    return lines


def test_bench_model_prints_both_ratios_for_every_geometry():
    lines = run_benchmark("bench_model.py", "--geometries", "32:8:4,40:10:2", "--steps", "2", "--warmup", "1")
    for tag in ("32px_p8", "40px_p10"):
        for figure in ("vit_mae_train_step_ms", "lens_mae_train_step_ms"):
            assert lines[f"{figure}_{tag}"][0] > 0
        for figure, target in (("lens_mae_over_vit_mae_step_time_ratio", "target <= 1.05"),
                               ("lens_mae_bf16_over_vit_mae_fp32_step_time_ratio", "target <= 0.75")):
            value, note = lines[f"{figure}_{tag}"]
            assert value > 0 and target in note and re.search(r": (ok|below);", note), (figure, note)


def test_bench_model_refuses_a_malformed_geometry():
    result = subprocess.run([sys.executable, str(REPO_ROOT / "benchmarks" / "bench_model.py"), "--geometries", "64x4"],
                            capture_output=True, text=True, cwd=REPO_ROOT, timeout=120,
                            env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
    assert result.returncode != 0 and "expected image_size:patch_size:batch_size, got '64x4'" in result.stderr


def test_bench_data_prints_every_path_and_the_stream():
    lines = run_benchmark("bench_data.py", "--num_images", "96", "--batch_size", "8", "--rounds", "2",
                          "--batches_per_round", "1")
    assert lines["train_step_images_per_s"][0] > 0
    for size, target in ((64, "target >= 3"), (150, "target >= 5")):
        for path in ("set_transform", "scripts"):
            assert lines[f"data_{size}px_{path}_images_per_s"][0] > 0
            value, note = lines[f"data_{size}px_{path}_over_train_ratio"]
            assert value > 0 and target in note and re.search(r": (ok|below)", note), note
    value, note = lines["stream_over_train_ratio"]
    assert value > 0 and "target >= 3" in note


def test_bench_flops_prints_the_fraction_of_peak():
    lines = run_benchmark("bench_flops.py", "--batch_size", "4", "--steps", "2", "--image_size", "32",
                          "--patch_size", "8", "--device", "cpu")
    assert lines["train_step_gflop"][0] > 0 and lines["matmul_peak_gflops"][0] > 0
    assert 0 < lines["train_step_flops_over_matmul_peak"][0] < 1.5
