"""D4 test-time augmentation: the averaged logits are invariant (1e-5) under the 8 rotations/flips, collect_outputs
and the image-classification pipeline apply it on request only, evaluate.py --tta d4 stores its figures beside the
plain ones (never over them) and the card shows them, and a task without logits of an image refuses it."""

import json
import shutil

import numpy as np
import pytest
import torch
from accelerate import Accelerator
from helpers import digest, load_script, run_script, tiny_config
from huggingface_hub import ModelCard
from torch.utils.data import DataLoader
from transformers import pipeline
from transformers.modeling_outputs import ImageClassifierOutput

from lens_hf import (
    D4TestTimeAugmentation,
    LensImageClassificationPipeline,
    LensImageProcessor,
    LensMAEForImageClassification,
    LensMAEForSuperResolution,
)
from lens_hf.data.transforms import D4_ORDER, d4_transform
from lens_hf.training.evaluation import TTA_TASKS, checked_tta, collect_outputs

LABELS = {0: "axion", 1: "cdm", 2: "no_sub"}


def tiny_classifier(seed: int = 0, **overrides) -> LensMAEForImageClassification:
    """A random LensMAE (3 classes unless `overrides` say otherwise) whose head is large enough that rotating the
    input changes its logits."""
    torch.manual_seed(seed)
    fields = dict(num_labels=3, id2label=LABELS, label2id={v: k for k, v in LABELS.items()})
    config = tiny_config(**{**fields, **overrides})
    model = LensMAEForImageClassification(config).eval()
    with torch.no_grad():
        model.classifier.weight.normal_()
    return model


def hand_mean_logits(model, pixel_values: torch.Tensor) -> torch.Tensor:
    """The D4 TTA logits computed independently of the implementation: the mean of the 8 views' logits."""
    with torch.no_grad():
        return torch.stack([model(pixel_values=d4_transform(pixel_values, k)).logits for k in range(D4_ORDER)]).mean(0)


class PoolingModel(torch.nn.Module):
    """A D4-invariant model: logits from the mean, mean square and maximum of each image."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.linear = torch.nn.Linear(3, 3)

    def forward(self, *, pixel_values):  # keyword-only: the TTA must pass pixel_values by name, and nothing else
        stats = torch.stack([pixel_values.mean((1, 2, 3)), pixel_values.pow(2).mean((1, 2, 3)),
                             pixel_values.amax((1, 2, 3))], dim=-1)
        return ImageClassifierOutput(logits=self.linear(stats))


def loader_of(pixel_values: torch.Tensor, labels: torch.Tensor, batch_size: int = 3) -> DataLoader:
    """Batches shaped as the evaluation loaders make them: {"pixel_values", "labels"}."""
    rows = [{"pixel_values": p, "labels": y} for p, y in zip(pixel_values, labels)]
    return DataLoader(rows, batch_size=batch_size,
                      collate_fn=lambda batch: {key: torch.stack([r[key] for r in batch]) for key in batch[0]})


def test_d4_averaged_logits_are_invariant_to_every_rotation_and_flip():
    model = tiny_classifier()
    images = torch.rand(4, 1, 32, 32)
    tta = D4TestTimeAugmentation(model)
    with torch.no_grad():
        reference = tta(pixel_values=images)
        assert isinstance(reference, ImageClassifierOutput)
        assert torch.allclose(reference.logits, hand_mean_logits(model, images), atol=1e-6)  # a mean, not a sum
        plain = model(pixel_values=images).logits
        turned = model(pixel_values=d4_transform(images, 1)).logits
        assert (plain - turned).abs().max() > 1e-3  # the plain model is not invariant: the check below means something
        for k in range(D4_ORDER):  # every rotation and every flip (k >= 4), not only the quarter turns
            logits = tta(pixel_values=d4_transform(images, k)).logits
            assert torch.allclose(logits, reference.logits, atol=1e-5), k


def test_a_d4_invariant_model_gives_the_same_result_with_and_without_tta():
    model = PoolingModel().eval()
    images, labels = torch.rand(7, 1, 16, 16), torch.tensor([0, 1, 2, 0, 1, 2, 0])
    accelerator = Accelerator(cpu=True)
    plain = collect_outputs(accelerator, model, loader_of(images, labels), "classification")
    averaged = collect_outputs(accelerator, model, loader_of(images, labels), "classification", tta="d4")
    assert np.allclose(plain["predictions"], averaged["predictions"], atol=1e-5)
    assert np.array_equal(plain["targets"], averaged["targets"]) and len(plain["predictions"]) == 7


@pytest.mark.parametrize("task", ["classification", "lens_finding", "regression"])
def test_collect_outputs_applies_tta_only_when_asked_on_a_prepared_model(task):
    """tta=None and "none" are the plain model; "d4" the mean of the 8 views, also through accelerate.prepare."""
    regression = task == "regression"
    model = tiny_classifier(num_labels=1, problem_type="regression", id2label={0: "LABEL_0"},
                            label2id={"LABEL_0": 0}, regression_target_mean=-23.0,
                            regression_target_std=0.5) if regression else tiny_classifier()
    images = torch.rand(5, 1, 32, 32)
    labels = torch.rand(5) - 23 if regression else torch.tensor([0, 1, 2, 1, 0]) % (2 if task == "lens_finding" else 3)
    accelerator = Accelerator(cpu=True)
    prepared, loader = accelerator.prepare(model, loader_of(images, labels, batch_size=2))
    with torch.no_grad():
        expected_plain = model(pixel_values=images).logits.numpy()
    expected_tta = hand_mean_logits(model, images).numpy()
    for off in (None, "none"):
        assert np.allclose(collect_outputs(accelerator, prepared, loader, task, tta=off)["predictions"],
                           expected_plain, atol=1e-5)  # equal but for the last bits of another batch size
    averaged = collect_outputs(accelerator, prepared, loader, task, tta="d4")["predictions"]
    assert np.allclose(averaged, expected_tta, atol=1e-5)
    assert np.abs(averaged - expected_plain).max() > 1e-4  # the TTA did change the figures


@pytest.mark.parametrize("task", ["pretraining", "super_resolution", "contrastive"])
def test_tta_is_refused_for_a_task_without_logits_of_an_image(task):
    with pytest.raises(ValueError, match=rf"--tta d4 averages the logits .* a {task} model has no such logits"):
        checked_tta("d4", task)
    with pytest.raises(ValueError, match=rf"a {task} model has no such logits"):
        collect_outputs(Accelerator(cpu=True), PoolingModel(), [], task, tta="d4")
    assert checked_tta("none", task) is None and checked_tta(None, task) is None


def test_tta_modes_are_checked():
    assert [checked_tta("d4", task) for task in TTA_TASKS] == ["d4"] * len(TTA_TASKS)
    with pytest.raises(ValueError, match=r"tta must be one of \('none', 'd4'\), got 'd8'"):
        checked_tta("d8", "classification")
    with pytest.raises(ValueError, match=r"square images, got 32x16"):
        D4TestTimeAugmentation(PoolingModel())(pixel_values=torch.rand(1, 1, 32, 16))


# -- the image-classification pipeline ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def classifier_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tta_pipeline") / "classifier"
    tiny_classifier(seed=1).save_pretrained(folder)
    LensImageProcessor(size=32).save_pretrained(folder)
    return folder


def scores_of(results) -> dict:
    return {r["label"]: r["score"] for r in results}


def test_pipeline_tta_scores_are_the_softmax_of_the_mean_d4_logits(classifier_folder):
    classify = pipeline("image-classification", model=str(classifier_folder), trust_remote_code=True,
                        pipeline_class=LensImageClassificationPipeline, tta="d4")
    model = LensMAEForImageClassification.from_pretrained(classifier_folder).eval()
    processor = LensImageProcessor.from_pretrained(classifier_folder)
    yy, xx = np.mgrid[:32, :32]  # an off-centre blob on a gradient and noise: no symmetry of its own
    image = (100 * np.exp(-((yy - 10) ** 2 + (xx - 20) ** 2) / 20.0) + 0.5 * xx
             + np.random.default_rng(0).poisson(5.0, (32, 32))).astype(np.float32)
    pixel_values = processor(image, return_tensors="pt")["pixel_values"]
    expected = hand_mean_logits(model, pixel_values)[0].softmax(-1)
    scores = scores_of(classify(image))
    assert scores == pytest.approx({LABELS[i]: float(p) for i, p in enumerate(expected)}, abs=1e-5)
    for turned in (np.rot90(image), np.rot90(image, 3), image[:, ::-1], image.T):  # rotations and reflections
        assert scores_of(classify(np.ascontiguousarray(turned))) == pytest.approx(scores, abs=1e-5)
    # off by default, on per call, off again per call: the plain scores are the softmax of the plain logits
    plain_pipeline = pipeline("image-classification", model=str(classifier_folder), trust_remote_code=True,
                              pipeline_class=LensImageClassificationPipeline)
    with torch.no_grad():
        plain_expected = model(pixel_values=pixel_values).logits[0].softmax(-1)
    plain = scores_of(plain_pipeline(image))
    assert plain == pytest.approx({LABELS[i]: float(p) for i, p in enumerate(plain_expected)}, abs=1e-5)
    assert max(abs(plain[k] - scores[k]) for k in plain) > 1e-2  # the TTA changed the scores
    assert scores_of(plain_pipeline(image, tta="d4")) == pytest.approx(scores, abs=1e-6)
    assert scores_of(classify(image, tta="none")) == pytest.approx(plain, abs=1e-6)
    batch = [image, np.ascontiguousarray(np.rot90(image))]  # batched through the pipeline's collate
    for result in classify(batch, batch_size=2):
        assert scores_of(result) == pytest.approx(scores, abs=1e-5)
    with pytest.raises(ValueError, match=r"tta must be one of"):
        classify(image, tta="d8")


# -- scripts/evaluate.py --tta d4 ---------------------------------------------------------------------------------

RUN = ["--num_train", "32", "--num_validation", "8", "--num_test", "8", "--crop_size", "32", "--model_preset", "tiny",
       "--per_device_train_batch_size", "8", "--disable_progress_bar", "true", "--report_to", "none",
       "--save_steps", "0"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A tiny MAE pretraining run (2 steps) and a classifier finetuned from it (4 steps), as tests/test_run_safety."""
    root = tmp_path_factory.mktemp("tta_runs")
    data = ["--cache_dir", str(root / "cache")]
    load_script("pretrain_mae.py").main([*RUN, *data, "--max_steps", "2", "--patch_size", "8",
                                         "--output_dir", str(root / "mae")])
    load_script("finetune.py").main([*RUN, *data, "--max_steps", "4", "--model_name_or_path", str(root / "mae"),
                                     "--output_dir", str(root / "classifier")])
    return root, data


def test_evaluate_tta_is_stored_beside_the_plain_figures_and_shown_in_the_card(runs):
    root, _ = runs
    folder = root / "classifier_tta"
    shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(root / "classifier", folder)
    before = json.loads((folder / "metrics.json").read_text())
    plots, card_before = digest(folder / "plots"), (folder / "README.md").read_text()
    index_before = ModelCard.load(folder / "README.md").data.eval_results
    evaluate = load_script("evaluate.py").main
    evaluate(["--model_name_or_path", str(folder), "--tta", "d4"])
    record = json.loads((folder / "metrics.json").read_text())
    assert record["summary"] == before["summary"] and record["full"] == before["full"]  # the plain ones unchanged
    assert record["plots"] == before["plots"] and digest(folder / "plots") == plots
    entry = record["evaluations"]["test (D4 TTA)"]
    assert (entry["tta"], entry["own_data"], entry["split"]) == ("d4", True, "test")
    assert set(entry["summary"]) == set(before["summary"]["test"])
    assert entry["summary"]["num_examples"] == before["summary"]["test"]["num_examples"] == 8
    assert entry["full"] != before["full"]["test"]  # the averaged logits scored, not the plain ones again
    assert entry["plots"] and all(p.startswith("evaluations/test_D4_TTA_/") and (folder / p).is_file()
                                  for p in entry["plots"].values())
    card = (folder / "README.md").read_text()
    table = card.split("## Evaluation")[1].split("\n###")[0]
    header = next(line for line in table.splitlines() if line.startswith("| metric |"))
    assert "| this model (validation) | this model (test) | this model with D4 TTA (test) |" in header
    assert "with D4 test-time augmentation (mean logits over 8 rotations/flips)" in table
    assert "### On other data" not in card  # the run's own data: not another data set
    accuracy_row = next(line for line in table.splitlines() if line.startswith("| accuracy |"))
    own_accuracy = card_before.split("## Evaluation")[1].split("\n###")[0]
    assert accuracy_row.startswith(next(line for line in own_accuracy.splitlines()
                                        if line.startswith("| accuracy |")).rstrip())  # plain cells unchanged
    assert accuracy_row.rstrip().endswith(f"| {entry['summary']['accuracy']:.4g} |")
    index = ModelCard.load(folder / "README.md").data.eval_results
    assert [(r.dataset_split, r.metric_type, r.metric_value) for r in index] == [
        (r.dataset_split, r.metric_type, r.metric_value) for r in index_before]  # the model-index: plain only
    # a plain evaluation afterwards recomputes the plain figures in place and keeps the TTA entry and its column
    evaluate(["--model_name_or_path", str(folder)])
    again = json.loads((folder / "metrics.json").read_text())
    assert again["summary"]["test"] == pytest.approx(before["summary"]["test"])
    assert again["evaluations"]["test (D4 TTA)"] == entry
    assert "this model with D4 TTA (test)" in (folder / "README.md").read_text()


def test_evaluate_tta_under_two_processes_matches_one(runs):
    """Under `accelerate launch` with 2 processes the model is DDP-wrapped and the rows sharded: the same figures."""
    root, data = runs
    folders = {}
    for processes in (1, 2):
        folders[processes] = root / f"classifier_tta_{processes}p"
        shutil.rmtree(folders[processes], ignore_errors=True)
        shutil.copytree(root / "classifier", folders[processes])
    load_script("evaluate.py").main(["--model_name_or_path", str(folders[1]), "--tta", "d4"])
    run_script("evaluate.py", "--model_name_or_path", folders[2], "--tta", "d4", processes=2)
    one, two = (json.loads((folders[n] / "metrics.json").read_text())["evaluations"]["test (D4 TTA)"] for n in (1, 2))
    assert two["summary"] == pytest.approx(one["summary"]) and two["summary"]["num_examples"] == 8


def test_evaluate_tta_on_a_pretraining_run_is_a_clear_error(runs):
    root, _ = runs
    before = digest(root / "mae")
    result = run_script("evaluate.py", "--model_name_or_path", root / "mae", "--tta", "d4", check=False)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "evaluate.py: error: --tta d4 averages the logits a model predicts for each image over its 8 " \
           "rotations/flips; a pretraining model has no such logits" in result.stderr
    assert digest(root / "mae") == before


def test_evaluate_tta_on_a_super_resolution_model_is_refused_before_reading_data(tmp_path):
    folder = tmp_path / "sr"
    model = LensMAEForSuperResolution(tiny_config(image_size=16, patch_size=4, sr_scale=2))
    model.config.lens_task = "super_resolution"  # as the training scripts record it
    model.save_pretrained(folder)
    before = digest(folder)
    with pytest.raises(ValueError, match=r"a super_resolution model has no such logits \(its output is an image"):
        load_script("evaluate.py").main(["--model_name_or_path", str(folder), "--tta", "d4",
                                         "--cache_dir", str(tmp_path / "cache")])
    assert digest(folder) == before and not (tmp_path / "cache").exists()  # refused before any data was read
