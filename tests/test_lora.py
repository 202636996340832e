"""LoRA through peft: the adapter touches the modules LensMAE actually has, the run folder is an adapter that
loads back (and merges into a plain model with equal logits), layer-wise lr decay, precise BatchNorm and resume
work with the wrapped model, and an adapter repo pushed to the (local) Hub loads back on its base model."""

import json

import pytest
import torch
from helpers import assert_resume_redoes_the_last_steps, load_script, tiny_config
from huggingface_hub import ModelCard

from lens_hf import LensMAEForImageClassification
from lens_hf.training.adapters import LENS_MAE_LORA_TARGETS, merge_adapter_folder, wrap_with_lora

RUN = ["--per_device_train_batch_size", "8", "--per_device_eval_batch_size", "16", "--disable_progress_bar", "true",
       "--report_to", "none", "--save_steps", "0"]


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """Simulated 32 px Model II data and a tiny MAE pretrained on it for 2 steps (the adapter's base)."""
    root = tmp_path_factory.mktemp("lora")
    data = ["--num_train", "48", "--num_validation", "16", "--num_test", "24", "--crop_size", "32", "--cache_dir",
            str(root / "cache"), "--dataset_seed", "5"]
    load_script("pretrain_mae.py").main([*data, *RUN, "--model_preset", "tiny", "--patch_size", "8", "--max_steps",
                                         "2", "--output_dir", str(root / "mae")])
    return root, data, root / "mae"


def test_the_adapter_touches_every_attention_and_mlp_linear_and_nothing_else():
    model = LensMAEForImageClassification(tiny_config(num_labels=3)).eval()
    pixels = torch.randn(2, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    before = model(pixel_values=pixels).logits
    wrapped = wrap_with_lora(model, rank=4).eval()
    adapted = sorted(name.removesuffix(".lora_A") for name, _ in wrapped.named_modules() if name.endswith(".lora_A"))
    expected = sorted(f"base_model.model.vit.layers.{i}.{part}" for i in range(2) for part in
                      ("attention.qkv", "attention.proj", "fc1", "fc2"))
    assert adapted == expected
    trainable = {name for name, p in wrapped.named_parameters() if p.requires_grad}
    assert all("lora_" in name or "modules_to_save" in name for name in trainable)
    assert any("classifier.modules_to_save" in name for name in trainable)  # the head trains in full
    assert not any("embeddings" in name for name in trainable)
    assert torch.allclose(wrapped(pixel_values=pixels).logits, before, atol=1e-6)  # B = 0: unchanged at start
    with pytest.raises(ValueError, match=r"\['query'\] match no module.*qkv"):
        wrap_with_lora(LensMAEForImageClassification(tiny_config(num_labels=3)), target_modules="query,fc1")
    assert set(LENS_MAE_LORA_TARGETS) == {"qkv", "proj", "fc1", "fc2"}


def test_lora_run_folder_is_an_adapter_that_loads_merges_and_evaluates(base):
    from lens_hf.training.evaluation import load_saved_model

    root, data, mae = base
    out = root / "lora"
    metrics = load_script("finetune.py").main([*data, *RUN, "--mode", "lora", "--model_name_or_path", str(mae),
                                               "--lora_rank", "4", "--max_steps", "4", "--learning_rate", "1e-2",
                                               "--merge_adapter", "--output_dir", str(out)])
    assert (out / "adapter_config.json").exists() and (out / "adapter_model.safetensors").exists()
    assert not (out / "model.safetensors").exists()  # the frozen base is not copied
    settings = json.loads((out / "adapter_config.json").read_text())
    assert settings["base_model_name_or_path"] == str(mae.resolve()) and settings["r"] == 4
    assert json.loads((out / "config.json").read_text())["lens_task"] == "classification"

    adapter, task = load_saved_model(out)
    assert task.name == "classification" and type(adapter).__name__ == "PeftModel"
    merged = LensMAEForImageClassification.from_pretrained(out / "merged").eval()
    pixels = torch.randn(3, 1, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(merged(pixel_values=pixels).logits, adapter.eval()(pixel_values=pixels).logits,
                                   rtol=1e-4, atol=1e-5)
    pretrained = LensMAEForImageClassification.from_pretrained(mae, num_labels=3)
    assert not torch.allclose(merged.vit.layers[0].attention.qkv.weight, pretrained.vit.layers[0].attention.qkv.weight)

    again = load_script("evaluate.py").main([*data, "--model_name_or_path", str(out), "--split", "test",
                                             "--refresh_card", "false"])
    assert again["test"]["accuracy"] == metrics["test"]["accuracy"]
    card = ModelCard.load(out / "README.md")
    assert card.data.library_name == "peft" and "lora" in card.data.tags and "PeftModel.from_pretrained" in card.text
    with pytest.raises(FileExistsError, match="already holds a merged model"):  # a merge is never overwritten
        merge_adapter_folder(out, LensMAEForImageClassification)


def test_layer_decay_and_precise_batchnorm_work_with_the_wrapped_model():
    from accelerate import Accelerator

    from lens_hf.training.evaluation import recompute_batchnorm_statistics
    from lens_hf.training.optim import parameter_groups

    model = LensMAEForImageClassification(tiny_config(num_labels=3, classifier_head_norm="batchnorm"))
    wrapped = wrap_with_lora(model, rank=2)
    scales = {name: group["lr_scale"] for group in parameter_groups(wrapped, 0.05, layer_decay=0.5)
              for name in group["names"]}
    layer = lambda i: {scales[n] for n in scales if f"vit.layers.{i}." in n}  # noqa: E731
    assert layer(0) == {0.5 ** 2} and layer(1) == {0.5}  # block i: 0.5 ** (2 + 1 - (i + 1))
    assert {s for n, s in scales.items() if "classifier" in n} == {1.0}

    images = torch.randn(4, 8, 1, 32, 32, generator=torch.Generator().manual_seed(2))
    loader = [{"pixel_values": batch} for batch in images]
    assert recompute_batchnorm_statistics(Accelerator(cpu=True), wrapped, loader) > 0
    active = wrapped.base_model.model.head_norm.modules_to_save["default"]
    with torch.no_grad():
        inner = wrapped.base_model.model
        pooled = torch.cat([inner.pool(inner.vit(batch).last_hidden_state) for batch in images])
    torch.testing.assert_close(active.running_mean, pooled.mean(0), rtol=1e-4, atol=1e-5)


def test_lora_training_resumes_exactly(base):
    """The adapter and head resume exactly from a checkpoint of the wrapped model."""
    root, data, mae = base
    assert_resume_redoes_the_last_steps(
        load_script("finetune.py").main,
        [*data, "--per_device_train_batch_size", "8", "--disable_progress_bar", "true", "--report_to", "none",
         "--mode", "lora", "--model_name_or_path", str(mae), "--learning_rate", "1e-2"], root / "lora_resume",
        "adapter_model.safetensors")


def test_adapter_repo_pushed_to_the_hub_loads_back_on_its_base(base, local_hub, tmp_path):
    from peft import PeftModel
    from transformers import AutoConfig

    from lens_hf.training.evaluation import load_saved_model

    root, data, mae = base
    push = load_script("push_to_hub.py")
    push.main(["--run_dir", str(mae), "--repo_id", "org/lora-base"])
    out = tmp_path / "hub_lora"
    load_script("finetune.py").main([*data, *RUN, "--mode", "lora", "--model_name_or_path", "org/lora-base",
                                     "--max_steps", "2", "--learning_rate", "1e-2", "--output_dir", str(out)])
    assert json.loads((out / "adapter_config.json").read_text())["base_model_name_or_path"] == "org/lora-base"
    push.main(["--run_dir", str(out), "--repo_id", "org/lora-adapter"])
    card = ModelCard.load("org/lora-adapter")
    assert card.data.base_model == "org/lora-base" and card.data.library_name == "peft"

    config = AutoConfig.from_pretrained("org/lora-adapter")
    hub = PeftModel.from_pretrained(LensMAEForImageClassification.from_pretrained("org/lora-base", config=config),
                                    "org/lora-adapter").eval()
    local, _ = load_saved_model(out)
    pixels = torch.randn(2, 1, 32, 32, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        assert torch.equal(hub(pixel_values=pixels).logits, local.eval()(pixel_values=pixels).logits)

    # an adapter on a local base cannot be published without the base's Hub id; with it, only the copy changes
    local_base_run = root / "lora"
    if not local_base_run.exists():
        pytest.skip("needs the run of test_lora_run_folder_is_an_adapter_that_loads_merges_and_evaluates")
    with pytest.raises(SystemExit, match="--base_model_id"):
        push.main(["--run_dir", str(local_base_run), "--repo_id", "org/lora-local"])
    recorded = (local_base_run / "adapter_config.json").read_text()
    push.main(["--run_dir", str(local_base_run), "--repo_id", "org/lora-local", "--base_model_id", "org/lora-base"])
    assert (local_base_run / "adapter_config.json").read_text() == recorded
    pushed = json.loads(open(__import__("huggingface_hub").hf_hub_download("org/lora-local", "adapter_config.json")).read())
    assert pushed["base_model_name_or_path"] == "org/lora-base"
    assert ModelCard.load("org/lora-local").data.base_model == "org/lora-base"
