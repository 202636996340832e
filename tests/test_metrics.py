"""lens_hf.metrics: ROC, AUC, average precision, F1 and confusion matrices (which come from scikit-learn) against
small cases computed by hand, so that a wrong wiring fails; regression against scikit-learn and SSIM/PSNR against
scikit-image, which are independent of the code here."""
import numpy as np
import pytest
from sklearn import metrics as skm

import lens_hf.metrics
from lens_hf.metrics import functional

skimage_metrics = pytest.importorskip("skimage.metrics")


def _three_class_problem(seed=0, n=240):
    """Informative but imperfect class probabilities, rounded so that ties occur (a classic AUC pitfall)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, n)
    logits = rng.normal(size=(n, 3)) + 1.2 * np.eye(3)[labels]
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    probabilities = np.round(probabilities, 2)
    return probabilities / probabilities.sum(axis=1, keepdims=True), labels


def _lens_problem(seed=0, n=3000, lens_fraction=0.1):
    rng = np.random.default_rng(seed)
    labels = (rng.random(n) < lens_fraction).astype(int)
    scores = np.round(1 / (1 + np.exp(-(rng.normal(size=n) + 2.0 * labels))), 3)
    return scores, labels


@pytest.fixture(scope="module")
def loaded():
    return {name: lens_hf.metrics.load(name) for name in lens_hf.metrics.METRIC_NAMES}


def test_every_bundled_module_loads_offline_with_evaluate(loaded):
    import evaluate

    for name, module in loaded.items():
        assert isinstance(module, evaluate.Metric), name
        assert module.citation.strip().startswith("@"), name
    direct = evaluate.load(str(lens_hf.metrics.module_path("regression")))
    assert direct.compute(predictions=[-23.0], references=[-22.5])["mae"] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="Unknown lens_hf metric 'accuracy'"):
        lens_hf.metrics.load("accuracy")


# Six examples, three classes, ties within and across classes. By hand (pairs positive > negative count 1, ties 1/2):
# per-class one-vs-rest AUC 6/8, 6/8, 7/8; micro AUC 56.5/72 = 113/144 over 6 positive and 12 negative scores.
HAND_PROBABILITIES = [[0.6, 0.3, 0.1], [0.3, 0.3, 0.4], [0.3, 0.5, 0.2],
                      [0.5, 0.3, 0.2], [0.2, 0.2, 0.6], [0.3, 0.4, 0.3]]
HAND_LABELS = [0, 0, 1, 1, 2, 2]


def test_classification_hand_computed_three_class(loaded):
    result = loaded["classification"].compute(predictions=HAND_PROBABILITIES, references=HAND_LABELS,
                                              class_names=["no_sub", "cdm", "axion"])
    assert result["accuracy"] == pytest.approx(0.5)  # argmax 0, 2, 1, 0, 2, 1
    assert result["confusion_matrix"] == [[1, 0, 1], [1, 1, 0], [0, 1, 1]]  # rows true, columns predicted
    assert result["roc_auc_per_class"] == pytest.approx({"no_sub": 0.75, "cdm": 0.75, "axion": 0.875})
    assert result["roc_auc_macro"] == pytest.approx(2.375 / 3)
    assert result["roc_auc_micro"] == pytest.approx(113 / 144)
    # cdm: positives score 0.5, 0.3; negatives 0.4, 0.3, 0.3, 0.2 -> thresholds inf, 0.5, 0.4, 0.3, 0.2
    assert result["roc_curves"]["cdm"] == {"fpr": pytest.approx([0, 0, 0.25, 0.75, 1]),
                                           "tpr": pytest.approx([0, 0.5, 0.5, 1, 1])}
    # micro: every distinct score is a point, collinear ones included (thresholds inf, .6, .5, .4, .3, .2, .1)
    assert result["roc_curves"]["micro"] == {"fpr": pytest.approx(np.array([0, 0, 1, 3, 7, 11, 12]) / 12),
                                             "tpr": pytest.approx(np.array([0, 2, 3, 3, 6, 6, 6]) / 6)}
    assert set(result["roc_curves"]) == {"no_sub", "cdm", "axion", "micro"}
    assert result["num_examples"] == 6 and result["class_names"] == ["no_sub", "cdm", "axion"]


def test_confusion_matrix_keeps_a_class_that_is_never_predicted():
    result = functional.classification_metrics([[0.7, 0.2, 0.1], [0.2, 0.7, 0.1], [0.6, 0.3, 0.1]], [0, 1, 2])
    assert result["confusion_matrix"] == [[1, 0, 0], [0, 1, 0], [1, 0, 0]]


def test_classification_from_logits_and_batches_equal_one_call(loaded):
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 3, 240)
    logits = rng.normal(size=(240, 3)) + 1.2 * np.eye(3)[labels] + 3.0
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    metric = loaded["classification"]
    whole = metric.compute(predictions=logits, references=labels, from_logits=True)
    for start in range(0, len(labels), 100):
        metric.add_batch(predictions=logits[start:start + 100], references=labels[start:start + 100])
    batched = metric.compute(from_logits=True)
    assert batched["roc_auc_micro"] == pytest.approx(whole["roc_auc_micro"])
    from_probabilities = functional.classification_metrics(probabilities, labels)
    assert whole["roc_auc_micro"] == pytest.approx(from_probabilities["roc_auc_micro"])
    assert whole["roc_auc_per_class"] == pytest.approx(from_probabilities["roc_auc_per_class"])
    assert whole["confusion_matrix"] == from_probabilities["confusion_matrix"]


def test_binary_classification_takes_positive_class_probabilities(loaded):
    # P(class 1) = 0.9, 0.4, 0.6, 0.2, 0.6 for classes 1, 0, 1, 0, 0. Class 1: positives 0.9, 0.6 against
    # negatives 0.4, 0.2, 0.6 -> (3 + 2.5) / 6. Micro over both columns: 22 of 25 pairs.
    result = loaded["classification"].compute(predictions=[0.9, 0.4, 0.6, 0.2, 0.6], references=[1, 0, 1, 0, 0])
    assert result["accuracy"] == pytest.approx(0.8)
    assert result["confusion_matrix"] == [[2, 1], [0, 2]]
    assert result["roc_auc_per_class"] == pytest.approx({"0": 5.5 / 6, "1": 5.5 / 6})
    assert result["roc_auc_micro"] == pytest.approx(22 / 25)


@pytest.mark.parametrize("predictions, references, message", [
    ([[0.5, 0.5], [0.2, 0.8]], [0, 1, 1], "Mismatch in the number of predictions"),
    ([[0.5, 0.5], [float("nan"), 1.0]], [0, 1], "NaN/inf"),
    ([[0.5, 0.5], [0.2, 0.8]], [1, 1], "only one class is present"),
    ([[0.5, 0.5], [0.2, 0.8]], [0, 2], r"ids must lie in \[0, 1\]"),
    ([[2.0, -1.0], [0.2, 0.8]], [0, 1], "from_logits=True"),
])
def test_classification_bad_input_errors(loaded, predictions, references, message):
    with pytest.raises(ValueError, match=message):
        loaded["classification"].compute(predictions=predictions, references=references)


# Sorted by score: 0.8 (lens), 0.8 (lens), 0.4, 0.4, 0.35 (lens), 0.2 (lens), 0.1, 0.1.
HAND_SCORES = [0.1, 0.4, 0.35, 0.8, 0.4, 0.8, 0.2, 0.1]
HAND_LENSES = [0, 0, 1, 1, 0, 1, 1, 0]


def test_roc_curve_and_average_precision_hand_computed():
    curve = functional.roc_curve(HAND_LENSES, HAND_SCORES)
    assert curve["thresholds"] == [np.inf, 0.8, 0.4, 0.35, 0.2, 0.1]
    assert curve["fpr"] == pytest.approx([0, 0, 0.5, 0.5, 0.5, 1])
    assert curve["tpr"] == pytest.approx([0, 0.5, 0.5, 0.75, 1, 1])
    assert functional.roc_auc(HAND_LENSES, HAND_SCORES) == pytest.approx(12 / 16)  # 12 of 16 pairs
    # precision 2/2, 3/5, 4/6 where recall steps by 0.5, 0.25, 0.25
    assert functional.average_precision(HAND_LENSES, HAND_SCORES) == pytest.approx(0.5 + 0.25 * 0.6 + 0.25 * 4 / 6)
    assert functional.roc_auc([1, 0], [0.5, 0.5]) == pytest.approx(0.5)  # a tie counts one half
    assert functional.roc_auc([True, False, False], [0.2, 0.9, 0.1]) == pytest.approx(0.5)


def test_lens_finding_hand_computed(loaded):
    result = loaded["lens_finding"].compute(predictions=HAND_SCORES, references=HAND_LENSES, threshold=0.4,
                                            fpr_targets=[0.0, 0.5])
    assert result["roc_auc"] == pytest.approx(0.75)
    assert result["average_precision"] == pytest.approx(0.5 + 0.15 + 1 / 6)
    assert result["tpr_at_fpr_0e+00"] == pytest.approx(0.5) and result["tpr_at_fpr_5e-1"] == pytest.approx(1.0)
    # score >= 0.4: 0.4, 0.8, 0.4, 0.8 -> 2 lenses of 4 predicted, 2 of 4 lenses found
    assert (result["precision"], result["recall"], result["f1"]) == pytest.approx((0.5, 0.5, 0.5))
    assert (result["num_positives"], result["num_negatives"], result["threshold"]) == (4, 4, 0.4)
    nothing_found = functional.lens_finding_metrics(HAND_SCORES, HAND_LENSES, threshold=0.9)
    assert (nothing_found["precision"], nothing_found["recall"], nothing_found["f1"]) == (0.0, 0.0, 0.0)


def test_lens_finding_tpr_at_low_fpr_needs_many_negatives(loaded):
    scores, labels = _lens_problem()
    result = loaded["lens_finding"].compute(predictions=scores, references=labels, threshold=0.6)
    curve = functional.roc_curve(labels, scores)
    fpr, tpr = np.array(curve["fpr"]), np.array(curve["tpr"])
    for target, key in [(1e-2, "tpr_at_fpr_1e-2"), (1e-3, "tpr_at_fpr_1e-3")]:
        assert result[key] == tpr[fpr <= target].max()
    assert 0 < result["tpr_at_fpr_1e-3"] < result["tpr_at_fpr_1e-2"] < 1
    assert result["num_negatives"] == int((labels == 0).sum()) > 1000


def test_lens_finding_bad_input_errors(loaded):
    with pytest.raises(ValueError, match="only one class is present"):
        loaded["lens_finding"].compute(predictions=[0.1, 0.9, 0.4], references=[0, 0, 0])
    with pytest.raises(ValueError, match="NaN/inf"):
        loaded["lens_finding"].compute(predictions=[0.1, float("nan")], references=[0, 1])
    with pytest.raises(ValueError, match="Mismatch in the number of predictions"):
        loaded["lens_finding"].compute(predictions=[0.1, 0.2, 0.3], references=[0, 1])
    with pytest.raises(ValueError, match=r"ids must lie in \[0, 1\]"):
        functional.lens_finding_metrics([0.1, 0.2], [0, 3])


def test_regression_matches_sklearn_and_decomposes(loaded):
    rng = np.random.default_rng(4)
    truth = rng.uniform(-24, -22, 500)
    predicted = truth + 0.05 + rng.normal(0, 0.2, 500)
    result = loaded["regression"].compute(predictions=predicted, references=truth)
    assert result["mae"] == pytest.approx(skm.mean_absolute_error(truth, predicted))
    assert result["rmse"] == pytest.approx(skm.root_mean_squared_error(truth, predicted))
    assert result["r2"] == pytest.approx(skm.r2_score(truth, predicted))
    assert result["rmse"] ** 2 == pytest.approx(result["bias"] ** 2 + result["scatter"] ** 2)
    assert result["bias"] == pytest.approx(np.mean(predicted - truth))
    with pytest.raises(ValueError, match="NaN/inf"):
        loaded["regression"].compute(predictions=[float("nan"), 1.0], references=[1.0, 2.0])
    with pytest.raises(ValueError, match="one value per example"):
        functional.regression_metrics(np.zeros((3, 2)), np.zeros(3))


def _sr_pair(seed=5, n=3, size=40, channels=1):
    rng = np.random.default_rng(seed)
    references = rng.random((n, channels, size, size)).astype(np.float32)
    predictions = np.clip(references + rng.normal(0, 0.05, references.shape), 0, 1).astype(np.float32)
    return predictions, references


def test_super_resolution_matches_skimage(loaded):
    predictions, references = _sr_pair()
    result = loaded["super_resolution"].compute(predictions=predictions, references=references)
    x, y = predictions.astype(np.float64), references.astype(np.float64)
    ssim = [skimage_metrics.structural_similarity(x[i, 0], y[i, 0], gaussian_weights=True, sigma=1.5,
                                                  use_sample_covariance=False, data_range=1.0) for i in range(3)]
    psnr = [skimage_metrics.peak_signal_noise_ratio(y[i], x[i], data_range=1.0) for i in range(3)]
    assert result["ssim"] == pytest.approx(np.mean(ssim), abs=1e-9)
    assert result["psnr"] == pytest.approx(np.mean(psnr))
    assert result["mse"] == pytest.approx(skm.mean_squared_error(y.ravel(), x.ravel()))
    grayscale = loaded["super_resolution"].compute(predictions=predictions[:, 0], references=references[:, 0])
    assert grayscale["ssim"] == pytest.approx(result["ssim"])


def test_ssim_averages_channels_like_skimage():
    predictions, references = _sr_pair(channels=3, n=2, size=24)
    ours = functional.ssim_per_image(predictions, references)
    theirs = [skimage_metrics.structural_similarity(
        predictions[i].astype(np.float64), references[i].astype(np.float64), channel_axis=0,
        gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1.0) for i in range(2)]
    np.testing.assert_allclose(ours, theirs, atol=1e-9)


def test_super_resolution_bad_input_errors(loaded):
    predictions, references = _sr_pair()
    with pytest.raises(ValueError, match="must have the same shape"):
        functional.super_resolution_metrics(predictions[:, :, :32, :32], references)
    predictions[1, 0, 3, 3] = np.nan
    with pytest.raises(ValueError, match=r"NaN/inf value\(s\) \(first at index \(1, 0, 3, 3\)\)"):
        loaded["super_resolution"].compute(predictions=predictions, references=references)
    with pytest.raises(ValueError, match="at least 11x11"):
        functional.super_resolution_metrics(references[:, :, :8, :8], references[:, :, :8, :8])


def test_bicubic_baseline_recovers_smooth_images_and_is_beaten_by_truth():
    size = 48
    grid = np.linspace(0, 1, size)
    smooth = 0.5 + 0.4 * np.sin(2 * np.pi * grid)[:, None] * np.cos(2 * np.pi * grid)[None, :]
    hr = np.stack([smooth, smooth.T])[:, None].astype(np.float32)
    lr = hr.reshape(2, 1, size // 2, 2, size // 2, 2).mean(axis=(3, 5))  # 2x2 binning, as a detector would
    baseline = functional.bicubic_baseline_metrics(lr, hr)
    assert baseline["psnr"] > 30 and baseline["ssim"] > 0.95
    upsampled = functional.bicubic_upsample(lr, (size, size))
    assert upsampled.shape == hr.shape and upsampled.min() >= 0 and upsampled.max() <= 1
    assert functional.super_resolution_metrics(upsampled, hr) == baseline
    with pytest.raises(ValueError, match="channel"):
        functional.bicubic_baseline_metrics(np.repeat(lr, 3, axis=1), hr)


def test_masked_reconstruction_is_the_mae_objective(loaded):
    import torch
    from transformers import ViTMAEConfig, ViTMAEForPreTraining

    torch.manual_seed(0)
    config = ViTMAEConfig(image_size=16, patch_size=4, num_channels=1, hidden_size=16, num_hidden_layers=1,
                          num_attention_heads=2, intermediate_size=32, decoder_hidden_size=16,
                          decoder_num_hidden_layers=1, decoder_num_attention_heads=2, decoder_intermediate_size=32)
    model = ViTMAEForPreTraining(config).eval()
    pixels = torch.rand(3, 1, 16, 16)
    with torch.no_grad():
        output = model(pixel_values=pixels)
    target = model.patchify(pixels)
    result = loaded["masked_reconstruction"].compute(predictions=output.logits.numpy(), references=target.numpy(),
                                                     mask=output.mask.numpy().astype(int))
    assert result["masked_mse"] == pytest.approx(output.loss.item(), rel=1e-5)
    assert result["mask_ratio"] == pytest.approx(0.75)
    with pytest.raises(ValueError, match="no patch as masked"):
        functional.masked_reconstruction_metrics(target, target, np.zeros(target.shape[:2]))
    with pytest.raises(ValueError, match=r"`mask` must be \(N, num_patches\)"):
        functional.masked_reconstruction_metrics(target, target, np.ones((3, 5)))


def test_scalar_metrics_flattens_for_trackers_and_cards():
    probabilities, labels = _three_class_problem(n=60)
    flat = functional.scalar_metrics(functional.classification_metrics(probabilities, labels, ["a", "b", "c"]))
    assert {"accuracy", "roc_auc_micro", "roc_auc_per_class/b", "num_examples"} <= set(flat)
    assert not any(key.startswith(("roc_curves", "confusion_matrix")) for key in flat)
    assert all(isinstance(value, float) for value in flat.values())
