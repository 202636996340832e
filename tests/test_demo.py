"""The smoke version of `make demo`: every stage runs, every artefact exists and loads, the linear probe and
the finetuned classifier beat chance by a clear margin on their held-out test split, and the super-resolution
model beats bicubic upsampling."""

import json

import numpy as np
import torch
from helpers import run_script
import lens_hf  # noqa: F401  (registers the Auto classes)
from lens_hf.training.accelerator import native_bf16
from transformers import (
    AutoImageProcessor,
    AutoModelForImageClassification,
    AutoModelForImageToImage,
    AutoModelForPreTraining,
)

RUNS = {
    "lens-mae": AutoModelForPreTraining,
    "lens-mae-probe": AutoModelForImageClassification,
    "lens-mae-classifier": AutoModelForImageClassification,
    "lens-mae-regressor": AutoModelForImageClassification,
    "lens-mae-sr": AutoModelForImageToImage,
}


def test_demo_smoke(tmp_path):
    out = tmp_path / "demo"
    result = run_script("demo.py", "--smoke", "true", "--output_dir", out, "--threads", "1", timeout=900)
    assert "lens-hf demo (smoke profile) finished" in result.stdout
    results = json.loads((out / "results.json").read_text())
    for name, auto_class in RUNS.items():
        folder = out / name
        for artefact in ("config.json", "model.safetensors", "preprocessor_config.json", "README.md", "metrics.json",
                         "run_config.json", "plots/loss.png"):
            assert (folder / artefact).exists(), f"{name}/{artefact}"
        model = auto_class.from_pretrained(folder).eval()
        processor = AutoImageProcessor.from_pretrained(folder)
        image = np.random.default_rng(0).random((model.config.image_size * 2, model.config.image_size * 2))
        with torch.no_grad():
            output = model(**processor(image, return_tensors="pt"))
        assert all(torch.isfinite(v).all() for v in output.values() if isinstance(v, torch.Tensor))

    for name in ("lens-mae-probe", "lens-mae-classifier"):
        classifier = json.loads((out / name / "metrics.json").read_text())["summary"]["test"]
        assert classifier["num_examples"] == 300
        # chance is 1/3 (sd 0.027 at 300 images) and 0.5 AUC: demand a margin of several standard deviations
        assert classifier["accuracy"] > 0.45, (name, classifier)
        assert classifier["roc_auc_micro"] > 0.70, (name, classifier)
    sr = json.loads((out / "lens-mae-sr" / "metrics.json").read_text())
    # the head corrects bicubic upsampling, so an untrained one scores exactly bicubic: demand a clear gain over it
    bicubic = sr["references"]["bicubic upsampling (test)"]
    assert sr["summary"]["test"]["num_images"] == bicubic["num_images"]
    assert sr["summary"]["test"]["psnr"] > bicubic["psnr"] + 0.5, (sr["summary"]["test"], bicubic)
    assert {row["task"] for row in results["rows"]} == {
        "MAE pretraining", "linear probe", "finetuned classifier", "axion-mass regressor", "super-resolution"}
    assert {row["folder"] for row in results["rows"]} == set(RUNS)  # relative to --output_dir, no machine path
    # --mixed_precision auto: bf16 for the trained stages exactly where the hardware computes it natively; the
    # probe's L-BFGS head fits on fp32 features
    expected = "bf16" if native_bf16() else "no"
    for name in RUNS:
        precision = json.loads((out / name / "run_config.json").read_text())["RunArguments"]["mixed_precision"]
        assert precision == (None if name == "lens-mae-probe" else expected), (name, precision)

    # --resume after a finished demo: every stage is reused, none trained again, and the table is the same
    rerun = run_script("demo.py", "--smoke", "true", "--output_dir", out, "--threads", "1", "--resume", "true",
                       timeout=300)
    assert rerun.stdout.count("finished earlier with this command") == 5 and "train:" not in rerun.stderr
    assert json.loads((out / "results.json").read_text())["rows"] == results["rows"]
    # a plain second demo into the same folder would replace the finished runs: refused before anything runs
    plain = run_script("demo.py", "--smoke", "true", "--output_dir", out, "--threads", "1", check=False, timeout=120)
    assert plain.returncode == 2 and "holds the runs of an earlier demo: pass --resume true" in plain.stderr
    assert "Traceback" not in plain.stderr
