"""Lens-finding class imbalance: oversampling (the DeepLense "upsampling"), the focal loss, F1 at the threshold
chosen on the validation split (saved with the model, reused on the test split), and the precision-recall plot."""

import json
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import builder_splits, load_script
from sklearn.metrics import f1_score
from transformers import PretrainedConfig

from lens_hf import LensMAEForImageClassification
from lens_hf.data.sample_layouts import write_lens_finding_tree
from lens_hf.metrics import functional, plots
from lens_hf.tasks import LossContext, get_task
from lens_hf.tasks import classification as classification_module
from lens_hf.tasks.classification import focal_loss
from lens_hf.training.data import oversampled_indices

# Sorted by score: 0.8 (lens), 0.8 (lens), 0.4, 0.4, 0.35 (lens), 0.2 (lens), 0.1, 0.1.
HAND_SCORES = [0.1, 0.4, 0.35, 0.8, 0.4, 0.8, 0.2, 0.1]
HAND_LENSES = [0, 0, 1, 1, 0, 1, 1, 0]


# -- oversampling --------------------------------------------------------------------------------
def test_oversampling_balances_every_class_to_the_largest():
    labels = [0] * 10 + [1] * 3 + [2] * 4  # interleaving does not matter; rows are found by label
    labels = list(np.random.default_rng(0).permutation(labels))
    rows = oversampled_indices(labels, seed=0)
    drawn = np.asarray(labels)[rows]
    assert np.bincount(drawn).tolist() == [10, 10, 10]
    counts = np.bincount(rows, minlength=len(labels))
    for row, label in enumerate(labels):
        if label == 0:
            assert counts[row] == 1  # the largest class: every row once per epoch
        elif label == 1:  # 10 = 3 whole copies + 1 drawn: one row 4 times, two rows 3 times
            assert counts[row] in (3, 4)
        else:  # 10 = 2 whole copies + 2 drawn without replacement
            assert counts[row] in (2, 3)
    assert sorted(counts[np.asarray(labels) == 1].tolist()) == [3, 3, 4]
    assert sorted(counts[np.asarray(labels) == 2].tolist()) == [2, 2, 3, 3]
    assert rows == sorted(rows)


def test_oversampling_is_deterministic_given_the_seed():
    labels = [0] * 50 + [1] * 7
    assert oversampled_indices(labels, seed=3) == oversampled_indices(labels, seed=3)
    remainders = {tuple(oversampled_indices(labels, seed=s)) for s in range(6)}
    assert len(remainders) > 1  # the remainder (50 % 7 = 1 row) is drawn by the seed
    assert oversampled_indices([1, 0, 1, 0], seed=0) == [0, 1, 2, 3]  # balanced: unchanged


def test_oversampling_refuses_an_absent_class_and_bad_labels():
    with pytest.raises(ValueError, match=r"classes \[1\] have no training row"):
        oversampled_indices([0, 0, 2], seed=0)
    with pytest.raises(ValueError, match=r"classes \[2\] have no training row"):
        oversampled_indices([0, 1, 1], seed=0, num_classes=3)
    with pytest.raises(ValueError, match="non-empty"):
        oversampled_indices([], seed=0)
    with pytest.raises(ValueError, match="integer class labels"):
        oversampled_indices([0.5, 1.0], seed=0)
    with pytest.raises(ValueError, match="out of range"):
        oversampled_indices([0, 3], seed=0, num_classes=2)


# -- focal loss ----------------------------------------------------------------------------------
def test_focal_loss_with_gamma_zero_is_cross_entropy_exactly():
    generator = torch.Generator().manual_seed(0)
    for batch, classes in ((1, 2), (7, 3), (256, 2)):
        logits = 4 * torch.randn(batch, classes, generator=generator)
        labels = torch.randint(0, classes, (batch,), generator=generator)
        assert torch.equal(focal_loss(logits, labels, 0.0), F.cross_entropy(logits, labels))


def test_focal_loss_golden_hand_computed():
    # both rows have p(class 1) = 3/4: row 1 is a lens (p_t = 3/4), row 2 a non-lens (p_t = 1/4)
    logits = torch.tensor([[0.0, math.log(3)], [0.0, math.log(3)]], dtype=torch.float64)
    labels = torch.tensor([1, 0])
    easy, hard = (1 / 4) ** 2 * math.log(4 / 3), (3 / 4) ** 2 * math.log(4)
    assert focal_loss(logits, labels, 2.0).item() == pytest.approx((easy + hard) / 2, rel=1e-12)
    assert focal_loss(logits, labels, 2.0).item() == pytest.approx(0.398885353829, rel=1e-11)
    alpha = torch.tensor([0.25, 0.75], dtype=torch.float64)  # alpha_t: 0.75 for the lens, 0.25 for the non-lens
    assert focal_loss(logits, labels, 2.0, alpha).item() == pytest.approx((0.75 * easy + 0.25 * hard) / 2, rel=1e-12)
    # the weighted mean is over examples (Lin et al.), not over the weights as F.cross_entropy(weight=) divides
    plain = F.cross_entropy(logits, labels, reduction="none")
    assert focal_loss(logits, labels, 0.0, alpha).item() == pytest.approx(
        ((torch.tensor([0.75, 0.25], dtype=torch.float64) * plain).mean()).item(), rel=1e-12)


def test_focal_loss_down_weights_easy_examples_and_keeps_finite_gradients():
    logits = torch.tensor([[0.0, 4.0], [0.0, -1.0]])
    labels = torch.tensor([1, 1])
    per_gamma = [focal_loss(logits, labels, g).item() for g in (0.0, 1.0, 2.0, 5.0)]
    assert per_gamma == sorted(per_gamma, reverse=True) and per_gamma[-1] > 0
    saturated = torch.tensor([[0.0, 200.0]], requires_grad=True)  # p_t == 1 in float32
    focal_loss(saturated, torch.tensor([1]), 0.5).backward()
    assert torch.isfinite(saturated.grad).all()


@pytest.mark.parametrize("gamma", [-1.0, float("nan"), float("inf"), "2", True])
def test_focal_loss_refuses_a_bad_gamma(gamma):
    with pytest.raises(ValueError, match="focal_gamma"):
        focal_loss(torch.zeros(2, 2), torch.tensor([0, 1]), gamma)


def test_focal_loss_needs_one_alpha_per_class():
    with pytest.raises(ValueError, match="one weight per class"):
        focal_loss(torch.zeros(2, 3), torch.tensor([0, 1]), 2.0, torch.tensor([1.0, 2.0]))


def test_classification_loss_uses_the_focal_loss_when_the_context_says_so():
    logits = torch.tensor([[1.0, -1.0], [0.5, 2.0], [0.0, 0.3]])
    labels = torch.tensor([0, 1, 0])

    def model(pixel_values, labels=None):
        return SimpleNamespace(logits=logits, loss=torch.tensor(123.0))

    batch = {"pixel_values": torch.zeros(3, 1, 4, 4), "labels": labels}
    task = get_task("lens_finding")
    context = dict(accelerator=None, generator=torch.Generator(), augment=False)
    weights = torch.tensor([0.2, 1.8])
    assert task.loss(model, batch, LossContext(**context)).item() == 123.0  # the model's own cross-entropy
    assert torch.equal(task.loss(model, batch, LossContext(**context, focal_gamma=2.0)),
                       focal_loss(logits, labels, 2.0))
    assert torch.equal(task.loss(model, batch, LossContext(**context, focal_gamma=2.0, class_weights=weights)),
                       focal_loss(logits, labels, 2.0, weights))
    assert torch.equal(task.loss(model, batch, LossContext(**context, class_weights=weights)),
                       F.cross_entropy(logits, labels, weight=weights))


# -- the F1-optimal threshold ----------------------------------------------------------------------
def test_f1_optimal_threshold_hand_computed():
    # F1 at score >= 0.8: 2/3; >= 0.4: 1/2; >= 0.35: 2/3; >= 0.2: precision 4/6, recall 1 -> 0.8; >= 0.1: 2/3
    chosen = functional.f1_optimal_threshold(HAND_LENSES, HAND_SCORES)
    assert chosen == pytest.approx({"threshold": 0.2, "f1": 0.8, "precision": 4 / 6, "recall": 1.0})


def test_f1_optimal_threshold_ties_go_to_the_highest_threshold():
    # two lenses: score >= 0.9 finds 1 of 1 predicted (F1 2/3), >= 0.3 finds 2 of 4 predicted (F1 2/3)
    labels, scores = [1, 0, 0, 1, 0], [0.9, 0.6, 0.5, 0.3, 0.1]
    chosen = functional.f1_optimal_threshold(labels, scores)
    assert chosen["threshold"] == 0.9 and chosen["f1"] == pytest.approx(2 / 3)
    assert (chosen["precision"], chosen["recall"]) == pytest.approx((1.0, 0.5))


def test_f1_optimal_threshold_is_the_best_of_every_candidate():
    rng = np.random.default_rng(4)
    labels = (rng.random(400) < 0.1).astype(int)
    scores = np.round(np.clip(0.3 * labels + rng.normal(0.3, 0.15, 400), 0, 1), 2)  # ties included
    chosen = functional.f1_optimal_threshold(labels, scores)
    f1_at = {t: f1_score(labels, scores >= t) for t in np.unique(scores)}
    best = max(f1_at.values())
    assert chosen["f1"] == pytest.approx(best, rel=1e-12)
    assert chosen["threshold"] == max(t for t, f in f1_at.items() if math.isclose(f, best, rel_tol=1e-12))
    assert functional.lens_finding_metrics(scores, labels, chosen["threshold"])["f1"] == pytest.approx(chosen["f1"])


def test_f1_optimal_threshold_bad_input():
    with pytest.raises(ValueError, match="only one class"):
        functional.f1_optimal_threshold([0, 0, 0], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="`scores` has 2 entries but `labels` has 3"):
        functional.f1_optimal_threshold([0, 1, 0], [0.1, 0.2])
    with pytest.raises(ValueError, match="`scores` holds 1 NaN"):
        functional.f1_optimal_threshold([0, 1], [0.1, float("nan")])


def test_lens_finding_evaluation_reports_both_thresholds():
    result = functional.lens_finding_evaluation(HAND_SCORES, HAND_LENSES, 0.2, "max F1 on the validation split")
    assert (result["f1"], result["precision"], result["recall"]) == pytest.approx((0.8, 4 / 6, 1.0))
    # score >= 0.5: the two 0.8 lenses -> precision 1, recall 1/2
    assert (result["f1_at_0.5"], result["precision_at_0.5"], result["recall_at_0.5"]) == pytest.approx((2 / 3, 1, 0.5))
    assert result["threshold"] == 0.2 and result["threshold_source"] == "max F1 on the validation split"
    assert result["roc_auc"] == pytest.approx(0.75)  # the ranking metrics of lens_finding_metrics are kept
    curve = result["precision_recall_curve"]
    assert curve["thresholds"] == [0.1, 0.2, 0.35, 0.4, 0.8]
    assert curve["precision"] == pytest.approx([0.5, 4 / 6, 0.6, 0.5, 1.0, 1.0])
    assert curve["recall"] == pytest.approx([1.0, 1.0, 0.75, 0.5, 0.5, 0.0])
    assert json.loads(json.dumps(result)) == result
    default = functional.lens_finding_evaluation(HAND_SCORES, HAND_LENSES)
    assert default["threshold"] == 0.5 and "default" in default["threshold_source"]
    assert default["f1"] == default["f1_at_0.5"] == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="decision_threshold"):
        functional.lens_finding_evaluation(HAND_SCORES, HAND_LENSES, float("nan"))


# -- the precision-recall plot -------------------------------------------------------------------
def test_precision_recall_plot_is_written_with_the_chosen_point(tmp_path):
    curve = functional.precision_recall_curve(HAND_LENSES, HAND_SCORES)
    plain = plots.plot_precision_recall_curve(curve, tmp_path / "pr.png")
    marked = plots.plot_precision_recall_curve(curve, tmp_path / "sub" / "pr_marked.png", positive_fraction=0.5,
                                               chosen={"threshold": 0.2, "precision": 4 / 6, "recall": 1.0})
    assert marked == tmp_path / "sub" / "pr_marked.png"
    for path in (plain, marked):
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert plain.read_bytes() != marked.read_bytes()
    with pytest.raises(ValueError, match="'precision' and 'recall'"):
        plots.plot_precision_recall_curve({"fpr": [0, 1]}, tmp_path / "bad.png")
    with pytest.raises(ValueError, match="recall must not increase"):
        plots.plot_precision_recall_curve({"precision": [1, 0.5], "recall": [0, 1]}, tmp_path / "bad.png")
    with pytest.raises(ValueError, match="missing"):
        plots.plot_precision_recall_curve(curve, tmp_path / "bad.png", chosen={"recall": 1.0})


# -- the threshold through evaluate_splits ---------------------------------------------------------
class ScoreModel(torch.nn.Module):
    """Two-class logits (0, v) from each image's mean pixel v: P(lens) = sigmoid(v), set by the data."""

    def __init__(self):
        super().__init__()
        self.config = PretrainedConfig()

    def forward(self, pixel_values):
        value = pixel_values.mean(dim=(1, 2, 3))
        return {"logits": torch.stack([torch.zeros_like(value), value], dim=1)}


def batches(values, labels, size=4):
    """A loader stand-in: batches of constant 1x2x2 images with mean `value`."""
    values, labels = torch.tensor(values, dtype=torch.float32), torch.tensor(labels)
    return [{"pixel_values": values[i:i + size, None, None, None].expand(-1, 1, 2, 2), "labels": labels[i:i + size]}
            for i in range(0, len(values), size)]


def lens_probability(values):
    return torch.sigmoid(torch.tensor(values, dtype=torch.float32)).numpy()


# every lens of these splits scores below P = 0.5, so F1 at 0.5 is 0 and the validation threshold is what matters
VALIDATION = ([-3.0, -2.0, -1.0, -1.3, -0.2, -1.5, -0.1, -2.5], [0, 0, 1, 0, 1, 0, 1, 0])
TEST = ([-3.0, -0.3, -1.2, -0.4, -2.2, -0.05, -0.9, -1.8], [0, 1, 0, 1, 0, 1, 1, 0])
TRAIN = ([-1.1, -0.2, -2.0, -0.6], [0, 1, 0, 1])


@pytest.fixture(scope="module")
def accelerator(tmp_path_factory):
    from lens_hf.training import RunArguments, build_accelerator

    return build_accelerator(RunArguments(output_dir=str(tmp_path_factory.mktemp("acc")), seed=0, report_to="none"))


def test_every_split_is_scored_at_the_threshold_chosen_on_validation(accelerator, tmp_path):
    from lens_hf.training.runner import evaluate_splits

    model = ScoreModel()
    loaders = {"test": batches(*TEST), "train": batches(*TRAIN), "validation": batches(*VALIDATION)}
    metrics, _, figures = evaluate_splits(accelerator, model, loaders, "lens_finding", 0, ["nonlens", "lens"],
                                          tmp_path / "plots", calibrate=True)
    chosen = functional.f1_optimal_threshold(VALIDATION[1], lens_probability(VALIDATION[0]))
    assert chosen["threshold"] < 0.5 and chosen["f1"] == pytest.approx(1.0)  # the 3 lenses score highest
    assert model.config.decision_threshold == chosen["threshold"]
    for split, (values, labels) in {"train": TRAIN, "validation": VALIDATION, "test": TEST}.items():
        expected = functional.lens_finding_metrics(lens_probability(values), labels, chosen["threshold"])
        assert metrics[split]["threshold"] == chosen["threshold"], split  # train is scored before validation
        assert metrics[split]["threshold_source"] == "max F1 on the validation split"
        assert metrics[split]["f1"] == pytest.approx(expected["f1"]) and metrics[split]["f1"] > 0, split
        assert metrics[split]["f1_at_0.5"] == 0.0, split
    assert metrics["validation"]["f1"] == pytest.approx(1.0)
    assert set(figures) == {f"{kind} ({split})" for kind in ("ROC curves", "Precision-recall curve")
                            for split in ("validation", "test")}
    assert (tmp_path / "plots" / "precision_recall_test.png").read_bytes()[:4] == b"\x89PNG"

    # evaluate.py scores the test split alone with the saved config: the same threshold, the same figures
    saved = PretrainedConfig.from_dict(model.config.to_dict())
    again = ScoreModel()
    again.config = saved
    alone, _, _ = evaluate_splits(accelerator, again, {"test": batches(*TEST)}, "lens_finding", 0, None,
                                  tmp_path / "again")
    assert alone["test"] == metrics["test"]


def test_without_a_validation_split_the_threshold_is_the_default_not_an_inherited_one(accelerator, tmp_path):
    from lens_hf.training.runner import evaluate_splits

    model = ScoreModel()
    model.config.decision_threshold = 0.01  # e.g. inherited from the checkpoint the run started from
    metrics, _, _ = evaluate_splits(accelerator, model, {"test": batches(*TEST)}, "lens_finding", 0, None,
                                    tmp_path, calibrate=True)
    assert model.config.decision_threshold is None
    assert metrics["test"]["threshold"] == 0.5 and "default" in metrics["test"]["threshold_source"]
    assert metrics["test"]["f1"] == metrics["test"]["f1_at_0.5"] == 0.0
    # a one-class validation split cannot choose a threshold: a warning, then the default
    one_class = {"validation": batches([-1.0, -2.0], [0, 0]), "test": batches(*TEST)}
    metrics, _, _ = evaluate_splits(accelerator, model, one_class, "lens_finding", 0, None, tmp_path, calibrate=True)
    assert metrics["test"]["threshold"] == 0.5 and "validation" not in metrics


class StrictConfig(PretrainedConfig):
    """A config that, like LensMAEConfig, refuses to load a field it does not declare."""

    @classmethod
    def from_dict(cls, config_dict, **kwargs):
        if "decision_threshold" in config_dict:
            raise ValueError("StrictConfig got an unknown field `decision_threshold`")
        return super().from_dict(config_dict, **kwargs)


def test_a_config_that_cannot_store_the_threshold_is_scored_without_one(accelerator, tmp_path, caplog):
    """Figures a saved model cannot reproduce would be worse than figures at 0.5."""
    from lens_hf.tasks.base import config_can_store
    from lens_hf.training.runner import evaluate_splits

    assert config_can_store(PretrainedConfig(), "decision_threshold")
    assert not config_can_store(StrictConfig(), "decision_threshold")
    model = ScoreModel()
    model.config = StrictConfig()
    loaders = {"validation": batches(*VALIDATION), "test": batches(*TEST)}
    metrics, _, _ = evaluate_splits(accelerator, model, loaders, "lens_finding", 0, None, tmp_path, calibrate=True)
    assert not hasattr(model.config, "decision_threshold")
    assert metrics["test"]["threshold"] == 0.5 and "default" in metrics["test"]["threshold_source"]
    assert "StrictConfig has no field 'decision_threshold'" in caplog.text


def test_a_task_without_calibration_fields_is_untouched(accelerator, tmp_path):
    from lens_hf.training.runner import evaluate_splits

    model = ScoreModel()
    loaders = {"validation": batches(*VALIDATION), "test": batches(*TEST)}
    metrics, _, _ = evaluate_splits(accelerator, model, loaders, "classification", 0, ["nonlens", "lens"], tmp_path,
                                    calibrate=True)
    assert "threshold" not in metrics["test"] and not hasattr(model.config, "decision_threshold")
    assert get_task("classification").calibrate({}) == {}


# -- a training run --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def imbalanced_data(tmp_path_factory):
    """The npy lens-finding layout with 4 of 14 training lenses kept (10 non-lenses), 40 % held out for validation."""
    root = tmp_path_factory.mktemp("imbalanced")
    write_lens_finding_tree(root, n_per_folder=14, image_size=32)
    for path in sorted((root / "train_lenses").iterdir())[4:]:
        path.unlink()
    return ["--dataset_name", "lens_finding", "--dataset_config", "npy", "--data_dir", str(root),
            "--cache_dir", str(root / "cache"), "--dataset_overrides", "image_size=32,validation_fraction=0.4"]


TINY_RUN = ["--model_preset", "tiny", "--per_device_train_batch_size", "4",
            "--per_device_eval_batch_size", "16", "--disable_progress_bar", "true", "--save_steps", "0",
            "--report_to", "none", "--max_steps", "3"]


def training_arguments(data, out):
    from lens_hf.training import DataArguments, ModelArguments, RunArguments, parse_arguments

    return parse_arguments((DataArguments, ModelArguments, RunArguments), [*data, *TINY_RUN, "--output_dir", str(out)])


def build_lens_finder(model_args, architecture="lens_mae"):
    """A tiny LensMAE classifier, or a tiny transformers ResNet (whose config keeps any field, so the
    validation-chosen threshold is saved whatever LensMAEConfig declares)."""
    from transformers import ResNetConfig, ResNetForImageClassification

    from lens_hf.training.models import fresh_config

    def build(info, recipe_config):
        names = info.class_names
        head = dict(num_labels=len(names), id2label=dict(enumerate(names)),
                    label2id={n: k for k, n in enumerate(names)}, problem_type="single_label_classification")
        if architecture == "resnet":
            return ResNetForImageClassification(ResNetConfig(num_channels=info.num_channels, embedding_size=8,
                                                             hidden_sizes=[8, 16], depths=[1, 1], layer_type="basic",
                                                             image_size=info.image_size,
                                                             **head))
        return LensMAEForImageClassification(fresh_config(model_args, info.image_size, info.num_channels, **head))

    return build


def test_an_oversampled_focal_loss_run_saves_its_threshold(imbalanced_data, tmp_path, monkeypatch):
    from lens_hf.training import run_training

    calls = []

    def counting_focal_loss(logits, labels, gamma, alpha=None):
        calls.append((gamma, alpha is not None))
        return focal_loss(logits, labels, gamma, alpha)

    monkeypatch.setattr(classification_module, "focal_loss", counting_focal_loss)
    splits = builder_splits(imbalanced_data)
    train_counts = np.bincount(splits["train"]["label"])
    assert train_counts[0] > train_counts[1] > 0 and len(set(splits["validation"]["label"])) == 2
    out = tmp_path / "run"
    data_args, model_args, run_args = training_arguments(imbalanced_data, out)
    metrics = run_training(task="lens_finding", recipe="scratch", data_args=data_args, model_args=model_args,
                           run_args=run_args, build_model=build_lens_finder(model_args, "resnet"), oversample=True,
                           focal_gamma=2.0, loss_weights_fn=lambda labels, k: [0.25, 0.75])
    assert calls == [(2.0, True)] * 3  # every step trained on the focal loss, the loss weights as alpha
    record = json.loads((out / "run_config.json").read_text())
    assert record["derived"]["oversampled_train_rows"] == 2 * int(train_counts.max())
    config = json.loads((out / "config.json").read_text())
    assert config["decision_threshold"] == metrics["test"]["threshold"] == metrics["validation"]["threshold"]
    assert metrics["test"]["threshold_source"] == "max F1 on the validation split"
    stored = json.loads((out / "metrics.json").read_text())
    assert {"f1", "f1_at_0.5", "precision_at_0.5", "recall_at_0.5", "threshold"} <= set(stored["summary"]["test"])
    assert stored["plots"]["Precision-recall curve (test)"] == "plots/precision_recall_test.png"
    assert (out / "plots" / "precision_recall_test.png").is_file()
    assert len(stored["full"]["test"]["precision_recall_curve"]["thresholds"]) >= 1
    # evaluate.py on the test split alone reads the saved threshold and reproduces the stored figures
    again = load_script("evaluate.py").main([*imbalanced_data, "--model_name_or_path", str(out), "--split", "test",
                                             "--refresh_card", "false"])
    assert again["test"]["threshold"] == config["decision_threshold"]
    assert functional.scalar_metrics(again["test"]) == pytest.approx(stored["summary"]["test"], rel=1e-6)


def test_run_training_refuses_what_it_cannot_do(imbalanced_data, tmp_path):
    from lens_hf.training import run_training

    data_args, model_args, run_args = training_arguments(imbalanced_data, tmp_path / "refused")
    common = dict(task="lens_finding", data_args=data_args, model_args=model_args, run_args=run_args,
                  build_model=build_lens_finder(model_args))
    with pytest.raises(ValueError, match="focal_gamma must be a finite number >= 0"):
        run_training(**common, focal_gamma=-1.0)
    with pytest.raises(ValueError, match="head solver"):
        run_training(**common, oversample=True, head_solver=lambda *a: {})
    with pytest.raises(ValueError, match="head solver"):
        run_training(**common, focal_gamma=2.0, head_solver=lambda *a: {})
    with pytest.raises(ValueError, match="weighted sampler"):
        run_training(**common, oversample=True, class_weights_fn=lambda labels, k: [1.0, 1.0])
    with pytest.raises(ValueError, match="task 'regression' has none"):
        run_training(**{**common, "task": "regression"}, oversample=True)
    assert not (tmp_path / "refused").exists()  # refused before any file was written


@pytest.mark.parametrize("imbalance", ["oversample", "focal_loss"])
def test_finetune_py_imbalance_options_on_a_lens_mae_lens_finder(imbalanced_data, tmp_path, imbalance):
    """The command line: LensMAEConfig declares decision_threshold, so a LensMAE lens finder saves it too."""
    out = tmp_path / imbalance
    load_script("finetune.py").main([*imbalanced_data, *TINY_RUN, "--task", "lens_finding", "--mode", "scratch",
                                     "--imbalance", imbalance, "--focal_gamma", "1.5", "--output_dir", str(out)])
    config = json.loads((out / "config.json").read_text())
    stored = json.loads((out / "metrics.json").read_text())
    assert config["model_type"] == "lens_mae" and config["decision_threshold"] == stored["summary"]["test"]["threshold"]
    assert stored["full"]["test"]["threshold_source"] == "max F1 on the validation split"
    derived = json.loads((out / "run_config.json").read_text())["derived"]
    assert ("oversampled_train_rows" in derived) == (imbalance == "oversample")
    from lens_hf import LensMAEForImageClassification

    assert LensMAEForImageClassification.from_pretrained(out).config.decision_threshold == config["decision_threshold"]
    with pytest.raises(ValueError, match="--task regression has none"):
        load_script("finetune.py").main([*imbalanced_data, *TINY_RUN, "--task", "regression", "--imbalance", imbalance,
                                         "--mode", "scratch", "--output_dir", str(tmp_path / "refused")])
