"""--mixed_precision bf16 and --torch_compile on the CPU: the scripts run with them, and the pretraining loss curve
stays within noise of fp32 eager (noise: the gap between two fp32 eager runs of different seeds)."""

import json

import numpy as np
import pytest
import torch
from helpers import run_script, sample_data_arguments

RUN = ["--model_preset", "tiny", "--per_device_train_batch_size", "8", "--disable_progress_bar", "true",
       "--logging_steps", "1", "--save_steps", "0", "--report_to", "none", "--learning_rate", "1e-2"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return sample_data_arguments(tmp_path_factory.mktemp("data"))["classification"]


def losses(data, folder, *extra, steps: int):
    run_script("pretrain_mae.py", *data, *RUN, "--max_steps", steps, *extra, "--output_dir", folder, timeout=900)
    records = [json.loads(line) for line in (folder / "logs" / "train_log.jsonl").read_text().splitlines()]
    return np.array([record["loss"] for record in records if "loss" in record])


def test_bf16_autocast_keeps_the_200_step_pretraining_curve_within_noise(data, tmp_path):
    eager = losses(data, tmp_path / "fp32", steps=200)
    other_seed = losses(data, tmp_path / "fp32_seed1", "--seed", "1", steps=200)
    bf16 = losses(data, tmp_path / "bf16", "--mixed_precision", "bf16", steps=200)
    assert len(eager) == len(bf16) == 200
    smooth = lambda curve: np.convolve(curve, np.ones(20) / 20, mode="valid")  # noqa: E731
    noise = np.abs(smooth(eager) - smooth(other_seed)).mean()
    gap = np.abs(smooth(eager) - smooth(bf16)).mean()
    assert gap < noise, (gap, noise)
    assert not np.array_equal(eager, bf16)  # bf16 did change the arithmetic
    assert json.loads((tmp_path / "bf16" / "run_config.json").read_text())["RunArguments"]["mixed_precision"] == "bf16"


def test_torch_compile_trains_the_same_steps(data, tmp_path):
    eager = losses(data, tmp_path / "eager", steps=4)
    compiled = losses(data, tmp_path / "compiled", "--torch_compile", "true", steps=4)
    np.testing.assert_allclose(compiled, eager, rtol=1e-3)
    from lens_hf import LensMAEForPreTraining

    model = LensMAEForPreTraining.from_pretrained(tmp_path / "compiled")  # saved without the compile wrapper
    assert not any(key.startswith("_orig_mod") for key in model.state_dict())


def test_native_bf16_follows_the_cpu_instructions(monkeypatch):
    from lens_hf.training.accelerator import native_bf16

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for avx512_bf16, amx in ((False, False), (True, False), (False, True)):
        monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda v=avx512_bf16: v)
        monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda v=amx: v)
        assert native_bf16() is (avx512_bf16 or amx)


def test_demo_refuses_an_unknown_precision(tmp_path):
    result = run_script("demo.py", "--mixed_precision", "fp8", "--output_dir", tmp_path / "demo", check=False, timeout=120)
    assert result.returncode == 2 and "--mixed_precision must be auto, no or bf16, got 'fp8'" in result.stderr
    assert not (tmp_path / "demo").exists()
