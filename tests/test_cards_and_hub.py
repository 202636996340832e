"""Model cards (lens_hf.cards) and Hub publishing (lens_hf.hub), against the local Hub server."""
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from huggingface_hub import HfApi, ModelCard

from lens_hf import LensImageProcessor, LensMAEConfig, LensMAEForImageClassification
from lens_hf.cards import render_model_card
from lens_hf.tasks import TASKS
from lens_hf.hub import ModelFolderError, check_model_folder, push_folder_to_hub
from lens_hf.metrics import functional, plots

CLASS_NAMES = ["no_sub", "cdm", "axion"]
TRAINING_ARGS = {"optimizer": "adamw", "learning_rate": 1e-3, "layer_decay": 0.75, "weight_decay": 0.05,
                 "per_device_train_batch_size": 8, "seed": 0, "hub_token": "hf_do_not_publish",
                 "output_dir": "runs/clf", "logging_dir": None}


def _tiny_config(**overrides):
    return LensMAEConfig(image_size=16, patch_size=8, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=64, **overrides)


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory):
    """A saved tiny 3-class LensMAE classifier with its image processor, as a training script leaves it."""
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("clf")
    config = _tiny_config(num_labels=3, id2label=dict(enumerate(CLASS_NAMES)))
    LensMAEForImageClassification(config).eval().save_pretrained(folder)
    LensImageProcessor(size=16).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def classification_result():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 60)
    probabilities = rng.dirichlet(np.ones(3), 60) + np.eye(3)[labels]
    return functional.classification_metrics(probabilities / probabilities.sum(1, keepdims=True), labels,
                                             CLASS_NAMES)


def _card_folder(tmp_path, model_folder, classification_result):
    folder = tmp_path / "model"
    shutil.copytree(model_folder, folder)
    plots.plot_roc_curves(classification_result["roc_curves"], folder / "plots" / "roc.png")
    plots.plot_confusion_matrix(classification_result["confusion_matrix"], CLASS_NAMES,
                                folder / "plots" / "confusion.png")
    return folder


def _render_classifier_card(folder, repo_id, classification_result):
    return render_model_card(
        repo_id=repo_id, task="classification", config=LensMAEConfig.from_pretrained(folder),
        training_args=TRAINING_ARGS, dataset={"id": "org/deeplense-model-ii", "name": "DeepLense Model II"},
        metrics={"test": classification_result}, base_model="org/lens-mae", card_dir=folder,
        plots={"ROC curves": folder / "plots" / "roc.png", "Confusion matrix": "plots/confusion.png"},
        num_parameters=12345)


def _python_blocks(text):
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def test_card_metadata_round_trips_through_model_card_load(tmp_path, model_folder, classification_result):
    folder = _card_folder(tmp_path, model_folder, classification_result)
    card = _render_classifier_card(folder, "org/lens-clf", classification_result)
    card.save(folder / "README.md")
    loaded = ModelCard.load(folder / "README.md")
    data = loaded.data
    assert data.license == "mit" and data.library_name == "transformers"
    assert data.pipeline_tag == "image-classification" and data.base_model == "org/lens-mae"
    assert data.datasets == ["org/deeplense-model-ii"]
    assert {"lens-hf", "gravitational-lensing", "classification"} <= set(data.tags)
    results = {(r.dataset_split, r.metric_type): r.metric_value for r in data.eval_results}
    assert results == {("test", key): pytest.approx(classification_result[key], abs=1e-6)
                       for key in ("accuracy", "roc_auc_micro", "roc_auc_macro")}
    assert {r.dataset_type for r in data.eval_results} == {"org/deeplense-model-ii"}
    text = loaded.text
    assert 'from_pretrained("org/lens-clf", trust_remote_code=True)' in text
    assert "import lens_hf" in text and "AutoModelForImageClassification" in text
    for link in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text):
        assert (folder / link).is_file(), link
    assert "hf_do_not_publish" not in text and "hub_token" not in text
    assert "| layer_decay | 0.75 |" in text and "| `output_dir` | runs/clf |" in text
    assert "ROC AUC (cdm)" in text and "sr_scale" not in text  # only the head's config fields
    assert "He, Kaiming" in text and "Deep Learning the Morphology of Dark Matter Substructure" in text


def test_every_task_renders_a_parseable_model_index(tmp_path):
    rng = np.random.default_rng(1)
    truth = rng.uniform(-24, -22, 30)
    images = rng.random((2, 1, 16, 16))
    target = rng.random((2, 4, 16))
    results = {
        "pretraining": functional.masked_reconstruction_metrics(target * 0.9, target, [[1, 1, 0, 1], [1, 1, 1, 0]]),
        "classification": functional.classification_metrics(rng.dirichlet(np.ones(3), 30), np.arange(30) % 3),
        "lens_finding": functional.lens_finding_metrics(rng.random(30), np.arange(30) % 2),
        "regression": functional.regression_metrics(truth + 0.1, truth),
        "super_resolution": functional.super_resolution_metrics(images * 0.9, images),
        "contrastive": functional.view_retrieval_metrics(rng.normal(size=(30, 8)), rng.normal(size=(30, 8))),
    }
    assert set(results) == set(TASKS)
    for task, result in results.items():
        card = render_model_card(repo_id=f"org/{task}", task=task, config=_tiny_config(num_labels=1),
                                 training_args={"seed": 0}, dataset={"id": "org/sim"},
                                 metrics={"validation": result})
        card.save(tmp_path / f"{task}.md")
        parsed = ModelCard.load(tmp_path / f"{task}.md").data
        assert parsed.pipeline_tag == TASKS[task].card.pipeline_tag
        assert [r.metric_type for r in parsed.eval_results] == [key for key, _ in TASKS[task].card.headline_metrics]
        assert f"{TASKS[task].card.auto_class}.from_pretrained(\"org/{task}\")" in card.text
    sigmoid = render_model_card(repo_id="org/lf", task="lens_finding", config=_tiny_config(num_labels=1),
                                training_args={}, dataset={"id": "org/sim"})
    assert "sigmoid()" in sigmoid.text and "No evaluation results" in sigmoid.text


def test_reference_rows_show_in_the_table_but_not_in_the_model_index(tmp_path):
    rng = np.random.default_rng(2)
    hr = rng.random((2, 1, 32, 32))
    lr = hr.reshape(2, 1, 16, 2, 16, 2).mean(axis=(3, 5))
    card = render_model_card(
        repo_id="org/sr", task="super_resolution", config=_tiny_config(), training_args={}, dataset={"id": "org/sr"},
        metrics={"test": functional.super_resolution_metrics(np.clip(hr + 0.01, 0, 1), hr)},
        reference_metrics={"bicubic upsampling (test)": functional.bicubic_baseline_metrics(lr, hr)})
    assert "| metric | this model (test) | bicubic upsampling (test) |" in card.text
    card.save(tmp_path / "README.md")
    assert {r.dataset_split for r in ModelCard.load(tmp_path / "README.md").data.eval_results} == {"test"}


def test_evaluations_on_other_data_have_their_own_table_and_model_index_entry(tmp_path, classification_result):
    other = {"common_test (default) test": {"dataset": {"id": "/home/me/common_test", "config": "default"},
                                            "split": "test", "full": classification_result}}
    card = render_model_card(repo_id="org/clf", task="classification", config=_tiny_config(num_labels=3),
                             training_args={}, dataset={"id": "org/deeplense-model-ii", "config": "model_ii"},
                             metrics={"test": classification_result}, other_evaluations=other)
    own, rest = card.text.split("### On other data")
    assert "| metric | this model (test) |" in own and "common_test" not in own
    assert "| metric | common_test (default) test |" in rest
    card.save(tmp_path / "README.md")
    index = ModelCard.load(tmp_path / "README.md").data.eval_results
    assert sorted({(r.dataset_type, r.dataset_name, r.dataset_config) for r in index}) == [
        ("common_test", "common_test (default) test", "default"), ("org/deeplense-model-ii", "org/deeplense-model-ii",
                                                                   "model_ii")]
    assert "/home/me" not in card.text  # a local dataset path is named by its folder only
    with pytest.raises(ValueError, match="other evaluation 'x' needs 'dataset'"):
        render_model_card(repo_id="org/clf", task="classification", config=_tiny_config(), training_args={},
                          dataset={"id": "org/sim"}, other_evaluations={"x": {"split": "test"}})


def test_card_input_errors(tmp_path, classification_result):
    common = dict(repo_id="org/x", config=_tiny_config(), training_args={}, dataset={"id": "org/sim"})
    with pytest.raises(ValueError, match="unknown task 'segmentation'"):
        render_model_card(task="segmentation", **common)
    with pytest.raises(ValueError, match="at least an 'id'"):
        render_model_card(**{**common, "dataset": {"name": "sim"}}, task="classification")
    with pytest.raises(ValueError, match="must be a mapping of metric name"):
        render_model_card(task="classification", metrics={"test": 0.9}, **common)
    outside = plots.plot_loss_curves({"train": [1.0, 0.5]}, tmp_path / "elsewhere" / "loss.png")
    (tmp_path / "model").mkdir()
    with pytest.raises(ValueError, match="outside the model folder"):
        render_model_card(task="classification", plots={"Loss": outside}, card_dir=tmp_path / "model", **common)
    with pytest.raises(FileNotFoundError, match="Plot 'Loss' not found"):
        render_model_card(task="classification", plots={"Loss": "loss.png"}, card_dir=tmp_path / "model", **common)
    with pytest.raises(ValueError, match="pass `card_dir`"):
        render_model_card(task="classification", plots={"Loss": outside}, **common)
    with pytest.raises(FileNotFoundError, match="model card template 'missing.md' not found at .*model_cards"):
        render_model_card(task="classification", template="missing.md", **common)


def test_push_folder_then_run_the_cards_snippets(local_hub, tmp_path, model_folder, classification_result,
                                                 monkeypatch):
    """The card's how-to-use code runs as printed, with lens_hf and (in a fresh process) without it."""
    folder = _card_folder(tmp_path, model_folder, classification_result)
    _render_classifier_card(folder, "org/lens-clf-snippet", classification_result).save(folder / "README.md")
    commit = push_folder_to_hub(folder, "org/lens-clf-snippet", commit_message="first push")
    assert re.fullmatch(rf"{local_hub.url}/org/lens-clf-snippet/commit/[0-9a-f]{{40}}", commit)
    remote = {f for f in HfApi().list_repo_files("org/lens-clf-snippet")}
    assert remote == set(check_model_folder(folder)) | {".gitattributes"}
    assert ModelCard.load("org/lens-clf-snippet").data.eval_results[0].metric_type == "accuracy"

    with_lens_hf, without_lens_hf = _python_blocks((folder / "README.md").read_text())
    image = np.random.default_rng(3).random((16, 16)).astype(np.float32) * 100
    np.save(tmp_path / "lens.npy", image)
    monkeypatch.chdir(tmp_path)
    namespace = {}
    exec(with_lens_hf, namespace)  # noqa: S102 - the card's own example
    local = LensMAEForImageClassification.from_pretrained(model_folder).eval()
    with torch.no_grad():
        expected = local(**LensImageProcessor.from_pretrained(model_folder)(image, return_tensors="pt")).logits
    torch.testing.assert_close(namespace["outputs"].logits, expected)

    script = "import sys\nsys.modules['lens_hf'] = None  # as if lens_hf were not installed\n" + without_lens_hf + \
        textwrap.dedent("""
        import numpy as np, torch
        assert type(model).__module__.startswith("transformers_modules"), type(model).__module__
        inputs = processor(np.load("lens.npy"), return_tensors="pt")
        with torch.no_grad():
            print(repr(model.eval()(**inputs).logits.tolist()))
        """)
    env = {**os.environ, "PYTHONPATH": ""}
    run = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
    remote_logits = torch.tensor(eval(run.stdout.strip().splitlines()[-1]))  # noqa: S307 - our own repr
    torch.testing.assert_close(remote_logits, expected)


def test_push_as_pull_request_leaves_main(local_hub, tmp_path, model_folder):
    api = HfApi()
    push_folder_to_hub(model_folder, "org/lens-clf-pr", private=True)
    main_before = api.model_info("org/lens-clf-pr").sha
    (tmp_path / "v2").mkdir()
    shutil.copytree(model_folder, tmp_path / "v2", dirs_exist_ok=True)
    (tmp_path / "v2" / "NOTES.md").write_text("second version")
    commit = push_folder_to_hub(tmp_path / "v2", "org/lens-clf-pr", create_pr=True)
    assert commit.pr_revision == "refs/pr/1"
    assert api.model_info("org/lens-clf-pr").sha == main_before and api.model_info("org/lens-clf-pr").private
    assert "NOTES.md" in api.list_repo_files("org/lens-clf-pr", revision="refs/pr/1")


def _broken_copy(tmp_path, model_folder, breakage):
    folder = tmp_path / "broken"
    shutil.copytree(model_folder, folder)
    breakage(folder)
    return folder


@pytest.mark.parametrize("breakage, message", [
    (lambda f: (f / "training_args.bin").write_bytes(b"pickle"), r"pickled file\(s\) \['training_args.bin'\]"),
    (lambda f: (f / "config.json").unlink(), "config.json is missing"),
    (lambda f: (f / "config.json").write_text("{not json"), "config.json is not valid JSON"),
    (lambda f: (f / "config.json").write_text('{"hidden_size": 8}'), "has no 'model_type'"),
    (lambda f: (f / "model.safetensors").unlink(), "no .safetensors weights"),
    (lambda f: (f / "model.safetensors").write_bytes(b"\x00" * 64), "model.safetensors is not a readable"),
    (lambda f: (f / "modeling_lens_mae.py").unlink(), r"auto_map naming \['modeling_lens_mae.py'\]"),
    (lambda f: (f / "image_processing_lens.py").unlink(), r"preprocessor_config.json has an auto_map"),
    (lambda f: (f / "model.safetensors.index.json").write_text(json.dumps(
        {"weight_map": {"w": "model-00002-of-00002.safetensors"}})), r"shard\(s\) \['model-00002-of-00002"),
])
def test_push_refuses_unfit_folders_before_touching_the_hub(local_hub, tmp_path, model_folder, breakage, message):
    folder = _broken_copy(tmp_path, model_folder, breakage)
    with pytest.raises(ModelFolderError, match=message):
        push_folder_to_hub(folder, "org/never-created")
    assert not HfApi().repo_exists("org/never-created")


def test_ignored_files_are_neither_checked_nor_uploaded(local_hub, tmp_path, model_folder):
    folder = _broken_copy(tmp_path, model_folder, lambda f: (f / "checkpoint-1").mkdir())
    (folder / "checkpoint-1" / "optimizer.bin").write_bytes(b"pickle")
    with pytest.raises(ModelFolderError, match="checkpoint-1/optimizer.bin"):
        check_model_folder(folder)
    push_folder_to_hub(folder, "org/lens-clf-ignored", ignore_patterns=["checkpoint-*/*"])
    assert not any(f.startswith("checkpoint") for f in HfApi().list_repo_files("org/lens-clf-ignored"))
    with pytest.raises(ModelFolderError, match="does not exist"):
        check_model_folder(tmp_path / "nowhere")


def test_a_local_dataset_path_never_reaches_the_card(tmp_path):
    data_dir = tmp_path / "private" / "exported-sim"
    data_dir.mkdir(parents=True)
    card = render_model_card(repo_id="org/r", task="regression", config=_tiny_config(num_labels=1),
                             training_args={}, dataset={"id": str(data_dir)},
                             metrics={"test": functional.regression_metrics([1.0, 2.0], [1.1, 2.1])})
    card.save(tmp_path / "README.md")
    text = (tmp_path / "README.md").read_text()
    assert str(tmp_path) not in text and "exported-sim" in text
    data = ModelCard.load(tmp_path / "README.md").data
    assert data.datasets is None and data.eval_results[0].dataset_type == "exported-sim"


def test_a_local_base_model_is_named_by_its_folder_and_left_out_of_the_yaml(tmp_path):
    base = tmp_path / "private" / "my-mae"
    base.mkdir(parents=True)
    card = render_model_card(repo_id="org/c", task="classification", config=_tiny_config(num_labels=3),
                             training_args={}, dataset={"id": "org/sim"}, base_model=str(base))
    assert str(tmp_path) not in card.text and "the local checkpoint `my-mae` (not on the Hub)" in card.text
    assert card.data.base_model is None
    hub = render_model_card(repo_id="org/c", task="classification", config=_tiny_config(num_labels=3),
                            training_args={}, dataset={"id": "org/sim"}, base_model="org/lens-mae")
    assert hub.data.base_model == "org/lens-mae" and "[org/lens-mae](https://huggingface.co/org/lens-mae)" in hub.text
