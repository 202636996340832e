"""Every training script end to end for a few steps: under `accelerate launch` with 1 and 2 processes, exact
resume after a kill, a NaN stop that keeps the last good checkpoint, evaluation, and a Hub push loaded back
without lens_hf."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import BLOCK_LENS_HF, REPO_ROOT, builder_splits, run_python, run_script, sample_data_arguments
from huggingface_hub import ModelCard
from safetensors.torch import load_file


TINY_RUN = ["--model_preset", "tiny", "--per_device_train_batch_size", "8", "--per_device_eval_batch_size", "16",
            "--disable_progress_bar", "true", "--logging_steps", "1", "--save_steps", "0"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return sample_data_arguments(tmp_path_factory.mktemp("data"))


PRETRAIN_STEPS = 40


@pytest.fixture(scope="module")
def pretrained(data, tmp_path_factory):
    """A tiny pretraining run under `accelerate launch` with one process; long enough (lr 1e-2, 40 steps, about
    1.5 s more than 4 steps) to near the best reconstruction of its noise images (test_pretraining_run_folder)."""
    out = tmp_path_factory.mktemp("runs") / "pretrain_1p"
    run_script("pretrain_mae.py", *data["classification"], *TINY_RUN, "--output_dir", out, "--max_steps",
               PRETRAIN_STEPS, "--learning_rate", "1e-2", processes=1)
    return out


def layout(folder: Path) -> set[str]:
    """Files of a run folder, with run-specific names (tensorboard event files, per-rank RNG states) folded."""
    names = set()
    for path in folder.rglob("*"):
        if path.is_file():
            relative = str(path.relative_to(folder))
            if relative.startswith("logs/") and "tfevents" in relative or relative.endswith("hparams.yml"):
                relative = "logs/<tensorboard>"
            if "random_states_" in relative:
                relative = relative.split("random_states_")[0] + "random_states_<rank>.pkl"
            names.add(relative)
    return names


def test_pretraining_run_folder(data, pretrained):
    metrics = json.loads((pretrained / "metrics.json").read_text())
    assert metrics["task"] == "pretraining" and set(metrics["summary"]) == {"train", "validation", "test"}
    for split in ("train", "validation", "test"):
        assert metrics["summary"][split]["mask_ratio"] == 0.75
    # Two predictors that ignore the visible patches, scored on every test patch (the masks are random, so that is
    # the expectation of their masked-patch MSE): zeros, and the training split's mean target. The sample images
    # are Poisson noise, so no predictor beats that mean on held-out images; the model must come within 20 % of it
    # and far below zeros (untrained it scores about 30 times the mean's MSE).
    from transformers import AutoImageProcessor

    from lens_hf import LensMAEForPreTraining

    model, processor = LensMAEForPreTraining.from_pretrained(pretrained), AutoImageProcessor.from_pretrained(pretrained)
    splits = builder_splits(data["classification"])
    targets = {}
    for split in ("train", "test"):
        images = splits[split].with_format("numpy")[:]["image"]
        pixel_values = processor(images, input_data_format="channels_first", return_tensors="pt")["pixel_values"]
        targets[split] = model.pixel_targets(pixel_values)[0].numpy()  # what the masked-patch MSE compares with
    zeros = float(np.mean(targets["test"] ** 2))
    training_mean = float(np.mean((targets["test"] - targets["train"].mean(axis=0)) ** 2))
    masked_mse = metrics["summary"]["test"]["masked_mse"]
    assert masked_mse < 1.2 * training_mean and masked_mse < 0.3 * zeros, (masked_mse, training_mean, zeros)
    assert {"config.json", "model.safetensors", "preprocessor_config.json", "README.md", "run_config.json",
            "plots/reconstruction_validation.png", "plots/loss.png", "logs/train_log.jsonl"} <= layout(pretrained)
    card = ModelCard.load(pretrained / "README.md")
    assert card.data.eval_results and card.data.eval_results[0].metric_type == "masked_mse"
    log = [json.loads(line) for line in (pretrained / "logs" / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log if "loss" in r] == list(range(1, PRETRAIN_STEPS + 1))


def test_two_processes_give_the_same_layout_and_only_rank_zero_writes(data, pretrained, tmp_path):
    out = tmp_path / "pretrain_2p"
    run_script("pretrain_mae.py", *data["classification"], *TINY_RUN, "--output_dir", out, "--max_steps", "4",
               "--save_steps", "2", processes=2)
    run_record = json.loads((out / "run_config.json").read_text())
    assert run_record["derived"]["num_processes"] == 2 and run_record["derived"]["total_batch_size"] == 16
    assert (out / "checkpoints" / "step_00000004" / "random_states_1.pkl").exists()  # both ranks saved RNG state
    events = [p for p in (out / "logs").rglob("events.out.tfevents.*")]
    assert len({p.name.split(".")[-2] for p in events}) == 1  # one writer process
    assert layout(out) - {p for p in layout(out) if p.startswith("checkpoints/")} == layout(pretrained)
    one, two = (json.loads((f / "metrics.json").read_text()) for f in (pretrained, out))
    assert one["summary"].keys() == two["summary"].keys()
    for split in one["summary"]:
        assert one["summary"][split]["num_images"] == two["summary"][split]["num_images"]  # no duplicated rows


@pytest.mark.parametrize("mode", ["linear_probe", "finetune"])
def test_classifier_from_the_pretrained_encoder(data, pretrained, tmp_path, mode):
    out = tmp_path / mode
    run_script("finetune.py", *data["classification"], *TINY_RUN, "--task", "classification", "--mode", mode,
               "--model_name_or_path", pretrained, "--output_dir", out, "--max_steps", "3", processes=1)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["task"] == "classification" and set(metrics["summary"]) == {"validation", "test"}
    assert {"accuracy", "roc_auc_micro", "roc_auc_macro"} <= set(metrics["summary"]["test"])
    run_record = json.loads((out / "run_config.json").read_text())
    assert run_record["RunArguments"]["optimizer"] == ("lars" if mode == "linear_probe" else "adamw")
    saved = load_file(out / "model.safetensors")
    encoder = load_file(pretrained / "model.safetensors")
    same = torch.equal(saved["vit.layers.0.fc1.weight"], encoder["vit.layers.0.fc1.weight"])
    assert same == (mode == "linear_probe")  # the probe leaves the encoder untouched; finetuning changes it
    assert (out / "plots" / "confusion_test.png").exists() and (out / "plots" / "roc_test.png").exists()


def test_lbfgs_probe_two_processes(data, pretrained, tmp_path):
    out = tmp_path / "probe_lbfgs"
    run_script("finetune.py", *data["classification"], *TINY_RUN, "--task", "classification", "--mode", "linear_probe",
               "--probe_solver", "lbfgs", "--model_name_or_path", pretrained, "--output_dir", out, processes=2)
    derived = json.loads((out / "run_config.json").read_text())["derived"]
    solver = derived["head_solver"]
    assert "learning_rate" not in derived and "total_steps" not in derived  # no SGD optimizer or schedule was built
    losses = {float(k): v for k, v in solver["validation_loss_by_l2"].items()}
    assert solver["l2"] == min(losses, key=losses.get) and len(losses) == 8
    metrics = json.loads((out / "metrics.json").read_text())
    validation_rows = metrics["summary"]["validation"]["num_examples"]
    # 48 training-folder images split by hash; with 2 ranks every row counts once (odd counts: no padded duplicates)
    assert (solver["train_rows"], solver["validation_rows"]) == (48 - validation_rows, validation_rows)
    saved, encoder = load_file(out / "model.safetensors"), load_file(pretrained / "model.safetensors")
    assert all(torch.equal(saved[k], encoder[k]) for k in encoder if k.startswith("vit."))
    assert saved["head_norm.running_var"].min() > 0 and (out / "plots" / "loss.png").exists()
    assert {"accuracy", "roc_auc_micro"} <= set(metrics["summary"]["test"])


def test_lbfgs_probe_needs_linear_probe_mode(data, pretrained, tmp_path):
    result = run_script("finetune.py", *data["classification"], *TINY_RUN, "--mode", "finetune", "--probe_solver",
                        "lbfgs", "--model_name_or_path", pretrained, "--output_dir", tmp_path / "x", check=False)
    assert result.returncode != 0 and "--probe_solver lbfgs" in result.stderr and "--mode linear_probe" in result.stderr


def test_evaluation_frequency_does_not_change_the_trained_weights(data, pretrained, tmp_path):
    weights = []
    for eval_steps in ("2", "3"):  # drop path (finetune recipe) draws from the RNG that evaluation must not advance
        out = tmp_path / f"eval_every_{eval_steps}"
        run_script("finetune.py", *data["classification"], *TINY_RUN, "--task", "classification", "--mode", "finetune",
                   "--model_name_or_path", pretrained, "--output_dir", out, "--max_steps", "6", "--eval_steps", eval_steps)
        log = [json.loads(line) for line in (out / "logs" / "train_log.jsonl").read_text().splitlines()]
        assert [r["step"] for r in log if "eval/accuracy" in r] == list(range(int(eval_steps), 7, int(eval_steps)))
        weights.append(load_file(out / "model.safetensors"))
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


def test_finetune_two_processes(data, pretrained, tmp_path):
    out = tmp_path / "ft2"  # a BatchNorm head runs the cross-process reduce of precise BN (values: test_training_lib)
    run_script("finetune.py", *data["classification"], *TINY_RUN, "--task", "classification", "--mode", "finetune",
               "--classifier_head_norm", "batchnorm", "--model_name_or_path", pretrained, "--output_dir", out,
               "--max_steps", "2", processes=2)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["summary"]["test"]["num_examples"] == 12


def test_regression_and_lens_finding_from_scratch(data, tmp_path):
    run_script("finetune.py", *data["regression"], *TINY_RUN, "--task", "regression", "--mode", "scratch",
               "--output_dir", tmp_path / "reg", "--max_steps", "40", "--learning_rate", "3e-3", processes=1)
    metrics = json.loads((tmp_path / "reg" / "metrics.json").read_text())
    config = json.loads((tmp_path / "reg" / "config.json").read_text())
    assert len(config["id2label"]) == 1 and config["problem_type"] == "regression"
    assert -24 < config["regression_target_mean"] < -22
    splits = builder_splits(data["regression"])  # the regressor must beat predicting the training mean
    train_mean = float(np.mean(splits["train"]["log10_m_axion"]))
    assert config["regression_target_mean"] == pytest.approx(train_mean, abs=1e-4)  # the same training split
    mean_mae = float(np.mean(np.abs(np.asarray(splits["test"]["log10_m_axion"]) - train_mean)))
    assert metrics["task"] == "regression" and metrics["summary"]["test"]["num_examples"] == len(splits["test"])
    assert metrics["summary"]["test"]["mae"] < 0.6 * mean_mae, (metrics["summary"]["test"], mean_mae)
    run_script("finetune.py", *data["lens_finding"], *TINY_RUN, "--task", "lens_finding", "--mode", "scratch",
               "--imbalance", "weighted_sampler", "--output_dir", tmp_path / "lf", "--max_steps", "3")
    metrics = json.loads((tmp_path / "lf" / "metrics.json").read_text())
    assert {"roc_auc", "average_precision", "tpr_at_fpr_1e-2", "tpr_at_fpr_1e-3", "f1"} <= set(metrics["summary"]["test"])


@pytest.mark.parametrize("processes", [1, 2])
def test_super_resolution(data, tmp_path, processes):
    out = tmp_path / "sr"
    run_script("train_sr.py", *data["super_resolution"], *TINY_RUN, "--patch_size", "4", "--output_dir", out, "--max_steps", "3",
               processes=processes)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["task"] == "super_resolution"
    assert {"psnr", "ssim", "mse"} <= set(metrics["summary"]["validation"])
    assert any(name.startswith("bicubic upsampling") for name in metrics["references"])
    config = json.loads((out / "config.json").read_text())
    assert config["image_size"] == 16 and config["sr_scale"] == 2


def test_evaluate_script_adds_a_split_and_refreshes_the_card(data, pretrained, tmp_path):
    out = tmp_path / "clf"
    run_script("finetune.py", *data["classification"], *TINY_RUN, "--task", "classification", "--mode", "finetune",
               "--model_name_or_path", pretrained, "--output_dir", out, "--max_steps", "2")
    before = json.loads((out / "metrics.json").read_text())
    (out / "metrics.json").write_text(json.dumps({**before, "summary": {"validation": before["summary"]["validation"]},
                                                  "full": {"validation": before["full"]["validation"]}}))
    result = run_script("evaluate.py", *data["classification"], "--model_name_or_path", out, "--split", "test",
                        processes=2)
    after = json.loads((out / "metrics.json").read_text())
    assert after["summary"]["test"] == pytest.approx(before["summary"]["test"])  # same model, same data
    assert '"split": "test"' in result.stdout
    card = ModelCard.load(out / "README.md")
    assert {r.dataset_split for r in card.data.eval_results} == {"validation", "test"}


def test_resume_after_kill_continues_the_loss_curve_exactly(data, tmp_path):
    arguments = [*data["classification"], *TINY_RUN, "--max_steps", "10", "--save_steps", "4"]
    run_script("pretrain_mae.py", *arguments, "--output_dir", tmp_path / "whole")
    interrupted = tmp_path / "interrupted"
    command = [sys.executable, str(REPO_ROOT / "scripts" / "pretrain_mae.py"), *map(str, arguments), "--output_dir", str(interrupted)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO_ROOT,
                               env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO_ROOT)})
    marker = interrupted / "checkpoints" / "step_00000004" / "trainer_state.json"
    deadline = time.time() + 300
    while not marker.exists() and process.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert marker.exists()
    run_script("pretrain_mae.py", *arguments, "--output_dir", interrupted, "--resume_from_checkpoint", "latest")

    def losses(folder):
        records = [json.loads(line) for line in (folder / "logs" / "train_log.jsonl").read_text().splitlines()]
        return [(r["step"], r["loss"]) for r in records if "loss" in r]

    assert losses(interrupted) == losses(tmp_path / "whole")  # bit-identical, across the epoch boundary too
    assert [s for s, _ in losses(interrupted)] == list(range(1, 11))
    whole = load_file(tmp_path / "whole" / "model.safetensors")
    resumed = load_file(interrupted / "model.safetensors")
    assert all(torch.equal(whole[k], resumed[k]) for k in whole)


def test_nan_loss_stops_with_a_clear_message_and_keeps_the_last_good_checkpoint(data, tmp_path):
    out = tmp_path / "nan"
    result = run_script("finetune.py", *data["classification"], *TINY_RUN, "--task", "classification", "--mode",
                        "scratch", "--output_dir", out, "--max_steps", "40", "--save_steps", "1",
                        "--save_total_limit", "100", "--learning_rate", "1e12", "--warmup_ratio", "0", check=False)
    assert result.returncode != 0
    message = result.stdout + result.stderr
    assert "non-finite loss" in message and "Last good checkpoint" in message
    checkpoints = sorted((out / "checkpoints").glob("step_*"))
    assert checkpoints, "a checkpoint before the NaN must exist"
    failed_step = int(message.split("at step ")[1].split(",")[0])
    assert int(checkpoints[-1].name.split("_")[1]) == failed_step - 1
    state = load_file(checkpoints[-1] / "model.safetensors")
    assert all(torch.isfinite(t).all() for t in state.values() if t.is_floating_point())
    assert not (out / "model.safetensors").exists()  # no final model from a diverged run


def test_push_to_local_hub_and_load_without_lens_hf(data, pretrained, tmp_path, local_hub):
    out = tmp_path / "clf"
    run_script("finetune.py", *data["classification"], *TINY_RUN, "--task", "classification", "--mode", "finetune",
               "--model_name_or_path", pretrained, "--output_dir", out, "--max_steps", "2",
               "--push_to_hub", "true", "--hub_model_id", "org/lens-clf")
    run_script("push_to_hub.py", "--run_dir", out, "--repo_id", "org/lens-clf-copy")
    x = np.random.default_rng(0).random((2, 1, 32, 32)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    from lens_hf import LensMAEForImageClassification

    local = LensMAEForImageClassification.from_pretrained(out).eval()
    with torch.no_grad():
        np.save(tmp_path / "logits.npy", local(torch.from_numpy(x)).logits.numpy())
    for repo in ("org/lens-clf", "org/lens-clf-copy"):
        code = BLOCK_LENS_HF + f"""
import numpy as np, torch
from transformers import AutoModelForImageClassification
model = AutoModelForImageClassification.from_pretrained({repo!r}, trust_remote_code=True).eval()
assert type(model).__module__.startswith("transformers_modules")
with torch.no_grad():
    logits = model(torch.from_numpy(np.load({str(tmp_path / 'x.npy')!r}))).logits.numpy()
assert np.array_equal(logits, np.load({str(tmp_path / 'logits.npy')!r}))
print("LOADED")
"""
        env = {"HF_HOME": str(tmp_path / f"fresh_home_{repo.split('/')[1]}")}
        assert "LOADED" in run_python(code, env=env, cwd=tmp_path).stdout
        card = ModelCard.load(repo)
        assert card.data.eval_results and {r.dataset_split for r in card.data.eval_results} == {"validation", "test"}
        assert f'from_pretrained("{repo}"' in card.text
    files = {f.rfilename for f in __import__("huggingface_hub").HfApi().list_repo_tree("org/lens-clf", recursive=True)
             if hasattr(f, "rfilename")}
    assert not any(name.startswith(("checkpoints/", "logs/")) for name in files)
    assert {"model.safetensors", "config.json", "modeling_lens_mae.py", "README.md", "metrics.json"} <= files


def test_resnet18_baseline_from_scratch(data, tmp_path):
    out = tmp_path / "resnet"
    run_script("finetune.py", *data["classification"], *TINY_RUN, "--task", "classification", "--mode", "scratch",
               "--architecture", "resnet18", "--output_dir", out, "--max_steps", "2")
    config = json.loads((out / "config.json").read_text())
    assert config["architectures"] == ["ResNetForImageClassification"] and config["num_channels"] == 1
    assert config["depths"] == [2, 2, 2, 2] and config["layer_type"] == "basic"
    assert "accuracy" in json.loads((out / "metrics.json").read_text())["summary"]["test"]


def test_the_console_runner_destroys_the_process_group(monkeypatch):
    """Every rank leaves through `console.run`, which tears its process group down before the interpreter does."""
    import torch.distributed as dist
    from helpers import free_port

    from lens_hf.scripts.console import run

    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", str(free_port()))
    dist.init_process_group("gloo", rank=0, world_size=1)
    try:
        with pytest.raises(SystemExit) as exited:
            run(lambda argv: {"test": {}}, [], command="lens-hf-test")
        assert exited.value.code == 0 and not dist.is_initialized()
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
