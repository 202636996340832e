"""benchmarks/bench_scaling.py end to end at its quick size: one line per figure, positive numbers."""

import os
import subprocess
import sys

from helpers import REPO_ROOT


def test_the_cost_growth_table_prints_its_figures():
    result = subprocess.run([sys.executable, str(REPO_ROOT / "benchmarks" / "bench_scaling.py"), "--quick"],
                            capture_output=True, text=True, cwd=REPO_ROOT, timeout=300,
                            env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
    assert result.returncode == 0, result.stderr[-3000:]
    figures = dict(line.split()[:2] for line in result.stdout.splitlines() if line.startswith("scaling_"))
    assert set(figures) == {"scaling_simulator_images_per_s_32px", "scaling_train_step_ms_32px_p4_batch4"}
    assert all(float(value) > 0 for value in figures.values())
