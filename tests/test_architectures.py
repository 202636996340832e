"""--architecture: transformers' own classifiers at their published sizes, built fresh or from a checkpoint whose
bands, image size or head differ from the run's (lens_hf.architectures), on every task, with run folders that
evaluate.py and pipeline() accept. Checkpoints are tiny random models saved locally or served by the local Hub."""

import json

import pytest
import torch
from helpers import run_script, sample_data_arguments
from huggingface_hub import HfApi, ModelCard
from transformers import (
    AutoModelForImageClassification,
    ConvNextConfig,
    ResNetConfig,
    ResNetForImageClassification,
    ResNetModel,
    ViTConfig,
    ViTForImageClassification,
)

from lens_hf.architectures import ARCHITECTURES, get_architecture
from lens_hf.architectures.transfer import from_checkpoint, output_layer, set_regression_head
from lens_hf.training.models import ModelLoadError

RUN = ["--per_device_train_batch_size", "8", "--per_device_eval_batch_size", "16", "--disable_progress_bar", "true",
       "--logging_steps", "1", "--save_steps", "0", "--max_steps", "2"]

# Parameters of each size at 224 px, 3 bands, 1000 classes: the counts torchvision / timm publish for these networks.
PUBLISHED_PARAMETERS = {
    "resnet18": 11_689_512, "resnet34": 21_797_672, "resnet50": 25_557_032,
    "efficientnet_b0": 5_288_548, "efficientnet_b1": 7_794_184, "efficientnet_b2": 9_109_994,
    "efficientnet_b3": 12_233_232, "efficientnet_b4": 19_341_616, "efficientnet_b5": 30_389_784,
    "efficientnet_b6": 43_040_704, "efficientnet_b7": 66_347_960, "mobilenet_v2": 3_504_872, "cvt_13": 19_997_480,
    "vit_base": 86_567_656, "vit_small": 22_050_664, "convnext_tiny": 28_589_128,
}
IMAGENET_NAMES = {k: f"imagenet_class_{k}" for k in range(1000)}
CLASSES = {0: "axion", 1: "cdm", 2: "no_sub"}


def tiny_rgb_resnet(labels: dict | None = None, architecture: str = "ResNetForImageClassification") -> torch.nn.Module:
    """A small random ResNet on RGB images, like an ImageNet checkpoint in all but size."""
    torch.manual_seed(0)
    config = ResNetConfig(num_channels=3, embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1], layer_type="basic",
                          id2label=labels or IMAGENET_NAMES, label2id={v: k for k, v in (labels or IMAGENET_NAMES).items()})
    model = ResNetForImageClassification(config) if architecture == "ResNetForImageClassification" else ResNetModel(config)
    with torch.no_grad():  # BatchNorm statistics that are not the identity, so copying them is tested too
        for name, buffer in model.named_buffers():
            if name.endswith(("running_mean", "running_var")):
                buffer.uniform_(0.5, 1.5)
    return model


def saved(model, folder):
    model.save_pretrained(folder)
    return str(folder)


def test_every_architecture_has_its_published_parameter_count():
    assert set(ARCHITECTURES) == set(PUBLISHED_PARAMETERS)
    for name, architecture in ARCHITECTURES.items():
        with torch.device("meta"):
            model = AutoModelForImageClassification.from_config(architecture.config(224, 3, num_labels=1000))
        assert sum(p.numel() for p in model.parameters()) == PUBLISHED_PARAMETERS[name], name
        assert model.config.image_size == 224 and model.config.num_channels == 3


def test_a_one_band_architecture_classifies_one_band_images():
    model = get_architecture("efficientnet_b0").build(32, 1, num_labels=3).eval()
    assert model(pixel_values=torch.randn(2, 1, 32, 32)).logits.shape == (2, 3)
    with pytest.raises(RuntimeError, match="to have 1 channels, but got 3"):
        model(pixel_values=torch.randn(2, 3, 32, 32))


def test_an_unknown_architecture_lists_the_valid_ones(tmp_path):
    with pytest.raises(ValueError, match="unknown architecture 'resnet99'; valid: lens_mae, resnet18, resnet34"):
        get_architecture("resnet99")
    result = run_script("finetune.py", "--architecture", "resnet99", "--mode", "scratch", "--output_dir", tmp_path,
                        check=False)
    assert result.returncode == 2 and "--architecture must be one of" in result.stderr
    assert all(name in result.stderr for name in ("lens_mae", "efficientnet_b7", "cvt_13", "convnext_tiny"))


def test_a_three_band_stem_on_one_band_data_sums_the_rgb_filters(tmp_path):
    source = tiny_rgb_resnet().eval()
    model, notes = from_checkpoint(get_architecture("resnet18"), saved(source, tmp_path / "rgb"), 32, 1,
                                   num_labels=3, id2label=CLASSES, label2id={v: k for k, v in CLASSES.items()},
                                   problem_type="single_label_classification")
    model.eval()
    stem = "resnet.embedder.embedder.convolution.weight"
    assert model.state_dict()[stem].shape[1] == 1
    torch.testing.assert_close(model.state_dict()[stem], source.state_dict()[stem].sum(1, keepdim=True))
    for key, value in model.state_dict().items():  # every other encoder tensor (BatchNorm statistics too) as saved
        if key.startswith("resnet.") and key != stem:
            assert torch.equal(value, source.state_dict()[key]), key
    # the adapted network on one band is the RGB network on the band repeated three times
    band = torch.randn(4, 1, 32, 32)
    torch.testing.assert_close(model.resnet(band).pooler_output, source.resnet(band.repeat(1, 3, 1, 1)).pooler_output)
    assert model.config.num_channels == 1 and model.config.id2label == CLASSES and model.config.num_labels == 3
    assert any("summing its RGB filters" in note for note in notes)
    assert not any(str(tmp_path) in note for note in notes)  # the card names no local path
    assert any("1000 outputs: imagenet_class_0" in note and "a new output layer" in note for note in notes)
    assert any("not the published ResNet-18" in note and "the checkpoint's own size is kept" in note for note in notes)


def test_a_head_that_fits_is_kept_and_one_that_does_not_is_replaced(tmp_path):
    source = tiny_rgb_resnet(CLASSES).eval()
    path = saved(source, tmp_path / "three_classes")
    same, notes = from_checkpoint(get_architecture("resnet18"), path, 32, 3, num_labels=3, id2label=CLASSES,
                                  label2id={v: k for k, v in CLASSES.items()},
                                  problem_type=source.config.problem_type)
    images = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(same.eval()(pixel_values=images).logits, source(pixel_values=images).logits)
    assert not any("output layer" in note for note in notes)
    renamed = {0: "no_sub", 1: "cdm", 2: "axion"}  # the same count, other classes: the head would mean other things
    other, notes = from_checkpoint(get_architecture("resnet18"), path, 32, 3, num_labels=3, id2label=renamed,
                                   label2id={v: k for k, v in renamed.items()})
    layer_name, _ = output_layer(other)
    assert not torch.equal(other.state_dict()[f"{layer_name}.weight"], source.state_dict()[f"{layer_name}.weight"])
    assert any("does not fit this task" in note for note in notes)
    encoder_only, notes = from_checkpoint(get_architecture("resnet18"),
                                          saved(tiny_rgb_resnet(architecture="ResNetModel"), tmp_path / "encoder"),
                                          32, 3, num_labels=3, id2label=CLASSES)
    assert any("has no classification head" in note for note in notes)


def test_bands_that_cannot_be_adapted_and_another_family_are_clear_errors(tmp_path):
    path = saved(tiny_rgb_resnet(), tmp_path / "rgb")
    with pytest.raises(ValueError, match=r"takes 3 input channels and the data has 2 band\(s\)"):
        from_checkpoint(get_architecture("resnet34"), path, 32, 2, num_labels=3)
    convnext = AutoModelForImageClassification.from_config(ConvNextConfig(hidden_sizes=[8, 16, 16, 16], depths=[1] * 4))
    with pytest.raises(ValueError, match="is a 'convnext' model; --architecture resnet34 needs a 'resnet' checkpoint"):
        from_checkpoint(get_architecture("resnet34"), saved(convnext, tmp_path / "convnext"), 32, 3, num_labels=3)
    broken = tmp_path / "rgb" / "model.safetensors"
    broken.write_bytes(broken.read_bytes()[:100])
    with pytest.raises(ModelLoadError, match="cannot be loaded"):
        from_checkpoint(get_architecture("resnet34"), path, 32, 1, num_labels=3)


def test_a_vit_position_grid_is_resized_for_another_image_size(tmp_path):
    torch.manual_seed(0)
    config = ViTConfig(image_size=32, patch_size=8, num_channels=3, hidden_size=16, num_hidden_layers=1,
                       num_attention_heads=2, intermediate_size=32, num_labels=10)
    source = ViTForImageClassification(config)
    model, notes = from_checkpoint(get_architecture("vit_small"), saved(source, tmp_path / "vit"), 64, 1, num_labels=3)
    old = source.state_dict()["vit.embeddings.position_embeddings"]
    new = model.state_dict()["vit.embeddings.position_embeddings"]
    assert old.shape == (1, 1 + 16, 16) and new.shape == (1, 1 + 64, 16)
    assert torch.equal(new[:, 0], old[:, 0])  # the class token's embedding is not part of the grid
    grid = torch.nn.functional.interpolate(old[:, 1:].reshape(1, 4, 4, 16).permute(0, 3, 1, 2), size=(8, 8),
                                           mode="bicubic", align_corners=False)
    torch.testing.assert_close(new[:, 1:], grid.permute(0, 2, 3, 1).reshape(1, 64, 16))
    assert model(pixel_values=torch.randn(2, 1, 64, 64)).logits.shape == (2, 3)
    assert any("resized bicubically from (1, 17, 16) to (1, 65, 16)" in note for note in notes)


def test_a_regression_head_starts_in_physical_units():
    model = get_architecture("mobilenet_v2").build(32, 1, num_labels=1, problem_type="regression").eval()
    images = torch.randn(3, 1, 32, 32)
    before = model(pixel_values=images).logits
    set_regression_head(model, target_mean=-23.0, target_std=0.5)
    torch.testing.assert_close(model(pixel_values=images).logits, before * 0.5 - 23.0)
    assert (model.config.regression_target_mean, model.config.regression_target_std) == (-23.0, 0.5)
    with pytest.raises(ValueError, match="one output"):
        set_regression_head(get_architecture("mobilenet_v2").build(32, 1, num_labels=3), 0.0, 1.0)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return sample_data_arguments(tmp_path_factory.mktemp("data"))


def test_an_imagenet_style_hub_checkpoint_finetunes_into_a_regressor_and_publishes_like_lens_mae(
        local_hub, data, tmp_path):
    """A 3-channel, 1000-class ResNet from the (local) Hub into an axion-mass regressor on 1-band images."""
    api = HfApi()
    api.create_repo("org/tiny-resnet-rgb", exist_ok=True)
    api.upload_folder(folder_path=saved(tiny_rgb_resnet(), tmp_path / "upload"), repo_id="org/tiny-resnet-rgb")
    out = tmp_path / "regressor"
    run_script("finetune.py", *data["regression"], *RUN, "--task", "regression", "--mode", "finetune",
               "--architecture", "resnet34", "--model_name_or_path", "org/tiny-resnet-rgb", "--output_dir", out)
    config = json.loads((out / "config.json").read_text())
    assert config["architectures"] == ["ResNetForImageClassification"] and config["num_channels"] == 1
    assert len(config["id2label"]) == 1 and config["problem_type"] == "regression" and config["lens_task"] == "regression"
    assert -24 < config["regression_target_mean"] < -22 and config["regression_target_std"] > 0
    assert {"model.safetensors", "preprocessor_config.json", "README.md", "metrics.json"} <= {p.name for p in out.iterdir()}
    assert json.loads((out / "preprocessor_config.json").read_text())["image_processor_type"] == "LensImageProcessor"
    notes = json.loads((out / "run_config.json").read_text())["derived"]["model_notes"]
    assert any("summing its RGB filters" in note for note in notes)
    card = ModelCard.load(out / "README.md")
    assert "summing its RGB filters" in card.text and card.data.base_model == "org/tiny-resnet-rgb"
    assert card.data.eval_results and card.data.eval_results[0].metric_type == "mae"
    test_mae = json.loads((out / "metrics.json").read_text())["summary"]["test"]["mae"]
    assert 0 < test_mae < 5  # in dex: the predictions are in physical units (the head starts at the mean)
    again = run_script("evaluate.py", "--model_name_or_path", out, "--split", "test", "--output_dir", tmp_path / "eval")
    assert json.loads((tmp_path / "eval" / "metrics.json").read_text())["summary"]["test"]["mae"] == pytest.approx(
        test_mae, rel=1e-5), again.stdout


def test_a_scratch_classifier_of_another_family_is_a_pipeline_ready_run_folder(local_hub, data, tmp_path):
    out = tmp_path / "convnext"
    run_script("finetune.py", *data["classification"], *RUN, "--task", "classification", "--mode", "scratch",
               "--architecture", "convnext_tiny", "--config_overrides", "depths=[1,1,1,1]", "--output_dir", out)
    config = json.loads((out / "config.json").read_text())
    assert config["model_type"] == "convnext" and config["depths"] == [1, 1, 1, 1] and config["num_channels"] == 1
    assert "ConvNeXt" in ModelCard.load(out / "README.md").text
    from transformers import pipeline

    import lens_hf  # noqa: F401  (registers LensImageProcessor)
    import numpy as np

    classifier = pipeline("image-classification", model=str(out))
    scores = classifier(np.random.default_rng(0).random((32, 32)).astype(np.float32))
    assert sorted(s["label"] for s in scores) == sorted(config["id2label"].values())
    assert sum(s["score"] for s in scores) == pytest.approx(1.0, abs=1e-5)
    run_script("push_to_hub.py", "--run_dir", out, "--repo_id", "org/convnext-lens")  # published like a LensMAE run
    files = set(HfApi().list_repo_files("org/convnext-lens"))
    assert {"config.json", "model.safetensors", "preprocessor_config.json", "README.md", "metrics.json"} <= files
    assert not any(name.startswith(("checkpoints/", "logs/")) for name in files)
    remote = AutoModelForImageClassification.from_pretrained("org/convnext-lens")  # transformers alone loads it
    assert type(remote).__name__ == "ConvNextForImageClassification" and remote.config.num_channels == 1


def test_refusals_name_what_is_wrong(data, tmp_path):
    lora = run_script("finetune.py", *data["classification"], *RUN, "--architecture", "resnet50", "--mode", "lora",
                      "--model_name_or_path", tmp_path, "--output_dir", tmp_path / "lora", check=False)
    assert lora.returncode == 2 and "--mode lora adapts the LensMAE encoder's linears" in lora.stderr
    probe = run_script("finetune.py", *data["classification"], *RUN, "--architecture", "vit_small", "--mode",
                       "linear_probe", "--probe_solver", "lbfgs", "--model_name_or_path", tmp_path, "--output_dir",
                       tmp_path / "probe", check=False)
    assert probe.returncode == 2 and "only the ResNets (resnet18, resnet34, resnet50) are probed" in probe.stderr


def test_the_architecture_table_smoke_run_scores_every_family_with_and_without_tta(tmp_path):
    """benchmarks/quality_architectures.py at its smoke size (one size per family, a regression on Model III)."""
    import subprocess
    import sys

    from helpers import REPO_ROOT

    def table(*extra):
        return subprocess.run([sys.executable, str(REPO_ROOT / "benchmarks" / "quality_architectures.py"), "--size",
                               "smoke", "--task", "regression", "--model", "model_iii", "--output_dir", str(tmp_path),
                               "--threads", "1", *extra], capture_output=True, text=True, cwd=REPO_ROOT, timeout=900,
                              env={**__import__("os").environ, "PYTHONPATH": str(REPO_ROOT)})

    refused = table("--architectures", "resnet18,resnet99")
    assert refused.returncode != 0 and "unknown ['resnet99']" in refused.stderr
    result = table()
    assert result.returncode == 0, result.stderr[-4000:]
    record = json.loads((tmp_path / "quality_architectures_regression_model_iii.json").read_text())
    figures = {figure["name"]: figure for figure in record["figures"]}
    families = ("lens_mae", "resnet18", "efficientnet_b0", "mobilenet_v2", "cvt_13", "vit_small", "convnext_tiny")
    for name in families:
        for key in ("mae", "mae_tta_d4", "rmse", "rmse_tta_d4", "parameters", "train_seconds", "inference_images_per_s"):
            assert f"{name}/{key}" in figures, (name, key)
            assert f"architectures_regression_model_iii/{name}/{key} " in result.stdout  # one printed line each
        assert figures[f"{name}/mae"]["folder"] == f"architectures_regression_model_iii/{name}"
        assert figures[f"{name}/mae_tta_d4"]["folder"] == f"architectures_regression_model_iii/{name}_tta_d4"
        assert figures[f"{name}/inference_images_per_s"]["value"] > 0 and figures[f"{name}/train_seconds"]["value"] > 0
        if name != "lens_mae":  # the trained network is the published size, with one band and one output
            fresh = get_architecture(name).build(40, 1, num_labels=1)
            assert figures[f"{name}/parameters"]["value"] == sum(p.numel() for p in fresh.parameters())
    # the physical-unit heads: a 2-step regressor is off by about the targets' spread, not by 23 dex
    assert all(figures[f"{name}/mae"]["value"] < 3 for name in families)
    # TTA changes the figures of networks that are not D4-invariant
    assert any(figures[f"{name}/mae_tta_d4"]["value"] != figures[f"{name}/mae"]["value"] for name in families)


@pytest.mark.parametrize("name", ["resnet18", "efficientnet_b0", "efficientnet_b7", "mobilenet_v2", "cvt_13",
                                  "vit_small", "convnext_tiny"])
def test_a_fresh_network_passes_signal_in_training_mode(name):
    """From scratch every family must see its input: transformers' N(0, 0.02) convolutions left a fresh EfficientNet's
    features at about 1e-31, so it could not train (lens-hf re-initialises it as its paper does)."""
    torch.manual_seed(0)
    model = get_architecture(name).build(32, 1, num_labels=3).train()
    base = getattr(model, type(model).base_model_prefix)
    with torch.no_grad():
        output = base(torch.randn(8, 1, 32, 32))
    features = output.pooler_output if getattr(output, "pooler_output", None) is not None else output.last_hidden_state
    assert float(features.float().std()) > 0.05, name
