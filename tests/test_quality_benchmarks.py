"""The quality benchmark scripts (one per row of DESIGN §8) run end to end at their smoke size and write the
figures they print; the CPU and full sizes are the same code with more data and steps."""

import json
import subprocess
import sys

import pytest
from helpers import REPO_ROOT


def run_benchmark(name: str, output_dir) -> dict:
    result = subprocess.run([sys.executable, str(REPO_ROOT / "benchmarks" / f"quality_{name}.py"), "--size", "smoke",
                             "--output_dir", str(output_dir), "--threads", "1"],
                            capture_output=True, text=True, cwd=REPO_ROOT, timeout=900,
                            env={**__import__("os").environ, "PYTHONPATH": str(REPO_ROOT)})
    assert result.returncode == 0, result.stderr[-4000:]
    return result


@pytest.mark.parametrize("row,saved,expected", [
    ("regression", "quality_regression_model_iii.json", {"mae_dex", "rmse_dex", "bias_dex"}),
    pytest.param("lens_finding", "quality_lens_finding.json", {"lens_mae/roc_auc", "resnet18/tpr_at_fpr_1e-3"},
                 marks=pytest.mark.slow),
    pytest.param("super_resolution", "quality_super_resolution.json", {"psnr_db", "bicubic_psnr_db"},
                 marks=pytest.mark.slow),
    pytest.param("classification", "quality_classification_model_ii.json",
                 {"mae_finetune/accuracy", "mae_linear_probe/roc_auc_micro", "resnet18/accuracy"},
                 marks=pytest.mark.slow),
])
def test_quality_row_smoke(tmp_path, row, saved, expected):
    result = run_benchmark(row, tmp_path)
    record = json.loads((tmp_path / saved).read_text())
    names = {figure["name"] for figure in record["figures"]}
    assert expected <= names and record["size"] == "smoke"
    for figure in record["figures"]:
        assert f"/{figure['name']} {figure['value']:.4f}" in result.stdout  # printed, one line per figure
